-- daily_position_snapshots: a snapshot write changes its position day (and the day's count when
-- the snapshot is the effective one) and the key's next position day (whose BOD it is).
-- An UPDATE is handled as the removal of the old row plus the arrival of the new one: for a value
-- correction the -1 and +1 cancel and only the touches remain.

create type portfolio_timeseries_engine.snapshot_ref as (
  portfolio_id text,
  security_id text,
  date date,
  epoch integer
);

create function portfolio_timeseries_engine.snapshots_changed(
  p_old portfolio_timeseries_engine.snapshot_ref[], p_new portfolio_timeseries_engine.snapshot_ref[])
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_bad record;
  v_touches portfolio_timeseries_engine.touch[];
begin
  -- Make sure every key has a position_key row, then lock it until commit. Two things depend on
  -- what other transactions write to the same key: the effective epoch (an epoch change UPDATEs
  -- this row) and the key's next position day (whose BOD this snapshot is). A shared lock would
  -- let two writers of one key each miss the other's uncommitted snapshot: one inserting D2
  -- between D1 and D3 while the other inserts D3 would leave D3's BOD on D1 for good when D2 is
  -- an undeclared day. Writers of one key therefore take turns; the one that waited reads the
  -- other's committed rows in the statements below (READ COMMITTED, a new snapshot per statement).
  insert into portfolio_timeseries_engine.position_key (portfolio_id, security_id)
  select distinct n.portfolio_id, n.security_id from unnest(p_new) n
  order by 1, 2
  on conflict do nothing;

  perform 1
  from portfolio_timeseries_engine.position_key k
  where (k.portfolio_id, k.security_id) in (
    select r.portfolio_id, r.security_id from unnest(p_old) r
    union
    select r.portfolio_id, r.security_id from unnest(p_new) r)
  order by k.portfolio_id, k.security_id
  for no key update of k;

  select n.*, k.current_epoch into v_bad
  from unnest(p_new) n
  join portfolio_timeseries_engine.position_key k
    on k.portfolio_id = n.portfolio_id and k.security_id = n.security_id
  where n.epoch > k.current_epoch
  order by n.portfolio_id, n.security_id, n.date
  limit 1;
  if found then
    raise exception 'snapshot (portfolio %, security %, %, epoch %): epoch is above the current epoch % of (portfolio %, security %)',
      v_bad.portfolio_id, v_bad.security_id, v_bad.date, v_bad.epoch, v_bad.current_epoch,
      v_bad.portfolio_id, v_bad.security_id
      using errcode = 'check_violation';
  end if;

  -- Only rows at their effective epoch count; others are ignored (design section 3).
  with changed as (
    select r.portfolio_id, r.security_id, r.date, r.epoch, -1 as delta from unnest(p_old) r
    union all
    select r.portfolio_id, r.security_id, r.date, r.epoch, 1 from unnest(p_new) r
  ), effective as (
    select c.portfolio_id, c.security_id, c.date, c.delta
    from changed c
    where c.epoch = coalesce((
      select max(e.epoch) from portfolio_timeseries_engine.epoch_start e
      where e.portfolio_id = c.portfolio_id and e.security_id = c.security_id and e.start_date <= c.date
    ), 0)
  ), own as (
    select coalesce(array_agg(row(e.portfolio_id, e.security_id, e.date, e.delta)::portfolio_timeseries_engine.touch), '{}') as t
    from effective e
  )
  select own.t || portfolio_timeseries_engine.next_position_touches(own.t) into v_touches
  from own;

  perform portfolio_timeseries_engine.apply_touches(v_touches, cardinality(p_old) > 0);
end;
$$;

create function portfolio_timeseries_engine.tg_snapshots()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old portfolio_timeseries_engine.snapshot_ref[] := '{}';
  v_new portfolio_timeseries_engine.snapshot_ref[] := '{}';
begin
  if tg_op in ('UPDATE', 'DELETE') then
    select coalesce(array_agg(row(o.portfolio_id, o.security_id, o.date, o.epoch)::portfolio_timeseries_engine.snapshot_ref), '{}')
      into v_old from old_rows o;
  end if;
  if tg_op in ('UPDATE', 'INSERT') then
    select coalesce(array_agg(row(n.portfolio_id, n.security_id, n.date, n.epoch)::portfolio_timeseries_engine.snapshot_ref), '{}')
      into v_new from new_rows n;
  end if;
  perform portfolio_timeseries_engine.snapshots_changed(v_old, v_new);
  return null;
end;
$$;

create trigger snapshots_insert after insert on public.daily_position_snapshots
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_snapshots();
create trigger snapshots_update after update on public.daily_position_snapshots
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_snapshots();
create trigger snapshots_delete after delete on public.daily_position_snapshots
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_snapshots();
