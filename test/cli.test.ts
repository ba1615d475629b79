// The CLI as an operator runs it: bin/portfolio-timeseries.js (built by `npm run build`).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { freshDatabase } from './helpers/db.js';
import { declare, insertInstrument, insertPortfolio, insertSnapshot } from './helpers/fixtures.js';
import type { DayStatus } from '../src/types.js';

const bin = new URL('../bin/portfolio-timeseries.js', import.meta.url).pathname;

function cli(args: string[], env: Record<string, string | undefined>) {
  const r = spawnSync(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('status --json, worker --once', async (t) => {
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
  const env = { DATABASE_URL: db.url };

  let r = cli(['status', '--json'], env);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout) as DayStatus[], [
    { portfolio_id: 'P1', date: '2025-01-02', state: 'queued', detail: 'ready, not computed yet', has_row: false },
    { portfolio_id: 'P1', date: '2025-01-03', state: 'waiting', detail: '1 of 2', has_row: false },
    { portfolio_id: 'P1', date: '2025-01-06', state: 'undeclared', detail: '1 positions, no manifest row', has_row: false },
  ]);

  r = cli(['worker', '--once'], env);
  t.equal(r.code, 0, r.stderr);
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

t.test('worker stops cleanly on SIGTERM and SIGINT', async (t) => {
  const db = await freshDatabase(t);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const child = spawn(process.execPath, [bin, 'worker', '--concurrency', '2'], {
      env: { ...process.env, DATABASE_URL: db.url }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += String(d)));
    await new Promise((r) => setTimeout(r, 2000));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill(signal);
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 15000))]);
    t.equal(code, 0, `exit code 0 after ${signal}`);
    t.match(stderr, signal, 'it says why it stops');
    if (code === 'timeout') child.kill('SIGKILL');
  }
});

t.test('usage and connection errors', async (t) => {
  let r = cli(['worker', '--concurrency', '0'], { DATABASE_URL: 'postgres://127.0.0.1/none' });
  t.equal(r.code, 2);
  t.match(r.stderr, '--concurrency must be a whole number >= 1');
  r = cli(['frobnicate'], {});
  t.equal(r.code, 2);
  t.match(r.stderr, 'unknown command');
  r = cli(['status'], { DATABASE_URL: undefined });
  t.equal(r.code, 1);
  t.match(r.stderr, 'DATABASE_URL is not set');
});
