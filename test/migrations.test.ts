// The committed migrations build exactly what sql/ describes: a database migrated the way
// `portfolio-timeseries migrate` does it and a database built by running sql/*.sql directly must
// dump to the same schema.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import postgres from 'postgres';
import { Logger, runMigrations } from 'graphile-worker';
import { engineSqlFiles } from '../scripts/write-current-migration.js';
import { databaseUrl, freshDatabase, serverUrl } from './helpers/db.js';
import { migrate } from '../src/migrate.js';

function dumpSchema(url: string): string {
  const out = execFileSync('pg_dump', ['--schema-only', '--no-owner', '--no-privileges',
    '--schema=public', '--schema=portfolio_timeseries_engine', url], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => !l.startsWith('--') && !l.startsWith('\\restrict') && !l.startsWith('\\unrestrict') && !l.startsWith('SET ') && !l.startsWith('SELECT pg_catalog.set_config'))
    .join('\n')
    .replace(/\n{2,}/g, '\n');
}

async function emptyDatabase(t: { teardown(fn: () => unknown): void }, name: string): Promise<string> {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists "${name}" with (force)`);
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  t.teardown(async () => {
    const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await a.unsafe(`drop database if exists "${name}" with (force)`);
    await a.end();
  });
  return databaseUrl(name);
}

t.test('committed migrations and sql/ build the same schema', async (t) => {
  const migrated = await freshDatabase(t);
  const fromSource = await emptyDatabase(t, `${migrated.name}_src`);
  await runMigrations({ connectionString: fromSource, logger: new Logger(() => () => {}) });
  const sql = postgres(fromSource, { max: 1, onnotice: () => {} });
  try {
    for (const file of await engineSqlFiles()) {
      await sql.unsafe(await readFile(file, 'utf8'));
    }
  } finally {
    await sql.end();
  }
  // The engine is the top-level sql/*.sql only: sql/mutants/ holds the mutation check's defects.
  t.ok((await engineSqlFiles()).every((f) => path.basename(path.dirname(f)) === 'sql'), 'no file below sql/ is part of the engine');
  const a = dumpSchema(migrated.url);
  const b = dumpSchema(fromSource);
  t.ok(a.includes('CREATE FUNCTION portfolio_timeseries_engine.compute_portfolio'), 'the dump covers the engine');
  t.ok(a.includes('CREATE TABLE public.portfolio_timeseries'), 'the dump covers the contract tables');
  t.equal(a, b, 'no drift between migrations/committed and sql/');
});

t.test('migrate applies to an empty database and is idempotent', async (t) => {
  const url = await emptyDatabase(t, `pt_test_${Date.now().toString(36)}_empty`);
  await migrate(url);
  await migrate(url);
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const tables = await sql<{ table_name: string; table_type: string }[]>`
      select table_name, table_type from information_schema.tables where table_schema = 'public' order by 1`;
    t.same(tables.filter((r) => r.table_type === 'BASE TABLE').map((r) => r.table_name), [
      'cashflows', 'daily_aggregation_manifest', 'daily_position_snapshots', 'fx_rates', 'instruments',
      'portfolio_timeseries', 'portfolios', 'position_state', 'position_timeseries',
    ], 'the contract tables');
    t.same(tables.filter((r) => r.table_type === 'VIEW').map((r) => r.table_name), ['portfolio_day_status'], 'the status view');
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from graphile_migrate.migrations`;
    t.ok(row!.n >= 1, 'graphile-migrate recorded the committed migrations');
    const [worker] = await sql<{ exists: boolean }[]>`
      select exists (select 1 from pg_proc p join pg_namespace s on s.oid = p.pronamespace
                     where s.nspname = 'graphile_worker' and p.proname = 'add_jobs') as exists`;
    t.ok(worker!.exists, "graphile-worker's schema is installed");
  } finally {
    await sql.end();
  }
});

t.test('every engine function pins its search_path', async (t) => {
  const db = await freshDatabase(t);
  const rows = await db.sql<{ name: string }[]>`
    select p.oid::regprocedure::text as name
    from pg_proc p join pg_namespace s on s.oid = p.pronamespace
    where (s.nspname = 'portfolio_timeseries_engine' or (s.nspname = 'public' and p.proname = 'seal_portfolio_day'))
      and not exists (select 1 from unnest(p.proconfig) c where c like 'search_path=%')`;
  t.same(rows.map((r) => r.name), [], 'no function without a pinned search_path');
});
