// Figure 4, cost follows the change: compute_portfolio called directly (after fan_out(), each in
// its own REPEATABLE READ transaction, no worker running), timed on the server with
// clock_timestamp() around the call; medians over repeats after one untimed warm-up.
//   (a) one new complete day on a portfolio with `longHistory` computed days vs one with
//       `shortHistory` (both portfolios in the same database, measured alternately);
//   (b) a correction of one snapshot value `back` days before the last day (early cutoff: its
//       day and the next day's BOD change) vs the same correction `recent` days back.
import { TABLES, valuesRow, type PortfolioDay } from './book.js';
import { median, msText, ratioText, row, type Ctx, type FigureResult, type Row, type StatsMode } from './context.js';
import { drainOnce, failed, verify, type Verification } from './engine.js';
import { analyzeAll, copyAll, loadReference, session, statisticsPresent, type BenchDb, type Pg } from './pg.js';

export interface CostRun {
  mode: StatsMode;
  long: number[];
  short: number[];
  old: number[];
  recent: number[];
  medians: { long: number; short: number; old: number; recent: number };
  ratioDay: number;
  ratioCorrection: number;
  work: Record<string, unknown>;
  verification: Verification;
}

function costBook(ctx: Ctx) {
  const s = ctx.sizes.cost;
  return ctx.book({
    groups: [
      { count: 1, positions: s.positions },
      { count: 1, positions: s.positions, firstDay: s.longHistory - s.shortHistory },
    ],
    days: s.longHistory + s.repeats + 1, seed: ctx.seed, gapRate: 0.02,
  });
}

async function prepared(ctx: Ctx): Promise<BenchDb> {
  const cached = ctx.memo.get('cost:db') as BenchDb | undefined;
  if (cached) return cached;
  const s = ctx.sizes.cost;
  const book = costBook(ctx);
  ctx.log(`4 cost: loading and computing ${s.longHistory} and ${s.shortHistory} days of ${s.positions} positions ...`);
  const db = await ctx.clone('f4_history');
  const sql = session(db.url);
  await loadReference(sql, book);
  await copyAll(sql, book.days.slice(0, s.longHistory));
  await sql.unsafe(`
    create schema pt_bench_timing;
    create function pt_bench_timing.compute(p text) returns table (ms float8, result jsonb)
    language plpgsql as $$
    declare
      t0 timestamptz;
      r jsonb;
    begin
      t0 := clock_timestamp();
      r := portfolio_timeseries_engine.compute_portfolio(p);
      return query select extract(epoch from clock_timestamp() - t0)::float8 * 1000, r;
    end;
    $$;`).simple();
  await sql.end();
  await drainOnce(db.url, 2);
  ctx.memo.set('cost:db', db);
  return db;
}

export async function dropPrepared(ctx: Ctx): Promise<void> {
  const db = ctx.memo.get('cost:db') as BenchDb | undefined;
  if (db) await ctx.drop(db);
  ctx.memo.delete('cost:db');
}

interface Job {
  ms: number;
  result: { portfolio_days?: number; position_days?: number; bod_updates?: number; busy?: boolean };
}

/** fan_out(), then compute_portfolio(p), each in a REPEATABLE READ transaction. */
async function timedJob(sql: Pg, portfolioId: string): Promise<Job> {
  await sql`begin isolation level repeatable read`;
  await sql`select portfolio_timeseries_engine.fan_out()`;
  await sql`commit`;
  await sql`begin isolation level repeatable read`;
  const [r] = await sql<Job[]>`select ms, result from pt_bench_timing.compute(${portfolioId})`;
  await sql`commit`;
  if (r!.result.busy) throw new Error(`compute_portfolio(${portfolioId}) found the portfolio busy`);
  return r!;
}

async function writeDay(sql: Pg, p: PortfolioDay): Promise<void> {
  const ins = (t: keyof typeof TABLES, lines: string[]) =>
    `insert into ${TABLES[t].table} (${TABLES[t].columns.join(', ')}) values ${lines.map(valuesRow).join(', ')}`;
  await sql.begin(async (tx) => {
    await tx.unsafe(ins('snapshots', p.snapshots));
    if (p.cashflows.length > 0) await tx.unsafe(ins('cashflows', p.cashflows));
    await tx.unsafe(ins('manifests', [p.manifest]));
  });
}

export async function cost(ctx: Ctx, mode: StatsMode): Promise<CostRun> {
  const s = ctx.sizes.cost;
  const book = costBook(ctx);
  const [longId, shortId] = [book.groups[0]![0]!, book.groups[1]![0]!];
  const source = await prepared(ctx);
  const db = await ctx.clone(`f4_${mode === 'none' ? 'nostats' : 'an'}`, source);
  const label = `4 cost (${mode === 'none' ? 'no statistics' : 'analysed'})`;
  try {
    if (mode === 'analysed') await analyzeAll(db.url);
    const sql = session(db.url);
    const long: number[] = [];
    const short: number[] = [];
    const old: number[] = [];
    const recent: number[] = [];
    const odd: string[] = [];
    const work: Record<string, unknown> = {};
    try {
      ctx.log(`4 cost (${mode}): ${s.repeats} one-day jobs after ${s.longHistory} and ${s.shortHistory} days ...`);
      for (let r = 0; r <= s.repeats; r++) {
        const day = book.days[s.longHistory + r]!;
        const order = r % 2 === 0 ? [longId, shortId] : [shortId, longId];
        for (const id of order) {
          await writeDay(sql, day.portfolios.find((p) => p.portfolioId === id)!);
          const job = await timedJob(sql, id);
          if (job.result.portfolio_days !== 1) odd.push(`one-day job of ${id} on ${day.date}: ${JSON.stringify(job.result)}`);
          if (r === 0) {
            work[`day ${id === longId ? 'long' : 'short'}`] = job.result;
            continue;
          }
          (id === longId ? long : short).push(job.ms);
        }
      }
      const lastIndex = s.longHistory + s.repeats;
      const dates = { old: book.dates[lastIndex - s.back]!, recent: book.dates[lastIndex - s.recent]! };
      const securitiesOn = (date: string) =>
        book.days.find((d) => d.date === date)!.portfolios.find((p) => p.portfolioId === longId)!.snapshots.map((l) => l.split('\t')[1]!);
      const secs = { old: securitiesOn(dates.old), recent: securitiesOn(dates.recent) };
      ctx.log(`4 cost (${mode}): ${s.repeats} corrections on ${dates.old} and on ${dates.recent} ...`);
      for (let r = 0; r <= s.repeats; r++) {
        const order: ('old' | 'recent')[] = r % 2 === 0 ? ['old', 'recent'] : ['recent', 'old'];
        for (const which of order) {
          const security = secs[which][r % secs[which].length]!;
          const delta = r % 2 === 0 ? '1.00' : '-1.00';
          const res = await sql`
            update public.daily_position_snapshots
            set market_value = market_value + ${delta}::numeric, market_value_local = market_value_local + ${delta}::numeric
            where portfolio_id = ${longId} and security_id = ${security} and date = ${dates[which]} and epoch = 0`;
          if (res.count !== 1) throw new Error(`correction of ${security} on ${dates[which]} updated ${res.count} rows`);
          const job = await timedJob(sql, longId);
          // The corrected day and the key's next position day (whose BOD it is) are rebuilt.
          if (!(job.result.portfolio_days! >= 1)) odd.push(`correction on ${dates[which]}: ${JSON.stringify(job.result)}`);
          if (r === 0) {
            work[`correction ${which}`] = job.result;
            continue;
          }
          (which === 'old' ? old : recent).push(job.ms);
        }
      }
    } finally {
      await sql.end();
    }
    let verification = await verify(label, db.url);
    const problems: string[] = [];
    if (odd.length > 0) problems.push(`jobs that did not compute the day they were timed for: ${odd.slice(0, 3).join('; ')}`);
    if (mode === 'none') {
      const st = await statisticsPresent(db.url);
      if (st.autoAnalysed.length > 0 || st.analysedTables.length > 0) {
        problems.push(`statistics present in a no-statistics run: ${[...st.analysedTables, ...st.autoAnalysed].join(', ')}`);
      }
    }
    if (problems.length > 0) verification = { ...verification, ok: false, message: `${verification.message}; ${problems.join('; ')}` };
    const medians = { long: median(long), short: median(short), old: median(old), recent: median(recent) };
    const run: CostRun = {
      mode, long, short, old, recent, medians,
      ratioDay: medians.long / medians.short, ratioCorrection: medians.old / medians.recent, work, verification,
    };
    ctx.log(`4 cost (${mode}): one day ${msText(medians.long)} vs ${msText(medians.short)}, correction ${msText(medians.old)} vs ` +
      `${msText(medians.recent)} (work per job: ${Object.entries(work).map(([k, v]) => {
        const w = v as { portfolio_days?: number; position_days?: number };
        return `${k} ${w.portfolio_days}/${w.position_days}`;
      }).join(', ')} portfolio/position days); ${verification.ok ? 'verified' : `NOT VERIFIED: ${verification.message}`}`);
    return run;
  } finally {
    await ctx.drop(db);
  }
}

export async function figure4(ctx: Ctx, withNoStats: boolean): Promise<FigureResult> {
  const s = ctx.sizes.cost;
  const rows: Row[] = [];
  const verifications: Verification[] = [];
  const details: Record<string, unknown> = {};
  try {
    const r = await cost(ctx, 'analysed');
    ctx.memo.set('cost:analysed', r);
    verifications.push(r.verification);
    details.analysed = r;
    rows.push(row('4a', `one-day job, ${s.positions} positions: ${s.longHistory} vs ${s.shortHistory} days of history`,
      `${ratioText(r.ratioDay)} (${msText(r.medians.long)} vs ${msText(r.medians.short)})`, '<= 1.2x', r.ratioDay <= 1.2, r.ratioDay));
    rows.push(row('4b', `correction ${s.back} vs ${s.recent} days back (early cutoff)`,
      `${ratioText(r.ratioCorrection)} (${msText(r.medians.old)} vs ${msText(r.medians.recent)})`, '<= 1.2x', r.ratioCorrection <= 1.2, r.ratioCorrection));
  } catch (e) {
    verifications.push(failed('4 cost (analysed)', e));
    rows.push(row('4a', 'one-day job, long vs short history', 'n/a', '<= 1.2x', false, null));
    rows.push(row('4b', 'correction long ago vs last week', 'n/a', '<= 1.2x', false, null));
  }
  if (withNoStats) {
    try {
      const r = await cost(ctx, 'none');
      ctx.memo.set('cost:none', r);
      verifications.push(r.verification);
      details.noStatistics = r;
    } catch (e) {
      verifications.push(failed('4 cost (no statistics)', e));
      ctx.memo.set('cost:none', null);
    }
  }
  return { rows, verifications, details };
}
