// Where compute_portfolio spends its time: EXPLAIN ANALYZE of every statement it runs
// (auto_explain with log_nested_statements, sent to this client as NOTICEs), for
//   1. a backfill job: one portfolio's whole history in one job (what a drain after a load does);
//   2. an incremental job: one new day at the end of a computed history (what a live worker does);
//   3. one day's snapshot COPY (the statement trigger's work).
//
//   PT_TEMPLATE_DB=pt_template_bench npx tsx bench/profile.ts \
//     --portfolios 20 --positions 20 --days 60 [--seed 1] [--analyze] [--plans /tmp/plans.txt] [--keep]
//
// --analyze runs ANALYZE before each profiled job (planner statistics as in a database in
// service); without it the tables of the freshly cloned database have none.
//
// Timings under EXPLAIN ANALYZE carry instrumentation overhead (clock reads per plan node); read
// them as shares, not as absolute costs.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type postgres from 'postgres';
import { runWorkerOnce } from '../src/worker.js';
import { generateBook } from './book.js';
import { copyAll, copyDays, Databases, loadReference, session, type Pg } from './pg.js';

const { values: args } = parseArgs({
  options: {
    portfolios: { type: 'string', default: '20' },
    positions: { type: 'string', default: '20' },
    days: { type: 'string', default: '60' },
    seed: { type: 'string', default: '1' },
    plans: { type: 'string' },
    keep: { type: 'boolean', default: false },
    analyze: { type: 'boolean', default: false },
  },
  strict: true,
});

const book = generateBook({
  groups: [{ count: Number(args.portfolios), positions: Number(args.positions) }], days: Number(args.days),
  seed: Number(args.seed), gapRate: 0.02,
});
const lastDay = book.days[book.days.length - 1]!;
const history = book.days.slice(0, -1);
const lastDayRows = lastDay.portfolios.reduce((n, p) => n + p.snapshots.length, 0);

interface Plan {
  ms: number;
  query: string;
  text: string;
}

/** Run `fn` with auto_explain on in `sql`'s session, collecting the plans it logs. */
async function explained(sql: Pg, plans: Plan[], fn: () => Promise<unknown>): Promise<number> {
  await sql.unsafe(`
    load 'auto_explain';
    set auto_explain.log_min_duration = 0;
    set auto_explain.log_analyze = on;
    set auto_explain.log_nested_statements = on;
    set auto_explain.log_level = notice;
    set client_min_messages = notice;
  `).simple();
  const t = performance.now();
  await fn();
  const ms = performance.now() - t;
  await sql.unsafe(`set auto_explain.log_min_duration = -1`);
  return ms;
}

/** compute_portfolio must run in a REPEATABLE READ transaction. */
async function inRepeatableRead(sql: Pg, portfolioId: string): Promise<void> {
  await sql`begin isolation level repeatable read`;
  await sql`select portfolio_timeseries_engine.compute_portfolio(${portfolioId})`;
  await sql`commit`;
}

function explainedSession(url: string, plans: Plan[]): Pg {
  return session(url, {
    onnotice: (notice: postgres.Notice) => {
      const message = String(notice.message ?? '');
      const m = /^duration: ([\d.]+) ms\s+plan:\n([\s\S]*)$/.exec(message);
      if (!m) return;
      const text = m[2]!;
      const q = /Query Text: ([\s\S]*?)\n\S/.exec(text);
      plans.push({ ms: Number(m[1]), query: (q?.[1] ?? text).replace(/\s+/g, ' ').trim(), text });
    },
  });
}

function report(title: string, wallMs: number, plans: Plan[]): string {
  const nested = plans.filter((p) => !/^select portfolio_timeseries_engine\.compute_portfolio|^copy /i.test(p.query));
  const top = plans.slice().sort((a, b) => b.ms - a.ms);
  const lines = [`\n== ${title}: ${wallMs.toFixed(1)} ms wall (under auto_explain), ${nested.length} nested statements`];
  for (const p of top.slice(0, 12)) {
    lines.push(`${p.ms.toFixed(1).padStart(9)} ms  ${p.query.slice(0, 150)}`);
  }
  return lines.join('\n');
}

const log = (m: string) => console.error(`[profile] ${m}`);
const dbs = new Databases();
const db = await dbs.clone(await dbs.template(log), 'profile');
const out: string[] = [];
const fullPlans: string[] = [];
try {
  const loader = session(db.url);
  await loadReference(loader, book);
  await copyAll(loader, history);
  if (args.analyze) await loader`analyze`;

  const backfill: Plan[] = [];
  const sql1 = explainedSession(db.url, backfill);
  const ms1 = await explained(sql1, backfill, () => inRepeatableRead(sql1, 'P00001'));
  await sql1.end();
  out.push(report(`backfill job, P00001, ${history.length} days`, ms1, backfill));
  fullPlans.push(`######## backfill\n${backfill.map((p) => `-- ${p.ms} ms\n${p.text}`).join('\n')}`);

  await runWorkerOnce({ connectionString: db.url, concurrency: 2 });

  // The last day's COPYs, the snapshot one under auto_explain (trigger statements included).
  const copyPlans: Plan[] = [];
  const sql2 = explainedSession(db.url, copyPlans);
  const ms2 = await explained(sql2, copyPlans, () => copyDays(sql2, [lastDay], 'snapshots'));
  await sql2.end();
  out.push(report(`snapshot COPY of one day (${lastDayRows} rows) with its statement trigger`, ms2, copyPlans));
  fullPlans.push(`######## snapshot copy\n${copyPlans.map((p) => `-- ${p.ms} ms\n${p.text}`).join('\n')}`);
  await copyDays(loader, [lastDay], 'cashflows');
  await copyDays(loader, [lastDay], 'manifests');
  if (args.analyze) await loader`analyze`;

  const incremental: Plan[] = [];
  const sql3 = explainedSession(db.url, incremental);
  const ms3 = await explained(sql3, incremental, async () => {
    await sql3`begin isolation level repeatable read`;
    await sql3`select portfolio_timeseries_engine.fan_out()`;
    await sql3`commit`;
    await inRepeatableRead(sql3, 'P00001');
  });
  await sql3.end();
  out.push(report(`incremental job, P00001, 1 new day after ${history.length} computed days`, ms3, incremental));
  fullPlans.push(`######## incremental\n${incremental.map((p) => `-- ${p.ms} ms\n${p.text}`).join('\n')}`);
  await loader.end();
  console.log(out.join('\n'));
  if (args.plans) {
    await writeFile(args.plans, fullPlans.join('\n\n'));
    console.log(`\nfull plans written to ${args.plans}`);
  }
} finally {
  await dbs.dropAll(log, args.keep);
}
