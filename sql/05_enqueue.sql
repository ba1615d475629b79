-- Waking the worker. A producer's transaction adds one graphile-worker job (task
-- portfolio_timeseries:drain) with no job_key, whatever it wrote: the job starts after the
-- commit, so it sees the transaction's changes, and it applies every pending change of every
-- portfolio (see drain in docs/architecture.md). A job_key would make concurrent producers queue
-- behind each other: every keyed add_job updates the one queued row and holds that row lock
-- until its transaction ends.
create or replace function portfolio_timeseries_engine.enqueue_drain()
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  -- Once per transaction: the setting is transaction-local, and rolls back with a savepoint
  -- together with the job it records.
  if current_setting('portfolio_timeseries.drain_enqueued', true) is distinct from 'on' then
    perform graphile_worker.add_job('portfolio_timeseries:drain', '{}'::json);
    perform set_config('portfolio_timeseries.drain_enqueued', 'on', true);
  end if;
end;
$$;
