// Writing the CLI's output so that a pipe gets all of it: the CLI never calls process.exit() while
// output is buffered (it sets process.exitCode and lets the event loop end once stdout has
// drained), and a reader that closes the pipe early (`| head`) ends the output quietly.
let stdoutClosed = false;

process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') {
    stdoutClosed = true;
    return;
  }
  throw error;
});

/** True once the reader of stdout has gone away. */
export function stdoutGone(): boolean {
  return stdoutClosed;
}

/** Write `text` (a newline is added) to stdout. */
export function out(text: string): void {
  if (!stdoutClosed) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Resolves when everything written to stdout and stderr so far has been handed to the OS. */
export async function flushed(): Promise<void> {
  const flush = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => {
    if (stream === process.stdout && stdoutClosed) return resolve();
    if (!stream.writableNeedDrain) return resolve();
    stream.once('drain', resolve);
    stream.once('error', () => resolve());
    stream.once('close', () => resolve());
  });
  await Promise.all([flush(process.stdout), flush(process.stderr)]);
}
