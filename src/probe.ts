// One short connection that tells whether the database can be used, and if not, why, with a next
// step. The CLI runs it before any work (a server that is down, is not PostgreSQL or never
// answers gives a clear error instead of a hang or a reconnect loop), and the worker runs it
// while it waits for the database. node-postgres (pg) is used here: on a socket that closes
// during start-up it fails the attempt, where postgres.js would reconnect at once, for ever.
import pg from 'pg';
import { connectTimeoutMs, describeUrl } from './db.js';
import { DatabaseUnavailableError, MIGRATE_HINT, needsOperator, NotMigratedError } from './errors.js';

export interface ProbeResult {
  /** The engine's schema exists (migrate has run). */
  migrated: boolean;
  serverVersion: string;
}

export interface ProbeOptions {
  /** Give up connecting, and then answering, after this long. Default: PGCONNECT_TIMEOUT, else 10 s. */
  timeoutMs?: number;
  /** Throw NotMigratedError when the engine's schema is missing. Default true. */
  requireMigrated?: boolean;
  applicationName?: string;
}

/** Why a connection attempt failed, in words an operator can act on. */
export function unavailableReason(error: unknown, url: string): string {
  const e = error as { code?: string; message?: string };
  const where = describeUrl(url);
  switch (e.code) {
    case 'ECONNREFUSED': return `nothing accepts connections at ${where} (ECONNREFUSED): is PostgreSQL running there?`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN': return `the host of ${where} cannot be resolved (${e.code}): check DATABASE_URL`;
    case '57P03': return `PostgreSQL at ${where} is starting up or shutting down (57P03)`;
    default: break;
  }
  const message = e.message ?? String(error);
  if (/timeout expired|connection timeout/i.test(message)) {
    return `no answer from ${where} in time (${message}): is it a PostgreSQL server, reachable from here?`;
  }
  if (/Connection terminated unexpectedly/i.test(message)) {
    return `the server at ${where} closed the connection during start-up: is it a PostgreSQL server (port)?`;
  }
  return `${where}: ${message}`;
}

export async function probeDatabase(url: string, options: ProbeOptions = {}): Promise<ProbeResult> {
  const timeoutMs = options.timeoutMs ?? connectTimeoutMs();
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    keepAlive: true,
    application_name: options.applicationName ?? 'portfolio-timeseries probe',
  });
  client.on('error', () => {}); // reported through connect()/query() below
  let result: ProbeResult;
  try {
    await client.connect();
    const { rows } = await client.query<{ migrated: boolean; version: string }>(
      `select to_regnamespace('portfolio_timeseries_engine') is not null as migrated,
              current_setting('server_version') as version`);
    result = { migrated: rows[0]!.migrated, serverVersion: rows[0]!.version };
  } catch (error) {
    // Authentication, a missing database, permissions: PostgreSQL's own message is the clearest.
    if (needsOperator(error)) throw error;
    throw new DatabaseUnavailableError(`cannot use the database: ${unavailableReason(error, url)}`, error);
  } finally {
    await client.end().catch(() => {});
  }
  if (!result.migrated && options.requireMigrated !== false) {
    throw new NotMigratedError(`the database ${describeUrl(url)} has no portfolio-timeseries engine (schema portfolio_timeseries_engine): ${MIGRATE_HINT}`);
  }
  return result;
}
