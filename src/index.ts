// portfolio-timeseries: the library surface (docs/contract.md section 5).
export { Decimal } from './decimal.js';
export { connect, type Sql } from './db.js';
export { migrate, migrationsFolder } from './migrate.js';
export { grantRoles, DEFAULT_ROLES } from './roles.js';
export { taskList, crontab, makeTaskList, DRAIN_TASK, COMPUTE_TASK, SWEEP_TASK, type TaskHooks } from './tasks.js';
export { drain, computePortfolio, fanOut, type QueryClient, type DrainResult, type PortfolioRun } from './drain.js';
export { runWorker, runWorkerOnce, startWorker, sweep, type StartWorkerOptions, type WorkerService } from './worker.js';
export { declarePortfolioDay, sealPortfolioDay } from './manifest.js';
export { readPortfolioTimeseries, readPositionTimeseries } from './readers.js';
export { readReturns, readMoneyWeightedReturn, readRisk, readPositionReturns, resolveRange, type Queryable } from './returns.js';
export { readStatus, readStatusSummary } from './status.js';
export { probeDatabase } from './probe.js';
export { ConfigError, DatabaseUnavailableError, NotMigratedError, UsageError, EXIT } from './errors.js';
export { VERSION } from './version.js';
export type * from './types.js';
