// Builds the migrated template database the tests clone: graphile-worker's schema plus the
// committed migrations, exactly as `portfolio-timeseries migrate` applies them.
//   npm run pretest      builds PT_TEMPLATE_DB when it is set (kept for later runs of single files)
//   npm test             scripts/run-tests.ts builds a template per run (buildTemplate) and drops it
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { migrate } from '../src/migrate.js';
import { databaseUrl, serverSource, serverUrl } from '../test/helpers/db.js';

const HOUR = 3_600_000;

/** Drop what killed runs left (names carry their creation time in base 36; recent ones may belong to a run still going). */
export async function dropStaleTestDatabases(): Promise<void> {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    const stale = await admin<{ datname: string }[]>`
      select datname from pg_database where datname like 'pt\\_test\\_%' or datname like 'pt\\_tpl\\_%'`;
    for (const { datname } of stale) {
      const born = parseInt(datname.split('_')[2] ?? '', 36);
      if (Number.isFinite(born) && Date.now() - born > HOUR) {
        await admin.unsafe(`drop database if exists "${datname}" with (force)`);
      }
    }
    // Roles the role tests create carry the same kind of suffix (pt_<role>_<run id>).
    const roles = await admin<{ rolname: string }[]>`
      select rolname from pg_roles where rolname ~ '^pt_(producer|worker|reader)_[0-9a-z]+_'`;
    for (const { rolname } of roles) {
      const born = parseInt(rolname.split('_')[2] ?? '', 36);
      if (Number.isFinite(born) && Date.now() - born > HOUR) await admin.unsafe(`drop role if exists "${rolname}"`).catch(() => {});
    }
  } finally {
    await admin.end();
  }
}

export async function buildTemplate(name: string): Promise<void> {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  await migrate(databaseUrl(name));
}

export async function dropTemplate(name: string): Promise<void> {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const name = process.env.PT_TEMPLATE_DB;
  await dropStaleTestDatabases();
  if (name) {
    await buildTemplate(name);
    console.log(`template database ${name} migrated on ${serverSource}`);
  } else {
    console.log('PT_TEMPLATE_DB is not set: npm test builds a template per run (scripts/run-tests.ts)');
  }
}
