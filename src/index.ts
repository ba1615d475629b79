// portfolio-timeseries: the library surface (docs/contract.md section 5).
export { Decimal } from './decimal.js';
export { connect, type Sql } from './db.js';
export { migrate, migrationsFolder } from './migrate.js';
export { taskList, crontab, DRAIN_TASK, COMPUTE_TASK, SWEEP_TASK } from './tasks.js';
export { drain, computePortfolio, fanOut, type QueryClient, type DrainResult, type PortfolioRun } from './drain.js';
export { runWorker, runWorkerOnce, sweep } from './worker.js';
export { declarePortfolioDay, sealPortfolioDay } from './manifest.js';
export { readPortfolioTimeseries, readPositionTimeseries } from './readers.js';
export { readReturns, readMoneyWeightedReturn, readRisk, readPositionReturns, resolveRange, type Queryable } from './returns.js';
export { readStatus } from './status.js';
export type * from './types.js';
