// The three roles of sql/14_roles.sql for a test file: created with a per-run suffix (roles are
// cluster-wide; two runs on one server must not share them), granted in each test database, and
// dropped when the file ends (after its databases, whose drop removes the grants).
import postgres from 'postgres';
import { connect, type Sql } from '../../src/db.js';
import { newRunId, serverUrl, type TestDatabase } from './db.js';

export type RoleKind = 'producer' | 'worker' | 'reader';

export interface TestRoles {
  names: Record<RoleKind, string>;
  /** Grant the roles in `db` (portfolio_timeseries_engine.grant_roles). */
  grant(db: TestDatabase): Promise<void>;
  /** The database's URL logging in as one of the roles. */
  url(db: TestDatabase, role: RoleKind): string;
  /** A pool on `db` logged in as the role (ended with the file). */
  connect(db: TestDatabase, role: RoleKind, max?: number): Sql;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function testRoles(t: Teardown): Promise<TestRoles> {
  const suffix = newRunId();
  const names = {
    producer: `pt_producer_${suffix}`,
    worker: `pt_worker_${suffix}`,
    reader: `pt_reader_${suffix}`,
  };
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  for (const name of Object.values(names)) await admin.unsafe(`create role "${name}" login`);
  const pools: Sql[] = [];
  t.teardown(async () => {
    await Promise.all(pools.map((p) => p.end({ timeout: 5 })));
    for (const name of Object.values(names)) {
      await admin.unsafe(`drop role if exists "${name}"`).catch((e: Error) => {
        // A database of this file still holds a grant (its teardown failed): say which role.
        console.error(`could not drop role ${name}: ${e.message}`);
      });
    }
    await admin.end();
  });
  const url = (db: TestDatabase, role: RoleKind) => {
    const u = new URL(db.url);
    u.username = names[role];
    u.password = '';
    return u.toString();
  };
  return {
    names,
    async grant(db) {
      await db.sql`select portfolio_timeseries_engine.grant_roles(${names.producer}, ${names.worker}, ${names.reader})`;
    },
    url,
    connect(db, role, max = 1) {
      const pool = connect(url(db, role), { max });
      pools.push(pool);
      return pool;
    },
  };
}
