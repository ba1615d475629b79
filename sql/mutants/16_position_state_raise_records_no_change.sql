-- defect: raising a key's epoch writes the epoch history but records no change, so the days from
--   the new epoch's start keep their old-epoch rows current.
-- replaces: portfolio_timeseries_engine.tg_position_state() (UPDATE branch)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=epochs-beside-snapshots
select pg_temp.mutate('portfolio_timeseries_engine.tg_position_state()',
  $m$      where n.epoch > o.epoch
      returning portfolio_id, security_id, start_date
    )
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities)
    select r.portfolio_id, 'E', r.start_date, 'infinity', array[r.security_id] from raised r;$m$,
  $m$      where n.epoch > o.epoch
      returning portfolio_id, security_id, start_date
    )
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities)
    select r.portfolio_id, 'E', r.start_date, 'infinity', array[r.security_id] from raised r where false;$m$);
