-- defect: an FX change reaches only the days whose positions need the currency, not the days
--   that need it for a NULL-security portfolio flow, so such a day stays current at the old rate.
--   (fan_out has no such branch: it reaches every portfolio based in the target currency with a
--   declared day in the rate's range, and the job narrows that down.)
-- replaces: portfolio_timeseries_engine.compute_portfolio(text) (the 'F' expansion of v_touch)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=fx-null-security-flow
select pg_temp.mutate('portfolio_timeseries_engine.compute_portfolio(text)',
  $m$where f.portfolio_id = p_portfolio and f.cashflow_date = d.date and f.security_id is null$m$,
  $m$where false and f.portfolio_id = p_portfolio and f.cashflow_date = d.date and f.security_id is null$m$);
