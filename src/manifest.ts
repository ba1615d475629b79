// Declaring a portfolio-day complete (docs/contract.md section 2, "Declaration of completeness").
import type { Sql } from './db.js';
import type { IsoDate } from './types.js';

/** Declare that `portfolioId` holds `expectedCount` positions on `date` (insert or update). */
export async function declarePortfolioDay(
  sql: Sql,
  portfolioId: string,
  date: IsoDate,
  expectedCount: number,
): Promise<void> {
  if (!Number.isInteger(expectedCount) || expectedCount < 0) {
    throw new RangeError(
      `manifest (portfolio ${portfolioId}, ${date}): expected_count must be a whole number >= 0, got ${expectedCount}`,
    );
  }
  await sql`
    insert into public.daily_aggregation_manifest (portfolio_id, aggregation_date, expected_count)
    values (${portfolioId}, ${date}, ${expectedCount})
    on conflict (portfolio_id, aggregation_date) do update set expected_count = excluded.expected_count`;
}

/** Declare `date` complete with the positions that have an effective snapshot now; returns that count. */
export async function sealPortfolioDay(sql: Sql, portfolioId: string, date: IsoDate): Promise<number> {
  const [row] = await sql<{ count: number }[]>`
    select public.seal_portfolio_day(${portfolioId}, ${date}::date) as count`;
  return row?.count ?? 0;
}
