-- defect: stage 2: a flow is converted at the latest rate strictly before its day
--   (rate_date < D), not at the rate of the day itself when there is one (rate_date <= D).
-- replaces: portfolio_timeseries_engine.compute_portfolio(text) (stage 2, converted)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=fx-beside-manifest
select pg_temp.mutate('portfolio_timeseries_engine.compute_portfolio(text)',
  $m$and x.rate_date <= d.date$m$,
  $m$and x.rate_date < d.date$m$);
