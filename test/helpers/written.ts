// "Exactly the affected work", measured by what changed in the outputs, not by counters the job
// keeps about itself: the engine rewrites every row it recomputes (updated_at = the job's
// transaction time), so the rows written after a mark are the work a change caused.
import type { Sql } from '../../src/db.js';

export interface Written {
  /** Portfolio rows inserted or rewritten, by date. */
  portfolio: string[];
  /** Position rows inserted or rewritten, as `security date`. */
  position: string[];
  /** Portfolio rows removed, by date. */
  portfolioRemoved: string[];
  /** Position rows removed, as `security date`. */
  positionRemoved: string[];
}

export interface Mark {
  at: string;
  portfolioKeys: Set<string>;
  positionKeys: Set<string>;
}

async function keys(sql: Sql, portfolioId: string): Promise<{ portfolio: Set<string>; position: Set<string> }> {
  const pf = await sql<{ k: string }[]>`select date::text as k from portfolio_timeseries where portfolio_id = ${portfolioId}`;
  const pos = await sql<{ k: string }[]>`
    select security_id || ' ' || date::text as k from position_timeseries where portfolio_id = ${portfolioId}`;
  return { portfolio: new Set(pf.map((r) => r.k)), position: new Set(pos.map((r) => r.k)) };
}

/** Remember the outputs of a portfolio now. */
export async function mark(sql: Sql, portfolioId: string): Promise<Mark> {
  const [row] = await sql<{ at: string }[]>`select clock_timestamp()::text as at`;
  const k = await keys(sql, portfolioId);
  return { at: row!.at, portfolioKeys: k.portfolio, positionKeys: k.position };
}

/** The output rows of the portfolio written or removed since the mark. */
export async function writtenSince(sql: Sql, portfolioId: string, m: Mark): Promise<Written> {
  const pf = await sql<{ k: string }[]>`
    select date::text as k from portfolio_timeseries
    where portfolio_id = ${portfolioId} and updated_at > ${m.at}::timestamptz order by date`;
  const pos = await sql<{ k: string }[]>`
    select security_id || ' ' || date::text as k from position_timeseries
    where portfolio_id = ${portfolioId} and updated_at > ${m.at}::timestamptz order by date, security_id`;
  const now = await keys(sql, portfolioId);
  return {
    portfolio: pf.map((r) => r.k),
    position: pos.map((r) => r.k),
    portfolioRemoved: [...m.portfolioKeys].filter((k) => !now.portfolio.has(k)).sort(),
    positionRemoved: [...m.positionKeys].filter((k) => !now.position.has(k)).sort(),
  };
}

/** A Written with the given rows and nothing else. */
export function written(v: Partial<Written>): Written {
  return { portfolio: [], position: [], portfolioRemoved: [], positionRemoved: [], ...v };
}
