#!/usr/bin/env bash
# Development only, before the first release: regenerate committed migration 000001 from sql/.
# Once a migration has been applied anywhere it is immutable; write the next one instead
# (docs/development.md).
set -euo pipefail
cd "$(dirname "$0")/.."
server=${ROOT_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
base=${server%/*}
psql "$server" -qc 'drop database if exists pt_migrate_scratch with (force)' -c 'drop database if exists pt_migrate_shadow with (force)' -c 'create database pt_migrate_scratch'
rm -f migrations/committed/000001-*.sql
npx tsx scripts/write-current-migration.ts
DATABASE_URL=$base/pt_migrate_scratch SHADOW_DATABASE_URL=$base/pt_migrate_shadow ROOT_DATABASE_URL=$server \
  npx graphile-migrate commit -m "${1:-engine: contract tables, readiness counters, triggers, compute job, status}"
psql "$server" -qc 'drop database if exists pt_migrate_scratch with (force)' -c 'drop database if exists pt_migrate_shadow with (force)'
