-- daily_aggregation_manifest: the producer's declaration that a portfolio-day is complete once it
-- has expected_count positions. A change touches its day and the next declared day (whose BOD is
-- this day's EOD). Deleting a manifest row removes that day's portfolio row.

create function portfolio_timeseries_engine.manifest_changed(p_old_keys portfolio_timeseries_engine.touch[],
  p_new_rows portfolio_timeseries_engine.touch[])
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_touches portfolio_timeseries_engine.touch[];
begin
  -- count_delta carries expected_count in p_new_rows. Keys that only appear in p_old_keys are now
  -- undeclared.
  with changed as (
    select k.portfolio_id, k.date, null::integer as expected
    from unnest(p_old_keys) k
    where not exists (select 1 from unnest(p_new_rows) n where n.portfolio_id = k.portfolio_id and n.date = k.date)
    union
    select n.portfolio_id, n.date, n.count_delta from unnest(p_new_rows) n
  ), next_declared as (
    select c.portfolio_id, nx.aggregation_date as date
    from changed c
    cross join lateral (
      select m.aggregation_date from public.daily_aggregation_manifest m
      where m.portfolio_id = c.portfolio_id and m.aggregation_date > c.date
      order by m.aggregation_date limit 1) nx
  ), all_days as (
    select c.portfolio_id, c.date, true as is_changed, c.expected from changed c
    union all
    select x.portfolio_id, x.date, false, null from next_declared x
    where not exists (select 1 from changed c where c.portfolio_id = x.portfolio_id and c.date = x.date)
  ), upserted as (
    -- One statement locks every day this change needs, in key order; apply_touches then only
    -- re-enters rows this transaction already holds.
    insert into portfolio_timeseries_engine.portfolio_day as pd (portfolio_id, date, expected_count, dirty)
    select d.portfolio_id, d.date, d.expected, true
    from (select distinct on (portfolio_id, date) * from all_days order by portfolio_id, date, is_changed desc) d
    order by d.portfolio_id, d.date
    on conflict (portfolio_id, date) do update
      set expected_count = case when excluded.dirty and (pd.portfolio_id, pd.date) in (select c.portfolio_id, c.date from changed c)
                                then excluded.expected_count else pd.expected_count end
    returning pd.portfolio_id, pd.date
  )
  select coalesce(array_agg(row(u.portfolio_id, null, u.date, 0)::portfolio_timeseries_engine.touch), '{}')
    into v_touches
  from upserted u;

  delete from public.portfolio_timeseries pt
  using unnest(p_old_keys) k
  where pt.portfolio_id = k.portfolio_id and pt.date = k.date
    and not exists (select 1 from public.daily_aggregation_manifest m
                    where m.portfolio_id = k.portfolio_id and m.aggregation_date = k.date);

  perform portfolio_timeseries_engine.apply_touches(v_touches);
end;
$$;

create function portfolio_timeseries_engine.tg_manifest()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old portfolio_timeseries_engine.touch[] := '{}';
  v_new portfolio_timeseries_engine.touch[] := '{}';
begin
  if tg_op in ('UPDATE', 'DELETE') then
    select coalesce(array_agg(row(o.portfolio_id, null, o.aggregation_date, o.expected_count)::portfolio_timeseries_engine.touch), '{}')
      into v_old from old_rows o;
  end if;
  if tg_op in ('UPDATE', 'INSERT') then
    select coalesce(array_agg(row(n.portfolio_id, null, n.aggregation_date, n.expected_count)::portfolio_timeseries_engine.touch), '{}')
      into v_new from new_rows n;
  end if;
  perform portfolio_timeseries_engine.manifest_changed(v_old, v_new);
  return null;
end;
$$;

create trigger manifest_insert after insert on public.daily_aggregation_manifest
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_manifest();
create trigger manifest_update after update on public.daily_aggregation_manifest
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_manifest();
create trigger manifest_delete after delete on public.daily_aggregation_manifest
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_manifest();

-- seal_portfolio_day: declare the day complete with the positions it has now. The day's counter
-- row is read FOR UPDATE, so a snapshot write still in flight is either counted (it committed
-- first) or waits and is then counted against the declared number.
create function public.seal_portfolio_day(p_portfolio_id text, p_date date)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_count integer;
begin
  insert into portfolio_timeseries_engine.portfolio_day (portfolio_id, date, position_count)
  values (p_portfolio_id, p_date, 0)
  on conflict do nothing;
  select pd.position_count into v_count
  from portfolio_timeseries_engine.portfolio_day pd
  where pd.portfolio_id = p_portfolio_id and pd.date = p_date
  for update;
  insert into public.daily_aggregation_manifest as m (portfolio_id, aggregation_date, expected_count)
  values (p_portfolio_id, p_date, v_count)
  on conflict (portfolio_id, aggregation_date) do update set expected_count = excluded.expected_count;
  return v_count;
end;
$$;
comment on function public.seal_portfolio_day(text, date) is
  'Declare (portfolio, date) complete with the positions that have an effective snapshot now; returns that count.';
