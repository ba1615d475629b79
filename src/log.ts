// The library's logging: callers pass a TimeseriesLogger (console, pino and winston loggers fit);
// graphile-worker and graphile-migrate each get an adapter built with their own Logger class.
import { Logger as MigrateLogger } from 'graphile-migrate';
import { Logger as WorkerLogger } from 'graphile-worker';
import type { TimeseriesLogger } from './types.js';

const PREFIX = '[portfolio-timeseries]';

/**
 * The default: warnings and errors to stderr, info and debug dropped (with `verbose`, everything).
 * A library must not write to stdout: the embedding service owns it.
 */
export function stderrLogger(verbose = false): TimeseriesLogger {
  const write = (level: string) => (message: string) => process.stderr.write(`${PREFIX} ${level}: ${message}\n`);
  const drop = () => {};
  return {
    error: write('error'),
    warn: write('warning'),
    info: verbose ? write('info') : drop,
    debug: verbose ? write('debug') : drop,
  };
}

function dispatch(logger: TimeseriesLogger, level: string, message: string): void {
  switch (level) {
    case 'error':
      return logger.error(message);
    case 'warning':
      return logger.warn(message);
    case 'info':
      return logger.info(message);
    default:
      return logger.debug(message);
  }
}

/** A graphile-worker Logger (the peer dependency's own class) writing to `logger`. */
export function workerLogger(logger: TimeseriesLogger): WorkerLogger {
  return new WorkerLogger(() => (level, message) => dispatch(logger, String(level), message));
}

/** A graphile-migrate Logger writing to `logger`. */
export function migrateLogger(logger: TimeseriesLogger): MigrateLogger {
  return new MigrateLogger(() => (level, message) => dispatch(logger, String(level), message));
}
