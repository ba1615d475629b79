// portfolio-timeseries CLI: migrate | worker | status | returns (docs/contract.md section 5,
// docs/operations.md for every switch). Exit codes: 0 success, 1 failed, 2 usage or
// configuration, 3 database unavailable or not migrated (src/errors.ts).
import { returnsCommand, RETURNS_USAGE } from './cli-returns.js';
import { flushed } from './cli-output.js';
import { migrateCommand, MIGRATE_USAGE } from './cli-migrate.js';
import { statusCommand, STATUS_USAGE } from './cli-status.js';
import { workerCommand, WORKER_USAGE } from './cli-worker.js';
import { explain, EXIT, isUsageMistake, UsageError } from './errors.js';
import { VERSION } from './version.js';

export const EXIT_CODES = `exit codes: 0 success; 1 failed (a database error; worker --once: a job failed or ready work
  is left); 2 bad option or configuration (DATABASE_URL unset or malformed); 3 database unreachable,
  not PostgreSQL, or not migrated (run \`portfolio-timeseries migrate\`); 130/143 stopped by
  SIGINT/SIGTERM before it started.`;

const USAGE = `usage: portfolio-timeseries <command> [options]     (connection: DATABASE_URL)

  migrate [--roles]                apply graphile-worker's schema and the committed migrations;
                                   --roles: grant the producer, worker and reader roles
  worker [--once] [--concurrency N] [--log-format text|json] [--metrics-port N]
                                   run jobs until SIGTERM/SIGINT; --once: until nothing is runnable
  status [--portfolio P] [--state S] [--from D] [--to D] [--summary] [--json]
                                   state of every portfolio-day, or a summary
  returns --portfolio P (--from D --to D | --period P --as-of D) [--json]
                                   TWR, MWR and risk of a portfolio

  portfolio-timeseries <command> --help    the command's options
  portfolio-timeseries --version

${EXIT_CODES}
`;

const HELP: Record<string, string> = {
  migrate: MIGRATE_USAGE,
  worker: WORKER_USAGE,
  status: STATUS_USAGE,
  returns: RETURNS_USAGE,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== 'worker') {
    earlySignals.stopListening();
    const signal = earlySignals.received[0];
    if (signal) {
      console.error(`portfolio-timeseries: ${signal} before start, not running ${command ?? ''}`.trimEnd());
      return signal === 'SIGINT' ? 130 : 143;
    }
  }
  switch (command) {
    case 'migrate': return migrateCommand(rest);
    case 'worker': return workerCommand(rest, earlySignals);
    case 'status': return statusCommand(rest);
    case 'returns': return returnsCommand(rest);
    case '--version':
    case '-v':
    case 'version':
      console.log(VERSION);
      return EXIT.ok;
    case 'help': {
      const topic = rest[0];
      if (topic && HELP[topic]) {
        console.log(HELP[topic]);
        return EXIT.ok;
      }
      console.log(USAGE);
      return EXIT.ok;
    }
    case '-h':
    case '--help':
      console.log(USAGE);
      return EXIT.ok;
    case undefined:
      console.error(USAGE);
      return EXIT.usage;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

/**
 * Run the CLI. `signals` carries SIGTERM/SIGINT that arrived before this module finished loading
 * (bin/portfolio-timeseries.js records them), so a stop requested during start-up is honoured.
 * The process is never ended with process.exit() while output may be buffered: the exit code is
 * set and the event loop ends once stdout has drained (a safety net ends it 5 s after that if
 * something still holds it open).
 */
export function runCli(argv: string[], signals: EarlySignals = { received: [], stopListening: () => {} }): void {
  earlySignals = signals;
  const finish = async (code: number) => {
    process.exitCode = code;
    await flushed();
    setTimeout(() => process.exit(code), 5000).unref();
  };
  main(argv).then(
    (code) => finish(code),
    (error: unknown) => {
      if (isUsageMistake(error)) {
        const topic = argv[0] && HELP[argv[0]] ? HELP[argv[0]] : USAGE;
        console.error(`portfolio-timeseries: ${(error as Error).message}\n\n${topic}`);
        return finish(EXIT.usage);
      }
      const { message, exitCode } = explain(error);
      console.error(`portfolio-timeseries: ${message}`);
      return finish(exitCode);
    },
  );
}

export interface EarlySignals {
  received: string[];
  stopListening(): void;
}

let earlySignals: EarlySignals = { received: [], stopListening: () => {} };
