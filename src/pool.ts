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
}

export function createPool(connectionString: string, options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max,
    connectionTimeoutMillis: options.connectTimeoutMs ?? connectTimeoutMs(),
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
  return pool;
}
