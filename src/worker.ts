// Running the engine's jobs from a library: a long-lived graphile-worker runner (`runWorker`), a
// worker that stays up across database outages (`startWorker`, what the CLI runs), or a drain of
// everything ready (`runWorkerOnce`).
import { run, type Runner } from 'graphile-worker';
import postgres from 'postgres';
import { connectTimeoutMs, connectionStringFromEnv } from './db.js';
import { removeStaleJobs } from './jobs.js';
import { eventsToLogger, stderrLogger, workerLogger } from './log.js';
import { createPool } from './pool.js';
import { startWorker } from './service.js';
import { crontab, makeTaskList } from './tasks.js';
import type { WorkerOptions, WorkerSummary } from './types.js';
import type { QueryClient } from './drain.js';

export { startWorker, type StartWorkerOptions, type WorkerService } from './service.js';

/**
 * Wake a drain when anything is pending. Run at worker start so that work left by a killed worker
 * (its job still locked in graphile-worker) is picked up at once.
 */
export async function sweep(connectionString?: string): Promise<number> {
  const sql = postgres(connectionStringFromEnv(connectionString), { max: 1, onnotice: () => {}, connect_timeout: connectTimeoutMs() / 1000 });
  try {
    const [row] = await sql<{ n: number }[]>`select portfolio_timeseries_engine.sweep() as n`;
    return row?.n ?? 0;
  } finally {
    await sql.end();
  }
}

/**
 * Start a graphile-worker runner on a hardened pool (timeouts, keep-alives, error handlers) that
 * runs until `runner.stop()`. It fails when the database cannot be reached at start; use
 * `startWorker` for a worker that waits for the database and outlives outages.
 */
export async function runWorker(options: WorkerOptions = {}): Promise<Runner> {
  const connectionString = connectionStringFromEnv(options.connectionString);
  const concurrency = options.concurrency ?? 1;
  const logger = options.logger ?? stderrLogger(options.verbose ?? false);
  const emit = options.onEvent ?? eventsToLogger(logger);
  const pool = createPool(connectionString, {
    max: Math.max(10, 2 * concurrency + 4), // as startWorker's (src/service.ts)
    applicationName: 'portfolio-timeseries worker',
    onError: (error, where) => logger.warn(`${where} database connection failed: ${error.message}`),
    onRetry: (error) => logger.warn(`a connection attempt timed out (${error.message}); trying once more`),
  });
  try {
    await removeStaleJobs(pool as unknown as QueryClient);
    await pool.query('select portfolio_timeseries_engine.sweep()');
    const runner = await run({
      pgPool: pool,
      concurrency,
      taskList: makeTaskList({ emit, ...(options.progressIntervalMs ? { progressIntervalMs: options.progressIntervalMs } : {}) }),
      crontab,
      noHandleSignals: true,
      logger: workerLogger(logger),
    });
    runner.promise.finally(() => pool.end()).catch(() => {});
    return runner;
  } catch (error) {
    await pool.end().catch(() => {});
    throw error;
  }
}

/**
 * Run jobs until nothing runnable is left (including jobs those jobs enqueue and retries
 * scheduled a moment ahead): every ready day is computed when this resolves. Portfolios whose job
 * failed stay pending in back-off, and jobs held by another live worker are left to it: the
 * summary says so (`clean` is false). Waits up to `startupTimeoutMs` (default 60 s) for the
 * database.
 */
export async function runWorkerOnce(options: WorkerOptions = {}): Promise<WorkerSummary> {
  return startWorker({ ...options, once: true }).done;
}
