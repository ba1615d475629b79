// Design section 3, "Blocked, with a reason": every reason blocks the day with a detail naming the
// missing or bad item, leaves no portfolio row, and the day resumes by itself (through the worker)
// once the missing or corrected data arrives. Also section 5's other not-current states:
// waiting_previous_day, waiting (`k of n`) and undeclared.
import t from 'tap';
import { freshDatabase, type TestDatabase } from './helpers/db.js';
import { normalise, prow, posrow } from './helpers/assert.js';
import {
  declare, insertCashflow, insertFx, insertInstrument, insertPortfolio, insertSnapshot, portfolioRows, positionRows,
} from './helpers/fixtures.js';
import { readStatus } from '../src/status.js';
import { runWorkerOnce } from '../src/worker.js';
import type { Sql } from '../src/db.js';
import type { DayStatus } from '../src/types.js';

type Tap = Pick<typeof t, 'equal' | 'match' | 'notMatch'>;

async function dayStatus(sql: Sql, portfolioId: string, date: string): Promise<DayStatus | undefined> {
  const rows = await readStatus(sql, { portfolioId });
  return rows.find((r) => r.date === date);
}

const work = (db: TestDatabase) => runWorkerOnce({ connectionString: db.url });



/** The day is blocked, its detail matches every pattern, and it has no row (status and table agree). */
async function expectBlocked(t: Tap, sql: Sql, portfolioId: string, date: string, patterns: RegExp[], not: RegExp[] = []) {
  const st = await dayStatus(sql, portfolioId, date);
  t.equal(st?.state, 'blocked', `${portfolioId} ${date} is blocked (detail: ${st?.detail})`);
  for (const p of patterns) t.match(st?.detail ?? '', p, `detail names ${p}`);
  for (const p of not) t.notMatch(st?.detail ?? '', p, `detail no longer names ${p}`);
  t.equal(st?.has_row, false, 'has_row false');
  const rows = (await portfolioRows(sql, portfolioId)).filter((r) => r.date === date);
  t.equal(rows.length, 0, 'no portfolio row');
}

async function expectCurrent(t: Tap, sql: Sql, portfolioId: string, date: string) {
  const st = await dayStatus(sql, portfolioId, date);
  t.equal(st?.state, 'current', `${portfolioId} ${date} is current (detail: ${st?.detail})`);
  t.equal(st?.has_row, true, 'has_row true');
}

t.test('missing FX rate for a position instrument currency', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PFX', 'USD');
  await insertInstrument(sql, 'SAP', 'EUR');
  await insertSnapshot(sql, { portfolio_id: 'PFX', security_id: 'SAP', date: '2025-09-10', quantity: 10,
    cost_basis_local: 900, cost_basis: 990, market_value_local: 1000, market_value: 1100 });
  await insertCashflow(sql, { transaction_id: 'DIV1', portfolio_id: 'PFX', security_id: 'SAP', cashflow_date: '2025-09-10',
    amount: 20, currency: 'EUR', classification: 'INCOME', timing: 'EOD', is_position_flow: true, is_portfolio_flow: true });
  await insertCashflow(sql, { transaction_id: 'FEE1', portfolio_id: 'PFX', security_id: 'SAP', cashflow_date: '2025-09-10',
    amount: -5, currency: 'EUR', classification: 'EXPENSE', timing: 'EOD', is_position_flow: true, is_portfolio_flow: true });
  await declare(sql, 'PFX', '2025-09-10', 1);
  await work(db);
  await expectBlocked(t, sql, 'PFX', '2025-09-10', [/EUR\W{0,4}USD/, /2025-09-10/]);

  // A rate dated after the day is not "on or before" it: still blocked.
  await insertFx(sql, 'EUR', 'USD', '2025-09-11', '1.2');
  await work(db);
  await expectBlocked(t, sql, 'PFX', '2025-09-10', [/EUR\W{0,4}USD/, /2025-09-10/]);

  await insertFx(sql, 'EUR', 'USD', '2025-09-09', '1.1');
  await work(db);
  await expectCurrent(t, sql, 'PFX', '2025-09-10');
  t.strictSame((await portfolioRows(sql, 'PFX')).map(normalise), [
    prow('2025-09-10', { eod_cashflow: '16.5', eod_market_value: '1100', fees: '5.5' }),
  ]);
  t.strictSame((await positionRows(sql, 'PFX')).map(normalise), [
    posrow('SAP', '2025-09-10', { eod_cashflow_position: '15', eod_cashflow_portfolio: '15', eod_market_value: '1000',
      fees: '5', quantity: '10', cost: '90' }),
  ]);
});

t.test('missing FX rate for a NULL-security portfolio flow currency (even for a zero amount)', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PNS', 'USD');
  await insertInstrument(sql, 'CASH_USD', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'PNS', security_id: 'CASH_USD', date: '2025-09-10', quantity: 5000,
    cost_basis_local: 5000, market_value_local: 5000, market_value: 5000 });
  await insertCashflow(sql, { transaction_id: 'DEP1', portfolio_id: 'PNS', security_id: null, cashflow_date: '2025-09-10',
    amount: 1000, currency: 'GBP', classification: 'CASHFLOW_IN', timing: 'BOD', is_position_flow: false, is_portfolio_flow: true });
  await insertCashflow(sql, { transaction_id: 'ADJ1', portfolio_id: 'PNS', security_id: null, cashflow_date: '2025-09-10',
    amount: 0, currency: 'CHF', classification: 'CASHFLOW_OUT', timing: 'EOD', is_position_flow: false, is_portfolio_flow: true });
  // Not a portfolio flow: counts nowhere, so needs no rate.
  await insertCashflow(sql, { transaction_id: 'NP1', portfolio_id: 'PNS', security_id: null, cashflow_date: '2025-09-10',
    amount: 100, currency: 'JPY', classification: 'CASHFLOW_IN', timing: 'BOD', is_position_flow: false, is_portfolio_flow: false });
  await declare(sql, 'PNS', '2025-09-10', 1);
  await work(db);
  await expectBlocked(t, sql, 'PNS', '2025-09-10', [/GBP\W{0,4}USD/, /CHF\W{0,4}USD/, /2025-09-10/], [/JPY/]);

  await insertFx(sql, 'GBP', 'USD', '2025-09-01', '1.25');
  await work(db);
  await expectBlocked(t, sql, 'PNS', '2025-09-10', [/CHF\W{0,4}USD/, /2025-09-10/], [/GBP/, /JPY/]);

  await insertFx(sql, 'CHF', 'USD', '2025-09-10', '1.13');
  await work(db);
  await expectCurrent(t, sql, 'PNS', '2025-09-10');
  t.strictSame((await portfolioRows(sql, 'PNS')).map(normalise), [
    prow('2025-09-10', { bod_cashflow: '1250', eod_market_value: '5000' }),
  ]);
});

t.test('unvalued own snapshot: valuation_status FAILED', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PUF', 'USD');
  await insertInstrument(sql, 'MSFT', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'PUF', security_id: 'MSFT', date: '2025-09-01', quantity: 10,
    cost_basis_local: 1000, market_value_local: 1000, market_value: 1000 });
  await insertSnapshot(sql, { portfolio_id: 'PUF', security_id: 'MSFT', date: '2025-09-02', quantity: 10,
    cost_basis_local: 1000, market_value_local: 1100, market_value: 1100, valuation_status: 'FAILED' });
  await declare(sql, 'PUF', '2025-09-01', 1);
  await declare(sql, 'PUF', '2025-09-02', 1);
  await work(db);
  await expectCurrent(t, sql, 'PUF', '2025-09-01');
  await expectBlocked(t, sql, 'PUF', '2025-09-02', [/MSFT/, /2025-09-02/, /FAILED/]);

  await sql`update daily_position_snapshots
            set valuation_status = 'VALUED_CURRENT', market_value = 1150, market_value_local = 1150
            where portfolio_id = 'PUF' and security_id = 'MSFT' and date = '2025-09-02'`;
  await work(db);
  await expectCurrent(t, sql, 'PUF', '2025-09-02');
  t.strictSame((await portfolioRows(sql, 'PUF')).map(normalise), [
    prow('2025-09-01', { eod_market_value: '1000' }),
    prow('2025-09-02', { bod_market_value: '1000', eod_market_value: '1150' }),
  ]);
  t.strictSame((await positionRows(sql, 'PUF')).map(normalise), [
    posrow('MSFT', '2025-09-01', { eod_market_value: '1000', quantity: '10', cost: '100' }),
    posrow('MSFT', '2025-09-02', { bod_market_value: '1000', eod_market_value: '1150', quantity: '10', cost: '100' }),
  ]);
});

t.test('unvalued own snapshot: market_value_local NULL', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PUL', 'USD');
  await insertInstrument(sql, 'MSFT', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'PUL', security_id: 'MSFT', date: '2025-09-01', quantity: 10,
    cost_basis_local: 1000, market_value_local: 1000, market_value: 1000 });
  await insertSnapshot(sql, { portfolio_id: 'PUL', security_id: 'MSFT', date: '2025-09-02', quantity: 10,
    cost_basis_local: 1000, market_value_local: null, market_value: 1100, valuation_status: 'VALUED_CURRENT' });
  await declare(sql, 'PUL', '2025-09-01', 1);
  await declare(sql, 'PUL', '2025-09-02', 1);
  await work(db);
  await expectCurrent(t, sql, 'PUL', '2025-09-01');
  await expectBlocked(t, sql, 'PUL', '2025-09-02', [/MSFT/, /2025-09-02/, /market_value_local/]);

  await sql`update daily_position_snapshots set market_value_local = 1100
            where portfolio_id = 'PUL' and security_id = 'MSFT' and date = '2025-09-02'`;
  await work(db);
  await expectCurrent(t, sql, 'PUL', '2025-09-02');
  t.strictSame((await portfolioRows(sql, 'PUL')).map(normalise), [
    prow('2025-09-01', { eod_market_value: '1000' }),
    prow('2025-09-02', { bod_market_value: '1000', eod_market_value: '1100' }),
  ]);
});

t.test('unvalued BOD-source snapshot on an undeclared previous day', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PBOD', 'USD');
  await insertInstrument(sql, 'NVDA', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'PBOD', security_id: 'NVDA', date: '2025-09-01', quantity: 10,
    cost_basis_local: 900, market_value_local: null, market_value: null, valuation_status: 'UNVALUED' });
  await insertSnapshot(sql, { portfolio_id: 'PBOD', security_id: 'NVDA', date: '2025-09-02', quantity: 10,
    cost_basis_local: 900, market_value_local: 1100, market_value: 1100 });
  await declare(sql, 'PBOD', '2025-09-02', 1);
  await work(db);
  const d1 = await dayStatus(sql, 'PBOD', '2025-09-01');
  t.equal(d1?.state, 'undeclared', 'the BOD-source day is undeclared');
  t.equal(d1?.has_row, false);
  await expectBlocked(t, sql, 'PBOD', '2025-09-02', [/NVDA/, /2025-09-01/, /UNVALUED/]);

  await sql`update daily_position_snapshots
            set valuation_status = 'VALUED_CURRENT', market_value = 1000, market_value_local = 1000
            where portfolio_id = 'PBOD' and security_id = 'NVDA' and date = '2025-09-01'`;
  await work(db);
  await expectCurrent(t, sql, 'PBOD', '2025-09-02');
  t.equal((await dayStatus(sql, 'PBOD', '2025-09-01'))?.state, 'undeclared', 'still undeclared, never computed');
  // Stage 2 BOD comes from the previous *declared* day (none: 0); stage 1 BOD from the key's previous snapshot.
  t.strictSame((await portfolioRows(sql, 'PBOD')).map(normalise), [
    prow('2025-09-02', { bod_market_value: '0', eod_market_value: '1100' }),
  ]);
  t.strictSame((await positionRows(sql, 'PBOD')).map(normalise), [
    posrow('NVDA', '2025-09-02', { bod_market_value: '1000', eod_market_value: '1100', quantity: '10', cost: '90' }),
  ]);
});

t.test('unknown instrument', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PUI', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'PUI', security_id: 'MYSTERY', date: '2025-09-10', quantity: 7,
    cost_basis_local: 630, market_value_local: 700, market_value: 700 });
  await declare(sql, 'PUI', '2025-09-10', 1);
  await work(db);
  await expectBlocked(t, sql, 'PUI', '2025-09-10', [/MYSTERY/, /instrument/i]);

  await insertInstrument(sql, 'MYSTERY', 'USD');
  await work(db);
  await expectCurrent(t, sql, 'PUI', '2025-09-10');
  t.strictSame((await portfolioRows(sql, 'PUI')).map(normalise), [prow('2025-09-10', { eod_market_value: '700' })]);
  t.strictSame((await positionRows(sql, 'PUI')).map(normalise), [
    posrow('MYSTERY', '2025-09-10', { eod_market_value: '700', quantity: '7', cost: '90' }),
  ]);
});

t.test('unknown portfolio', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertInstrument(sql, 'KO', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'PGHOST', security_id: 'KO', date: '2025-09-10', quantity: 5,
    cost_basis_local: 250, market_value_local: 300, market_value: 300 });
  await declare(sql, 'PGHOST', '2025-09-10', 1);
  await work(db);
  await expectBlocked(t, sql, 'PGHOST', '2025-09-10', [/PGHOST/, /portfolio/i]);

  await insertPortfolio(sql, 'PGHOST', 'USD');
  await work(db);
  await expectCurrent(t, sql, 'PGHOST', '2025-09-10');
  t.strictSame((await portfolioRows(sql, 'PGHOST')).map(normalise), [prow('2025-09-10', { eod_market_value: '300' })]);
});

t.test('cash-flow currency differs from the instrument currency', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PCC', 'USD');
  await insertInstrument(sql, 'IBM', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'PCC', security_id: 'IBM', date: '2025-09-10', quantity: 10,
    cost_basis_local: 2500, market_value_local: 2000, market_value: 2000 });
  await insertCashflow(sql, { transaction_id: 'T-CUR-1', portfolio_id: 'PCC', security_id: 'IBM', cashflow_date: '2025-09-10',
    amount: -500, currency: 'EUR', classification: 'TRANSFER_OUT', timing: 'BOD', is_position_flow: true, is_portfolio_flow: true });
  await declare(sql, 'PCC', '2025-09-10', 1);
  await work(db);
  await expectBlocked(t, sql, 'PCC', '2025-09-10', [/T-CUR-1/, /EUR/, /IBM/]);

  await sql`update cashflows set currency = 'USD' where transaction_id = 'T-CUR-1'`;
  await work(db);
  await expectCurrent(t, sql, 'PCC', '2025-09-10');
  t.strictSame((await portfolioRows(sql, 'PCC')).map(normalise), [
    prow('2025-09-10', { bod_cashflow: '-500', eod_market_value: '2000' }),
  ]);
  t.strictSame((await positionRows(sql, 'PCC')).map(normalise), [
    posrow('IBM', '2025-09-10', { bod_cashflow_position: '-500', bod_cashflow_portfolio: '-500', eod_market_value: '2000',
      quantity: '10', cost: '250' }),
  ]);
});

t.test('a cash flow naming a security with no position that day', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PNP', 'USD');
  await insertInstrument(sql, 'A', 'USD');
  await insertInstrument(sql, 'Q', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'PNP', security_id: 'A', date: '2025-09-10', quantity: 1,
    cost_basis_local: 1000, market_value_local: 1000, market_value: 1000 });
  await insertCashflow(sql, { transaction_id: 'T-ORPHAN', portfolio_id: 'PNP', security_id: 'Q', cashflow_date: '2025-09-10',
    amount: 250, currency: 'USD', classification: 'INCOME', timing: 'EOD', is_position_flow: true, is_portfolio_flow: true });
  await declare(sql, 'PNP', '2025-09-10', 1);
  await work(db);
  await expectBlocked(t, sql, 'PNP', '2025-09-10', [/T-ORPHAN/, /\bQ\b/, /2025-09-10/]);

  // The producer delivers Q's position and declares it.
  await sql.begin(async (tx) => {
    await insertSnapshot(tx as unknown as Sql, { portfolio_id: 'PNP', security_id: 'Q', date: '2025-09-10', quantity: 5,
      cost_basis_local: 500, market_value_local: 400, market_value: 400 });
    await declare(tx as unknown as Sql, 'PNP', '2025-09-10', 2);
  });
  await work(db);
  await expectCurrent(t, sql, 'PNP', '2025-09-10');
  t.strictSame((await portfolioRows(sql, 'PNP')).map(normalise), [
    prow('2025-09-10', { eod_cashflow: '250', eod_market_value: '1400', position_count: 2 }),
  ]);
  t.strictSame((await positionRows(sql, 'PNP')).map(normalise), [
    posrow('A', '2025-09-10', { eod_market_value: '1000', quantity: '1', cost: '1000' }),
    posrow('Q', '2025-09-10', { eod_cashflow_position: '250', eod_cashflow_portfolio: '250', eod_market_value: '400',
      quantity: '5', cost: '100' }),
  ]);
});

t.test('more positions than declared', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PMORE', 'USD');
  for (const [s, v] of [['A', 100], ['B', 200], ['C', 300]] as const) {
    await insertInstrument(sql, s, 'USD');
    await insertSnapshot(sql, { portfolio_id: 'PMORE', security_id: s, date: '2025-09-10', quantity: 1,
      cost_basis_local: v, market_value_local: v, market_value: v });
  }
  await declare(sql, 'PMORE', '2025-09-10', 2);
  await expectBlocked(t, sql, 'PMORE', '2025-09-10', [/\b3\b/, /\b2\b/]);
  await work(db);
  await expectBlocked(t, sql, 'PMORE', '2025-09-10', [/\b3\b/, /\b2\b/]);

  await declare(sql, 'PMORE', '2025-09-10', 3);
  await work(db);
  await expectCurrent(t, sql, 'PMORE', '2025-09-10');
  t.strictSame((await portfolioRows(sql, 'PMORE')).map(normalise), [
    prow('2025-09-10', { eod_market_value: '600', position_count: 3 }),
  ]);
});

t.test('a blocked day holds the later declared day; both compute after the fix', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PHOLD', 'USD');
  await insertInstrument(sql, 'SIE', 'EUR');
  await insertInstrument(sql, 'CASH', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'PHOLD', security_id: 'SIE', date: '2025-09-01', quantity: 10,
    cost_basis_local: 1000, market_value_local: 1000, market_value: 1100 });
  // Sold on the second day: only USD cash, which needs no rate, so the day itself is computable.
  await insertSnapshot(sql, { portfolio_id: 'PHOLD', security_id: 'CASH', date: '2025-09-02', quantity: 1120,
    cost_basis_local: 1120, market_value_local: 1120, market_value: 1120 });
  await declare(sql, 'PHOLD', '2025-09-01', 1);
  await declare(sql, 'PHOLD', '2025-09-02', 1);
  await work(db);
  await expectBlocked(t, sql, 'PHOLD', '2025-09-01', [/EUR\W{0,4}USD/, /2025-09-01/]);
  const d2 = await dayStatus(sql, 'PHOLD', '2025-09-02');
  t.equal(d2?.state, 'waiting_previous_day');
  t.match(d2?.detail ?? '', /2025-09-01/, 'detail names the blocked date');
  t.equal(d2?.has_row, false);
  t.equal((await portfolioRows(sql, 'PHOLD')).length, 0, 'no portfolio rows at all');

  await insertFx(sql, 'EUR', 'USD', '2025-09-01', '1.1');
  await work(db);
  await expectCurrent(t, sql, 'PHOLD', '2025-09-01');
  await expectCurrent(t, sql, 'PHOLD', '2025-09-02');
  t.strictSame((await portfolioRows(sql, 'PHOLD')).map(normalise), [
    prow('2025-09-01', { eod_market_value: '1100' }),
    prow('2025-09-02', { bod_market_value: '1100', eod_market_value: '1120' }),
  ]);
});

t.test('a blocked recompute keeps the last complete row', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PKEEP', 'USD');
  await insertInstrument(sql, 'X', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'PKEEP', security_id: 'X', date: '2025-09-10', quantity: 1,
    cost_basis_local: 800, market_value_local: 800, market_value: 800 });
  await declare(sql, 'PKEEP', '2025-09-10', 1);
  await work(db);
  await expectCurrent(t, sql, 'PKEEP', '2025-09-10');
  await sql`update daily_position_snapshots set valuation_status = 'FAILED', market_value = 900, market_value_local = 900
            where portfolio_id = 'PKEEP'`;
  await work(db);
  const st = await dayStatus(sql, 'PKEEP', '2025-09-10');
  t.equal(st?.state, 'blocked');
  t.match(st?.detail ?? '', /FAILED/);
  t.equal(st?.has_row, true, 'the last complete row is still there');
  t.strictSame((await portfolioRows(sql, 'PKEEP')).map(normalise), [prow('2025-09-10', { eod_market_value: '800' })]);
  await sql`update daily_position_snapshots set valuation_status = 'VALUED_CURRENT' where portfolio_id = 'PKEEP'`;
  await work(db);
  await expectCurrent(t, sql, 'PKEEP', '2025-09-10');
  t.strictSame((await portfolioRows(sql, 'PKEEP')).map(normalise), [prow('2025-09-10', { eod_market_value: '900' })]);
});

t.test('waiting shows k of n; undeclared for snapshots with no manifest', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PWAIT', 'USD');
  for (const s of ['A', 'B', 'C']) await insertInstrument(sql, s, 'USD');
  const snap = (s: string, date: string, v: number) => insertSnapshot(sql, { portfolio_id: 'PWAIT', security_id: s, date,
    quantity: 1, cost_basis_local: v, market_value_local: v, market_value: v });
  await declare(sql, 'PWAIT', '2025-09-10', 3);
  let st = await dayStatus(sql, 'PWAIT', '2025-09-10');
  t.equal(st?.state, 'waiting');
  t.equal(st?.detail, '0 of 3');
  await snap('A', '2025-09-10', 100);
  await snap('B', '2025-09-10', 200);
  await work(db);
  st = await dayStatus(sql, 'PWAIT', '2025-09-10');
  t.equal(st?.state, 'waiting');
  t.equal(st?.detail, '2 of 3');
  t.equal(st?.has_row, false);
  t.equal((await portfolioRows(sql, 'PWAIT')).length, 0);
  // The job's own result says why it stopped there too (what the worker logs), without making
  // the day blocked.
  const [run] = await sql.begin('isolation level repeatable read', (tx) =>
    tx<{ r: { stopped_at: string; stop_reason: string } }[]>`select portfolio_timeseries_engine.compute_portfolio('PWAIT') as r`);
  t.same([run!.r.stopped_at, run!.r.stop_reason], ['2025-09-10', 'waiting: 2 of 3 positions']);
  t.equal((await dayStatus(sql, 'PWAIT', '2025-09-10'))?.state, 'waiting', 'still waiting, not blocked');

  await snap('A', '2025-09-11', 150);
  await work(db);
  st = await dayStatus(sql, 'PWAIT', '2025-09-11');
  t.equal(st?.state, 'undeclared');
  t.equal(st?.has_row, false);

  await snap('C', '2025-09-10', 300);
  await work(db);
  await expectCurrent(t, sql, 'PWAIT', '2025-09-10');
  t.equal((await dayStatus(sql, 'PWAIT', '2025-09-11'))?.state, 'undeclared', 'undeclared is never computed');
  t.strictSame((await portfolioRows(sql, 'PWAIT')).map(normalise), [
    prow('2025-09-10', { eod_market_value: '600', position_count: 3 }),
  ]);

  await declare(sql, 'PWAIT', '2025-09-11', 1);
  await work(db);
  await expectCurrent(t, sql, 'PWAIT', '2025-09-11');
  t.strictSame((await portfolioRows(sql, 'PWAIT')).map(normalise), [
    prow('2025-09-10', { eod_market_value: '600', position_count: 3 }),
    prow('2025-09-11', { bod_market_value: '600', eod_market_value: '150' }),
  ]);
});

t.test('the public view portfolio_day_status: every state, one portfolio or the book, before and after the job', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'PV1', 'USD');
  for (const s of ['A', 'B']) await insertInstrument(sql, s, 'USD');
  const snap = (p: string, s: string, date: string, v: number) => insertSnapshot(sql, { portfolio_id: p, security_id: s, date,
    quantity: 1, cost_basis_local: v, market_value_local: v, market_value: v });
  await snap('PV1', 'A', '2025-09-10', 100);
  await snap('PV1', 'B', '2025-09-10', 50);
  await declare(sql, 'PV1', '2025-09-10', 2);
  await snap('PV1', 'A', '2025-09-11', 110);
  await declare(sql, 'PV1', '2025-09-11', 2);
  await snap('PV1', 'A', '2025-09-12', 120);
  await snap('PGHOST', 'A', '2025-09-10', 10); // no portfolios row: blocked, and still listed
  await declare(sql, 'PGHOST', '2025-09-10', 1);
  type Row = { portfolio_id: string; date: string; state: string; detail: string | null; has_row: boolean };
  const view = async (where = sql``): Promise<Row[]> => [...await sql<Row[]>`
    select portfolio_id, date::text as date, state, detail, has_row from portfolio_day_status ${where} order by portfolio_id, date`];
  const expected = async (): Promise<Row[]> => (await readStatus(sql)).map((s) =>
    ({ portfolio_id: s.portfolio_id, date: s.date, state: s.state, detail: s.detail, has_row: s.has_row }));

  // Before any job ran: the days are known from the pending changes.
  t.strictSame((await view()).map((r) => [r.portfolio_id, r.date, r.state]), [
    ['PGHOST', '2025-09-10', 'blocked'],
    ['PV1', '2025-09-10', 'queued'], ['PV1', '2025-09-11', 'waiting'], ['PV1', '2025-09-12', 'undeclared'],
  ], 'before the job: every day with its state');
  t.strictSame(await view(), await expected(), 'the view equals status() row for row');

  await work(db);
  t.strictSame((await view()).map((r) => [r.portfolio_id, r.date, r.state, r.detail, r.has_row]), [
    ['PGHOST', '2025-09-10', 'blocked', (await view(sql`where portfolio_id = 'PGHOST'`))[0]!.detail, false],
    ['PV1', '2025-09-10', 'current', null, true], ['PV1', '2025-09-11', 'waiting', '1 of 2', false],
    ['PV1', '2025-09-12', 'undeclared', '1 positions, no manifest row', false],
  ], 'after the job');
  t.match((await view(sql`where portfolio_id = 'PGHOST'`))[0]!.detail, /portfolio PGHOST unknown|PGHOST/, 'the unknown portfolio is named');
  t.strictSame(await view(), await expected(), 'the view equals status() row for row');
  t.strictSame(await view(sql`where portfolio_id = 'PV1'`), (await expected()).filter((r) => r.portfolio_id === 'PV1'), 'filtered to one portfolio');
});
