// Running the engine's jobs from the bench, and checking what they left: every declared day
// `current`, no failed job, rows equal to the plain recompute.
import { sleep } from '../src/sleep.js';
import type { Runner } from 'graphile-worker';
import type { TimeseriesLogger } from '../src/types.js';
import { runWorker, runWorkerOnce } from '../src/worker.js';
import { compareWithPlain } from './plain.js';
import { session, type Pg } from './pg.js';

/** Worker errors and warnings go to stderr, tagged; info and debug are dropped. */
export const workerLog: TimeseriesLogger = {
  error: (m) => process.stderr.write(`[bench worker] error: ${m}\n`),
  warn: (m) => process.stderr.write(`[bench worker] warning: ${m}\n`),
  info: () => {},
  debug: () => {},
};

/** `worker --once --concurrency N`: run jobs until nothing is pending. Returns the time (ms). */
export async function drainOnce(url: string, concurrency = 2): Promise<number> {
  const t = performance.now();
  await runWorkerOnce({ connectionString: url, concurrency, logger: workerLog });
  return performance.now() - t;
}

/** A long-lived worker (`runWorker`) in this process. */
export function startWorker(url: string, concurrency = 2): Promise<Runner> {
  return runWorker({ connectionString: url, concurrency, logger: workerLog });
}


/** True when nothing is pending and no declared day is dirty (every declared day is current). */
export async function allCurrent(sql: Pg): Promise<boolean> {
  const [row] = await sql<{ done: boolean }[]>`
    select not exists (select 1 from portfolio_timeseries_engine.change)
       and not exists (select 1 from portfolio_timeseries_engine.reference_change)
       and not exists (select 1 from portfolio_timeseries_engine.portfolio_day
                       where dirty and expected_count is not null) as done`;
  return row!.done;
}

/**
 * Poll (every `pollMs`, on its own session) until every declared day is current. Returns the time
 * it became so, in performance.now() terms, or throws after `timeoutMs`.
 */
export async function waitAllCurrent(url: string, options: { pollMs?: number; timeoutMs?: number } = {}): Promise<number> {
  const pollMs = options.pollMs ?? 20;
  const deadline = performance.now() + (options.timeoutMs ?? 30 * 60_000);
  const sql = session(url);
  try {
    for (;;) {
      if (await allCurrent(sql)) return performance.now();
      if (performance.now() > deadline) throw new Error(`not every declared day became current within ${options.timeoutMs} ms`);
      await sleep(pollMs);
    }
  } finally {
    await sql.end();
  }
}

export interface Verification {
  scenario: string;
  ok: boolean;
  message: string;
  states?: Record<string, number>;
}

/**
 * Every declared day is `current` (status()), one per manifest row; no job failed; and, unless
 * `plain` is false, the engine's rows equal the plain recompute (run here, untimed).
 */
export async function verify(scenario: string, url: string, options: { plain?: boolean } = {}): Promise<Verification> {
  const sql = session(url);
  const problems: string[] = [];
  let states: Record<string, number> = {};
  try {
    const stateRows = await sql<{ state: string; n: number }[]>`
      select state, count(*)::int as n from portfolio_timeseries_engine.status() group by state order by state`;
    states = Object.fromEntries(stateRows.map((r) => [r.state, r.n]));
    const [c] = await sql<{ manifests: number; failed_jobs: number; failed_portfolios: number }[]>`
      select (select count(*)::int from public.daily_aggregation_manifest) as manifests,
        (select count(*)::int from graphile_worker.jobs where last_error is not null) as failed_jobs,
        (select count(*)::int from portfolio_timeseries_engine.portfolio_job where last_error is not null) as failed_portfolios`;
    const notCurrent = Object.entries(states).filter(([s]) => s !== 'current');
    if (notCurrent.length > 0) problems.push(`days not current: ${notCurrent.map(([s, n]) => `${n} ${s}`).join(', ')}`);
    if ((states.current ?? 0) !== c!.manifests) problems.push(`${states.current ?? 0} current days for ${c!.manifests} manifest rows`);
    if (c!.failed_jobs > 0) problems.push(`${c!.failed_jobs} failed graphile-worker jobs`);
    if (c!.failed_portfolios > 0) problems.push(`${c!.failed_portfolios} portfolios whose last job failed`);
  } finally {
    await sql.end();
  }
  let plainMessage = '';
  if (options.plain !== false) {
    const check = await compareWithPlain(url);
    if (!check.ok) problems.push(check.message);
    else plainMessage = `; ${check.message}`;
  }
  return {
    scenario,
    ok: problems.length === 0,
    message: problems.length === 0 ? `${states.current ?? 0} days current${plainMessage}` : problems.join('; '),
    states,
  };
}

/** A verification that failed because the scenario itself threw. */
export function failed(scenario: string, error: unknown): Verification {
  return { scenario, ok: false, message: `error: ${(error as Error)?.message ?? String(error)}` };
}
