-- Effective epoch (docs/contract.md section 3): for a date D the effective epoch of a key is the
-- highest epoch whose start date is <= D, 0 when there is none. Only keys with an epoch history
-- need this lookup: a key without epoch_start rows has only epoch-0 snapshots, all effective (a
-- higher epoch is refused at write time). Queries therefore test `epoch = 0` for keys without
-- history and call this function only for the few keys with one.
create or replace function portfolio_timeseries_engine.effective_epoch(p_portfolio text, p_security text, p_date date)
returns integer
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return coalesce((
    select max(e.epoch)
    from portfolio_timeseries_engine.epoch_start e
    where e.portfolio_id = p_portfolio and e.security_id = p_security and e.start_date <= p_date), 0);
end;
$$;

-- The keys of a portfolio that have an epoch history (normally none).
create or replace function portfolio_timeseries_engine.epoch_keys(p_portfolio text)
returns text[]
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return (select coalesce(array_agg(distinct e.security_id), '{}')
          from portfolio_timeseries_engine.epoch_start e
          where e.portfolio_id = p_portfolio);
end;
$$;

-- A snapshot (or the snapshot a BOD comes from) that cannot be used: its reason, else NULL.
-- (Only called for a snapshot already known to be unvalued: a call per row would cost more than
-- the row.)
create or replace function portfolio_timeseries_engine.unvalued_reason(
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
