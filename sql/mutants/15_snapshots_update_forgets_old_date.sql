-- defect: an UPDATE that moves a snapshot to another date records only the new date, so the day
--   it left keeps its count and its position row (and the key's next day its BOD).
-- replaces: portfolio_timeseries_engine.tg_snapshots() (UPDATE branch: old_rows never read)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=rows-moved
select pg_temp.mutate('portfolio_timeseries_engine.tg_snapshots()',
  $m$select o.portfolio_id, o.security_id, o.date, o.epoch from old_rows o$m$,
  $m$select o.portfolio_id, o.security_id, o.date, o.epoch from (select * from old_rows where false) o$m$);
