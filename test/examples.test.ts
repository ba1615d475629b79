// The examples of issue #2, value by value.
import t from 'tap';
import { freshDatabase } from './helpers/db.js';
import { normalise } from './helpers/assert.js';
import {
  computePortfolio, declare, insertCashflow, insertFx, insertInstrument, insertPortfolio, insertSnapshot,
  portfolioRows, positionRows,
} from './helpers/fixtures.js';
import { readPortfolioTimeseries } from '../src/readers.js';
import { runWorker } from '../src/worker.js';
import { Decimal } from '../src/decimal.js';

t.test('two days, FX and a fee', async (t) => {
  const { sql } = await freshDatabase(t);
  await insertPortfolio(sql, 'P1', 'USD');
  await insertInstrument(sql, 'STOCK', 'EUR');
  await insertInstrument(sql, 'CASH_USD', 'USD');
  await insertFx(sql, 'EUR', 'USD', '2025-07-28', '1.1');
  await insertFx(sql, 'EUR', 'USD', '2025-07-29', '1.2');
  await insertCashflow(sql, {
    transaction_id: 'BUY1', portfolio_id: 'P1', security_id: 'STOCK', cashflow_date: '2025-07-28',
    amount: -5000, currency: 'EUR', classification: 'INVESTMENT_OUTFLOW', timing: 'BOD',
    is_position_flow: true, is_portfolio_flow: false,
  });
  await insertCashflow(sql, {
    transaction_id: 'FEE1', portfolio_id: 'P1', security_id: 'CASH_USD', cashflow_date: '2025-07-29',
    amount: -25, currency: 'USD', classification: 'EXPENSE', timing: 'EOD',
    is_position_flow: true, is_portfolio_flow: true,
  });
  await insertSnapshot(sql, { portfolio_id: 'P1', security_id: 'STOCK', date: '2025-07-28', quantity: 100,
    cost_basis_local: 5000, cost_basis: 5500, market_value_local: 5200, market_value: 5720 });
  await insertSnapshot(sql, { portfolio_id: 'P1', security_id: 'STOCK', date: '2025-07-29', quantity: 100,
    cost_basis_local: 5000, cost_basis: 5500, market_value_local: 5500, market_value: 6600 });
  await insertSnapshot(sql, { portfolio_id: 'P1', security_id: 'CASH_USD', date: '2025-07-29', quantity: -25,
    cost_basis_local: -25, cost_basis: -25, market_value_local: -25, market_value: -25 });
  await declare(sql, 'P1', '2025-07-28', 1);
  await declare(sql, 'P1', '2025-07-29', 2);
  await computePortfolio(sql, 'P1');

  const positions = (await positionRows(sql, 'P1')).map(normalise);
  t.same(positions, [
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
  const portfolio = (await portfolioRows(sql, 'P1')).map(normalise);
  t.same(portfolio, [
    { date: '2025-07-28', epoch: 0, bod_market_value: '0', bod_cashflow: '0', eod_cashflow: '0',
      eod_market_value: '5720', fees: '0', position_count: 1 },
    { date: '2025-07-29', epoch: 0, bod_market_value: '5720', bod_cashflow: '0', eod_cashflow: '-25',
      eod_market_value: '6575', fees: '25', position_count: 2 },
  ]);

  // The typed reader returns Decimal values, exact to the last digit.
  const typed = await readPortfolioTimeseries(sql, 'P1');
  t.ok(typed[1]!.eodMarketValue instanceof Decimal, 'reader returns Decimal');
  t.equal(typed[1]!.eodMarketValue.toFixed(10), '6575.0000000000');
});

t.test('a withdrawal is not a fee', async (t) => {
  const { sql } = await freshDatabase(t);
  await insertPortfolio(sql, 'P2', 'USD');
  await insertInstrument(sql, 'CASH_USD', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'P2', security_id: 'CASH_USD', date: '2025-08-01', quantity: 10000,
    cost_basis_local: 10000, market_value_local: 10000, market_value: 10000 });
  await insertSnapshot(sql, { portfolio_id: 'P2', security_id: 'CASH_USD', date: '2025-08-02', quantity: 8000,
    cost_basis_local: 8000, market_value_local: 8000, market_value: 8000 });
  await insertCashflow(sql, {
    transaction_id: 'WD1', portfolio_id: 'P2', security_id: 'CASH_USD', cashflow_date: '2025-08-02',
    amount: -2000, currency: 'USD', classification: 'CASHFLOW_OUT', timing: 'EOD',
    is_position_flow: true, is_portfolio_flow: true,
  });
  await declare(sql, 'P2', '2025-08-01', 1);
  await declare(sql, 'P2', '2025-08-02', 1);
  await computePortfolio(sql, 'P2');
  const rows = (await portfolioRows(sql, 'P2')).map(normalise);
  t.same(rows[1], { date: '2025-08-02', epoch: 0, bod_market_value: '10000', bod_cashflow: '0',
    eod_cashflow: '-2000', eod_market_value: '8000', fees: '0', position_count: 1 });
  // Nor in the position row: a position's fees are its EXPENSE portfolio flows only.
  const positions = (await positionRows(sql, 'P2')).map(normalise);
  t.same(positions[1], { security_id: 'CASH_USD', date: '2025-08-02', epoch: 0, bod_market_value: '10000',
    bod_cashflow_position: '0', eod_cashflow_position: '-2000', bod_cashflow_portfolio: '0',
    eod_cashflow_portfolio: '-2000', eod_market_value: '8000', fees: '0', quantity: '8000', cost: '1' });
});

t.test('FX as of the latest earlier rate, NULL-security portfolio flows in their own currency, other NULL-security flows nowhere', async (t) => {
  const { sql } = await freshDatabase(t);
  await insertPortfolio(sql, 'P3', 'USD');
  await insertInstrument(sql, 'CASH_EUR', 'EUR');
  await insertFx(sql, 'EUR', 'USD', '2025-09-09', '1.10');
  await insertSnapshot(sql, { portfolio_id: 'P3', security_id: 'CASH_EUR', date: '2025-09-10', quantity: 990,
    cost_basis_local: 990, market_value_local: 990, market_value: 1089 });
  await insertCashflow(sql, {
    transaction_id: 'DEP1', portfolio_id: 'P3', security_id: null, cashflow_date: '2025-09-10',
    amount: 1000, currency: 'EUR', classification: 'CASHFLOW_IN', timing: 'BOD',
    is_position_flow: false, is_portfolio_flow: true,
  });
  await insertCashflow(sql, {
    transaction_id: 'FEE1', portfolio_id: 'P3', security_id: null, cashflow_date: '2025-09-10',
    amount: -10, currency: 'EUR', classification: 'EXPENSE', timing: 'EOD',
    is_position_flow: false, is_portfolio_flow: true,
  });
  // An accrual: a NULL-security flow without is_portfolio_flow counts nowhere (methodology, stage 2).
  await insertCashflow(sql, {
    transaction_id: 'ACCR1', portfolio_id: 'P3', security_id: null, cashflow_date: '2025-09-10',
    amount: 500, currency: 'EUR', classification: 'INCOME', timing: 'EOD',
    is_position_flow: false, is_portfolio_flow: false,
  });
  await declare(sql, 'P3', '2025-09-10', 1);
  await computePortfolio(sql, 'P3');
  const [row] = (await portfolioRows(sql, 'P3')).map(normalise);
  t.equal(row!.bod_cashflow, '1100');
  t.equal(row!.eod_cashflow, '-11');
  t.equal(row!.fees, '11');
  t.equal(row!.eod_market_value, '1089');
});

t.test('never partial: three positions in three transactions with a worker running', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'P4', 'USD');
  for (const s of ['A', 'B', 'C']) await insertInstrument(sql, s, 'USD');
  await declare(sql, 'P4', '2025-10-01', 3);
  const runner = await runWorker({ connectionString: db.url, concurrency: 2 });
  t.teardown(() => runner.stop());

  const values: Record<string, number> = { A: 100, B: 250, C: 1000 };
  const writer = db.connect(1);
  for (const [i, s] of ['A', 'B', 'C'].entries()) {
    await writer.begin(async (tx) => {
      await insertSnapshot(tx as unknown as typeof sql, { portfolio_id: 'P4', security_id: s, date: '2025-10-01',
        quantity: 1, cost_basis_local: values[s]!, market_value_local: values[s]!, market_value: values[s]! });
    });
    if (i < 2) {
      // Give the running worker every chance to (wrongly) build the day from part of it.
      await new Promise((r) => setTimeout(r, 1500));
      const rows = await portfolioRows(sql, 'P4');
      t.equal(rows.length, 0, `no portfolio row after ${i + 1} of 3 positions`);
    }
  }
  let rows: Record<string, unknown>[] = [];
  for (let i = 0; i < 100 && rows.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    rows = (await portfolioRows(sql, 'P4')).map(normalise);
  }
  t.same(rows, [{ date: '2025-10-01', epoch: 0, bod_market_value: '0', bod_cashflow: '0', eod_cashflow: '0',
    eod_market_value: '1350', fees: '0', position_count: 3 }]);
});
