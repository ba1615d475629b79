-- The engine enqueues its jobs with graphile_worker.add_job from inside producers' transactions:
-- without graphile-worker's schema the first write that completes a day would fail in the
-- producer's transaction. Refuse here, before anything is created.
do $$
begin
  if not exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                 where n.nspname = 'graphile_worker' and p.proname = 'add_job') then
    raise exception 'portfolio-timeseries needs graphile-worker''s schema (graphile_worker.add_job) in this database'
      using hint = 'Install it first: `npx graphile-worker --schema-only -c "$DATABASE_URL"`, or run `portfolio-timeseries migrate`, which installs it before the engine.';
  end if;
end;
$$;

-- The engine's internals live apart from the contract tables: producers and readers only ever see
-- the tables of the contract (docs/contract.md section 2); everything in
-- `portfolio_timeseries_engine` may change between versions (docs/architecture.md says which
-- objects are public).
create schema if not exists portfolio_timeseries_engine;
comment on schema portfolio_timeseries_engine is
  'Internals of portfolio-timeseries: change queue, per-day state, epoch history, the job. Private: may change in any release.';
