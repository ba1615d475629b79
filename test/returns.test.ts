// The read side of issue #10: time-weighted and money-weighted returns, risk and position
// returns, from rows the engine computed (inputs written as a producer would, then the worker).
// Hand-computed vectors first, then status (only current days count), the library and the CLI,
// then random series against the independent model in test/model/returns.ts.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { freshDatabase } from './helpers/db.js';
import { declare, insertCashflow, insertFx, insertPortfolio, insertSnapshot } from './helpers/fixtures.js';
import { runWorkerOnce } from '../src/worker.js';
import { Decimal } from '../src/decimal.js';
import type { Sql } from '../src/db.js';
import { readMoneyWeightedReturn, readPositionReturns, readReturns, readRisk } from '../src/returns.js';
import { Rng, seedFromEnv } from './model/book.js';
import * as model from './model/returns.js';

const bin = new URL('../bin/portfolio-timeseries.js', import.meta.url).pathname;
const D = (v: string | number) => new Decimal(v);

// ---------- writing a portfolio the way a producer does ----------

interface DayInput {
  date: string;
  /** EOD market value (base currency) of the one cash position */
  mv: string;
  /** NULL-security portfolio flow at BOD (deposit > 0, withdrawal < 0), portfolio currency */
  bod?: string;
  /** NULL-security portfolio flow at EOD */
  eod?: string;
  /** NULL-security management fee at EOD (stored positive as fees, -fee in the EOD flow) */
  fee?: string;
}

let tx = 0;
const nextId = () => `T${String(++tx).padStart(6, '0')}`;

async function ensureInstrument(sql: Sql, securityId: string, currency: string): Promise<void> {
  await sql`insert into instruments (security_id, currency) values (${securityId}, ${currency}) on conflict do nothing`;
}

async function portfolioFlow(sql: Sql, p: string, date: string, amount: string, timing: 'BOD' | 'EOD',
  classification: string, currency = 'USD'): Promise<void> {
  await insertCashflow(sql, {
    transaction_id: nextId(), portfolio_id: p, security_id: null, cashflow_date: date, amount, currency,
    classification, timing, is_position_flow: false, is_portfolio_flow: true,
  });
}

/** A USD portfolio with one cash position: each day's EOD value and NULL-security flows. */
async function writePortfolio(sql: Sql, p: string, days: DayInput[], openDate = days[0]!.date): Promise<void> {
  await insertPortfolio(sql, p, 'USD', openDate);
  await ensureInstrument(sql, 'CASH_USD', 'USD');
  for (const d of days) {
    await insertSnapshot(sql, { portfolio_id: p, security_id: 'CASH_USD', date: d.date, quantity: d.mv, market_value: d.mv, market_value_local: d.mv });
    const cls = (a: string) => (a.startsWith('-') ? 'CASHFLOW_OUT' : 'CASHFLOW_IN');
    if (d.bod) await portfolioFlow(sql, p, d.date, d.bod, 'BOD', cls(d.bod));
    if (d.eod) await portfolioFlow(sql, p, d.date, d.eod, 'EOD', cls(d.eod));
    if (d.fee) await portfolioFlow(sql, p, d.date, `-${d.fee}`, 'EOD', 'EXPENSE');
    await declare(sql, p, d.date, 1);
  }
}

/** The engine's rows as the model's input. */
async function modelRows(sql: Sql, p: string, from = '-infinity', to = 'infinity'): Promise<model.PortfolioDay[]> {
  const rows = await sql<Record<string, Decimal | string>[]>`
    select date::text, bod_market_value, bod_cashflow, eod_cashflow, eod_market_value, fees
    from portfolio_timeseries where portfolio_id = ${p} and date between ${from}::date and ${to}::date order by date`;
  return rows.map((r) => ({
    date: r.date as string, bod: r.bod_market_value as Decimal, bodCf: r.bod_cashflow as Decimal,
    eodCf: r.eod_cashflow as Decimal, eod: r.eod_market_value as Decimal, fees: r.fees as Decimal,
  }));
}

const s = (v: Decimal | null | undefined): string | null => (v === null || v === undefined ? null : new Decimal(v).toFixed());

/** |a - b| <= tol * max(1, |b|); both null also agree. */
function close(a: Decimal | null, b: Decimal | null, tol = '1e-12'): boolean {
  if (a === null || b === null) return a === b;
  return a.minus(b).abs().lte(new Decimal(tol).times(Decimal.max(1, b.abs())));
}

function cli(args: string[], env: Record<string, string | undefined>) {
  const r = spawnSync(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// ---------- hand-computed vectors ----------

t.test('a deposit on the first day: each day counted once, MWR equals TWR without later flows', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  // BOD 0 + deposit 1000 -> 1010 (+1%), -> 1030.2 (+2%), -> 1019.898 (-1%)
  await writePortfolio(sql, 'A', [
    { date: '2025-03-03', mv: '1010', bod: '1000' },
    { date: '2025-03-04', mv: '1030.2' },
    { date: '2025-03-05', mv: '1019.898' },
  ]);
  await runWorkerOnce({ connectionString: db.url });

  const daily = await sql`select date::text, daily_return::text, cumulative_return::text, zero_base
                          from portfolio_twr_daily('A', '2025-03-03', '2025-03-05')`;
  t.same(daily.map((r) => [r.date, s(D(r.daily_return)), s(D(r.cumulative_return)), r.zero_base]), [
    ['2025-03-03', '0.01', '0.01', false],
    ['2025-03-04', '0.02', '0.0302', false],
    ['2025-03-05', '-0.01', '0.019898', false],
  ]);
  const [sum] = await sql`select * from portfolio_twr('A', '2025-03-03', '2025-03-05')`;
  t.equal(s(sum!.twr), '0.019898', '1.01 x 1.02 x 0.99 - 1, the first day once');
  t.equal(sum!.days, 3);
  t.equal(sum!.day_count, 3);
  t.equal(sum!.twr_annualised, null, 'not annualised: 3 days');
  t.same(sum!.missing_days, []);
  // A range that starts on the second day compounds from there, never from the day before.
  const [later] = await sql`select twr from portfolio_twr('A', '2025-03-04', '2025-03-05')`;
  t.equal(s(later!.twr), '0.0098', '1.02 x 0.99 - 1');

  // MWR: -1000 at the start of day 0, +1019.898 at the end of day 2 (offset 3): the period
  // return is 1.9898% exactly, the annual rate 1.019898^(365/3) - 1.
  const [m] = await sql`select * from portfolio_mwr('A', '2025-03-03', '2025-03-05')`;
  t.ok(close(m!.mwr_period, D('0.019898'), '1e-25'), `mwr_period ${m!.mwr_period} = TWR`);
  t.ok(close(m!.mwr, D('1.019898').pow(D(365).div(3)).minus(1), '1e-25'), 'annual rate');
  t.equal(m!.mwr_annualised, null, 'a 3-day range is not annualised');
  t.equal(m!.reason, null);
});

t.test('zero BOD with a deposit: BOD-timed gives a return, EOD-timed is flagged as 0', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await writePortfolio(sql, 'Z', [
    { date: '2025-03-03', mv: '300', eod: '300' },        // BOD 0, EOD deposit: base 0 -> 0, flagged
    { date: '2025-03-04', mv: '306' },                    // +2%
    { date: '2025-03-05', mv: '0', eod: '-312.12' },      // withdraw everything: (0 - 306 + 312.12) / 306 = +2%
    { date: '2025-03-06', mv: '990', bod: '1000' },       // zero BOD, BOD deposit: (990 - 1000) / 1000 = -1%
    { date: '2025-03-07', mv: '1009.8' },                 // +2%
  ]);
  await runWorkerOnce({ connectionString: db.url });
  const rows = await modelRows(sql, 'Z');
  t.same(rows.map((r) => [r.date, s(r.bod), s(r.bodCf), s(r.eodCf), s(r.eod)]), [
    ['2025-03-03', '0', '0', '300', '300'],
    ['2025-03-04', '300', '0', '0', '306'],
    ['2025-03-05', '306', '0', '-312.12', '0'],
    ['2025-03-06', '0', '1000', '0', '990'],
    ['2025-03-07', '990', '0', '0', '1009.8'],
  ], 'the engine rows the vector is about');
  const daily = await sql`select date::text, daily_return, zero_base from portfolio_twr_daily('Z', '2025-03-03', '2025-03-07')`;
  t.same(daily.map((r) => [r.date, s(r.daily_return), r.zero_base]), [
    ['2025-03-03', '0', true],
    ['2025-03-04', '0.02', false],
    ['2025-03-05', '0.02', false],
    ['2025-03-06', '-0.01', false],
    ['2025-03-07', '0.02', false],
  ]);
  const [sum] = await sql`select * from portfolio_twr('Z', '2025-03-03', '2025-03-07')`;
  t.equal(s(sum!.twr), '0.05059592', '1.02 x 1.02 x 0.99 x 1.02 - 1');
  t.same(sum!.zero_base_days, ['2025-03-03']);
});

t.test('fees on several days: NET is below GROSS by exactly the fees', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await writePortfolio(sql, 'F', [
    { date: '2025-03-03', mv: '10000', bod: '10000' },
    { date: '2025-03-04', mv: '10090', fee: '10' },        // GROSS (10090 - 10000 + 10) / 10000 = 1%, NET 0.9%
    { date: '2025-03-05', mv: '10190.9' },                 // 1% both
    { date: '2025-03-06', mv: '10119.9455' },              // GROSS -0.5% with a 20 fee charged to the position
  ]);
  // The second fee is charged to the cash position (FEE: both flags), not at portfolio level.
  await insertCashflow(sql, {
    transaction_id: nextId(), portfolio_id: 'F', security_id: 'CASH_USD', cashflow_date: '2025-03-06', amount: '-20',
    currency: 'USD', classification: 'EXPENSE', timing: 'EOD', is_position_flow: true, is_portfolio_flow: true,
  });
  await runWorkerOnce({ connectionString: db.url });
  const rows = await modelRows(sql, 'F');
  t.same(rows.map((r) => [r.date, s(r.eodCf), s(r.fees)]), [
    ['2025-03-03', '0', '0'], ['2025-03-04', '-10', '10'], ['2025-03-05', '0', '0'], ['2025-03-06', '-20', '20'],
  ]);
  const gross = await sql`select date::text, daily_return from portfolio_twr_daily('F', '2025-03-03', '2025-03-06', 'GROSS')`;
  const net = await sql`select date::text, daily_return from portfolio_twr_daily('F', '2025-03-03', '2025-03-06', 'NET')`;
  t.same(gross.map((r) => s(r.daily_return)), ['0', '0.01', '0.01', '-0.005']);
  const netDay4 = D('-70.9545').div('10190.9'); // (10119.9455 - 10190.9 + 20 - 20) / 10190.9
  t.same(net.slice(0, 3).map((r) => s(r.daily_return)), ['0', '0.009', '0.01']);
  t.ok(close(net[3]!.daily_return, netDay4, '1e-29'), `NET day 4 ${net[3]!.daily_return}`);
  const [g] = await sql`select twr from portfolio_twr('F', '2025-03-03', '2025-03-06', 'GROSS')`;
  const [n] = await sql`select twr from portfolio_twr('F', '2025-03-03', '2025-03-06', 'NET')`;
  t.equal(s(g!.twr), '0.0149995', '1.01 x 1.01 x 0.995 - 1');
  t.ok(close(n!.twr, D('1.009').times('1.01').times(netDay4.plus(1)).minus(1), '1e-28'), 'NET compounds the NET days');
  t.ok(D(n!.twr).lt(g!.twr), 'NET < GROSS');

  // MWR: GROSS counts the fees as money paid out to the investor, NET as money lost.
  const [mg] = await sql`select mwr, mwr_period from portfolio_mwr('F', '2025-03-03', '2025-03-06', 'GROSS')`;
  const [mn] = await sql`select mwr, mwr_period from portfolio_mwr('F', '2025-03-03', '2025-03-06', 'NET')`;
  const expect = (basis: model.Basis) => model.mwr(rows, basis, '2025-03-03', '2025-03-06');
  t.ok(close(mg!.mwr, expect('GROSS').mwr), `GROSS mwr ${mg!.mwr}`);
  t.ok(close(mn!.mwr, expect('NET').mwr), `NET mwr ${mn!.mwr}`);
  // NET by hand: -10000 at offset 0 and +10119.9455 at offset 4 only: (1.01199455)^(365/4) - 1.
  t.ok(close(mn!.mwr, D('1.01199455').pow(D(365).div(4)).minus(1), '1e-20'), 'NET MWR by hand');
  t.ok(close(mn!.mwr_period, D('0.01199455'), '1e-25'), 'NET MWR over the range = end / start - 1');
  t.ok(D(mn!.mwr).lt(mg!.mwr), 'NET MWR < GROSS MWR');
});

t.test('a foreign-currency deposit counts in base currency in TWR and MWR', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'FX', 'USD', '2025-03-03');
  await ensureInstrument(sql, 'CASH_EUR', 'EUR');
  await insertFx(sql, 'EUR', 'USD', '2025-03-01', '1.1');
  const days = [['2025-03-03', '1000', '1100', '1000'], ['2025-03-04', '1010', '1111', null], ['2025-03-05', '1540.2', '1694.22', '500']] as const;
  for (const [date, local, base, deposit] of days) {
    await insertSnapshot(sql, { portfolio_id: 'FX', security_id: 'CASH_EUR', date, quantity: local, market_value: base, market_value_local: local });
    if (deposit) await portfolioFlow(sql, 'FX', date, deposit, 'BOD', 'CASHFLOW_IN', 'EUR');
    await declare(sql, 'FX', date, 1);
  }
  await runWorkerOnce({ connectionString: db.url });
  const rows = await modelRows(sql, 'FX');
  t.same(rows.map((r) => [r.date, s(r.bodCf)]), [['2025-03-03', '1100'], ['2025-03-04', '0'], ['2025-03-05', '550']],
    'deposits of 1000 and 500 EUR at 1.1');
  const daily = await sql`select daily_return from portfolio_twr_daily('FX', '2025-03-03', '2025-03-05')`;
  t.same(daily.map((r) => s(r.daily_return)), ['0', '0.01', '0.02'], '(1694.22 - 1111 - 550) / (1111 + 550) = 2%');

  // Investor amounts in USD: -1100 at offset 0, -550 at offset 2, +1694.22 at offset 3.
  const [m] = await sql`select mwr, mwr_period from portfolio_mwr('FX', '2025-03-03', '2025-03-05')`;
  const usd = [{ day: 0, amount: D(-1100) }, { day: 2, amount: D(-550) }, { day: 3, amount: D('1694.22') }];
  const oracle = model.xirr(usd);
  t.ok(close(m!.mwr, oracle.rate), `mwr ${m!.mwr} = XIRR of the USD amounts ${oracle.rate}`);
  t.ok(model.npv(usd, D(m!.mwr)).abs().lt('1e-15'), 'the rate zeroes the NPV of the USD amounts');
  const eur = model.xirr([{ day: 0, amount: D(-1000) }, { day: 2, amount: D(-500) }, { day: 3, amount: D('1694.22') }]);
  t.ok(D(m!.mwr).minus(eur.rate!).abs().gt(1), 'summing the EUR amounts as if USD would give another answer');
});

t.test('all-positive investor flows have no MWR, and say why', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  // Money appears without an external flow (BOD 0, no deposit), then is withdrawn: the investor
  // only ever receives.
  await writePortfolio(sql, 'POS', [
    { date: '2025-03-03', mv: '1000' },
    { date: '2025-03-04', mv: '900', eod: '-100' },
    { date: '2025-03-05', mv: '909' },
  ]);
  await runWorkerOnce({ connectionString: db.url });
  const [m] = await sql`select * from portfolio_mwr('POS', '2025-03-03', '2025-03-05')`;
  t.equal(m!.mwr, null);
  t.equal(m!.mwr_period, null);
  t.equal(m!.mwr_annualised, null);
  t.equal(m!.reason, 'no sign change in the cash flows');
  const [x] = await sql`select * from portfolio_xirr(array[0, 100, 909]::numeric[], array[0, 2, 3])`;
  t.same([x!.rate, x!.reason], [null, 'no sign change in the cash flows']);
  const [tw] = await sql`select twr, zero_base_days::text[] from portfolio_twr('POS', '2025-03-03', '2025-03-05')`;
  t.equal(s(tw!.twr), '0.01', 'day 1 has no base (0, flagged), day 2 (900 - 1000 + 100) / 1000 = 0%, day 3 9 / 900 = +1%');
  t.same(tw!.zero_base_days, ['2025-03-03']);
});

t.test('drawdowns: trough on the last day, peak at the start, none', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await writePortfolio(sql, 'DD', [
    { date: '2025-03-03', mv: '1100', bod: '1000' }, // +10%
    { date: '2025-03-04', mv: '1210' },              // +10%  peak 1.21
    { date: '2025-03-05', mv: '1089' },              // -10%
    { date: '2025-03-06', mv: '980.1' },             // -10%  trough 0.9801: 0.9801 / 1.21 - 1 = -19%
  ]);
  await writePortfolio(sql, 'DS', [
    { date: '2025-03-03', mv: '900', bod: '1000' },  // -10% from the starting wealth
    { date: '2025-03-04', mv: '945' },               // +5%
  ]);
  await writePortfolio(sql, 'UP', [
    { date: '2025-03-03', mv: '1010', bod: '1000' },
    { date: '2025-03-04', mv: '1020.1' },
  ]);
  await runWorkerOnce({ connectionString: db.url });
  const [dd] = await sql`select * from portfolio_risk('DD', '2025-03-03', '2025-03-06')`;
  t.equal(s(dd!.max_drawdown), '-0.19');
  t.equal(dd!.drawdown_peak, '2025-03-04');
  t.equal(dd!.drawdown_trough, '2025-03-06', 'the trough is the last day');
  // r = 0.1, 0.1, -0.1, -0.1: mean 0, sample variance 0.04 / 3, so volatility 0.2 / sqrt(3) x sqrt(252) = 0.2 sqrt(84).
  t.ok(close(dd!.volatility, D(84).sqrt().times('0.2'), '1e-28'), `volatility ${dd!.volatility}`);
  t.equal(s(dd!.sharpe), '0', 'mean excess 0');
  t.equal(s(dd!.sortino), '0');
  // With R = 5%: rf = 1.05^(1/252) - 1; Sharpe = -rf / (0.2 / sqrt(3)) x sqrt(252) = -rf sqrt(756) / 0.2;
  // Sortino: the two -0.1 - rf days: sqrt(2 (0.1 + rf)^2 / 4) = (0.1 + rf) / sqrt(2), so -rf sqrt(504) / (0.1 + rf).
  const [rr] = await sql`select * from portfolio_risk('DD', '2025-03-03', '2025-03-06', 'GROSS', 0.05)`;
  const rf = D('1.05').pow(D(1).div(252)).minus(1);
  t.ok(close(rr!.risk_free_daily, rf, '1e-29'));
  t.ok(close(rr!.sharpe, rf.neg().times(D(756).sqrt()).div('0.2'), '1e-26'), `sharpe ${rr!.sharpe}`);
  t.ok(close(rr!.sortino, rf.neg().times(D(504).sqrt()).div(rf.plus('0.1')), '1e-26'), `sortino ${rr!.sortino}`);

  const [ds] = await sql`select * from portfolio_risk('DS', '2025-03-03', '2025-03-04')`;
  t.equal(s(ds!.max_drawdown), '-0.1');
  t.equal(ds!.drawdown_peak, '2025-03-02', 'the starting wealth, dated the day before the first day');
  t.equal(ds!.drawdown_trough, '2025-03-03');
  const [up] = await sql`select * from portfolio_risk('UP', '2025-03-03', '2025-03-04')`;
  t.equal(s(up!.max_drawdown), '0');
  t.equal(up!.drawdown_peak, null);
  t.equal(up!.drawdown_trough, null);
  t.equal(up!.sortino, null, 'no negative excess: no downside deviation');
  t.equal(up!.sharpe, null, 'both days +1%: no deviation');
  const [one] = await sql`select * from portfolio_risk('UP', '2025-03-03', '2025-03-03')`;
  t.same([one!.day_count, one!.volatility, one!.sharpe], [1, null, null], 'one day has no sample deviation');
});

t.test('only current days count: stale, waiting, undeclared and blocked days are missing, never used', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await writePortfolio(sql, 'M', [
    { date: '2025-03-03', mv: '1000', bod: '1000' },
    { date: '2025-03-04', mv: '1010' },
    { date: '2025-03-05', mv: '1020.1' },
    { date: '2025-03-06', mv: '1030.301' },
    { date: '2025-03-07', mv: '1040.60401' },
  ]);
  await runWorkerOnce({ connectionString: db.url });
  const [all] = await sql`select twr, missing_days from portfolio_twr('M', '2025-03-03', '2025-03-07')`;
  t.equal(s(all!.twr), '0.04060401', '1.01^4 - 1');
  t.same(all!.missing_days, []);

  // A correction of 03-06 arrives and is not computed yet: its last complete row stays in the
  // table (and 03-07's), but neither is current any more.
  await sql`update daily_position_snapshots set market_value = 2000, market_value_local = 2000
            where portfolio_id = 'M' and date = '2025-03-06'`;
  // An undeclared day: snapshots but no manifest row.
  await insertSnapshot(sql, { portfolio_id: 'M', security_id: 'CASH_USD', date: '2025-03-08', quantity: 1, market_value: 1, market_value_local: 1 });
  const status = await sql`select date::text, state, has_row from portfolio_timeseries_engine.status('M') where date >= '2025-03-06'`;
  t.same(status.map((r) => [r.date, r.state, r.has_row]), [
    ['2025-03-06', 'queued', true], ['2025-03-07', 'waiting_previous_day', true], ['2025-03-08', 'undeclared', false],
  ]);
  const [partial] = await sql`select * from portfolio_twr('M', '2025-03-03', '2025-03-08')`;
  t.equal(s(partial!.twr), '0.0201', 'the days it has: 0%, +1%, +1%, not the stale rows');
  t.same(partial!.missing_days, ['2025-03-06', '2025-03-07', '2025-03-08']);
  t.equal(partial!.day_count, 3);
  const daily = await sql`select date::text from portfolio_twr_daily('M', '2025-03-03', '2025-03-08')`;
  t.same(daily.map((r) => r.date), ['2025-03-03', '2025-03-04', '2025-03-05']);
  const [m] = await sql`select mwr_period, missing_days from portfolio_mwr('M', '2025-03-03', '2025-03-08')`;
  t.same(m!.missing_days, ['2025-03-06', '2025-03-07', '2025-03-08']);
  // The MWR's ending value is 03-05's EOD, held to the range's end (offset 6).
  t.ok(close(m!.mwr_period, D('0.0201'), '1e-25'), `mwr_period ${m!.mwr_period}`);
  const [r] = await sql`select day_count, missing_days from portfolio_risk('M', '2025-03-03', '2025-03-08')`;
  t.same([r!.day_count, r!.missing_days], [3, ['2025-03-06', '2025-03-07', '2025-03-08']]);
  const cd = await sql`select date::text, is_current from portfolio_timeseries_engine.current_days(array['M'], '2025-03-05', '2025-03-08')`;
  t.same(cd.map((x) => [x.date, x.is_current]), [['2025-03-05', true], ['2025-03-06', false], ['2025-03-07', false], ['2025-03-08', false]]);

  // Once computed, the corrected days count again.
  await runWorkerOnce({ connectionString: db.url });
  const [after] = await sql`select twr, missing_days from portfolio_twr('M', '2025-03-03', '2025-03-07')`;
  t.same(after!.missing_days, []);
  const fixed = await sql`select daily_return from portfolio_twr_daily('M', '2025-03-06', '2025-03-07')`;
  t.ok(close(fixed[0]!.daily_return, D('979.9').div('1020.1'), '1e-29'), 'the corrected day: (2000 - 1020.1) / 1020.1');
  t.ok(close(fixed[1]!.daily_return, D('-959.39599').div(2000), '1e-29'), 'and the next: (1040.60401 - 2000) / 2000');
  // 1.01 x 1.01 x 2000 / 1020.1 x 1040.60401 / 2000 = 1.0201 x 1.0201: the path changed, the end did not.
  t.ok(close(after!.twr, D('0.04060401'), '1e-28'), `twr ${after!.twr}`);
});

t.test('a corrected EOD moves the next day\'s BOD without recomputing it: its stored return follows', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  // A on 03-03 only, B from 03-04: correcting A's value changes 03-04's BOD but none of its
  // positions, so the job updates 03-04's row in place (the cascade's early cutoff).
  await insertPortfolio(sql, 'F', 'USD', '2025-03-03');
  await ensureInstrument(sql, 'A', 'USD');
  await ensureInstrument(sql, 'B', 'USD');
  await portfolioFlow(sql, 'F', '2025-03-03', '1000', 'BOD', 'CASHFLOW_IN');
  await insertSnapshot(sql, { portfolio_id: 'F', security_id: 'A', date: '2025-03-03', quantity: 1, market_value: 1000, market_value_local: 1000 });
  await insertSnapshot(sql, { portfolio_id: 'F', security_id: 'B', date: '2025-03-04', quantity: 1, market_value: 1010, market_value_local: 1010 });
  await declare(sql, 'F', '2025-03-03', 1);
  await declare(sql, 'F', '2025-03-04', 1);
  await runWorkerOnce({ connectionString: db.url });
  const before = await sql`select daily_return from portfolio_twr_daily('F', '2025-03-03', '2025-03-04')`;
  t.same(before.map((r) => s(r.daily_return)), ['0', '0.01']);
  await sql`update daily_position_snapshots set market_value = 990, market_value_local = 990
            where portfolio_id = 'F' and security_id = 'A' and date = '2025-03-03'`;
  await runWorkerOnce({ connectionString: db.url });
  const [job] = await sql`select bod_updates from portfolio_timeseries_engine.portfolio_job where portfolio_id = 'F'`;
  t.equal(Number(job!.bod_updates), 1, '03-04 took the new BOD in place');
  const after = await sql`select daily_return from portfolio_twr_daily('F', '2025-03-03', '2025-03-04')`;
  t.same(after.map((r) => s(r.daily_return)), ['-0.01', D(20).div(990).toDecimalPlaces(30, Decimal.ROUND_HALF_UP).toFixed()],
    '03-04: (1010 - 990) / 990, not the 1% of its old BOD');
  const [book] = await sql`select twr from portfolio_twr_all('2025-03-03', '2025-03-04', 'GROSS', array['F'])`;
  t.ok(close(book!.twr, D('0.01'), '1e-29'), `0.99 x 1010/990 - 1 = 1%: ${book!.twr}`);
});

t.test('a day with no priced position is blocked and missing, never -100%', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await writePortfolio(sql, 'U', [
    { date: '2025-03-03', mv: '1000', bod: '1000' },
    { date: '2025-03-04', mv: '1010' },
  ]);
  await insertSnapshot(sql, { portfolio_id: 'U', security_id: 'CASH_USD', date: '2025-03-05', quantity: 1010,
    market_value: null, market_value_local: null, valuation_status: 'UNVALUED' });
  await declare(sql, 'U', '2025-03-05', 1);
  // A foreign deposit without any FX rate blocks a later day of another portfolio.
  await writePortfolio(sql, 'B', [{ date: '2025-03-03', mv: '500', bod: '500' }]);
  await insertSnapshot(sql, { portfolio_id: 'B', security_id: 'CASH_USD', date: '2025-03-04', quantity: 500, market_value: 500, market_value_local: 500 });
  await portfolioFlow(sql, 'B', '2025-03-04', '100', 'BOD', 'CASHFLOW_IN', 'CHF');
  await declare(sql, 'B', '2025-03-04', 1);
  await runWorkerOnce({ connectionString: db.url });
  const st = await sql`select portfolio_id, date::text, state from portfolio_timeseries_engine.status(null) where state <> 'current'`;
  t.same(st.map((r) => [r.portfolio_id, r.date, r.state]), [['B', '2025-03-04', 'blocked'], ['U', '2025-03-05', 'blocked']]);
  const [u] = await sql`select twr, missing_days::text[] from portfolio_twr('U', '2025-03-03', '2025-03-05')`;
  t.equal(s(u!.twr), '0.01');
  t.same(u!.missing_days, ['2025-03-05']);
  const [b] = await sql`select twr, missing_days::text[] from portfolio_twr('B', '2025-03-03', '2025-03-04')`;
  t.same([s(b!.twr), b!.missing_days], ['0', ['2025-03-04']]);
});

t.test('periods, the open-date clamp and annualisation', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await writePortfolio(sql, 'Y', [
    { date: '2024-01-02', mv: '1000', bod: '1000' },
    { date: '2025-02-05', mv: '1100' },
  ], '2024-01-01');
  await runWorkerOnce({ connectionString: db.url });
  const period = async (p: string, asOf: string) =>
    (await sql`select period_from::text, period_to::text from portfolio_period('Y', ${p}, ${asOf}::date)`).map((r) => [r.period_from, r.period_to])[0];
  t.same(await period('MTD', '2025-02-05'), ['2025-02-01', '2025-02-05']);
  t.same(await period('QTD', '2025-05-17'), ['2025-04-01', '2025-05-17']);
  t.same(await period('YTD', '2025-02-05'), ['2025-01-01', '2025-02-05']);
  t.same(await period('SI', '2025-02-05'), ['2024-01-01', '2025-02-05']);
  t.same(await period('1Y', '2025-02-05'), ['2024-02-06', '2025-02-05']);
  t.same(await period('3Y', '2025-02-05'), ['2022-02-06', '2025-02-05']);
  t.same(await period('5y', '2024-02-29'), ['2019-03-01', '2024-02-29'], '29 Feb minus 5 years is 28 Feb; the day after');
  await t.rejects(sql`select * from portfolio_period('Y', 'WTD', '2025-01-01')`, /period must be one of/);
  await t.rejects(sql`select * from portfolio_period('NOPE', 'SI', '2025-01-01')`, /portfolio NOPE: unknown/);

  // 3Y as of 2025-02-05 starts before the open date: it is clamped to 2024-01-01 (402 days).
  const [y] = await sql`select * from portfolio_twr('Y', '2022-02-06', '2025-02-05')`;
  t.same([y!.range_from, y!.range_to, y!.days, s(y!.twr)], ['2024-01-01', '2025-02-05', 402, '0.1']);
  t.ok(close(y!.twr_annualised, D('1.1').pow(D('365.25').div(402)).minus(1), '1e-28'), 'annualised over 402 days');
  const [exact365] = await sql`select days, twr_annualised from portfolio_twr('Y', '2024-02-07', '2025-02-05')`;
  t.same([exact365!.days, exact365!.twr_annualised], [365, null], 'TWR: only ranges longer than 365 days');
  // MWR: -1000 at offset 1 (2024-01-02), +1100 at the range end (offset 402): 401 days.
  const [m] = await sql`select * from portfolio_mwr('Y', '2024-01-01', '2025-02-05')`;
  t.ok(close(m!.mwr, D('1.1').pow(D(365).div(401)).minus(1), '1e-25'), `mwr ${m!.mwr}`);
  t.equal(s(m!.mwr_annualised), s(m!.mwr), 'a range of at least 365 days: annualised = the rate');
  t.equal(m!.mwr_period, null);
  const [m365] = await sql`select days, mwr, mwr_annualised from portfolio_mwr('Y', '2024-02-07', '2025-02-05')`;
  t.same([m365!.days, s(m365!.mwr_annualised)], [365, s(m365!.mwr)], 'MWR: at least 365 days');

  await t.rejects(sql`select * from portfolio_twr('NOPE', '2025-01-01', '2025-01-31')`, /portfolio NOPE: unknown/);
  await t.rejects(sql`select * from portfolio_twr('Y', '2023-01-01', '2023-12-31')`, /opened on 2024-01-01, after the range ends/);
  await t.rejects(sql`select * from portfolio_twr('Y', '2025-01-02', '2025-01-01')`, /from 2025-01-02 is after to 2025-01-01/);
  await t.rejects(sql`select * from portfolio_twr('Y', '2025-01-01', '2025-01-31', 'gross')`, /basis must be GROSS or NET/);
  await t.rejects(sql`select * from portfolio_risk('Y', '2025-01-01', '2025-01-31', 'GROSS', -1)`, /risk-free rate must be a number above -1/);
  const [none] = await sql`select * from portfolio_twr('Y', '2024-06-01', '2024-06-30')`;
  t.same([none!.twr, none!.day_count, none!.missing_days], [null, 0, []], 'no usable day: no TWR (not 0)');
  const [nm] = await sql`select mwr, reason from portfolio_mwr('Y', '2024-06-01', '2024-06-30')`;
  t.same([nm!.mwr, nm!.reason], [null, 'no usable day in the range']);
});

t.test('position returns: flows turned to the position side (a BUY adds to it)', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'P', 'USD', '2025-07-01');
  await ensureInstrument(sql, 'STOCK', 'EUR');
  await ensureInstrument(sql, 'CASH_USD', 'USD');
  await insertFx(sql, 'EUR', 'USD', '2025-07-01', '1.1');
  const flow = (date: string, amount: string, classification: string, timing: string) => insertCashflow(sql, {
    transaction_id: nextId(), portfolio_id: 'P', security_id: 'STOCK', cashflow_date: date, amount, currency: 'EUR',
    classification, timing, is_position_flow: true, is_portfolio_flow: false,
  });
  await flow('2025-07-28', '-5000', 'INVESTMENT_OUTFLOW', 'BOD'); // BUY
  await flow('2025-07-29', '52', 'INCOME', 'EOD');                // DIVIDEND
  await flow('2025-07-30', '5610', 'INVESTMENT_INFLOW', 'EOD');    // SELL everything
  const stock = [['2025-07-28', '5200'], ['2025-07-29', '5500'], ['2025-07-30', '0']] as const;
  for (const [date, local] of stock) {
    await insertSnapshot(sql, { portfolio_id: 'P', security_id: 'STOCK', date, quantity: local === '0' ? 0 : 100, market_value: D(local).times('1.1').toFixed(), market_value_local: local });
    await insertSnapshot(sql, { portfolio_id: 'P', security_id: 'CASH_USD', date, quantity: 1, market_value: 1, market_value_local: 1 });
    await declare(sql, 'P', date, 2);
  }
  await insertSnapshot(sql, { portfolio_id: 'P', security_id: 'CASH_USD', date: '2025-07-31', quantity: 1, market_value: 1, market_value_local: 1 });
  await declare(sql, 'P', '2025-07-31', 1);
  await runWorkerOnce({ connectionString: db.url });

  const daily = await sql`select date::text, daily_return, cumulative_return from position_twr_daily('P', 'STOCK', '2025-07-01', '2025-07-31')`;
  const r2 = D(352).div(5200); // (5500 - 5200 + 52) / 5200: the dividend is income of the position
  t.same(daily.map((r) => r.date), ['2025-07-28', '2025-07-29', '2025-07-30'], 'only the days the position is held');
  t.equal(s(daily[0]!.daily_return), '0.04', '(5200 - 0 - 5000) / (0 + 5000): the BUY is money into the position');
  t.ok(close(daily[1]!.daily_return, r2, '1e-29'));
  t.equal(s(daily[2]!.daily_return), '0.02', '(0 - 5500 + 5610) / 5500: the SELL is money out of it');
  const expected = D('1.04').times(r2.plus(1)).times('1.02').minus(1);
  t.ok(close(daily[2]!.cumulative_return, expected, '1e-28'));
  const [sum] = await sql`select * from position_twr('P', 'STOCK', '2025-07-01', '2025-07-31')`;
  t.ok(close(sum!.twr, expected, '1e-28'));
  t.same([sum!.days, sum!.day_count, sum!.missing_days], [31, 3, []]);

  // The model's position formula on the engine's rows agrees.
  const prow = await sql<Record<string, Decimal | string>[]>`
    select date::text, bod_market_value, bod_cashflow_position, eod_cashflow_position, eod_market_value
    from position_timeseries where portfolio_id = 'P' and security_id = 'STOCK' order by date`;
  const m = model.chain(prow.map((r) => ({ date: r.date as string, ...model.positionDailyReturn({
    date: r.date as string, bod: r.bod_market_value as Decimal, bodCfPosition: r.bod_cashflow_position as Decimal,
    eodCfPosition: r.eod_cashflow_position as Decimal, eod: r.eod_market_value as Decimal }) })));
  t.ok(close(sum!.twr, m[m.length - 1]!.cumulative), 'model agrees');

  // A pending correction makes the position's day missing too.
  await sql`update daily_position_snapshots set market_value_local = 5600, market_value = 6160
            where portfolio_id = 'P' and security_id = 'STOCK' and date = '2025-07-29'`;
  const [stale] = await sql`select day_count, missing_days::text[] from position_twr('P', 'STOCK', '2025-07-01', '2025-07-31')`;
  // Every declared day from the corrected one on leaves current until the job has run (a pending
  // change at 07-29 may move any later BOD): 07-31 is missing too.
  t.same([stale!.day_count, stale!.missing_days], [1, ['2025-07-29', '2025-07-30', '2025-07-31']]);
});

t.test('XIRR solver: brackets, both sides, extremes, no answer', async (t) => {
  const { sql } = await freshDatabase(t);
  const x = async (a: (string | number)[], k: number[]) => {
    const [r] = await sql`select rate, reason from portfolio_xirr(${a.map(String)}::numeric[], ${k}::int[])`;
    return r!;
  };
  t.equal(s((await x([-100, 110], [0, 365])).rate), '0.1');
  t.equal(s((await x([-100, 121], [0, 730])).rate), '0.1', 'two years');
  t.equal(s((await x([-100, 0, 0, 110], [10, 20, 30, 375])).rate), '0.1', 'zero amounts and an offset start change nothing');
  t.equal(s((await x([-100, 40, 70], [0, 365, 365])).rate), '0.1', 'amounts at the same instant are summed');
  t.ok(close((await x([-100, '0.01'], [0, 3650])).rate, D('0.0001').pow(D(1).div(10)).minus(1), '1e-25'), '-99.99% over 10 years');
  const big = await x([-1, 2], [0, 1]);
  t.ok(close(big.rate, D(2).pow(365).minus(1), '1e-25'), 'doubling in a day: 2^365 - 1');
  // Two real rates (10% and 20%): the search from 0% finds the nearer one.
  t.equal(s((await x([-100, 230, -132], [0, 365, 730])).rate), '0.1');
  t.same(await x([-100, 200, -132], [0, 365, 730]), { rate: null,
    reason: 'no rate found: no sign change of the present value for period growth between 10^-30 and 10^30' });
  t.same(await x([100, 50], [0, 10]), { rate: null, reason: 'no sign change in the cash flows' });
  t.same(await x([], []), { rate: null, reason: 'no cash flows' });
  t.same(await x([0, 0], [0, 1]), { rate: null, reason: 'no cash flows' });
  await t.rejects(sql`select * from portfolio_xirr(array[1, 2]::numeric[], array[0]::int[])`, /same length/);
  // Random series against the model's bisection.
  const seed = seedFromEnv();
  t.comment(`SEED=${seed}`);
  const rng = new Rng(seed);
  for (let i = 0; i < 25; i++) {
    const n = rng.int(2, 12);
    const flows = Array.from({ length: n }, (_, j) => ({ day: rng.int(0, 800), amount: rng.money().times(j === 0 ? -1 : rng.chance(0.7) ? 1 : -1) }));
    const r = await x(flows.map((f) => f.amount.toFixed()), flows.map((f) => f.day));
    const m = model.xirr(flows);
    if (m.roots.length <= 1) {
      t.ok(close(r.rate, m.rate), `random ${i}: ${r.rate} vs ${m.rate} (${r.reason ?? ''}/${m.reason ?? ''})`);
    } else {
      // Several roots: the present value may keep its sign at every point the solver's ladder
      // looks at (two roots close together), so it may find none; what it returns must be one of
      // them, and a null must say why.
      t.ok(r.rate === null ? /no rate found/.test(r.reason ?? '') : m.roots.some((root) => close(D(r.rate), root)),
        `random ${i}: ${r.rate} (${r.reason ?? ''}) is one of ${m.roots.join(', ')} or none with a reason`);
    }
  }
});

// ---------- the library and the CLI ----------

t.test('typed readers and the returns command', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await writePortfolio(sql, 'C', [
    { date: '2025-03-03', mv: '1010', bod: '1000' },
    { date: '2025-03-04', mv: '1029.2', fee: '1' },       // GROSS (1029.2 - 1010 + 1) / 1010 = 2%
    { date: '2025-03-05', mv: '1018.908' },               // -1%
  ], '2025-01-01');
  await insertSnapshot(sql, { portfolio_id: 'C', security_id: 'CASH_USD', date: '2025-03-06', quantity: 1, market_value: 1, market_value_local: 1 });
  await runWorkerOnce({ connectionString: db.url });
  const rows = await modelRows(sql, 'C');
  const range = { period: 'MTD' as const, asOf: '2025-03-06' };

  const twr = await readReturns(sql, 'C', range, { basis: 'NET' });
  t.ok(twr.twr instanceof Decimal, 'Decimal, not number');
  const mt = model.twr(rows, 'NET', '2025-03-01', '2025-03-06');
  t.same([twr.from, twr.to, twr.basis, twr.calendarDays, twr.dayCount], ['2025-03-01', '2025-03-06', 'NET', 6, 3]);
  t.ok(close(twr.twr, mt.twr), `twr ${twr.twr} model ${mt.twr}`);
  t.same(twr.missingDays, ['2025-03-06'], 'the undeclared day');
  t.same(twr.days.map((d) => d.date), ['2025-03-03', '2025-03-04', '2025-03-05']);
  t.ok(twr.days.every((d, i) => close(d.cumulativeReturn, mt.daily[i]!.cumulative)));
  const mwr = await readMoneyWeightedReturn(sql, 'C', range, { basis: 'NET' });
  const mm = model.mwr(rows, 'NET', '2025-03-01', '2025-03-06');
  t.ok(close(mwr.mwr, mm.mwr) && close(mwr.mwrPeriod, mm.mwrPeriod), `mwr ${mwr.mwr}`);
  t.equal(mwr.mwrAnnualised, null);
  const risk = await readRisk(sql, 'C', { from: '2025-03-01', to: '2025-03-06' }, { basis: 'NET', riskFreeRate: '0.02' });
  const mr = model.risk(mt.daily, D('0.02'));
  t.ok(close(risk.volatility, mr.volatility) && close(risk.sharpe, mr.sharpe) && close(risk.sortino, mr.sortino), 'risk = model');
  t.same([s(risk.maxDrawdown), risk.drawdownPeak, risk.drawdownTrough], [s(mr.maxDrawdown), mr.drawdownPeak, mr.drawdownTrough]);
  const pos = await readPositionReturns(sql, 'C', 'CASH_USD', { from: '2025-03-03', to: '2025-03-05' });
  t.same([pos.securityId, pos.dayCount, pos.zeroBaseDays], ['CASH_USD', 3, ['2025-03-03']]);
  // Inside a caller's transaction, the readers use its snapshot.
  const inTx = await sql.begin((txn) => readReturns(txn, 'C', range, { basis: 'NET' }));
  t.equal(s(inTx.twr), s(twr.twr));

  const env = { DATABASE_URL: db.url };
  const r = cli(['returns', '--portfolio', 'C', '--period', 'MTD', '--as-of', '2025-03-06', '--basis', 'NET', '--risk-free', '0.02', '--json'], env);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  t.same(Object.keys(out), ['portfolio_id', 'from', 'to', 'basis', 'twr', 'twr_annualised', 'mwr', 'mwr_annualised',
    'mwr_period', 'volatility', 'max_drawdown', 'drawdown_peak', 'drawdown_trough', 'sharpe', 'sortino', 'missing_days', 'days']);
  t.same(out, {
    portfolio_id: 'C', from: '2025-03-01', to: '2025-03-06', basis: 'NET',
    twr: s(twr.twr), twr_annualised: null, mwr: s(mwr.mwr), mwr_annualised: null, mwr_period: s(mwr.mwrPeriod),
    volatility: s(risk.volatility), max_drawdown: s(risk.maxDrawdown), drawdown_peak: risk.drawdownPeak,
    drawdown_trough: risk.drawdownTrough, sharpe: s(risk.sharpe), sortino: s(risk.sortino),
    missing_days: ['2025-03-06'],
    days: twr.days.map((d) => ({ date: d.date, daily_return: s(d.dailyReturn), cumulative_return: s(d.cumulativeReturn) })),
  });
  t.match(out.twr as string, /^-?\d+(\.\d+)?$/, 'a plain decimal string');

  const human = cli(['returns', '--portfolio', 'C', '--from', '2025-03-03', '--to', '2025-03-05'], env);
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, /portfolio C: 2025-03-03 to 2025-03-05 \(3 calendar days, 3 with data\), basis GROSS/);
  t.match(human.stdout, /TWR\s+1\.989800%/, 'GROSS TWR 1.9898%');
  t.match(human.stdout, /missing days \(not current\): none/);
  t.match(human.stdout, /2025-03-05\s+-1\.000000%\s+1\.989800%/);

  const noMwr = cli(['returns', '--portfolio', 'C', '--from', '2025-03-05', '--to', '2025-03-05', '--json'], env);
  t.equal(noMwr.code, 0, noMwr.stderr);
  // One day still has two instants: -1029.2 at its start, +1018.908 at its end.
  t.ok(close(D((JSON.parse(noMwr.stdout) as Record<string, string>).mwr_period!), D('-0.01'), '1e-25'), 'a one-day MWR is the day\'s return');
  t.equal(cli(['returns', '--help'], {}).code, 0);
  t.match(cli(['returns', '--help'], {}).stdout, /--period MTD\|QTD\|YTD\|SI\|1Y\|3Y\|5Y --as-of/);
  for (const [args, message] of [
    [['--portfolio', 'C'], /a range is required/],
    [['--portfolio', 'C', '--from', '2025-03-01'], /--from and --to go together/],
    [['--portfolio', 'C', '--from', '2025-03-01', '--to', '2025-03-02', '--period', 'YTD', '--as-of', '2025-03-02'], /not both/],
    [['--portfolio', 'C', '--period', 'WTD', '--as-of', '2025-03-02'], /--period must be one of/],
    [['--portfolio', 'C', '--from', '2025-02-30', '--to', '2025-03-02'], /--from must be a date/],
    [['--portfolio', 'C', '--from', '2025-03-01', '--to', '2025-03-02', '--basis', 'TOTAL'], /--basis must be GROSS or NET/],
    [['--portfolio', 'C', '--from', '2025-03-01', '--to', '2025-03-02', '--risk-free', '3%'], /--risk-free must be/],
    [['--portfolio', 'C', '--frm', '2025-03-01'], /Unknown option '--frm'/],
  ] as const) {
    const u = cli(['returns', ...args], env);
    t.equal(u.code, 2, `usage error: ${args.join(' ')}`);
    t.match(u.stderr, message);
  }
  const unknown = cli(['returns', '--portfolio', 'NOPE', '--period', 'YTD', '--as-of', '2025-03-06'], env);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /portfolio NOPE: unknown/);
  t.match(cli(['--help'], {}).stdout, /returns --portfolio P/, 'listed in the main usage');
});

t.test('every read-side function pins its search_path', async (t) => {
  const { sql } = await freshDatabase(t);
  const fns = await sql<{ name: string; pinned: boolean }[]>`
    select p.oid::regprocedure::text as name,
           exists (select 1 from unnest(p.proconfig) c where c like 'search_path=%') as pinned
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public' and (p.proname like 'portfolio\\_%' or p.proname like 'position\\_%') and p.prokind = 'f'
    order by 1`;
  t.same(fns.map((f) => f.name), [
    'portfolio_daily_returns(text[],date,date,text)', 'portfolio_drawdown(date[],numeric[])', 'portfolio_mwr(text,date,date,text)',
    'portfolio_period(text,text,date)', 'portfolio_range(text,date,date)', 'portfolio_rate_from_factor(numeric)', 'portfolio_risk(text,date,date,text,numeric)',
    'portfolio_twr(text,date,date,text)', 'portfolio_twr_all(date,date,text,text[])', 'portfolio_twr_daily(text,date,date,text)',
    'portfolio_wealth_end(numeric[])', 'portfolio_wealth_path(numeric[])', 'portfolio_wealth_step(numeric,numeric)', 'portfolio_xirr(numeric[],integer[])', 'portfolio_xirr_npv(numeric[],integer[],numeric)',
    'position_daily_returns(text,text,date,date)', 'position_twr(text,text,date,date)', 'position_twr_daily(text,text,date,date)',
  ], 'the read side, as documented (the aggregate portfolio_wealth cannot pin a search_path; its step function does)');
  t.same(fns.filter((f) => !f.pinned).map((f) => f.name), []);
  const [cd] = await sql<{ pinned: boolean }[]>`
    select exists (select 1 from unnest(p.proconfig) c where c like 'search_path=%') as pinned
    from pg_proc p where p.oid = 'portfolio_timeseries_engine.current_days(text[], date, date)'::regprocedure`;
  t.equal(cd!.pinned, true, 'current_days too');
});

t.test('the wealth index: the array functions and the aggregate agree day for day, and with the model', async (t) => {
  const seed = seedFromEnv();
  t.comment(`SEED=${seed}`);
  const rng = new Rng(seed);
  const { sql } = await freshDatabase(t);
  for (let k = 0; k < 20; k++) {
    // Returns of 30 decimals in (-1, 1), as the job stores them; sometimes exactly 0 or -1.
    const returns = Array.from({ length: rng.int(1, 300) }, () =>
      rng.chance(0.05) ? D(rng.chance(0.5) ? 0 : -1) : rng.decimal(1, 30).times(rng.chance(0.5) ? 1 : -1).div(2).toDecimalPlaces(30));
    const text = `{${returns.map((r) => r.toFixed()).join(',')}}`;
    const [row] = await sql<{ path: Decimal[]; end: Decimal; agg: Decimal[] }[]>`
      select portfolio_wealth_path(${text}::numeric[]) as path, portfolio_wealth_end(${text}::numeric[]) as "end",
             (select array_agg(w order by i) from (
                select u.i, portfolio_wealth(u.r) over (order by u.i) as w
                from unnest(${text}::numeric[]) with ordinality u(r, i)) x) as agg`;
    const path = row!.path.map(s);
    t.same(path, row!.agg.map(s), `series ${k} (${returns.length} days): path = the aggregate at every day`);
    t.equal(s(row!.end), path[path.length - 1], `series ${k}: end = the path's last day`);
    // The methodology's rounding, step by step: 30 places, half away from zero (with enough
    // significant digits for a wealth of up to 1.5^300 carried to 30 places).
    const Exact = Decimal.clone({ precision: 200 });
    let w = new Exact(1);
    const expected = returns.map((r) => (w = w.times(new Exact(r.toFixed()).plus(1)).toDecimalPlaces(30, Decimal.ROUND_HALF_UP)).toFixed());
    t.same(path, expected, `series ${k}: each day rounded to 30 places`);
  }
  const [empty] = await sql`select portfolio_wealth_path('{}') as path, portfolio_wealth_end('{}') as "end"`;
  t.same([empty!.path, s(empty!.end)], [[], '1'], 'no day: wealth 1');
  await t.rejects(sql`select portfolio_wealth_end('{0.1,NULL}')`, /a return of 2 is NULL/, 'a NULL return is an error, not a NULL index');
  await t.rejects(sql`select portfolio_wealth_path('{0.1,NULL}')`, /return 2 of 2 is NULL/);
});

t.test('portfolio_drawdown: the lowest ratio to the running peak, its earliest trough and the latest peak before it', async (t) => {
  const { sql } = await freshDatabase(t);
  const dd = async (wealth: string[]) => {
    const dates = wealth.map((_, i) => `2025-03-${String(i + 3).padStart(2, '0')}`);
    const [r] = await sql`select max_drawdown, peak_date, trough_date
                          from portfolio_drawdown(${dates}::date[], ${wealth}::numeric[])`;
    return [s(r!.max_drawdown), r!.peak_date, r!.trough_date];
  };
  t.same(await dd([]), ['0', null, null], 'no day');
  t.same(await dd(['1', '1.1', '1.2']), ['0', null, null], 'always at the peak: no drawdown');
  t.same(await dd(['0.9', '0.8', '1.1']), ['-0.2', null, '2025-03-04'], 'below the starting wealth: the peak is the start (NULL)');
  // 1.2 on 03-04 and again on 03-06: the peak before the trough is the latest day at it; the
  // trough of -25% first on 03-05, again on 03-07: the earliest.
  t.same(await dd(['1.1', '1.2', '0.9', '1.2', '0.9', '1']), ['-0.25', '2025-03-04', '2025-03-05'], 'ties');
  t.same(await dd(['2', '1', '3', '1']), ['-0.666666666666666666666666666667', '2025-03-05', '2025-03-06'],
    'the deepest ratio, not the deepest fall from the first peak; 30 places, half away from zero');
  await t.rejects(sql`select * from portfolio_drawdown('{2025-03-03}'::date[], '{1,2}'::numeric[])`, /1 dates but 2 wealth values/);
});

// ---------- random series against the model ----------

t.test('random series: TWR, MWR, risk and the book-wide TWR agree with the model to 1e-12', async (t) => {
  const seed = seedFromEnv();
  t.comment(`SEED=${seed}`);
  const rng = new Rng(seed);
  const db = await freshDatabase(t);
  const { sql } = db;
  const portfolios: string[] = [];
  const addDays = (date: string, n: number) => new Date(Date.parse(`${date}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
  for (let p = 0; p < 6; p++) {
    const id = `R${p}`;
    portfolios.push(id);
    const n = rng.int(20, 70);
    const days: DayInput[] = [];
    let date = addDays('2024-01-01', rng.int(0, 20));
    let mv = rng.money().plus(1);
    for (let i = 0; i < n; i++) {
      const d: DayInput = { date, mv: '' };
      if (i === 0 || rng.chance(0.15)) d.bod = rng.money().times(rng.chance(0.8) ? 1 : -0.2).toDecimalPlaces(10).toFixed();
      if (rng.chance(0.1)) d.eod = rng.money().times(rng.chance(0.5) ? 1 : -0.3).toDecimalPlaces(10).toFixed();
      if (rng.chance(0.2)) d.fee = rng.decimal(100, rng.int(0, 10)).toFixed();
      // A daily move of -5%..+5% on what was there plus the flows, sometimes a wipe-out to 0.
      const base = mv.plus(d.bod ?? 0).plus(d.eod ?? 0).minus(d.fee ?? 0);
      mv = rng.chance(0.01) ? D(0) : base.times(D(rng.int(-500, 500)).div(10000).plus(1)).toDecimalPlaces(10);
      d.mv = mv.toFixed();
      days.push(d);
      date = addDays(date, rng.chance(0.2) ? rng.int(2, 20) : 1);
    }
    await writePortfolio(sql, id, days, addDays(days[0]!.date, -rng.int(0, 3)));
  }
  await runWorkerOnce({ connectionString: db.url });
  const from = '2024-01-01';
  const to = '2025-12-31';
  let checked = 0;
  for (const p of portfolios) {
    const all = await modelRows(sql, p);
    const [o] = await sql<{ open: string }[]>`select open_date::text as open from portfolios where portfolio_id = ${p}`;
    const open = o!.open;
    // The whole history and a random sub-range, both bases.
    const a = rng.int(0, all.length - 1);
    const b = rng.int(a, all.length - 1);
    for (const [rf, rt] of [[from, to], [all[a]!.date, all[b]!.date]] as const) {
      const effFrom = rf < open ? open : rf;
      const rows = all.filter((r) => r.date >= effFrom && r.date <= rt);
      for (const basis of ['GROSS', 'NET'] as const) {
        const label = `${p} ${effFrom}..${rt} ${basis}`;
        const m = model.twr(rows, basis, effFrom, rt);
        const [sum] = await sql`select * from portfolio_twr(${p}, ${rf}::date, ${rt}::date, ${basis})`;
        t.equal(sum!.days, m.days, `${label}: days`);
        t.ok(close(sum!.twr, m.twr), `${label}: twr ${sum!.twr} vs ${m.twr}`);
        t.ok(close(sum!.twr_annualised, m.twrAnnualised), `${label}: annualised ${sum!.twr_annualised} vs ${m.twrAnnualised}`);
        t.same(sum!.zero_base_days, m.zeroBaseDays, `${label}: zero-base days`);
        const daily = await sql`select * from portfolio_twr_daily(${p}, ${rf}::date, ${rt}::date, ${basis})`;
        t.equal(daily.length, m.daily.length);
        t.ok(daily.every((d, i) => close(d.daily_return, m.daily[i]!.r) && close(d.cumulative_return, m.daily[i]!.cumulative)),
          `${label}: every day`);
        const [mw] = await sql`select * from portfolio_mwr(${p}, ${rf}::date, ${rt}::date, ${basis})`;
        const mm = model.mwr(rows, basis, effFrom, rt);
        if (mm.roots.length <= 1) {
          t.ok(close(mw!.mwr, mm.mwr) && close(mw!.mwr_period, mm.mwrPeriod) && close(mw!.mwr_annualised, mm.mwrAnnualised),
            `${label}: mwr ${mw!.mwr} vs ${mm.mwr} (${mw!.reason ?? ''}/${mm.reason ?? ''})`);
        } else {
          t.ok(mw!.mwr === null ? /no rate found/.test(mw!.reason ?? '') : mm.roots.some((root) => close(D(mw!.mwr), root)),
            `${label}: mwr ${mw!.mwr} (${mw!.reason ?? ''}) is one of ${mm.roots.join(', ')} or none with a reason`);
        }
        const R = rng.chance(0.5) ? D(0) : rng.decimal(1, 6).div(10);
        const [rk] = await sql`select * from portfolio_risk(${p}, ${rf}::date, ${rt}::date, ${basis}, ${R.toFixed()}::numeric)`;
        const mr = model.risk(m.daily, R);
        t.ok(close(rk!.volatility, mr.volatility) && close(rk!.sharpe, mr.sharpe) && close(rk!.sortino, mr.sortino)
          && close(rk!.max_drawdown, mr.maxDrawdown), `${label}: risk`);
        t.same([rk!.drawdown_peak, rk!.drawdown_trough], [mr.drawdownPeak, mr.drawdownTrough], `${label}: drawdown dates`);
        checked++;
      }
    }
  }
  t.equal(checked, portfolios.length * 4);

  // Corrections: a day's new EOD gives the next declared day a new BOD without recomputing it
  // (the cascade's early cutoff); the returns stored with both rows follow them.
  for (const p of portfolios) {
    const all = await modelRows(sql, p);
    for (const k of [rng.int(0, all.length - 2), rng.int(0, all.length - 2)]) {
      await sql`update daily_position_snapshots set market_value = market_value * 1.5 + 7, market_value_local = market_value_local * 1.5 + 7
                where portfolio_id = ${p} and date = ${all[k]!.date}::date`;
    }
  }
  await runWorkerOnce({ connectionString: db.url });
  for (const p of portfolios) {
    const rows = await modelRows(sql, p);
    for (const basis of ['GROSS', 'NET'] as const) {
      const m = model.twr(rows, basis, rows[0]!.date, rows[rows.length - 1]!.date);
      const daily = await sql`select * from portfolio_twr_daily(${p}, ${from}::date, ${to}::date, ${basis})`;
      t.ok(daily.length === m.daily.length && daily.every((d, i) => close(d.daily_return, m.daily[i]!.r) && close(d.cumulative_return, m.daily[i]!.cumulative)),
        `${p} ${basis} after corrections: every day's stored return is its row's`);
    }
  }
  // The book-wide call gives every portfolio's summary in one statement, equal to the one-by-one calls.
  const book = await sql`select * from portfolio_twr_all('2024-02-01', '2024-12-31', 'NET')`;
  t.same(book.map((r) => r.portfolio_id), portfolios);
  for (const row of book) {
    const [one] = await sql`select * from portfolio_twr(${row.portfolio_id}, '2024-02-01', '2024-12-31', 'NET')`;
    t.same({ ...row, twr: s(row.twr), twr_annualised: s(row.twr_annualised) },
      { ...one, twr: s(one!.twr), twr_annualised: s(one!.twr_annualised) }, `${row.portfolio_id}: book-wide = one by one`);
  }
});
