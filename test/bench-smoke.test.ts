// The benchmark (npm run bench) on tiny sizes: every figure's scenarios run and verify (engine rows
// equal to the plain recompute, every declared day current). No timing is asserted, so two bench
// runs share the time here (figures 1-3 and 4, 6, 7). Figure 5 only re-runs figures 1, 3 and 4
// without planner statistics; it is left to `npm run bench -- --quick` to keep this test short.
// Also: the verification does catch a wrong row and a day that is not current, and the read-side
// bench (bench/returns.ts) runs on a small book.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { runBench } from '../bench/bench.js';
import { generateBook } from '../bench/book.js';
import { drainOnce, verify } from '../bench/engine.js';
import { copyAll, Databases, loadReference, session } from '../bench/pg.js';
import { TINY_SIZES } from '../bench/sizes.js';
import { templateName } from './helpers/db.js';

process.env.PT_TEMPLATE_DB ??= templateName;

t.test('every figure runs on tiny sizes and every scenario verifies', async (t) => {
  const lines: string[] = [];
  const sets = [[1, 2, 3], [4, 6, 7]];
  const results = await Promise.all(sets.map((only) =>
    runBench({ sizes: TINY_SIZES, seed: 3, only: new Set(only), log: (m) => lines.push(m) })));
  const verifications = results.flatMap((r) => r.verifications);
  for (const v of verifications) t.ok(v.ok, `${v.scenario}: ${v.message}`);
  t.ok(results.every((r) => r.verified), 'all verified');
  const rows = results.flatMap((r) => r.rows);
  const figures = new Set(rows.map((r) => Number.parseInt(r.figure, 10)));
  t.same([...figures].sort(), sets.flat(), 'a row for every figure');
  for (const r of rows) t.not(r.measured, 'n/a', `figure ${r.figure} ${r.what} was measured`);
  if (!results.every((r) => r.verified)) t.comment(lines.join('\n'));
});

t.test('the verification catches a wrong row and a day that is not current', async (t) => {
  const log = (m: string) => t.comment(m);
  const dbs = new Databases();
  t.teardown(() => dbs.dropAll(log));
  const book = generateBook({ groups: [{ count: 2, positions: 4 }], days: 4, seed: 5, gapRate: 0 });
  const db = await dbs.clone(await dbs.template(log), 'smoke_verify');
  const sql = session(db.url);
  t.teardown(() => sql.end());
  await loadReference(sql, book);
  await copyAll(sql, book.days);
  await drainOnce(db.url, 2);
  t.ok((await verify('clean', db.url)).ok, 'a clean run verifies');

  await sql`update public.position_timeseries set eod_market_value = eod_market_value + 0.0000000001
            where (portfolio_id, security_id, date) in (select portfolio_id, security_id, date from public.position_timeseries limit 1)`;
  const wrong = await verify('wrong row', db.url);
  t.notOk(wrong.ok, `a changed row fails: ${wrong.message}`);
  t.match(wrong.message, /not in the engine/);
  // A day declared with one position more than it has: waiting, not current.
  const last = book.days[book.days.length - 1]!.portfolios[0]!;
  await sql`update public.daily_aggregation_manifest set expected_count = expected_count + 1
            where portfolio_id = ${last.portfolioId} and aggregation_date = ${book.dates[book.dates.length - 1]!}`;
  await drainOnce(db.url, 2);
  const waiting = await verify('waiting day', db.url, { plain: false });
  t.notOk(waiting.ok, `a day that is not current fails: ${waiting.message}`);
  t.match(waiting.message, /not current/);
});

t.test('the read-side bench (npm run bench:returns) runs on a small book, both passes agreeing', async (t) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/returns.ts', '--portfolios', '5', '--runs', '1'], {
    cwd: new URL('..', import.meta.url).pathname, env: { ...process.env }, encoding: 'utf8',
  });
  t.equal(r.status, 0, r.stderr.slice(-2000));
  const lines = r.stdout.split('\n');
  for (const suffix of [' (no statistics)', '']) {
    t.ok(lines.some((l) => l.endsWith(`portfolio_twr_all, one call (261 days of history each)${suffix}`)), `the book figure${suffix || ' (analysed)'}`);
  }
  t.match(r.stderr, /no statistics: TEN twr 0\.\d+, mwr 0\.\d+ \(solved\)/);
  t.notMatch(r.stderr, /differ|have statistics|expected \d+/);
});
