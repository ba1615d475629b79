// A worker that stays up (docs/operations.md, "Running the worker"): the CLI's `worker` and
// `worker --once`, and `startWorker()` / `runWorkerOnce()` for library users.
//
// - It owns one node-postgres pool (src/pool.ts: connect timeout, keep-alives, error handlers)
//   and hands it to graphile-worker, which then survives lost connections: a job whose backend is
//   terminated fails and is retried (src/tasks.ts), fetching and LISTEN reconnect by themselves.
// - While the database cannot be reached it waits, retrying with back-off (0.5 s doubling to 30 s,
//   with jitter), at start and whenever graphile-worker's runner gives up, and starts a new runner
//   once the database answers. Only a database that is not migrated, or that refuses this role
//   (authentication, permissions), ends it with an error.
// - stop() (the CLI calls it on SIGTERM/SIGINT) stops taking jobs, lets the running drains finish
//   their current batch (the rest is queued for the next worker), and resolves `done` once every
//   job has ended; no engine row is left locked by it.
// - `once`: runs until nothing runnable is left, then stops; the summary says what failed or is
//   left (the CLI exits 1 unless it is clean).
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { run, type Runner, type WorkerEvents } from 'graphile-worker';
import type pg from 'pg';
import { connectionStringFromEnv, describeUrl } from './db.js';
import type { QueryClient } from './drain.js';
import {
  DatabaseUnavailableError, errorCode, errorText, isConnectionError, MIGRATE_HINT, needsOperator, NotMigratedError,
} from './errors.js';
import { backlog, leftovers, removeConnectionRetries, removeOwnLockedJobs, removeStaleJobs } from './jobs.js';
import { eventsToLogger, loggerFromEvents, stderrLogger, workerLogger } from './log.js';
import type { WorkerMetrics } from './metrics.js';
import { createPool } from './pool.js';
import { sleep } from './sleep.js';
import { unavailableReason } from './probe.js';
import { crontab, makeTaskList } from './tasks.js';
import type { WorkerEvent, WorkerOptions, WorkerSummary } from './types.js';
import { VERSION } from './version.js';

export interface StartWorkerOptions extends WorkerOptions {
  /** Stop once nothing runnable is left (`worker --once`). */
  once?: boolean;
  /** Counted into by every event (`worker --metrics-port`). */
  metrics?: WorkerMetrics;
}

export interface WorkerService {
  /** Resolves when the worker is connected and taking jobs (after its `worker_started` event). */
  readonly started: Promise<void>;
  /** Resolves with the summary when the worker has stopped; rejects on a fatal error. */
  readonly done: Promise<WorkerSummary>;
  /** Stop taking jobs, finish the running ones, then resolve `done`. */
  stop(reason?: string): void;
  /** Resolves when the database answers a query now (GET /health/ready). */
  checkDatabase(): Promise<void>;
  /** The pool (the metrics' queries use it). */
  readonly pool: pg.Pool;
}

const ONCE_DEADLINE_MS = 30 * 60_000;

function backoff(attempt: number): number {
  const base = Math.min(30_000, 500 * 2 ** attempt);
  return Math.round(base * (0.75 + Math.random() * 0.25));
}

/** Errors that waiting cannot cure: the CLI exits with them. */
function isFatal(error: unknown): boolean {
  return error instanceof NotMigratedError || needsOperator(error);
}

export function startWorker(options: StartWorkerOptions = {}): WorkerService {
  const url = connectionStringFromEnv(options.connectionString);
  const once = options.once === true;
  const concurrency = options.concurrency ?? 1;
  const sink = options.onEvent ?? eventsToLogger(options.logger ?? stderrLogger(options.verbose ?? false));
  const totals = { jobs: 0, failedJobs: 0, portfolioDays: 0, positionDays: 0, bodUpdates: 0, retries: 0 };
  const emit = (e: WorkerEvent) => {
    switch (e.event) {
      case 'portfolio_computed':
        totals.portfolioDays += Number(e.portfolio_days ?? 0);
        totals.positionDays += Number(e.position_days ?? 0);
        totals.bodUpdates += Number(e.bod_updates ?? 0);
        break;
      case 'job_finished':
        totals.jobs++;
        totals.retries += Number(e.retries ?? 0);
        break;
      case 'job_failed':
        totals.jobs++;
        totals.failedJobs++;
        break;
      default:
        break;
    }
    options.metrics?.observe(e);
    try {
      sink(e);
    } catch {
      // A failing log sink must not take the worker down.
    }
  };
  const token = randomBytes(4).toString('hex');
  const applicationName = `portfolio-timeseries worker ${token}`;
  const pool = createPool(url, {
    // Jobs, graphile-worker's LISTEN connection and its job fetching and bookkeeping, lock
    // refreshes, metrics: a checkout that waits longer than the connect timeout for a free
    // connection fails like a connect that does, so the pool is generous (idle ones close in 30 s).
    max: Math.max(10, 2 * concurrency + 4),
    applicationName,
    onError: (error, where) => emit({
      level: 'warn', event: 'connection_error', msg: `${where} database connection failed: ${errorText(error)}`,
      error: errorText(error), where,
    }),
    onRetry: (error) => emit({
      level: 'warn', event: 'connection_error', msg: `a connection attempt timed out (${errorText(error)}); trying once more`,
      error: errorText(error), where: 'connect',
    }),
  });
  const q = pool as unknown as QueryClient;
  const abort = new AbortController();
  let stopReason: string | undefined;
  let resolveStarted!: () => void;
  const started = new Promise<void>((resolve) => { resolveStarted = resolve; });
  const taskList = makeTaskList({ emit, signal: abort.signal, ...(options.progressIntervalMs ? { progressIntervalMs: options.progressIntervalMs } : {}) });
  const events = new EventEmitter() as WorkerEvents;
  const poolIds: string[] = [];
  let running = 0;
  events.on('pool:create', ({ workerPool }) => { poolIds.push(workerPool.id); });
  events.on('job:start', () => { running++; });
  events.on('job:complete', () => { running--; });
  const startedAt = Date.now();

  async function probe(): Promise<void> {
    const { rows } = await pool.query<{ migrated: boolean }>(
      `select to_regnamespace('portfolio_timeseries_engine') is not null as migrated`);
    if (!rows[0]?.migrated) throw new NotMigratedError(`the database ${describeUrl(url)} has no portfolio-timeseries engine: ${MIGRATE_HINT}`);
  }

  /** --once: resolves 'done' when nothing runnable is left. */
  async function untilDone(): Promise<'done'> {
    const deadline = Date.now() + ONCE_DEADLINE_MS;
    let lastSweep = 0;
    for (;;) {
      await sleep(100, abort.signal);
      if (abort.signal.aborted) return new Promise<never>(() => {}); // the stop wins the race
      if (running > 0) continue;
      let b;
      try {
        b = await backlog(q, poolIds);
      } catch {
        continue; // the database is away: graphile-worker and the tasks wait for it
      }
      if (b.mine > 0 || running > 0) continue;
      if (b.due === 0 && b.pending === 0 && b.references === 0) return 'done';
      if (b.due === 0 && Date.now() - lastSweep > 1000) {
        // Pending work without a job to run it (its job is held by another worker): wake a drain.
        lastSweep = Date.now();
        await pool.query('select portfolio_timeseries_engine.sweep()').catch(() => {});
      }
      if (Date.now() > deadline) throw new Error('worker --once: work kept arriving for 30 minutes');
    }
  }

  async function main(): Promise<WorkerSummary> {
    const startupDeadline = Date.now() + (options.startupTimeoutMs ?? (once ? 60_000 : Number.POSITIVE_INFINITY));
    let attempt = 0;
    let everStarted = false;
    let reason: WorkerSummary['reason'] = 'stopped';
    emit({
      level: 'info', event: 'worker_starting',
      msg: `portfolio-timeseries ${VERSION} worker${once ? ' --once' : ''} starting (concurrency ${concurrency}) on ${describeUrl(url)}`,
      version: VERSION, pid: process.pid, concurrency, once, database: describeUrl(url), application_name: applicationName,
    });
    while (!abort.signal.aborted) {
      try {
        await probe();
        if (poolIds.length > 0) {
          // A runner of this worker ended (graphile-worker gave up while the database was away):
          // rows it left locked are this worker's own, and its jobs are idempotent.
          await removeOwnLockedJobs(q, poolIds);
        }
        const removed = await removeStaleJobs(q);
        if (removed.length > 0) {
          emit({
            level: 'warn', event: 'stale_jobs_removed',
            msg: `removed ${removed.length} engine job row(s) left locked by a dead worker: ${removed.map((r) => `${r.id} (${r.task}, locked by ${r.locked_by} since ${r.locked_at})`).join(', ')}`,
            count: removed.length, jobs: removed,
          });
        }
        await pool.query('select portfolio_timeseries_engine.sweep()');
      } catch (error) {
        if (isFatal(error)) throw error;
        // A cancelled statement (statement_timeout) is waited out like a lost connection.
        if (!isConnectionError(error) && errorCode(error) !== '57014') throw error;
        if (!everStarted && Date.now() >= startupDeadline) {
          throw new DatabaseUnavailableError(`cannot use the database: ${unavailableReason(error, url)} (gave up after ${Math.round((Date.now() - startedAt) / 1000)} s)`, error);
        }
        const delay = backoff(attempt++);
        emit({
          level: 'warn', event: 'database_unavailable',
          msg: `cannot use the database: ${unavailableReason(error, url)}; retrying in ${delay} ms`,
          error: errorText(error), retry_in_ms: delay, attempt,
        });
        await sleep(delay, abort.signal);
        continue;
      }
      if (attempt > 0) emit({ level: 'info', event: 'database_available', msg: `the database answers again after ${attempt} attempt(s)`, attempts: attempt });
      attempt = 0;
      let runner: Runner;
      try {
        runner = await run({
          pgPool: pool,
          taskList,
          ...(once ? {} : { crontab }),
          concurrency,
          noHandleSignals: true,
          logger: workerLogger(loggerFromEvents(emit, 'graphile_worker')),
          events,
          ...(once ? { pollInterval: 100 } : {}),
        });
      } catch (error) {
        if (isFatal(error)) throw error;
        const delay = backoff(attempt++);
        emit({ level: 'warn', event: 'database_unavailable', msg: `worker start failed: ${errorText(error)}; retrying in ${delay} ms`, error: errorText(error), retry_in_ms: delay, attempt });
        await sleep(delay, abort.signal);
        continue;
      }
      emit({
        level: 'info', event: everStarted ? 'worker_restarted' : 'worker_started',
        msg: everStarted ? 'worker reconnected and taking jobs again' : `worker started: taking jobs (concurrency ${concurrency})`,
        concurrency, once, pid: process.pid,
      });
      everStarted = true;
      resolveStarted();
      const stopped = new Promise<'stop'>((resolve) => {
        if (abort.signal.aborted) resolve('stop');
        else abort.signal.addEventListener('abort', () => resolve('stop'), { once: true });
      });
      const outcome = await Promise.race([
        runner.promise.then(() => ({ ended: null as unknown }), (error: unknown) => ({ ended: error })),
        stopped,
        ...(once ? [untilDone()] : []),
      ]);
      if (outcome === 'stop' || outcome === 'done') {
        if (outcome === 'done') reason = 'done';
        await runner.stop().catch((error: unknown) => emit({ level: 'warn', event: 'error', msg: `stopping the runner: ${errorText(error)}`, error: errorText(error) }));
        await runner.promise.catch(() => {});
        break;
      }
      // graphile-worker's runner ended by itself (it could not record a job's result while the
      // database was away): start a new one once the database answers.
      const delay = backoff(attempt++);
      emit({
        level: 'error', event: 'runner_failed',
        msg: `graphile-worker stopped${outcome.ended ? `: ${errorText(outcome.ended)}` : ''}; reconnecting in ${delay} ms`,
        error: outcome.ended ? errorText(outcome.ended) : null, retry_in_ms: delay,
      });
      await sleep(delay, abort.signal);
    }
    return finish(reason);
  }

  async function finish(reason: WorkerSummary['reason']): Promise<WorkerSummary> {
    let left = { jobsAwaitingRetry: 0, failedPortfolios: [] as WorkerSummary['failedPortfolios'], pendingPortfolios: 0, pendingReferenceChanges: 0 };
    let known = true;
    try {
      const mine = await removeOwnLockedJobs(q, poolIds);
      const retries = await removeConnectionRetries(q);
      if (mine + retries > 0) await pool.query('select portfolio_timeseries_engine.sweep()');
      left = await leftovers(q);
    } catch (error) {
      known = false;
      emit({ level: 'warn', event: 'error', msg: `could not read what is left at the stop: ${errorText(error)}`, error: errorText(error) });
    }
    await pool.end().catch(() => {});
    const summary: WorkerSummary = {
      reason, ...totals, ...left,
      clean: known && left.jobsAwaitingRetry === 0 && left.failedPortfolios.length === 0
        && left.pendingPortfolios === 0 && left.pendingReferenceChanges === 0,
    };
    emit({
      level: summary.clean || reason === 'stopped' ? 'info' : 'warn', event: 'worker_stopped',
      msg: `worker stopped (${stopReason ?? reason}): ${totals.jobs} jobs (${totals.failedJobs} failed), ${totals.portfolioDays} portfolio days, `
        + `${totals.positionDays} position rows in ${((Date.now() - startedAt) / 1000).toFixed(1)} s; `
        + (known ? `left: ${left.pendingPortfolios} portfolios with pending changes, ${left.failedPortfolios.length} failed portfolios, `
          + `${left.jobsAwaitingRetry} jobs awaiting a retry` : 'what is left is unknown (the database did not answer)'),
      reason: stopReason ?? reason, jobs: totals.jobs, failed_jobs: totals.failedJobs, portfolio_days: totals.portfolioDays,
      position_days: totals.positionDays, bod_updates: totals.bodUpdates, retries: totals.retries,
      jobs_awaiting_retry: left.jobsAwaitingRetry, failed_portfolios: left.failedPortfolios.map((f) => f.portfolio_id).slice(0, 20),
      pending_portfolios: left.pendingPortfolios, pending_reference_changes: left.pendingReferenceChanges,
      clean: summary.clean, duration_ms: Date.now() - startedAt,
    });
    return summary;
  }

  const done = main().catch(async (error: unknown) => {
    abort.abort();
    await pool.end().catch(() => {});
    throw error;
  });
  done.catch(() => {}); // the caller handles it; no unhandled rejection meanwhile
  return {
    started,
    done,
    pool,
    stop(reason?: string) {
      if (abort.signal.aborted) return;
      stopReason = reason;
      if (reason) emit({ level: 'info', event: 'stopping', msg: `${reason}: finishing the running jobs, then exiting`, reason });
      abort.abort();
    },
    async checkDatabase() {
      await pool.query('select 1');
    },
  };
}
