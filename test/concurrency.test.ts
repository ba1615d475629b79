// Contract section 4 under concurrency: no lost update while a job runs, producers never wait for a
// job, jobs never wait for each other, an exact readiness count under concurrent READ COMMITTED
// writers, and convergence after a worker is killed. Every interleaving claim here is asserted
// (who waited, who did not), never only printed. The exhaustive interleavings are the isolation
// specs (test/isolation/specs).
//
// Every producer session logs in as the producer role of sql/14_roles.sql (inputs and the manifest
// only), and every job (the workers, and the sessions that call compute_portfolio directly) as
// the worker role: the engine's guarantees hold with least privilege (issue #8).
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freshDatabase, type TestDatabase } from './helpers/db.js';
import { testRoles } from './helpers/roles.js';
import { normalise, prow } from './helpers/assert.js';
import {
  declare, insertInstrument, insertPortfolio, insertSnapshot, portfolioRows,
} from './helpers/fixtures.js';
import { readStatus } from '../src/status.js';
import { runWorker, runWorkerOnce } from '../src/worker.js';
import type { Sql } from '../src/db.js';

const roles = await testRoles(t);
/** A fresh database with the roles granted. */
async function database(tt: Parameters<typeof freshDatabase>[0]): Promise<TestDatabase> {
  const db = await freshDatabase(tt);
  await roles.grant(db);
  return db;
}
const producerSession = (db: TestDatabase) => roles.connect(db, 'producer');
const jobSession = (db: TestDatabase) => roles.connect(db, 'worker');
const workerUrl = (db: TestDatabase) => roles.url(db, 'worker');

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

/** Resolves with 'done' when the promise settles first, 'waiting' when `ms` pass first. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<'done' | 'waiting'> {
  return Promise.race([p.then(() => 'done' as const), sleep(ms).then(() => 'waiting' as const)]);
}

/** How many backends of this database wait for a lock right now. */
async function lockWaiters(sql: Sql): Promise<number> {
  const [r] = await sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity
    where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()`;
  return r!.n;
}

const compute = (tx: Sql, p: string) =>
  tx<{ r: Record<string, unknown> }[]>`select portfolio_timeseries_engine.compute_portfolio(${p}) as r`;

async function oneDay(sql: Sql, P: string, D: string, value: number): Promise<void> {
  await insertPortfolio(sql, P, 'USD');
  await insertInstrument(sql, 'S', 'USD');
  await insertSnapshot(sql, { portfolio_id: P, security_id: 'S', date: D, quantity: 1, cost_basis_local: 100,
    market_value_local: value, market_value: value });
  await declare(sql, P, D, 1);
}

// ---------------------------------------------------------------------------------------------
t.test('(a) no lost update: a snapshot corrected while a job runs is recomputed; the producer does not wait', async (t) => {
  const db = await database(t);
  const { sql } = db;
  const P = 'PA';
  const D = '2025-09-10';
  await oneDay(sql, P, D, 100);
  await runWorkerOnce({ connectionString: workerUrl(db) });
  t.strictSame((await portfolioRows(sql, P)).map(normalise), [prow(D, { eod_market_value: '100' })]);
  await sql`update daily_position_snapshots set market_value = 150, market_value_local = 150 where portfolio_id = ${P}`;

  // The job computes 150 and keeps its transaction open.
  const job = jobSession(db);
  const producer = producerSession(db);
  const computed = deferred<Record<string, unknown>>();
  const release = deferred();
  const jobTx = job.begin('isolation level repeatable read', async (tx) => {
    const [r] = await compute(tx as unknown as Sql, P);
    computed.resolve(r!.r);
    await release.promise;
  });
  t.equal((await computed.promise).portfolio_days, 1, 'the job computed the day (not committed yet)');
  t.strictSame((await portfolioRows(sql, P)).map(normalise), [prow(D, { eod_market_value: '100' })],
    'readers keep seeing the last complete row while the day is recomputed');

  // The producer corrects the snapshot again meanwhile: it must not wait for the job.
  const upd = producer`update daily_position_snapshots set market_value = 200, market_value_local = 200
                       where portfolio_id = ${P} and date = ${D}`.execute();
  t.equal(await settlesWithin(upd, 2000), 'done', 'the producer committed without waiting for the running job');
  release.resolve();
  await jobTx;
  t.strictSame((await portfolioRows(sql, P)).map(normalise), [prow(D, { eod_market_value: '150' })],
    'the job wrote what its snapshot saw');
  const st = (await readStatus(sql, { portfolioId: P })).find((r) => r.date === D);
  t.equal(st?.state, 'queued', 'and the day is not current: a change committed after the job read its inputs is pending');

  await runWorkerOnce({ connectionString: workerUrl(db) });
  t.strictSame((await portfolioRows(sql, P)).map(normalise), [prow(D, { eod_market_value: '200' })],
    'the final row reflects the last correction');
  t.equal((await readStatus(sql, { portfolioId: P })).find((r) => r.date === D)?.state, 'current');
});

t.test('(a) a job that starts during an open write neither waits for it nor loses it', async (t) => {
  const db = await database(t);
  const { sql } = db;
  const P = 'PA2';
  const D = '2025-09-10';
  await oneDay(sql, P, D, 100);
  await runWorkerOnce({ connectionString: workerUrl(db) });

  const writer = producerSession(db);
  const job = jobSession(db);
  const written = deferred();
  const release = deferred();
  const wtx = writer.begin(async (tx) => {
    await tx`update daily_position_snapshots set market_value = 300, market_value_local = 300 where portfolio_id = ${P}`;
    written.resolve();
    await release.promise;
  });
  await written.promise;
  const run = job.begin('isolation level repeatable read', (tx) => compute(tx as unknown as Sql, P));
  t.equal(await settlesWithin(run, 2000), 'done', 'the job ran to its end while the write was open');
  t.equal((await run)[0]!.r.changes, 0, 'it saw no committed change');
  release.resolve();
  await wtx;
  t.equal((await readStatus(sql, { portfolioId: P }))[0]?.state, 'queued', 'after the write commits the day is not current');
  await runWorkerOnce({ connectionString: workerUrl(db) });
  t.strictSame((await portfolioRows(sql, P)).map(normalise), [prow(D, { eod_market_value: '300' })]);
  t.equal((await readStatus(sql, { portfolioId: P }))[0]?.state, 'current');
});

// ---------------------------------------------------------------------------------------------
t.test('(a) two jobs of one portfolio never interleave, and the second never waits', async (t) => {
  const db = await database(t);
  const { sql } = db;
  await insertPortfolio(sql, 'P', 'USD');
  await insertInstrument(sql, 'S', 'USD');
  for (const [i, date] of ['2025-03-03', '2025-03-04', '2025-03-05'].entries()) {
    await insertSnapshot(sql, { portfolio_id: 'P', security_id: 'S', date, quantity: 1, market_value: 10 + i, market_value_local: 10 + i });
    await declare(sql, 'P', date, 1);
  }
  const first = jobSession(db);
  const second = jobSession(db);
  const firstDone = deferred<Record<string, unknown>>();
  const release = deferred();
  const tx1 = first.begin('isolation level repeatable read', async (tx) => {
    const [r] = await compute(tx as unknown as Sql, 'P');
    firstDone.resolve(r!.r);
    await release.promise;
  });
  t.equal((await firstDone.promise).portfolio_days, 3, 'the first job computed the three days (not committed yet)');
  const secondRun = second.begin('isolation level repeatable read', (tx) => compute(tx as unknown as Sql, 'P'));
  t.equal(await settlesWithin(secondRun, 2000), 'done', 'the second job returned at once');
  t.strictSame((await secondRun)[0]!.r, { portfolio_id: 'P', busy: true }, 'it found the portfolio busy and did nothing');
  t.equal(await lockWaiters(sql), 0, 'no backend waits for a lock');
  release.resolve();
  await tx1;

  // A job whose snapshot predates the first one's commit must not work from it: the guard row
  // makes REPEATABLE READ refuse it (the drain retries such a job).
  await sql`insert into daily_aggregation_manifest values ('P', '2025-03-06', 0)`;
  const stale = jobSession(db);
  const fresh = jobSession(db);
  const snapshotTaken = deferred();
  const freshDone = deferred();
  const staleTx = stale.begin('isolation level repeatable read', async (tx) => {
    await tx`select count(*) from portfolio_timeseries_engine.change`;
    snapshotTaken.resolve();
    await freshDone.promise;
    return compute(tx as unknown as Sql, 'P');
  });
  await snapshotTaken.promise;
  await fresh.begin('isolation level repeatable read', (tx) => compute(tx as unknown as Sql, 'P'));
  freshDone.resolve();
  await t.rejects(staleTx, { code: '40001' }, 'the job with the older snapshot fails with a serialization error');
  const [job] = await sql<{ runs: number }[]>`select runs::int from portfolio_timeseries_engine.portfolio_job where portfolio_id = 'P'`;
  t.equal(job!.runs, 2, 'only the two jobs that did work count as runs');
  await runWorkerOnce({ connectionString: workerUrl(db) }); // the instruments' reference changes
  t.strictSame((await readStatus(sql, { portfolioId: 'P' })).map((r) => r.state), ['current', 'current', 'current', 'current']);
});

t.test('(b) concurrent writers in READ COMMITTED: exact readiness count, each day computed once', async (t) => {
  const db = await database(t);
  const { sql } = db;
  const P = 'PB';
  const SESSIONS = 6;
  const PER = 5;
  const N = SESSIONS * PER;
  const securities = Array.from({ length: N }, (_, k) => `S${String(k + 1).padStart(2, '0')}`);
  await insertPortfolio(sql, P, 'USD');
  for (const s of securities) await insertInstrument(sql, s, 'USD');
  const days = ['2025-10-01', '2025-10-02', '2025-10-03', '2025-10-06', '2025-10-07'];
  const value = (k: number, d: number) => 100 * (k + 1) + d; // security k on day d
  // Days 0..3 are declared up front; day 4's manifest arrives concurrently with its positions.
  for (const d of days.slice(0, 4)) await declare(sql, P, d, N);

  const runner = await runWorker({ connectionString: workerUrl(db), concurrency: 2 });
  t.teardown(() => runner.stop());
  const sessions = Array.from({ length: SESSIONS + 1 }, () => producerSession(db));

  for (const [di, date] of days.entries()) {
    const all = deferred();
    let count = 0;
    const participants = di === 4 ? SESSIONS + 1 : SESSIONS;
    const arrive = () => { if (++count === participants) all.resolve(); };
    const writes = sessions.slice(0, participants).map((s, si) =>
      s.begin(async (tx) => {
        await tx`select 1`;
        arrive();
        await all.promise;
        if (si === SESSIONS) {
          await tx`insert into daily_aggregation_manifest (portfolio_id, aggregation_date, expected_count)
                   values (${P}, ${date}, ${N})`;
          return;
        }
        const mine = securities.slice(si * PER, (si + 1) * PER).map((s, j) => ({ s, k: si * PER + j }));
        if (si % 2 === 0) {
          for (const { s, k } of mine) {
            await tx`insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, cost_basis_local,
                       market_value, market_value_local, valuation_status)
                     values (${P}, ${s}, ${date}, 1, ${value(k, di)}, ${value(k, di)}, ${value(k, di)}, 'VALUED_CURRENT')`;
          }
        } else {
          await tx`insert into daily_position_snapshots ${tx(mine.map(({ s, k }) => ({
            portfolio_id: P, security_id: s, date, quantity: 1, cost_basis_local: value(k, di),
            market_value: value(k, di), market_value_local: value(k, di), valuation_status: 'VALUED_CURRENT',
          })))}`;
        }
      }));
    await Promise.all(writes);
  }

  let states: string[] = [];
  for (let i = 0; i < 300; i++) {
    states = (await readStatus(sql, { portfolioId: P })).map((r) => r.state);
    if (states.length === days.length && states.every((s) => s === 'current')) break;
    await sleep(100);
  }
  t.strictSame(states, days.map(() => 'current'), 'every day current');
  const counters = await sql<{ date: string; position_count: number; expected_count: number; computed_count: number }[]>`
    select date::text, position_count, expected_count, computed_count::int
    from portfolio_timeseries_engine.portfolio_day where portfolio_id = ${P} order by date`;
  t.strictSame(counters.map((r) => ({ ...r })), days.map((date) => ({ date, position_count: N, expected_count: N, computed_count: 1 })),
    'readiness count = 30 on every day; each day computed exactly once');
  const sum = (d: number) => securities.reduce((a, _, k) => a + value(k, d), 0);
  t.strictSame((await portfolioRows(sql, P)).map(normalise), days.map((date, d) => prow(date, {
    bod_market_value: d === 0 ? '0' : String(sum(d - 1)),
    eod_market_value: String(sum(d)),
    position_count: N,
  })), 'rows built from the full set of positions');
});

// ---------------------------------------------------------------------------------------------
t.test('(b) two writers of one key: the next day\'s BOD sees a snapshot inserted concurrently on an undeclared day', async (t) => {
  // Found by the randomised test (seed 13): writer A inserts 01-02 (no manifest) and stays open,
  // writer B inserts 01-03 and commits, the day is computed, A commits. The job that runs after
  // A's commit finds 01-03 as the key's next position day and rebuilds its BOD.
  const db = await database(t);
  const { sql } = db;
  const a = producerSession(db);
  const b = producerSession(db);
  await insertPortfolio(sql, 'P', 'USD');
  await insertInstrument(sql, 'S', 'USD');
  const snap = (q: Sql, date: string, v: number) => insertSnapshot(q, { portfolio_id: 'P', security_id: 'S', date,
    quantity: 1, cost_basis_local: v, market_value_local: v, market_value: v });
  await snap(sql, '2025-01-01', 10);
  await declare(sql, 'P', '2025-01-01', 1);
  await declare(sql, 'P', '2025-01-03', 1);

  const inserted = deferred();
  const release = deferred();
  const txA = a.begin(async (tx) => {
    await snap(tx as unknown as Sql, '2025-01-02', 20);
    inserted.resolve();
    await release.promise;
  });
  await inserted.promise;
  t.equal(await settlesWithin(snap(b, '2025-01-03', 30), 2000), 'done', 'the second writer of the key does not wait');
  await runWorkerOnce({ connectionString: workerUrl(db) });
  const [built] = await sql<{ bod: string }[]>`
    select bod_market_value::text as bod from position_timeseries where date = '2025-01-03'`;
  t.equal(normalise({ v: built!.bod }).v, '10', '01-03 is first built from the committed inputs (BOD from 01-01)');
  release.resolve();
  await txA;
  t.equal((await readStatus(sql, { portfolioId: 'P' })).find((r) => r.date === '2025-01-03')?.state, 'queued',
    'once 01-02 commits, 01-03 is not current');
  await runWorkerOnce({ connectionString: workerUrl(db) });
  const rows = await sql<{ date: string; bod: string }[]>`
    select date::text, bod_market_value::text as bod from position_timeseries order by date`;
  t.same(rows.map((r) => [r.date, normalise({ v: r.bod }).v]), [['2025-01-01', '0'], ['2025-01-03', '20']],
    '01-03 takes its BOD from the concurrently inserted 01-02 snapshot');
  t.same(normalise((await portfolioRows(sql, 'P'))[1]!), prow('2025-01-03', { bod_market_value: '10', eod_market_value: '30' }),
    'the portfolio BOD is the previous declared day (01-01)');
});

// ---------------------------------------------------------------------------------------------
t.test('(c) crash safety: a SIGKILLed CLI worker, then a new one, converges; the dead worker\'s session ends', async (t) => {
  const db = await database(t);
  const { sql } = db;
  const PORTFOLIOS = 30;
  const DAYS = 200;
  const SECS = 3;
  const pid = (p: number) => `C${String(p).padStart(2, '0')}`;
  const dateOf = (i: number) => new Date(Date.UTC(2024, 0, 1 + i)).toISOString().slice(0, 10);
  for (let s = 1; s <= SECS; s++) await insertInstrument(sql, `S${s}`, 'USD');
  await sql`insert into portfolios (portfolio_id, base_currency, open_date)
            select 'C' || lpad(p::text, 2, '0'), 'USD', '2020-01-01' from generate_series(1, ${PORTFOLIOS}) p`;
  // Security s of portfolio p on day i: 1000 s + i + p.
  await sql`insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, cost_basis_local,
              market_value, market_value_local, valuation_status)
            select 'C' || lpad(p::text, 2, '0'), 'S' || s, ${dateOf(0)}::date + i, 1, 1000 * s,
                   1000 * s + i + p, 1000 * s + i + p, 'VALUED_CURRENT'
            from generate_series(1, ${PORTFOLIOS}) p, generate_series(1, ${SECS}) s, generate_series(0, ${DAYS - 1}) i`;
  await sql`insert into daily_aggregation_manifest (portfolio_id, aggregation_date, expected_count)
            select 'C' || lpad(p::text, 2, '0'), ${dateOf(0)}::date + i, ${SECS}
            from generate_series(1, ${PORTFOLIOS}) p, generate_series(0, ${DAYS - 1}) i`;
  const total = PORTFOLIOS * DAYS;

  const children: ChildProcess[] = [];
  t.teardown(() => { for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); });
  const startWorker = () => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'portfolio-timeseries.js'), 'worker'], {
      cwd: repoRoot, env: { ...process.env, DATABASE_URL: workerUrl(db) }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout!.on('data', (b) => { log += String(b); });
    child.stderr!.on('data', (b) => { log += String(b); });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; log: string }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal, log })));
    children.push(child);
    return { child, exited };
  };

  // Worker 1: kill it while a job is running, after the first rows have appeared. Its backend is
  // left alone: it must notice the dead client and end by itself.
  const w1 = startWorker();
  let killedAt = -1;
  let orphan: number | null = null;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const [r] = await sql<{ rows: number; active: number | null }[]>`
      select (select count(*)::int from portfolio_timeseries) as rows,
             (select min(pid) from pg_stat_activity
              where datname = current_database() and state = 'active' and query like '%compute_portfolio%'
                and pid <> pg_backend_pid()) as active`;
    if (r!.rows > 0 && r!.active !== null) {
      w1.child.kill('SIGKILL');
      orphan = r!.active;
      killedAt = r!.rows;
      break;
    }
    if (w1.child.exitCode !== null) break;
    await sleep(5);
  }
  const e1 = await w1.exited;
  t.equal(e1.signal, 'SIGKILL', `worker 1 was killed (log: ${e1.log.slice(0, 500)})`);
  t.ok(killedAt > 0 && killedAt < total, `killed mid-run with ${killedAt} of ${total} portfolio rows`);
  t.ok(orphan !== null, `a backend of worker 1 was running a job (pid ${orphan})`);
  const killed = Date.now();
  let gone = false;
  while (Date.now() - killed < 10_000) {
    const [r] = await sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where pid = ${orphan}`;
    if (r!.n === 0) { gone = true; break; }
    await sleep(50);
  }
  const orphanMs = Date.now() - killed;
  t.ok(gone && orphanMs < 5000, `the killed worker's backend ended by itself ${orphanMs} ms after the kill`);
  const [after] = await sql<{ rows: number; pending: number }[]>`
    select (select count(*)::int from portfolio_timeseries) as rows,
           (select count(distinct portfolio_id)::int from portfolio_timeseries_engine.change) as pending`;
  t.ok(after!.pending > 0, `${after!.pending} portfolios were left with pending changes`);
  t.ok(after!.rows < total, `${after!.rows} of ${total} rows existed after the kill`);

  // Worker 2: must converge without waiting for graphile-worker's 4-hour lock expiry.
  const started = Date.now();
  const w2 = startWorker();
  let left = -1;
  while (Date.now() - started < 180_000) {
    const states = await readStatus(sql);
    left = states.filter((s) => s.state !== 'current').length + (total - states.length);
    if (left === 0) break;
    await sleep(100);
  }
  const recoveryMs = Date.now() - started;
  t.equal(left, 0, 'every declared day current');
  t.ok(recoveryMs < 150_000, `everything converged ${recoveryMs} ms after the new worker started`);
  t.comment(`recovery: all ${total} days current ${recoveryMs} ms after worker 2 started; ${after!.rows} rows existed then`);

  // Every row equals the methodology: EOD = sum of the day's values, BOD = previous day's EOD.
  const eod = (p: number, i: number) => {
    let x = 0;
    for (let s = 1; s <= SECS; s++) x += 1000 * s + i + p;
    return x;
  };
  const rows = await sql<{ portfolio_id: string; date: string; bod: string; eod: string; n: number; e: number }[]>`
    select portfolio_id, date::text, bod_market_value::text as bod, eod_market_value::text as eod,
           position_count as n, epoch as e
    from portfolio_timeseries order by portfolio_id, date`;
  const wrong: string[] = [];
  let k = 0;
  for (let p = 1; p <= PORTFOLIOS; p++) {
    for (let i = 0; i < DAYS; i++, k++) {
      const r = rows[k];
      const want = { portfolio_id: pid(p), date: dateOf(i), bod: i === 0 ? '0' : String(eod(p, i - 1)), eod: String(eod(p, i)), n: SECS, e: 0 };
      const got = r && normalise(r as unknown as Record<string, unknown>);
      if (!got || JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${JSON.stringify(got)} != ${JSON.stringify(want)}`);
    }
  }
  t.equal(rows.length, total, 'one row per portfolio-day');
  t.strictSame(wrong.slice(0, 5), [], 'every portfolio row equals the expected values');
  const [pos] = await sql<{ n: number; bad: number }[]>`
    select count(*)::int as n,
           count(*) filter (where pt.eod_market_value <> s.market_value_local
                            or pt.bod_market_value <> coalesce(prev.market_value_local, 0))::int as bad
    from position_timeseries pt
    join daily_position_snapshots s using (portfolio_id, security_id, date)
    left join daily_position_snapshots prev
      on prev.portfolio_id = pt.portfolio_id and prev.security_id = pt.security_id and prev.date = pt.date - 1`;
  t.strictSame({ ...pos }, { n: total * SECS, bad: 0 }, 'every position row present and equal to its snapshots');

  w2.child.kill('SIGTERM');
  const e2 = await w2.exited;
  t.equal(e2.code, 0, `worker 2 stops cleanly on SIGTERM (log: ${e2.log.slice(0, 500)})`);
});
