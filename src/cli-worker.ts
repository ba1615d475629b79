// `portfolio-timeseries worker`: the long-running worker (or --once), its log lines, its metrics
// and health endpoints, and its signals (docs/operations.md, "Running the worker").
import { parseArgs } from 'node:util';
import { positiveInt } from './cli-args.js';
import { stdoutGone } from './cli-output.js';
import { connectionStringFromEnv } from './db.js';
import { EXIT, UsageError } from './errors.js';
import { startHealthServer, type HealthServer } from './health.js';
import { eventWriter, type LogFormat } from './log.js';
import { WorkerMetrics } from './metrics.js';
import { startWorker, type WorkerService } from './service.js';
import type { EarlySignals } from './cli.js';
import type { WorkerEvent } from './types.js';
import { VERSION } from './version.js';

export const WORKER_USAGE = `usage: portfolio-timeseries worker [--once] [--concurrency N] [--log-format text|json] [--verbose]
                                 [--metrics-port N] [--metrics-host H] [--startup-timeout S]

  Run the engine's jobs until SIGTERM or SIGINT: stop taking jobs, let the running ones finish
  their current batch, exit 0 (a second signal exits at once). While the database cannot be
  reached it retries with back-off (0.5 s doubling to 30 s), at start and after an outage.
  Log: one line per event on stdout (start, stop, each computed portfolio, progress of long jobs,
  every error), as text or JSON.

  --once               run until nothing runnable is left, then exit (0 only when no job failed
                       and no ready work is left)
  --concurrency N      jobs at once (default 1)
  --log-format F       text (default) or json (one object per line)
  --verbose            also debug lines (graphile-worker's own)
  --metrics-port N     serve GET /metrics (Prometheus), /health/live and /health/ready on port N
  --metrics-host H     address to listen on (default 0.0.0.0)
  --startup-timeout S  give up after S seconds without the database at start (default: never;
                       60 with --once)
  Connection: DATABASE_URL.

  exit codes: 0 stopped by SIGTERM/SIGINT, or --once with everything done; 1 --once left a failed
  job, a failed portfolio or ready work, or an error; 2 bad option or DATABASE_URL; 3 database
  unreachable at start (after --startup-timeout) or not migrated; 130/143 a second signal.
`;

export async function workerCommand(args: string[], early: EarlySignals): Promise<number> {
  // Handlers go in before anything else: a signal during start-up must end in a clean stop.
  let service: WorkerService | undefined;
  let requested: string | undefined;
  let health: HealthServer | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (requested) {
      // A second signal: the operator wants out now.
      process.stderr.write(`portfolio-timeseries worker: second ${signal}, exiting without waiting for running jobs\n`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    requested = signal;
    service?.stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // graphile-worker 0.17 does not wait for the promise that records a finished job: if the
  // database is lost at that moment its rejection would end the process. Log it instead; the row
  // it could not update is this worker's and is cleaned at the stop or the next start.
  let log: (e: WorkerEvent) => void = eventWriter('json', 'info', process.stdout);
  const onRejection = (reason: unknown) => {
    const text = (reason as Error)?.message ?? String(reason);
    log({ level: 'error', event: 'error', msg: `unhandled rejection: ${text}`, error: text });
  };
  process.on('unhandledRejection', onRejection);
  early.stopListening();
  for (const s of early.received) onSignal(s as NodeJS.Signals);
  try {
    const { values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        once: { type: 'boolean', default: false },
        concurrency: { type: 'string' },
        verbose: { type: 'boolean', default: false },
        'log-format': { type: 'string', default: 'text' },
        'metrics-port': { type: 'string' },
        'metrics-host': { type: 'string' },
        'startup-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      process.stdout.write(WORKER_USAGE);
      return EXIT.ok;
    }
    const format = values['log-format'];
    if (format !== 'text' && format !== 'json') throw new UsageError(`--log-format must be text or json, got ${JSON.stringify(format)}`);
    const concurrency = positiveInt(values.concurrency, '--concurrency', 1, 1000) ?? 1;
    const metricsPort = positiveInt(values['metrics-port'], '--metrics-port', 0, 65535);
    const startupTimeout = positiveInt(values['startup-timeout'], '--startup-timeout', 0);
    const url = connectionStringFromEnv();

    const write = eventWriter(format as LogFormat, values.verbose ? 'debug' : 'info', process.stdout);
    let metrics: WorkerMetrics | undefined;
    const onEvent = (e: WorkerEvent) => {
      if (!stdoutGone()) write(e);
    };
    log = onEvent;
    if (metricsPort !== undefined) {
      metrics = new WorkerMetrics(() => (service ? service.pool : null) as never, { version: VERSION });
    }
    if (requested) {
      onEvent({ level: 'info', event: 'worker_stopped', msg: `${requested} before start: not starting`, reason: requested, clean: true });
      return EXIT.ok;
    }
    service = startWorker({
      connectionString: url,
      concurrency,
      once: values.once,
      onEvent,
      ...(metrics ? { metrics } : {}),
      ...(startupTimeout !== undefined ? { startupTimeoutMs: startupTimeout * 1000 } : {}),
    });
    if (metricsPort !== undefined && metrics) {
      const svc = service;
      health = await startHealthServer({
        port: metricsPort,
        ...(values['metrics-host'] ? { host: values['metrics-host'] } : {}),
        metrics,
        checkDatabase: () => svc.checkDatabase(),
      });
      onEvent({
        level: 'info', event: 'metrics_listening',
        msg: `serving /metrics, /health/live and /health/ready on port ${health.port}`, port: health.port,
      });
    }
    // A log reader that went away (EPIPE on stdout) is a reason to stop, like graphile-worker does.
    // Under npx / npm exec (npm_command=exec) a SIGTERM ends npm but does not reach this process
    // (npm runs it through a shell that does not pass the signal on): when the process that
    // started it is gone, the worker stops as if it had received the signal. Elsewhere a changed
    // parent means nothing (nohup, a daemonising shell), so it is only watched under npm.
    const parent = process.ppid;
    const underNpm = process.env.npm_command === 'exec';
    const pipeWatch = setInterval(() => {
      if (stdoutGone()) service?.stop('EPIPE on stdout');
      if (underNpm && process.ppid !== parent) service?.stop('npx/npm exec ended (SIGTERM to npm)');
    }, 500);
    pipeWatch.unref();
    if (requested) service.stop(requested);
    const summary = await service.done;
    clearInterval(pipeWatch);
    if (summary.reason === 'done' && !summary.clean) return EXIT.failed;
    return EXIT.ok;
  } finally {
    await health?.close();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('unhandledRejection', onRejection);
  }
}
