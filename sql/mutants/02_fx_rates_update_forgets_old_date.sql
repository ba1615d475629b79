-- defect: an UPDATE that moves an FX rate to another date records only the new date, so the
--   declared days from the old date up to the new one keep the moved rate in their (current) rows.
-- replaces: portfolio_timeseries_engine.tg_fx_rates() (UPDATE branch: old_rows never read)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=rows-moved
select pg_temp.mutate('portfolio_timeseries_engine.tg_fx_rates()',
  $m$select o.from_currency, o.to_currency, o.rate_date from old_rows o$m$,
  $m$select o.from_currency, o.to_currency, o.rate_date from (select * from old_rows where false) o$m$);
