// graphile-migrate settings for a service that depends on portfolio-timeseries: run its
// migrations from the service's own root with
//   npx graphile-migrate migrate --config node_modules/portfolio-timeseries/gmrc.cjs
// (DATABASE_URL set, graphile-worker's schema installed). The repository's own `.gmrc` is for
// authoring migrations here; this file points graphile-migrate at the package's migrations
// folder wherever it is installed.
const path = require('node:path');

module.exports = {
  migrationsFolder: path.join(__dirname, 'migrations'),
  pgSettings: { search_path: 'public' },
  placeholders: {},
  afterReset: [],
  afterAllMigrations: [],
  afterCurrent: [],
};
