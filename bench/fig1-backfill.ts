// Figure 1, backfill: the whole book loaded with one COPY per input table, then
// `worker --once --concurrency 2` until every day is current, against the same COPYs with triggers
// off (session_replication_role = replica) followed by the plain set-based recompute, back to
// back in the same run. Also the per-day producer pattern (a worker running while each day's
// snapshots, cash flows and manifests are copied) against the same baseline.
import type { Book } from './book.js';
import { median, ratioText, row, secs, type Ctx, type FigureResult, type StatsMode } from './context.js';
import { allCurrent, drainOnce, failed, startWorker, verify, waitAllCurrent, type Verification } from './engine.js';
import { plainRecompute } from './plain.js';
import {
  analyzeAll, copyAll, copyDays, functionStats, loadReference, session, statisticsPresent, type FunctionStat,
} from './pg.js';

export interface BackfillRun {
  mode: StatsMode;
  baseline: {
    copyMs: number; plainMs: number; plainRuns: number[]; steps: Record<string, number>; totalMs: number;
    /** The same recompute into logged tables keyed and indexed like the outputs (reported, no goal). */
    keyedPlainMs: number; keyedTotalMs: number;
  };
  engine: {
    copyMs: number; drainMs: number; totalMs: number; drains: number;
    jobs: { runs: number; portfolioDays: number; positionDays: number };
    triggerMs: number; computeMs: number; functions: FunctionStat[];
  };
  ratio: number;
  verification: Verification;
}

export interface PerDayRun {
  loadMs: number;
  totalMs: number;
  currentAtLoadEnd: number;
  ratio: number;
  verification: Verification;
}

export function backfillBook(ctx: Ctx): Book {
  const s = ctx.sizes.backfill;
  return ctx.book({ groups: [{ count: s.portfolios, positions: s.positions }], days: s.days, seed: ctx.seed, gapRate: 0.02 });
}

const top = (fs: FunctionStat[]) => fs.filter((f) => f.total_ms >= 1).slice(0, 12);

/** The baseline: the same COPYs with triggers off, then the plain recompute. */
async function baseline(ctx: Ctx, book: Book, mode: StatsMode): Promise<BackfillRun['baseline']> {
  const db = await ctx.clone(`f1_plain_${mode === 'none' ? 'nostats' : 'an'}`);
  try {
    const sql = session(db.url, { replica: true });
    const t0 = performance.now();
    await loadReference(sql, book);
    await copyAll(sql, book.days);
    await sql`select 1`;
    const copyMs = performance.now() - t0;
    await sql.end();
    if (mode === 'analysed') await analyzeAll(db.url);
    const runs = [];
    for (let i = 0; i < ctx.sizes.backfill.plainRuns; i++) runs.push(await plainRecompute(db.url));
    const plainMs = median(runs.map((r) => r.ms));
    const keyed = await plainRecompute(db.url, { keyed: true });
    return {
      copyMs, plainMs, plainRuns: runs.map((r) => r.ms), steps: runs[0]!.steps, totalMs: copyMs + plainMs,
      keyedPlainMs: keyed.ms, keyedTotalMs: copyMs + keyed.ms,
    };
  } finally {
    await ctx.drop(db);
  }
}

async function engine(ctx: Ctx, book: Book, mode: StatsMode): Promise<{ run: BackfillRun['engine']; verification: Verification }> {
  const label = `1 backfill (${mode === 'none' ? 'no statistics' : 'analysed'})`;
  const db = await ctx.clone(`f1_engine_${mode === 'none' ? 'nostats' : 'an'}`);
  try {
    const sql = session(db.url);
    const t0 = performance.now();
    await loadReference(sql, book);
    await copyAll(sql, book.days);
    await sql`select 1`;
    const copyMs = performance.now() - t0;
    if (mode === 'analysed') await analyzeAll(db.url);
    let drainMs = 0;
    let drains = 0;
    // runWorkerOnce returns when nothing is runnable; one call is expected to be enough.
    do {
      drainMs += await drainOnce(db.url, 2);
      drains++;
    } while (drains < 3 && !(await allCurrent(sql)));
    const [jobs] = await sql<{ runs: number; portfolio_days: number; position_days: number }[]>`
      select coalesce(sum(runs), 0)::int as runs, coalesce(sum(portfolio_days), 0)::int as portfolio_days,
        coalesce(sum(position_days), 0)::int as position_days
      from portfolio_timeseries_engine.portfolio_job`;
    await sql.end();
    const functions = await functionStats(db.url);
    const sum = (p: (f: FunctionStat) => boolean) => functions.filter(p).reduce((a, f) => a + f.total_ms, 0);
    let verification = await verify(label, db.url);
    if (mode === 'none') {
      const st = await statisticsPresent(db.url);
      if (st.autoAnalysed.length > 0 || st.analysedTables.length > 0) {
        verification = { ...verification, ok: false, message: `${verification.message}; statistics present in a no-statistics run: ${[...st.analysedTables, ...st.autoAnalysed].join(', ')}` };
      }
    }
    return {
      run: {
        copyMs, drainMs, totalMs: copyMs + drainMs, drains,
        jobs: { runs: jobs!.runs, portfolioDays: jobs!.portfolio_days, positionDays: jobs!.position_days },
        triggerMs: sum((f) => f.funcname.startsWith('tg_')),
        computeMs: sum((f) => f.funcname === 'compute_portfolio'),
        functions: top(functions),
      },
      verification,
    };
  } finally {
    await ctx.drop(db);
  }
}

/** One backfill measurement (baseline, then engine) with statistics `mode`. */
export async function backfill(ctx: Ctx, mode: StatsMode): Promise<BackfillRun> {
  const book = backfillBook(ctx);
  ctx.log(`1 backfill (${mode}): baseline (COPY, triggers off, + plain recompute) ...`);
  const base = await baseline(ctx, book, mode);
  ctx.log(`1 backfill (${mode}): baseline ${secs(base.copyMs)} COPY + ${secs(base.plainMs)} plain = ${secs(base.totalMs)}; engine ...`);
  const { run, verification } = await engine(ctx, book, mode);
  ctx.log(`1 backfill (${mode}): engine ${secs(run.copyMs)} COPY + ${secs(run.drainMs)} drain = ${secs(run.totalMs)}; ${verification.ok ? 'verified' : `NOT VERIFIED: ${verification.message}`}`);
  return { mode, baseline: base, engine: run, ratio: run.totalMs / base.totalMs, verification };
}

/** The per-day producer pattern with a worker running (autovacuum on, as in service). */
export async function perDay(ctx: Ctx, baselineMs: number): Promise<PerDayRun> {
  const book = backfillBook(ctx);
  ctx.log(`1 per-day producer: ${book.days.length} days, a worker running ...`);
  const db = await ctx.clone('f1_perday', undefined, { autovacuum: true });
  try {
    const sql = session(db.url);
    const runner = await startWorker(db.url, 2);
    let loadMs: number;
    let totalMs: number;
    let currentAtLoadEnd: number;
    try {
      const t0 = performance.now();
      await loadReference(sql, book);
      for (const day of book.days) {
        await copyDays(sql, [day], 'snapshots');
        await copyDays(sql, [day], 'cashflows');
        await copyDays(sql, [day], 'manifests');
      }
      loadMs = performance.now() - t0;
      const [c] = await sql<{ n: number }[]>`
        select count(*)::int as n from portfolio_timeseries_engine.portfolio_day where expected_count is not null and not dirty`;
      currentAtLoadEnd = c!.n;
      totalMs = (await waitAllCurrent(db.url, { pollMs: 50 })) - t0;
    } finally {
      await runner.stop();
      await sql.end();
    }
    const verification = await verify('1 per-day producer pattern', db.url);
    ctx.log(`1 per-day producer: load ${secs(loadMs)}, all current after ${secs(totalMs)}; ${verification.ok ? 'verified' : `NOT VERIFIED: ${verification.message}`}`);
    return { loadMs, totalMs, currentAtLoadEnd, ratio: totalMs / baselineMs, verification };
  } finally {
    await ctx.drop(db);
  }
}

export async function figure1(ctx: Ctx, withNoStats: boolean): Promise<FigureResult> {
  const s = ctx.sizes.backfill;
  const size = `${s.portfolios} x ${s.positions} x ${s.days}`;
  const rows = [];
  const verifications: Verification[] = [];
  const details: Record<string, unknown> = {};
  let analysed: BackfillRun | null = null;
  try {
    analysed = await backfill(ctx, 'analysed');
    ctx.memo.set('backfill:analysed', analysed);
    verifications.push(analysed.verification);
    details.analysed = analysed;
    rows.push(row('1', `backfill ${size}: engine / (COPY no triggers + plain)`, ratioText(analysed.ratio), '<= 1.5x',
      analysed.ratio <= 1.5, analysed.ratio));
    const e = analysed.engine;
    const fn = (name: string) => e.functions.find((f) => f.funcname === name)?.total_ms ?? 0;
    rows.push(row('1', '  engine: COPY (in triggers) + drain (in fan_out, compute_portfolio*)',
      `${secs(e.copyMs)} (${secs(e.triggerMs)}) + ${secs(e.drainMs)} (${secs(fn('fan_out'))}, ${secs(e.computeMs)})`, 'report', null, null));
    rows.push(row('1', '  baseline: COPY + plain recompute (unlogged, unkeyed outputs)', `${secs(analysed.baseline.copyMs)} + ${secs(analysed.baseline.plainMs)}`,
      'report', null, null));
    const keyedRatio = analysed.engine.totalMs / analysed.baseline.keyedTotalMs;
    rows.push(row('1', '  engine / (COPY + plain into logged outputs with their keys)',
      `${ratioText(keyedRatio)} (${secs(analysed.baseline.keyedPlainMs)} plain)`, 'report', null, keyedRatio));
  } catch (e) {
    verifications.push(failed('1 backfill (analysed)', e));
    rows.push(row('1', `backfill ${size}: engine / (COPY no triggers + plain)`, 'n/a', '<= 1.5x', false, null));
  }
  if (withNoStats) {
    try {
      const none = await backfill(ctx, 'none');
      ctx.memo.set('backfill:none', none);
      verifications.push(none.verification);
      details.noStatistics = none;
    } catch (e) {
      verifications.push(failed('1 backfill (no statistics)', e));
      ctx.memo.set('backfill:none', null);
    }
  }
  if (s.perDay) {
    try {
      if (!analysed) throw new Error('no baseline: the backfill failed');
      const pd = await perDay(ctx, analysed.baseline.totalMs);
      verifications.push(pd.verification);
      details.perDay = pd;
      rows.push(row('1', `per-day producer, worker running: until all current / baseline`, `${ratioText(pd.ratio)} (${secs(pd.totalMs)})`,
        'report', null, pd.ratio));
    } catch (e) {
      verifications.push(failed('1 per-day producer pattern', e));
      rows.push(row('1', 'per-day producer, worker running / baseline', 'n/a', 'report', null, null));
    }
  }
  return { rows, verifications, details };
}
