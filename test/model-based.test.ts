// Model-based: >= 500 seeded random operations over every input kind (value updates, late,
// corrected and deleted cash flows, FX corrections, back-dated and deleted rates, manifest changes
// with their snapshots, epoch raises followed by new-epoch snapshots, and reference data written
// beside them by sessions that do not own those keys: instruments deleted and re-inserted or
// re-currencied, portfolios re-based, whole tables truncated and reloaded) run from 3 concurrent
// sessions while the real CLI worker (bin/portfolio-timeseries.js worker) is SIGKILLed and
// restarted at random points (at least MB_KILLS times, spread over the operations). Then a repair
// seals the days whose manifest row is missing or wrong (normally none), the last worker is
// stopped with SIGTERM, the queue is drained, and the FINAL contents of the input tables plus the
// recorded epoch histories go through the decimal.js reference model (test/model/reference.ts):
// every output row must equal it exactly and every declared day must be current. The final state
// is also compared with a fresh load of the same inputs (pt_test.check(), outputs and status).
//
// Replay with SEED=<printed seed>: the operations and their order per session are a function of
// the seed (test/model-based/ops.ts); the interleaving of sessions and worker kills is not.
// Knobs: MB_OPS (operations before follow-ups, default 560), MB_SESSIONS (3), MB_KILLS (minimum
// worker kills, 6), MB_PACE_MS (mean pause between a session's transactions, 12).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { PORTFOLIO_COLUMNS, POSITION_COLUMNS, diff, pfKey, posKey } from './model/compare.js';
import { freshDatabase, type TestDatabase } from './helpers/db.js';
import type { Sql } from '../src/db.js';
import { runWorkerOnce } from '../src/worker.js';
import { readStatus } from '../src/status.js';
import { Rng, seedFromEnv } from './model/book.js';
import {
  effectiveEpoch, referenceModel, type CashflowIn, type EpochHistoryIn, type FxRateIn, type InstrumentIn, type ManifestIn,
  type ModelInput, type PortfolioIn, type SnapshotIn,
} from './model/reference.js';
import { generateScenario, OP_KINDS, type Op, type OpKind } from './model-based/ops.js';

const SEED = seedFromEnv();
const SESSIONS = Number(process.env.MB_SESSIONS ?? 3);
const OPS = Number(process.env.MB_OPS ?? 560);
const MIN_KILLS = Number(process.env.MB_KILLS ?? 6);
const PACE_MS = Number(process.env.MB_PACE_MS ?? 12);
const BIN = fileURLToPath(new URL('../bin/portfolio-timeseries.js', import.meta.url));


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


// ---------- the producers ----------

class Producers {
  retries = 0;
  readonly deadlocks = new Set<string>();
  readonly counts = new Map<OpKind, number>();
  done = 0;
  /** Per key, the epochs that became current, in commit order (the model's EpochHistoryIn). */
  readonly histories = new Map<string, EpochHistoryIn>();

  async run(session: Sql, op: Op, count = true): Promise<void> {
    for (;;) {
      try {
        await session.begin(async (tx) => {
          for (const st of op.stmts) {
            const r = await (tx as unknown as Sql).unsafe(st.text, st.params as never[]);
            if (st.rows !== undefined && r.count !== st.rows) {
              throw new Error(`bookkeeping: op #${op.seq} ${op.kind} (${op.label}) affected ${r.count} rows, expected ${st.rows}: ${st.text}`);
            }
          }
        });
        break;
      } catch (e) {
        if ((e as { code?: string }).code === '40P01') {
          this.retries++;
          this.deadlocks.add(`${(e as Error).message} ${(e as { where?: string }).where ?? ''}`.slice(0, 300));
          continue;
        }
        throw Object.assign(new Error(`seed ${SEED}: op #${op.seq} ${op.kind} (${op.label}) on session ${op.session} failed: ${(e as Error).message}`), { cause: e });
      }
    }
    // Committed: record its epochs in commit order (one session per key, so this is the key's order).
    for (const ev of op.epochEvents) {
      const k = `${ev.portfolio_id}|${ev.security_id}`;
      if (!this.histories.has(k)) this.histories.set(k, { portfolio_id: ev.portfolio_id, security_id: ev.security_id, current: 0, starts: [] });
      const h = this.histories.get(k)!;
      h.starts.push({ epoch: ev.epoch, start: ev.start });
      h.current = ev.epoch;
    }
    if (count) {
      this.counts.set(op.kind, (this.counts.get(op.kind) ?? 0) + 1);
      this.done++;
    }
  }
}

// ---------- the worker, killed and restarted ----------

class KilledWorker {
  child: ChildProcess | null = null;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;
  spawned = 0;
  kills = 0;
  killsWithJobRunning = 0;
  stderr: string[] = [];
  unexpectedExits: string[] = [];

  constructor(readonly db: TestDatabase, readonly probe: Sql) {}

  /** Resolves when a --verbose worker says it is looking for jobs. */
  ready: Promise<void> | null = null;

  start(verbose = false): void {
    const child = spawn(process.execPath, [BIN, 'worker', '--concurrency', '2', ...(verbose ? ['--verbose'] : [])], {
      env: { ...process.env, DATABASE_URL: this.db.url },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.spawned++;
    const n = this.spawned;
    child.stderr!.setEncoding('utf8');
    let markReady = () => {};
    this.ready = new Promise((resolve) => { markReady = resolve; });
    child.stderr!.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) {
        if (/looking for jobs/.test(line)) markReady();
        if (line.trim() && (!verbose || /error|warning/.test(line))) this.stderr.push(`[worker ${n}] ${line}`);
      }
    });
    this.child = child;
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** SIGKILL at a random point: after a random time, preferably while it holds a job. */
  async killCycle(rng: Rng): Promise<void> {
    const [row] = await this.probe<{ now: string }[]>`select now()::text as now`;
    const now = row!.now;
    this.start();
    const child = this.child!;
    let exited = false;
    void this.exit!.then(() => { exited = true; });
    await sleep(rng.int(400, 1600));
    // Up to half a second more for one of its jobs to be running.
    let running = false;
    for (let i = 0; i < 10 && !exited; i++) {
      const [locked] = await this.probe<{ n: number }[]>`
        select count(*)::int as n from graphile_worker.jobs where locked_at >= ${now}::timestamptz`;
      if (locked!.n > 0) { running = true; break; }
      await sleep(50);
    }
    if (exited) {
      const r = await this.exit!;
      this.unexpectedExits.push(`worker ${this.spawned} exited by itself: code ${r.code} signal ${r.signal}`);
      return;
    }
    child.kill('SIGKILL');
    await this.exit;
    this.kills++;
    if (running) this.killsWithJobRunning++;
    this.child = null;
    await sleep(rng.int(0, 300));
  }

  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child!;
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.kill('SIGTERM');
    const r = await this.exit!;
    clearTimeout(timer);
    this.child = null;
    return r;
  }
}

// ---------- reading the final inputs ----------

async function readInputs(sql: Sql): Promise<Omit<ModelInput, 'epochs'>> {
  const portfolios = await sql<PortfolioIn[]>`
    select portfolio_id, base_currency, open_date::text as open_date, close_date::text as close_date from portfolios`;
  const instruments = await sql<InstrumentIn[]>`select security_id, currency, name from instruments`;
  const fx_rates = await sql<FxRateIn[]>`select from_currency, to_currency, rate_date::text as rate_date, rate from fx_rates`;
  const cashflows = await sql<CashflowIn[]>`
    select transaction_id, portfolio_id, security_id, cashflow_date::text as cashflow_date, epoch, amount, currency,
      classification, timing, is_position_flow, is_portfolio_flow from cashflows`;
  const snapshots = await sql<SnapshotIn[]>`
    select portfolio_id, security_id, date::text as date, epoch, quantity, cost_basis, cost_basis_local, market_price,
      market_value, market_value_local, valuation_status from daily_position_snapshots`;
  const manifest = await sql<ManifestIn[]>`
    select portfolio_id, aggregation_date::text as aggregation_date, expected_count from daily_aggregation_manifest`;
  return {
    portfolios: [...portfolios], instruments: [...instruments], fx_rates: [...fx_rates], cashflows: [...cashflows],
    snapshots: [...snapshots], manifest: [...manifest],
  };
}

async function outputs(sql: Sql) {
  const positions = await sql<Record<string, unknown>[]>`
    select portfolio_id, security_id, date::text as date, ${sql(POSITION_COLUMNS as unknown as string[])} from position_timeseries`;
  const portfolios = await sql<Record<string, unknown>[]>`
    select portfolio_id, date::text as date, ${sql(PORTFOLIO_COLUMNS as unknown as string[])} from portfolio_timeseries`;
  return { positions, portfolios };
}

interface Check {
  comment(...args: unknown[]): void;
  equal(found: unknown, wanted: unknown, message: string): boolean;
}

/** The database's outputs and day states against the model of its current inputs. */
async function compareWithModel(t: Check, db: TestDatabase, histories: Map<string, EpochHistoryIn>, what: string): Promise<number> {
  const input: ModelInput = { ...(await readInputs(db.sql)), epochs: [...histories.values()] };
  const model = referenceModel(input);
  const actual = await outputs(db.sql);
  const report = (name: string, diffs: string[]) => {
    if (diffs.length) t.comment(`seed ${SEED}: ${what}: ${name}: ${diffs.length} differences, first ones:\n    ${diffs.slice(0, 15).join('\n    ')}`);
    t.equal(diffs.length, 0, `${what}: ${name} (seed ${SEED})`);
    return diffs.length;
  };
  let bad = 0;
  bad += report(`every position_timeseries row equals the model (${model.positions.length} rows)`,
    diff(model.positions as unknown as Record<string, unknown>[], actual.positions, posKey, POSITION_COLUMNS));
  bad += report(`every portfolio_timeseries row equals the model (${model.portfolios.length} rows)`,
    diff(model.portfolios as unknown as Record<string, unknown>[], actual.portfolios, pfKey, PORTFOLIO_COLUMNS));
  const notComputed = model.days.filter((d) => d.state !== 'computed').map((d) => `${d.portfolio_id}/${d.date}: model ${d.state} (${d.reason})`);
  bad += report(`the model computes every declared day (${model.days.length}): the operations kept the book valid`, notComputed);
  const status = new Map((await readStatus(db.sql)).map((s) => [`${s.portfolio_id}/${s.date}`, s]));
  const notCurrent = model.days
    .map((d) => ({ d, s: status.get(`${d.portfolio_id}/${d.date}`) }))
    .filter(({ s }) => s?.state !== 'current')
    .map(({ d, s }) => `${d.portfolio_id}/${d.date}: status ${s?.state ?? 'none'} (${s?.detail ?? ''})`);
  bad += report('every declared day is current in status()', notCurrent);
  // position_state agrees with the recorded histories.
  const states = await db.sql<{ portfolio_id: string; security_id: string; epoch: number }[]>`
    select portfolio_id, security_id, epoch from position_state`;
  const epochDiffs = states.filter((s) => histories.get(`${s.portfolio_id}|${s.security_id}`)?.current !== s.epoch)
    .map((s) => `${s.portfolio_id}/${s.security_id}: table ${s.epoch}, recorded ${histories.get(`${s.portfolio_id}|${s.security_id}`)?.current}`);
  if (states.length !== histories.size) epochDiffs.push(`${states.length} position_state rows, ${histories.size} recorded histories`);
  bad += report('position_state matches the recorded epoch histories', epochDiffs);
  return bad;
}

/** pt_test.check() (test/isolation/pt_test.sql): the outputs and status() against a fresh load of the same inputs. */
async function compareWithFreshLoad(db: TestDatabase): Promise<string> {
  await db.sql.unsafe(readFileSync(fileURLToPath(new URL('./isolation/pt_test.sql', import.meta.url)), 'utf8'));
  return db.sql.begin('isolation level repeatable read', async (tx) => {
    const [row] = await tx<{ check: string }[]>`select pt_test.check() as check`;
    return row!.check;
  });
}

t.test('model-based: random operations, concurrent sessions, killed workers, exact final state', async (t) => {
  const started = Date.now();
  t.comment(`seed ${SEED} (replay with SEED=${SEED})`);
  const scenario = generateScenario({ seed: SEED, sessions: SESSIONS, ops: OPS });
  const perSession = Array.from({ length: SESSIONS }, (_, s) => scenario.ops.filter((o) => o.session === s));
  t.comment(`${scenario.ops.length} operations generated: ${perSession.map((l, s) => `session ${s}: ${l.length}`).join(', ')}`);
  t.ok(scenario.ops.length >= 500, `at least 500 operations (seed ${SEED})`);

  const db = await freshDatabase(t);
  const producers = new Producers();

  // The initial book, loaded and computed, must already equal the model.
  const loader = db.connect(1);
  for (const op of scenario.initial) await producers.run(loader, op, false);
  await runWorkerOnce({ connectionString: db.url });
  const initialBad = await compareWithModel(t, db, producers.histories, 'initial book');
  if (initialBad) return;

  const probe = db.connect(1);
  const worker = new KilledWorker(db, probe);
  t.teardown(() => { if (worker.child) worker.child.kill('SIGKILL'); });
  const killRng = new Rng((SEED ^ 0x6b111) >>> 0);
  let opsDone = false;
  let failure: unknown = null;
  const killer = (async () => {
    while (!failure && (!opsDone || worker.kills < MIN_KILLS)) await worker.killCycle(killRng);
    if (!failure) worker.start(true); // the one that is stopped cleanly at the end
  })().catch((e: unknown) => { failure ??= e; });

  const sessions = Array.from({ length: SESSIONS }, () => db.connect(1));
  const opsStarted = Date.now();
  await Promise.all(perSession.map(async (list, s) => {
    const pace = new Rng((SEED + 1000 * (s + 1)) >>> 0);
    try {
      for (const [i, op] of list.entries()) {
        // Kills are spread over the operation phase: op i of n waits for MIN_KILLS * i / n kills.
        while (worker.kills < Math.floor((MIN_KILLS * i) / list.length) && !failure) await sleep(20);
        if (failure) return;
        await producers.run(sessions[s]!, op);
        await sleep(pace.int(0, 2 * PACE_MS));
      }
    } catch (e) {
      failure ??= e;
    }
  }));
  opsDone = true;
  const opsMs = Date.now() - opsStarted;
  const killsDuringOps = worker.kills;
  await killer;
  if (failure) {
    const file = `/tmp/pt-model-based-${SEED}.json`;
    writeFileSync(file, JSON.stringify(scenario, null, 1));
    t.comment(`operations written to ${file}`);
    throw failure;
  }

  // Repair: every day that has (or had) a manifest row or a snapshot must end declared with its
  // true count. Only days whose row is missing or wrong are sealed: sealing a day touches it, which
  // would hide a change the engine failed to propagate.
  const repairStarted = Date.now();
  const finalInputs = await readInputs(db.sql);
  const trueCount = new Map<string, number>();
  for (const snap of finalInputs.snapshots) {
    const h = producers.histories.get(`${snap.portfolio_id}|${snap.security_id}`);
    if (snap.epoch === effectiveEpoch(h, snap.date)) trueCount.set(`${snap.portfolio_id}|${snap.date}`, (trueCount.get(`${snap.portfolio_id}|${snap.date}`) ?? 0) + 1);
  }
  const declared = new Map(finalInputs.manifest.map((m) => [`${m.portfolio_id}|${m.aggregation_date}`, m.expected_count]));
  const universe = new Set([...trueCount.keys(), ...declared.keys(), ...scenario.dayUniverse.map((d) => `${d.portfolio_id}|${d.date}`)]);
  const toSeal = [...universe].sort().filter((k) => declared.get(k) !== (trueCount.get(k) ?? 0));
  for (const p of new Set(toSeal.map((k) => k.split('|')[0]!))) {
    const mine = toSeal.filter((k) => k.startsWith(`${p}|`)).map((k) => k.split('|')[1]!);
    await producers.run(sessions[0]!, {
      seq: 0, kind: 'manifest_seal', session: 0, label: `repair ${p}`, epochEvents: [],
      stmts: [{ text: 'select seal_portfolio_day($1, d) from unnest($2::date[]) d order by d', params: [p, mine as never] }],
    }, false);
  }

  // Stop the last worker cleanly (once it is up: before the CLI installs its handlers a SIGTERM
  // would end it by the default action), then drain.
  let readyTimer: NodeJS.Timeout | undefined;
  await Promise.race([worker.ready, new Promise((r) => { readyTimer = setTimeout(r, 30_000); })]);
  clearTimeout(readyTimer);
  const stopped = await worker.stop();
  t.same(stopped, { code: 0, signal: null }, `the worker stops cleanly on SIGTERM (seed ${SEED})`);
  await runWorkerOnce({ connectionString: db.url });
  const drainedMs = Date.now() - repairStarted;

  t.comment(`ops by kind: ${OP_KINDS.filter((k) => producers.counts.has(k)).map((k) => `${k} ${producers.counts.get(k)}`).join(', ')}`);
  t.comment(`${producers.done} operations committed from ${SESSIONS} sessions in ${opsMs} ms; ${producers.retries} deadlock retries; ` +
    `${worker.kills} worker kills (${killsDuringOps} while operations ran, ${worker.killsWithJobRunning} with a job running), ` +
    `${worker.spawned} workers started; repair sealed ${toSeal.length} of ${universe.size} days; repair + stop + drain ${drainedMs} ms`);
  for (const d of producers.deadlocks) t.comment(`deadlock: ${d}`);
  const errors = worker.stderr.filter((l) => /error/i.test(l));
  if (errors.length) t.comment(`worker errors (${errors.length}), first ones:\n    ${errors.slice(0, 8).join('\n    ')}`);
  const [jobs] = await db.sql<{ failed: number; orphaned: number }[]>`
    select count(*) filter (where last_error is not null)::int as failed, count(*) filter (where locked_at is not null)::int as orphaned
    from graphile_worker.jobs`;
  t.comment(`graphile-worker jobs left: ${jobs!.orphaned} locked by killed workers, ${jobs!.failed} with an error`);

  t.equal(producers.done, scenario.ops.length, 'every operation committed');
  t.ok(producers.done >= 500, `at least 500 operations (seed ${SEED})`);
  for (const k of ['value_update', 'cf_insert_security', 'cf_insert_portfolio', 'cf_delete', 'fx_update', 'fx_backdate',
    'position_add', 'position_remove', 'epoch_raise', 'manifest_delete', 'manifest_seal', 'instrument_cycle', 'base_change'] as const) {
    t.ok((producers.counts.get(k) ?? 0) > 0, `operations of kind ${k} ran (seed ${SEED})`);
  }
  t.ok(worker.kills >= 5, `the worker was SIGKILLed at least 5 times (${worker.kills})`);
  t.same(worker.unexpectedExits, [], 'no worker exited by itself');

  await compareWithModel(t, db, producers.histories, 'final state');
  t.equal(await compareWithFreshLoad(db), 'ok', `final state: outputs and status equal a fresh load of the final inputs (seed ${SEED})`);
  t.comment(`seed ${SEED}: total ${Date.now() - started} ms`);
});
