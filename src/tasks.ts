// The graphile-worker task list. Merge it into another service's worker with
// `{ ...otherTasks, ...taskList }` and add `crontab` to that worker's crontab.
//
// Every engine task:
// - reports what it did as structured events (WorkerEvent: one per computed portfolio, one per
//   job, progress lines on long jobs; with the plain `taskList`, through graphile-worker's logger);
// - refreshes its job row's lock while it runs (src/jobs.ts: a row locked longer than that was
//   left by a dead worker, and is removed);
// - on a lost connection (terminated backend, restart, failover) fails the job so graphile-worker
//   retries it, but first waits, with back-off, until the database answers again: the failure is
//   then recorded, a fresh drain is queued a second ahead, and the worker carries on (recording a
//   failure needs the database; a worker that cannot record one would stop).
import type { JobHelpers, Task, TaskList } from 'graphile-worker';
import { computePortfolio, drain, type DrainResult, type QueryClient } from './drain.js';
import { errorText, isConnectionError } from './errors.js';
import { HEARTBEAT_MS, refreshLock, removeStaleJobs } from './jobs.js';
import { sleep } from './sleep.js';
import type { WorkerEvent } from './types.js';

/** Applies every pending change (enqueued by the input triggers, one job per producer transaction). */
export const DRAIN_TASK = 'portfolio_timeseries:drain';
/** Computes one portfolio now (payload `{"portfolio_id": "P"}`), then drains what is left. */
export const COMPUTE_TASK = 'portfolio_timeseries:compute_portfolio';
/** The safety net: wakes a drain when work is pending (crontab, every minute). */
export const SWEEP_TASK = 'portfolio_timeseries:sweep';

/** The safety-net sweep, every minute (graphile-worker crontab syntax). */
export const crontab = `* * * * * ${SWEEP_TASK} ?fill=2m\n`;

export interface TaskHooks {
  /** Where events go; default: graphile-worker's job logger (portfolio lines at debug). */
  emit?: (event: WorkerEvent) => void;
  /** Aborted when the worker stops: a drain ends after its current batch (the rest is queued). */
  signal?: AbortSignal;
  /** Progress events during a long job, every this many ms (default 5000). */
  progressIntervalMs?: number;
}

function loggerEmit(helpers: JobHelpers): (e: WorkerEvent) => void {
  return (e) => {
    const level = e.event === 'portfolio_computed' || e.event === 'progress' || e.event === 'job_finished' ? 'debug' : e.level;
    helpers.logger[level](e.msg);
  };
}

/** Wait until the database answers (back-off 0.5 s doubling to 30 s); false when stopped first. */
async function waitForDatabase(helpers: JobHelpers, emit: (e: WorkerEvent) => void, signal?: AbortSignal): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      await helpers.withPgClient((c) => c.query('select 1'));
      if (attempt > 1) emit({ level: 'info', event: 'database_available', msg: 'the database answers again', job_id: helpers.job.id });
      return true;
    } catch (error) {
      if (signal?.aborted) return false;
      if (attempt === 0) {
        // The pool may hand back the terminated connection once before it notices it is closed.
        await sleep(50, signal);
        continue;
      }
      const delay = Math.min(30_000, 500 * 2 ** (attempt - 1));
      emit({
        level: 'warn', event: 'database_unavailable', msg: `database unavailable (${errorText(error)}); retrying in ${delay} ms`,
        error: errorText(error), retry_in_ms: delay, attempt, job_id: helpers.job.id,
      });
      await sleep(delay, signal);
      if (signal?.aborted) return false;
    }
  }
}

type Body = (helpers: JobHelpers, emit: (e: WorkerEvent) => void, signal: AbortSignal | undefined) =>
  Promise<Record<string, unknown> | void>;

/** Runs `body` as an engine task: lock refresh, job events, connection-failure handling. */
function engineTask(name: string, hooks: TaskHooks, body: Body): Task {
  return async (_payload, helpers) => {
    const emit = hooks.emit ?? loggerEmit(helpers);
    const signal = hooks.signal ?? helpers.abortSignal;
    const started = performance.now();
    const job = { job_id: helpers.job.id, task: name, attempt: helpers.job.attempts, max_attempts: helpers.job.max_attempts };
    const heartbeat = setInterval(() => {
      void helpers.withPgClient((c) => refreshLock(c as unknown as QueryClient, helpers.job.id)).catch(() => {});
    }, HEARTBEAT_MS);
    try {
      const extra = (await body(helpers, emit, signal)) ?? {};
      const duration = performance.now() - started;
      emit({
        level: 'debug', event: 'job_finished', msg: `job ${helpers.job.id} (${name}) finished in ${duration.toFixed(0)} ms`,
        ...job, duration_ms: Math.round(duration), ...extra,
      });
    } catch (error) {
      const duration = performance.now() - started;
      const connection = isConnectionError(error);
      emit({
        level: 'error', event: 'job_failed',
        msg: `job ${helpers.job.id} (${name}) failed after ${duration.toFixed(0)} ms${connection ? ' (connection lost)' : ''}: ${errorText(error)}; graphile-worker retries it`,
        ...job, duration_ms: Math.round(duration), error: errorText(error), connection_lost: connection,
      });
      if (connection && await waitForDatabase(helpers, emit, signal)) {
        // The retry graphile-worker schedules backs off exponentially per job; a fresh drain picks
        // the work up a second from now. No job key: re-adding a key whose job is running makes
        // graphile-worker mark that job as failed for good.
        await helpers.withPgClient((c) => c.query(
          `select graphile_worker.add_job('portfolio_timeseries:drain', '{}'::json, run_at := now() + interval '1 second')`)).catch(() => {});
      }
      throw error;
    } finally {
      clearInterval(heartbeat);
    }
  };
}

/** Events of one drain: a line per computed portfolio, failures, progress on long drains. */
function drainWithEvents(client: QueryClient, helpers: JobHelpers, emit: (e: WorkerEvent) => void,
  hooks: TaskHooks, signal: AbortSignal | undefined): Promise<DrainResult> {
  const started = performance.now();
  const every = hooks.progressIntervalMs ?? 5000;
  let lastProgress = started;
  const total = { portfolios: 0, portfolio_days: 0, position_days: 0 };
  return drain(client, {
    ...(signal ? { signal } : {}),
    onRun: (run, ms) => {
      total.portfolios++;
      total.portfolio_days += run.portfolio_days ?? 0;
      total.position_days += run.position_days ?? 0;
      emit({
        level: 'info', event: 'portfolio_computed',
        msg: `portfolio ${run.portfolio_id}: ${run.portfolio_days ?? 0} portfolio days, ${run.position_days ?? 0} position rows`
          + `${run.bod_updates ? `, ${run.bod_updates} BOD updates` : ''} in ${ms.toFixed(1)} ms`
          + `${run.stop_reason ? `; stopped at ${run.stopped_at}: ${run.stop_reason}` : ''}`,
        portfolio_id: run.portfolio_id, portfolio_days: run.portfolio_days ?? 0, position_days: run.position_days ?? 0,
        bod_updates: run.bod_updates ?? 0, changes: run.changes ?? 0, stopped_at: run.stopped_at ?? null,
        stop_reason: run.stop_reason ?? null, duration_ms: Math.round(ms * 10) / 10, job_id: helpers.job.id,
      });
      const now = performance.now();
      if (now - lastProgress >= every) {
        lastProgress = now;
        const s = (now - started) / 1000;
        emit({
          level: 'info', event: 'progress',
          msg: `job ${helpers.job.id}: ${total.portfolio_days} portfolio days, ${total.position_days} position rows of ${total.portfolios} portfolio runs in ${s.toFixed(1)} s (${Math.round(total.portfolio_days / s)} days/s)`,
          job_id: helpers.job.id, elapsed_ms: Math.round(now - started), ...total,
          portfolio_days_per_s: Math.round(total.portfolio_days / s),
        });
      }
    },
  }).then((result) => {
    for (const f of result.failed) {
      emit({
        level: 'error', event: 'portfolio_failed',
        msg: `portfolio ${f.portfolio_id} failed: ${f.error} (retried after ${f.retry_at || 'the next change'})`,
        portfolio_id: f.portfolio_id, error: f.error, retry_at: f.retry_at || null, job_id: helpers.job.id,
      });
    }
    return result;
  });
}

function summary(r: DrainResult): Record<string, unknown> {
  return {
    portfolios: r.runs.length,
    portfolio_days: r.runs.reduce((a, x) => a + (x.portfolio_days ?? 0), 0),
    position_days: r.runs.reduce((a, x) => a + (x.position_days ?? 0), 0),
    reference_changes: r.referenceChanges,
    retries: r.retries,
    busy: r.busy.length,
    failed: r.failed.length,
  };
}

/** The task list with hooks (the CLI's worker passes its event sink and stop signal). */
export function makeTaskList(hooks: TaskHooks = {}): TaskList {
  return {
    [DRAIN_TASK]: engineTask(DRAIN_TASK, hooks, async (helpers, emit, signal) =>
      summary(await helpers.withPgClient((client) => drainWithEvents(client as unknown as QueryClient, helpers, emit, hooks, signal)))),
    [COMPUTE_TASK]: engineTask(COMPUTE_TASK, hooks, async (helpers, emit, signal) => {
      const portfolioId = (helpers.job.payload as { portfolio_id?: unknown } | null)?.portfolio_id;
      if (typeof portfolioId !== 'string' || portfolioId === '') {
        throw new Error(`${COMPUTE_TASK}: payload must be {"portfolio_id": "<id>"}, got ${JSON.stringify(helpers.job.payload)}`);
      }
      return helpers.withPgClient(async (client) => {
        const started = performance.now();
        const run = await computePortfolio(client as unknown as QueryClient, portfolioId);
        if (!run.busy) {
          emit({
            level: 'info', event: 'portfolio_computed',
            msg: `portfolio ${run.portfolio_id}: ${run.portfolio_days ?? 0} portfolio days, ${run.position_days ?? 0} position rows`,
            portfolio_id: run.portfolio_id, portfolio_days: run.portfolio_days ?? 0, position_days: run.position_days ?? 0,
            bod_updates: run.bod_updates ?? 0, changes: run.changes ?? 0, stopped_at: run.stopped_at ?? null,
            stop_reason: run.stop_reason ?? null, duration_ms: Math.round(performance.now() - started), job_id: helpers.job.id,
          });
        }
        return summary(await drainWithEvents(client as unknown as QueryClient, helpers, emit, hooks, signal));
      });
    }),
    [SWEEP_TASK]: engineTask(SWEEP_TASK, hooks, async (helpers, emit) => {
      const { removed, pending } = await helpers.withPgClient(async (client) => {
        const q = client as unknown as QueryClient;
        const removed = await removeStaleJobs(q);
        const { rows } = await q.query<{ n: number }>('select portfolio_timeseries_engine.sweep() as n');
        return { removed, pending: rows[0]?.n ?? 0 };
      });
      if (removed.length > 0) {
        emit({
          level: 'warn', event: 'stale_jobs_removed',
          msg: `removed ${removed.length} engine job row(s) left locked by a dead worker: ${removed.map((r) => `${r.id} (${r.task}, locked by ${r.locked_by} since ${r.locked_at})`).join(', ')}`,
          count: removed.length, jobs: removed,
        });
      }
      if (pending > 0) emit({ level: 'info', event: 'sweep', msg: `sweep: ${pending} portfolio(s) with pending changes`, pending_portfolios: pending });
      return { pending_portfolios: pending, stale_jobs_removed: removed.length };
    }),
  };
}

export const taskList: TaskList = makeTaskList();
