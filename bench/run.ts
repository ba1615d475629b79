// npm run bench [-- --quick] [--only 1,3,returns] [--json FILE] [--keep] [--seed N] [--strict]
//
// Measures every figure of issue #7 in one run and prints `figure | what | measured | goal |
// PASS/FAIL`, then the verification of every scenario (engine rows equal to the plain recompute,
// every declared day current); then the read side's figures of issue #10 (bench/returns.ts, also
// `npm run bench:returns` on its own; `--only returns` for them alone). Exits non-zero when a
// verification fails (with --strict also when a goal is missed). docs/performance.md describes
// what each figure measures and how.
//
// Databases: clones of PT_TEMPLATE_DB when set (npm run pretest builds it), else of a template
// migrated at start; all named pt_bench_*, all dropped at the end unless --keep.
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
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
  console.log('usage: npm run bench -- [--quick] [--only 1,3,returns] [--json FILE] [--keep] [--seed N] [--strict] [--backfill PxNxD]');
  process.exit(0);
}

const selected = args.only === undefined ? undefined : args.only.split(',').map((x) => x.trim());
const readSide = selected === undefined || selected.includes('returns');
const only = new Set<number>(
  selected === undefined ? FIGURES : selected.filter((x) => x !== 'returns').map((x) => {
    const n = Number(x);
    if (!FIGURES.includes(n as (typeof FIGURES)[number])) throw new Error(`--only: no figure ${x} (figures are 1-7 and returns)`);
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
let failed = false;
if (only.size > 0) {
  log(`${args.quick ? 'quick' : 'default'} sizes, figures ${[...only].join(', ')}, seed ${seed}`);
  const result = await runBench({ sizes, seed, only, keep: args.keep, log });
  console.log(`\nportfolio-timeseries bench (issue #7), ${args.quick ? '--quick sizes' : 'default sizes'}, seed ${seed}\n`);
  console.log(formatResult(result));
  if (args.json) {
    await writeFile(args.json, JSON.stringify({ sizes, seed, figures: [...only], ...result }, null, 2));
    log(`numbers written to ${args.json}`);
  }
  failed = !result.verified || (args.strict && !result.goalsMet);
}
if (readSide) {
  // The read side's bench in its own process (it is a script of its own: npm run bench:returns),
  // after the engine's figures so that the two never share the machine.
  const extra = [...(args.quick ? ['--portfolios', '1000', '--runs', '5'] : []), ...(args.keep ? ['--keep'] : []),
    ...(args.strict ? ['--strict'] : [])];
  log(`read side (issue #10): bench/returns.ts ${extra.join(' ')}`);
  console.log('\nportfolio-timeseries read-side bench (issue #10)\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('returns.ts', import.meta.url)), ...extra],
    { stdio: 'inherit' });
  failed ||= r.status !== 0;
}
process.exit(failed ? 1 : 0);
