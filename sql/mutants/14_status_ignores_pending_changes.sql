-- defect: status() reads only what the last job stored and ignores pending changes, so a day is
--   called current while a committed change that alters it has not been applied yet.
-- replaces: portfolio_timeseries_engine.status(text,text[],date,date) (pending_from no longer consulted)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=fx-beside-manifest
select pg_temp.mutate('portfolio_timeseries_engine.status(text,text[],date,date)',
  $m$select * from portfolio_timeseries_engine.pending_from(p_portfolio)$m$,
  $m$select * from portfolio_timeseries_engine.pending_from(p_portfolio) where false$m$);
