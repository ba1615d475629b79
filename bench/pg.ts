// Database plumbing for the benchmark: throwaway databases cloned from the migrated template (or
// from a database a figure prepared once), COPY loading, planner statistics on and off, and the
// engine's function-level timings (pg_stat_user_functions).
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import postgres from 'postgres';
import { migrate } from '../src/migrate.js';
import { databaseUrl, serverUrl } from '../test/helpers/db.js';
import {
  copyText, FX_COLUMNS, INSTRUMENT_COLUMNS, PORTFOLIO_COLUMNS, TABLES,
  type Book, type BookDay, type InputTable, type PortfolioDay,
} from './book.js';

export type Pg = postgres.Sql<Record<string, never>>;

export interface BenchDb {
  name: string;
  url: string;
}

function admin(): postgres.Sql {
  return postgres(serverUrl, { max: 1, onnotice: () => {} });
}

export function benchDbName(label: string): string {
  return `pt_bench_${label}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

/**
 * The bench databases of one run: the template it clones and every database it created and has
 * not dropped yet (dropped together at the end, or on a signal).
 */
export class Databases {
  static readonly open = new Set<Databases>();
  private readonly live = new Map<string, BenchDb>();

  constructor() {
    Databases.open.add(this);
  }

  /**
   * The template the bench clones: PT_TEMPLATE_DB when set (built by `npm run pretest`), else a
   * template migrated now from this checkout's migrations (dropped with the other databases).
   */
  async template(log: (m: string) => void): Promise<BenchDb> {
    const named = process.env.PT_TEMPLATE_DB;
    const sql = admin();
    try {
      if (named) {
        const [row] = await sql`select 1 as ok from pg_database where datname = ${named}`;
        if (!row) throw new Error(`PT_TEMPLATE_DB=${named} does not exist: build it with npm run pretest, or unset PT_TEMPLATE_DB`);
        return { name: named, url: databaseUrl(named) };
      }
      const name = benchDbName('template');
      await sql.unsafe(`create database "${name}"`);
      const db = { name, url: databaseUrl(name) };
      this.live.set(name, db);
      log(`migrating a template database ${name} (set PT_TEMPLATE_DB to reuse one)`);
      await migrate(db.url, { logger: { error: (m) => log(m), warn: () => {}, info: () => {}, debug: () => {} } });
      return db;
    } finally {
      await sql.end();
    }
  }

  /**
   * A new database cloned from `source` (the template, or a database a figure prepared; nobody may
   * be connected to it). Autovacuum is off on every table unless `autovacuum` is set, so planner
   * statistics exist only where the bench ANALYZEs (docs/performance.md, figure 5); function
   * timing is on.
   */
  async clone(source: BenchDb, label: string, options: { autovacuum?: boolean } = {}): Promise<BenchDb> {
    const name = benchDbName(label);
    const sql = admin();
    try {
      await sql.unsafe(`create database "${name}" template "${source.name}"`);
      await sql.unsafe(`alter database "${name}" set track_functions = 'all'`);
    } finally {
      await sql.end();
    }
    const db = { name, url: databaseUrl(name) };
    this.live.set(name, db);
    if (options.autovacuum) return db;
    const s = session(db.url);
    try {
      const tables = await s<{ name: string }[]>`
        select format('%I.%I', n.nspname, c.relname) as name
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'm') and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
          and n.nspname not like 'pg_temp%'
          and not coalesce(c.reloptions @> array['autovacuum_enabled=false'], false)`;
      for (const { name: t } of tables) {
        await s.unsafe(`alter table ${t} set (autovacuum_enabled = false, toast.autovacuum_enabled = false)`);
      }
    } finally {
      await s.end();
    }
    return db;
  }

  async drop(db: BenchDb): Promise<void> {
    const sql = admin();
    try {
      await sql.unsafe(`drop database if exists "${db.name}" with (force)`);
    } finally {
      await sql.end();
    }
    this.live.delete(db.name);
  }

  /** Drop every database of this run (with `keep`, only say which are left). */
  async dropAll(log: (m: string) => void, keep = false): Promise<void> {
    if (keep) {
      if (this.live.size > 0) log(`kept databases: ${[...this.live.keys()].join(', ')}`);
    } else {
      for (const db of [...this.live.values()]) {
        await this.drop(db).catch((e: unknown) => log(`drop ${db.name}: ${String(e)}`));
      }
    }
    Databases.open.delete(this);
  }

  /** Every run's databases (on SIGINT/SIGTERM). */
  static async dropEverything(log: (m: string) => void, keep = false): Promise<void> {
    for (const dbs of [...Databases.open]) await dbs.dropAll(log, keep);
  }
}

/**
 * TCP socket with Nagle's algorithm off. postgres.js does not set TCP_NODELAY, and a COPY ends
 * with a small CopyDone write right after the data: with Nagle on it waits for the server's
 * delayed ACK, about 40 ms per COPY statement (measured here: 45 ms per COPY with Nagle, 1 ms
 * without). That is client plumbing, not engine cost, so the benchmark switches it off.
 */
function noDelaySocket(options: { host: string[]; port: number[] }): net.Socket {
  const socket = net.connect(options.port[0] ?? 5432, options.host[0] ?? '127.0.0.1');
  socket.setNoDelay(true);
  return socket;
}

/**
 * One session (max 1): every statement runs on the same connection, in order, so a COPY's
 * implicit transaction has committed before the next statement starts. `replica` disables all
 * ordinary triggers for the session (CHECK constraints still apply).
 */
export function session(
  url: string,
  options: { replica?: boolean; onnotice?: (notice: postgres.Notice) => void } = {},
): Pg {
  return postgres(url, {
    max: 1,
    onnotice: options.onnotice ?? (() => {}),
    connection: options.replica ? { session_replication_role: 'replica' } : {},
    socket: noDelaySocket,
    idle_timeout: 0,
  } as postgres.Options<Record<string, never>>) as unknown as Pg;
}

/** One COPY statement (its own transaction unless one is open) streaming `chunks`. */
export async function copyIn(sql: Pg, table: string, columns: string[], chunks: Iterable<string> | string): Promise<void> {
  const stream = await sql.unsafe(`copy ${table} (${columns.join(', ')}) from stdin`).writable();
  await pipeline(Readable.from(typeof chunks === 'string' ? [chunks] : chunks), stream);
}

/** Reference data: portfolios, instruments, FX rates (one COPY each). */
export async function loadReference(sql: Pg, book: Book): Promise<void> {
  await copyIn(sql, 'public.portfolios', PORTFOLIO_COLUMNS, book.portfolios);
  await copyIn(sql, 'public.instruments', INSTRUMENT_COLUMNS, book.instruments);
  await copyIn(sql, 'public.fx_rates', FX_COLUMNS, book.fx);
}

/** One COPY of one input table for these days (and portfolios). */
export async function copyDays(
  sql: Pg, days: Iterable<BookDay>, table: InputTable, keep?: (p: PortfolioDay) => boolean,
): Promise<void> {
  await copyIn(sql, TABLES[table].table, TABLES[table].columns, copyText(days, table, keep));
}

/** The backfill load: one COPY per input table, snapshots, then cash flows, then manifests. */
export async function copyAll(sql: Pg, days: BookDay[], keep?: (p: PortfolioDay) => boolean): Promise<void> {
  await copyDays(sql, days, 'snapshots', keep);
  await copyDays(sql, days, 'cashflows', keep);
  await copyDays(sql, days, 'manifests', keep);
}

/** ANALYZE every table of the database (planner statistics as after autovacuum caught up). */
export async function analyzeAll(url: string): Promise<number> {
  const sql = session(url);
  const t = performance.now();
  try {
    await sql`analyze`;
  } finally {
    await sql.end();
  }
  return performance.now() - t;
}

/** Tables that have planner statistics or were analysed by autovacuum (none in a no-stats run). */
export async function statisticsPresent(url: string): Promise<{ analysedTables: string[]; autoAnalysed: string[] }> {
  const sql = session(url);
  try {
    const analysed = await sql<{ name: string }[]>`
      select distinct format('%I.%I', n.nspname, c.relname) as name
      from pg_statistic s join pg_class c on c.oid = s.starelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname in ('public', 'portfolio_timeseries_engine', 'graphile_worker')`;
    const auto = await sql<{ name: string }[]>`
      select format('%I.%I', schemaname, relname) as name from pg_stat_user_tables
      where last_autoanalyze is not null or last_autovacuum is not null`;
    return { analysedTables: analysed.map((r) => r.name), autoAnalysed: auto.map((r) => r.name) };
  } finally {
    await sql.end();
  }
}

export interface FunctionStat {
  funcname: string;
  calls: number;
  total_ms: number;
  self_ms: number;
}

/**
 * pg_stat_user_functions of the database. A backend flushes its counters when it exits (while it
 * lives, at most once a second and only when idle), so this waits (up to `waitMs`) until no other
 * session is connected to the database: call it after the sessions of interest have been closed.
 */
export async function functionStats(url: string, waitMs = 5000): Promise<FunctionStat[]> {
  const sql = session(url);
  try {
    const deadline = performance.now() + waitMs;
    for (;;) {
      const [r] = await sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
      if (r!.n === 0 || performance.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const rows = await sql<{ funcname: string; calls: string; total_ms: number; self_ms: number }[]>`
      select funcname, calls::text as calls, total_time::float8 as total_ms, self_time::float8 as self_ms
      from pg_stat_user_functions
      where schemaname in ('portfolio_timeseries_engine', 'public')
      order by total_time desc`;
    return rows.map((r) => ({ funcname: r.funcname, calls: Number(r.calls), total_ms: r.total_ms, self_ms: r.self_ms }));
  } finally {
    await sql.end();
  }
}
