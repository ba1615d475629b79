// The library's own connection (postgres.js). numeric values arrive as Decimal, dates as strings.
import postgres from 'postgres';
import { Decimal } from './decimal.js';
import { ConfigError } from './errors.js';

export type Sql = postgres.Sql<{ numeric: Decimal }>;

const NUMERIC_OID = 1700;
const DATE_OID = 1082;

/**
 * How long to wait for a connection (TCP connect plus PostgreSQL's start-up) before giving up:
 * PGCONNECT_TIMEOUT seconds (libpq's variable) when set, else 10 s.
 */
export function connectTimeoutMs(): number {
  const s = Number(process.env.PGCONNECT_TIMEOUT);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 10_000;
}

/**
 * The connection string to use: `explicit`, else DATABASE_URL. Checked here, so that a mistake
 * names the variable (postgres.js and pg would only say `Invalid URL`). The value itself is never
 * printed: it may hold a password.
 */
export function connectionStringFromEnv(explicit?: string): string {
  const fromEnv = explicit === undefined;
  const url = explicit ?? process.env.DATABASE_URL;
  const name = fromEnv ? 'DATABASE_URL' : 'the connection string';
  if (!url) {
    throw new ConfigError(`${fromEnv ? 'DATABASE_URL is not set' : 'the connection string is empty'}: set DATABASE_URL to postgres://user:password@host:5432/database`);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${name} is not a valid URL: expected postgres://user:password@host:5432/database (special characters in the password percent-encoded)`);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new ConfigError(`${name} must start with postgres:// or postgresql://, not ${parsed.protocol}//`);
  }
  return url;
}

/** Where a connection string points, without its password (for messages and logs). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || '/'}`;
  } catch {
    return '(unparsable connection string)';
  }
}

/** Open a postgres.js pool whose numeric columns parse to Decimal and dates stay `YYYY-MM-DD`. */
export function connect(connectionString?: string, options: { max?: number } = {}): Sql {
  return postgres(connectionStringFromEnv(connectionString), {
    max: options.max ?? 4,
    onnotice: () => {},
    connect_timeout: connectTimeoutMs() / 1000,
    // A peer that vanished without closing (failover, a dropped network path) is noticed.
    keep_alive: 30,
    types: {
      numeric: {
        to: NUMERIC_OID,
        from: [NUMERIC_OID],
        serialize: (value: Decimal | string | number) => value.toString(),
        parse: (value: string) => new Decimal(value),
      },
      date: {
        to: DATE_OID,
        from: [DATE_OID],
        serialize: (value: string) => value,
        parse: (value: string) => value,
      },
    },
  }) as unknown as Sql;
}
