-- Input triggers. Each one reduces its statement to rows of portfolio_timeseries_engine.change
-- (or reference_change) and wakes the worker; none of them reads another table to decide what
-- the change affects (the job decides that after the commit, see 03_engine_tables.sql). They are
-- statement-level with transition tables (one call per statement, however many rows), and run as
-- the engine's owner (SECURITY DEFINER) so that a producer needs rights on the contract tables
-- only.

-- daily_position_snapshots -------------------------------------------------------------------
create or replace function portfolio_timeseries_engine.tg_snapshots()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_bad record;
begin
  if tg_op in ('INSERT', 'UPDATE') then
    -- A snapshot above its key's current epoch is refused (contract section 3). Reading
    -- position_state here is safe: epochs only go up, so a raise that has not committed yet can
    -- only make this refuse a snapshot that its producer wrote too early.
    select n.portfolio_id, n.security_id, n.date, n.epoch, coalesce(ps.epoch, 0) as current_epoch into v_bad
    from new_rows n
    left join public.position_state ps on ps.portfolio_id = n.portfolio_id and ps.security_id = n.security_id
    where n.epoch > 0 and n.epoch > coalesce(ps.epoch, 0)
    order by n.portfolio_id, n.security_id, n.date
    limit 1;
    if found then
      raise exception 'snapshot (portfolio %, security %, %, epoch %): epoch is above the current epoch % of (portfolio %, security %)',
        v_bad.portfolio_id, v_bad.security_id, v_bad.date, v_bad.epoch, v_bad.current_epoch,
        v_bad.portfolio_id, v_bad.security_id
        using errcode = 'check_violation';
    end if;
  end if;

  if tg_op = 'INSERT' then
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities, epochs)
    select n.portfolio_id, 'S', n.date, n.date, array_agg(n.security_id), array_agg(n.epoch)
    from new_rows n group by n.portfolio_id, n.date;
  elsif tg_op = 'UPDATE' then
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities, epochs)
    select x.portfolio_id, 'S', x.date, x.date, array_agg(x.security_id), array_agg(x.epoch)
    from (select o.portfolio_id, o.security_id, o.date, o.epoch from old_rows o
          union all
          select n.portfolio_id, n.security_id, n.date, n.epoch from new_rows n) x
    group by x.portfolio_id, x.date;
  else
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities, epochs)
    select o.portfolio_id, 'S', o.date, o.date, array_agg(o.security_id), array_agg(o.epoch)
    from old_rows o group by o.portfolio_id, o.date;
  end if;
  if found then
    perform portfolio_timeseries_engine.enqueue_drain();
  end if;
  return null;
end;
$$;

create or replace trigger snapshots_insert after insert on public.daily_position_snapshots
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_snapshots();
create or replace trigger snapshots_update after update on public.daily_position_snapshots
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_snapshots();
create or replace trigger snapshots_delete after delete on public.daily_position_snapshots
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_snapshots();

-- cashflows ------------------------------------------------------------------------------------
-- A flow changes its position day (security flows) or only its portfolio day (NULL security;
-- securities then holds a NULL). There is no epoch filter on cash flows.
create or replace function portfolio_timeseries_engine.tg_cashflows()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities)
    select n.portfolio_id, 'C', n.cashflow_date, n.cashflow_date, array_agg(distinct n.security_id)
    from new_rows n group by n.portfolio_id, n.cashflow_date;
  elsif tg_op = 'UPDATE' then
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities)
    select x.portfolio_id, 'C', x.cashflow_date, x.cashflow_date, array_agg(distinct x.security_id)
    from (select o.portfolio_id, o.security_id, o.cashflow_date from old_rows o
          union all
          select n.portfolio_id, n.security_id, n.cashflow_date from new_rows n) x
    group by x.portfolio_id, x.cashflow_date;
  else
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities)
    select o.portfolio_id, 'C', o.cashflow_date, o.cashflow_date, array_agg(distinct o.security_id)
    from old_rows o group by o.portfolio_id, o.cashflow_date;
  end if;
  if found then
    perform portfolio_timeseries_engine.enqueue_drain();
  end if;
  return null;
end;
$$;

create or replace trigger cashflows_insert after insert on public.cashflows
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_cashflows();
create or replace trigger cashflows_update after update on public.cashflows
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_cashflows();
create or replace trigger cashflows_delete after delete on public.cashflows
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_cashflows();

-- daily_aggregation_manifest ---------------------------------------------------------------------
-- A manifest row declares its day; inserting, updating and deleting are all legal. The job reads
-- the row itself after the commit, so the change only names the day (an UPDATE that leaves a row
-- as it was names nothing).
create or replace function portfolio_timeseries_engine.tg_manifest()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to)
    select n.portfolio_id, 'M', n.aggregation_date, n.aggregation_date from new_rows n;
  elsif tg_op = 'UPDATE' then
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to)
    select x.portfolio_id, 'M', x.aggregation_date, x.aggregation_date
    from (select o.portfolio_id, o.aggregation_date from old_rows o
          where not exists (select 1 from new_rows n where n.portfolio_id = o.portfolio_id
                              and n.aggregation_date = o.aggregation_date and n.expected_count = o.expected_count)
          union
          select n.portfolio_id, n.aggregation_date from new_rows n
          where not exists (select 1 from old_rows o where o.portfolio_id = n.portfolio_id
                              and o.aggregation_date = n.aggregation_date and o.expected_count = n.expected_count)) x;
  else
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to)
    select o.portfolio_id, 'M', o.aggregation_date, o.aggregation_date from old_rows o;
  end if;
  if found then
    perform portfolio_timeseries_engine.enqueue_drain();
  end if;
  return null;
end;
$$;

create or replace trigger manifest_insert after insert on public.daily_aggregation_manifest
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_manifest();
create or replace trigger manifest_update after update on public.daily_aggregation_manifest
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_manifest();
create or replace trigger manifest_delete after delete on public.daily_aggregation_manifest
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_manifest();

-- position_state ---------------------------------------------------------------------------------
-- Epochs only move up. Raising a key's epoch with UPDATE starts the new epoch at
-- watermark_date + 1 (the watermark is the last date that stays valid); a row inserted with an
-- epoch applies it to all dates. Writers of one key take turns on its position_state row, so the
-- epoch history needs no other lock.

-- A key change would make old and new rows impossible to pair (and would move an epoch history
-- to another key): refused row by row, before anything is written.
create or replace function portfolio_timeseries_engine.tg_position_state_key()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception 'position state (portfolio %, security %): changing portfolio_id or security_id is refused',
    old.portfolio_id, old.security_id using errcode = 'check_violation';
end;
$$;

create or replace trigger position_state_key before update on public.position_state
  for each row when (old.portfolio_id is distinct from new.portfolio_id or old.security_id is distinct from new.security_id)
  execute function portfolio_timeseries_engine.tg_position_state_key();

create or replace function portfolio_timeseries_engine.tg_position_state()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_bad record;
begin
  if tg_op = 'DELETE' then
    select o.portfolio_id, o.security_id into v_bad from old_rows o order by 1, 2 limit 1;
    raise exception 'position state (portfolio %, security %): deleting a position_state row is refused (epochs only move up)',
      v_bad.portfolio_id, v_bad.security_id using errcode = 'check_violation';
  end if;

  if tg_op = 'UPDATE' then
    select n.portfolio_id, n.security_id, o.epoch as old_epoch, n.epoch as new_epoch into v_bad
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

    with raised as (
      insert into portfolio_timeseries_engine.epoch_start (portfolio_id, security_id, epoch, start_date)
      select n.portfolio_id, n.security_id, n.epoch, n.watermark_date + 1
      from old_rows o join new_rows n using (portfolio_id, security_id)
      where n.epoch > o.epoch
      returning portfolio_id, security_id, start_date
    )
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities)
    select r.portfolio_id, 'E', r.start_date, 'infinity', array[r.security_id] from raised r;
  else
    with raised as (
      insert into portfolio_timeseries_engine.epoch_start (portfolio_id, security_id, epoch, start_date)
      select n.portfolio_id, n.security_id, n.epoch, '-infinity'
      from new_rows n
      where n.epoch > 0
      returning portfolio_id, security_id, start_date
    )
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities)
    select r.portfolio_id, 'E', r.start_date, 'infinity', array[r.security_id] from raised r;
  end if;
  if found then
    perform portfolio_timeseries_engine.enqueue_drain();
  end if;
  return null;
end;
$$;

create or replace trigger position_state_insert after insert on public.position_state
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_position_state();
create or replace trigger position_state_update after update on public.position_state
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_position_state();
create or replace trigger position_state_delete after delete on public.position_state
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_position_state();

-- portfolios -------------------------------------------------------------------------------------
-- The base currency decides every conversion of a portfolio's days, and an unknown portfolio
-- blocks them: inserting, deleting or re-basing a portfolio changes all its declared days (which
-- ones is for its job to read). Other columns change nothing.
create or replace function portfolio_timeseries_engine.tg_portfolios()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to)
    select n.portfolio_id, 'P', '-infinity', 'infinity' from new_rows n;
  elsif tg_op = 'UPDATE' then
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to)
    select x.portfolio_id, 'P', '-infinity', 'infinity'
    from (select o.portfolio_id from old_rows o
          where not exists (select 1 from new_rows n where n.portfolio_id = o.portfolio_id and n.base_currency = o.base_currency)
          union
          select n.portfolio_id from new_rows n
          where not exists (select 1 from old_rows o where o.portfolio_id = n.portfolio_id and o.base_currency = n.base_currency)) x;
  else
    insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to)
    select o.portfolio_id, 'P', '-infinity', 'infinity' from old_rows o;
  end if;
  if found then
    perform portfolio_timeseries_engine.enqueue_drain();
  end if;
  return null;
end;
$$;

create or replace trigger portfolios_insert after insert on public.portfolios
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_portfolios();
create or replace trigger portfolios_update after update on public.portfolios
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_portfolios();
create or replace trigger portfolios_delete after delete on public.portfolios
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_portfolios();

-- instruments ------------------------------------------------------------------------------------
-- An instrument's currency decides the FX its positions need and the currency its cash flows
-- must have; an unknown instrument blocks its days. Which portfolios hold it is decided after the
-- commit (fan_out). A name change affects nothing.
create or replace function portfolio_timeseries_engine.tg_instruments()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    insert into portfolio_timeseries_engine.reference_change (kind, security_id)
    select 'I', n.security_id from new_rows n;
  elsif tg_op = 'UPDATE' then
    insert into portfolio_timeseries_engine.reference_change (kind, security_id)
    select 'I', x.security_id
    from (select o.security_id from old_rows o
          where not exists (select 1 from new_rows n where n.security_id = o.security_id and n.currency = o.currency)
          union
          select n.security_id from new_rows n
          where not exists (select 1 from old_rows o where o.security_id = n.security_id and o.currency = n.currency)) x;
  else
    insert into portfolio_timeseries_engine.reference_change (kind, security_id)
    select 'I', o.security_id from old_rows o;
  end if;
  if found then
    perform portfolio_timeseries_engine.enqueue_drain();
  end if;
  return null;
end;
$$;

create or replace trigger instruments_insert after insert on public.instruments
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_instruments();
create or replace trigger instruments_update after update on public.instruments
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_instruments();
create or replace trigger instruments_delete after delete on public.instruments
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_instruments();

-- fx_rates ---------------------------------------------------------------------------------------
-- A rate (from, to, d) is the as-of rate of every date from d until the pair's next rate; which
-- portfolios and days that reaches is decided after the commit (fan_out).
create or replace function portfolio_timeseries_engine.tg_fx_rates()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    insert into portfolio_timeseries_engine.reference_change (kind, from_currency, to_currency, rate_date)
    select 'F', n.from_currency, n.to_currency, n.rate_date from new_rows n where n.from_currency <> n.to_currency;
  elsif tg_op = 'UPDATE' then
    insert into portfolio_timeseries_engine.reference_change (kind, from_currency, to_currency, rate_date)
    select 'F', x.from_currency, x.to_currency, x.rate_date
    from (select o.from_currency, o.to_currency, o.rate_date from old_rows o
          union
          select n.from_currency, n.to_currency, n.rate_date from new_rows n) x
    where x.from_currency <> x.to_currency;
  else
    insert into portfolio_timeseries_engine.reference_change (kind, from_currency, to_currency, rate_date)
    select 'F', o.from_currency, o.to_currency, o.rate_date from old_rows o where o.from_currency <> o.to_currency;
  end if;
  if found then
    perform portfolio_timeseries_engine.enqueue_drain();
  end if;
  return null;
end;
$$;

create or replace trigger fx_rates_insert after insert on public.fx_rates
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_fx_rates();
create or replace trigger fx_rates_update after update on public.fx_rates
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_fx_rates();
create or replace trigger fx_rates_delete after delete on public.fx_rates
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_fx_rates();

-- TRUNCATE ---------------------------------------------------------------------------------------
-- TRUNCATE has no transition table: it changes everything of every portfolio the engine knows.
-- It takes an ACCESS EXCLUSIVE lock, so it waits for every transaction that wrote the table and
-- every job that read it; the portfolios this reads are then committed, or still named by the
-- change rows of a job that has not committed (so they are found either way).
-- position_state is the exception: deleting its rows is refused, so truncating it is too.
create or replace function portfolio_timeseries_engine.tg_truncate()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_table_name = 'position_state' then
    raise exception 'position_state: TRUNCATE is refused (deleting a position_state row is refused: epochs only move up)'
      using errcode = 'check_violation';
  end if;
  insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to)
  select p.portfolio_id, 'A', '-infinity', 'infinity'
  from (select d.portfolio_id from portfolio_timeseries_engine.portfolio_day d
        union select c.portfolio_id from portfolio_timeseries_engine.change c
        union select j.portfolio_id from portfolio_timeseries_engine.portfolio_job j) p;
  perform portfolio_timeseries_engine.enqueue_drain();
  return null;
end;
$$;

create or replace trigger snapshots_truncate after truncate on public.daily_position_snapshots
  for each statement execute function portfolio_timeseries_engine.tg_truncate();
create or replace trigger cashflows_truncate after truncate on public.cashflows
  for each statement execute function portfolio_timeseries_engine.tg_truncate();
create or replace trigger manifest_truncate after truncate on public.daily_aggregation_manifest
  for each statement execute function portfolio_timeseries_engine.tg_truncate();
create or replace trigger fx_rates_truncate after truncate on public.fx_rates
  for each statement execute function portfolio_timeseries_engine.tg_truncate();
create or replace trigger instruments_truncate after truncate on public.instruments
  for each statement execute function portfolio_timeseries_engine.tg_truncate();
create or replace trigger portfolios_truncate after truncate on public.portfolios
  for each statement execute function portfolio_timeseries_engine.tg_truncate();
create or replace trigger position_state_truncate before truncate on public.position_state
  for each statement execute function portfolio_timeseries_engine.tg_truncate();
