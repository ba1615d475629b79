// Prometheus metrics of a worker (`worker --metrics-port N`, GET /metrics; every metric is listed
// in docs/operations.md). Counters and the job histogram are kept from the worker's own events;
// the gauges that describe the book (days per state, blocked days per reason, pending work, the
// oldest ready day) come from a few cheap queries on the engine's per-day state
// (portfolio_timeseries_engine.portfolio_day, change), never from status(), which checks inputs
// day by day and is far too expensive to run every scrape on a large book. Those queries run at
// most once per `cacheMs`, and a scrape never waits for them more than `waitMs`: when the
// database is slow or gone it gets the last values (and portfolio_timeseries_database_up 0).
import client from 'prom-client';
import type { QueryClient } from './drain.js';
import { DAY_STATES, REASON_KINDS, reasonKindSql } from './status.js';
import type { WorkerEvent } from './types.js';

const PREFIX = 'portfolio_timeseries_';

interface BookSnapshot {
  states: Record<string, number>;
  blocked: Record<string, number>;
  pendingPortfolios: number;
  pendingReferenceChanges: number;
  oldestDueJobAge: number;
  queryMs: number;
}

export interface MetricsOptions {
  /** Reuse book-state query results for this long (default 5000 ms). */
  cacheMs?: number;
  /** A scrape waits at most this long for fresh book state (default 2000 ms). */
  waitMs?: number;
  version?: string;
}

export class WorkerMetrics {
  readonly registry = new client.Registry();
  private readonly jobs: client.Counter<'task' | 'outcome'>;
  private readonly jobDuration: client.Histogram<'task'>;
  private readonly rows: client.Counter<'stage'>;
  private readonly portfolios: client.Counter;
  private readonly portfolioFailures: client.Counter;
  private readonly retries: client.Counter;
  private readonly staleRemoved: client.Counter;
  private readonly databaseUp: client.Gauge;
  private snapshot: BookSnapshot | null = null;
  private snapshotAt = 0;
  private refreshing: Promise<void> | null = null;
  /** When this worker first saw each portfolio with a ready day not current (or pending changes). */
  private readonly readySince = new Map<string, number>();
  private readonly cacheMs: number;
  private readonly waitMs: number;

  constructor(private readonly query: () => QueryClient | null, options: MetricsOptions = {}) {
    this.cacheMs = options.cacheMs ?? 5000;
    this.waitMs = options.waitMs ?? 2000;
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    new client.Gauge({
      name: `${PREFIX}build_info`, help: 'Always 1; the package version is a label.', labelNames: ['version'], registers,
    }).set({ version: options.version ?? 'unknown' }, 1);
    this.jobs = new client.Counter({
      name: `${PREFIX}jobs_total`, help: 'Engine jobs (graphile-worker) run by this worker, by task and outcome.',
      labelNames: ['task', 'outcome'], registers,
    });
    this.jobDuration = new client.Histogram({
      name: `${PREFIX}job_duration_seconds`, help: 'Duration of engine jobs run by this worker.',
      labelNames: ['task'], buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900], registers,
    });
    this.rows = new client.Counter({
      name: `${PREFIX}rows_written_total`,
      help: 'Output rows computed by this worker: stage "position" (position_timeseries), "portfolio" (portfolio_timeseries), "portfolio_bod" (BOD-only updates of a portfolio row).',
      labelNames: ['stage'], registers,
    });
    this.portfolios = new client.Counter({
      name: `${PREFIX}portfolio_runs_total`, help: 'Portfolio computations (one portfolio in one batch) by this worker.', registers,
    });
    this.portfolioFailures = new client.Counter({
      name: `${PREFIX}portfolio_failures_total`,
      help: 'Portfolio computations that failed (recorded in portfolio_job, retried after a back-off).', registers,
    });
    this.retries = new client.Counter({
      name: `${PREFIX}transaction_retries_total`,
      help: 'Job transactions retried after a deadlock (40P01) or serialization failure (40001).', registers,
    });
    this.staleRemoved = new client.Counter({
      name: `${PREFIX}stale_jobs_removed_total`, help: "Engine job rows left locked by a dead worker, removed by this worker.", registers,
    });
    this.databaseUp = new client.Gauge({
      name: `${PREFIX}database_up`, help: '1 when the last query of the database succeeded, else 0.', registers,
    });
    const book = this;
    new client.Gauge({
      name: `${PREFIX}portfolio_days`, help: 'Portfolio-days per state, from the engine state of the last jobs (changes not applied yet are counted in pending_portfolios).',
      labelNames: ['state'], registers,
      async collect() {
        const s = await book.book();
        for (const state of DAY_STATES) this.set({ state }, s?.states[state] ?? 0);
      },
    });
    new client.Gauge({
      name: `${PREFIX}blocked_days`, help: 'Blocked portfolio-days per kind of reason (a day with two reasons counts under both).',
      labelNames: ['reason'], registers,
      async collect() {
        const s = await book.book();
        for (const reason of REASON_KINDS) this.set({ reason }, s?.blocked[reason] ?? 0);
      },
    });
    new client.Gauge({
      name: `${PREFIX}pending_portfolios`, help: 'Portfolios with changes not applied by a job yet.', registers,
      async collect() { this.set((await book.book())?.pendingPortfolios ?? 0); },
    });
    new client.Gauge({
      name: `${PREFIX}pending_reference_changes`, help: 'FX and instrument changes not fanned out to portfolios yet.', registers,
      async collect() { this.set((await book.book())?.pendingReferenceChanges ?? 0); },
    });
    new client.Gauge({
      name: `${PREFIX}oldest_ready_age_seconds`,
      help: 'Seconds since this worker first saw the longest-waiting portfolio that has a ready day not current or changes not applied (0 when none; restarts at 0 with the worker).',
      registers,
      async collect() {
        await book.book();
        const since = Math.min(...book.readySince.values());
        this.set(Number.isFinite(since) ? (Date.now() - since) / 1000 : 0);
      },
    });
    new client.Gauge({
      name: `${PREFIX}oldest_due_job_age_seconds`,
      help: 'Age of the oldest engine job that is due and not running (0 when none): work waiting for a worker.', registers,
      async collect() { this.set((await book.book())?.oldestDueJobAge ?? 0); },
    });
    new client.Gauge({
      name: `${PREFIX}book_query_seconds`, help: 'Duration of the last queries behind the book gauges.', registers,
      async collect() { this.set(((await book.book())?.queryMs ?? 0) / 1000); },
    });
  }

  /** Count what an event of the worker reports. */
  observe(e: WorkerEvent): void {
    switch (e.event) {
      case 'portfolio_computed':
        this.portfolios.inc();
        this.rows.inc({ stage: 'position' }, Number(e.position_days ?? 0));
        this.rows.inc({ stage: 'portfolio' }, Number(e.portfolio_days ?? 0));
        this.rows.inc({ stage: 'portfolio_bod' }, Number(e.bod_updates ?? 0));
        break;
      case 'portfolio_failed':
        this.portfolioFailures.inc();
        break;
      case 'job_finished':
      case 'job_failed': {
        const task = String(e.task ?? 'unknown');
        this.jobs.inc({ task, outcome: e.event === 'job_finished' ? 'success' : 'failure' });
        this.jobDuration.observe({ task }, Number(e.duration_ms ?? 0) / 1000);
        if (e.retries) this.retries.inc(Number(e.retries));
        break;
      }
      case 'stale_jobs_removed':
        this.staleRemoved.inc(Number(e.count ?? 0));
        break;
      case 'database_unavailable':
        this.databaseUp.set(0);
        break;
      case 'worker_started':
      case 'database_available':
        this.databaseUp.set(1);
        break;
      default:
        break;
    }
  }

  setDatabaseUp(up: boolean): void {
    this.databaseUp.set(up ? 1 : 0);
  }

  /** The book snapshot, refreshed when older than cacheMs; the previous one when the refresh is slow. */
  private async book(): Promise<BookSnapshot | null> {
    if (Date.now() - this.snapshotAt >= this.cacheMs && !this.refreshing) {
      this.refreshing = this.refresh().finally(() => { this.refreshing = null; });
    }
    if (this.refreshing) {
      await Promise.race([this.refreshing, new Promise((r) => setTimeout(r, this.waitMs).unref())]);
    }
    return this.snapshot;
  }

  private async refresh(): Promise<void> {
    const q = this.query();
    if (!q) return;
    const started = performance.now();
    try {
      const { rows: states } = await q.query<{ label: string; n: number }>(
        `with first_dirty as (
           select d.portfolio_id, min(d.date) as first_date from portfolio_timeseries_engine.portfolio_day d
           where d.dirty and d.expected_count is not null group by d.portfolio_id)
         select case
             when pd.expected_count is null then 'undeclared'
             when pd.position_count < pd.expected_count then 'waiting'
             when pd.position_count > pd.expected_count then 'blocked'
             when f.first_date < pd.date then 'waiting_previous_day'
             when not pd.dirty then 'current'
             when pd.blocked_reason is not null then 'blocked'
             else 'queued' end as label, count(*)::float8 as n
         from portfolio_timeseries_engine.portfolio_day pd left join first_dirty f on f.portfolio_id = pd.portfolio_id
         where pd.expected_count is not null or pd.position_count > 0
         group by 1`);
      const { rows: blocked } = await q.query<{ label: string; n: number }>(
        `with first_dirty as (
           select d.portfolio_id, min(d.date) as first_date from portfolio_timeseries_engine.portfolio_day d
           where d.dirty and d.expected_count is not null group by d.portfolio_id)
         select ${reasonKindSql('x.reason')} as label, count(distinct (x.portfolio_id, x.date))::float8 as n
         from (
           select pd.portfolio_id, pd.date, unnest(case when pd.position_count > pd.expected_count
             then array['positions exist but declared'] else string_to_array(pd.blocked_reason, '; ') end) as reason
           from portfolio_timeseries_engine.portfolio_day pd left join first_dirty f on f.portfolio_id = pd.portfolio_id
           where pd.expected_count is not null
             and (pd.position_count > pd.expected_count
                  or (pd.position_count = pd.expected_count and pd.dirty and pd.blocked_reason is not null
                      and (f.first_date is null or f.first_date >= pd.date)))) x
         group by 1`);
      const { rows: [other] } = await q.query<{ pending: number; refs: number; ready: string[]; due_age: number }>(
        `select
           (select count(*)::int from (select distinct c.portfolio_id from portfolio_timeseries_engine.change c) p) as pending,
           (select count(*)::int from portfolio_timeseries_engine.reference_change) as refs,
           array(
             select f.portfolio_id from (
               select distinct on (d.portfolio_id) d.portfolio_id, d.position_count, d.expected_count, d.blocked_reason
               from portfolio_timeseries_engine.portfolio_day d
               where d.dirty and d.expected_count is not null order by d.portfolio_id, d.date) f
             where f.position_count = f.expected_count and f.blocked_reason is null
             union
             select distinct c.portfolio_id from portfolio_timeseries_engine.change c) as ready,
           coalesce((select extract(epoch from now() - min(j.created_at)) from graphile_worker.jobs j
                     where j.task_identifier like 'portfolio\\_timeseries:%' and j.locked_at is null
                       and j.run_at <= now() and j.attempts < j.max_attempts), 0)::float8 as due_age`);
      const now = Date.now();
      const ready = new Set(other!.ready);
      for (const p of [...this.readySince.keys()]) if (!ready.has(p)) this.readySince.delete(p);
      for (const p of ready) if (!this.readySince.has(p)) this.readySince.set(p, now);
      this.snapshot = {
        states: Object.fromEntries(states.map((r) => [r.label, Number(r.n)])),
        blocked: Object.fromEntries(blocked.map((r) => [r.label, Number(r.n)])),
        pendingPortfolios: other!.pending,
        pendingReferenceChanges: other!.refs,
        oldestDueJobAge: Number(other!.due_age),
        queryMs: performance.now() - started,
      };
      this.databaseUp.set(1);
    } catch {
      this.databaseUp.set(0);
    } finally {
      this.snapshotAt = Date.now();
    }
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }
}
