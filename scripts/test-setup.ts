// Builds the migrated template database the tests clone (once per `npm test`): graphile-worker's
// schema plus the committed migrations, exactly as `portfolio-timeseries migrate` applies them.
import postgres from 'postgres';
import { migrate } from '../src/migrate.js';
import { databaseUrl, serverUrl, templateName } from '../test/helpers/db.js';

const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
try {
  // Leftovers of interrupted runs (names carry their creation time in base 36); recent ones may
  // belong to a run still going on, so only those older than an hour are dropped.
  const stale = await admin<{ datname: string }[]>`
    select datname from pg_database where datname like 'pt_test_%'`;
  for (const { datname } of stale) {
    const born = parseInt(datname.split('_')[2] ?? '', 36);
    if (Number.isFinite(born) && Date.now() - born > 3_600_000) {
      await admin.unsafe(`drop database if exists "${datname}" with (force)`);
    }
  }
  await admin.unsafe(`drop database if exists "${templateName}" with (force)`);
  await admin.unsafe(`create database "${templateName}"`);
} finally {
  await admin.end();
}
await migrate(databaseUrl(templateName));
console.log(`template database ${templateName} migrated`);
