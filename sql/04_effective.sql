-- Effective epoch (design section 3): for a date D the effective epoch of a key is the highest
-- epoch whose start date is <= D (0 when there is none). Only the snapshot at that epoch counts.
-- A view, not a function, so the planner inlines the correlated lookup into set-based queries.
create view portfolio_timeseries_engine.effective_snapshots as
select s.*
from public.daily_position_snapshots s
where s.epoch = coalesce((
  select max(e.epoch)
  from portfolio_timeseries_engine.epoch_start e
  where e.portfolio_id = s.portfolio_id
    and e.security_id = s.security_id
    and e.start_date <= s.date
), 0);

-- A snapshot, or a snapshot a BOD comes from, that cannot be used: its reason, else NULL.
create function portfolio_timeseries_engine.unvalued_reason(
  p_status text, p_market_value numeric, p_market_value_local numeric)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case
    when p_status in ('UNVALUED', 'FAILED') then 'valuation_status ' || p_status
    when p_market_value is null then 'market_value is NULL'
    when p_market_value_local is null then 'market_value_local is NULL'
  end
$$;
