// `npm run demo` cleans up after itself: after a normal run, and after SIGTERM or SIGINT (sent to
// npm, as a supervisor or `kill` would) in the middle of one, its temporary folder (server data,
// binaries when copied, password file) is gone and no PostgreSQL process of it is left. TMPDIR
// points at a folder of this test, so anything left behind (tsx's cache included) is seen.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { platformBinaries, startEmbeddedPostgres } from '../scripts/demo/embedded-postgres.js';
import { cleanEnv, withoutNodeOptions } from './helpers/env.js';

const root = fileURLToPath(new URL('..', import.meta.url));

interface DemoRun { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/**
 * Run the demo; with `signal`, send it once the throwaway server is up (at "loading"); with
 * 'close-stdout', close the read end of its stdout at once (`npm run demo | head -1`).
 */
function demo(tmp: string, out: string, days: number, signal?: NodeJS.Signals | 'close-stdout'): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const [cmd, args] = withoutNodeOptions('npm', ['run', '--silent', 'demo', '--', '--days', String(days), '--out', out]);
    const child = spawn(cmd, args, { cwd: root, env: cleanEnv({ TMPDIR: tmp, DATABASE_URL: undefined }), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let sent = false;
    if (signal === 'close-stdout') child.stdout.destroy();
    else child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => {
      stderr += String(d);
      if (signal && signal !== 'close-stdout' && !sent && stderr.includes('loading')) {
        sent = true;
        child.kill(signal);
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, signal: sig, stdout, stderr });
    });
  });
}

function leftovers(tmp: string): { files: string[]; processes: string } {
  const files = existsSync(tmp) ? readdirSync(tmp) : [];
  const ps = spawnSync('pgrep', ['-af', tmp], { encoding: 'utf8' });
  return { files, processes: ps.stdout.trim() };
}

t.test('demo: a complete run, then SIGTERM and SIGINT mid-run; nothing is left behind', async (t) => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'pt-demo-tmp-'));
  chmodSync(tmp, 0o755); // as root the server runs as another user, which must reach TMPDIR
  const outDir = mkdtempSync(path.join(tmpdir(), 'pt-demo-out-'));
  t.teardown(() => {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(outDir, { recursive: true, force: true });
  });

  const out = path.join(outDir, 'report.html');
  const run = await demo(tmp, out, 5);
  t.equal(run.code, 0, `the demo ran (stderr: ${run.stderr.slice(-2000)})`);
  t.match(run.stdout, /GROWTH_USD\s+USD\s+4 of 5/, 'the summary lists the portfolios');
  t.match(run.stdout, /PENSION_EUR\s+2025-01-08\s+waiting: 4 of 5/, 'and the days that are not current, with why');
  t.match(run.stderr, /loading +\[#+\] 100%/, 'progress lines on stderr (not a terminal: plain lines)');
  t.notMatch(run.stderr, /\r|\x1b\[/, 'no terminal control characters when stderr is not a terminal');
  t.ok(existsSync(out), 'the report was written');
  t.same(leftovers(tmp), { files: [], processes: '' }, 'no temporary folder, no PostgreSQL process');

  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    const r = await demo(tmp, path.join(outDir, `${signal}.html`), 260, signal);
    t.equal(r.code, code, `${signal}: exit ${code} (stderr: ${r.stderr.slice(-1000)})`);
    t.match(r.stderr, `${signal}: stopping and removing`, `${signal}: it says what it does`);
    t.same(leftovers(tmp), { files: [], processes: '' }, `${signal}: no temporary folder, no PostgreSQL process`);
  }

  const closed = await demo(tmp, path.join(outDir, 'closed.html'), 5, 'close-stdout');
  t.not(closed.code, 0, `stdout closed by its reader: the demo stops (exit ${closed.code})`);
  t.same(leftovers(tmp), { files: [], processes: '' }, 'stdout closed: no temporary folder, no PostgreSQL process');
});

t.test('as root, binaries the server user cannot reach are copied into the server folder', async (t) => {
  if (process.getuid?.() !== 0) {
    t.pass('skipped: only root runs PostgreSQL as another user');
    return;
  }
  // Binaries in a folder only root can enter, as in a checkout made with `mktemp -d`.
  const hidden = mkdtempSync(path.join(tmpdir(), 'pt-hidden-'));
  t.teardown(() => rmSync(hidden, { recursive: true, force: true }));
  const native = path.dirname(path.dirname((await platformBinaries()).postgres));
  cpSync(native, path.join(hidden, 'native'), { recursive: true, verbatimSymlinks: true });
  const messages: string[] = [];
  const server = await startEmbeddedPostgres({
    say: (m) => messages.push(m),
    binaries: { initdb: path.join(hidden, 'native/bin/initdb'), postgres: path.join(hidden, 'native/bin/postgres') },
  });
  try {
    t.match(messages.join('\n'), /cannot reach .*: copying the PostgreSQL binaries into/, 'it says it copies the binaries');
    const sql = postgres(server.url, { max: 1, onnotice: () => {} });
    const [row] = await sql<{ n: number }[]>`select 1 + 1 as n`;
    await sql.end();
    t.equal(row?.n, 2, 'the server answers');
  } finally {
    await server.stop();
  }
  t.notOk(existsSync(server.dir), 'its folder is removed');
  t.equal(spawnSync('pgrep', ['-af', server.dir], { encoding: 'utf8' }).stdout.trim(), '', 'no process left');
});
