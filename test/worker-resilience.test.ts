// A worker that stays up (issue #8): its database backend is terminated in the middle of a job,
// ten times in a row, and the same process completes every day; the database goes away (a proxy
// drops every connection and refuses new ones) and comes back: /health/ready says 503 meanwhile,
// the worker recovers by itself; /metrics answers during the backfill. Readiness is always a log
// line or an HTTP answer, never a fixed sleep.
import t from 'tap';
import { freshDatabase, type TestDatabase } from './helpers/db.js';
import { startWorkerProcess, type WorkerProcess } from './helpers/cli.js';
import { proxy } from './helpers/fake-servers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** P portfolios x D days x S securities, every day declared. */
async function backfill(db: TestDatabase, P: number, D: number, S: number, first = '2020-01-01'): Promise<number> {
  const { sql } = db;
  await sql`insert into instruments (security_id, currency) select 'S' || s, 'USD' from generate_series(1, ${S}) s on conflict do nothing`;
  await sql`insert into portfolios (portfolio_id, base_currency, open_date)
            select 'P' || p, 'USD', '2000-01-01' from generate_series(1, ${P}) p on conflict do nothing`;
  await sql`insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, cost_basis_local,
              market_value, market_value_local, valuation_status)
            select 'P' || p, 'S' || s, ${first}::date + i, 1, 100, 100 + i + s, 100 + i + s, 'VALUED_CURRENT'
            from generate_series(1, ${P}) p, generate_series(1, ${S}) s, generate_series(0, ${D - 1}) i`;
  await sql`insert into daily_aggregation_manifest (portfolio_id, aggregation_date, expected_count)
            select 'P' || p, ${first}::date + i, ${S} from generate_series(1, ${P}) p, generate_series(0, ${D - 1}) i`;
  return P * D;
}

/** Declared days that are not current (the engine's own view, read like status does). */
async function notCurrent(db: TestDatabase): Promise<number> {
  const [r] = await db.sql<{ n: number }[]>`
    select count(*)::int as n from portfolio_timeseries_engine.status(null) where state <> 'current'`;
  return r!.n;
}

async function untilAllCurrent(db: TestDatabase, w: WorkerProcess, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let left = -1;
  while (Date.now() < deadline && w.child.exitCode === null) {
    left = await notCurrent(db);
    if (left === 0) return 0;
    await sleep(200);
  }
  return left;
}

async function jobRows(db: TestDatabase) {
  const [r] = await db.sql<{ locked: number; failed: number; awaiting: number }[]>`
    select count(*) filter (where locked_at is not null)::int as locked,
           count(*) filter (where attempts >= max_attempts)::int as failed,
           count(*) filter (where last_error is not null)::int as awaiting
    from graphile_worker.jobs where task_identifier like 'portfolio\\_timeseries:%'`;
  return { ...r! };
}

t.test('a backend terminated mid-job 10 times in a row: the same worker stays up and completes every day', async (t) => {
  const db = await freshDatabase(t);
  const total = await backfill(db, 20, 730, 5);
  const w = startWorkerProcess(db.url);
  t.teardown(() => w.kill('SIGKILL'));
  await w.waitFor((l) => l.event === 'worker_started', 30_000, 'start line');
  const pid = w.child.pid;
  const app = String(w.lines.find((l) => l.event === 'worker_starting')!.application_name);
  let terminated = 0;
  const deadline = Date.now() + 120_000;
  while (terminated < 10 && Date.now() < deadline) {
    const [r] = await db.sql<{ pid: number | null }[]>`
      select min(pid) as pid from pg_stat_activity
      where datname = current_database() and application_name = ${app} and state = 'active'
        and query like '%compute_portfolios%'`;
    if (r!.pid !== null) {
      const [k] = await db.sql<{ ok: boolean }[]>`select pg_terminate_backend(${r!.pid}) as ok`;
      if (k!.ok) {
        terminated++;
        await w.waitFor((l) => l.event === 'job_failed' && l.connection_lost === true
          && w.lines.filter((x) => x.event === 'job_failed').length >= terminated, 30_000, `job failure ${terminated}`);
      }
    }
    await sleep(5);
  }
  t.equal(terminated, 10, 'ten backends running compute_portfolios were terminated');
  const left = await untilAllCurrent(db, w, 120_000);
  t.equal(w.child.exitCode, null, 'the worker process is still running');
  t.equal(w.child.pid, pid, 'the same process');
  t.equal(left, 0, `every one of the ${total} days is current`);
  const failures = w.lines.filter((l) => l.event === 'job_failed');
  t.ok(failures.length >= 10 && failures.every((l) => l.connection_lost === true && typeof l.error === 'string'),
    'each lost connection was a job_failed line with its error');
  t.notOk(w.lines.some((l) => l.event === 'runner_failed'), 'graphile-worker never gave up');
  w.kill('SIGTERM');
  t.equal((await w.exited).code, 0, 'SIGTERM: exit 0');
  t.same(await jobRows(db), { locked: 0, failed: 0, awaiting: 0 }, 'no job row left locked, failed or awaiting a retry');
});

t.test('the database goes away and comes back: /health/ready 503 then 200, the worker recovers; /metrics during a backfill', async (t) => {
  const db = await freshDatabase(t);
  const p = await proxy(Number(new URL(db.url).port || 5432), new URL(db.url).hostname);
  t.teardown(() => p.close());
  const w = startWorkerProcess(p.url(db.name), ['--metrics-port', '0', '--concurrency', '2']);
  t.teardown(() => w.kill('SIGKILL'));
  const port = Number((await w.waitFor((l) => l.event === 'metrics_listening', 30_000, 'metrics line')).port);
  await w.waitFor((l) => l.event === 'worker_started', 30_000, 'start line');
  const get = async (path: string) => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: r.status, body: await r.text() };
  };
  t.same((await get('/health/live')).status, 200, '/health/live');
  t.same((await get('/health/ready')).status, 200, '/health/ready');

  const total = await backfill(db, 8, 400, 4);
  await w.waitFor((l) => l.event === 'portfolio_computed', 30_000, 'a computed portfolio');
  const metrics = await get('/metrics');
  t.equal(metrics.status, 200, '/metrics during the backfill');
  for (const name of ['portfolio_timeseries_portfolio_days{state="current"}', 'portfolio_timeseries_portfolio_days{state="queued"}',
    'portfolio_timeseries_blocked_days{reason="fx_rate_missing"}', 'portfolio_timeseries_jobs_total{task="portfolio_timeseries:drain"',
    'portfolio_timeseries_job_duration_seconds_bucket', 'portfolio_timeseries_rows_written_total{stage="position"}',
    'portfolio_timeseries_rows_written_total{stage="portfolio"}', 'portfolio_timeseries_oldest_ready_age_seconds',
    'portfolio_timeseries_transaction_retries_total', 'portfolio_timeseries_pending_portfolios', 'portfolio_timeseries_database_up 1']) {
    t.ok(metrics.body.includes(name), `/metrics has ${name}`);
  }
  t.comment(metrics.body.split('\n').filter((l) => l.startsWith('portfolio_timeseries_') && !l.includes('_bucket') && !/process_|nodejs_/.test(l)).join('\n'));

  // The database goes away.
  await p.cut();
  let ready = 200;
  for (let i = 0; i < 100 && ready !== 503; i++) {
    ready = (await get('/health/ready')).status;
    if (ready !== 503) await sleep(100);
  }
  t.equal(ready, 503, '/health/ready answers 503 while the database is unreachable');
  t.equal((await get('/health/live')).status, 200, '/health/live still 200');
  t.equal((await get('/metrics')).status, 200, '/metrics still answers');
  await w.waitFor((l) => ['connection_error', 'database_unavailable', 'job_failed'].includes(l.event), 30_000, 'the outage in the log');
  // Meanwhile producers go on (directly, not through the proxy).
  await db.sql`insert into daily_aggregation_manifest (portfolio_id, aggregation_date, expected_count)
               select 'P1', date '2021-06-01' + i, 0 from generate_series(0, 9) i`;

  await p.restore();
  for (let i = 0; i < 300 && ready !== 200; i++) {
    ready = (await get('/health/ready')).status;
    if (ready !== 200) await sleep(100);
  }
  t.equal(ready, 200, '/health/ready is 200 again once the database answers');
  const left = await untilAllCurrent(db, w, 120_000);
  t.equal(left, 0, `the worker recovered by itself: all ${total + 10} days current`);
  t.equal(w.child.exitCode, null, 'the same worker process');
  const after = await get('/metrics');
  t.match(after.body, /portfolio_timeseries_portfolio_days\{state="current"\} \d+/);
  w.kill('SIGTERM');
  t.equal((await w.exited).code, 0, 'SIGTERM: exit 0');
});

t.test('worker --once: SIGTERM during a backfill finishes the running batch, exits 0, leaves nothing locked; the next run completes', async (t) => {
  const db = await freshDatabase(t);
  const total = await backfill(db, 20, 730, 5);
  const w = startWorkerProcess(db.url, ['--once']);
  t.teardown(() => w.kill('SIGKILL'));
  await w.waitFor((l) => l.event === 'portfolio_computed' && Number(l.portfolio_days) > 0, 60_000, 'a computed portfolio');
  w.kill('SIGTERM');
  const { code } = await w.exited;
  t.equal(code, 0, 'exit 0');
  const stop = w.lines.find((l) => l.event === 'worker_stopped')!;
  t.equal(stop.reason, 'SIGTERM', 'the stop line says why');
  t.ok(Number(stop.portfolio_days) > 0, `${String(stop.portfolio_days)} portfolio days were computed before the stop`);
  const rows = await jobRows(db);
  t.same({ locked: rows.locked, failed: rows.failed }, { locked: 0, failed: 0 }, 'no job row locked or failed');
  const again = startWorkerProcess(db.url, ['--once']);
  t.teardown(() => again.kill('SIGKILL'));
  t.equal((await again.exited).code, 0, 'the next worker --once completes the rest and exits 0');
  t.equal(await notCurrent(db), 0, `all ${total} days current`);
});
