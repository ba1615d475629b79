-- Test-only helpers for the isolation specs (installed into each spec's database by
-- test/isolation.test.ts; never part of the engine or its migrations).
create schema if not exists pt_test;

-- Empty every input, output and engine table without firing a trigger (each permutation of a spec
-- starts from its own setup).
create or replace function pt_test.reset()
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform set_config('session_replication_role', 'replica', true);
  truncate public.portfolios, public.instruments, public.fx_rates, public.cashflows, public.position_state,
    public.daily_position_snapshots, public.daily_aggregation_manifest, public.position_timeseries,
    public.portfolio_timeseries;
  truncate portfolio_timeseries_engine.change, portfolio_timeseries_engine.reference_change,
    portfolio_timeseries_engine.portfolio_day, portfolio_timeseries_engine.dirty_position,
    portfolio_timeseries_engine.epoch_start, portfolio_timeseries_engine.portfolio_job;
  delete from graphile_worker._private_jobs;
  perform set_config('session_replication_role', 'origin', true);
end;
$$;

-- What the worker's drain does, in the caller's REPEATABLE READ transaction: fan reference
-- changes out, then run the job of every portfolio with pending changes.
create or replace function pt_test.drain()
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_portfolio text;
begin
  perform portfolio_timeseries_engine.fan_out();
  for v_portfolio in select distinct c.portfolio_id from portfolio_timeseries_engine.change c order by 1 loop
    perform portfolio_timeseries_engine.compute_portfolio(v_portfolio);
  end loop;
end;
$$;

-- Drain, then compare the outputs and status() with what a fresh load of the same final inputs
-- gives: every derived table is emptied and every portfolio recomputed from its inputs (the epoch
-- history is an input: it is what the producers declared over time), inside a subtransaction
-- that is rolled back afterwards. Returns 'ok', or one line per difference:
--   every portfolio-day's state and detail must be equal;
--   on days current in the fresh load, every portfolio and position row, and the daily returns
--   stored with the portfolio row, must be equal;
--   no day without a manifest row may have a row.
-- Rows of days that are not current are the last complete ones and may legitimately differ.
create or replace function pt_test.check()
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_result text;
begin
  perform pt_test.drain();
  create temp table pt_engine_status on commit drop as select * from portfolio_timeseries_engine.status();
  create temp table pt_engine_pf on commit drop as select * from public.portfolio_timeseries;
  create temp table pt_engine_pos on commit drop as select * from public.position_timeseries;
  create temp table pt_engine_day on commit drop as select * from portfolio_timeseries_engine.portfolio_day;
  begin
    delete from public.portfolio_timeseries;
    delete from public.position_timeseries;
    delete from portfolio_timeseries_engine.portfolio_day;
    delete from portfolio_timeseries_engine.dirty_position;
    delete from portfolio_timeseries_engine.change;
    delete from portfolio_timeseries_engine.reference_change;
    delete from portfolio_timeseries_engine.portfolio_job;
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to)
    select p.portfolio_id, 'A', '-infinity', 'infinity'
    from (select portfolio_id from public.portfolios union select portfolio_id from public.daily_position_snapshots
          union select portfolio_id from public.daily_aggregation_manifest union select portfolio_id from public.cashflows) p;
    perform pt_test.drain();

    with fresh_status as (
      select * from portfolio_timeseries_engine.status()
    ), current_days as (
      select s.portfolio_id, s.date from fresh_status s where s.state = 'current'
    ), lines as (
      select format('status %s %s: engine %s (%s), fresh load %s (%s)', coalesce(e.portfolio_id, f.portfolio_id),
        coalesce(e.date, f.date), coalesce(e.state, 'none'), e.detail, coalesce(f.state, 'none'), f.detail) as line
      from pt_engine_status e full join fresh_status f on f.portfolio_id = e.portfolio_id and f.date = e.date
      where e.state is distinct from f.state or e.detail is distinct from f.detail
      union all
      select format('portfolio row %s %s: engine %s, fresh load %s', coalesce(e.portfolio_id, f.portfolio_id),
        coalesce(e.date, f.date),
        (e.epoch, e.bod_market_value, e.bod_cashflow, e.eod_cashflow, e.eod_market_value, e.fees, e.position_count),
        (f.epoch, f.bod_market_value, f.bod_cashflow, f.eod_cashflow, f.eod_market_value, f.fees, f.position_count))
      from (select e.* from pt_engine_pf e join current_days c using (portfolio_id, date)) e
      full join (select f.* from public.portfolio_timeseries f join current_days c using (portfolio_id, date)) f
        on f.portfolio_id = e.portfolio_id and f.date = e.date
      where (e.epoch, e.bod_market_value, e.bod_cashflow, e.eod_cashflow, e.eod_market_value, e.fees, e.position_count)
            is distinct from
            (f.epoch, f.bod_market_value, f.bod_cashflow, f.eod_cashflow, f.eod_market_value, f.fees, f.position_count)
      union all
      select format('position row %s %s %s: engine %s, fresh load %s', coalesce(e.portfolio_id, f.portfolio_id),
        coalesce(e.security_id, f.security_id), coalesce(e.date, f.date),
        (e.epoch, e.bod_market_value, e.bod_cashflow_position, e.eod_cashflow_position, e.bod_cashflow_portfolio,
         e.eod_cashflow_portfolio, e.eod_market_value, e.fees, e.quantity, e.cost),
        (f.epoch, f.bod_market_value, f.bod_cashflow_position, f.eod_cashflow_position, f.bod_cashflow_portfolio,
         f.eod_cashflow_portfolio, f.eod_market_value, f.fees, f.quantity, f.cost))
      from (select e.* from pt_engine_pos e join current_days c using (portfolio_id, date)) e
      full join (select f.* from public.position_timeseries f join current_days c using (portfolio_id, date)) f
        on f.portfolio_id = e.portfolio_id and f.security_id = e.security_id and f.date = e.date
      where (e.epoch, e.bod_market_value, e.bod_cashflow_position, e.eod_cashflow_position, e.bod_cashflow_portfolio,
             e.eod_cashflow_portfolio, e.eod_market_value, e.fees, e.quantity, e.cost)
            is distinct from
            (f.epoch, f.bod_market_value, f.bod_cashflow_position, f.eod_cashflow_position, f.bod_cashflow_portfolio,
             f.eod_cashflow_portfolio, f.eod_market_value, f.fees, f.quantity, f.cost)
      union all
      -- The daily returns stored with the rows (what the read side reads) are the fresh load's.
      select format('stored returns %s %s: engine %s, fresh load %s', c.portfolio_id, c.date,
        (e.gross_return, e.net_return, e.zero_base), (f.gross_return, f.net_return, f.zero_base))
      from current_days c
      left join pt_engine_day e using (portfolio_id, date)
      left join portfolio_timeseries_engine.portfolio_day f using (portfolio_id, date)
      where (e.gross_return, e.net_return, e.zero_base) is distinct from (f.gross_return, f.net_return, f.zero_base)
         or f.gross_return is null
      union all
      select format('portfolio row %s %s exists for a day without a manifest row', e.portfolio_id, e.date)
      from pt_engine_pf e
      where not exists (select 1 from public.daily_aggregation_manifest m
                        where m.portfolio_id = e.portfolio_id and m.aggregation_date = e.date)
      union all
      select format('position row %s %s %s exists for a day without a manifest row', e.portfolio_id, e.security_id, e.date)
      from pt_engine_pos e
      where not exists (select 1 from public.daily_aggregation_manifest m
                        where m.portfolio_id = e.portfolio_id and m.aggregation_date = e.date)
    )
    select string_agg(l.line, E'\n' order by l.line) into v_result from lines l;
    raise exception using errcode = 'PTT01', message = coalesce(v_result, 'ok');
  exception when sqlstate 'PTT01' then
    get stacked diagnostics v_result = message_text;
  end;
  return v_result;
end;
$$;
