-- Why a complete portfolio-day cannot be computed (design section 3, "Blocked, with a reason").
-- Returns one row per blocked date with every reason, each naming the missing or bad item, so
-- `status` can say exactly what to fix. A day with no row here is computable.
create function portfolio_timeseries_engine.block_reasons(p_portfolio text, p_dates date[])
returns table (date date, reason text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with days as (
    select distinct d as date from unnest(p_dates) d
  ), pf as (
    select p.base_currency from public.portfolios p where p.portfolio_id = p_portfolio
  ), pos as (
    select s.security_id, s.date, s.epoch, s.valuation_status, s.market_value, s.market_value_local,
           i.currency as instrument_currency, i.security_id is not null as instrument_known,
           portfolio_timeseries_engine.unvalued_reason(s.valuation_status, s.market_value, s.market_value_local) as unvalued
    from days d
    join portfolio_timeseries_engine.effective_snapshots s on s.portfolio_id = p_portfolio and s.date = d.date
    left join public.instruments i on i.security_id = s.security_id
  ), flows as (
    select c.*
    from days d
    join public.cashflows c on c.portfolio_id = p_portfolio and c.cashflow_date = d.date
  ), needed_fx as (
    select distinct pos.date, pos.instrument_currency as currency from pos where pos.instrument_known
    union
    select f.cashflow_date, f.currency from flows f where f.security_id is null and f.is_portfolio_flow
  ), reasons as (
    select d.date, format('portfolio %s unknown', p_portfolio) as reason
    from days d where not exists (select 1 from pf)
    union all
    select pd.date, format('%s positions exist but %s declared', pd.position_count, pd.expected_count)
    from portfolio_timeseries_engine.portfolio_day pd join days d on d.date = pd.date
    where pd.portfolio_id = p_portfolio and pd.position_count > pd.expected_count
    union all
    select pos.date, format('instrument %s unknown', pos.security_id)
    from pos where not pos.instrument_known
    union all
    select pos.date, format('snapshot of %s on %s (epoch %s) is unvalued: %s', pos.security_id, pos.date, pos.epoch, pos.unvalued)
    from pos
    where pos.unvalued is not null
    union all
    select pos.date, format('BOD snapshot of %s on %s (epoch %s) is unvalued: %s', pos.security_id, b.date, b.epoch, b.unvalued)
    from pos
    cross join lateral (
      select s.date, s.epoch, portfolio_timeseries_engine.unvalued_reason(s.valuation_status, s.market_value, s.market_value_local) as unvalued
      from portfolio_timeseries_engine.effective_snapshots s
      where s.portfolio_id = p_portfolio and s.security_id = pos.security_id and s.date < pos.date
      order by s.date desc limit 1) b
    where b.unvalued is not null
    union all
    select f.cashflow_date, format('cash flow %s names security %s, which has no position on %s',
      f.transaction_id, f.security_id, f.cashflow_date)
    from flows f
    where f.security_id is not null
      and not exists (select 1 from portfolio_timeseries_engine.effective_snapshots s
                      where s.portfolio_id = p_portfolio and s.security_id = f.security_id and s.date = f.cashflow_date)
    union all
    -- Flows are looked up by key (index probes), not joined to the pos CTE: without statistics
    -- the planner nested-looped flows x positions (12.5M comparisons, 9 s for 250 days).
    select f.cashflow_date, format('cash flow %s currency %s differs from instrument %s currency %s',
      f.transaction_id, f.currency, f.security_id, i.currency)
    from flows f
    join public.instruments i on i.security_id = f.security_id
    where f.currency <> i.currency
      and exists (select 1 from portfolio_timeseries_engine.effective_snapshots s
                  where s.portfolio_id = p_portfolio and s.security_id = f.security_id and s.date = f.cashflow_date)
    union all
    select n.date, format('FX rate %s->%s missing on or before %s', n.currency, pf.base_currency, n.date)
    from needed_fx n cross join pf
    where n.currency <> pf.base_currency
      and not exists (select 1 from public.fx_rates r
                      where r.from_currency = n.currency and r.to_currency = pf.base_currency and r.rate_date <= n.date)
  )
  select r.date, string_agg(distinct r.reason, '; ') from reasons r group by r.date
$$;
