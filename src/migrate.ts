// Apply graphile-worker's schema, then this package's committed migrations (graphile-migrate).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate as graphileMigrate } from 'graphile-migrate';
// graphile-migrate keeps its pg pool open for 200 ms after use and exits the process if that
// pool's connection is terminated meanwhile; a library must release it before returning.
import { clearAllPools } from 'graphile-migrate/dist/pgReal.js';
import { Logger, runMigrations } from 'graphile-worker';
import { connectionStringFromEnv } from './db.js';

/** The package's migrations folder (works from src/ under tsx and from dist/). */
export const migrationsFolder = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');

export async function migrate(connectionString?: string): Promise<void> {
  const url = connectionStringFromEnv(connectionString);
  // The engine's SQL calls graphile_worker.add_job, so the worker schema goes in first.
  await runMigrations({ connectionString: url, logger: new Logger(() => () => {}) });
  try {
    await graphileMigrate({ connectionString: url, migrationsFolder }, false, false);
  } finally {
    clearAllPools();
  }
}
