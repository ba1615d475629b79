// The library's own connection (postgres.js). numeric values arrive as Decimal, dates as strings.
import postgres from 'postgres';
import { Decimal } from './decimal.js';

export type Sql = postgres.Sql<{ numeric: Decimal }>;

const NUMERIC_OID = 1700;
const DATE_OID = 1082;

export function connectionStringFromEnv(explicit?: string): string {
  const url = explicit ?? process.env.DATABASE_URL;
  if (!url) {
    throw new Error('DATABASE_URL is not set: pass a connection string or set DATABASE_URL');
  }
  return url;
}

/** Open a postgres.js pool whose numeric columns parse to Decimal and dates stay `YYYY-MM-DD`. */
export function connect(connectionString?: string, options: { max?: number } = {}): Sql {
  return postgres(connectionStringFromEnv(connectionString), {
    max: options.max ?? 4,
    onnotice: () => {},
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
