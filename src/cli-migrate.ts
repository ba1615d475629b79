// `portfolio-timeseries migrate [--roles]`.
import { parseArgs } from 'node:util';
import { out } from './cli-output.js';
import { EXIT, UsageError } from './errors.js';
import { stderrLogger } from './log.js';
import { migrate } from './migrate.js';
import { DEFAULT_ROLES, grantRoles } from './roles.js';

export const MIGRATE_USAGE = `usage: portfolio-timeseries migrate [--roles [--producer-role R] [--worker-role R] [--reader-role R]]

  Apply graphile-worker's schema and the committed migrations to DATABASE_URL (idempotent).
  Run it as the role that owns (or will own) the schema.

  --roles            also grant the three roles of docs/operations.md ("Roles") what each needs:
                     producer (writes inputs and the manifest, calls seal_portfolio_day), worker
                     (runs the jobs), reader (reads outputs and status). The roles must exist
                     (create role ... login): a migration never creates cluster-wide roles.
  --producer-role R  default ${DEFAULT_ROLES.producer}
  --worker-role R    default ${DEFAULT_ROLES.worker}
  --reader-role R    default ${DEFAULT_ROLES.reader}

  exit codes: 0 applied; 1 failed (a migration or a grant; a named role missing); 2 bad option or
  DATABASE_URL; 3 database unreachable or not PostgreSQL.
`;

export async function migrateCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      roles: { type: 'boolean', default: false },
      'producer-role': { type: 'string' },
      'worker-role': { type: 'string' },
      'reader-role': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    out(MIGRATE_USAGE);
    return EXIT.ok;
  }
  const named = values['producer-role'] ?? values['worker-role'] ?? values['reader-role'];
  if (named !== undefined && !values.roles) {
    throw new UsageError('--producer-role, --worker-role and --reader-role go with --roles');
  }
  // Which migrations ran goes to stderr (info); stdout keeps the one-line result.
  await migrate(undefined, { logger: { ...stderrLogger(true), debug: () => {} } });
  out('migrations applied');
  if (values.roles) {
    const roles = await grantRoles(undefined, {
      ...(values['producer-role'] ? { producer: values['producer-role'] } : {}),
      ...(values['worker-role'] ? { worker: values['worker-role'] } : {}),
      ...(values['reader-role'] ? { reader: values['reader-role'] } : {}),
    });
    out(`roles granted: producer ${roles.producer}, worker ${roles.worker}, reader ${roles.reader}`);
  }
  return EXIT.ok;
}
