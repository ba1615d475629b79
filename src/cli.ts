// portfolio-timeseries CLI: migrate | worker [--once] [--concurrency N] | status [--portfolio P] [--json]
import { parseArgs } from 'node:util';
import { connect } from './db.js';
import { stderrLogger } from './log.js';
import { returnsCommand } from './cli-returns.js';
import { migrate } from './migrate.js';
import { readStatus } from './status.js';
import { runWorker, runWorkerOnce } from './worker.js';

const USAGE = `usage: portfolio-timeseries <command> [options]   (connection: DATABASE_URL)

  migrate                               apply graphile-worker's schema and the committed migrations
  worker [--once] [--concurrency N]     run jobs until SIGTERM/SIGINT; --once: until no job is runnable
         [--verbose]
  status [--portfolio P] [--json]       state of every portfolio-day
  returns --portfolio P (--from D --to D | --period MTD|QTD|YTD|SI|1Y|3Y|5Y --as-of D)
          [--basis GROSS|NET] [--risk-free R] [--json]   TWR, MWR and risk (returns --help)
`;

class UsageError extends Error {}

function positiveInt(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a whole number >= 1, got ${value}`);
  return n;
}

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
    case 'migrate': {
      parseArgs({ args: rest, options: {}, strict: true });
      // Which migrations ran goes to stderr (info); stdout keeps the one-line result.
      await migrate(undefined, { logger: { ...stderrLogger(true), debug: () => {} } });
      console.log('migrations applied');
      return 0;
    }
    case 'worker': {
      const { values } = parseArgs({
        args: rest,
        strict: true,
        options: {
          once: { type: 'boolean', default: false },
          concurrency: { type: 'string' },
          verbose: { type: 'boolean', default: false },
        },
      });
      const options = { concurrency: positiveInt(values.concurrency, '--concurrency'), verbose: values.verbose };
      if (values.once) {
        await runWorkerOnce(options);
        return 0;
      }
      // Handlers go in before the worker starts: a signal during start-up must still end in a
      // clean stop, not in the default "killed by signal".
      let stopRequested: string | undefined;
      let runner: Awaited<ReturnType<typeof runWorker>> | undefined;
      const stop = (signal: string) => {
        if (stopRequested) return;
        stopRequested = signal;
        console.error(`[portfolio-timeseries worker] ${signal}: finishing running jobs, then exiting`);
        if (runner) void runner.stop();
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      earlySignals.stopListening();
      for (const signal of earlySignals.received) stop(signal);
      runner = await runWorker(options);
      if (stopRequested) void runner.stop();
      await runner.promise;
      return 0;
    }
    case 'status': {
      const { values } = parseArgs({
        args: rest,
        strict: true,
        options: { portfolio: { type: 'string' }, json: { type: 'boolean', default: false } },
      });
      const sql = connect(undefined, { max: 1 });
      try {
        const rows = await readStatus(sql, values.portfolio === undefined ? {} : { portfolioId: values.portfolio });
        if (values.json) {
          console.log(JSON.stringify(rows, null, 2));
        } else if (rows.length === 0) {
          console.log('no portfolio-days');
        } else {
          for (const r of rows) {
            console.log(
              [r.portfolio_id, r.date, r.state.padEnd(20), r.has_row ? 'row' : 'no row', r.detail ?? ''].join('  ').trimEnd(),
            );
          }
        }
      } finally {
        await sql.end();
      }
      return 0;
    }
    case 'returns': return returnsCommand(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

/**
 * Run the CLI. `signals` carries SIGTERM/SIGINT that arrived before this module finished loading
 * (bin/portfolio-timeseries.js records them), so a stop requested during start-up is honoured.
 */
export function runCli(argv: string[], signals: EarlySignals = { received: [], stopListening: () => {} }): void {
  earlySignals = signals;
  main(argv).then(
    (code) => process.exit(code),
    (error: unknown) => {
      if (error instanceof UsageError || (error as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
        console.error(`portfolio-timeseries: ${(error as Error).message}\n\n${USAGE}`);
        process.exit(2);
      }
      console.error(`portfolio-timeseries: ${(error as Error).message ?? String(error)}`);
      process.exit(1);
    },
  );
}

export interface EarlySignals {
  received: string[];
  stopListening(): void;
}

let earlySignals: EarlySignals = { received: [], stopListening: () => {} };
