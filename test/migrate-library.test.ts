// migrate() as a library call inside someone else's process: it reports through the caller's
// logger (nothing on stdout), and when it returns nothing of graphile-migrate's is left behind:
// graphile-migrate keeps a pool for 200 ms after use and calls process.exit(1) if that pool's
// connection is terminated meanwhile, so a caller that drops or resets the database right after
// migrate() must not be killed. Runs the built library (dist/) in a child process.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { databaseUrl, serverUrl } from './helpers/db.js';

const root = fileURLToPath(new URL('..', import.meta.url));

async function emptyDatabase(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const name = `pt_test_${Date.now().toString(36)}_lib`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  t.teardown(async () => {
    const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await a.unsafe(`drop database if exists "${name}" with (force)`);
    await a.end();
  });
  return databaseUrl(name);
}

// Migrate, then at once terminate every other session of the database (what a test harness that
// drops the database, or a DBA's pg_terminate_backend, does), then stay alive a little longer than
// graphile-migrate's pool keep-alive. The child exits on its own: no process.exit.
const child = `
import { migrate } from './dist/index.js';
import postgres from 'postgres';
const url = process.env.DATABASE_URL;
const lines = [];
const logger = {
  error: (m) => lines.push('error: ' + m), warn: (m) => lines.push('warn: ' + m),
  info: (m) => lines.push('info: ' + m), debug: (m) => lines.push('debug: ' + m),
};
await migrate(url, { logger });
const sql = postgres(url, { max: 1, onnotice: () => {} });
const [{ n }] = await sql\`select count(*)::int as n from pg_stat_activity
  where datname = current_database() and pid <> pg_backend_pid()\`;
await sql\`select pg_terminate_backend(pid) from pg_stat_activity
  where datname = current_database() and pid <> pg_backend_pid()\`;
await sql.end();
await new Promise((r) => setTimeout(r, 500));
process.stderr.write(JSON.stringify({ otherSessions: n, lines }) + '\\n');
`;

function runChild(url: string) {
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], {
    cwd: root, env: { ...process.env, DATABASE_URL: url }, encoding: 'utf8', timeout: 60_000,
  });
  return { ...r, seconds: (Date.now() - started) / 1000 };
}

t.test('migrate() logs through the caller, leaves no connection behind, survives a terminate', async (t) => {
  const url = await emptyDatabase(t);
  for (const run of ['first (applies everything)', 'second (nothing to do)']) {
    const r = runChild(url);
    t.equal(r.status, 0, `${run}: the process was not killed by graphile-migrate's pool (stderr: ${r.stderr})`);
    t.equal(r.stdout, '', `${run}: nothing on stdout`);
    const report = JSON.parse(r.stderr.trim().split('\n').pop() ?? '{}') as { otherSessions: number; lines: string[] };
    t.equal(report.otherSessions, 0, `${run}: no session of migrate() is open when it returns`);
    t.notOk(report.lines.some((l) => l.startsWith('error') || l.startsWith('warn')), `${run}: no warnings`);
    if (run.startsWith('first')) {
      t.ok(report.lines.some((l) => /info: .*Running migration '000001-/.test(l)), "graphile-migrate's progress reaches the logger");
    }
    t.ok(r.seconds < 30, `${run}: exits by itself (${r.seconds} s)`);
  }
});
