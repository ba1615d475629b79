// The CLI as an operator runs it: bin/portfolio-timeseries.js (built by `npm run build`).
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import { databaseUrl, freshDatabase, serverUrl } from './helpers/db.js';
import { cli, cliCommand, startWorkerProcess } from './helpers/cli.js';
import { httpServer, silentServer } from './helpers/fake-servers.js';
import { declare, insertInstrument, insertPortfolio, insertSnapshot } from './helpers/fixtures.js';
import type { DayStatus, StatusSummary } from '../src/types.js';

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

t.test('status --json, filters and --summary; worker --once', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'P1', 'USD');
  await insertInstrument(sql, 'A', 'USD');
  await insertInstrument(sql, 'B', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'P1', security_id: 'A', date: '2025-01-02', quantity: 1, market_value: 10, market_value_local: 10 });
  await insertSnapshot(sql, { portfolio_id: 'P1', security_id: 'A', date: '2025-01-03', quantity: 1, market_value: 11, market_value_local: 11 });
  await insertSnapshot(sql, { portfolio_id: 'P1', security_id: 'A', date: '2025-01-06', quantity: 1, market_value: 12, market_value_local: 12 });
  await declare(sql, 'P1', '2025-01-02', 1);
  await declare(sql, 'P1', '2025-01-03', 2);
  // P2 holds an instrument nobody has described: blocked, and status says so before any worker ran.
  await insertPortfolio(sql, 'P2', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'P2', security_id: 'X', date: '2025-01-02', quantity: 1, market_value: 5, market_value_local: 5 });
  await declare(sql, 'P2', '2025-01-02', 1);
  const env = { DATABASE_URL: db.url };

  let r = cli(['status', '--json'], env);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout) as DayStatus[], [
    { portfolio_id: 'P1', date: '2025-01-02', state: 'queued', detail: 'ready, not computed yet', has_row: false },
    { portfolio_id: 'P1', date: '2025-01-03', state: 'waiting', detail: '1 of 2', has_row: false },
    { portfolio_id: 'P1', date: '2025-01-06', state: 'undeclared', detail: '1 positions, no manifest row', has_row: false },
    { portfolio_id: 'P2', date: '2025-01-02', state: 'blocked', detail: 'instrument X unknown', has_row: false },
  ], 'a day that cannot be computed says why before any worker has run');

  r = cli(['status', '--state', 'waiting,undeclared', '--json'], env);
  t.same((JSON.parse(r.stdout) as DayStatus[]).map((d) => [d.portfolio_id, d.date, d.state]),
    [['P1', '2025-01-03', 'waiting'], ['P1', '2025-01-06', 'undeclared']], '--state filters (comma-separated)');
  r = cli(['status', '--state', 'blocked', '--state', 'queued', '--from', '2025-01-02', '--to', '2025-01-02', '--json'], env);
  t.same((JSON.parse(r.stdout) as DayStatus[]).map((d) => [d.portfolio_id, d.state]), [['P1', 'queued'], ['P2', 'blocked']],
    '--state repeated, --from and --to');
  r = cli(['status', '--portfolio', 'P1', '--from', '2025-01-03', '--json'], env);
  t.same((JSON.parse(r.stdout) as DayStatus[]).map((d) => d.date), ['2025-01-03', '2025-01-06'], '--from keeps the state computed from earlier days');
  r = cli(['status', '--summary', '--json'], env);
  t.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as StatusSummary;
  t.same(summary.states, { undeclared: 1, waiting: 1, waiting_previous_day: 0, blocked: 1, queued: 1, current: 0 }, 'counts per state');
  t.same(summary.oldest_not_current, { portfolio_id: 'P1', date: '2025-01-02', state: 'queued', detail: 'ready, not computed yet' });
  t.same(summary.blocked, [{ reason: 'instrument_unknown', days: 1, portfolios: 1, example: 'instrument X unknown' }], 'blocked days by reason');
  r = cli(['status', '--summary'], env);
  t.match(r.stdout, /oldest day not current: P1 2025-01-02 queued/);
  t.match(r.stdout, /instrument_unknown +1 days +1 portfolios +e\.g\. instrument X unknown/);

  r = cli(['worker', '--once'], env);
  t.equal(r.code, 0, 'worker --once exits 0: a blocked day is not ready work');
  t.match(r.stdout, /portfolio P2: 0 portfolio days.*stopped at 2025-01-02: instrument X unknown/, 'one line per computed portfolio, with its stop reason');
  t.match(r.stdout, /worker stopped \(done\)/, 'a stop line');
  r = cli(['status', '--portfolio', 'P1', '--json'], env);
  t.same((JSON.parse(r.stdout) as DayStatus[]).map((d) => [d.date, d.state, d.has_row]), [
    ['2025-01-02', 'current', true],
    ['2025-01-03', 'waiting', false],
    ['2025-01-06', 'undeclared', false],
  ]);
  r = cli(['status', '--portfolio', 'NOPE', '--json'], env);
  t.same(JSON.parse(r.stdout), [], 'an unknown portfolio has no days');
  r = cli(['status'], env);
  t.match(r.stdout, /P1 {2}2025-01-03 {2}waiting +no row {2}1 of 2/, 'human-readable status');
});

t.test('worker --once exits 1 when a portfolio keeps failing, and says which', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  for (const p of ['OK', 'BAD']) {
    await insertPortfolio(sql, p, 'USD');
    await insertSnapshot(sql, { portfolio_id: p, security_id: 'A', date: '2025-01-02', quantity: 1, market_value: 10, market_value_local: 10 });
    await declare(sql, p, '2025-01-02', 1);
  }
  await insertInstrument(sql, 'A', 'USD');
  // A defect that only hits one portfolio (the engine records the failure and retries it).
  await sql.unsafe(`create function public.pt_test_fail() returns trigger language plpgsql as
    $$ begin raise exception 'injected failure for %', new.portfolio_id; end $$;
    create trigger pt_test_fail before insert on public.portfolio_timeseries
      for each row when (new.portfolio_id = 'BAD') execute function public.pt_test_fail();`);
  const r = cli(['worker', '--once', '--log-format', 'json'], { DATABASE_URL: db.url });
  t.equal(r.code, 1, 'exit 1');
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const failed = lines.filter((l) => l.event === 'portfolio_failed');
  t.ok(failed.length >= 1 && failed.every((l) => l.portfolio_id === 'BAD' && /injected failure for BAD/.test(String(l.error))),
    'every failure is a line naming its portfolio and error');
  const stop = lines.find((l) => l.event === 'worker_stopped')!;
  t.same([stop.clean, stop.failed_portfolios, stop.reason], [false, ['BAD'], 'done'], 'the stop line says what is left');
  const st = cli(['status', '--portfolio', 'BAD', '--json'], { DATABASE_URL: db.url });
  t.match((JSON.parse(st.stdout) as DayStatus[])[0]!.detail, /the last job failed \(injected failure for BAD\)/, 'status shows the failure');
});

t.test('worker stops cleanly on SIGTERM and SIGINT; nothing is left locked', async (t) => {
  const db = await freshDatabase(t);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const w = startWorkerProcess(db.url, ['--concurrency', '2']);
    t.teardown(() => w.kill('SIGKILL'));
    await w.waitFor((l) => l.event === 'worker_started', 30_000, 'start line');
    w.kill(signal);
    const { code } = await w.exited;
    t.equal(code, 0, `exit code 0 after ${signal}`);
    t.ok(w.lines.some((l) => l.event === 'stopping' && l.reason === signal), 'it says why it stops');
    t.ok(w.lines.some((l) => l.event === 'worker_stopped'), 'and logs a stop line');
  }
  const [jobs] = await db.sql<{ locked: number; failed: number }[]>`
    select count(*) filter (where locked_at is not null)::int as locked,
           count(*) filter (where last_error is not null or attempts >= max_attempts)::int as failed
    from graphile_worker.jobs`;
  t.same({ ...jobs }, { locked: 0, failed: 0 }, 'no job row locked or looking failed');
});

t.test('--help on every command, --version, exit codes, errors that say what to do next', async (t) => {
  for (const command of ['migrate', 'worker', 'status', 'returns']) {
    const r = cli([command, '--help'], { DATABASE_URL: undefined });
    t.equal(r.code, 0, `${command} --help exits 0`);
    t.match(r.stdout, new RegExp(`usage: portfolio-timeseries ${command}`), `${command} --help prints its usage`);
    t.match(r.stdout, /exit codes: 0 /, `${command} --help lists its exit codes`);
  }
  let r = cli(['--help'], {});
  t.equal(r.code, 0);
  t.match(r.stdout, /exit codes: 0 success; 1 failed/);
  r = cli(['--version'], {});
  t.same([r.code, r.stdout.trim()], [0, version], '--version prints the package version');
  r = cli(['worker', '--concurrency', '0'], { DATABASE_URL: 'postgres://127.0.0.1/none' });
  t.equal(r.code, 2);
  t.match(r.stderr, '--concurrency must be a whole number from 1');
  r = cli(['status', '--state', 'done'], { DATABASE_URL: 'postgres://127.0.0.1/none' });
  t.equal(r.code, 2);
  t.match(r.stderr, '--state must be one of undeclared, waiting');
  r = cli(['worker', '--log-format', 'xml'], { DATABASE_URL: 'postgres://127.0.0.1/none' });
  t.equal(r.code, 2);
  r = cli(['frobnicate'], {});
  t.equal(r.code, 2);
  t.match(r.stderr, 'unknown command');
  r = cli(['status'], { DATABASE_URL: undefined });
  t.equal(r.code, 2);
  t.match(r.stderr, 'DATABASE_URL is not set');
  r = cli(['status'], { DATABASE_URL: 'not a url' });
  t.equal(r.code, 2);
  t.match(r.stderr, /DATABASE_URL is not a valid URL: expected postgres:\/\//, 'a malformed DATABASE_URL is named');
  r = cli(['worker', '--once'], { DATABASE_URL: 'mysql://x@h/d' });
  t.equal(r.code, 2);
  t.match(r.stderr, 'DATABASE_URL must start with postgres://');

  // A database that was never migrated.
  const name = `pt_test_${Date.now().toString(36)}_bare`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  t.teardown(async () => {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end();
  });
  for (const args of [['status'], ['worker', '--once'], ['returns', '--portfolio', 'P', '--from', '2025-01-01', '--to', '2025-01-31']]) {
    r = cli(args, { DATABASE_URL: databaseUrl(name) });
    t.equal(r.code, 3, `${args[0]} on an unmigrated database exits 3`);
    t.match(r.stderr + r.stdout, /run `portfolio-timeseries migrate`/, `${args[0]} says to run migrate`);
  }
});

t.test('servers that are not PostgreSQL: no hang, no reconnect loop, SIGTERM works', async (t) => {
  const http = await httpServer();
  const silent = await silentServer();
  t.teardown(() => Promise.all([http.close(), silent.close()]));
  const url = (port: number) => `postgres://postgres@127.0.0.1:${port}/db`;
  const env = (port: number) => ({ DATABASE_URL: url(port), PGCONNECT_TIMEOUT: '2' });
  const run = (args: string[], port: number) => new Promise<{ code: number | null; stderr: string; ms: number }>((resolve) => {
    const started = Date.now();
    const [cmd, argv] = cliCommand(args);
    const child = spawn(cmd, argv, { env: { ...process.env, ...env(port) }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += String(d); });
    child.on('exit', (code) => resolve({ code, stderr, ms: Date.now() - started }));
  });
  const [a, b, c] = await Promise.all([run(['status'], http.port), run(['status'], silent.port), run(['migrate'], silent.port)]);
  t.equal(a.code, 3, 'status against an HTTP server exits 3');
  t.match(a.stderr, /closed the connection during start-up: is it a PostgreSQL server/);
  t.ok(http.connections() <= 2, `one attempt, no reconnect loop (${http.connections()} connections)`);
  t.equal(b.code, 3, `status against a server that never answers exits 3 (after ${b.ms} ms)`);
  t.match(b.stderr, /no answer from .* in time/);
  t.equal(c.code, 3, `migrate against it exits 3 too (after ${c.ms} ms)`);
  t.ok(b.ms < 15_000 && c.ms < 15_000, 'within the connect timeout');

  // The worker waits for the database with back-off, and still stops on SIGTERM.
  const before = http.connections();
  const w = startWorkerProcess(url(http.port), [], { PGCONNECT_TIMEOUT: '2' });
  t.teardown(() => w.kill('SIGKILL'));
  await w.waitFor((l) => l.event === 'database_unavailable' && Number(l.attempt) >= 3, 30_000, 'three retries');
  const tries = http.connections() - before;
  t.ok(tries <= 6, `it retried with back-off (${tries} connections for 3 retries)`);
  w.kill('SIGTERM');
  const { code } = await w.exited;
  t.equal(code, 0, 'SIGTERM while waiting for the database: exit 0');
});
