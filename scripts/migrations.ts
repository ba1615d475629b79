// Authoring migrations (docs/development.md, "Releasing a change to the engine").
//
//   npx tsx scripts/migrations.ts rebuild-initial [message]
//       Before the first release only: regenerate migrations/committed/000001 from sql/.
//       Refuses once migrations/released.json lists a release.
//   npx tsx scripts/migrations.ts next <message>
//       The next release's migration: migrations/next/*.sql (the hand-written table changes:
//       ALTERs, new tables, data moves, drops of objects sql/ no longer defines, in file-name
//       order), then every re-appliable file of sql/ (all but *_tables.sql), committed with
//       graphile-migrate as the next numbered migration; migrations/next/ is emptied.
//   npx tsx scripts/migrations.ts release <version>
//       Record that the committed migrations up to now shipped in <version>.
//
// graphile-migrate commit needs a scratch database, a shadow database and a superuser
// connection: ROOT_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), and the
// scratch names are made unique per run so that two authors on one server do not collide.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Logger, runMigrations } from 'graphile-worker';
import postgres from 'postgres';

export interface Released { releases: { version: string; lastMigration: string }[] }

export function paths(root: string) {
  return {
    root,
    sql: path.join(root, 'sql'),
    migrations: path.join(root, 'migrations'),
    committed: path.join(root, 'migrations', 'committed'),
    next: path.join(root, 'migrations', 'next'),
    current: path.join(root, 'migrations', 'current.sql'),
    released: path.join(root, 'migrations', 'released.json'),
  };
}

export function readReleased(root: string): Released {
  const file = paths(root).released;
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Released) : { releases: [] };
}

/** The engine's SQL files in order; `codeOnly` leaves out the table DDL (*_tables.sql). */
export function sqlFiles(root: string, codeOnly = false): string[] {
  return readdirSync(paths(root).sql)
    .filter((n) => n.endsWith('.sql') && !(codeOnly && n.endsWith('_tables.sql')))
    .sort()
    .map((n) => path.join(paths(root).sql, n));
}

function section(root: string, file: string): string {
  return `-- >>> ${path.relative(root, file)}\n${readFileSync(file, 'utf8').trimEnd()}\n`;
}

async function withScratch<T>(serverUrl: string, fn: (urls: { db: string; shadow: string }) => T): Promise<T> {
  const id = `${Date.now().toString(36)}_${process.pid}`;
  const base = new URL(serverUrl);
  const url = (name: string) => { const u = new URL(base.toString()); u.pathname = `/${name}`; return u.toString(); };
  const names = { db: `pt_migrate_${id}`, shadow: `pt_migrate_${id}_shadow` };
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${names.db}"`);
    // `commit` also migrates this database, and the engine's migration needs graphile-worker's
    // schema (the shadow database gets it from .gmrc's afterReset).
    await runMigrations({ connectionString: url(names.db), logger: new Logger(() => () => {}) });
    return await fn({ db: url(names.db), shadow: url(names.shadow) });
  } finally {
    for (const n of Object.values(names)) await admin.unsafe(`drop database if exists "${n}" with (force)`);
    await admin.end();
  }
}

// This checkout's graphile-migrate, whatever directory the migrations are authored in.
const graphileMigrate = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', '.bin', 'graphile-migrate');

function commit(root: string, serverUrl: string, urls: { db: string; shadow: string }, message: string): void {
  execFileSync(graphileMigrate, ['commit', '-m', message], {
    cwd: root, stdio: 'inherit',
    env: { ...process.env, DATABASE_URL: urls.db, SHADOW_DATABASE_URL: urls.shadow, ROOT_DATABASE_URL: serverUrl },
  });
}

export async function rebuildInitial(root: string, serverUrl: string, message: string): Promise<void> {
  const released = readReleased(root);
  if (released.releases.length > 0) {
    throw new Error(`migrations/committed is released (${released.releases.map((r) => r.version).join(', ')}): ` +
      'committed migrations are immutable; write the change as the next migration (scripts/migrations.ts next)');
  }
  const p = paths(root);
  for (const f of readdirSync(p.committed)) rmSync(path.join(p.committed, f));
  writeFileSync(p.current, sqlFiles(root).map((f) => section(root, f)).join('\n'));
  await withScratch(serverUrl, (urls) => commit(root, serverUrl, urls, message));
}

export async function next(root: string, serverUrl: string, message: string): Promise<string> {
  const p = paths(root);
  const manual = existsSync(p.next) ? readdirSync(p.next).filter((n) => n.endsWith('.sql')).sort().map((n) => path.join(p.next, n)) : [];
  const parts = [
    ...manual.map((f) => section(root, f)),
    ...sqlFiles(root, true).map((f) => section(root, f)),
  ];
  writeFileSync(p.current, parts.join('\n'));
  const before = new Set(readdirSync(p.committed));
  await withScratch(serverUrl, (urls) => commit(root, serverUrl, urls, message));
  for (const f of manual) rmSync(f);
  const added = readdirSync(p.committed).filter((f) => !before.has(f));
  if (added.length !== 1) throw new Error(`expected one new committed migration, found ${added.join(', ') || 'none'}`);
  return added[0]!;
}

export function release(root: string, version: string): void {
  const p = paths(root);
  const committed = readdirSync(p.committed).filter((f) => f.endsWith('.sql')).sort();
  const last = committed[committed.length - 1];
  if (!last) throw new Error('no committed migration to release');
  const released = readReleased(root);
  released.releases.push({ version, lastMigration: last });
  mkdirSync(p.migrations, { recursive: true });
  writeFileSync(p.released, `${JSON.stringify(released, null, 2)}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const server = process.env.ROOT_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const [command, ...rest] = process.argv.slice(2);
  try {
    if (command === 'rebuild-initial') {
      await rebuildInitial(root, server, rest.join(' ') || 'engine: contract tables, change queue, per-portfolio job, status');
    } else if (command === 'next' && rest.length > 0) {
      console.log(`committed ${await next(root, server, rest.join(' '))}`);
    } else if (command === 'release' && rest.length === 1) {
      release(root, rest[0]!);
    } else {
      console.error('usage: scripts/migrations.ts rebuild-initial [message] | next <message> | release <version>');
      process.exitCode = 2;
    }
  } catch (error) {
    console.error(`scripts/migrations.ts: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}
