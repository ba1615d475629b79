-- position_state: epochs only move up. Raising a key's epoch with UPDATE starts the new epoch at
-- watermark_date + 1 (the watermark is the last date that stays valid); a row inserted with an
-- epoch applies it to all dates. Either way the effective snapshot of every date from the start
-- may change, so those position days are touched with the change in count they imply.

create function portfolio_timeseries_engine.tg_position_state()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_bad record;
  v_raised record;
  v_touches portfolio_timeseries_engine.touch[];
begin
  if tg_op = 'DELETE' then
    select o.portfolio_id, o.security_id into v_bad from old_rows o order by 1, 2 limit 1;
    raise exception 'position state (portfolio %, security %): deleting a position_state row is refused (epochs only move up)',
      v_bad.portfolio_id, v_bad.security_id using errcode = 'check_violation';
  end if;

  create temp table if not exists pt_raised (
    portfolio_id text, security_id text, epoch integer, start_date date
  ) on commit drop;
  truncate pg_temp.pt_raised;

  if tg_op = 'UPDATE' then
    -- position_state has a primary key, so rows pair up by key; a key change shows as an old
    -- key without a new one.
    select o.portfolio_id, o.security_id into v_bad
    from old_rows o
    where not exists (select 1 from new_rows n
                      where n.portfolio_id = o.portfolio_id and n.security_id = o.security_id)
    order by 1, 2 limit 1;
    if found then
      raise exception 'position state (portfolio %, security %): changing portfolio_id or security_id is refused',
        v_bad.portfolio_id, v_bad.security_id using errcode = 'check_violation';
    end if;

    select n.portfolio_id, n.security_id, o.epoch as old_epoch, n.epoch as new_epoch, n.watermark_date into v_bad
    from old_rows o join new_rows n using (portfolio_id, security_id)
    where n.epoch < o.epoch or (n.epoch > o.epoch and n.watermark_date is null)
    order by 1, 2 limit 1;
    if found then
      if v_bad.new_epoch < v_bad.old_epoch then
        raise exception 'position state (portfolio %, security %): lowering the epoch from % to % is refused',
          v_bad.portfolio_id, v_bad.security_id, v_bad.old_epoch, v_bad.new_epoch using errcode = 'check_violation';
      end if;
      raise exception 'position state (portfolio %, security %): raising the epoch from % to % needs a watermark_date',
        v_bad.portfolio_id, v_bad.security_id, v_bad.old_epoch, v_bad.new_epoch using errcode = 'check_violation';
    end if;

    insert into pg_temp.pt_raised
    select n.portfolio_id, n.security_id, n.epoch, n.watermark_date + 1
    from old_rows o join new_rows n using (portfolio_id, security_id)
    where n.epoch > o.epoch;
  else
    insert into pg_temp.pt_raised
    select n.portfolio_id, n.security_id, n.epoch, '-infinity'::date
    from new_rows n
    where n.epoch > 0;
  end if;

  -- Take each key's row exclusively (snapshot writers lock it too), in key order.
  insert into portfolio_timeseries_engine.position_key as k (portfolio_id, security_id, current_epoch)
  select n.portfolio_id, n.security_id, n.epoch from new_rows n
  order by 1, 2
  on conflict (portfolio_id, security_id) do update set current_epoch = excluded.current_epoch;

  if not exists (select 1 from pg_temp.pt_raised) then
    return null;
  end if;

  -- Per affected date: was there an effective snapshot before, is there one now?
  with per_date as (
    select s.portfolio_id, s.security_id, s.date,
      bool_or(s.epoch = coalesce((
        select max(e.epoch) from portfolio_timeseries_engine.epoch_start e
        where e.portfolio_id = s.portfolio_id and e.security_id = s.security_id and e.start_date <= s.date
      ), 0)) as had,
      bool_or(s.epoch = r.epoch) as has
    from pg_temp.pt_raised r
    join public.daily_position_snapshots s
      on s.portfolio_id = r.portfolio_id and s.security_id = r.security_id and s.date >= r.start_date
    group by s.portfolio_id, s.security_id, s.date
  )
  select coalesce(array_agg(row(d.portfolio_id, d.security_id, d.date, d.has::int - d.had::int)::portfolio_timeseries_engine.touch), '{}')
    into v_touches
  from per_date d
  where d.had or d.has;

  insert into portfolio_timeseries_engine.epoch_start (portfolio_id, security_id, epoch, start_date)
  select r.portfolio_id, r.security_id, r.epoch, r.start_date from pg_temp.pt_raised r;

  -- No snapshot was deleted: position rows whose snapshot stopped being effective stay as the
  -- last complete rows until their day is recomputed (the job removes them then).
  perform portfolio_timeseries_engine.apply_touches(v_touches, false);
  return null;
end;
$$;

create trigger position_state_insert after insert on public.position_state
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_position_state();
create trigger position_state_update after update on public.position_state
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_position_state();
create trigger position_state_delete after delete on public.position_state
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_position_state();
