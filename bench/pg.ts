// Database plumbing for the benchmark: throwaway databases cloned from the migrated template,
// COPY loading, and the engine's function-level timings (pg_stat_user_functions).
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import postgres from 'postgres';
import { databaseUrl, serverUrl, templateName } from '../test/helpers/db.js';
import {
  CASHFLOW_COLUMNS, FX_COLUMNS, INSTRUMENT_COLUMNS, MANIFEST_COLUMNS, PORTFOLIO_COLUMNS, SNAPSHOT_COLUMNS,
  type Book,
} from './book.js';

export type Pg = postgres.Sql<Record<string, never>>;

export interface BenchDb {
  name: string;
  url: string;
}

/** Clone the migrated template (PT_TEMPLATE_DB) into a new database, with function timing on. */
export async function createBenchDb(label: string): Promise<BenchDb> {
  const name = `pt_bench_${label}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}" template "${templateName}"`);
    // Per-function call counts and times for every session of this database (workers included).
    await admin.unsafe(`alter database "${name}" set track_functions = 'all'`);
  } finally {
    await admin.end();
  }
  return { name, url: databaseUrl(name) };
}

export async function dropBenchDb(db: BenchDb): Promise<void> {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists "${db.name}" with (force)`);
  } finally {
    await admin.end();
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
  } as postgres.Options<Record<string, never>>) as unknown as Pg;
}

export async function copyIn(sql: Pg, table: string, columns: string[], text: string): Promise<void> {
  if (text.length === 0) return;
  const stream = await sql.unsafe(`copy ${table} (${columns.join(', ')}) from stdin`).writable();
  await pipeline(Readable.from([text]), stream);
}

/** Reference data first: portfolios, instruments, FX rates. */
export async function loadReference(sql: Pg, book: Book, schema = 'public'): Promise<void> {
  await copyIn(sql, `${schema}.portfolios`, PORTFOLIO_COLUMNS, book.portfolios);
  await copyIn(sql, `${schema}.instruments`, INSTRUMENT_COLUMNS, book.instruments);
  await copyIn(sql, `${schema}.fx_rates`, FX_COLUMNS, book.fx);
}

export type ManifestMode = 'per-day' | 'end';

/**
 * The daily producer: for each day one COPY of its snapshots, one of its cash flows and (in
 * `per-day` mode) one of its manifest rows; in `end` mode all manifest rows at the end.
 */
export async function loadDays(
  sql: Pg, book: Book, mode: ManifestMode, schema = 'public', afterDay?: (index: number) => Promise<void>,
): Promise<void> {
  for (const [index, day] of book.days.entries()) {
    await copyIn(sql, `${schema}.daily_position_snapshots`, SNAPSHOT_COLUMNS, day.snapshots);
    await copyIn(sql, `${schema}.cashflows`, CASHFLOW_COLUMNS, day.cashflows);
    if (mode === 'per-day') await copyIn(sql, `${schema}.daily_aggregation_manifest`, MANIFEST_COLUMNS, day.manifests);
    if (afterDay) await afterDay(index);
  }
  if (mode === 'end') {
    for (const day of book.days) {
      await copyIn(sql, `${schema}.daily_aggregation_manifest`, MANIFEST_COLUMNS, day.manifests);
    }
  }
  await sql`select 1`; // the last COPY has committed
}

export interface FunctionStat {
  funcname: string;
  calls: number;
  total_ms: number;
  self_ms: number;
}

/**
 * pg_stat_user_functions of the database. Call it after every other session of the database has
 * ended: a backend flushes its counters when it exits (or at most once a second while idle).
 */
export async function functionStats(url: string): Promise<FunctionStat[]> {
  await new Promise((resolve) => setTimeout(resolve, 1200));
  const sql = session(url);
  try {
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

export interface AutoAnalyze {
  stop(): Promise<{ analyzes: number; ms: number }>;
}

/**
 * A stand-in for autovacuum's ANALYZE with a shorter naptime (default 10 s instead of 60 s): in
 * its own session, every `naptimeMs`, ANALYZE each table whose changes since its last analyze exceed autovacuum's
 * default threshold (50 rows + 10% of the table). A database in service has planner statistics;
 * a freshly cloned one gets none from autovacuum for up to a minute, and the engine's plans depend
 * on them (docs/performance.md). It competes for the CPU like autovacuum would.
 */
export function startAutoAnalyze(url: string, naptimeMs = 10_000): AutoAnalyze {
  const sql = session(url);
  let stopping = false;
  let analyzes = 0;
  let ms = 0;
  let wake: (() => void) | null = null;
  const loop = (async () => {
    while (!stopping) {
      const due = await sql<{ name: string }[]>`
        select format('%I.%I', schemaname, relname) as name
        from pg_stat_user_tables
        where schemaname in ('public', 'portfolio_timeseries_engine')
          and n_mod_since_analyze > 50 + 0.1 * greatest(n_live_tup, 0)
        order by n_mod_since_analyze desc`;
      for (const { name } of due) {
        if (stopping) break;
        const t = performance.now();
        await sql.unsafe(`analyze ${name}`);
        ms += performance.now() - t;
        analyzes++;
      }
      if (stopping) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, naptimeMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })();
  return {
    async stop() {
      stopping = true;
      wake?.();
      await loop;
      await sql.end();
      return { analyzes, ms };
    },
  };
}
