// The CLI as an operator runs it (node bin/portfolio-timeseries.js, never npx), and a worker
// process whose JSON log lines a test can wait for: readiness is a log line, never a fixed sleep.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { withoutNodeOptions } from './env.js';

export const bin = fileURLToPath(new URL('../../bin/portfolio-timeseries.js', import.meta.url));

/**
 * `[command, args]` running the CLI as an operator would: plain node, without the loaders tap
 * puts into NODE_OPTIONS (they cost a second or more per start).
 */
export function cliCommand(args: string[]): [string, string[]] {
  return withoutNodeOptions(process.execPath, [bin, ...args]);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function cli(args: string[], env: Record<string, string | undefined>, timeoutMs = 60_000): CliResult {
  const merged: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  }
  const [cmd, argv] = cliCommand(args);
  const r = spawnSync(cmd, argv, { env: merged, encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface LogLine {
  time: string;
  level: string;
  event: string;
  msg: string;
  [k: string]: unknown;
}

export interface WorkerProcess {
  child: ChildProcess;
  lines: LogLine[];
  stderr(): string;
  /** Resolves with the first log line (already seen or to come) that matches. */
  waitFor(match: (l: LogLine) => boolean, timeoutMs?: number, what?: string): Promise<LogLine>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

/** Start `worker ...args --log-format json` with DATABASE_URL = url. */
export function startWorkerProcess(url: string, args: string[] = [], env: Record<string, string> = {}): WorkerProcess {
  const [cmd, argv] = cliCommand(['worker', '--log-format', 'json', ...args]);
  const child = spawn(cmd, argv, {
    env: { ...process.env, DATABASE_URL: url, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  const waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let buffer = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const text = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { time: '', level: 'unparsed', event: 'unparsed', msg: text };
      }
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.match(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr!.on('data', (d) => { stderr += String(d); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    kill: (signal = 'SIGTERM') => { if (child.exitCode === null && child.signalCode === null) child.kill(signal); },
    waitFor(match, timeoutMs = 60_000, what = 'a log line') {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise<LogLine>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms; log:\n${lines.map((l) => JSON.stringify(l)).join('\n').slice(-3000)}\nstderr: ${stderr.slice(-2000)}`)), timeoutMs);
        waiters.push({ match, resolve: (l) => { clearTimeout(timer); resolve(l); } });
        void exited.then(() => {
          setTimeout(() => reject(new Error(`the worker exited before ${what}; log:\n${lines.map((l) => JSON.stringify(l)).join('\n').slice(-3000)}\nstderr: ${stderr.slice(-2000)}`)), 100);
        });
      });
    },
  };
}
