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

/** Which days `status` returns (each field optional; all of them: every day). */
export interface StatusFilter {
  portfolioId?: string;
  /** Only days in one of these states. */
  states?: readonly DayState[];
  /** Only days on or after `from` and on or before `to`. */
  from?: IsoDate;
  to?: IsoDate;
}

/** What a blocked reason is about (`status --summary`, metric `portfolio_timeseries_blocked_days`). */
export type BlockedReasonKind =
  | 'fx_rate_missing'
  | 'bod_snapshot_unvalued'
  | 'snapshot_unvalued'
  | 'instrument_unknown'
  | 'portfolio_unknown'
  | 'cashflow_currency_mismatch'
  | 'cashflow_without_position'
  | 'more_positions_than_declared'
  | 'value_out_of_range'
  | 'other';

/** `status --summary --json`. */
export interface StatusSummary {
  /** Portfolio-days and portfolios reported. */
  days: number;
  portfolios: number;
  /** Days per state (every state present, 0 when none). */
  states: Record<DayState, number>;
  /** The earliest day (then the first portfolio) whose state is not `current`; null when all are. */
  oldest_not_current: { portfolio_id: string; date: IsoDate; state: DayState; detail: string | null } | null;
  /** Blocked days per kind of reason, most days first; `example` is one full reason of that kind. */
  blocked: { reason: BlockedReasonKind; days: number; portfolios: number; example: string }[];
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

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/**
 * One structured line of the worker's log (docs/operations.md, "Log lines"): `event` names what
 * happened (`worker_started`, `portfolio_computed`, `job_failed`, ...), `msg` says it in words,
 * the other fields are the event's own (portfolio_id, job_id, duration_ms, error, ...).
 */
export interface WorkerEvent {
  level: LogLevel;
  event: string;
  msg: string;
  [field: string]: unknown;
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
  /**
   * Structured events: start and stop, one per computed portfolio, per job, per error, progress
   * of long jobs. Default: each event's `msg` to `logger` at the event's level.
   */
  onEvent?: (event: WorkerEvent) => void;
  /**
   * How long to keep retrying (with back-off) while the database cannot be reached at start, in
   * ms. Default: for ever for a long-running worker, 60 s for `runWorkerOnce`.
   */
  startupTimeoutMs?: number;
  /** A progress event during a long job every this many ms. Default 5000. */
  progressIntervalMs?: number;
}

/** What a worker did, and what it left (the `worker_stopped` line; `worker --once` exits 1 unless clean). */
export interface WorkerSummary {
  /** Why it stopped: all ready work done (`done`, --once), a signal or stop() (`stopped`). */
  reason: 'done' | 'stopped';
  /** graphile-worker jobs this worker ran, and how many of those failed (each is retried later). */
  jobs: number;
  failedJobs: number;
  /** Portfolio rows computed (stage 2), position rows computed (stage 1), BOD-only updates. */
  portfolioDays: number;
  positionDays: number;
  bodUpdates: number;
  /** Deadlock and serialization-failure retries inside jobs. */
  retries: number;
  /** At the stop: engine jobs waiting for a retry after a failure (graphile_worker.jobs.last_error set). */
  jobsAwaitingRetry: number;
  /** At the stop: portfolios whose last computation failed, with the error (portfolio_job). */
  failedPortfolios: { portfolio_id: string; error: string | null; retry_at: string | null }[];
  /** At the stop: portfolios with changes not applied yet, and reference changes not fanned out. */
  pendingPortfolios: number;
  pendingReferenceChanges: number;
  /** True when nothing failed and no ready work is left (what `worker --once` exits 0 for). */
  clean: boolean;
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
