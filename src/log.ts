// The library's logging: callers pass a TimeseriesLogger (console, pino and winston loggers fit);
// graphile-worker and graphile-migrate each get an adapter built with their own Logger class.
// The worker also reports structured events (WorkerEvent): the CLI prints them as text or JSON
// lines (`--log-format`), and library users get them through `onEvent`.
import { Logger as MigrateLogger } from 'graphile-migrate';
import { Logger as WorkerLogger } from 'graphile-worker';
import type { LogLevel, TimeseriesLogger, WorkerEvent } from './types.js';

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

// ---- structured events ----

export type LogFormat = 'text' | 'json';

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** `--log-format json`: one object per line, `time level event msg` first, then the event's fields. */
export function formatEvent(e: WorkerEvent, format: LogFormat, time = new Date()): string {
  const { level, event, msg, ...fields } = e;
  if (format === 'json') {
    return JSON.stringify({ time: time.toISOString(), level, event, msg, ...fields });
  }
  const extra = Object.entries(fields)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time.toISOString()} ${level.padEnd(5)} ${msg}${extra ? `  (${event} ${extra})` : ` (${event})`}`;
}

/** Write events of `level` or more severe as lines to `stream`. */
export function eventWriter(format: LogFormat, level: LogLevel, stream: NodeJS.WritableStream): (e: WorkerEvent) => void {
  return (e) => {
    if (RANK[e.level] <= RANK[level]) stream.write(`${formatEvent(e, format)}\n`);
  };
}

/** Events as plain messages to a TimeseriesLogger (the library's default when no onEvent is given). */
export function eventsToLogger(logger: TimeseriesLogger): (e: WorkerEvent) => void {
  return (e) => {
    const { level, msg } = e;
    if (level === 'warn') logger.warn(msg);
    else logger[level](msg);
  };
}

/** A TimeseriesLogger that turns each message into an event (graphile-worker's own lines). */
export function loggerFromEvents(emit: (e: WorkerEvent) => void, event: string): TimeseriesLogger {
  return {
    // "Failed task ..." repeats the engine's own job_failed line (with a stack): debug.
    error: (msg) => emit({ level: /^Failed task /.test(msg) ? 'debug' : 'error', event, msg }),
    warn: (msg) => emit({ level: 'warn', event, msg }),
    // graphile-worker reports every job at info ("Completed task ..."): the engine's own job
    // lines say more, so its chatter is debug.
    info: (msg) => emit({ level: 'debug', event, msg }),
    debug: (msg) => emit({ level: 'debug', event, msg }),
  };
}
