// Figure 6, daily scale: a book of many portfolios whose previous day is loaded and computed
// (untimed, then ANALYZE), then the new day arrives with a worker running (concurrency N): one COPY
// of all its snapshots, one of its cash flows, one of its manifest rows. Timed: from the manifest
// COPY's commit until every declared day is current. The snapshot COPY is also timed against the
// same COPY with triggers off (replica) on a clone of the same database.
import { pctText, row, secs, type Ctx, type FigureResult, type Row } from './context.js';
import { drainOnce, failed, startWorker, verify, waitAllCurrent, type Verification } from './engine.js';
import { analyzeAll, copyAll, copyDays, functionStats, loadReference, session } from './pg.js';

export async function figure6(ctx: Ctx): Promise<FigureResult> {
  const s = ctx.sizes.daily;
  const rows: Row[] = [];
  const verifications: Verification[] = [];
  const details: Record<string, unknown> = {};
  const size = `${s.portfolios} x ${s.positions}`;
  const book = ctx.book({ groups: [{ count: s.portfolios, positions: s.positions }], days: 2, seed: ctx.seed, gapRate: 0.02 });
  const [prev, next] = [book.days[0]!, book.days[1]!];
  const snapshots = next.portfolios.reduce((n, p) => n + p.snapshots.length, 0);
  const prep = await ctx.clone('f6_prev');
  try {
    ctx.log(`6 daily: loading and computing the previous day of ${size} ...`);
    const sql = session(prep.url);
    await loadReference(sql, book);
    await copyAll(sql, [prev]);
    await sql.end();
    await drainOnce(prep.url, s.concurrency);
    await analyzeAll(prep.url);

    const raw = await ctx.clone('f6_raw', prep);
    let rawMs: number;
    try {
      const r = session(raw.url, { replica: true });
      const t = performance.now();
      await copyDays(r, [next], 'snapshots');
      rawMs = performance.now() - t;
      await r.end();
    } finally {
      await ctx.drop(raw);
    }

    const live = await ctx.clone('f6_live', prep);
    try {
      ctx.log(`6 daily: the new day (${snapshots} snapshots), worker concurrency ${s.concurrency} ...`);
      const p = session(live.url);
      const runner = await startWorker(live.url, s.concurrency);
      let copyMs: number;
      let fromManifest: number;
      let fromSnapshots: number;
      try {
        const t0 = performance.now();
        await copyDays(p, [next], 'snapshots');
        copyMs = performance.now() - t0;
        await copyDays(p, [next], 'cashflows');
        await copyDays(p, [next], 'manifests');
        const tm = performance.now();
        const done = await waitAllCurrent(live.url, { pollMs: 50 });
        fromManifest = done - tm;
        fromSnapshots = done - t0;
      } finally {
        await runner.stop();
      }
      const [jobs] = await p<{ runs: number; portfolio_days: number }[]>`
        select coalesce(sum(runs), 0)::int as runs, coalesce(sum(portfolio_days), 0)::int as portfolio_days
        from portfolio_timeseries_engine.portfolio_job`;
      await p.end();
      const functions = (await functionStats(live.url)).filter((f) => f.total_ms >= 1).slice(0, 10);
      const overPct = (copyMs / rawMs - 1) * 100;
      Object.assign(details, { rawCopyMs: rawMs, copyMs, overPct, fromManifestMs: fromManifest, fromSnapshotsMs: fromSnapshots, jobs, functions });
      rows.push(row('6', `daily ${size}: manifests' commit -> all current (concurrency ${s.concurrency})`, secs(fromManifest), '<= 15 s',
        fromManifest <= 15_000, fromManifest / 1000));
      const cp = functions.find((f) => f.funcname === 'compute_portfolio');
      if (cp) {
        rows.push(row('6', '  compute_portfolio calls, time summed over the workers, per call',
          `${cp.calls}, ${secs(cp.total_ms)}, ${(cp.total_ms / cp.calls).toFixed(1)} ms`, 'report', null, null));
      }
      rows.push(row('6', `snapshot COPY of ${snapshots} rows: triggers add`, `${pctText(overPct)} (${secs(copyMs)} vs ${secs(rawMs)})`,
        'report', null, overPct));
      ctx.log(`6 daily: all current ${secs(fromManifest)} after the manifests (${secs(fromSnapshots)} after the snapshot COPY began); verifying ...`);
      verifications.push(await verify(`6 daily ${size}`, live.url));
    } finally {
      await ctx.drop(live);
    }
  } catch (e) {
    verifications.push(failed(`6 daily ${size}`, e));
    if (rows.length === 0) rows.push(row('6', `daily ${size}: manifests' commit -> all current`, 'n/a', '<= 15 s', false, null));
  } finally {
    await ctx.drop(prep);
  }
  return { rows, verifications, details };
}
