-- Engine internals live apart from the contract tables so that producers and readers only ever
-- see the tables design section 2 names; everything in `portfolio_timeseries_engine` may change
-- between versions.
create schema portfolio_timeseries_engine;
comment on schema portfolio_timeseries_engine is
  'Internals of portfolio-timeseries: readiness counters, dirty sets, epoch history, functions.';
