-- defect: changing a portfolio's base currency or deleting the portfolio records nothing, so its
--   declared days stay current, converted to the old base (or for a portfolio that is gone).
-- replaces: portfolio_timeseries_engine.tg_portfolios() (UPDATE and DELETE branches)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=base-currency-beside-manifest
select pg_temp.mutate('portfolio_timeseries_engine.tg_portfolios()',
  $m$elsif tg_op = 'UPDATE' then$m$,
  $m$elsif false then$m$);
-- UPDATE now falls through to the DELETE branch, which records nothing either.
select pg_temp.mutate('portfolio_timeseries_engine.tg_portfolios()',
  $m$select o.portfolio_id, 'P', '-infinity', 'infinity' from old_rows o;$m$,
  $m$select o.portfolio_id, 'P', '-infinity', 'infinity' from old_rows o where false;$m$);
