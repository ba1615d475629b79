// Apply graphile-worker's schema, then this package's committed migrations (graphile-migrate),
// through both packages' public APIs only.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { migrate as graphileMigrate } from 'graphile-migrate';
import { runMigrations } from 'graphile-worker';
import postgres from 'postgres';
import { connectTimeoutMs, connectionStringFromEnv } from './db.js';
import { migrateLogger, stderrLogger, workerLogger } from './log.js';
import { createPool } from './pool.js';
import { probeDatabase } from './probe.js';
import type { MigrateOptions, TimeseriesLogger } from './types.js';

/** The package's migrations folder (works from src/ under tsx and from dist/). */
export const migrationsFolder = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');

/** graphile-migrate ends its pool 200 ms after its last use; how long we wait for that at most. */
const POOL_RELEASE_TIMEOUT_MS = 10_000;

export async function migrate(connectionString?: string, options: MigrateOptions = {}): Promise<void> {
  const url = connectionStringFromEnv(connectionString);
  const logger = options.logger ?? stderrLogger();
  // graphile-migrate's own pool has no connect timeout: against a server that accepts and never
  // answers it would wait for ever. A short probe first turns that (and a refused connection, or
  // a port that is not PostgreSQL) into an error that says so.
  await probeDatabase(url, { requireMigrated: false, applicationName: 'portfolio-timeseries migrate' });
  // The engine's SQL calls graphile_worker.add_job, so the worker schema goes in first (on a pool
  // with a connect timeout and error handlers).
  const pool = createPool(url, { max: 1, applicationName: 'portfolio-timeseries migrate' });
  try {
    await runMigrations({ pgPool: pool, logger: workerLogger(logger) });
  } finally {
    await pool.end().catch(() => {});
  }
  // graphile-migrate keeps its pg pool for 200 ms after use, and exits the process if that pool's
  // idle connection is terminated meanwhile (a dropped database, a DBA's pg_terminate_backend).
  // Its public API cannot close the pool, so its connections carry a unique application_name and
  // we return only once PostgreSQL shows none of them: after that nothing of graphile-migrate's
  // is left in this process to fail or to keep it alive.
  const tag = `pt-migrate-${randomUUID()}`; // < 64 bytes: PostgreSQL truncates longer names
  const tagged = withApplicationName(url, tag);
  try {
    await graphileMigrate({ connectionString: tagged ?? url, migrationsFolder, logger: migrateLogger(logger) }, false, false);
  } finally {
    await waitForPoolRelease(url, tagged === undefined ? undefined : tag, logger);
  }
}

/** `url` with `application_name` set, or undefined when it is not a URL (libpq key=value form). */
function withApplicationName(url: string, applicationName: string): string | undefined {
  try {
    const parsed = new URL(url);
    if (!/^postgres(ql)?:$/.test(parsed.protocol)) return undefined;
    parsed.searchParams.set('application_name', applicationName);
    return parsed.toString();
  } catch {
    return undefined;
  }
}

async function waitForPoolRelease(url: string, tag: string | undefined, logger: TimeseriesLogger): Promise<void> {
  if (tag === undefined) {
    await sleep(500); // 200 ms keep-alive, then pool.end(): generous margin
    return;
  }
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: connectTimeoutMs() / 1000, connection: { application_name: 'portfolio-timeseries migrate' } });
  try {
    const deadline = Date.now() + POOL_RELEASE_TIMEOUT_MS;
    for (;;) {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where application_name = ${tag}`;
      if ((row?.n ?? 0) === 0) return;
      if (Date.now() > deadline) {
        logger.warn(`migrate: graphile-migrate's connections are still open after ${POOL_RELEASE_TIMEOUT_MS} ms`);
        return;
      }
      await sleep(50);
    }
  } catch (error) {
    // The migrations are applied; not being able to watch the pool close is not a failure of
    // migrate(). Fall back to waiting out graphile-migrate's keep-alive.
    logger.debug(`migrate: could not watch graphile-migrate's pool close (${(error as Error).message})`);
    await sleep(500);
  } finally {
    await sql.end();
  }
}
