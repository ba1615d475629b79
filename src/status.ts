// Per portfolio-day state (docs/contract.md section 5, `status`).
import type { Sql } from './db.js';
import type { DayStatus } from './types.js';

export async function readStatus(sql: Sql, options: { portfolioId?: string } = {}): Promise<DayStatus[]> {
  const rows = await sql<DayStatus[]>`
    select portfolio_id, date, state, detail, has_row
    from portfolio_timeseries_engine.status(${options.portfolioId ?? null}::text)`;
  return rows.map((r) => ({ ...r }));
}
