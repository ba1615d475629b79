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
 * Wake a drain when anything is pending. Run at worker start so that work left by a killed worker
 * (its job still locked in graphile-worker for 4 hours) is picked up at once.
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

interface Backlog {
  /** Portfolios with changes not applied yet, outside a failure back-off. */
  pending: number;
  /** Reference changes not fanned out yet. */
  references: number;
  /** Engine jobs that are due, or due within the next few seconds, and not held by a live worker. */
  due: number;
  /** Seconds until the next such job is due (0 when one is due now). */
  nextDueIn: number | null;
}

async function backlog(connectionString: string): Promise<Backlog> {
  const sql = postgres(connectionString, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<Backlog[]>`
      select
        (select count(*)::int from portfolio_timeseries_engine.pending_portfolios(1000000)) as pending,
        (select count(*)::int from portfolio_timeseries_engine.reference_change) as references,
        (select count(*)::int from graphile_worker.jobs
         where task_identifier like 'portfolio_timeseries:%' and locked_at is null and attempts < max_attempts
           and run_at <= now() + interval '5 seconds') as due,
        (select greatest(0, extract(epoch from min(run_at) - now()))::float8 from graphile_worker.jobs
         where task_identifier like 'portfolio_timeseries:%' and locked_at is null and attempts < max_attempts
           and run_at <= now() + interval '5 seconds') as "nextDueIn"`;
    return row!;
  } finally {
    await sql.end();
  }
}

/**
 * Sweep, then run jobs until nothing is pending (including jobs those jobs enqueue and retries
 * scheduled a moment ahead): every ready day is computed when this resolves. Portfolios whose job
 * failed stay pending in back-off; jobs held by another live worker are left to it.
 */
export async function runWorkerOnce(options: WorkerOptions = {}): Promise<void> {
  const connectionString = connectionStringFromEnv(options.connectionString);
  await sweep(connectionString);
  const deadline = Date.now() + 30 * 60_000;
  for (;;) {
    await runOnce({
      connectionString,
      concurrency: options.concurrency ?? 1,
      taskList,
      logger: logger(options),
    });
    const b = await backlog(connectionString);
    if (b.due === 0 && b.pending === 0 && b.references === 0) return;
    if (b.due === 0) {
      // Pending work without a job to run it (its job is held by a worker that died): wake one.
      await sweep(connectionString);
    } else if (b.nextDueIn !== null && b.nextDueIn > 0) {
      await new Promise((r) => setTimeout(r, Math.min(1000, b.nextDueIn! * 1000 + 10)));
    }
    if (Date.now() > deadline) throw new Error('worker --once: work kept arriving for 30 minutes');
  }
}
