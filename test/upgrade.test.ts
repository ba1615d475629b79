// The release procedure (docs/development.md, "Releasing a change to the engine"): version N+1 is
// a new committed migration generated from a change to sql/ (scripts/migrations.ts next), applied
// with graphile-migrate to a database at version N that holds data: the rows stay as they were,
// the engine still converges, and the migrated schema is what sql/ describes. Run on a scratch
// copy of sql/ and migrations/ with a sample change.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { Logger, runMigrations } from 'graphile-worker';
import { databaseUrl, serverUrl } from './helpers/db.js';
import { next, rebuildInitial, release, sqlFiles } from '../scripts/migrations.js';
import { runWorkerOnce } from '../src/worker.js';
import { readStatus } from '../src/status.js';
import { connect } from '../src/db.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const graphileMigrate = path.join(repo, 'node_modules', '.bin', 'graphile-migrate');

async function emptyDatabase(t: { teardown(fn: () => unknown): void }, suffix: string): Promise<string> {
  const name = `pt_test_${Date.now().toString(36)}_${suffix}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  t.teardown(async () => {
    const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await a.unsafe(`drop database if exists "${name}" with (force)`);
    await a.end();
  });
  const url = databaseUrl(name);
  await runMigrations({ connectionString: url, logger: new Logger(() => () => {}) });
  return url;
}

function dumpSchema(url: string): string {
  return execFileSync('pg_dump', ['--schema-only', '--no-owner', '--no-privileges',
    '--schema=public', '--schema=portfolio_timeseries_engine', url], { encoding: 'utf8' })
    .split('\n').filter((l) => !l.startsWith('--') && !l.startsWith('\\') && !l.startsWith('SET ') && !l.startsWith('SELECT pg_catalog.set_config'))
    .join('\n').replace(/\n{2,}/g, '\n');
}

t.test('version N+1 applies to a database at version N with data: rows unchanged, engine converges', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-upgrade-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(path.join(repo, 'sql'), path.join(dir, 'sql'), { recursive: true, filter: (src) => !src.includes(`${path.sep}mutants`) });
  cpSync(path.join(repo, 'migrations', 'committed'), path.join(dir, 'migrations', 'committed'), { recursive: true });
  cpSync(path.join(repo, '.gmrc'), path.join(dir, '.gmrc'));
  symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
  const versionN = readdirSync(path.join(dir, 'migrations', 'committed'));

  // Version N, with data, computed.
  const url = await emptyDatabase(t, 'upgrade');
  const migrate = () => execFileSync(graphileMigrate, ['migrate'], { cwd: dir, env: { ...process.env, DATABASE_URL: url }, encoding: 'utf8' });
  migrate();
  const sql = connect(url, { max: 2 });
  t.teardown(() => sql.end({ timeout: 5 }));
  await sql`insert into portfolios values ('P', 'USD', '2025-01-01', null)`;
  await sql`insert into instruments values ('A', 'USD', 'a'), ('B', 'EUR', 'b')`;
  await sql`insert into fx_rates values ('EUR', 'USD', '2025-01-01', 1.1)`;
  await sql`insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, cost_basis_local, market_value, market_value_local, valuation_status)
            select 'P', s, '2025-01-01'::date + d, 10, 100, 100 + d, 90 + d, 'VALUED_CURRENT' from unnest(array['A', 'B']) s, generate_series(1, 3) d`;
  await sql`insert into daily_aggregation_manifest select 'P', '2025-01-01'::date + d, 2 from generate_series(1, 3) d`;
  await runWorkerOnce({ connectionString: url });
  const outputs = async () => ({
    portfolio: await sql`select *, updated_at::text as u from portfolio_timeseries order by date`,
    position: await sql`select *, updated_at::text as u from position_timeseries order by date, security_id`,
  });
  const before = await outputs();
  t.equal(before.portfolio.length, 3, 'version N computed its three days');

  // The change: a new column on an engine table (hand-written DDL, and the same column in
  // sql/*_tables.sql so that sql/ describes the result), and a changed function.
  mkdirSync(path.join(dir, 'migrations', 'next'));
  writeFileSync(path.join(dir, 'migrations', 'next', '0001-portfolio-job-note.sql'),
    'alter table portfolio_timeseries_engine.portfolio_job add column note text;\n');
  const tables = path.join(dir, 'sql', '03_engine_tables.sql');
  const ddl = readFileSync(tables, 'utf8');
  t.match(ddl, /  retry_at timestamptz\n\);/, 'the sample change applies to this engine');
  writeFileSync(tables, ddl.replace('  retry_at timestamptz\n);', '  retry_at timestamptz,\n  note text\n);'));
  const status = path.join(dir, 'sql', '10_status.sql');
  writeFileSync(status, readFileSync(status, 'utf8').replace("'ready, not computed yet'", "'ready, not computed yet (upgraded)'"));
  const added = await next(dir, serverUrl, 'sample change: portfolio_job.note');
  t.match(added, /^000002-/, `the change is committed as ${added}`);
  t.same(readdirSync(path.join(dir, 'migrations', 'next')), [], 'migrations/next is emptied');

  // Applied to version N with its data.
  migrate();
  const [m] = await sql<{ n: number }[]>`select count(*)::int as n from graphile_migrate.migrations`;
  t.equal(m!.n, versionN.length + 1, 'graphile-migrate applied the new migration');
  t.strictSame(await outputs(), before, 'every output row unchanged, updated_at included');
  t.ok((await readStatus(sql, { portfolioId: 'P' })).every((s) => s.state === 'current'), 'every day still current');

  // And the engine still converges: a new day and a correction of an old one.
  await sql`insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, cost_basis_local, market_value, market_value_local, valuation_status)
            select 'P', s, '2025-01-05', 10, 100, 200, 190, 'VALUED_CURRENT' from unnest(array['A', 'B']) s`;
  await sql`insert into daily_aggregation_manifest values ('P', '2025-01-05', 2)`;
  const [queued] = await readStatus(sql, { portfolioId: 'P' }).then((r) => r.filter((s) => s.date === '2025-01-05'));
  t.equal(queued?.detail, 'ready, not computed yet (upgraded)', 'the changed function is the one installed');
  // Both positions of 2025-01-02 revalued at 150 each: eod 300, and the next day's bod follows.
  await sql`update daily_position_snapshots set market_value = 150 where date = '2025-01-02'`;
  await runWorkerOnce({ connectionString: url });
  const rows = await sql<{ date: string; bod: string; eod: string }[]>`
    select date::text, bod_market_value::text as bod, eod_market_value::text as eod from portfolio_timeseries order by date`;
  t.same(rows.map((r) => [r.date, Number(r.bod), Number(r.eod)]), [
    ['2025-01-02', 0, 300], ['2025-01-03', 300, 204], ['2025-01-04', 204, 206], ['2025-01-05', 206, 400],
  ], 'the correction and the new day are computed after the upgrade');

  // The migrated schema is what the changed sql/ describes.
  const fresh = await emptyDatabase(t, 'upgrade_src');
  const direct = postgres(fresh, { max: 1, onnotice: () => {} });
  try {
    for (const f of sqlFiles(dir)) await direct.unsafe(readFileSync(f, 'utf8'));
  } finally {
    await direct.end();
  }
  t.equal(dumpSchema(url), dumpSchema(fresh), 'no drift between the migrations and sql/');

  // Once released, the initial migration cannot be rebuilt.
  release(dir, '1.0.0');
  await t.rejects(rebuildInitial(dir, serverUrl, 'again'), /released \(1\.0\.0\)/, 'rebuilding the initial migration is refused');
});
