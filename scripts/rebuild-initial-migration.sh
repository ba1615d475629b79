#!/usr/bin/env bash
# Development only, before the first release: regenerate committed migration 000001 from sql/
# (refused once migrations/released.json lists a release; see docs/development.md).
set -euo pipefail
cd "$(dirname "$0")/.."
exec npx tsx scripts/migrations.ts rebuild-initial "$@"
