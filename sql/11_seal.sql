-- seal_portfolio_day(portfolio, date): declare the day complete with the positions that have an
-- effective snapshot now, i.e. those committed, plus the caller's own uncommitted ones. A
-- snapshot another transaction has not committed yet is not counted: if it commits later the day
-- has more positions than declared and is blocked with that reason until the manifest is
-- corrected (seal again) or the snapshot removed. Producers normally seal in the transaction that
-- wrote the day, or after it committed. Callable unqualified (it lives in public); runs as the
-- engine's owner so a producer needs no rights on the engine schema.
create or replace function public.seal_portfolio_day(p_portfolio_id text, p_date date)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_hist text[] := portfolio_timeseries_engine.epoch_keys(p_portfolio_id);
  v_count integer;
begin
  select count(*)::integer into v_count
  from public.daily_position_snapshots s
  where s.portfolio_id = p_portfolio_id and s.date = p_date
    and case when s.security_id = any(v_hist)
             then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio_id, s.security_id, s.date)
             else s.epoch = 0 end;
  insert into public.daily_aggregation_manifest as m (portfolio_id, aggregation_date, expected_count)
  values (p_portfolio_id, p_date, v_count)
  on conflict (portfolio_id, aggregation_date) do update set expected_count = excluded.expected_count;
  return v_count;
end;
$$;
comment on function public.seal_portfolio_day(text, date) is
  'Declare (portfolio, date) complete with the positions that have an effective snapshot now; returns that count.';
