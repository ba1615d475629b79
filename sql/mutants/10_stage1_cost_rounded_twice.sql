-- defect: stage 1: cost is cost_basis_local / quantity divided first (PostgreSQL rounds the
--   quotient to its own scale) and then rounded to 10 places: rounded twice, so a quotient just
--   below half a unit rounds up.
-- replaces: portfolio_timeseries_engine.compute_portfolio(text) (stage 1, vals.cost)
-- caught-by: test/values.test.ts
select pg_temp.mutate('portfolio_timeseries_engine.compute_portfolio(text)',
  $m$case when b.quantity = 0 or b.cost_basis_local is null then 0::numeric$m$,
  $m$case when b.quantity = 0 or b.cost_basis_local is null then 0::numeric
               when true then round(b.cost_basis_local / b.quantity, 10)$m$);
