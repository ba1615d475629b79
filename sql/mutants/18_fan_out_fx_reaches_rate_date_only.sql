-- defect: fan_out sends an FX rate (from, to, d) to the portfolios as a change of day d only,
--   not of every day until the pair's next rate, so the later days that use it as their as-of
--   rate stay current at the old rate.
-- replaces: portfolio_timeseries_engine.fan_out() (the 'F' change's date_to)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=fx-beside-manifest
select pg_temp.mutate('portfolio_timeseries_engine.fan_out()',
  $m$select p.portfolio_id, 'F', r.date_from, r.until - 1, r.from_currency$m$,
  $m$select p.portfolio_id, 'F', r.date_from, r.date_from, r.from_currency$m$);
