// Running the engine's jobs: a long-lived worker (`runWorker`) or a drain (`runWorkerOnce`).
import { run, runOnce, type Logger, type Runner } from 'graphile-worker';
import postgres from 'postgres';
import { connectionStringFromEnv } from './db.js';
import { stderrLogger, workerLogger } from './log.js';
import { crontab, taskList } from './tasks.js';
import type { WorkerOptions } from './types.js';

function logger(options: WorkerOptions): Logger {
  return workerLogger(options.logger ?? stderrLogger(options.verbose ?? false));
}

/**
 * Enqueue every portfolio with ready dirty work. Run at worker start so that jobs lost with a
 * killed worker (still locked in graphile-worker for 4 hours) are replaced at once.
 */
export async function sweep(connectionString?: string): Promise<number> {
  const sql = postgres(connectionStringFromEnv(connectionString), { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ n: number }[]>`select portfolio_timeseries_engine.sweep() as n`;
    return row?.n ?? 0;
  } finally {
    await sql.end();
  }
}

/** Start a worker that runs until `runner.stop()` (the CLI stops it on SIGTERM/SIGINT). */
export async function runWorker(options: WorkerOptions = {}): Promise<Runner> {
  const connectionString = connectionStringFromEnv(options.connectionString);
  await sweep(connectionString);
  return run({
    connectionString,
    concurrency: options.concurrency ?? 1,
    taskList,
    crontab,
    noHandleSignals: true,
    logger: logger(options),
  });
}

async function runnableJobs(connectionString: string): Promise<number> {
  const sql = postgres(connectionString, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from graphile_worker.jobs
      where task_identifier like 'portfolio_timeseries:%'
        and locked_at is null and run_at <= now() and attempts < max_attempts`;
    return row?.n ?? 0;
  } finally {
    await sql.end();
  }
}

/**
 * Sweep, then run jobs until none is runnable (including jobs those jobs enqueue): every ready
 * day is computed when this resolves. Jobs locked by another live worker are left to it.
 */
export async function runWorkerOnce(options: WorkerOptions = {}): Promise<void> {
  const connectionString = connectionStringFromEnv(options.connectionString);
  await sweep(connectionString);
  for (let round = 0; round < 100; round++) {
    await runOnce({
      connectionString,
      concurrency: options.concurrency ?? 1,
      taskList,
      logger: logger(options),
    });
    if ((await runnableJobs(connectionString)) === 0) return;
  }
  throw new Error('worker --once: jobs kept arriving after 100 rounds');
}
