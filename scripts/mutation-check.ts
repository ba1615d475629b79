// Mutation check (npm run mutation-check): proves the suite fails for known engine defects.
//
// For every mutant sql/mutants/NN_<name>.sql (docs/development.md): clone the migrated template
// (PT_TEMPLATE_DB, as the tests use it) into a scratch template, install the defect there, and
// run the test files its header names (`-- caught-by:`) against that scratch template. The run
// must fail: CAUGHT. A run that passes is SURVIVED, a mutant that does not apply or a run that
// ends without its `N passed, N failed` line is ERROR; either makes the check exit non-zero, as
// does an engine trigger function (a trigger on a contract table) that no mutant's `replaces:`
// names: a new trigger gets its mutant.
//
//   npm run mutation-check                  every mutant, 2 at a time
//   npm run mutation-check -- 07 fx_        only mutants whose name starts with or contains these
//   npm run mutation-check -- --baseline    first run every caught-by selection without a mutant
//                                           (it must pass, or CAUGHT would prove nothing; CI runs
//                                           the whole suite before this check instead)
//
// Scratch templates are named pt_mutant_<NN>_<run id> and dropped at the end, also on failure
// or interruption (leftovers of a killed run older than an hour are dropped by the next run).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { databaseUrl, newRunId, serverUrl, templateName, useTemplate } from '../test/helpers/db.js';
import { buildTemplate } from './test-setup.js';
import { helperFile, loadMutants, namedBy, root, type Mutant } from './mutants.js';

const PARALLEL = 2;
const runId = Date.now().toString(36);
const logDir = path.join(os.tmpdir(), `pt-mutation-check-${runId}`);
const tsx = path.join(root, 'node_modules', '.bin', 'tsx');

type Outcome = 'CAUGHT' | 'SURVIVED' | 'ERROR';
interface Selection {
  testFiles: string[];
  env: Record<string, string>;
}
interface RunResult {
  passed: number;
  failed: number;
  failedTests: string[];
  summaryFound: boolean;
  log: string;
}

const scratch = new Set<string>();
const children = new Set<ChildProcess>();

function admin() {
  return postgres(serverUrl, { max: 1, onnotice: () => {} });
}

async function dropDatabase(name: string): Promise<void> {
  const a = admin();
  try {
    await a.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await a.end();
  }
}

async function dropStale(): Promise<void> {
  const a = admin();
  try {
    const rows = await a<{ datname: string }[]>`select datname from pg_database where datname like 'pt_mutant_%'`;
    for (const { datname } of rows) {
      const born = parseInt(datname.split('_').at(-1) ?? '', 36);
      if (Number.isFinite(born) && Date.now() - born > 3_600_000) {
        await a.unsafe(`drop database if exists "${datname}" with (force)`);
      }
    }
  } finally {
    await a.end();
  }
}

/** Engine trigger functions on the contract tables (schema public) that no mutant names. */
async function uncoveredTriggerFunctions(mutants: Mutant[]): Promise<string[]> {
  const sql = postgres(databaseUrl(templateName), { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ proname: string; tables: string }[]>`
      select p.proname, string_agg(distinct c.relname, ', ' order by c.relname) as tables
      from pg_trigger t
      join pg_class c on c.oid = t.tgrelid
      join pg_namespace n on n.oid = c.relnamespace
      join pg_proc p on p.oid = t.tgfoid
      where not t.tgisinternal and n.nspname = 'public'
      group by p.proname
      order by p.proname`;
    if (rows.length === 0) throw new Error(`no trigger on a contract table in ${templateName}: is it migrated?`);
    return rows.filter((r) => namedBy(mutants, r.proname).length === 0).map((r) => `${r.proname} (on ${r.tables})`);
  } finally {
    await sql.end();
  }
}

/** Clone the template and install the mutant in the clone (one session: pg_temp.mutate lives in it). */
async function scratchTemplate(mutant: Mutant): Promise<string> {
  const name = `pt_mutant_${mutant.name.slice(0, 2)}_${runId}`;
  const a = admin();
  try {
    scratch.add(name);
    await a.unsafe(`create database "${name}" template "${templateName}"`);
  } finally {
    await a.end();
  }
  const helper = await readFile(helperFile, 'utf8');
  const sql = postgres(databaseUrl(name), { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`${helper}\n${mutant.sql}`);
  } catch (err) {
    await sql.end();
    await dropDatabase(name);
    scratch.delete(name);
    throw err;
  }
  await sql.end();
  return name;
}

async function runTests(template: string, selection: Selection, logName: string): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, PT_TEMPLATE_DB: template, ...selection.env };
  // Never let a mutant's output become an isolation spec's expected output.
  delete env.PT_ISOLATION_ACCEPT;
  if (!('PT_ISOLATION_SPEC' in selection.env)) delete env.PT_ISOLATION_SPEC;
  const child = spawn(tsx, [path.join('scripts', 'run-tests.ts'), ...selection.testFiles], {
    cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  children.add(child);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
  child.stderr.setEncoding('utf8').on('data', (c: string) => { out += c; });
  await new Promise<void>((resolve) => child.on('close', () => resolve()));
  children.delete(child);
  const log = path.join(logDir, `${logName}.log`);
  await writeFile(log, out);
  const summary = /^(\d+) passed, (\d+) failed$/m.exec(out);
  const failedTests = [...new Set([...out.matchAll(/^ {4}not ok \d+ - (.*?)(?: # time=.*)?$/gm)].map((m) => m[1]!))];
  return {
    passed: Number(summary?.[1] ?? 0),
    failed: Number(summary?.[2] ?? 0),
    failedTests,
    summaryFound: summary !== null,
    log,
  };
}

function describe(selection: Selection): string {
  const env = Object.entries(selection.env).map(([k, v]) => `${k}=${v}`);
  return [...selection.testFiles, ...env].join(' ');
}

async function pool<T, R>(items: T[], work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(PARALLEL, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  });
  await Promise.all(lanes);
  return results;
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)}s`;
}

async function checkMutant(mutant: Mutant): Promise<Outcome> {
  const started = Date.now();
  let outcome: Outcome;
  let detail: string;
  let template: string | null = null;
  try {
    template = await scratchTemplate(mutant);
  } catch (err) {
    outcome = 'ERROR';
    detail = `does not apply: ${(err as Error).message}`;
  }
  if (template) {
    const r = await runTests(template, mutant, mutant.name);
    await dropDatabase(template);
    scratch.delete(template);
    if (!r.summaryFound) {
      outcome = 'ERROR';
      detail = `the test run ended without its summary line (log: ${r.log})`;
    } else if (r.failed > 0) {
      outcome = 'CAUGHT';
      detail = `${r.failed} of ${r.passed + r.failed} failed: ${r.failedTests.join('; ') || '(outside a test)'}`;
    } else {
      outcome = 'SURVIVED';
      detail = `${r.passed} passed (log: ${r.log})`;
    }
  }
  console.log(`${outcome!.padEnd(8)} ${mutant.name.padEnd(52)} ${seconds(started).padStart(6)}  ${describe(mutant)}`);
  console.log(`         ${detail!}`);
  return outcome!;
}

async function baseline(mutants: Mutant[]): Promise<boolean> {
  const selections = new Map<string, Selection>();
  for (const m of mutants) selections.set(describe(m), { testFiles: m.testFiles, env: m.env });
  console.log(`baseline: ${selections.size} test selections without a mutant, on ${templateName}`);
  const ok = await pool([...selections.entries()], async ([label, selection]) => {
    const started = Date.now();
    const r = await runTests(templateName, selection, `baseline-${label.replace(/[^a-z0-9]+/gi, '_')}`);
    const passed = r.summaryFound && r.failed === 0;
    console.log(`${passed ? 'PASSED' : 'FAILED'}   ${label} ${seconds(started)}${passed ? '' : ` (log: ${r.log})`}`);
    return passed;
  });
  return ok.every(Boolean);
}

async function cleanup(): Promise<void> {
  for (const child of children) {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  for (const name of scratch) {
    await dropDatabase(name).catch((err: Error) => console.error(`could not drop ${name}: ${err.message}`));
  }
  scratch.clear();
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const wantBaseline = args.includes('--baseline');
  const filters = args.filter((a) => !a.startsWith('--'));
  const all = await loadMutants();
  const mutants = filters.length === 0 ? all : all.filter((m) => filters.some((f) => m.name.startsWith(f) || m.name.includes(f)));
  if (mutants.length === 0) {
    console.error(`no mutant matches ${filters.join(', ')}`);
    return 2;
  }
  await mkdir(logDir, { recursive: true });
  await dropStale();
  if (!process.env.PT_TEMPLATE_DB) {
    // No template to reuse: migrate one for this check (dropped with the scratch templates).
    const own = `pt_tpl_${newRunId()}`;
    scratch.add(own);
    console.log(`migrating a template ${own} (set PT_TEMPLATE_DB to reuse npm test's)`);
    await buildTemplate(own);
    useTemplate(own);
  }
  const started = Date.now();
  const uncovered = await uncoveredTriggerFunctions(all);

  if (wantBaseline && !(await baseline(mutants))) {
    console.log('baseline failed: fix the suite before reading the mutation check');
    return 1;
  }
  console.log(`${mutants.length} mutants against ${templateName}, ${PARALLEL} at a time (logs: ${logDir})`);
  const outcomes = await pool(mutants, checkMutant);

  const count = (o: Outcome) => outcomes.filter((x) => x === o).length;
  console.log('');
  console.log(`${mutants.length} mutants: ${count('CAUGHT')} caught, ${count('SURVIVED')} survived, ${count('ERROR')} errors, in ${seconds(started)}`);
  if (uncovered.length > 0) {
    console.log(`trigger functions with no mutant naming them in its "-- replaces:" line: ${uncovered.join('; ')}`);
  } else {
    console.log('every engine trigger function on a contract table has a mutant');
  }
  return count('CAUGHT') === mutants.length && uncovered.length === 0 ? 0 : 1;
}

let aborting = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (aborting) return;
    aborting = true;
    console.error(`${signal}: stopping the test runs, dropping the scratch templates`);
    void cleanup().finally(() => process.exit(130));
  });
}

try {
  process.exitCode = await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
