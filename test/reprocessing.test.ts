// Reprocessing (contract sections 3 and 4, docs/contract.md): epochs and back-dated corrections,
// mixed epochs on one day, the cascade with early cutoff and "exactly the affected work", and
// deletions.
import t from 'tap';
import { freshDatabase, type TestDatabase } from './helpers/db.js';
import { normalise, prow, posrow } from './helpers/assert.js';
import {
  declare, insertCashflow, insertFx, insertInstrument, insertPortfolio, insertSnapshot, portfolioRows, positionRows,
} from './helpers/fixtures.js';
import { readStatus } from '../src/status.js';
import { runWorkerOnce } from '../src/worker.js';
import { Decimal } from '../src/decimal.js';
import type { Sql } from '../src/db.js';
import { mark, written, writtenSince } from './helpers/written.js';

const work = (db: TestDatabase) => runWorkerOnce({ connectionString: db.url });

async function stateOf(sql: Sql, portfolioId: string) {
  return Object.fromEntries((await readStatus(sql, { portfolioId })).map((r) => [r.date, r]));
}

// ---------------------------------------------------------------------------------------------
t.test('(a) issue #3: back-dated SELL under a new epoch', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  const P = 'PF_REPRO';
  await insertPortfolio(sql, P, 'USD');
  await insertInstrument(sql, 'AAPL', 'USD');
  const flow = (id: string, date: string, amount: number, timing: string, classification: string) =>
    insertCashflow(sql, { transaction_id: id, portfolio_id: P, security_id: 'AAPL', cashflow_date: date, amount,
      currency: 'USD', classification, timing, is_position_flow: true, is_portfolio_flow: false });
  await flow('BUY-1', '2025-09-01', -20000, 'BOD', 'INVESTMENT_OUTFLOW');
  await flow('BUY-2', '2025-09-03', -11000, 'BOD', 'INVESTMENT_OUTFLOW');
  const snap = (date: string, epoch: number, qty: number, cost: number, price: number, mv: number) =>
    insertSnapshot(sql, { portfolio_id: P, security_id: 'AAPL', date, epoch, quantity: qty, cost_basis: cost,
      cost_basis_local: cost, market_price: price, market_value: mv, market_value_local: mv });
  await snap('2025-09-01', 0, 100, 20000, 200, 20000);
  await snap('2025-09-02', 0, 100, 20000, 215, 21500);
  await snap('2025-09-03', 0, 150, 31000, 220, 33000);
  for (const d of ['2025-09-01', '2025-09-02', '2025-09-03']) await declare(sql, P, d, 1);
  await work(db);

  t.strictSame((await portfolioRows(sql, P)).map(normalise), [
    prow('2025-09-01', { eod_market_value: '20000' }),
    prow('2025-09-02', { bod_market_value: '20000', eod_market_value: '21500' }),
    prow('2025-09-03', { bod_market_value: '21500', eod_market_value: '33000' }),
  ], 'epoch 0 rows');
  t.strictSame((await positionRows(sql, P)).map(normalise), [
    posrow('AAPL', '2025-09-01', { bod_cashflow_position: '-20000', eod_market_value: '20000', quantity: '100', cost: '200' }),
    posrow('AAPL', '2025-09-02', { bod_market_value: '20000', eod_market_value: '21500', quantity: '100', cost: '200' }),
    posrow('AAPL', '2025-09-03', { bod_market_value: '21500', bod_cashflow_position: '-11000', eod_market_value: '33000',
      quantity: '150', cost: '206.6666666667' }),
  ], 'epoch 0 position rows');
  const firstPos = await sql`select updated_at from position_timeseries where portfolio_id = ${P} and date = '2025-09-01'`;
  const firstPf = await sql`select updated_at from portfolio_timeseries where portfolio_id = ${P} and date = '2025-09-01'`;
  const beforeSell = await mark(sql, P);

  // The back-dated SELL 40 @ 215 on 09-02, as the producer writes it.
  await sql.begin(async (tx) => {
    await tx`insert into position_state (portfolio_id, security_id, epoch) values (${P}, 'AAPL', 0) on conflict do nothing`;
    await tx`update position_state set epoch = 1, watermark_date = '2025-09-01' where portfolio_id = ${P} and security_id = 'AAPL'`;
    await tx`insert into daily_position_snapshots (portfolio_id, security_id, date, epoch, quantity, cost_basis,
               cost_basis_local, market_price, market_value, market_value_local, valuation_status)
             values (${P}, 'AAPL', '2025-09-02', 1, 60, 12000, 12000, 215, 12900, 12900, 'VALUED_CURRENT'),
                    (${P}, 'AAPL', '2025-09-03', 1, 110, 23000, 23000, 220, 24200, 24200, 'VALUED_CURRENT')`;
    await tx`insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, epoch, amount, currency,
               classification, timing, is_position_flow, is_portfolio_flow)
             values ('SELL-1', ${P}, 'AAPL', '2025-09-02', 1, 8600, 'USD', 'INVESTMENT_INFLOW', 'EOD', true, false)`;
  });
  await work(db);

  const expectedPortfolio = [
    prow('2025-09-01', { eod_market_value: '20000' }),
    prow('2025-09-02', { epoch: 1, bod_market_value: '20000', eod_market_value: '12900' }),
    prow('2025-09-03', { epoch: 1, bod_market_value: '12900', eod_market_value: '24200' }),
  ];
  const expectedPositions = [
    posrow('AAPL', '2025-09-01', { bod_cashflow_position: '-20000', eod_market_value: '20000', quantity: '100', cost: '200' }),
    posrow('AAPL', '2025-09-02', { epoch: 1, bod_market_value: '20000', eod_cashflow_position: '8600',
      eod_market_value: '12900', quantity: '60', cost: '200' }),
    posrow('AAPL', '2025-09-03', { epoch: 1, bod_market_value: '12900', bod_cashflow_position: '-11000',
      eod_market_value: '24200', quantity: '110', cost: '209.0909090909' }),
  ];
  t.strictSame((await portfolioRows(sql, P)).map(normalise), expectedPortfolio, 'epoch 1 portfolio rows');
  t.strictSame((await positionRows(sql, P)).map(normalise), expectedPositions, 'epoch 1 position rows');
  t.strictSame(await writtenSince(sql, P, beforeSell), written({
    portfolio: ['2025-09-02', '2025-09-03'], position: ['AAPL 2025-09-02', 'AAPL 2025-09-03'],
  }), '09-01 was not recomputed; 09-02 and 09-03 were');
  t.same(await sql`select updated_at from position_timeseries where portfolio_id = ${P} and date = '2025-09-01'`, firstPos,
    '09-01 position row untouched');
  t.same(await sql`select updated_at from portfolio_timeseries where portfolio_id = ${P} and date = '2025-09-01'`, firstPf,
    '09-01 portfolio row untouched');

  // Late epoch-0 data for 09-03 is ignored: replace the stale epoch-0 row, then correct it.
  const before = await mark(sql, P);
  await sql`delete from daily_position_snapshots where portfolio_id = ${P} and date = '2025-09-03' and epoch = 0`;
  await snap('2025-09-03', 0, 999, 99900, 100, 99900);
  await sql`update daily_position_snapshots set market_value = 77777, market_value_local = 77777
            where portfolio_id = ${P} and date = '2025-09-03' and epoch = 0`;
  await work(db);
  t.strictSame(await writtenSince(sql, P, before), written({}), 'epoch-0 writes under epoch 1: no output row written');
  t.strictSame((await readStatus(sql, { portfolioId: P })).map((r) => r.state), ['current', 'current', 'current'],
    'every day current');
  t.strictSame((await portfolioRows(sql, P)).map(normalise), expectedPortfolio, 'portfolio rows unchanged');
  t.strictSame((await positionRows(sql, P)).map(normalise), expectedPositions, 'position rows unchanged');

  // Refusals, each naming the key.
  await t.rejects(snap('2025-09-04', 2, 110, 23000, 221, 24310),
    { message: /PF_REPRO[\s\S]*AAPL[\s\S]*2025-09-04|2025-09-04[\s\S]*PF_REPRO[\s\S]*AAPL/ },
    'a snapshot above the current epoch is refused, naming portfolio, security and date');
  t.equal((await sql`select count(*)::int as n from daily_position_snapshots where epoch = 2`)[0]?.n, 0, 'nothing stored');
  await t.rejects(sql`update position_state set epoch = 0 where portfolio_id = ${P} and security_id = 'AAPL'`,
    { message: /PF_REPRO[\s\S]*AAPL/ }, 'lowering the epoch is refused');
  await t.rejects(sql`update position_state set epoch = 2, watermark_date = null where portfolio_id = ${P} and security_id = 'AAPL'`,
    { message: /PF_REPRO[\s\S]*AAPL/ }, 'raising without a watermark is refused');
  await t.rejects(sql`delete from position_state where portfolio_id = ${P} and security_id = 'AAPL'`,
    { message: /PF_REPRO[\s\S]*AAPL/ }, 'deleting position_state is refused');
  const [ps] = await sql`select epoch, watermark_date from position_state where portfolio_id = ${P}`;
  t.strictSame({ ...ps }, { epoch: 1, watermark_date: '2025-09-01' }, 'position_state unchanged by refused writes');
  await work(db);
  t.strictSame((await portfolioRows(sql, P)).map(normalise), expectedPortfolio, 'rows unchanged after refusals');
});

// ---------------------------------------------------------------------------------------------
t.test('(b) mixed epochs on one day', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  const P = 'PF_MIX';
  await insertPortfolio(sql, P, 'USD');
  await insertInstrument(sql, 'A', 'USD');
  await insertInstrument(sql, 'B', 'USD');
  const D = '2025-09-10';
  await insertSnapshot(sql, { portfolio_id: P, security_id: 'A', date: D, epoch: 0, quantity: 9, cost_basis_local: 810,
    market_value_local: 900, market_value: 900 });
  await sql`insert into position_state (portfolio_id, security_id, epoch) values (${P}, 'A', 1)`;
  await insertSnapshot(sql, { portfolio_id: P, security_id: 'A', date: D, epoch: 1, quantity: 10, cost_basis_local: 900,
    market_value_local: 1000, market_value: 1000 });
  await insertSnapshot(sql, { portfolio_id: P, security_id: 'B', date: D, epoch: 0, quantity: 5, cost_basis_local: 450,
    market_value_local: 500, market_value: 500 });
  await insertCashflow(sql, { transaction_id: 'FEE-B', portfolio_id: P, security_id: 'B', cashflow_date: D, amount: -10,
    currency: 'USD', classification: 'EXPENSE', timing: 'EOD', is_position_flow: true, is_portfolio_flow: true });
  await declare(sql, P, D, 2);
  await work(db);
  t.strictSame((await portfolioRows(sql, P)).map(normalise), [
    prow(D, { epoch: 1, eod_market_value: '1500', eod_cashflow: '-10', fees: '10', position_count: 2 }),
  ]);
  t.strictSame((await positionRows(sql, P)).map(normalise), [
    posrow('A', D, { epoch: 1, eod_market_value: '1000', quantity: '10', cost: '90' }),
    posrow('B', D, { epoch: 0, eod_cashflow_position: '-10', eod_cashflow_portfolio: '-10', fees: '10',
      eod_market_value: '500', quantity: '5', cost: '90' }),
  ]);
});

// ---------------------------------------------------------------------------------------------
// (c) A 250-day single-security EUR portfolio in USD. A tiny independent model gives every row.
const DAYS = 250;
const dateOf = (i: number) => new Date(Date.UTC(2024, 0, 1 + i)).toISOString().slice(0, 10);

interface Flow { id: string; day: number; amount: Decimal; timing: 'BOD' | 'EOD'; classification: string; pos: boolean; pf: boolean }

class Model {
  mvLocal: Decimal[] = [];
  mv: Decimal[] = [];
  flows = new Map<string, Flow>();
  rates: { day: number; rate: Decimal }[] = [];
  rate(day: number): Decimal {
    const r = this.rates.filter((x) => x.day <= day).sort((a, b) => b.day - a.day)[0];
    if (!r) throw new Error(`model: no rate for day ${day}`);
    return r.rate;
  }
  positions() {
    return this.mvLocal.map((eod, i) => {
      const fl = [...this.flows.values()].filter((f) => f.day === i);
      const sum = (p: (f: Flow) => boolean) => fl.filter(p).reduce((a, f) => a.plus(f.amount), new Decimal(0));
      return posrow('S', dateOf(i), {
        bod_market_value: i === 0 ? '0' : this.mvLocal[i - 1]!.toFixed(),
        bod_cashflow_position: sum((f) => f.pos && f.timing === 'BOD').toFixed(),
        eod_cashflow_position: sum((f) => f.pos && f.timing === 'EOD').toFixed(),
        bod_cashflow_portfolio: sum((f) => f.pf && f.timing === 'BOD').toFixed(),
        eod_cashflow_portfolio: sum((f) => f.pf && f.timing === 'EOD').toFixed(),
        eod_market_value: eod.toFixed(),
        fees: fl.filter((f) => f.pf && f.classification === 'EXPENSE').reduce((a, f) => a.plus(f.amount.abs()), new Decimal(0)).toFixed(),
        quantity: '10',
        cost: '100',
      });
    });
  }
  portfolio() {
    return this.positions().map((p, i) => {
      const r = this.rate(i);
      const x = (k: string) => new Decimal(p[k] as string).times(r).toDecimalPlaces(10, Decimal.ROUND_HALF_UP).toFixed();
      return prow(dateOf(i), {
        bod_market_value: i === 0 ? '0' : this.mv[i - 1]!.toFixed(),
        bod_cashflow: x('bod_cashflow_portfolio'),
        eod_cashflow: x('eod_cashflow_portfolio'),
        eod_market_value: this.mv[i]!.toFixed(),
        fees: x('fees'),
      });
    });
  }
}

t.test('(c) cascade with early cutoff; work proportional to the change', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  const P = 'PF_CASCADE';
  const m = new Model();
  await insertPortfolio(sql, P, 'USD');
  await insertInstrument(sql, 'S', 'EUR');
  for (let i = 0; i < DAYS; i++) {
    m.mvLocal.push(new Decimal(1000 + i));
    m.mv.push(new Decimal(1000 + i).times('1.1'));
  }
  await insertFx(sql, 'EUR', 'USD', dateOf(0), '1.1');
  await insertFx(sql, 'EUR', 'USD', dateOf(100), '1.15');
  m.rates.push({ day: 0, rate: new Decimal('1.1') }, { day: 100, rate: new Decimal('1.15') });
  const addFlow = async (f: Flow) => {
    m.flows.set(f.id, f);
    await insertCashflow(sql, { transaction_id: f.id, portfolio_id: P, security_id: 'S', cashflow_date: dateOf(f.day),
      amount: f.amount.toFixed(), currency: 'EUR', classification: f.classification, timing: f.timing,
      is_position_flow: f.pos, is_portfolio_flow: f.pf });
  };
  await addFlow({ id: 'BUY', day: 0, amount: new Decimal(-1000), timing: 'BOD', classification: 'INVESTMENT_OUTFLOW', pos: true, pf: false });
  for (const day of [59, 70, 99, 100]) {
    await addFlow({ id: `DIV${day}`, day, amount: new Decimal(10), timing: 'EOD', classification: 'INCOME', pos: true, pf: true });
  }
  await sql`
    insert into daily_position_snapshots (portfolio_id, security_id, date, epoch, quantity, cost_basis, cost_basis_local,
      market_price, market_value, market_value_local, valuation_status)
    select ${P}, 'S', ${dateOf(0)}::date + i, 0, 10, 1100, 1000, (1000 + i) / 10.0, (1000 + i) * 1.1, 1000 + i, 'VALUED_CURRENT'
    from generate_series(0, ${DAYS - 1}) i`;
  await sql`
    insert into daily_aggregation_manifest (portfolio_id, aggregation_date, expected_count)
    select ${P}, ${dateOf(0)}::date + i, 1 from generate_series(0, ${DAYS - 1}) i`;
  await work(db);

  const check = async (what: string) => {
    t.strictSame((await portfolioRows(sql, P)).map(normalise), m.portfolio(), `${what}: every portfolio row`);
    t.strictSame((await positionRows(sql, P)).map(normalise), m.positions(), `${what}: every position row`);
    const notCurrent = (await readStatus(sql, { portfolioId: P })).filter((r) => r.state !== 'current');
    t.strictSame(notCurrent, [], `${what}: every day current`);
  };
  const days = (list: number[]) => list.map((d) => dateOf(d));
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);

  await check('backfill');
  const [job] = await sql<{ runs: number; portfolio_days: number }[]>`
    select runs::int, portfolio_days::int from portfolio_timeseries_engine.portfolio_job where portfolio_id = ${P}`;
  t.strictSame({ ...job }, { runs: 1, portfolio_days: DAYS }, 'backfill: one job run computed every day');
  let w = await mark(sql, P);

  // 1. Correct the snapshot 200 days back (day 49): its position day, day 50's BOD, their portfolio days.
  await sql`update daily_position_snapshots set market_value = 5500, market_value_local = 5000
            where portfolio_id = ${P} and date = ${dateOf(49)}`;
  m.mvLocal[49] = new Decimal(5000);
  m.mv[49] = new Decimal(5500);
  await work(db);
  t.strictSame(await writtenSince(sql, P, w), written({ portfolio: days([49, 50]), position: days([49, 50]).map((d) => `S ${d}`) }),
    'snapshot correction: exactly position and portfolio days 49 and 50 rewritten');
  await check('snapshot correction');
  t.equal((await portfolioRows(sql, P))[50]?.bod_market_value, '5500.0000000000', 'day 50 takes the new EOD as BOD');

  // 2. A cash flow insert, then an update: one position day and one portfolio day each.
  w = await mark(sql, P);
  await addFlow({ id: 'FEE150', day: 150, amount: new Decimal(-5), timing: 'EOD', classification: 'EXPENSE', pos: true, pf: true });
  await work(db);
  t.strictSame(await writtenSince(sql, P, w), written({ portfolio: days([150]), position: [`S ${dateOf(150)}`] }),
    'cash flow insert: exactly day 150 rewritten');
  w = await mark(sql, P);
  await sql`update cashflows set amount = -7 where transaction_id = 'FEE150'`;
  m.flows.get('FEE150')!.amount = new Decimal(-7);
  await work(db);
  t.strictSame(await writtenSince(sql, P, w), written({ portfolio: days([150]), position: [`S ${dateOf(150)}`] }),
    'cash flow update: exactly day 150 rewritten');
  await check('cash flow change');
  const r150 = (await portfolioRows(sql, P))[150];
  t.strictSame([r150?.fees, r150?.eod_cashflow], ['8.0500000000', '-8.0500000000'], 'day 150: 7 EUR at 1.15');

  // 3. An FX rate in the middle (day 60): portfolio days 60..99, until the pair's next rate; no position days.
  w = await mark(sql, P);
  await insertFx(sql, 'EUR', 'USD', dateOf(60), '1.2');
  m.rates.push({ day: 60, rate: new Decimal('1.2') });
  await work(db);
  t.strictSame(await writtenSince(sql, P, w), written({ portfolio: days(range(60, 99)) }),
    'FX insert: exactly portfolio days 60..99 rewritten, no position row');
  await check('FX insert');
  const rows = await portfolioRows(sql, P);
  t.equal(rows[59]?.eod_cashflow, '11.0000000000', 'day 59 keeps the old rate');
  t.equal(rows[70]?.eod_cashflow, '12.0000000000', 'day 70 takes the new rate');
  t.equal(rows[99]?.eod_cashflow, '12.0000000000', 'day 99 takes the new rate');
  t.equal(rows[100]?.eod_cashflow, '11.5000000000', 'day 100 keeps its own rate');

  // 4. Deleting that rate: the same 40 days again, back to the day-0 rate.
  w = await mark(sql, P);
  await sql`delete from fx_rates where from_currency = 'EUR' and to_currency = 'USD' and rate_date = ${dateOf(60)}`;
  m.rates = m.rates.filter((r) => r.day !== 60);
  await work(db);
  t.strictSame(await writtenSince(sql, P, w), written({ portfolio: days(range(60, 99)) }),
    'FX delete: exactly portfolio days 60..99 rewritten, no position row');
  await check('FX delete');
  t.equal((await portfolioRows(sql, P))[70]?.eod_cashflow, '11.0000000000', 'day 70 back to 1.1');
});

t.test('(c) early cutoff: a changed EOD updates only the next declared day\'s BOD', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  const P = 'PF_CUTOFF';
  await insertPortfolio(sql, P, 'USD');
  await insertInstrument(sql, 'X', 'USD');
  await insertInstrument(sql, 'Y', 'USD');
  // X every day 0..9 (value 100 + i); Y only on days 0 and 5 (value 50, then 60).
  const yDays = new Map([[0, 50], [5, 60]]);
  for (let i = 0; i < 10; i++) {
    await insertSnapshot(sql, { portfolio_id: P, security_id: 'X', date: dateOf(i), quantity: 1, cost_basis_local: 100,
      market_value_local: 100 + i, market_value: 100 + i });
    const y = yDays.get(i);
    if (y !== undefined) {
      await insertSnapshot(sql, { portfolio_id: P, security_id: 'Y', date: dateOf(i), quantity: 1, cost_basis_local: 50,
        market_value_local: y, market_value: y });
    }
    await declare(sql, P, dateOf(i), y === undefined ? 1 : 2);
  }
  await work(db);
  const eod = (i: number, y0 = 50) => 100 + i + (i === 0 ? y0 : i === 5 ? 60 : 0);
  const expected = (y0: number) => Array.from({ length: 10 }, (_, i) => prow(dateOf(i), {
    bod_market_value: i === 0 ? '0' : String(eod(i - 1, y0)),
    eod_market_value: String(eod(i, y0)),
    position_count: yDays.has(i) ? 2 : 1,
  }));
  t.strictSame((await portfolioRows(sql, P)).map(normalise), expected(50));
  const w = await mark(sql, P);

  await sql`update daily_position_snapshots set market_value = 80, market_value_local = 80
            where portfolio_id = ${P} and security_id = 'Y' and date = ${dateOf(0)}`;
  await work(db);
  t.strictSame(await writtenSince(sql, P, w), written({
    portfolio: [dateOf(0), dateOf(1), dateOf(5)], position: [`Y ${dateOf(0)}`, `Y ${dateOf(5)}`],
  }), 'Y day 0 and Y day 5 (its BOD) rebuilt; day 1 takes the new EOD as BOD; nothing else written');
  t.strictSame((await portfolioRows(sql, P)).map(normalise), expected(80));
  const y5 = (await positionRows(sql, P)).map(normalise).find((r) => r.security_id === 'Y' && r.date === dateOf(5));
  t.strictSame([y5?.bod_market_value, y5?.eod_market_value], ['80', '60'], 'Y day 5 BOD from Y day 0');
});

// ---------------------------------------------------------------------------------------------
t.test('(d) deletions', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  const days = ['2025-09-01', '2025-09-02', '2025-09-03'];
  const vals: Record<string, number[]> = { A: [100, 110, 120], B: [1000, 1100, 1200] };
  for (const P of ['PF_DEL_SNAP', 'PF_DEL_MAN']) {
    await insertPortfolio(sql, P, 'USD');
    for (const [i, d] of days.entries()) {
      for (const s of ['A', 'B']) {
        await insertSnapshot(sql, { portfolio_id: P, security_id: s, date: d, quantity: 1, cost_basis_local: vals[s]![0]!,
          market_value_local: vals[s]![i]!, market_value: vals[s]![i]! });
      }
      await declare(sql, P, d, 2);
    }
  }
  await insertInstrument(sql, 'A', 'USD');
  await insertInstrument(sql, 'B', 'USD');
  await work(db);
  const full = [
    prow(days[0]!, { eod_market_value: '1100', position_count: 2 }),
    prow(days[1]!, { bod_market_value: '1100', eod_market_value: '1210', position_count: 2 }),
    prow(days[2]!, { bod_market_value: '1210', eod_market_value: '1320', position_count: 2 }),
  ];
  t.strictSame((await portfolioRows(sql, 'PF_DEL_SNAP')).map(normalise), full);
  t.strictSame((await portfolioRows(sql, 'PF_DEL_MAN')).map(normalise), full);

  await t.test('deleting the effective snapshot', async (t) => {
    const P = 'PF_DEL_SNAP';
    await sql`delete from daily_position_snapshots where portfolio_id = ${P} and security_id = 'B' and date = ${days[1]!}`;
    let st = await stateOf(sql, P);
    t.equal(st[days[1]!]?.state, 'waiting', 'before any worker has run, status counts the day from the inputs');
    t.equal(st[days[1]!]?.detail, '1 of 2');
    t.equal(st[days[1]!]?.has_row, true, 'the last complete portfolio row stays');
    t.equal(st[days[2]!]?.state, 'waiting_previous_day');
    await work(db);
    const pos = (await positionRows(sql, P)).map((r) => `${r.security_id} ${r.date}`);
    t.strictSame(pos, [`A ${days[0]}`, `B ${days[0]}`, `A ${days[1]}`, `A ${days[2]}`, `B ${days[2]}`],
      'its position row is gone as soon as the job has run');
    st = await stateOf(sql, P);
    t.equal(st[days[1]!]?.state, 'waiting', 'still waiting after the worker');
    t.strictSame((await portfolioRows(sql, P)).map(normalise), full, 'portfolio rows untouched while waiting');

    // The producer declares the day with the one position left.
    await declare(sql, P, days[1]!, 1);
    await work(db);
    t.strictSame((await portfolioRows(sql, P)).map(normalise), [
      full[0],
      prow(days[1]!, { bod_market_value: '1100', eod_market_value: '110', position_count: 1 }),
      prow(days[2]!, { bod_market_value: '110', eod_market_value: '1320', position_count: 2 }),
    ]);
    const b3 = (await positionRows(sql, P)).map(normalise).find((r) => r.security_id === 'B' && r.date === days[2]);
    t.strictSame([b3?.bod_market_value, b3?.eod_market_value], ['1000', '1200'], 'B on day 3 takes its BOD from day 1');
  });

  await t.test('deleting a manifest row', async (t) => {
    const P = 'PF_DEL_MAN';
    const posBefore = (await positionRows(sql, P)).map(normalise);
    const w = await mark(sql, P);
    await sql`delete from daily_aggregation_manifest where portfolio_id = ${P} and aggregation_date = ${days[1]!}`;
    let st = await stateOf(sql, P);
    t.equal(st[days[1]!]?.state, 'undeclared');
    t.equal(st[days[2]!]?.state, 'queued', 'the next declared day is not current before the job has run');
    await work(db);
    t.strictSame((await portfolioRows(sql, P)).map((r) => r.date), [days[0], days[2]], 'its portfolio row is gone');
    st = await stateOf(sql, P);
    t.equal(st[days[1]!]?.state, 'undeclared');
    t.equal(st[days[1]!]?.has_row, false);
    t.strictSame((await portfolioRows(sql, P)).map(normalise), [
      full[0],
      prow(days[2]!, { bod_market_value: '1100', eod_market_value: '1320', position_count: 2 }),
    ], 'the next declared day takes its BOD from the day before the deleted one');
    t.strictSame(await writtenSince(sql, P, w), written({
      portfolio: [days[2]!], portfolioRemoved: [days[1]!], positionRemoved: [`A ${days[1]}`, `B ${days[1]}`],
    }), 'the undeclared day loses its rows; only the next declared day is recomputed');
    t.strictSame((await positionRows(sql, P)).map(normalise), posBefore.filter((r) => r.date !== days[1]),
      'other position rows unchanged');
    t.equal((await stateOf(sql, P))[days[2]!]?.state, 'current');

    // Declaring the day again: that day (with its positions) and the next declared day.
    const w2 = await mark(sql, P);
    await declare(sql, P, days[1]!, 2);
    await work(db);
    t.strictSame((await portfolioRows(sql, P)).map(normalise), full, 're-declared: back to the full rows');
    t.strictSame((await positionRows(sql, P)).map(normalise), posBefore, 're-declared: back to the full position rows');
    t.strictSame(await writtenSince(sql, P, w2), written({ portfolio: [days[1]!, days[2]!], position: [`A ${days[1]}`, `B ${days[1]}`] }),
      're-declaring rebuilds that day and recomputes the next declared day');
  });
});
