// The README's producer example is complete and its printed numbers are true: the SQL block is run
// with psql on a fresh migrated database, then `worker --once`; both days are `current`, and the
// README's query prints exactly the table the README shows. And the documentation points at
// nothing outside the repository.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freshDatabase } from './helpers/db.js';
import type { DayStatus } from '../src/types.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = path.join(root, 'bin', 'portfolio-timeseries.js');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');

/** The first fenced code block after `<!-- readme-test: <name>`. */
function block(name: string): string {
  const at = readme.indexOf(`<!-- readme-test: ${name}`);
  if (at < 0) throw new Error(`README.md has no "readme-test: ${name}" marker`);
  const m = /```[a-z]*\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!m?.[1]) throw new Error(`no code block after the "${name}" marker`);
  return m[1];
}

const trimLines = (text: string) => text.split('\n').map((l) => l.trimEnd()).join('\n').trim();

function psql(url: string, sql: string) {
  return spawnSync('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-q', '-P', 'pager=off', url], { input: sql, encoding: 'utf8' });
}

function cli(args: string[], url: string) {
  return spawnSync(process.execPath, [bin, ...args], { env: { ...process.env, DATABASE_URL: url }, encoding: 'utf8' });
}

t.test("the README's producer example computes the numbers the README prints", async (t) => {
  const db = await freshDatabase(t);
  const load = psql(db.url, block('producer'));
  t.equal(load.status, 0, `the producer block runs as written (${load.stderr})`);
  t.equal(load.stderr, '', 'without errors or warnings');

  const worker = cli(['worker', '--once'], db.url);
  t.equal(worker.status, 0, worker.stderr);
  const status = cli(['status', '--portfolio', 'P1', '--json'], db.url);
  t.same((JSON.parse(status.stdout) as DayStatus[]).map((d) => [d.date, d.state, d.has_row]), [
    ['2025-09-01', 'current', true],
    ['2025-09-02', 'current', true],
  ], 'both days are current');
  const human = cli(['status', '--portfolio', 'P1'], db.url);
  t.ok(readme.includes(trimLines(human.stdout)), `the README shows this status output:\n${human.stdout}`);

  const query = psql(db.url, block('query'));
  t.equal(query.status, 0, query.stderr);
  t.equal(trimLines(query.stdout), trimLines(block('output')), 'the README prints what the query returns');
});

t.test('documentation links resolve inside the repository', async (t) => {
  const docs = ['README.md', ...readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  for (const doc of docs) {
    const text = readFileSync(path.join(root, doc), 'utf8');
    t.notMatch(text, /shared\//, `${doc} does not point at shared/`);
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!target || /^(https?:|mailto:|#)/.test(target)) continue;
      const file = path.resolve(root, path.dirname(doc), target.split('#')[0]!);
      t.ok(file.startsWith(root) && existsSync(file), `${doc}: link ${target} resolves inside the repository`);
    }
  }
});
