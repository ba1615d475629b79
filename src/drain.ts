// The drain: apply every pending change, portfolio by portfolio, each in its own REPEATABLE READ
// transaction (docs/architecture.md, "The job"). It runs inside a graphile-worker job on the
// worker's pg client; tests and tools can run it on any client with the same `query` method.
import { errorCode, isConnectionError } from './errors.js';

/** The part of a node-postgres client the drain uses. */
export interface QueryClient {
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** What one compute call did for one portfolio (the JSON `compute_portfolio` returns). */
export interface PortfolioRun {
  portfolio_id: string;
  busy?: boolean;
  changes?: number;
  portfolio_days?: number;
  position_days?: number;
  bod_updates?: number;
  stopped_at?: string | null;
  stop_reason?: string | null;
}

export interface DrainResult {
  /** Portfolios computed (one entry per compute call that was not busy). */
  runs: PortfolioRun[];
  /** Portfolios another job was computing; a retry is scheduled. */
  busy: string[];
  /** Portfolios whose job failed, with the error; each is retried after a back-off. */
  failed: { portfolio_id: string; error: string; retry_at: string }[];
  /** Reference changes fanned out to portfolios. */
  referenceChanges: number;
  /** Serialization failures and deadlocks retried. */
  retries: number;
}

export interface DrainOptions {
  /** Stop after this many portfolios (the rest stays pending for the next drain). */
  maxPortfolios?: number;
  /** Portfolios per transaction (default 50). */
  batchSize?: number;
  /** Stop a batch after this much work, in ms (default 500); the rest stays pending. */
  batchMs?: number;
  /** Called after every portfolio (progress lines, metrics). */
  onRun?: (run: PortfolioRun, durationMs: number) => void;
  /**
   * Stop between batches once aborted (the worker is shutting down): the batch in progress
   * commits, the rest stays pending and a drain job for it is queued.
   */
  signal?: AbortSignal;
}

const RETRYABLE = new Set(['40001', '40P01']);

/**
 * Run `fn` in a REPEATABLE READ transaction, retrying serialization failures and deadlocks.
 * The commit does not wait for its WAL flush (synchronous_commit off, this transaction only): a
 * job's transaction holds only derived data, and a commit lost in a server crash takes its
 * consumed change rows back with it, so the next job simply computes the same rows again.
 */
export async function inRepeatableRead<T>(
  client: QueryClient, fn: () => Promise<T>, onRetry: () => void = () => {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    await client.query('begin isolation level repeatable read; set local synchronous_commit = off');
    try {
      const result = await fn();
      await client.query('commit');
      return result;
    } catch (error) {
      if (!isConnectionError(error)) await client.query('rollback').catch(() => {});
      if (attempt < 20 && RETRYABLE.has(errorCode(error))) {
        onRetry();
        continue;
      }
      throw error;
    }
  }
}

/** Compute one portfolio (apply its pending changes, build its ready days). */
export async function computePortfolio(client: QueryClient, portfolioId: string, onRetry?: () => void): Promise<PortfolioRun> {
  return inRepeatableRead(client, async () => {
    const { rows } = await client.query<{ r: PortfolioRun }>(
      'select portfolio_timeseries_engine.compute_portfolio($1) as r', [portfolioId]);
    return rows[0]!.r;
  }, onRetry);
}

/** Fan reference changes (FX, instruments) out to the portfolios they reach; -1 when busy. */
export async function fanOut(client: QueryClient, onRetry?: () => void): Promise<number> {
  return inRepeatableRead(client, async () => {
    const { rows } = await client.query<{ n: number }>('select portfolio_timeseries_engine.fan_out() as n');
    return rows[0]!.n;
  }, onRetry);
}

interface BatchResult {
  runs: PortfolioRun[];
  busy: string[];
  retry: string[];
  failed: { portfolio_id: string; error: string; retry_at: string | null }[];
  not_reached: string[];
}

/** Compute a batch of portfolios in one REPEATABLE READ transaction (compute_portfolios). */
export async function computePortfolios(
  client: QueryClient, portfolioIds: string[], maxMs: number, onRetry?: () => void,
): Promise<BatchResult> {
  return inRepeatableRead(client, async () => {
    const { rows } = await client.query<{ r: BatchResult }>(
      'select portfolio_timeseries_engine.compute_portfolios($1, $2) as r', [portfolioIds, maxMs]);
    return rows[0]!.r;
  }, onRetry);
}

/**
 * Apply every pending change. Loops until no portfolio with pending changes is left that this
 * drain could take: a portfolio another job holds is left to that job (which looks again after
 * its commit) and also retried shortly by a scheduled job, in case that job dies. Portfolios are
 * computed in batches (one transaction each, at most `batchMs` of work) so that the commit is
 * paid once per batch.
 */
export async function drain(client: QueryClient, options: DrainOptions = {}): Promise<DrainResult> {
  const result: DrainResult = { runs: [], busy: [], failed: [], referenceChanges: 0, retries: 0 };
  const onRetry = () => { result.retries++; };
  const max = options.maxPortfolios ?? Number.POSITIVE_INFINITY;
  const batchSize = options.batchSize ?? 50;
  const batchMs = options.batchMs ?? 500;
  const busy = new Set<string>();
  let calls = 0;
  let fanOutWaits = 0;
  for (;;) {
    if (options.signal?.aborted) break;
    // One round trip: the pending reference changes and portfolios. (It also makes a backend whose
    // client is gone stop at its next check instead of running a whole job for nobody, holding
    // the portfolio's lock meanwhile.)
    const { rows: [state] } = await client.query<{ refs: number; pending: string[] }>(
      `select set_config('client_connection_check_interval', '1000', false),
              (select count(*)::int from portfolio_timeseries_engine.reference_change) as refs,
              array(select portfolio_id from portfolio_timeseries_engine.pending_portfolios(1000)) as pending`);
    if ((state?.refs ?? 0) > 0) {
      const n = await fanOut(client, onRetry);
      if (n > 0) {
        result.referenceChanges += n;
        continue;
      }
      // Another drain is fanning them out: wait for it (up to a few seconds) rather than compute
      // portfolios that its changes would make this drain compute again.
      if (n < 0 && fanOutWaits++ < 100) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
    }
    const pending = state?.pending ?? [];
    if (pending.length === 0) break;
    let progress = false;
    for (let i = 0; i < pending.length && calls < max && !options.signal?.aborted; i += batchSize) {
      const batch = pending.slice(i, Math.min(i + batchSize, i + (max - calls)));
      const started = performance.now();
      const r = await computePortfolios(client, batch, batchMs, onRetry);
      const ms = performance.now() - started;
      calls += r.runs.length + r.busy.length + r.failed.length + r.retry.length;
      for (const p of r.busy) busy.add(p);
      if (r.runs.length > 0) progress = true;
      for (const run of r.runs) {
        busy.delete(run.portfolio_id);
        result.runs.push(run);
        options.onRun?.(run, ms / r.runs.length);
      }
      for (const f of r.failed) {
        result.failed.push({ portfolio_id: f.portfolio_id, error: f.error, retry_at: f.retry_at ?? '' });
        if (f.retry_at) {
          await client.query(
            `select graphile_worker.add_job('portfolio_timeseries:drain', '{}'::json, run_at := $1::timestamptz)`, [f.retry_at]);
        }
      }
      if (r.retry.length > 0 || r.not_reached.length > 0) progress = true; // still pending: looked at again
    }
    if (!progress || calls >= max) break;
  }
  result.busy = [...busy];
  if (busy.size > 0 || calls >= max || options.signal?.aborted) {
    await client.query(
      `select graphile_worker.add_job('portfolio_timeseries:drain', '{}'::json,
         run_at := now() + interval '250 milliseconds', job_key := 'portfolio_timeseries:retry',
         job_key_mode := 'preserve_run_at')`);
  }
  return result;
}
