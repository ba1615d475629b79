// A fresh database per test file, cloned from the migrated template that scripts/test-setup.ts
// builds once per `npm test` run (CREATE DATABASE ... TEMPLATE is a file copy: milliseconds).
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { connect, type Sql } from '../../src/db.js';

export const serverUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const templateName = process.env.PT_TEMPLATE_DB ?? 'portfolio_timeseries_template';

export function databaseUrl(name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface TestDatabase {
  name: string;
  url: string;
  /** postgres.js pool on the database (numeric -> Decimal). */
  sql: Sql;
  /** Open another pool (another session) on the same database. */
  connect(max?: number): Sql;
  drop(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function freshDatabase(t?: Teardown): Promise<TestDatabase> {
  const name = `pt_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}" template "${templateName}"`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(name);
  const pools: Sql[] = [];
  const open = (max = 4): Sql => {
    const sql = connect(url, { max });
    pools.push(sql);
    return sql;
  };
  const sql = open();
  let dropped = false;
  const db: TestDatabase = {
    name,
    url,
    sql,
    connect: open,
    async drop() {
      if (dropped) return;
      dropped = true;
      await Promise.all(pools.map((p) => p.end({ timeout: 5 })));
      const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await a.end();
      }
    },
  };
  t?.teardown(() => db.drop());
  return db;
}
