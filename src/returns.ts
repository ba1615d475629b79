// Typed readers of the read side (sql/13_returns.sql): time-weighted and money-weighted returns,
// risk, and position returns. The SQL computes everything; these only resolve a named period,
// read one consistent snapshot and type the result (Decimal, never number).
import type postgres from 'postgres';
import type { Sql } from './db.js';
import { Decimal } from './decimal.js';
import type {
  DailyReturn, IsoDate, MoneyWeightedReturn, PositionTimeWeightedReturn, ReturnBasis, ReturnOptions, ReturnRange,
  RiskMeasures, RiskOptions, TimeWeightedReturn,
} from './types.js';

/** A pool, or a transaction already open on it (then the caller's snapshot is used). */
export type Queryable = Sql | postgres.TransactionSql<{ numeric: Decimal }>;

type Row = Record<string, unknown>;

/**
 * Run `fn` in one REPEATABLE READ snapshot, so that a summary and its days (two statements) can
 * never straddle a recompute. Inside a caller's transaction, its snapshot is used as it is.
 */
async function inSnapshot<T>(sql: Queryable, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  if ('savepoint' in sql) return fn(sql);
  return (await sql.begin('isolation level repeatable read read only', (tx) => fn(tx))) as T;
}

/** The explicit range of a `ReturnRange` (a named period is resolved by the SQL, public.portfolio_period). */
export async function resolveRange(sql: Queryable, portfolioId: string, range: ReturnRange): Promise<{ from: IsoDate; to: IsoDate }> {
  if ('period' in range) {
    const [row] = await sql<{ from: IsoDate; to: IsoDate }[]>`
      select period_from::text as from, period_to::text as to
      from public.portfolio_period(${portfolioId}, ${range.period}, ${range.asOf}::date)`;
    return row!;
  }
  return { from: range.from, to: range.to };
}

const dec = (v: unknown): Decimal | null => (v === null || v === undefined ? null : (v as Decimal));

function dailyRows(rows: Row[]): DailyReturn[] {
  return rows.map((r) => ({
    date: r.date as IsoDate,
    dailyReturn: r.daily_return as Decimal,
    cumulativeReturn: r.cumulative_return as Decimal,
    zeroBase: r.zero_base as boolean,
  }));
}

/**
 * Time-weighted return of a portfolio (public.portfolio_twr and portfolio_twr_daily): the summary
 * and every usable day, with the days that are not current listed in `missingDays`.
 */
export async function readReturns(
  sql: Queryable,
  portfolioId: string,
  range: ReturnRange,
  options: ReturnOptions = {},
): Promise<TimeWeightedReturn> {
  const basis: ReturnBasis = options.basis ?? 'GROSS';
  return inSnapshot(sql, async (tx) => {
    const { from, to } = await resolveRange(tx, portfolioId, range);
    const [s] = await tx<Row[]>`
      select portfolio_id, range_from::text, range_to::text, basis, days, day_count, twr, twr_annualised,
             zero_base_days::text[] as zero_base_days, missing_days::text[] as missing_days
      from public.portfolio_twr(${portfolioId}, ${from}::date, ${to}::date, ${basis})`;
    const days = await tx<Row[]>`
      select date::text, daily_return, cumulative_return, zero_base
      from public.portfolio_twr_daily(${portfolioId}, ${from}::date, ${to}::date, ${basis})`;
    return {
      portfolioId,
      from: s!.range_from as IsoDate,
      to: s!.range_to as IsoDate,
      basis,
      calendarDays: s!.days as number,
      dayCount: s!.day_count as number,
      missingDays: s!.missing_days as IsoDate[],
      twr: dec(s!.twr),
      twrAnnualised: dec(s!.twr_annualised),
      zeroBaseDays: s!.zero_base_days as IsoDate[],
      days: dailyRows(days),
    };
  });
}

/** Money-weighted return (XIRR) of a portfolio over a range (public.portfolio_mwr). */
export async function readMoneyWeightedReturn(
  sql: Queryable,
  portfolioId: string,
  range: ReturnRange,
  options: ReturnOptions = {},
): Promise<MoneyWeightedReturn> {
  const basis: ReturnBasis = options.basis ?? 'GROSS';
  return inSnapshot(sql, async (tx) => {
    const { from, to } = await resolveRange(tx, portfolioId, range);
    const [s] = await tx<Row[]>`
      select range_from::text, range_to::text, days, day_count, mwr, mwr_annualised, mwr_period, reason,
             missing_days::text[] as missing_days
      from public.portfolio_mwr(${portfolioId}, ${from}::date, ${to}::date, ${basis})`;
    return {
      portfolioId,
      from: s!.range_from as IsoDate,
      to: s!.range_to as IsoDate,
      basis,
      calendarDays: s!.days as number,
      dayCount: s!.day_count as number,
      missingDays: s!.missing_days as IsoDate[],
      mwr: dec(s!.mwr),
      mwrAnnualised: dec(s!.mwr_annualised),
      mwrPeriod: dec(s!.mwr_period),
      reason: (s!.reason as string | null) ?? null,
    };
  });
}

/** Volatility, maximum drawdown, Sharpe and Sortino of a portfolio's daily returns (public.portfolio_risk). */
export async function readRisk(
  sql: Queryable,
  portfolioId: string,
  range: ReturnRange,
  options: RiskOptions = {},
): Promise<RiskMeasures> {
  const basis: ReturnBasis = options.basis ?? 'GROSS';
  const riskFreeRate = new Decimal(options.riskFreeRate ?? 0);
  return inSnapshot(sql, async (tx) => {
    const { from, to } = await resolveRange(tx, portfolioId, range);
    const [s] = await tx<Row[]>`
      select range_from::text, range_to::text, days, day_count, risk_free_daily, volatility, max_drawdown,
             drawdown_peak::text, drawdown_trough::text, sharpe, sortino, missing_days::text[] as missing_days
      from public.portfolio_risk(${portfolioId}, ${from}::date, ${to}::date, ${basis}, ${riskFreeRate.toFixed()}::numeric)`;
    return {
      portfolioId,
      from: s!.range_from as IsoDate,
      to: s!.range_to as IsoDate,
      basis,
      calendarDays: s!.days as number,
      dayCount: s!.day_count as number,
      missingDays: s!.missing_days as IsoDate[],
      riskFreeRate,
      riskFreeDaily: s!.risk_free_daily as Decimal,
      volatility: dec(s!.volatility),
      maxDrawdown: dec(s!.max_drawdown),
      drawdownPeak: (s!.drawdown_peak as IsoDate | null) ?? null,
      drawdownTrough: (s!.drawdown_trough as IsoDate | null) ?? null,
      sharpe: dec(s!.sharpe),
      sortino: dec(s!.sortino),
    };
  });
}

/**
 * Time-weighted return of one position in its local currency (public.position_twr and
 * position_twr_daily). Flows are turned to the position's side: a BUY adds to the position.
 * There is no basis: fees charged to the position are a cost of it.
 */
export async function readPositionReturns(
  sql: Queryable,
  portfolioId: string,
  securityId: string,
  range: ReturnRange,
): Promise<PositionTimeWeightedReturn> {
  return inSnapshot(sql, async (tx) => {
    const { from, to } = await resolveRange(tx, portfolioId, range);
    const [s] = await tx<Row[]>`
      select range_from::text, range_to::text, days, day_count, twr, twr_annualised,
             zero_base_days::text[] as zero_base_days, missing_days::text[] as missing_days
      from public.position_twr(${portfolioId}, ${securityId}, ${from}::date, ${to}::date)`;
    const days = await tx<Row[]>`
      select date::text, daily_return, cumulative_return, zero_base
      from public.position_twr_daily(${portfolioId}, ${securityId}, ${from}::date, ${to}::date)`;
    return {
      portfolioId,
      securityId,
      from: s!.range_from as IsoDate,
      to: s!.range_to as IsoDate,
      calendarDays: s!.days as number,
      dayCount: s!.day_count as number,
      missingDays: s!.missing_days as IsoDate[],
      twr: dec(s!.twr),
      twrAnnualised: dec(s!.twr_annualised),
      zeroBaseDays: s!.zero_base_days as IsoDate[],
      days: dailyRows(days),
    };
  });
}
