// Cleanup that runs whatever way the demo ends: normal end, error, Ctrl-C (SIGINT), SIGTERM or
// SIGHUP (terminal closed). Steps run last-registered first, once.
type Step = () => Promise<void> | void;

const steps: Step[] = [];
let running: Promise<void> | undefined;
let interruptedBy: NodeJS.Signals | undefined;

/** Register `step`; returns a function that runs it now (and unregisters it). */
export function onCleanup(step: Step): () => Promise<void> {
  steps.push(step);
  return async () => {
    const i = steps.indexOf(step);
    if (i >= 0) {
      steps.splice(i, 1);
      await step();
    }
  };
}

export function cleanupAll(): Promise<void> {
  running ??= (async () => {
    while (steps.length > 0) {
      const step = steps.pop()!;
      try {
        await step();
      } catch (error) {
        process.stderr.write(`cleanup: ${(error as Error).message}\n`);
      }
    }
  })();
  return running;
}

/** The signal that interrupted the run, if any (the main flow then stays quiet about its errors). */
export const interrupted = (): NodeJS.Signals | undefined => interruptedBy;

const EXIT_CODES: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

/**
 * Clean up, then exit, on: SIGINT/SIGTERM/SIGHUP (exit 128+n, after `beforeCleanup`, e.g. stopping
 * the progress bar); stdout or stderr closed by the reader (`npm run demo | head`: EPIPE would
 * otherwise crash the process with the server still running); an uncaught error (exit 1).
 */
export function cleanUpOnSignals(beforeCleanup: () => void = () => {}): void {
  const stop = (reason: NodeJS.Signals | 'EPIPE' | 'error', code: number, message?: string) => {
    if (interruptedBy) return; // a second Ctrl-C while cleaning up: keep cleaning up
    interruptedBy = reason === 'EPIPE' || reason === 'error' ? 'SIGPIPE' : reason;
    beforeCleanup();
    if (message) {
      try {
        process.stderr.write(message);
      } catch {
        // stderr is gone too
      }
    }
    void cleanupAll().finally(() => process.exit(code));
  };
  for (const signal of Object.keys(EXIT_CODES) as NodeJS.Signals[]) {
    process.on(signal, () => stop(signal, EXIT_CODES[signal]!, `\n${signal}: stopping and removing the demo's temporary files...\n`));
  }
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') stop('EPIPE', 141);
      else stop('error', 1);
    });
  }
  process.on('uncaughtException', (error) => stop('error', 1, `demo failed: ${error.stack ?? String(error)}\n`));
  process.on('unhandledRejection', (error) => stop('error', 1, `demo failed: ${(error as Error)?.stack ?? String(error)}\n`));
}
