// Benchmark: the engine (triggers + graphile-worker jobs) against a plain set-based recompute of
// the same outputs on the same book. See docs/performance.md for what is measured and results.
//
//   PT_TEMPLATE_DB=pt_template_bench npx tsx bench/run.ts \
//     --portfolios 20 --positions 20 --days 60 [--seed 1] [--concurrency 2]
//
// Scenarios, each on a fresh database cloned from the migrated template:
//   raw     the same COPY load with triggers disabled (session_replication_role = replica), then
//           again into copies of the tables without CHECK constraints: the cost of loading alone.
//   a'      load with triggers and no worker, then one drain (runWorkerOnce).
//   a       load with triggers while a worker runs (runWorker), then runWorkerOnce to drain.
//   plain   bench/plain-recompute.sql on database a's inputs, compared with a's engine outputs
//           (a' when a is skipped).
//
// Options: --seed S (book), --gap-rate R (chance a position skips a day, 0.02), --manifests
// per-day|end (when manifest rows arrive), --stats auto|none and --analyze-naptime S (planner
// statistics during the load, see pg.ts startAutoAnalyze), --plain-runs N (3), --skip-raw,
// --skip-no-worker, --skip-worker, --keep (leave the databases), --json FILE (all numbers).
// Databases are clones of PT_TEMPLATE_DB (build it with scripts/test-setup.ts) named pt_bench_*,
// dropped at the end unless --keep.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runWorker, runWorkerOnce } from '../src/worker.js';
import { generateBook, type Book } from './book.js';
import {
  createBenchDb, dropBenchDb, functionStats, loadDays, loadReference, session, startAutoAnalyze,
  type BenchDb, type FunctionStat, type ManifestMode, type Pg,
} from './pg.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    portfolios: { type: 'string', default: '20' },
    positions: { type: 'string', default: '20' },
    days: { type: 'string', default: '60' },
    seed: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '2' },
    'gap-rate': { type: 'string', default: '0.02' },
    manifests: { type: 'string', default: 'per-day' },
    'plain-runs': { type: 'string', default: '3' },
    stats: { type: 'string', default: 'auto' },
    'analyze-naptime': { type: 'string', default: '10' },
    'skip-raw': { type: 'boolean', default: false },
    'skip-no-worker': { type: 'boolean', default: false },
    'skip-worker': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
  strict: true,
});

function intArg(name: string, value: string | undefined, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${value}`);
  return n;
}

const opts = {
  portfolios: intArg('portfolios', args.portfolios, 1),
  positions: intArg('positions', args.positions, 1),
  days: intArg('days', args.days, 1),
  seed: intArg('seed', args.seed, 0),
  concurrency: intArg('concurrency', args.concurrency, 1),
  gapRate: Number(args['gap-rate']),
  manifests: args.manifests as ManifestMode,
  plainRuns: intArg('plain-runs', args['plain-runs'], 1),
  stats: args.stats as 'auto' | 'none',
  analyzeNaptime: intArg('analyze-naptime', args['analyze-naptime'], 1),
};
if (opts.stats !== 'auto' && opts.stats !== 'none') throw new Error('--stats must be auto or none');
if (opts.manifests !== 'per-day' && opts.manifests !== 'end') throw new Error('--manifests must be per-day or end');
if (!(opts.gapRate >= 0 && opts.gapRate < 1)) throw new Error('--gap-rate must be in [0, 1)');

const now = (): number => performance.now();
const secs = (ms: number): string => (ms / 1000).toFixed(2);
const log = (message: string): void => console.error(`[bench] ${message}`);

const created: BenchDb[] = [];
async function newDb(label: string): Promise<BenchDb> {
  const db = await createBenchDb(label);
  created.push(db);
  return db;
}

interface EngineResult {
  label: string;
  analyzed: { analyzes: number; ms: number };
  loadMs: number;
  drainMs: number;
  totalMs: number;
  atLoadEnd: { currentDays: number; jobs: number };
  work: { jobs: number; portfolioDays: number; positionDays: number };
  verify: Verification;
  functions: FunctionStat[];
}

interface Verification {
  portfolioRows: number;
  positionRows: number;
  states: Record<string, number>;
  failedJobs: number;
  ok: boolean;
}

async function verifyEngine(sql: Pg, book: Book): Promise<Verification> {
  const [counts] = await sql<{ portfolio_rows: number; position_rows: number; failed_jobs: number }[]>`
    select
      (select count(*)::int from public.portfolio_timeseries) as portfolio_rows,
      (select count(*)::int from public.position_timeseries) as position_rows,
      (select count(*)::int from graphile_worker.jobs where last_error is not null) as failed_jobs`;
  const stateRows = await sql<{ state: string; n: number }[]>`
    select state, count(*)::int as n from portfolio_timeseries_engine.status() group by state order by state`;
  const states = Object.fromEntries(stateRows.map((r) => [r.state, r.n]));
  const ok =
    counts!.portfolio_rows === book.totals.manifests &&
    counts!.position_rows === book.totals.snapshots &&
    stateRows.length === 1 && states.current === book.totals.manifests &&
    counts!.failed_jobs === 0;
  return {
    portfolioRows: counts!.portfolio_rows,
    positionRows: counts!.position_rows,
    states,
    failedJobs: counts!.failed_jobs,
    ok,
  };
}

async function progress(sql: Pg): Promise<{ currentDays: number; jobs: number }> {
  const [row] = await sql<{ current_days: number; jobs: number }[]>`
    select
      (select count(*)::int from portfolio_timeseries_engine.portfolio_day
       where not dirty and expected_count is not null) as current_days,
      (select coalesce(sum(runs), 0)::int from portfolio_timeseries_engine.portfolio_job) as jobs`;
  return { currentDays: row!.current_days, jobs: row!.jobs };
}

async function runEngine(book: Book, withWorker: boolean): Promise<{ db: BenchDb; result: EngineResult }> {
  const label = withWorker ? 'a' : 'a_prime';
  const db = await newDb(label);
  const sql = session(db.url);
  await loadReference(sql, book);
  const runner = withWorker ? await runWorker({ connectionString: db.url, concurrency: opts.concurrency }) : null;

  const t0 = now();
  const analyzer = opts.stats === 'auto' ? startAutoAnalyze(db.url, opts.analyzeNaptime * 1000) : null;
  await loadDays(sql, book, opts.manifests);
  const t1 = now();
  const atLoadEnd = await progress(sql);
  if (runner) await runner.stop();
  await runWorkerOnce({ connectionString: db.url, concurrency: opts.concurrency });
  const t2 = now();
  const analyzed = (await analyzer?.stop()) ?? { analyzes: 0, ms: 0 };

  const verify = await verifyEngine(sql, book);
  const [work] = await sql<{ jobs: number; portfolio_days: number; position_days: number }[]>`
    select coalesce(sum(runs), 0)::int as jobs, coalesce(sum(portfolio_days), 0)::int as portfolio_days,
      coalesce(sum(position_days), 0)::int as position_days
    from portfolio_timeseries_engine.portfolio_job`;
  await sql.end();
  const functions = await functionStats(db.url);
  return {
    db,
    result: {
      label: withWorker ? `a  (worker during load, concurrency ${opts.concurrency})` : "a' (load, then one drain)",
      analyzed,
      loadMs: t1 - t0,
      drainMs: t2 - t1,
      totalMs: t2 - t0,
      atLoadEnd,
      work: { jobs: work!.jobs, portfolioDays: work!.portfolio_days, positionDays: work!.position_days },
      verify,
      functions,
    },
  };
}

interface RawResult {
  replicaLoadMs: number;
  bareLoadMs: number;
}

/** The same load without triggers, then without triggers and without CHECK constraints. */
async function runRaw(book: Book): Promise<RawResult> {
  const db = await newDb('raw');
  const sql = session(db.url, { replica: true });
  await loadReference(sql, book);
  const t0 = now();
  await loadDays(sql, book, opts.manifests);
  const replicaLoadMs = now() - t0;

  // Same columns, defaults, identity and indexes; no CHECK constraints, no triggers.
  await sql.unsafe(`
    create schema bare;
    create table bare.portfolios (like public.portfolios including defaults including indexes);
    create table bare.instruments (like public.instruments including defaults including indexes);
    create table bare.fx_rates (like public.fx_rates including defaults including indexes);
    create table bare.cashflows (like public.cashflows including defaults including indexes);
    create table bare.daily_position_snapshots
      (like public.daily_position_snapshots including defaults including identity including indexes);
    create table bare.daily_aggregation_manifest (like public.daily_aggregation_manifest including defaults including indexes);
  `).simple();
  await loadReference(sql, book, 'bare');
  const t1 = now();
  await loadDays(sql, book, opts.manifests, 'bare');
  const bareLoadMs = now() - t1;
  await sql.end();
  return { replicaLoadMs, bareLoadMs };
}

interface PlainResult {
  analyzeMs: number;
  runs: { steps: Record<string, number>; totalMs: number }[];
  medianMs: number;
  checks: Record<string, Record<string, number>>;
  ok: boolean;
}

type SectionKind = 'setup' | 'step' | 'check';

/** `-- @setup name` (run, untimed), `-- @step name` (run, timed), `-- @check name` (after the runs). */
function parseSqlFile(text: string): { kind: SectionKind; name: string; sql: string }[] {
  const sections: { kind: SectionKind; name: string; sql: string }[] = [];
  let current: { kind: SectionKind; name: string; lines: string[] } | null = null;
  for (const line of text.split('\n')) {
    const m = /^-- @(setup|step|check) (\S+)/.exec(line);
    if (m) {
      if (current) sections.push({ kind: current.kind, name: current.name, sql: current.lines.join('\n') });
      current = { kind: m[1] as SectionKind, name: m[2]!, lines: [] };
    } else if (current) {
      current.lines.push(line);
    }
  }
  if (current) sections.push({ kind: current.kind, name: current.name, sql: current.lines.join('\n') });
  return sections;
}

async function runPlain(db: BenchDb, book: Book): Promise<PlainResult> {
  const sections = parseSqlFile(readFileSync(path.join(here, 'plain-recompute.sql'), 'utf8'));
  const sql = session(db.url);
  // Fresh statistics for the inputs (untimed), as the engine had them (--stats auto).
  const ta = now();
  if (opts.stats === 'auto') await sql`analyze`;
  const analyzeMs = now() - ta;
  const runs: PlainResult['runs'] = [];
  for (let run = 0; run < opts.plainRuns; run++) {
    const steps: Record<string, number> = {};
    let totalMs = 0;
    for (const s of sections.filter((x) => x.kind !== 'check')) {
      const t = now();
      await sql.unsafe(s.sql).simple();
      if (s.kind === 'step') {
        steps[s.name] = now() - t;
        totalMs += steps[s.name]!;
      }
    }
    runs.push({ steps, totalMs });
  }
  const checks: PlainResult['checks'] = {};
  for (const s of sections.filter((x) => x.kind === 'check')) {
    const [row] = await sql.unsafe<Record<string, string>[]>(s.sql);
    checks[s.name] = Object.fromEntries(Object.entries(row!).map(([k, v]) => [k, Number(v)]));
  }
  await sql.end();
  const pos = checks.position_rows!;
  const pf = checks.portfolio_rows!;
  const ok =
    pos.plain_rows === book.totals.snapshots && pos.engine_rows === book.totals.snapshots &&
    pos.plain_not_in_engine === 0 && pos.engine_not_in_plain === 0 &&
    pf.plain_rows === book.totals.manifests && pf.engine_rows === book.totals.manifests &&
    pf.plain_not_in_engine === 0 && pf.engine_not_in_plain === 0;
  const sorted = runs.map((r) => r.totalMs).sort((a, b) => a - b);
  return { analyzeMs, runs, medianMs: sorted[Math.floor(sorted.length / 2)]!, checks, ok };
}

function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0)));
  return cells
    .map((r, ri) => {
      const line = r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
      return ri === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

const rate = (rows: number, ms: number): string => Math.round(rows / (ms / 1000)).toLocaleString('en-US');

function functionTable(stats: FunctionStat[], totalMs: number): string {
  const top = stats.filter((s) => s.total_ms >= 1 || s.calls >= 1000).slice(0, 14);
  return table([
    ['function', 'calls', 'total s', 'self s', 'ms/call', '% of wall'],
    ...top.map((s) => [
      s.funcname, s.calls, secs(s.total_ms), secs(s.self_ms), (s.total_ms / s.calls).toFixed(3),
      `${((100 * s.total_ms) / totalMs).toFixed(1)}%`,
    ]),
  ]);
}

async function main(): Promise<void> {
  const tGen = now();
  const book = generateBook({
    portfolios: opts.portfolios, positions: opts.positions, days: opts.days, seed: opts.seed, gapRate: opts.gapRate,
  });
  log(`book: ${opts.portfolios} portfolios x ${opts.positions} positions x ${opts.days} days: ` +
    `${book.totals.snapshots} snapshots, ${book.totals.cashflows} cash flows ` +
    `(${book.totals.nullSecurityFlows} NULL-security), ${book.totals.manifests} manifest rows, ` +
    `${book.fxRows} FX rates, ${book.instrumentRows} instruments (generated in ${secs(now() - tGen)} s)`);

  let raw: RawResult | null = null;
  if (!args['skip-raw']) {
    log('raw: load without triggers ...');
    raw = await runRaw(book);
    log(`raw: replica load ${secs(raw.replicaLoadMs)} s, bare load ${secs(raw.bareLoadMs)} s`);
  }

  const engines: (EngineResult & { key: string })[] = [];
  let engineDb: BenchDb | null = null;
  let engineKey = '';
  if (!args['skip-no-worker']) {
    log("a': load with triggers, no worker, then one drain ...");
    const { db, result } = await runEngine(book, false);
    engines.push({ key: "a'", ...result });
    engineDb = db;
    engineKey = "a'";
    log(`a': load ${secs(result.loadMs)} s, drain ${secs(result.drainMs)} s, ok=${result.verify.ok}`);
  }
  if (!args['skip-worker']) {
    log(`a: load with a worker running (concurrency ${opts.concurrency}), then drain ...`);
    const { db, result } = await runEngine(book, true);
    engines.unshift({ key: 'a', ...result });
    engineDb = db;
    engineKey = 'a';
    log(`a: load ${secs(result.loadMs)} s, drain ${secs(result.drainMs)} s, ok=${result.verify.ok}`);
  }
  if (!engineDb) throw new Error('--skip-worker and --skip-no-worker together leave nothing to measure');

  log(`plain: ${opts.plainRuns} run(s) of bench/plain-recompute.sql on the engine's database (${engineKey}) ...`);
  const plain = await runPlain(engineDb, book);
  log(`plain: median ${secs(plain.medianMs)} s, equal to engine=${plain.ok}`);

  const outRows = book.totals.snapshots + book.totals.manifests;
  const summary: (string | number)[][] = [
    ['scenario', 'load s', 'drain s', 'total s', 'snapshots/s', 'output rows/s', 'verified'],
    ...engines.map((e) => [
      e.label, secs(e.loadMs), secs(e.drainMs), secs(e.totalMs), rate(book.totals.snapshots, e.totalMs),
      rate(outRows, e.totalMs), e.verify.ok ? 'yes' : 'NO',
    ]),
  ];
  if (raw) {
    summary.push(['raw load, triggers off (replica)', secs(raw.replicaLoadMs), '-', secs(raw.replicaLoadMs),
      rate(book.totals.snapshots, raw.replicaLoadMs), '-', '-']);
    summary.push(['raw load, no triggers, no CHECKs', secs(raw.bareLoadMs), '-', secs(raw.bareLoadMs),
      rate(book.totals.snapshots, raw.bareLoadMs), '-', '-']);
  }
  const plainSteps = Object.keys(plain.runs[0]!.steps);
  summary.push([`plain recompute (median of ${plain.runs.length})`, '-', '-', secs(plain.medianMs),
    rate(book.totals.snapshots, plain.medianMs), rate(outRows, plain.medianMs), plain.ok ? 'equal' : 'DIFFERENT']);

  const lines: string[] = [];
  lines.push('');
  lines.push(`portfolio-timeseries bench: ${opts.portfolios} portfolios x ${opts.positions} positions x ${opts.days} days ` +
    `(seed ${opts.seed}, manifests ${opts.manifests}, worker concurrency ${opts.concurrency}, ` +
    `planner statistics ${opts.stats === 'auto' ? `kept fresh by an auto-analyze loop, naptime ${opts.analyzeNaptime} s` : 'none (no ANALYZE)'})`);
  lines.push(`inputs: ${book.totals.snapshots} snapshots, ${book.totals.cashflows} cash flows, ${book.totals.manifests} manifest rows, ` +
    `${book.fxRows} FX rates; outputs: ${book.totals.snapshots} position rows + ${book.totals.manifests} portfolio rows`);
  lines.push('');
  lines.push(table(summary));
  lines.push('');
  lines.push(`plain steps (ms, per run): ${plain.runs.map((r) => plainSteps.map((k) => `${k}=${Math.round(r.steps[k]!)}`).join(' ')).join(' | ')}`);
  lines.push(`plain vs engine: positions ${JSON.stringify(plain.checks.position_rows)}; portfolios ${JSON.stringify(plain.checks.portfolio_rows)}`);
  const triggerMs = (e: EngineResult): number =>
    e.functions.filter((f) => f.funcname.startsWith('tg_')).reduce((sum, f) => sum + f.total_ms, 0);
  const computeMs = (e: EngineResult): number =>
    e.functions.filter((f) => f.funcname === 'compute_portfolio').reduce((sum, f) => sum + f.total_ms, 0);
  for (const e of engines) {
    lines.push(`${e.key}: at load end ${e.atLoadEnd.currentDays}/${book.totals.manifests} days current after ${e.atLoadEnd.jobs} jobs; ` +
      `total ${e.work.jobs} jobs, ${e.work.portfolioDays} portfolio days, ${e.work.positionDays} position days; ` +
      `states ${JSON.stringify(e.verify.states)}; ${e.analyzed.analyzes} ANALYZE taking ${secs(e.analyzed.ms)} s in the background`);
    lines.push(`${e.key}: time inside statement triggers ${secs(triggerMs(e))} s, inside compute_portfolio ${secs(computeMs(e))} s ` +
      `(database time, summed over sessions; lock waits included)`);
  }
  lines.push('');
  lines.push(`ratio engine_total / plain_recompute: ${engines.map((e) => `${e.key} = ${(e.totalMs / plain.medianMs).toFixed(1)}x`).join(', ')}`);
  if (raw) {
    const alt = raw.replicaLoadMs + plain.medianMs;
    const prime = engines.find((e) => e.key === "a'");
    lines.push(`ratio engine_total / (load without triggers + plain_recompute): ` +
      `${engines.map((e) => `${e.key} = ${(e.totalMs / alt).toFixed(1)}x`).join(', ')}` +
      (prime ? `; trigger overhead on the load (a' load - replica load) = ${secs(prime.loadMs - raw.replicaLoadMs)} s` : ''));
  }
  for (const e of engines) {
    lines.push('');
    lines.push(`engine functions, ${e.label} (pg_stat_user_functions, track_functions = all; total includes callees):`);
    lines.push(functionTable(e.functions, e.totalMs));
  }
  console.log(lines.join('\n'));

  if (args.json) {
    await writeFile(args.json, JSON.stringify({ options: opts, totals: book.totals, fxRows: book.fxRows, raw, engines, plain }, null, 2));
  }
  if (engines.some((e) => !e.verify.ok) || !plain.ok) process.exitCode = 1;
}

try {
  await main();
} finally {
  if (args.keep) {
    log(`kept databases: ${created.map((d) => d.name).join(', ')}`);
  } else {
    for (const db of created) await dropBenchDb(db).catch((e: unknown) => log(`drop ${db.name}: ${String(e)}`));
  }
}
