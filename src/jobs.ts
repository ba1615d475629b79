// The engine's rows in graphile-worker's job table: what is due, what a stopped worker left, and
// the rows a dead worker left locked (docs/operations.md, "What a crash leaves").
//
// graphile-worker 0.17 keeps a job locked for 4 hours when the worker running it dies. The engine
// does not depend on that lock (a job's work is one transaction per batch of portfolios; a killed
// job's transaction rolls back and its changes stay pending), but such a row looks like a stuck or
// failed job to anyone watching the queue. So a running engine job refreshes its row's
// `locked_at` every HEARTBEAT_MS; a row of an engine task locked for longer than STALE_AFTER was
// left by a dead worker and is deleted (at every worker start and every sweep), after which the
// sweep queues a drain for whatever is pending. Deleting is safe: every engine job is idempotent
// (a drain applies whatever is pending; nothing else is in its payload that the change rows do not
// hold).
import type { QueryClient } from './drain.js';

/** How often a running engine job refreshes its lock. */
export const HEARTBEAT_MS = 30_000;
/** A lock older than this on an engine task belongs to a dead worker. */
export const STALE_AFTER_S = 120;

const ENGINE_TASKS = `portfolio\\_timeseries:%`;

/** Refresh the lock of a running job (ignored when graphile-worker's table differs). */
export async function refreshLock(q: QueryClient, jobId: string | number): Promise<void> {
  await q.query(
    `update graphile_worker._private_jobs set locked_at = now() where id = $1::bigint and locked_at is not null`,
    [String(jobId)]);
}

export interface RemovedJob {
  id: string;
  task: string;
  locked_by: string | null;
  locked_at: string;
  attempts: number;
}

/** Delete engine job rows whose lock is older than STALE_AFTER_S (a dead worker's). */
export async function removeStaleJobs(q: QueryClient): Promise<RemovedJob[]> {
  const { rows } = await q.query<RemovedJob>(
    `delete from graphile_worker._private_jobs j
     using graphile_worker._private_tasks t
     where t.id = j.task_id and t.identifier like $1
       and j.locked_at < now() - make_interval(secs => $2)
     returning j.id::text, t.identifier as task, j.locked_by, j.locked_at::text, j.attempts::int`,
    [ENGINE_TASKS, STALE_AFTER_S]);
  return rows;
}

/**
 * After a clean stop: engine rows still locked by this worker's pools. graphile-worker 0.17 does
 * not wait for a finished job's DELETE before its pool reports it has stopped, so a row can be
 * left locked although its job succeeded; every engine job is idempotent, so such rows are
 * deleted (the sweep that follows queues a drain when anything is still pending).
 */
export async function removeOwnLockedJobs(q: QueryClient, poolIds: string[]): Promise<number> {
  if (poolIds.length === 0) return 0;
  const { rows } = await q.query<{ n: number }>(
    `with d as (
       delete from graphile_worker._private_jobs j
       using graphile_worker._private_tasks t
       where t.id = j.task_id and t.identifier like $1 and j.locked_by = any($2::text[])
       returning 1)
     select count(*)::int as n from d`,
    [ENGINE_TASKS, poolIds]);
  return rows[0]?.n ?? 0;
}

/**
 * After a clean stop: engine jobs waiting for graphile-worker's retry after a lost connection
 * (their work is pending again, and the sweep that follows queues a drain for it): deleted, so
 * that no row looking failed is left behind for a failure that was the connection's.
 */
export async function removeConnectionRetries(q: QueryClient): Promise<number> {
  const { rows } = await q.query<{ n: number }>(
    `with d as (
       delete from graphile_worker._private_jobs j
       using graphile_worker._private_tasks t
       where t.id = j.task_id and t.identifier like $1 and j.locked_at is null and j.attempts < j.max_attempts
         and j.last_error ~ $2
       returning 1)
     select count(*)::int as n from d`,
    [ENGINE_TASKS, CONNECTION_ERROR_RE]);
  return rows[0]?.n ?? 0;
}

/** The last_error texts of a lost connection (PostgreSQL's and node-postgres's wording). */
const CONNECTION_ERROR_RE = 'terminating connection|Connection terminated|ECONNRESET|ECONNREFUSED|server closed the connection|the database system is (shutting down|starting up|in recovery mode)|timeout expired';

export interface Backlog {
  /** Portfolios with changes not applied yet, outside a failure back-off. */
  pending: number;
  /** Reference changes not fanned out yet. */
  references: number;
  /** Engine jobs that are due, or due within the next few seconds, and not locked. */
  due: number;
  /** Seconds until the next such job is due (0 when one is due now). */
  nextDueIn: number | null;
  /** Engine jobs locked by this worker (running, or being fetched). */
  mine: number;
}

export async function backlog(q: QueryClient, poolIds: string[]): Promise<Backlog> {
  const { rows } = await q.query<Backlog>(
    `select
       (select count(*)::int from portfolio_timeseries_engine.pending_portfolios(1000000)) as pending,
       (select count(*)::int from portfolio_timeseries_engine.reference_change) as "references",
       (select count(*)::int from graphile_worker.jobs
        where task_identifier like $1 and locked_at is null and attempts < max_attempts
          and run_at <= now() + interval '5 seconds') as due,
       (select greatest(0, extract(epoch from min(run_at) - now()))::float8 from graphile_worker.jobs
        where task_identifier like $1 and locked_at is null and attempts < max_attempts
          and run_at <= now() + interval '5 seconds') as "nextDueIn",
       (select count(*)::int from graphile_worker.jobs
        where task_identifier like $1 and locked_by = any($2::text[])) as mine`,
    [ENGINE_TASKS, poolIds]);
  return rows[0]!;
}

export interface Leftovers {
  jobsAwaitingRetry: number;
  failedPortfolios: { portfolio_id: string; error: string | null; retry_at: string | null }[];
  pendingPortfolios: number;
  pendingReferenceChanges: number;
}

/** What is left when a worker stops: failures waiting for a retry, changes not applied. */
export async function leftovers(q: QueryClient): Promise<Leftovers> {
  const { rows } = await q.query<{ r: Leftovers }>(
    `select jsonb_build_object(
       'jobsAwaitingRetry', (select count(*) from graphile_worker.jobs
                             where task_identifier like $1 and last_error is not null),
       'failedPortfolios', (select coalesce(jsonb_agg(jsonb_build_object('portfolio_id', j.portfolio_id,
                              'error', j.last_error, 'retry_at', j.retry_at) order by j.portfolio_id), '[]')
                            from portfolio_timeseries_engine.portfolio_job j where j.failures > 0),
       'pendingPortfolios', (select count(distinct c.portfolio_id) from portfolio_timeseries_engine.change c),
       'pendingReferenceChanges', (select count(*) from portfolio_timeseries_engine.reference_change)
     ) as r`,
    [ENGINE_TASKS]);
  return rows[0]!.r;
}
