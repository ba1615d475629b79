// Errors that say what to do next. The CLI prints `message` and exits with `exitCode`; the library
// throws the same classes, so a service can tell a configuration mistake from an outage.

/** Exit codes of every command (README, `--help`, docs/operations.md). */
export const EXIT = {
  ok: 0,
  /** The command ran and failed: a database error, or `worker --once` left failed jobs or ready work. */
  failed: 1,
  /** Bad command line or configuration (an unknown option, DATABASE_URL unset or malformed). */
  usage: 2,
  /** The database cannot be used yet: unreachable, not PostgreSQL, or not migrated. Retry later. */
  unavailable: 3,
} as const;

/** A bad command line or option value. */
export class UsageError extends Error {
  readonly exitCode: number = EXIT.usage;
}

/** Configuration that cannot work (DATABASE_URL unset or malformed). */
export class ConfigError extends Error {
  readonly exitCode: number = EXIT.usage;
}

/** The server cannot be reached, does not speak PostgreSQL, or does not answer in time. */
export class DatabaseUnavailableError extends Error {
  readonly exitCode: number = EXIT.unavailable;
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
  }
}

/** The database has no portfolio-timeseries engine: `portfolio-timeseries migrate` has not run. */
export class NotMigratedError extends Error {
  readonly exitCode: number = EXIT.unavailable;
}

export const MIGRATE_HINT = 'run `portfolio-timeseries migrate` (with DATABASE_URL set to this database) first';

/** An error's code: its SQLSTATE, node's (ECONNREFUSED, ERR_PARSE_ARGS_...) or postgres.js's; '' when none. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/**
 * Failures that waiting cannot cure and an operator must fix: authentication, a missing database,
 * missing privileges or objects (SQLSTATE classes 28, 3D, 42).
 */
export function needsOperator(error: unknown): boolean {
  return /^(28|3D|42)/.test(errorCode(error));
}

/** A command-line mistake: our own UsageError, or node's parseArgs refusing an option. */
export function isUsageMistake(error: unknown): boolean {
  return error instanceof UsageError || errorCode(error).startsWith('ERR_PARSE_ARGS');
}

interface PgLikeError {
  code?: string;
  message?: string;
  errno?: string;
  address?: string;
  port?: number;
}

/**
 * A connection-level failure: the server is unreachable or the session was lost (node's socket
 * errors, SQLSTATE class 08 and 57P01-57P03, pg's and postgres.js's own codes and wording). The
 * one classification for every caller: the CLI's exit code, a job that must fail so that
 * graphile-worker retries it on a fresh connection (a per-portfolio failure is recorded instead),
 * and the worker's wait for its database.
 */
export function isConnectionError(error: unknown): boolean {
  const e = (error ?? {}) as PgLikeError;
  const code = errorCode(error);
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EPIPE',
    'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', '57P01', '57P02', '57P03'].includes(code)) return true;
  if (code.startsWith('08')) return true;
  return /Connection terminated|ECONNRESET|ECONNREFUSED|EPIPE|timeout expired|connection timeout|timeout exceeded when trying to connect|not queryable|Client has encountered a connection error/i
    .test(e.message ?? '');
}

/**
 * The error as the operator should read it, with its exit code. Known situations get a next step;
 * anything else keeps PostgreSQL's own message (it names the object and, for the engine's
 * refusals, the row's key).
 */
export function explain(error: unknown): { message: string; exitCode: number } {
  if (error instanceof UsageError || error instanceof ConfigError || error instanceof DatabaseUnavailableError
    || error instanceof NotMigratedError) {
    return { message: error.message, exitCode: error.exitCode };
  }
  const e = (error ?? {}) as PgLikeError;
  const message = e.message ?? String(error);
  if (/schema "(portfolio_timeseries_engine|graphile_worker)" does not exist/.test(message)
    || /relation "(public\.)?(portfolio_timeseries|position_timeseries|daily_position_snapshots)" does not exist/.test(message)
    || /function portfolio_timeseries_engine\.\w+\(.*\) does not exist/.test(message)) {
    return { message: `the database is not migrated (${message}): ${MIGRATE_HINT}`, exitCode: EXIT.unavailable };
  }
  if (e.code === '3D000') return { message: `${message}: check the database name in DATABASE_URL`, exitCode: EXIT.unavailable };
  if (e.code === '28P01' || e.code === '28000') {
    return { message: `${message}: check the user and password in DATABASE_URL`, exitCode: EXIT.unavailable };
  }
  if (e.code === '42501') {
    return {
      message: `${message}: this role lacks a grant; see "Roles" in docs/operations.md (portfolio-timeseries migrate --roles)`,
      exitCode: EXIT.failed,
    };
  }
  if (isConnectionError(error)) {
    return { message: `cannot use the database: ${message}; is PostgreSQL running, and is DATABASE_URL right?`, exitCode: EXIT.unavailable };
  }
  return { message, exitCode: EXIT.failed };
}

/** An error's message for a log line (whatever was thrown). */
export const errorText = (error: unknown): string => (error as Error)?.message ?? String(error);
