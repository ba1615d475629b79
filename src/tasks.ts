// The graphile-worker task list. Merge it into another service's worker with
// `{ ...otherTasks, ...taskList }` and add `crontab` to that worker's crontab.
import type { JobHelpers, Task, TaskList } from 'graphile-worker';
import type { ComputeResult } from './types.js';

export const COMPUTE_TASK = 'portfolio_timeseries:compute_portfolio';
export const SWEEP_TASK = 'portfolio_timeseries:sweep';

/** The safety-net sweep, every minute (graphile-worker crontab syntax). */
export const crontab = `* * * * * ${SWEEP_TASK} ?fill=2m\n`;

// A deadlock or serialisation failure with a producer's transaction is retried at once rather
// than left to graphile-worker's exponential back-off: the work is ready now.
const RETRYABLE = new Set(['40P01', '40001']);

async function withRetry<T>(helpers: JobHelpers, what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (attempt >= 5 || !code || !RETRYABLE.has(code)) throw error;
      helpers.logger.info(`${what}: ${code} on attempt ${attempt}, retrying`);
    }
  }
}

const computePortfolio: Task = async (payload, helpers) => {
  const portfolioId = (payload as { portfolio_id?: unknown } | null)?.portfolio_id;
  if (typeof portfolioId !== 'string' || portfolioId === '') {
    throw new Error(`${COMPUTE_TASK}: payload must be {"portfolio_id": "<id>"}, got ${JSON.stringify(payload)}`);
  }
  const result = await withRetry(helpers, `portfolio ${portfolioId}`, () =>
    helpers.withPgClient(async (client) => {
      const { rows } = await client.query<{ r: ComputeResult }>(
        'select portfolio_timeseries_engine.compute_portfolio($1) as r',
        [portfolioId],
      );
      return rows[0]?.r;
    }),
  );
  helpers.logger.debug(`computed ${JSON.stringify(result)}`);
};

const sweep: Task = async (_payload, helpers) => {
  const count = await helpers.withPgClient(async (client) => {
    const { rows } = await client.query<{ n: number }>('select portfolio_timeseries_engine.sweep() as n');
    return rows[0]?.n ?? 0;
  });
  if (count > 0) helpers.logger.info(`sweep re-enqueued ${count} portfolio(s)`);
};

export const taskList: TaskList = {
  [COMPUTE_TASK]: computePortfolio,
  [SWEEP_TASK]: sweep,
};
