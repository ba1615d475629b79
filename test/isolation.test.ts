// Interleavings with PostgreSQL's isolation tester: every spec in test/isolation/specs runs in a
// fresh database (cloned from the migrated template, plus the test-only pt_test helpers) and its
// output must equal test/isolation/expected/<spec>.out. Each permutation ends with pt_test.check(),
// which compares the outputs and status() with a fresh load of the same final inputs, so a spec
// cannot pass on a wrong row: its expected output says `ok` there.
//
// PT_ISOLATION_ACCEPT=1 writes the actual outputs as the expected ones (review them before
// committing: every check line must say ok).
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freshDatabase } from './helpers/db.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const specDir = path.join(here, 'isolation', 'specs');
const expectedDir = path.join(here, 'isolation', 'expected');
const helpers = readFileSync(path.join(here, 'isolation', 'pt_test.sql'), 'utf8');
const accept = process.env.PT_ISOLATION_ACCEPT === '1';
const only = process.env.PT_ISOLATION_SPEC;

function isolationTester(): string {
  const libdir = execFileSync('pg_config', ['--pkglibdir'], { encoding: 'utf8' }).trim();
  return path.join(libdir, 'pgxs', 'src', 'test', 'isolation', 'isolationtester');
}

function conninfo(url: string): string {
  const u = new URL(url);
  const parts = [`host=${u.hostname}`, `port=${u.port || '5432'}`, `dbname=${u.pathname.slice(1)}`];
  if (u.username) parts.push(`user=${decodeURIComponent(u.username)}`);
  if (u.password) parts.push(`password=${decodeURIComponent(u.password)}`);
  return parts.join(' ');
}

async function run(binary: string, conn: string, spec: string): Promise<{ out: string; code: number | null }> {
  const child = spawn(binary, [conn], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
  child.stderr.setEncoding('utf8').on('data', (c: string) => { out += c; });
  child.stdin.end(spec);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { out, code };
}

const binary = isolationTester();
const specs = readdirSync(specDir).filter((f) => f.endsWith('.spec') && (!only || f.startsWith(only))).sort();

t.test('the isolation tester is installed', async (t) => {
  t.ok(existsSync(binary), `${binary} exists (package postgresql-15)`);
  // PT_ISOLATION_SPEC narrows the run (the mutation check runs one spec per mutant).
  t.ok(only ? specs.length >= 1 : specs.length >= 10, `${specs.length} specs${only ? ` matching ${only}` : ''}`);
});

for (const file of specs) {
  const name = file.replace(/\.spec$/, '');
  t.test(`isolation: ${name}`, async (t) => {
    const db = await freshDatabase(t);
    await db.sql.unsafe(helpers);
    const spec = readFileSync(path.join(specDir, file), 'utf8');
    const { out, code } = await run(binary, conninfo(db.url), spec);
    t.equal(code, 0, `isolationtester exited 0`);
    const expectedFile = path.join(expectedDir, `${name}.out`);
    if (accept) writeFileSync(expectedFile, out);
    const expected = existsSync(expectedFile) ? readFileSync(expectedFile, 'utf8') : '';
    t.equal(out, expected, `${name}: output equals expected/${name}.out`);
    const checks = out.split('\n').filter((l, i, lines) => lines[i - 1]?.startsWith('-----') && lines[i - 2] === 'check');
    t.ok(checks.length > 0 && checks.every((c) => c.trim() === 'ok'), `${name}: every check says ok (${checks.length} checks)`);
  });
}
