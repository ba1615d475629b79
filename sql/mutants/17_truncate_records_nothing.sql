-- defect: TRUNCATE of an input table records no change (it only wakes the worker), so every row
--   stays current after its inputs are gone (the refusal for position_state is kept).
-- replaces: portfolio_timeseries_engine.tg_truncate()
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=truncate
select pg_temp.mutate('portfolio_timeseries_engine.tg_truncate()',
  $m$union select j.portfolio_id from portfolio_timeseries_engine.portfolio_job j) p;$m$,
  $m$union select j.portfolio_id from portfolio_timeseries_engine.portfolio_job j) p where false;$m$);
