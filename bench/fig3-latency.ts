// Figure 3, latency: a worker running (runWorker, concurrency 2, in this process), one portfolio
// with a year of computed history. For each new day: one transaction writes the day's snapshots but
// one, its cash flows and its manifest row; once the engine has applied it (nothing pending, no
// job queued or running), the last snapshot commits in its own transaction, and a separate session
// polls (about every millisecond) until the portfolio row of that day is readable. Latency = from
// that commit returning to the row being read.
//
// Breakdown per day, from graphile-worker's job events (same clock) and the engine's
// portfolio_job.last_run_at (the compute transaction's start, server clock, offset measured):
//   pick-up   commit -> the drain job is locked by the worker (notification + get_job)
//   preamble  job start -> compute transaction begins (the drain's checks for pending work)
//   compute   compute transaction begins -> row readable (compute_portfolio + commit + poll)
//   tail      row readable -> job complete (the drain's next look, graphile-worker's complete_job)
import { sleep } from '../src/sleep.js';
import type { Runner } from 'graphile-worker';
import { valuesRow, TABLES } from './book.js';
import { median, msText, percentile, row, type Ctx, type FigureResult, type Row, type StatsMode } from './context.js';
import { drainOnce, failed, startWorker, verify, type Verification } from './engine.js';
import {
  analyzeAll, copyAll, functionStats, loadReference, session, statisticsPresent, type BenchDb, type FunctionStat, type Pg,
} from './pg.js';

export interface LatencyRun {
  mode: StatsMode;
  days: number;
  latencies: number[];
  p50: number;
  p99: number;
  breakdown: Record<'pickup' | 'preamble' | 'compute' | 'tail', { p50: number; p99: number }>;
  commitMs: number;
  functions: FunctionStat[];
  verification: Verification;
}

function latencyBook(ctx: Ctx) {
  const s = ctx.sizes.latency;
  const days = s.history + Math.max(s.days, ctx.sizes.luck.latencyDays);
  return ctx.book({ groups: [{ count: 1, positions: s.positions }], days, seed: ctx.seed, gapRate: 0 });
}

/** The history, loaded and computed once; each run clones it. */
async function prepared(ctx: Ctx): Promise<BenchDb> {
  const cached = ctx.memo.get('latency:db') as BenchDb | undefined;
  if (cached) return cached;
  const s = ctx.sizes.latency;
  const book = latencyBook(ctx);
  ctx.log(`3 latency: loading and computing ${s.history} days of ${s.positions} positions ...`);
  const db = await ctx.clone('f3_history');
  const sql = session(db.url);
  await loadReference(sql, book);
  await copyAll(sql, book.days.slice(0, s.history));
  await sql.end();
  await drainOnce(db.url, 2);
  ctx.memo.set('latency:db', db);
  return db;
}

export async function dropPrepared(ctx: Ctx): Promise<void> {
  const db = ctx.memo.get('latency:db') as BenchDb | undefined;
  if (db) await ctx.drop(db);
  ctx.memo.delete('latency:db');
}


/** Server clock minus client wall clock (ms), from the sample with the shortest round trip. */
async function clockOffset(sql: Pg): Promise<number> {
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < 20; i++) {
    const a = performance.now();
    const [r] = await sql<{ ms: number }[]>`select (extract(epoch from clock_timestamp()) * 1000)::float8 as ms`;
    const b = performance.now();
    if (b - a < best.rtt) best = { rtt: b - a, offset: r!.ms - (performance.timeOrigin + (a + b) / 2) };
  }
  return best.offset;
}

/** Until nothing is pending and no engine job is queued or running. */
async function waitQuiet(sql: Pg, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const [r] = await sql<{ busy: boolean }[]>`
      select exists (select 1 from portfolio_timeseries_engine.change)
          or exists (select 1 from graphile_worker.jobs where task_identifier like 'portfolio_timeseries:%') as busy`;
    if (!r!.busy) return;
    if (performance.now() > deadline) throw new Error('the engine did not become idle within a minute');
    await sleep(2);
  }
}

/** Median time of a one-row INSERT + COMMIT on this server (what a commit costs here). */
async function commitCost(sql: Pg): Promise<number> {
  await sql`create table if not exists pt_bench_commit_probe (x integer)`;
  const ts: number[] = [];
  for (let i = 0; i < 20; i++) {
    await sql`begin`;
    await sql`insert into pt_bench_commit_probe values (1)`;
    const t = performance.now();
    await sql`commit`;
    ts.push(performance.now() - t);
  }
  await sql`drop table pt_bench_commit_probe`;
  return median(ts);
}

export async function latency(ctx: Ctx, mode: StatsMode, days: number): Promise<LatencyRun> {
  const s = ctx.sizes.latency;
  const book = latencyBook(ctx);
  const source = await prepared(ctx);
  const db = await ctx.clone(`f3_${mode === 'none' ? 'nostats' : 'an'}`, source);
  try {
    if (mode === 'analysed') await analyzeAll(db.url);
    const portfolioId = book.groups[0]![0]!;
    const prod = session(db.url);
    const poll = session(db.url);
    const offset = await clockOffset(poll);
    const commitMs = await commitCost(prod);
    const starts: { t: number; id: string }[] = [];
    const completes = new Map<string, number>();
    let runner: Runner | null = await startWorker(db.url, 2);
    runner.events.on('job:start', ({ job }) => {
      if (job.task_identifier === 'portfolio_timeseries:drain') starts.push({ t: performance.now(), id: String(job.id) });
    });
    runner.events.on('job:complete', ({ job }) => completes.set(String(job.id), performance.now()));
    const latencies: number[] = [];
    const parts = { pickup: [] as number[], preamble: [] as number[], compute: [] as number[], tail: [] as number[] };
    try {
      await waitQuiet(poll);
      ctx.log(`3 latency (${mode}): ${days} days of ${s.positions} positions after ${s.history} computed days ...`);
      for (let k = 0; k < days; k++) {
        const day = book.days[s.history + k]!;
        const p = day.portfolios[0]!;
        const insert = (lines: string[]) =>
          `insert into ${TABLES.snapshots.table} (${TABLES.snapshots.columns.join(', ')}) values ${lines.map(valuesRow).join(', ')}`;
        await prod.begin(async (tx) => {
          await tx.unsafe(insert(p.snapshots.slice(0, -1)));
          if (p.cashflows.length > 0) {
            await tx.unsafe(`insert into ${TABLES.cashflows.table} (${TABLES.cashflows.columns.join(', ')}) values ${p.cashflows.map(valuesRow).join(', ')}`);
          }
          await tx.unsafe(`insert into ${TABLES.manifests.table} (${TABLES.manifests.columns.join(', ')}) values ${valuesRow(p.manifest)}`);
        });
        await waitQuiet(poll);
        const last = insert(p.snapshots.slice(-1));
        starts.length = 0;
        await prod`begin`;
        await prod.unsafe(last);
        await prod`commit`;
        const t0 = performance.now();
        let t1: number;
        for (;;) {
          const r = await poll`select 1 from public.portfolio_timeseries where portfolio_id = ${portfolioId} and date = ${day.date}`;
          if (r.length > 0) {
            t1 = performance.now();
            break;
          }
          if (performance.now() - t0 > 60_000) throw new Error(`the row of ${day.date} was not readable within a minute`);
          await sleep(1);
        }
        latencies.push(t1 - t0);
        const [j] = await poll<{ ms: number }[]>`
          select (extract(epoch from last_run_at) * 1000)::float8 as ms
          from portfolio_timeseries_engine.portfolio_job where portfolio_id = ${portfolioId}`;
        const computeBegin = j!.ms - offset - performance.timeOrigin;
        const start = starts.find((x) => x.t >= t0 - 1);
        await waitQuiet(poll);
        if (start) {
          parts.pickup.push(Math.max(0, start.t - t0));
          parts.preamble.push(computeBegin - start.t);
          const done = completes.get(start.id);
          if (done !== undefined) parts.tail.push(done - t1);
        }
        parts.compute.push(t1 - computeBegin);
      }
    } finally {
      await runner?.stop();
      runner = null;
      await prod.end();
      await poll.end();
    }
    const functions = (await functionStats(db.url)).filter((f) => f.total_ms >= 1).slice(0, 10);
    let verification = await verify(`3 latency (${mode === 'none' ? 'no statistics' : 'analysed'})`, db.url);
    if (mode === 'none') {
      const st = await statisticsPresent(db.url);
      if (st.autoAnalysed.length > 0 || st.analysedTables.length > 0) {
        verification = { ...verification, ok: false, message: `${verification.message}; statistics present in a no-statistics run: ${[...st.analysedTables, ...st.autoAnalysed].join(', ')}` };
      }
    }
    const pp = (xs: number[]) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99) });
    const run: LatencyRun = {
      mode, days, latencies, p50: percentile(latencies, 50), p99: percentile(latencies, 99),
      breakdown: { pickup: pp(parts.pickup), preamble: pp(parts.preamble), compute: pp(parts.compute), tail: pp(parts.tail) },
      commitMs, functions, verification,
    };
    ctx.log(`3 latency (${mode}): p50 ${msText(run.p50)}, p99 ${msText(run.p99)}; ${verification.ok ? 'verified' : `NOT VERIFIED: ${verification.message}`}`);
    return run;
  } finally {
    await ctx.drop(db);
  }
}

/** p50 (or p99) of each part: pick-up + preamble + compute and commit, and the tail after. */
export function breakdownText(r: LatencyRun, q: 'p50' | 'p99'): string {
  const b = r.breakdown;
  return `${b.pickup[q].toFixed(1)} + ${b.preamble[q].toFixed(1)} + ${b.compute[q].toFixed(1)} ms (tail ${b.tail[q].toFixed(1)})`;
}

export async function figure3(ctx: Ctx, withNoStats: boolean): Promise<FigureResult> {
  const s = ctx.sizes.latency;
  const rows: Row[] = [];
  const verifications: Verification[] = [];
  const details: Record<string, unknown> = {};
  try {
    const r = await latency(ctx, 'analysed', s.days);
    ctx.memo.set('latency:analysed', r);
    verifications.push(r.verification);
    details.analysed = r;
    rows.push(row('3', `latency p50, ${s.days} days, ${s.positions} positions, ${s.history} days history`, msText(r.p50), '<= 15 ms', r.p50 <= 15, r.p50));
    rows.push(row('3', 'latency p99', msText(r.p99), '<= 50 ms', r.p99 <= 50, r.p99));
    rows.push(row('3', `  p50 of pick-up + drain preamble + compute&commit (a commit ~${r.commitMs.toFixed(1)} ms)`, breakdownText(r, 'p50'), 'report', null, null));
    rows.push(row('3', '  p99 of the same parts', breakdownText(r, 'p99'), 'report', null, null));
  } catch (e) {
    verifications.push(failed('3 latency (analysed)', e));
    rows.push(row('3', 'latency p50', 'n/a', '<= 15 ms', false, null));
    rows.push(row('3', 'latency p99', 'n/a', '<= 50 ms', false, null));
  }
  if (withNoStats) {
    try {
      const r = await latency(ctx, 'none', ctx.sizes.luck.latencyDays);
      ctx.memo.set('latency:none', r);
      verifications.push(r.verification);
      details.noStatistics = r;
    } catch (e) {
      verifications.push(failed('3 latency (no statistics)', e));
      ctx.memo.set('latency:none', null);
    }
  }
  return { rows, verifications, details };
}
