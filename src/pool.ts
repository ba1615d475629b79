// The worker's own node-postgres pool, handed to graphile-worker (`pgPool`). graphile-worker would
// make one without timeouts or keep-alives; this one:
// - gives up connecting after 10 s (PGCONNECT_TIMEOUT) (a server that accepts and never answers cannot hang a job,
//   the LISTEN connection or the start-up),
// - probes idle connections with TCP keep-alives (a failover or a dropped path is noticed),
// - handles 'error' on the pool and on every client: a terminated backend fails the query that
//   was running on it (the job then fails and is retried) instead of crashing the process with an
//   uncaught 'error' event.
import pg from 'pg';
import { connectTimeoutMs } from './db.js';

export interface PoolOptions {
  max: number;
  applicationName: string;
  connectTimeoutMs?: number;
  /** Called with every connection-level error (logged by the worker). */
  onError?: (error: Error, where: 'idle' | 'active') => void;
  /** Called when a timed-out checkout is tried again. */
  onRetry?: (error: Error) => void;
}

export function createPool(connectionString: string, options: PoolOptions): pg.Pool {
  // The timeout applies to opening a connection (pg.Client's own timer), not to waiting for a free
  // one: pg-pool's queue timeout fails a checkout that graphile-worker's bookkeeping cannot lose.
  const timeout = options.connectTimeoutMs ?? connectTimeoutMs();
  class TimedClient extends pg.Client {
    constructor(config?: pg.ClientConfig) {
      super({ ...(config ?? {}), connectionTimeoutMillis: timeout });
    }
  }
  const pool = new pg.Pool({
    connectionString,
    max: options.max,
    Client: TimedClient,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    application_name: options.applicationName,
  });
  const onError = options.onError ?? (() => {});
  // An idle client's error: pg removes the client from the pool; this only keeps it from being
  // an uncaught 'error' event.
  pool.on('error', (error) => onError(error, 'idle'));
  // A checked-out client's error: the running query rejects with it as well (that is how the job
  // learns about it).
  pool.on('connect', (client) => {
    client.on('error', (error) => onError(error, 'active'));
  });
  retryTimedOutCheckouts(pool, options.onRetry);
  return pool;
}

/**
 * A checkout (a new connection, or a wait for a free one) that timed out is tried once more before
 * the error reaches the caller. node-postgres' timer also fires when this process was too busy to
 * see the connection arrive (a long synchronous computation beside an in-process worker, a
 * machine under load); graphile-worker does not survive a failed checkout everywhere (it does not
 * wait for the promise of a finished job's bookkeeping), so a spurious timeout must not surface.
 * A server that really does not answer still fails, after twice the timeout.
 */
function retryTimedOutCheckouts(pool: pg.Pool, onRetry?: (error: Error) => void): void {
  const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
  const timedOut = (e: unknown) => /timeout exceeded when trying to connect|timeout expired/i.test((e as Error)?.message ?? '');
  const withRetry = async (): Promise<pg.PoolClient> => {
    try {
      return await connect();
    } catch (error) {
      if (!timedOut(error)) throw error;
      onRetry?.(error as Error);
      return connect();
    }
  };
  (pool as unknown as { connect: unknown }).connect = (callback?: (err: Error | undefined, client?: pg.PoolClient, done?: (release?: unknown) => void) => void) => {
    if (typeof callback !== 'function') return withRetry();
    withRetry().then((client) => callback(undefined, client, (release?: unknown) => client.release(release as Error | boolean | undefined)), (error: Error) => callback(error));
    return undefined;
  };
}
