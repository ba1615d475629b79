// Figure 5, no dependence on luck: figures 1, 3 and 4 measured on a fresh database with no planner
// statistics at all (autovacuum off on every table, never ANALYZEd; checked afterwards) and on an
// analysed one (ANALYZE of every table before the timed part), back to back. Each ratio is the
// engine's own time without statistics over the same time with them. Figures 1, 3 and 4 run both
// variants themselves when figure 5 is selected; anything missing is measured here.
import { backfill, type BackfillRun } from './fig1-backfill.js';
import { latency, type LatencyRun } from './fig3-latency.js';
import { cost, type CostRun } from './fig4-cost.js';
import { msText, ratioText, row, secs, type Ctx, type FigureResult, type Row, type StatsMode } from './context.js';
import { failed, type Verification } from './engine.js';

async function pair<T extends { verification: Verification }>(
  ctx: Ctx, key: string, run: (mode: StatsMode) => Promise<T>, verifications: Verification[], label: string,
): Promise<{ analysed: T | null; none: T | null }> {
  const get = async (mode: StatsMode): Promise<T | null> => {
    const k = `${key}:${mode}`;
    if (ctx.memo.has(k)) return ctx.memo.get(k) as T | null;
    try {
      const r = await run(mode);
      ctx.memo.set(k, r);
      verifications.push(r.verification);
      return r;
    } catch (e) {
      verifications.push(failed(`${label} (${mode})`, e));
      ctx.memo.set(k, null);
      return null;
    }
  };
  const analysed = await get('analysed');
  const none = await get('none');
  return { analysed, none };
}

function ratioRow(what: string, none: number | undefined, analysed: number | undefined, show: (v: number) => string): Row {
  if (none === undefined || analysed === undefined) return row('5', what, 'n/a', '<= 1.5x', false, null);
  const r = none / analysed;
  return row('5', what, `${ratioText(r)} (${show(none)} vs ${show(analysed)})`, '<= 1.5x', r <= 1.5, r);
}

export async function figure5(ctx: Ctx): Promise<FigureResult> {
  const verifications: Verification[] = [];
  const rows: Row[] = [];
  const b = await pair<BackfillRun>(ctx, 'backfill', (m) => backfill(ctx, m), verifications, '5/1 backfill');
  const l = await pair<LatencyRun>(ctx, 'latency',
    (m) => latency(ctx, m, m === 'none' ? ctx.sizes.luck.latencyDays : ctx.sizes.latency.days), verifications, '5/3 latency');
  const c = await pair<CostRun>(ctx, 'cost', (m) => cost(ctx, m), verifications, '5/4 cost');

  rows.push(ratioRow('backfill (COPY + drain), no statistics / analysed', b.none?.engine.totalMs, b.analysed?.engine.totalMs, secs));
  rows.push(ratioRow('latency p50, no statistics / analysed', l.none?.p50, l.analysed?.p50, msText));
  rows.push(ratioRow('latency p99, no statistics / analysed', l.none?.p99, l.analysed?.p99, msText));
  rows.push(ratioRow('one-day job on the long history, no statistics / analysed', c.none?.medians.long, c.analysed?.medians.long, msText));
  rows.push(ratioRow('old correction, no statistics / analysed', c.none?.medians.old, c.analysed?.medians.old, msText));
  // The figures themselves without statistics (their goals, for reading; the ratios above are figure 5's).
  if (b.none) rows.push(row('5', '  figure 1 without statistics: engine / baseline', ratioText(b.none.ratio), '(<= 1.5x)', null, b.none.ratio));
  if (l.none) rows.push(row('5', '  figure 3 without statistics: p50 / p99', `${msText(l.none.p50)} / ${msText(l.none.p99)}`, '(15 / 50 ms)', null, null));
  if (c.none) {
    rows.push(row('5', '  figure 4 without statistics: 4a / 4b', `${ratioText(c.none.ratioDay)} / ${ratioText(c.none.ratioCorrection)}`,
      '(<= 1.2x)', null, null));
  }
  return {
    rows,
    verifications,
    details: { backfill: b.none, latency: l.none, cost: c.none },
  };
}
