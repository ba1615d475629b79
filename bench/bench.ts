// The benchmark of issue #7: every figure of "What it must reach", measured in one run, each
// scenario verified (engine rows equal to the plain recompute, every declared day current).
// bench/run.ts is the command line; the smoke test calls runBench directly.
import { makeCtx, type Ctx, type FigureResult, type Row } from './context.js';
import type { Verification } from './engine.js';
import { figure1 } from './fig1-backfill.js';
import { figure2 } from './fig2-producer.js';
import { dropPrepared as dropLatencyDb, figure3 } from './fig3-latency.js';
import { dropPrepared as dropCostDb, figure4 } from './fig4-cost.js';
import { figure5 } from './fig5-luck.js';
import { figure6 } from './fig6-daily.js';
import { figure7 } from './fig7-producers.js';
import { Databases } from './pg.js';
import type { Sizes } from './sizes.js';

export const FIGURES = [1, 2, 3, 4, 5, 6, 7] as const;

export interface BenchOptions {
  sizes: Sizes;
  seed: number;
  only: Set<number>;
  keep?: boolean;
  log?: (message: string) => void;
}

export interface BenchResult {
  rows: Row[];
  verifications: Verification[];
  details: Record<string, unknown>;
  /** Every scenario verified. */
  verified: boolean;
  /** Every goal met (rows with a goal). */
  goalsMet: boolean;
  ms: number;
}

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const log = options.log ?? ((m: string) => process.stderr.write(`[bench] ${m}\n`));
  const t0 = performance.now();
  const only = options.only;
  const rows: Row[] = [];
  const verifications: Verification[] = [];
  const details: Record<string, unknown> = {};
  const add = (n: number, r: FigureResult) => {
    rows.push(...r.rows);
    verifications.push(...r.verifications);
    details[`figure${n}`] = r.details;
  };
  const dbs = new Databases();
  try {
    const template = await dbs.template(log);
    const ctx: Ctx = makeCtx(options.sizes, options.seed, dbs, template, log, options.keep);
    const luck = only.has(5);
    const steps: [number, () => Promise<FigureResult>][] = [
      [1, () => figure1(ctx, luck)],
      [2, () => figure2(ctx)],
      [3, () => figure3(ctx, luck)],
      [4, () => figure4(ctx, luck)],
      [5, () => figure5(ctx)],
      [6, () => figure6(ctx)],
      [7, () => figure7(ctx)],
    ];
    for (const [n, run] of steps) {
      if (!only.has(n)) continue;
      const t = performance.now();
      add(n, await run());
      log(`figure ${n} done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      if ((n === 3 && !luck) || n === 5) await dropLatencyDb(ctx);
      if ((n === 4 && !luck) || n === 5) await dropCostDb(ctx);
    }
  } finally {
    await dbs.dropAll(log, options.keep);
  }
  // A figure 5 table row sorts after 4 even when it ran earlier.
  rows.sort((a, b) => Number.parseInt(a.figure, 10) - Number.parseInt(b.figure, 10));
  return {
    rows,
    verifications,
    details,
    verified: verifications.length > 0 && verifications.every((v) => v.ok),
    goalsMet: rows.every((r) => r.pass !== false),
    ms: performance.now() - t0,
  };
}

/** The final table: figure | what | measured | goal | PASS/FAIL, then every verification. */
export function formatResult(result: BenchResult): string {
  const cells = [
    ['figure', 'what', 'measured', 'goal', ''],
    ...result.rows.map((r) => [r.figure, r.what, r.measured, r.goal, r.pass === null ? '' : r.pass ? 'PASS' : 'FAIL']),
  ];
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(widths[i]!)).join(' | ').trimEnd();
  const out = [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('-|-'), ...cells.slice(1).map(line)];
  out.push('');
  out.push('verification (engine rows == plain recompute, every declared day current):');
  for (const v of result.verifications) out.push(`  ${v.ok ? 'ok  ' : 'FAIL'} ${v.scenario}: ${v.message}`);
  out.push('');
  out.push(`${result.verified ? 'all scenarios verified' : 'VERIFICATION FAILED'}; ` +
    `${result.rows.filter((r) => r.pass === true).length} goals met, ${result.rows.filter((r) => r.pass === false).length} missed; ` +
    `${(result.ms / 1000).toFixed(0)} s`);
  return out.join('\n');
}
