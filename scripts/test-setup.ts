// Builds the migrated template database the tests clone (once per `npm test`): graphile-worker's
// schema plus the committed migrations, exactly as `portfolio-timeseries migrate` applies them.
import postgres from 'postgres';
import { migrate } from '../src/migrate.js';
import { databaseUrl, serverUrl, templateName } from '../test/helpers/db.js';

const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
try {
  // Leftovers of an interrupted run would otherwise accumulate.
  const stale = await admin<{ datname: string }[]>`
    select datname from pg_database where datname like 'pt_test_%' or datname like 'pt_drift_%'`;
  for (const { datname } of stale) {
    await admin.unsafe(`drop database if exists "${datname}" with (force)`);
  }
  await admin.unsafe(`drop database if exists "${templateName}" with (force)`);
  await admin.unsafe(`create database "${templateName}"`);
} finally {
  await admin.end();
}
await migrate(databaseUrl(templateName));
console.log(`template database ${templateName} migrated`);
