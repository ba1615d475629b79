// The graphile-worker task list. Merge it into another service's worker with
// `{ ...otherTasks, ...taskList }` and add `crontab` to that worker's crontab.
import type { Task, TaskList } from 'graphile-worker';
import { computePortfolio, drain, type QueryClient } from './drain.js';

/** Applies every pending change (enqueued by the input triggers, one job per producer transaction). */
export const DRAIN_TASK = 'portfolio_timeseries:drain';
/** Computes one portfolio now (payload `{"portfolio_id": "P"}`), then drains what is left. */
export const COMPUTE_TASK = 'portfolio_timeseries:compute_portfolio';
/** The safety net: wakes a drain when work is pending (crontab, every minute). */
export const SWEEP_TASK = 'portfolio_timeseries:sweep';

/** The safety-net sweep, every minute (graphile-worker crontab syntax). */
export const crontab = `* * * * * ${SWEEP_TASK} ?fill=2m\n`;

const drainTask: Task = async (_payload, helpers) => {
  const result = await helpers.withPgClient((client) =>
    drain(client as unknown as QueryClient, {
      onRun: (run, ms) => helpers.logger.debug(`computed ${JSON.stringify(run)} in ${ms.toFixed(1)} ms`),
    }));
  for (const f of result.failed) {
    helpers.logger.error(`portfolio ${f.portfolio_id}: ${f.error} (retried after ${f.retry_at})`);
  }
};

const computeTask: Task = async (payload, helpers) => {
  const portfolioId = (payload as { portfolio_id?: unknown } | null)?.portfolio_id;
  if (typeof portfolioId !== 'string' || portfolioId === '') {
    throw new Error(`${COMPUTE_TASK}: payload must be {"portfolio_id": "<id>"}, got ${JSON.stringify(payload)}`);
  }
  await helpers.withPgClient(async (client) => {
    const run = await computePortfolio(client as unknown as QueryClient, portfolioId);
    helpers.logger.debug(`computed ${JSON.stringify(run)}`);
    await drain(client as unknown as QueryClient);
  });
};

const sweepTask: Task = async (_payload, helpers) => {
  const count = await helpers.withPgClient(async (client) => {
    const { rows } = await client.query<{ n: number }>('select portfolio_timeseries_engine.sweep() as n');
    return rows[0]?.n ?? 0;
  });
  if (count > 0) helpers.logger.info(`sweep: ${count} portfolio(s) with pending changes`);
};

export const taskList: TaskList = {
  [DRAIN_TASK]: drainTask,
  [COMPUTE_TASK]: computeTask,
  [SWEEP_TASK]: sweepTask,
};
