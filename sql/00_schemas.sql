-- The engine's internals live apart from the contract tables: producers and readers only ever see
-- the tables of the contract (docs/contract.md section 2); everything in
-- `portfolio_timeseries_engine` may change between versions (docs/architecture.md says which
-- objects are public).
create schema if not exists portfolio_timeseries_engine;
comment on schema portfolio_timeseries_engine is
  'Internals of portfolio-timeseries: change queue, per-day state, epoch history, the job. Private: may change in any release.';
