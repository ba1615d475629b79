// Run the engine's worker until every ready day is computed, reporting how many declared days
// are current as it goes (the library's public API only: runWorker, readStatus, runWorkerOnce).
import { readStatus, runWorker, runWorkerOnce, type DayStatus, type Sql, type TimeseriesLogger } from '../../src/index.js';

export interface ComputeProgress {
  current: number;
  declared: number;
  queued: number;
}

export async function computeAll(
  sql: Sql,
  connectionString: string,
  logger: TimeseriesLogger,
  onProgress: (p: ComputeProgress) => void = () => {},
): Promise<DayStatus[]> {
  const count = (days: DayStatus[]): ComputeProgress => ({
    current: days.filter((d) => d.state === 'current').length,
    declared: days.filter((d) => d.state !== 'undeclared').length,
    queued: days.filter((d) => d.state === 'queued').length,
  });
  const runner = await runWorker({ connectionString, concurrency: 2, logger });
  try {
    for (;;) {
      const p = count(await readStatus(sql));
      onProgress(p);
      if (p.queued === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await runner.stop();
  }
  // Whatever the running worker left (nothing, normally): compute it before reporting.
  await runWorkerOnce({ connectionString, logger });
  const days = await readStatus(sql);
  onProgress(count(days));
  return days;
}
