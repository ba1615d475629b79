// profile: one portfolio of the bench book (25 x 250), analysed or not, compute with auto_explain.
import { appendFileSync, writeFileSync } from 'node:fs';
import postgres from 'postgres';
import { generateBook } from './book.js';
import { Databases, session, loadReference, copyAll, analyzeAll } from './pg.js';
const book = generateBook({ groups: [{ count: 4, positions: 25 }], days: 250, seed: 1, gapRate: 0.02 });
const dbs = new Databases();
const db = await dbs.clone(await dbs.template(() => {}), 'prof');
const sql = session(db.url);
await loadReference(sql, book);
await copyAll(sql, book.days);
await sql.end();
if (process.env.ANALYZE) await analyzeAll(db.url);
writeFileSync('/tmp/prof/notices.txt', '');
const s = postgres(db.url, { max: 1, onnotice: (n) => appendFileSync('/tmp/prof/notices.txt', n.message + '\n') });
await s.begin('isolation level repeatable read', (tx) => tx`select portfolio_timeseries_engine.fan_out()`);
const ps = (await s<{ p: string }[]>`select distinct portfolio_id as p from portfolio_timeseries_engine.change order by 1`).map((r) => r.p);
for (const [i, p] of ps.entries()) {
  if (i === ps.length - 1 && process.env.EXPLAIN) {
    await s`load 'auto_explain'`; await s`set auto_explain.log_min_duration = 0`; await s`set auto_explain.log_analyze = on`;
    await s`set auto_explain.log_timing = off`; await s`set auto_explain.log_nested_statements = on`; await s`set auto_explain.log_level = notice`;
  }
  const [r] = await s.begin('isolation level repeatable read', (tx) => tx`select clock_timestamp() as t0, portfolio_timeseries_engine.compute_portfolio(${p}) as r, clock_timestamp() as t1`);
  console.log(`${p}: ${(r!.t1 as Date).getTime() - (r!.t0 as Date).getTime()} ms ${JSON.stringify(r!.r).slice(0, 80)}`);
}
await s.end();
await dbs.dropAll(() => {});
