// A fresh database per test file, cloned from the migrated template that scripts/test-setup.ts
// builds once per `npm test` run (CREATE DATABASE ... TEMPLATE is a file copy: milliseconds).
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { connect, type Sql } from '../../src/db.js';

/** The server the tests use: TEST_DATABASE_URL, else this default. Never DATABASE_URL (it may be production). */
export const DEFAULT_SERVER = 'postgres://postgres@127.0.0.1:5432/postgres';
export const serverUrl = process.env.TEST_DATABASE_URL ?? DEFAULT_SERVER;
export const serverSource = process.env.TEST_DATABASE_URL ? 'TEST_DATABASE_URL' : 'the default server (TEST_DATABASE_URL is not set)';

/**
 * The migrated template every test database is cloned from: PT_TEMPLATE_DB when set (built by
 * `npm run pretest`, kept), else one per test run, `pt_tpl_<run id>`: scripts/run-tests.ts sets
 * PT_TEST_RUN_ID, builds it, and drops it at the end, so two runs on one server never collide.
 */
export let templateName = process.env.PT_TEMPLATE_DB
  ?? (process.env.PT_TEST_RUN_ID ? `pt_tpl_${process.env.PT_TEST_RUN_ID}` : 'pt_tpl_unset');

/** Point this process (and what it imports) at another template (the mutation check's own). */
export function useTemplate(name: string): void {
  templateName = name;
}

/** A new run id: creation time (base 36, for the cleanup of killed runs' leftovers) and randomness. */
export function newRunId(): string {
  return `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

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
