// Public types of portfolio-timeseries. Money, quantities and rates are Decimal.
import type { Decimal } from 'decimal.js';

/** An ISO calendar date, `YYYY-MM-DD`. */
export type IsoDate = string;

export interface PositionTimeseriesRow {
  portfolioId: string;
  securityId: string;
  date: IsoDate;
  epoch: number;
  bodMarketValue: Decimal;
  bodCashflowPosition: Decimal;
  eodCashflowPosition: Decimal;
  bodCashflowPortfolio: Decimal;
  eodCashflowPortfolio: Decimal;
  eodMarketValue: Decimal;
  fees: Decimal;
  quantity: Decimal;
  cost: Decimal;
  createdAt: Date;
  updatedAt: Date;
}

export interface PortfolioTimeseriesRow {
  portfolioId: string;
  date: IsoDate;
  epoch: number;
  bodMarketValue: Decimal;
  bodCashflow: Decimal;
  eodCashflow: Decimal;
  eodMarketValue: Decimal;
  fees: Decimal;
  positionCount: number;
  createdAt: Date;
  updatedAt: Date;
}

export type DayState =
  | 'undeclared'
  | 'waiting'
  | 'waiting_previous_day'
  | 'blocked'
  | 'queued'
  | 'current';

/** One portfolio-day's state, as `portfolio-timeseries status --json` prints it. */
export interface DayStatus {
  portfolio_id: string;
  date: IsoDate;
  state: DayState;
  detail: string | null;
  has_row: boolean;
}

export interface DateRange {
  from?: IsoDate;
  to?: IsoDate;
}

/** What one compute job did for one portfolio. */
export interface ComputeResult {
  portfolio_id: string;
  portfolio_days: number;
  position_days: number;
  bod_updates: number;
  stopped_at?: IsoDate | null;
  stop_reason?: string | null;
}

/**
 * Where the library reports what happens (job failures, retries, migrations applied). `console`
 * fits, and so do pino and winston loggers. The library never writes to stdout.
 * Default: warnings and errors to stderr, info and debug dropped. To silence everything:
 * `{ error() {}, warn() {}, info() {}, debug() {} }`.
 */
export interface TimeseriesLogger {
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  debug(message: string): void;
}

export interface MigrateOptions {
  /** Default: warnings and errors to stderr. */
  logger?: TimeseriesLogger;
}

export interface WorkerOptions {
  /** PostgreSQL connection string; defaults to DATABASE_URL. */
  connectionString?: string;
  /** Jobs run at once (graphile-worker concurrency). Default 1. */
  concurrency?: number;
  /** Default: warnings and errors to stderr (with `verbose`, info and debug too). */
  logger?: TimeseriesLogger;
  /** With the default logger, also write info and debug (job results). Ignored with `logger`. Default false. */
  verbose?: boolean;
}

// ---------- Read side: returns and risk (issue #10) ----------

/** GROSS treats fees as the external flows they are stored as; NET counts them as a cost. */
export type ReturnBasis = 'GROSS' | 'NET';

export type ReturnPeriod = 'MTD' | 'QTD' | 'YTD' | 'SI' | '1Y' | '3Y' | '5Y';

/** An explicit range, or a named period ending on `asOf`. */
export type ReturnRange = { from: IsoDate; to: IsoDate } | { period: ReturnPeriod; asOf: IsoDate };

/** One usable day: returns are fractions (0.05 is 5%). */
export interface DailyReturn {
  date: IsoDate;
  dailyReturn: Decimal;
  cumulativeReturn: Decimal;
  /** BOD + BOD cash flow was 0: the return is 0 by convention. */
  zeroBase: boolean;
}

/** What every summary says about its range. `from` is never before the portfolio's open date. */
export interface ReturnRangeInfo {
  portfolioId: string;
  from: IsoDate;
  to: IsoDate;
  basis: ReturnBasis;
  /** Calendar days of the range, to - from + 1. */
  calendarDays: number;
  /** Usable (current) days with a row. */
  dayCount: number;
  /** Days of the range that exist but are not current (waiting, blocked, queued, undeclared...). */
  missingDays: IsoDate[];
}

export interface TimeWeightedReturn extends ReturnRangeInfo {
  /** Cumulative return over the usable days; null when there is none. */
  twr: Decimal | null;
  /** Only for ranges longer than 365 days. */
  twrAnnualised: Decimal | null;
  zeroBaseDays: IsoDate[];
  days: DailyReturn[];
}

/** A position's return has no basis: fees charged to the position are a cost of it. */
export interface PositionTimeWeightedReturn extends Omit<TimeWeightedReturn, 'basis'> {
  securityId: string;
}

export interface MoneyWeightedReturn extends ReturnRangeInfo {
  /** Annual rate (XIRR); null with `reason` when there is none. */
  mwr: Decimal | null;
  /** Equals `mwr` for ranges of at least 365 days, else null. */
  mwrAnnualised: Decimal | null;
  /** For ranges shorter than 365 days: (1 + mwr)^(days / 365) - 1, else null. */
  mwrPeriod: Decimal | null;
  reason: string | null;
}

export interface RiskMeasures extends ReturnRangeInfo {
  riskFreeRate: Decimal;
  /** (1 + riskFreeRate)^(1/252) - 1 */
  riskFreeDaily: Decimal;
  volatility: Decimal | null;
  maxDrawdown: Decimal | null;
  drawdownPeak: IsoDate | null;
  drawdownTrough: IsoDate | null;
  sharpe: Decimal | null;
  sortino: Decimal | null;
}

export interface ReturnOptions {
  /** Default GROSS. */
  basis?: ReturnBasis;
}

export interface RiskOptions extends ReturnOptions {
  /** Annual risk-free rate R as a fraction; default 0. */
  riskFreeRate?: Decimal | string;
}
