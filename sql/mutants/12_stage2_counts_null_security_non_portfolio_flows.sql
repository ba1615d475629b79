-- defect: stage 2: NULL-security flows count in the portfolio row even without
--   is_portfolio_flow (the methodology: they count nowhere).
-- replaces: portfolio_timeseries_engine.compute_portfolio(text) (stage 2, flows)
-- caught-by: test/examples.test.ts
select pg_temp.mutate('portfolio_timeseries_engine.compute_portfolio(text)',
  $m$where c.portfolio_id = p_portfolio and c.cashflow_date = d.date and c.is_portfolio_flow$m$,
  $m$where c.portfolio_id = p_portfolio and c.cashflow_date = d.date and (c.is_portfolio_flow or c.security_id is null)$m$);
