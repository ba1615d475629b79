-- defect: an UPDATE that moves a manifest row to another date records only the new date, so the
--   day it left stays declared (and current, with its rows) in the engine.
-- replaces: portfolio_timeseries_engine.tg_manifest() (UPDATE branch: old_rows never read)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=rows-moved
select pg_temp.mutate('portfolio_timeseries_engine.tg_manifest()',
  $m$select o.portfolio_id, o.aggregation_date from old_rows o$m$,
  $m$select o.portfolio_id, o.aggregation_date from (select * from old_rows where false) o$m$);
