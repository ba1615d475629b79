// npm run bench [-- --quick] [--only 1,3] [--json FILE] [--keep] [--seed N] [--strict]
//
// Measures every figure of issue #7 in one run and prints `figure | what | measured | goal |
// PASS/FAIL`, then the verification of every scenario (engine rows equal to the plain recompute,
// every declared day current). Exits non-zero when a verification fails (with --strict also when a
// goal is missed). docs/performance.md describes what each figure measures and how.
//
// Databases: clones of PT_TEMPLATE_DB when set (npm run pretest builds it), else of a template
// migrated at start; all named pt_bench_*, all dropped at the end unless --keep.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { FIGURES, formatResult, runBench } from './bench.js';
import { Databases } from './pg.js';
import { DEFAULT_SIZES, QUICK_SIZES } from './sizes.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    seed: { type: 'string', default: '1' },
    strict: { type: 'boolean', default: false },
    backfill: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (args.help) {
  console.log('usage: npm run bench -- [--quick] [--only 1,3] [--json FILE] [--keep] [--seed N] [--strict] [--backfill PxNxD]');
  process.exit(0);
}

const only = new Set<number>(
  args.only === undefined ? FIGURES : args.only.split(',').map((x) => {
    const n = Number(x.trim());
    if (!FIGURES.includes(n as (typeof FIGURES)[number])) throw new Error(`--only: no figure ${x} (figures are 1-7)`);
    return n;
  }),
);
const seed = Number(args.seed);
if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a whole number, got ${args.seed}`);

const log = (m: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: dropping the bench databases`);
    void Databases.dropEverything(log, args.keep).finally(() => process.exit(130));
  });
}

const sizes = structuredClone(args.quick ? QUICK_SIZES : DEFAULT_SIZES);
if (args.backfill) {
  // --backfill PORTFOLIOSxPOSITIONSxDAYS: another book for figure 1 (to study one size).
  const [p, n, d] = args.backfill.split('x').map(Number);
  if (![p, n, d].every((x) => Number.isInteger(x) && x! > 0)) throw new Error(`--backfill must be PxNxD, got ${args.backfill}`);
  Object.assign(sizes.backfill, { portfolios: p, positions: n, days: d });
}
log(`${args.quick ? 'quick' : 'default'} sizes, figures ${[...only].join(', ')}, seed ${seed}`);
const result = await runBench({ sizes, seed, only, keep: args.keep, log });
console.log(`\nportfolio-timeseries bench (issue #7), ${args.quick ? '--quick sizes' : 'default sizes'}, seed ${seed}\n`);
console.log(formatResult(result));
if (args.json) {
  await writeFile(args.json, JSON.stringify({ sizes, seed, figures: [...only], ...result }, null, 2));
  log(`numbers written to ${args.json}`);
}
process.exit(!result.verified || (args.strict && !result.goalsMet) ? 1 : 0);
