// `portfolio-timeseries migrate --roles`: grant the producer, worker and reader roles what each
// needs (sql/14_roles.sql, docs/operations.md "Roles"). The roles must exist: they are
// cluster-wide, so creating them (with their passwords) is the DBA's decision, never a side effect
// of a migration.
import postgres from 'postgres';
import { connectTimeoutMs, connectionStringFromEnv } from './db.js';

export interface RoleNames {
  producer: string;
  worker: string;
  reader: string;
}

export const DEFAULT_ROLES: RoleNames = {
  producer: 'portfolio_timeseries_producer',
  worker: 'portfolio_timeseries_worker',
  reader: 'portfolio_timeseries_reader',
};

/** Apply the grants to existing roles (run as the engine's owner, after migrate). */
export async function grantRoles(connectionString?: string, roles: Partial<RoleNames> = {}): Promise<RoleNames> {
  const names = { ...DEFAULT_ROLES, ...roles };
  const sql = postgres(connectionStringFromEnv(connectionString), { max: 1, onnotice: () => {}, connect_timeout: connectTimeoutMs() / 1000 });
  try {
    await sql`select portfolio_timeseries_engine.grant_roles(${names.producer}, ${names.worker}, ${names.reader})`;
  } finally {
    await sql.end();
  }
  return names;
}
