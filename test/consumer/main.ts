// A scratch service that adopts portfolio-timeseries: test/consumer.test.ts installs the packed
// tarball beside this service's own graphile-worker (0.17 and 0.18), type-checks this file with
// test/consumer/tsconfig.json and runs it. Not part of the repository's own type-check.
import { Logger, run, runOnce, type Task, type TaskList } from 'graphile-worker';
import {
  connect, crontab, declarePortfolioDay, Decimal, migrate, readPortfolioTimeseries, readStatus,
  sealPortfolioDay, taskList, type PortfolioTimeseriesRow, type TimeseriesLogger,
} from 'portfolio-timeseries';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL');

const logged: string[] = [];
const logger: TimeseriesLogger = {
  error: (m) => logged.push(`error ${m}`), warn: (m) => logged.push(`warn ${m}`),
  info: (m) => logged.push(`info ${m}`), debug: () => {},
};

let myJobsRun = 0;
const sendReport: Task = async (_payload, helpers) => {
  myJobsRun++;
  helpers.logger.debug('report sent');
};
const tasks: TaskList = { 'consumer:send_report': sendReport, ...taskList };
const myCrontab = '0 3 * * * consumer:send_report\n';
// The service's own graphile-worker logger (quiet here: stdout carries the result).
const workerLogger = new Logger(() => () => {});

await migrate(url, { logger });
const sql = connect(url);
await sql`insert into portfolios (portfolio_id, base_currency, open_date) values ('C1', 'USD', '2025-01-01')`;
await sql`insert into instruments (security_id, currency, name) values ('SAP', 'EUR', 'SAP SE')`;
await sql`insert into fx_rates (from_currency, to_currency, rate_date, rate) values ('EUR', 'USD', '2025-01-02', 1.25)`;
await sql`insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, cost_basis,
  cost_basis_local, market_price, market_value, market_value_local, valuation_status)
  values ('C1', 'SAP', '2025-01-02', 10, 2500, 2000, 200, 2500, 2000, 'VALUED_CURRENT'),
         ('C1', 'SAP', '2025-01-03', 10, 2500, 2000, 210, 2625, 2100, 'VALUED_CURRENT')`;
await sql`insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, amount, currency,
  classification, timing, is_position_flow, is_portfolio_flow)
  values ('FEE1', 'C1', null, '2025-01-03', -12.5, 'EUR', 'EXPENSE', 'EOD', false, true)`;

// Day 1 with the service's runOnce(), beside one of its own jobs.
await sql`select graphile_worker.add_job('consumer:send_report', '{}'::json)`;
await sealPortfolioDay(sql, 'C1', '2025-01-02');
await runOnce({ connectionString: url, taskList: tasks, logger: workerLogger });

// Day 2 with the service's long-running run(), crontab merged.
await declarePortfolioDay(sql, 'C1', '2025-01-03', 1);
const runner = await run({
  connectionString: url, taskList: tasks, crontab: myCrontab + crontab, concurrency: 2, noHandleSignals: true,
  logger: workerLogger,
});
for (let i = 0; i < 300; i++) {
  const days = await readStatus(sql, { portfolioId: 'C1' });
  if (days.length === 2 && days.every((d) => d.state === 'current')) break;
  await new Promise((r) => setTimeout(r, 100));
}
await runner.stop();

const rows: PortfolioTimeseriesRow[] = await readPortfolioTimeseries(sql, 'C1');
await sql.end();
const money = (d: Decimal): string => d.toFixed(2);
process.stdout.write(JSON.stringify({
  allDecimal: rows.every((r) => [r.bodMarketValue, r.eodMarketValue, r.eodCashflow, r.fees].every((v) => v instanceof Decimal)),
  rows: rows.map((r) => ({ date: r.date, bod: money(r.bodMarketValue), eod: money(r.eodMarketValue), eodCashflow: money(r.eodCashflow), fees: money(r.fees) })),
  myJobsRun,
  warnings: logged.filter((l) => !l.startsWith('info')),
  migrationLogged: logged.some((l) => l.includes('000001-')),
}) + '\n');
