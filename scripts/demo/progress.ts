// Progress on stderr: a bar redrawn in place on a terminal; plain lines (every 10%) otherwise, so
// a log file or CI output stays readable. stdout is left to the results.
const WIDTH = 30;

export interface Progress {
  /** `done` of `total` units are finished; `note` is shown after the count. */
  update(done: number, note?: string): void;
  /** Finish the bar with a final line (showing the last `update`, which may be short of total). */
  finish(note?: string): void;
  /** Print a message above the bar. */
  log(message: string): void;
  /** Remove the bar without a final line (interrupted). */
  abort(): void;
}

export function progress(label: string, total: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = stream.isTTY === true;
  const started = Date.now();
  let lastDraw = 0;
  let lastDecile = -1;
  let current = 0;
  let currentNote = '';
  let finished = false;

  const line = (done: number, note: string) => {
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(fraction * WIDTH);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    return `${label.padEnd(10)} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ${done}/${total}  ${seconds}s${note ? `  ${note}` : ''}`;
  };
  const draw = () => {
    const text = line(current, currentNote);
    const columns = stream.columns ?? 120;
    stream.write(`\r\x1b[2K${text.slice(0, columns - 1)}`);
  };

  return {
    update(done, note = '') {
      if (finished) return;
      current = done;
      currentNote = note;
      if (tty) {
        const now = Date.now();
        if (now - lastDraw >= 80 || done >= total) {
          lastDraw = now;
          draw();
        }
      } else {
        const decile = total > 0 ? Math.floor((10 * Math.min(done, total)) / total) : 10;
        if (decile > lastDecile && decile < 10) {
          lastDecile = decile;
          stream.write(`${line(done, note)}\n`);
        }
      }
    },
    finish(note = '') {
      if (finished) return;
      finished = true;
      currentNote = note;
      stream.write(tty ? `\r\x1b[2K${line(current, note)}\n` : `${line(current, note)}\n`);
    },
    log(message) {
      if (tty && !finished) {
        stream.write(`\r\x1b[2K${message}\n`);
        draw();
      } else {
        stream.write(`${message}\n`);
      }
    },
    abort() {
      if (finished) return;
      finished = true;
      if (tty) stream.write('\r\x1b[2K');
    },
  };
}
