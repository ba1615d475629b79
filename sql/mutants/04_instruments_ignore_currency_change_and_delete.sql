-- defect: changing an instrument's currency or deleting it records nothing, so the days of the
--   positions and flows of that instrument stay current in the old currency (or with a deleted
--   instrument).
-- replaces: portfolio_timeseries_engine.tg_instruments() (UPDATE and DELETE branches)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=instrument-beside-snapshot
select pg_temp.mutate('portfolio_timeseries_engine.tg_instruments()',
  $m$elsif tg_op = 'UPDATE' then$m$,
  $m$elsif false then$m$);
-- UPDATE now falls through to the DELETE branch, which records nothing either.
select pg_temp.mutate('portfolio_timeseries_engine.tg_instruments()',
  $m$select 'I', o.security_id from old_rows o;$m$,
  $m$select 'I', o.security_id from old_rows o where false;$m$);
