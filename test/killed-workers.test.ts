// Killed workers and busy producers (issue #6, item 9): 8 producer sessions run multi-statement
// transactions (snapshots, flows and manifest rows of whole portfolio-days, corrections of earlier
// days, in random portfolio order) while the CLI worker is SIGKILLed every couple of seconds.
// Asserted: no producer ever sees a deadlock (each session writes its own portfolios, so a
// deadlock could only come from the engine), no backend ever waits for an advisory lock (a job
// never queues behind another), every killed worker's sessions end within a few seconds, and the
// final state equals a fresh load of the same inputs with every day current.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freshDatabase } from './helpers/db.js';
import { Rng } from './model/book.js';
import { readStatus } from '../src/status.js';

const BIN = fileURLToPath(new URL('../bin/portfolio-timeseries.js', import.meta.url));
const SEED = Number(process.env.SEED ?? Date.now() % 100000);
const PRODUCERS = 8;
const PORTFOLIOS_PER_PRODUCER = 3;
const DAYS = 25;
const POSITIONS = 6;
const MIN_KILLS = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dateOf = (i: number) => new Date(Date.UTC(2025, 0, 6 + i)).toISOString().slice(0, 10);

t.test('8 producers, workers killed every few seconds: no deadlock, no orphaned session, exact end state', async (t) => {
  t.comment(`seed ${SEED} (replay with SEED=${SEED})`);
  const db = await freshDatabase(t);
  const { sql } = db;
  const rng = new Rng(SEED);
  const currencies = ['USD', 'EUR', 'GBP'];
  await sql`insert into instruments (security_id, currency)
            select 'S' || i, (array['USD', 'EUR', 'GBP'])[1 + i % 3] from generate_series(1, ${POSITIONS * 2}) i`;
  await sql`insert into fx_rates (from_currency, to_currency, rate_date, rate) values
            ('EUR', 'USD', '2024-12-31', 1.1), ('GBP', 'USD', '2024-12-31', 1.3),
            ('USD', 'EUR', '2024-12-31', 0.9), ('GBP', 'EUR', '2024-12-31', 1.2)`;
  const portfolios = Array.from({ length: PRODUCERS * PORTFOLIOS_PER_PRODUCER }, (_, i) => `K${String(i).padStart(2, '0')}`);
  await sql`insert into portfolios (portfolio_id, base_currency, open_date)
            select p, case when right(p, 1)::int % 2 = 0 then 'USD' else 'EUR' end, '2024-12-01'
            from unnest(${portfolios}::text[]) p`;

  // ---- the killer ----
  let stopKilling = false;
  let workerNo = 0;
  let current: { child: ChildProcess; app: string; exited: Promise<void> } | null = null;
  const orphanMs: number[] = [];
  const start = () => {
    const app = `pt-killed-worker-${++workerNo}`;
    const child = spawn(process.execPath, [BIN, 'worker', '--concurrency', '2'], {
      env: { ...process.env, DATABASE_URL: db.url, PGAPPNAME: app }, stdio: ['ignore', 'ignore', 'ignore'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    current = { child, app, exited };
  };
  t.teardown(() => { if (current) current.child.kill('SIGKILL'); });
  const killer = (async () => {
    start();
    // At least MIN_KILLS kills, however fast the producers are (on a fast machine they may finish
    // before the fifth); then until the producers are done.
    while (!stopKilling || workerNo - 1 < MIN_KILLS) {
      await sleep(rng.int(900, 2000));
      if (stopKilling && workerNo - 1 >= MIN_KILLS) break;
      const victim = current!;
      victim.child.kill('SIGKILL');
      await victim.exited;
      const killedAt = Date.now();
      start();
      // The victim's backends must end by themselves (client_connection_check_interval).
      void (async () => {
        for (;;) {
          const [r] = await sql<{ n: number }[]>`
            select count(*)::int as n from pg_stat_activity where application_name = ${victim.app}`;
          if (r!.n === 0 || Date.now() - killedAt > 20_000) break;
          await sleep(50);
        }
        orphanMs.push(Date.now() - killedAt);
      })();
    }
  })();

  // ---- lock watcher: no backend may wait for an advisory lock ----
  let advisoryWaits = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const [r] = await sql<{ n: number }[]>`
        select count(*)::int as n from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where a.datname = current_database() and l.locktype = 'advisory' and not l.granted`;
      advisoryWaits = Math.max(advisoryWaits, r!.n);
      await sleep(20);
    }
  })();

  // ---- the producers ----
  let deadlocks = 0;
  let committed = 0;
  const errors: string[] = [];
  const started = Date.now();
  await Promise.all(Array.from({ length: PRODUCERS }, async (_, p) => {
    const session = db.connect(1);
    const mine = portfolios.slice(p * PORTFOLIOS_PER_PRODUCER, (p + 1) * PORTFOLIOS_PER_PRODUCER);
    const prng = new Rng(SEED * 31 + p);
    for (let day = 0; day < DAYS; day++) {
      for (const pf of prng.shuffle([...mine])) {
        const d = dateOf(day);
        const held = Array.from({ length: POSITIONS }, (_, k) => `S${1 + ((k + day + pf.charCodeAt(2)) % (POSITIONS * 2))}`);
        try {
          await session.begin(async (tx) => {
            for (const [k, s] of held.entries()) {
              const v = 1000 + 10 * k + day + prng.int(0, 9);
              await tx`insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, cost_basis_local,
                         market_value, market_value_local, valuation_status)
                       values (${pf}, ${s}, ${d}, 10, ${v}, ${v}, ${v}, 'VALUED_CURRENT')`;
            }
            if (prng.chance(0.5)) {
              const s = held[prng.int(0, POSITIONS - 1)]!;
              const [ins] = await tx<{ currency: string }[]>`select currency from instruments where security_id = ${s}`;
              const currency = ins!.currency;
              await tx`insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, amount, currency,
                         classification, timing, is_position_flow, is_portfolio_flow)
                       values (${`${pf}-${d}-${s}`}, ${pf}, ${s}, ${d}, -12.5, ${currency}, 'EXPENSE', 'EOD', true, true)`;
            }
            if (prng.chance(0.3)) {
              await tx`insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, amount, currency,
                         classification, timing, is_position_flow, is_portfolio_flow)
                       values (${`${pf}-${d}-dep`}, ${pf}, null, ${d}, 500, ${currencies[prng.int(0, 2)]!}, 'CASHFLOW_IN', 'BOD', false, true)`;
            }
            await tx`insert into daily_aggregation_manifest values (${pf}, ${d}, ${POSITIONS})`;
            if (day > 2 && prng.chance(0.4)) {
              // A correction of an earlier day of the same portfolio.
              await tx`update daily_position_snapshots set market_value = market_value + 1, market_value_local = market_value_local + 1
                       where portfolio_id = ${pf} and date = ${dateOf(prng.int(0, day - 1))}`;
            }
          });
          committed++;
        } catch (e) {
          if ((e as { code?: string }).code === '40P01') deadlocks++;
          errors.push(`${pf} ${d}: ${(e as Error).message}`);
        }
        await sleep(prng.int(0, 50));
      }
    }
  }));
  const producedMs = Date.now() - started;
  stopKilling = true;
  await killer;

  // The last worker converges; then stop it.
  let notCurrent = -1;
  const total = portfolios.length * DAYS;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const states = await readStatus(sql);
    notCurrent = states.filter((s) => s.state !== 'current').length + (total - states.length);
    if (notCurrent === 0) break;
    await sleep(200);
  }
  watching = false;
  await watcher;
  (current as { child: ChildProcess } | null)?.child.kill('SIGTERM');
  for (let i = 0; i < 100 && orphanMs.length < workerNo - 1; i++) await sleep(100);

  t.comment(`${committed} producer transactions in ${producedMs} ms from ${PRODUCERS} sessions; ${workerNo - 1} worker kills; ` +
    `killed workers' sessions gone after ${Math.min(...orphanMs)}..${Math.max(...orphanMs)} ms`);
  t.strictSame(errors, [], 'every producer transaction committed');
  t.equal(deadlocks, 0, 'no producer saw a deadlock');
  t.equal(committed, PRODUCERS * PORTFOLIOS_PER_PRODUCER * DAYS, 'all of them');
  t.ok(workerNo - 1 >= MIN_KILLS, `the worker was killed ${workerNo - 1} times`);
  t.equal(advisoryWaits, 0, 'no backend ever waited for an advisory lock (jobs never queue behind each other)');
  t.equal(orphanMs.length, workerNo - 1, 'every killed worker was watched');
  t.ok(orphanMs.every((ms) => ms < 5000), `every killed worker's sessions ended within 5 s (slowest ${Math.max(...orphanMs)} ms)`);
  t.equal(notCurrent, 0, 'every declared day is current');
  await db.sql.unsafe(readFileSync(fileURLToPath(new URL('./isolation/pt_test.sql', import.meta.url)), 'utf8'));
  const check = await sql.begin('isolation level repeatable read', async (tx) => {
    const [row] = await tx<{ check: string }[]>`select pt_test.check() as check`;
    return row!.check;
  });
  t.equal(check, 'ok', 'outputs and status equal a fresh load of the final inputs');
});

