// The oracle checked on its own: the issue #2 examples (same numbers as test/examples.test.ts)
// and a few rules of contract section 3 (docs/contract.md) in isolation. No database.
import t from 'tap';
import { Decimal } from '../../src/decimal.js';
import {
  referenceModel, type CashflowIn, type ModelInput, type ModelOutput, type SnapshotIn,
} from './reference.js';
import { generateBook } from './book.js';

const D = (v: string | number) => new Decimal(v);
const empty = (): ModelInput => ({ portfolios: [], instruments: [], fx_rates: [], cashflows: [], snapshots: [], manifest: [], epochs: [] });
const portfolio = (id: string, base: string) => ({ portfolio_id: id, base_currency: base, open_date: '2020-01-01', close_date: null });
const instrument = (id: string, currency: string) => ({ security_id: id, currency, name: null });
const fx = (from: string, to: string, date: string, rate: string) => ({ from_currency: from, to_currency: to, rate_date: date, rate: D(rate) });
const snap = (p: string, s: string, date: string, v: { q: number | string; cbl?: number | string | null; mvl: number | string | null; mv: number | string | null; epoch?: number; status?: string }): SnapshotIn => ({
  portfolio_id: p, security_id: s, date, epoch: v.epoch ?? 0, quantity: D(v.q),
  cost_basis: null, cost_basis_local: v.cbl === undefined || v.cbl === null ? null : D(v.cbl), market_price: null,
  market_value: v.mv === null ? null : D(v.mv), market_value_local: v.mvl === null ? null : D(v.mvl),
  valuation_status: v.status ?? 'VALUED_CURRENT',
});
const flow = (id: string, p: string, s: string | null, date: string, amount: number | string, currency: string,
  classification: string, timing: 'BOD' | 'EOD', position: boolean, portfolioFlow: boolean): CashflowIn => ({
  transaction_id: id, portfolio_id: p, security_id: s, cashflow_date: date, epoch: 0, amount: D(amount), currency,
  classification, timing, is_position_flow: position, is_portfolio_flow: portfolioFlow,
});
const declare = (p: string, date: string, n: number) => ({ portfolio_id: p, aggregation_date: date, expected_count: n });

/** Model rows with every numeric as its shortest text (like test/helpers/assert.ts normalise). */
const text = (o: ModelOutput) => ({
  positions: o.positions.map(({ portfolio_id: _p, ...r }) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v instanceof Decimal ? v.toFixed() : v]))),
  portfolios: o.portfolios.map(({ portfolio_id: _p, ...r }) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v instanceof Decimal ? v.toFixed() : v]))),
});

t.test('example: two days, FX and a fee', async (t) => {
  const input = empty();
  input.portfolios.push(portfolio('P1', 'USD'));
  input.instruments.push(instrument('STOCK', 'EUR'), instrument('CASH_USD', 'USD'));
  input.fx_rates.push(fx('EUR', 'USD', '2025-07-28', '1.1'), fx('EUR', 'USD', '2025-07-29', '1.2'));
  input.cashflows.push(
    flow('BUY1', 'P1', 'STOCK', '2025-07-28', -5000, 'EUR', 'INVESTMENT_OUTFLOW', 'BOD', true, false),
    flow('FEE1', 'P1', 'CASH_USD', '2025-07-29', -25, 'USD', 'EXPENSE', 'EOD', true, true),
  );
  input.snapshots.push(
    snap('P1', 'STOCK', '2025-07-28', { q: 100, cbl: 5000, mvl: 5200, mv: 5720 }),
    snap('P1', 'STOCK', '2025-07-29', { q: 100, cbl: 5000, mvl: 5500, mv: 6600 }),
    snap('P1', 'CASH_USD', '2025-07-29', { q: -25, cbl: -25, mvl: -25, mv: -25 }),
  );
  input.manifest.push(declare('P1', '2025-07-28', 1), declare('P1', '2025-07-29', 2));
  const out = text(referenceModel(input));
  t.same(out.positions, [
    { security_id: 'STOCK', date: '2025-07-28', epoch: 0, bod_market_value: '0', bod_cashflow_position: '-5000',
      eod_cashflow_position: '0', bod_cashflow_portfolio: '0', eod_cashflow_portfolio: '0', eod_market_value: '5200',
      fees: '0', quantity: '100', cost: '50' },
    { security_id: 'CASH_USD', date: '2025-07-29', epoch: 0, bod_market_value: '0', bod_cashflow_position: '0',
      eod_cashflow_position: '-25', bod_cashflow_portfolio: '0', eod_cashflow_portfolio: '-25', eod_market_value: '-25',
      fees: '25', quantity: '-25', cost: '1' },
    { security_id: 'STOCK', date: '2025-07-29', epoch: 0, bod_market_value: '5200', bod_cashflow_position: '0',
      eod_cashflow_position: '0', bod_cashflow_portfolio: '0', eod_cashflow_portfolio: '0', eod_market_value: '5500',
      fees: '0', quantity: '100', cost: '50' },
  ]);
  t.same(out.portfolios, [
    { date: '2025-07-28', epoch: 0, bod_market_value: '0', bod_cashflow: '0', eod_cashflow: '0',
      eod_market_value: '5720', fees: '0', position_count: 1 },
    { date: '2025-07-29', epoch: 0, bod_market_value: '5720', bod_cashflow: '0', eod_cashflow: '-25',
      eod_market_value: '6575', fees: '25', position_count: 2 },
  ]);
});

t.test('example: a withdrawal is not a fee (nor is a tax that is only a position flow)', async (t) => {
  const input = empty();
  input.portfolios.push(portfolio('P2', 'USD'));
  input.instruments.push(instrument('CASH_USD', 'USD'));
  input.snapshots.push(
    snap('P2', 'CASH_USD', '2025-08-01', { q: 10000, cbl: 10000, mvl: 10000, mv: 10000 }),
    snap('P2', 'CASH_USD', '2025-08-02', { q: 8000, cbl: 8000, mvl: 8000, mv: 8000 }),
  );
  input.cashflows.push(
    flow('WD1', 'P2', 'CASH_USD', '2025-08-02', -2000, 'USD', 'CASHFLOW_OUT', 'EOD', true, true),
    flow('TAX1', 'P2', 'CASH_USD', '2025-08-02', -7, 'USD', 'EXPENSE', 'EOD', true, false),
  );
  input.manifest.push(declare('P2', '2025-08-01', 1), declare('P2', '2025-08-02', 1));
  const out = text(referenceModel(input));
  t.same(out.portfolios[1], { date: '2025-08-02', epoch: 0, bod_market_value: '10000', bod_cashflow: '0',
    eod_cashflow: '-2000', eod_market_value: '8000', fees: '0', position_count: 1 });
  t.same(out.positions[1]!.eod_cashflow_position, '-2007', 'the tax is a position flow');
  t.same(out.positions[1]!.fees, '0');
});

t.test('example: FX as of the latest earlier rate, NULL-security portfolio flows in their own currency', async (t) => {
  const input = empty();
  input.portfolios.push(portfolio('P3', 'USD'));
  input.instruments.push(instrument('CASH_EUR', 'EUR'));
  input.fx_rates.push(fx('EUR', 'USD', '2025-09-09', '1.10'));
  input.snapshots.push(snap('P3', 'CASH_EUR', '2025-09-10', { q: 990, cbl: 990, mvl: 990, mv: 1089 }));
  input.cashflows.push(
    flow('DEP1', 'P3', null, '2025-09-10', 1000, 'EUR', 'CASHFLOW_IN', 'BOD', false, true),
    flow('FEE1', 'P3', null, '2025-09-10', -10, 'EUR', 'EXPENSE', 'EOD', false, true),
    // Neither flag: counts nowhere, and (in a currency without rates) blocks nothing.
    flow('ACC1', 'P3', null, '2025-09-10', 5, 'SEK', 'INCOME', 'EOD', false, false),
  );
  input.manifest.push(declare('P3', '2025-09-10', 1));
  const [row] = text(referenceModel(input)).portfolios;
  t.equal(row!.bod_cashflow, '1100');
  t.equal(row!.eod_cashflow, '-11');
  t.equal(row!.fees, '11');
  t.equal(row!.eod_market_value, '1089');
});

t.test('example: never partial: a day waits for all declared positions', async (t) => {
  const input = empty();
  input.portfolios.push(portfolio('P4', 'USD'));
  for (const s of ['A', 'B', 'C']) input.instruments.push(instrument(s, 'USD'));
  input.manifest.push(declare('P4', '2025-10-01', 3));
  input.snapshots.push(snap('P4', 'A', '2025-10-01', { q: 1, cbl: 100, mvl: 100, mv: 100 }),
    snap('P4', 'B', '2025-10-01', { q: 1, cbl: 250, mvl: 250, mv: 250 }));
  const partial = referenceModel(input);
  t.same(partial.portfolios, []);
  t.same(partial.days, [{ portfolio_id: 'P4', date: '2025-10-01', state: 'waiting', reason: '2 of 3' }]);
  input.snapshots.push(snap('P4', 'C', '2025-10-01', { q: 1, cbl: 1000, mvl: 1000, mv: 1000 }));
  t.same(text(referenceModel(input)).portfolios, [{ date: '2025-10-01', epoch: 0, bod_market_value: '0', bod_cashflow: '0',
    eod_cashflow: '0', eod_market_value: '1350', fees: '0', position_count: 3 }]);
});

t.test('effective epoch: raised from watermark + 1, BOD across the switch, other epochs ignored', async (t) => {
  const input = empty();
  input.portfolios.push(portfolio('P', 'USD'));
  input.instruments.push(instrument('S', 'USD'));
  // Inserted at epoch 0 (implicit), raised to 2 with watermark 2025-01-02: epoch 2 from 01-03.
  input.epochs.push({ portfolio_id: 'P', security_id: 'S', current: 2, starts: [{ epoch: 0, start: null }, { epoch: 2, start: '2025-01-03' }] });
  input.snapshots.push(
    snap('P', 'S', '2025-01-02', { q: 1, mvl: 10, mv: 10 }),
    snap('P', 'S', '2025-01-02', { q: 9, mvl: 99, mv: 99, epoch: 2 }), // before its epoch starts: ignored
    snap('P', 'S', '2025-01-03', { q: 1, mvl: null, mv: null, epoch: 0, status: 'UNVALUED' }), // stale: ignored
    snap('P', 'S', '2025-01-03', { q: 3, cbl: 10, mvl: 12, mv: 12, epoch: 2 }),
  );
  input.manifest.push(declare('P', '2025-01-02', 1), declare('P', '2025-01-03', 1));
  const out = text(referenceModel(input));
  t.same(out.positions.map((r) => [r.date, r.epoch, r.bod_market_value, r.eod_market_value, r.cost]),
    [['2025-01-02', 0, '0', '10', '0'], ['2025-01-03', 2, '10', '12', '3.3333333333']]);
  t.same(out.portfolios.map((r) => [r.date, r.epoch, r.bod_market_value]), [['2025-01-02', 0, '0'], ['2025-01-03', 2, '10']]);
  // A key inserted at epoch 1 has epoch 1 on every date.
  input.epochs[0] = { portfolio_id: 'P', security_id: 'S', current: 1, starts: [{ epoch: 1, start: null }] };
  input.snapshots.push(snap('P', 'S', '2025-01-02', { q: 1, mvl: 5, mv: 5, epoch: 1 }), snap('P', 'S', '2025-01-03', { q: 1, mvl: 6, mv: 6, epoch: 1 }));
  t.same(text(referenceModel(input)).portfolios.map((r) => [r.epoch, r.eod_market_value]), [[1, '5'], [1, '6']]);
});

t.test('rounding: half away from zero, only at the end', async (t) => {
  const input = empty();
  input.portfolios.push(portfolio('P', 'USD'));
  input.instruments.push(instrument('E', 'EUR'), instrument('F', 'EUR'));
  input.fx_rates.push(fx('EUR', 'USD', '2025-01-01', '0.0000000003'));
  input.snapshots.push(snap('P', 'E', '2025-01-02', { q: -3, cbl: 2, mvl: 1, mv: 1 }), snap('P', 'F', '2025-01-02', { q: 3, cbl: 2, mvl: 1, mv: 1 }));
  // 0.5 x 0.0000000003 = 1.5e-10 per flow: rounded per product that would be 2e-10 + 2e-10,
  // rounded once it is 3e-10.
  input.cashflows.push(flow('A', 'P', 'E', '2025-01-02', '0.5', 'EUR', 'TRANSFER_IN', 'BOD', true, true),
    flow('B', 'P', 'F', '2025-01-02', '0.5', 'EUR', 'TRANSFER_IN', 'BOD', true, true),
    flow('C', 'P', null, '2025-01-02', '-0.5', 'EUR', 'EXPENSE', 'EOD', false, true));
  input.manifest.push(declare('P', '2025-01-02', 2));
  const out = text(referenceModel(input));
  t.same(out.positions.map((r) => r.cost), ['-0.6666666667', '0.6666666667']);
  t.equal(out.portfolios[0]!.bod_cashflow, '0.0000000003');
  t.equal(out.portfolios[0]!.eod_cashflow, '-0.0000000002', '-1.5e-10 rounds away from zero');
  t.equal(out.portfolios[0]!.fees, '0.0000000002');
});

t.test('blocked days hold every later day; the reasons are named', async (t) => {
  const base = (): ModelInput => {
    const input = empty();
    input.portfolios.push(portfolio('P', 'USD'));
    input.instruments.push(instrument('U', 'USD'), instrument('E', 'EUR'));
    input.fx_rates.push(fx('EUR', 'USD', '2025-01-01', '1.1'));
    for (const d of ['2025-01-02', '2025-01-03', '2025-01-06']) {
      input.snapshots.push(snap('P', 'U', d, { q: 1, mvl: 1, mv: 1 }), snap('P', 'E', d, { q: 1, mvl: 1, mv: 1.1 }));
      input.manifest.push(declare('P', d, 2));
    }
    return input;
  };
  const states = (input: ModelInput) => referenceModel(input).days.map((d) => `${d.state}${d.reason ? `: ${d.reason}` : ''}`);
  t.same(states(base()), ['computed', 'computed', 'computed']);

  let input = base();
  input.fx_rates = [fx('EUR', 'USD', '2025-01-03', '1.1')];
  t.same(states(input), ['blocked: no FX EUR->USD on or before 2025-01-02', 'waiting_previous_day: previous declared day 2025-01-02 has no row',
    'waiting_previous_day: previous declared day 2025-01-02 has no row']);

  input = base();
  input.snapshots[2]!.valuation_status = 'FAILED'; // U on 01-03: its own day and the next (BOD source)
  input.manifest.splice(1, 1); // ... with 01-03 undeclared, only the BOD-source rule blocks 01-06
  t.same(states(input), ['computed', 'blocked: unvalued BOD snapshot U 2025-01-03']);

  input = base();
  input.cashflows.push(flow('X', 'P', 'E', '2025-01-03', 1, 'USD', 'INCOME', 'EOD', true, false));
  t.match(states(input)[1], /blocked: cash flow X: currency USD != EUR/);

  input = base();
  input.cashflows.push(flow('Y', 'P', 'Z', '2025-01-03', 1, 'USD', 'INCOME', 'EOD', true, false));
  t.match(states(input)[1], /blocked: cash flow Y: no position in Z/);

  input = base();
  input.manifest[1]!.expected_count = 1;
  t.match(states(input)[1], /blocked: 2 positions, 1 declared/);

  input = base();
  input.instruments.pop();
  t.match(states(input)[0], /blocked: unknown instrument E/);

  input = base();
  input.portfolios = [];
  t.match(states(input)[0], /blocked: unknown portfolio P/);

  input = base();
  input.manifest[2]!.expected_count = 3;
  t.same(states(input)[2], 'waiting: 2 of 3');
});

t.test('random book: sizes and internal consistency', async (t) => {
  const book = generateBook({ seed: 12345, phased: true });
  const again = generateBook({ seed: 12345, phased: true });
  t.same(again.rows.length, book.rows.length, 'same seed, same book');
  const out = referenceModel(book.input);
  t.ok(book.input.manifest.length >= 200, `${book.input.manifest.length} declared portfolio-days`);
  t.ok(out.portfolios.length > 100, `${out.portfolios.length} computed`);
  const perDay = new Map<string, number>();
  for (const r of out.positions) perDay.set(`${r.portfolio_id} ${r.date}`, (perDay.get(`${r.portfolio_id} ${r.date}`) ?? 0) + 1);
  t.ok(out.portfolios.every((r) => (perDay.get(`${r.portfolio_id} ${r.date}`) ?? 0) === r.position_count), 'position rows match position_count');
});
