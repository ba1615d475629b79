// Per portfolio-day state (docs/contract.md section 5, `status`), its filters and its summary.
import type { Sql } from './db.js';
import type { BlockedReasonKind, DayState, DayStatus, StatusFilter, StatusSummary } from './types.js';

export const DAY_STATES: readonly DayState[] = ['undeclared', 'waiting', 'waiting_previous_day', 'blocked', 'queued', 'current'];

/**
 * The kind of one blocked reason (docs/operations.md, "Blocked reasons"), as an SQL expression
 * over `column`: a reason names items and dates, its kind is what a dashboard groups by. Used by
 * `status --summary` and by the worker's metrics (a label must not carry a date).
 */
export function reasonKindSql(column: string): string {
  return `case
    when ${column} ~ '^FX rate .* missing' then 'fx_rate_missing'
    when ${column} ~ '^BOD snapshot of .* is unvalued' then 'bod_snapshot_unvalued'
    when ${column} ~ '^snapshot of .* is unvalued' then 'snapshot_unvalued'
    when ${column} ~ '^instrument .* unknown$' then 'instrument_unknown'
    when ${column} ~ '^portfolio .* unknown$' then 'portfolio_unknown'
    when ${column} ~ '^cash flow .* differs from instrument' then 'cashflow_currency_mismatch'
    when ${column} ~ '^cash flow .* has no position' then 'cashflow_without_position'
    when ${column} ~ 'positions exist but .* declared' then 'more_positions_than_declared'
    when ${column} ~ 'does not fit numeric' then 'value_out_of_range'
    else 'other' end`;
}

export const REASON_KINDS: readonly BlockedReasonKind[] = [
  'fx_rate_missing', 'bod_snapshot_unvalued', 'snapshot_unvalued', 'instrument_unknown', 'portfolio_unknown',
  'cashflow_currency_mismatch', 'cashflow_without_position', 'more_positions_than_declared', 'value_out_of_range', 'other',
];

function args(f: StatusFilter): [string | null, string[] | null, string | null, string | null] {
  const states = f.states === undefined ? null : [...f.states];
  return [f.portfolioId ?? null, states, f.from ?? null, f.to ?? null];
}

/** The `status --json` rows, filtered in SQL (portfolio, states, date range; each optional). */
export async function readStatus(sql: Sql, filter: StatusFilter = {}): Promise<DayStatus[]> {
  const [p, states, from, to] = args(filter);
  const rows = await sql<DayStatus[]>`
    select portfolio_id, date, state, detail, has_row
    from portfolio_timeseries_engine.status(${p}::text, ${states}::text[], ${from}::date, ${to}::date)`;
  return rows.map((r) => ({ ...r }));
}

/**
 * Counts per state, the oldest day that is not current, and blocked days grouped by the kind of
 * their reason (a day with two reasons counts under both), from one evaluation of status().
 */
export async function readStatusSummary(sql: Sql, filter: Omit<StatusFilter, 'states'> = {}): Promise<StatusSummary> {
  const [p, , from, to] = args(filter);
  const [row] = await sql<{ summary: StatusSummary }[]>`
    with s as materialized (
      select * from portfolio_timeseries_engine.status(${p}::text, null, ${from}::date, ${to}::date)
    ), reasons as (
      select s.portfolio_id, s.date, r.reason, ${sql.unsafe(reasonKindSql('r.reason'))} as kind
      from s cross join lateral unnest(string_to_array(s.detail, '; ')) r(reason)
      where s.state = 'blocked'
    )
    select jsonb_build_object(
      'days', (select count(*) from s),
      'portfolios', (select count(distinct portfolio_id) from s),
      'states', (select coalesce(jsonb_object_agg(state, n), '{}') from (select state, count(*) as n from s group by state) c),
      'oldest_not_current', (select to_jsonb(o) from (select portfolio_id, date, state, detail from s
                             where state <> 'current' order by date, portfolio_id limit 1) o),
      'blocked', (select coalesce(jsonb_agg(b order by b.days desc, b.reason), '[]') from (
                    select kind as reason, count(distinct (portfolio_id, date)) as days,
                           count(distinct portfolio_id) as portfolios, min(reason) as example
                    from reasons group by kind) b)
    ) as summary`;
  const summary = row!.summary;
  const states = Object.fromEntries(DAY_STATES.map((s) => [s, Number(summary.states[s] ?? 0)])) as Record<DayState, number>;
  return { ...summary, states };
}
