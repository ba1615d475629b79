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

export interface WorkerOptions {
  /** PostgreSQL connection string; defaults to DATABASE_URL. */
  connectionString?: string;
  /** Jobs run at once (graphile-worker concurrency). Default 1. */
  concurrency?: number;
  /** Log job results. Default false. */
  verbose?: boolean;
}
