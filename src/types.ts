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
