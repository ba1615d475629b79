// Least privilege (issue #8, sql/14_roles.sql): each role succeeds at its job and is refused
// outside its rights. The producer writes every input and the manifest and seals days, but cannot
// write an output, run the engine or touch its tables; the worker runs the jobs; the reader reads
// outputs, status and returns, and writes nothing. Nothing in the engine is executable by PUBLIC
// but refuse().
import t from 'tap';
import { freshDatabase } from './helpers/db.js';
import { cli } from './helpers/cli.js';
import { testRoles } from './helpers/roles.js';
import type { Sql } from '../src/db.js';
import type { DayStatus } from '../src/types.js';


async function refused(t: { equal: (...args: never[]) => unknown; fail: (message: string) => unknown }, sql: Sql, statement: string, what: string): Promise<void> {
  try {
    await sql.unsafe(statement);
    t.fail(`${what}: allowed`);
  } catch (error) {
    (t.equal as (a: unknown, b: unknown, m: string) => unknown)((error as { code?: string }).code, '42501', `${what}: refused (${(error as Error).message})`);
  }
}

t.test('producer, worker and reader: each does its job, and nothing else', async (t) => {
  const roles = await testRoles(t);
  const db = await freshDatabase(t);
  await roles.grant(db);
  const producer = roles.connect(db, 'producer');
  const reader = roles.connect(db, 'reader');
  const worker = roles.connect(db, 'worker');

  // ---- producer: every input, the manifest, sealing, corrections, TRUNCATE of an input ----
  await producer`insert into portfolios (portfolio_id, base_currency, open_date) values ('P1', 'USD', '2025-01-01')`;
  await producer`insert into instruments (security_id, currency) values ('A', 'USD'), ('E', 'EUR')`;
  await producer`insert into fx_rates (from_currency, to_currency, rate_date, rate) values ('EUR', 'USD', '2025-01-01', 1.1)`;
  await producer`insert into position_state (portfolio_id, security_id, epoch) values ('P1', 'A', 0)`;
  for (const [d, v] of [['2025-01-02', 10], ['2025-01-03', 11]] as const) {
    await producer`insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, market_value, market_value_local, valuation_status)
                   values ('P1', 'A', ${d}, 1, ${v}, ${v}, 'VALUED_CURRENT'), ('P1', 'E', ${d}, 1, ${v * 1.1}, ${v}, 'VALUED_CURRENT')`;
  }
  await producer`insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, amount, currency,
                   classification, timing, is_position_flow, is_portfolio_flow)
                 values ('T1', 'P1', null, '2025-01-02', 100, 'USD', 'CASHFLOW_IN', 'BOD', false, true)`;
  await producer`insert into daily_aggregation_manifest values ('P1', '2025-01-02', 2)`;
  const [sealed] = await producer<{ n: number }[]>`select seal_portfolio_day('P1', '2025-01-03') as n`;
  t.equal(sealed!.n, 2, 'the producer seals a day');
  await producer`update daily_position_snapshots set market_value = 12, market_value_local = 12 where security_id = 'A' and date = '2025-01-03'`;
  await producer`delete from cashflows where transaction_id = 'T1'`;
  await producer`insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, amount, currency,
                   classification, timing, is_position_flow, is_portfolio_flow)
                 values ('T2', 'P1', null, '2025-01-02', 100, 'USD', 'CASHFLOW_IN', 'BOD', false, true)`;
  t.pass('the producer writes, corrects and deletes inputs (the engine triggers run as their owner)');
  try {
    await producer`insert into fx_rates (from_currency, to_currency, rate_date, rate) values ('GBP', 'USD', '2025-01-01', 0)`;
    t.fail('a bad rate was accepted');
  } catch (error) {
    t.match((error as Error).message, /GBP.*USD.*2025-01-01/, 'bad input is still refused naming the row (refuse() runs as the producer)');
  }
  await refused(t, producer, `update portfolio_timeseries_engine.portfolio_day set dirty = false`, 'producer: update portfolio_day');
  await refused(t, producer, `select * from portfolio_timeseries_engine.change`, 'producer: read the change queue');
  await refused(t, producer, `delete from portfolio_timeseries`, 'producer: delete from portfolio_timeseries');
  await refused(t, producer, `insert into position_timeseries (portfolio_id, security_id, date) values ('P1', 'A', '2025-01-02')`, 'producer: write position_timeseries');
  await refused(t, producer, `select portfolio_timeseries_engine.compute_portfolio('P1')`, 'producer: run compute_portfolio');
  await refused(t, producer, `select portfolio_timeseries_engine.compute_portfolios(array['P1'])`, 'producer: run compute_portfolios');
  await refused(t, producer, `select portfolio_timeseries_engine.sweep()`, 'producer: run the sweep');
  await refused(t, producer, `select portfolio_timeseries_engine.grant_roles()`, 'producer: grant roles');
  await refused(t, producer, `select graphile_worker.add_job('portfolio_timeseries:drain')`, "producer: graphile-worker's queue");

  // ---- reader, before any job: status, no writes ----
  const before = await reader<DayStatus[]>`select * from portfolio_timeseries_engine.status(null)`;
  t.same(before.map((d) => d.state), ['queued', 'waiting_previous_day'], 'the reader reads status()');
  const view = await reader<{ state: string }[]>`select state from portfolio_day_status order by portfolio_id, date`;
  t.same(view.map((d) => d.state), ['queued', 'waiting_previous_day'], 'and the public view portfolio_day_status');
  await refused(t, reader, `insert into portfolios (portfolio_id, base_currency, open_date) values ('R', 'USD', '2025-01-01')`, 'reader: write an input');
  await refused(t, reader, `select seal_portfolio_day('P1', '2025-01-02')`, 'reader: seal a day');
  await refused(t, reader, `update portfolio_timeseries set fees = 0`, 'reader: update portfolio_timeseries');
  await refused(t, reader, `delete from position_timeseries`, 'reader: delete from position_timeseries');
  await refused(t, reader, `update portfolio_timeseries_engine.portfolio_day set dirty = false`, 'reader: update portfolio_day');
  await refused(t, reader, `select portfolio_timeseries_engine.compute_portfolio('P1')`, 'reader: run compute_portfolio');

  // ---- worker: the CLI worker logged in as the worker role computes everything ----
  const r = cli(['worker', '--once'], { DATABASE_URL: roles.url(db, 'worker') });
  t.equal(r.code, 0, `worker --once as the worker role exits 0 ${r.stderr}${r.stdout.slice(-2000)}`);
  await refused(t, worker, `insert into portfolios (portfolio_id, base_currency, open_date) values ('W', 'USD', '2025-01-01')`, 'worker: write an input');

  // ---- reader, after: outputs, status (CLI too), returns ----
  const rows = await reader<{ date: string; eod: string }[]>`
    select date::text, eod_market_value::text as eod from portfolio_timeseries where portfolio_id = 'P1' order by date`;
  t.same(rows.map((x) => [x.date, Number(x.eod)]), [['2025-01-02', 21], ['2025-01-03', 24.1]], 'the reader reads the outputs');
  const st = cli(['status', '--json'], { DATABASE_URL: roles.url(db, 'reader') });
  t.equal(st.code, 0, st.stderr);
  t.same((JSON.parse(st.stdout) as DayStatus[]).map((d) => d.state), ['current', 'current'], 'status --json as the reader');
  const [twr] = await reader<{ twr: string | null }[]>`select twr::text from portfolio_twr('P1', '2025-01-02', '2025-01-03')`;
  t.ok(twr!.twr !== null, `the reader computes returns (TWR ${twr!.twr})`);

  // ---- PUBLIC: nothing executable in the engine but refuse() ----
  const executable = await db.sql<{ name: string }[]>`
    select p.oid::regprocedure::text as name
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'portfolio_timeseries_engine'
      and (p.proacl is null or exists (select 1 from aclexplode(p.proacl) a where a.grantee = 0 and a.privilege_type = 'EXECUTE'))
    order by 1`;
  t.same(executable.map((x) => x.name), ['portfolio_timeseries_engine.refuse(text,text)'], 'PUBLIC may execute refuse() only');
  const [seal] = await db.sql<{ public: boolean }[]>`
    select exists (select 1 from pg_proc p, aclexplode(p.proacl) a
                   where p.oid = 'public.seal_portfolio_day(text,date)'::regprocedure and a.grantee = 0) as public`;
  t.equal(seal!.public, false, 'nor seal_portfolio_day()');
});

t.test('migrate --roles grants to the named roles, and never creates one', async (t) => {
  const roles = await testRoles(t);
  const db = await freshDatabase(t);
  let r = cli(['migrate', '--roles', '--producer-role', roles.names.producer, '--worker-role', roles.names.worker,
    '--reader-role', roles.names.reader], { DATABASE_URL: db.url });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, `roles granted: producer ${roles.names.producer}, worker ${roles.names.worker}, reader ${roles.names.reader}`);
  const producer = roles.connect(db, 'producer');
  await producer`insert into portfolios (portfolio_id, base_currency, open_date) values ('P', 'USD', '2025-01-01')`;
  t.pass('the producer writes after migrate --roles');
  const missing = `${roles.names.producer}_missing`;
  r = cli(['migrate', '--roles', '--producer-role', missing], { DATABASE_URL: db.url });
  t.equal(r.code, 1, 'a role that does not exist: exit 1');
  t.match(r.stderr, `role ${missing} does not exist: create it first`, 'and the error says to create it');
  const [exists] = await db.sql<{ n: number }[]>`select count(*)::int as n from pg_roles where rolname = ${missing}`;
  t.equal(exists!.n, 0, 'it was not created');
});
