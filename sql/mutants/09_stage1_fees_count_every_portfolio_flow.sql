-- defect: stage 1: a position's fees count every portfolio flow of the security, not only the
--   EXPENSE ones (a withdrawal becomes a fee).
-- replaces: portfolio_timeseries_engine.compute_portfolio(text) (stage 1, flows.fees)
-- caught-by: test/examples.test.ts
select pg_temp.mutate('portfolio_timeseries_engine.compute_portfolio(text)',
  $m$sum(abs(cf.amount)) filter (where cf.is_portfolio_flow and cf.classification = 'EXPENSE') as fees$m$,
  $m$sum(abs(cf.amount)) filter (where cf.is_portfolio_flow) as fees$m$);
