-- Why a declared, complete portfolio-day cannot be computed (contract section 3, "Blocked, with a
-- reason"): one row per blocked date with every reason, each naming the missing or bad item, so
-- that status says exactly what to fix. A date without a row here is computable (the count check,
-- "k positions exist but n declared", is the caller's: it needs the day's counters).
--
-- p_with_bod adds "the snapshot the BOD comes from is unvalued", one index probe per position.
-- The job leaves it out and checks the BOD sources of the positions it rebuilds while it
-- builds them (a position whose BOD source changes is always rebuilt); status asks for it.
--
-- Every lookup is an index probe keyed by (portfolio, security, date) or a scan of the given
-- dates' rows, whatever the planner's statistics: the sets joined here are small per portfolio.
create or replace function portfolio_timeseries_engine.day_reasons(
  p_portfolio text, p_dates date[], p_with_bod boolean default true)
returns table (date date, reason text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
-- One portfolio through its indexes, never a sequential scan (see compute_portfolio).
set enable_seqscan = off
as $$
begin
  -- PL/pgSQL rather than SQL: a SQL function's body is planned again at every call, and this one
  -- is called by every job.
  return query
  -- The day's positions are read once (an index scan of the given dates); every other lookup is an
  -- index probe per item (OFFSET 0 keeps the planner from turning a probe into a join of two
  -- derived sets, which it would plan as a nested loop over both when it has no statistics).
  with hist as (
    select portfolio_timeseries_engine.epoch_keys(p_portfolio) as keys
  ), pf as (
    select p.base_currency from public.portfolios p where p.portfolio_id = p_portfolio
  ), snaps as materialized (
    select s.security_id, s.date, s.epoch, s.valuation_status, s.market_value, s.market_value_local
    from public.daily_position_snapshots s
    cross join hist h
    where s.portfolio_id = p_portfolio and s.date = any(p_dates)
      and case when s.security_id = any(h.keys)
               then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
               else s.epoch = 0 end
  ), instr as materialized (
    -- One probe per security, not per position day (a backfill has hundreds of days per
    -- security), kept as two arrays: a join of the days' positions with it would be planned as a
    -- nested loop over both (a generic plan estimates one row for each).
    select array_agg(k.security_id) as ids, array_agg(i.currency) as currencies
    from (select distinct s.security_id from snaps s) k
    left join lateral (
      select x.currency from public.instruments x where x.security_id = k.security_id offset 0) i on true
  ), pos as materialized (
    select s.security_id, s.date, s.epoch, s.valuation_status, s.market_value, s.market_value_local,
           n.currencies[array_position(n.ids, s.security_id)] as instrument_currency
    from snaps s cross join instr n
  ), flows as materialized (
    select c.transaction_id, c.security_id, c.cashflow_date, c.currency, c.is_portfolio_flow
    from public.cashflows c
    where c.portfolio_id = p_portfolio and c.cashflow_date = any(p_dates)
  ), needed_fx as (
    select distinct pos.date, pos.instrument_currency as currency from pos where pos.instrument_currency is not null
    union
    select f.cashflow_date, f.currency from flows f where f.security_id is null and f.is_portfolio_flow
  ), first_fx as materialized (
    -- A rate on or before a day exists unless the day is before the pair's first rate: one probe
    -- per currency instead of one per day and currency.
    select array_agg(c.currency) as currencies,
      array_agg((select min(r.rate_date) from public.fx_rates r
                 where r.from_currency = c.currency and r.to_currency = pf.base_currency)) as first_dates
    from (select distinct n.currency from needed_fx n) c cross join pf
  ), reasons as (
    select d.date, format('portfolio %s unknown', p_portfolio) as reason
    from (select distinct d as date from unnest(p_dates) d) d where not exists (select 1 from pf)
    union all
    select pos.date, format('instrument %s unknown', pos.security_id)
    from pos where pos.instrument_currency is null
    union all
    select pos.date, format('snapshot of %s on %s (epoch %s) is unvalued: %s', pos.security_id, pos.date, pos.epoch,
      portfolio_timeseries_engine.unvalued_reason(pos.valuation_status, pos.market_value, pos.market_value_local))
    from pos
    where pos.valuation_status in ('UNVALUED', 'FAILED') or pos.market_value is null or pos.market_value_local is null
    union all
    select pos.date, format('BOD snapshot of %s on %s (epoch %s) is unvalued: %s', pos.security_id, b.date, b.epoch,
      portfolio_timeseries_engine.unvalued_reason(b.valuation_status, b.market_value, b.market_value_local))
    from pos
    cross join hist h
    cross join lateral (
      select s.date, s.epoch, s.valuation_status, s.market_value, s.market_value_local
      from public.daily_position_snapshots s
      where p_with_bod and s.portfolio_id = p_portfolio and s.security_id = pos.security_id and s.date < pos.date
        and case when s.security_id = any(h.keys)
                 then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                 else s.epoch = 0 end
      order by s.date desc limit 1) b
    where b.valuation_status in ('UNVALUED', 'FAILED') or b.market_value is null or b.market_value_local is null
    union all
    -- A flow of a security without a position that day would vanish from the totals.
    select f.cashflow_date, format('cash flow %s names security %s, which has no position on %s',
      f.transaction_id, f.security_id, f.cashflow_date)
    from flows f
    cross join hist h
    where f.security_id is not null
      and not exists (
        select 1 from public.daily_position_snapshots s
        where s.portfolio_id = p_portfolio and s.security_id = f.security_id and s.date = f.cashflow_date
          and case when s.security_id = any(h.keys)
                   then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                   else s.epoch = 0 end
        offset 0)
    union all
    select f.cashflow_date, format('cash flow %s currency %s differs from instrument %s currency %s',
      f.transaction_id, f.currency, f.security_id, i.currency)
    from flows f
    cross join hist h
    cross join lateral (
      select x.currency from public.instruments x where x.security_id = f.security_id offset 0) i
    where f.currency <> i.currency
      and exists (
        select 1 from public.daily_position_snapshots s
        where s.portfolio_id = p_portfolio and s.security_id = f.security_id and s.date = f.cashflow_date
          and case when s.security_id = any(h.keys)
                   then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                   else s.epoch = 0 end
        offset 0)
    union all
    select n.date, format('FX rate %s->%s missing on or before %s', n.currency, pf.base_currency, n.date)
    from needed_fx n cross join pf cross join first_fx f
    where n.currency <> pf.base_currency
      and n.date < coalesce(f.first_dates[array_position(f.currencies, n.currency)], 'infinity')
  )
  select r.date, string_agg(distinct r.reason, '; ' order by r.reason) from reasons r group by r.date;
end;
$$;
