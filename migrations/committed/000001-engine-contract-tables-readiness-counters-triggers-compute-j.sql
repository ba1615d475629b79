--! Previous: -
--! Hash: sha1:806c58d76fdd869cf80789a94cc851ef571a0ca7
--! Message: engine: contract tables, readiness counters, triggers, compute job, status

-- >>> sql/00_schema.sql
-- Engine internals live apart from the contract tables so that producers and readers only ever
-- see the tables design section 2 names; everything in `portfolio_timeseries_engine` may change
-- between versions.
create schema portfolio_timeseries_engine;
comment on schema portfolio_timeseries_engine is
  'Internals of portfolio-timeseries: readiness counters, dirty sets, epoch history, functions.';

-- >>> sql/01_validation.sql
-- Row checks that refuse bad input at write time. They are CHECK constraints (so COPY, INSERT and
-- UPDATE all pass through them and no trigger can be skipped) of the form
--   check (case when <condition> then true else refuse(<row key>, <message>) end)
-- refuse() raises an error whose message names the row's key: a constraint violation alone would
-- only name the constraint, and a producer loading a million rows needs to know which one is
-- wrong. CASE (not OR) guarantees the message is only built for a failing row: building it for
-- every row cost about 30% of a raw COPY (docs/performance.md).

create function portfolio_timeseries_engine.refuse(p_row text, p_message text)
returns boolean
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception '%: %', p_row, p_message using errcode = 'check_violation';
end;
$$;

-- For invariants the engine relies on: abort the statement (and the job's transaction) with a
-- message, from inside a set-based statement.
create function portfolio_timeseries_engine.internal_error(p_message text)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception 'internal: %', p_message;
end;
$$;

-- >>> sql/02_contract_tables.sql
-- The contract tables of design section 2. Producers write plain INSERT/UPDATE/DELETE naming only
-- these columns; anything the engine needs beyond them lives in portfolio_timeseries_engine.
-- There are no foreign keys between inputs on purpose: upstream services write in any order, and
-- a reference that is missing for now (unknown instrument, unknown portfolio) blocks the day with
-- a reason instead of refusing the row (design section 3, "Blocked, with a reason").
-- numeric(30, 10): 20 integer digits and 10 decimals.

create table public.portfolios (
  portfolio_id text primary key,
  base_currency text not null,
  open_date date not null,
  close_date date,
  constraint portfolios_base_currency_check check (case when base_currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('portfolio %s', portfolio_id), format('base_currency must be 3 upper-case letters, got %s', quote_nullable(base_currency))) end)
);

create table public.instruments (
  security_id text primary key,
  currency text not null,
  name text,
  constraint instruments_currency_check check (case when currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('instrument %s', security_id), format('currency must be 3 upper-case letters, got %s', quote_nullable(currency))) end)
);

create table public.fx_rates (
  from_currency text not null,
  to_currency text not null,
  rate_date date not null,
  rate numeric(30, 10) not null,
  primary key (from_currency, to_currency, rate_date),
  constraint fx_rates_from_currency_check check (case when from_currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('fx rate %s->%s on %s', from_currency, to_currency, rate_date), format('from_currency must be 3 upper-case letters, got %s', quote_nullable(from_currency))) end),
  constraint fx_rates_to_currency_check check (case when to_currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('fx rate %s->%s on %s', from_currency, to_currency, rate_date), format('to_currency must be 3 upper-case letters, got %s', quote_nullable(to_currency))) end),
  constraint fx_rates_rate_check check (case when rate > 0 then true else portfolio_timeseries_engine.refuse(
    format('fx rate %s->%s on %s', from_currency, to_currency, rate_date),
    format('rate must be > 0, got %s', rate)) end)
);

create table public.cashflows (
  transaction_id text primary key,
  portfolio_id text not null,
  security_id text,
  cashflow_date date not null,
  epoch integer not null default 0,
  amount numeric(30, 10) not null,
  currency text not null,
  classification text not null,
  timing text not null,
  is_position_flow boolean not null,
  is_portfolio_flow boolean not null,
  constraint cashflows_currency_check check (case when currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('cash flow %s (portfolio %s, security %s, %s)',
      transaction_id, portfolio_id, coalesce(security_id, 'NULL'), cashflow_date), format('currency must be 3 upper-case letters, got %s', quote_nullable(currency))) end),
  constraint cashflows_timing_check check (case when timing in ('BOD', 'EOD') then true else portfolio_timeseries_engine.refuse(
    format('cash flow %s (portfolio %s, security %s, %s)',
      transaction_id, portfolio_id, coalesce(security_id, 'NULL'), cashflow_date),
    format('timing must be BOD or EOD, got %s', coalesce(quote_literal(timing), 'NULL'))) end)
);
create index cashflows_portfolio_date_idx on public.cashflows (portfolio_id, cashflow_date, security_id);
create index cashflows_security_idx on public.cashflows (security_id) where security_id is not null;

create table public.position_state (
  portfolio_id text not null,
  security_id text not null,
  epoch integer not null default 0,
  watermark_date date,
  status text,
  primary key (portfolio_id, security_id),
  constraint position_state_epoch_check check (case when epoch >= 0 then true else portfolio_timeseries_engine.refuse(
    format('position state (portfolio %s, security %s)', portfolio_id, security_id),
    format('epoch must be >= 0, got %s', epoch)) end)
);

create table public.daily_position_snapshots (
  id bigint generated by default as identity primary key,
  portfolio_id text not null,
  security_id text not null,
  date date not null,
  epoch integer not null default 0,
  quantity numeric(30, 10) not null,
  cost_basis numeric(30, 10),
  cost_basis_local numeric(30, 10),
  market_price numeric(30, 10),
  market_value numeric(30, 10),
  market_value_local numeric(30, 10),
  valuation_status text not null default 'UNVALUED',
  constraint daily_position_snapshots_key unique (portfolio_id, security_id, date, epoch),
  constraint daily_position_snapshots_valuation_status_check check (case when valuation_status in ('UNVALUED', 'VALUED_CURRENT', 'VALUED_STALE', 'FAILED') then true else portfolio_timeseries_engine.refuse(
    format('snapshot (portfolio %s, security %s, %s, epoch %s)', portfolio_id, security_id, date, epoch),
    format('valuation_status must be UNVALUED, VALUED_CURRENT, VALUED_STALE or FAILED, got %s',
      coalesce(quote_literal(valuation_status), 'NULL'))) end)
);
-- (portfolio_id, date): a day's positions; (security_id): an instrument change finds its days.
create index daily_position_snapshots_day_idx on public.daily_position_snapshots (portfolio_id, date);
create index daily_position_snapshots_security_idx on public.daily_position_snapshots (security_id);

create table public.daily_aggregation_manifest (
  portfolio_id text not null,
  aggregation_date date not null,
  expected_count integer not null,
  primary key (portfolio_id, aggregation_date),
  constraint daily_aggregation_manifest_expected_count_check check (case when expected_count >= 0 then true else portfolio_timeseries_engine.refuse(
    format('manifest (portfolio %s, %s)', portfolio_id, aggregation_date),
    format('expected_count must be >= 0, got %s', expected_count)) end)
);

-- Outputs: written only by the engine.
create table public.position_timeseries (
  portfolio_id text not null,
  security_id text not null,
  date date not null,
  epoch integer not null,
  bod_market_value numeric(30, 10) not null,
  bod_cashflow_position numeric(30, 10) not null,
  eod_cashflow_position numeric(30, 10) not null,
  bod_cashflow_portfolio numeric(30, 10) not null,
  eod_cashflow_portfolio numeric(30, 10) not null,
  eod_market_value numeric(30, 10) not null,
  fees numeric(30, 10) not null,
  quantity numeric(30, 10) not null,
  cost numeric(30, 10) not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (portfolio_id, security_id, date)
);
create index position_timeseries_day_idx on public.position_timeseries (portfolio_id, date);

create table public.portfolio_timeseries (
  portfolio_id text not null,
  date date not null,
  epoch integer not null,
  bod_market_value numeric(30, 10) not null,
  bod_cashflow numeric(30, 10) not null,
  eod_cashflow numeric(30, 10) not null,
  eod_market_value numeric(30, 10) not null,
  fees numeric(30, 10) not null,
  position_count integer not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (portfolio_id, date)
);

-- >>> sql/03_engine_state.sql
-- Engine state. Everything here is derived from the contract tables and kept up to date by the
-- statement-level triggers in 06_triggers_*.sql.

-- One row per portfolio-day that has ever had a snapshot, a manifest row or a change.
--   position_count  how many securities have an effective snapshot that day. Kept as a counter
--                   (incremented under the row lock by every trigger) rather than recounted: a
--                   recount inside two concurrent READ COMMITTED transactions can miss the flip
--                   to complete, a counter cannot. No CHECK (>= 0) here: PostgreSQL checks the
--                   proposed row of an INSERT ... ON CONFLICT before it finds the conflict, so a
--                   negative delta would be refused; apply_touches checks the result instead.
--   expected_count  copy of daily_aggregation_manifest.expected_count; NULL = undeclared.
--   dirty           the day's portfolio row is not current (inputs changed since it was built).
--   blocked_reason  why the last job could not build the day; cleared by any change to the day.
-- The row lock on this row is also the serialisation point between writers and the job that
-- computes the day: every change that affects (portfolio, date) updates this row, and the job
-- locks it while computing, so no change can commit between the job's reads and its writes.
create table portfolio_timeseries_engine.portfolio_day (
  portfolio_id text not null,
  date date not null,
  position_count integer not null default 0,
  expected_count integer,
  dirty boolean not null default true,
  blocked_reason text,
  computed_count bigint not null default 0,
  computed_at timestamptz,
  primary key (portfolio_id, date)
);
-- The job and the sweep look for the first dirty declared day of a portfolio.
create index portfolio_day_dirty_idx on portfolio_timeseries_engine.portfolio_day (portfolio_id, date)
  where dirty and expected_count is not null;

-- Position days whose position_timeseries row must be rebuilt when their day is next computed.
create table portfolio_timeseries_engine.dirty_position (
  portfolio_id text not null,
  date date not null,
  security_id text not null,
  primary key (portfolio_id, date, security_id)
);

-- One row per (portfolio, security) the engine has seen. current_epoch mirrors position_state;
-- the row lock serialises every writer of the key (snapshot triggers lock it, epoch changes update
-- it), so that "is this snapshot effective?", the counters and "which day is the key's next
-- position day" never depend on another transaction's uncommitted rows. It exists even when
-- position_state has no row (epoch 0), which position_state itself cannot provide.
create table portfolio_timeseries_engine.position_key (
  portfolio_id text not null,
  security_id text not null,
  current_epoch integer not null default 0,
  primary key (portfolio_id, security_id)
);

-- Epoch history: epoch `epoch` of the key applies from start_date ('-infinity' for the epoch a
-- position_state row was inserted with). Epoch 0 from '-infinity' is implicit.
create table portfolio_timeseries_engine.epoch_start (
  portfolio_id text not null,
  security_id text not null,
  epoch integer not null,
  start_date date not null,
  primary key (portfolio_id, security_id, epoch)
);
create index epoch_start_by_date_idx on portfolio_timeseries_engine.epoch_start
  (portfolio_id, security_id, start_date, epoch);

-- Work done, for operators and for tests that prove a change recomputes only what it affects.
create table portfolio_timeseries_engine.work_counter (
  portfolio_id text primary key,
  jobs bigint not null default 0,
  portfolio_days bigint not null default 0,
  position_days bigint not null default 0,
  bod_updates bigint not null default 0
);

-- A touch: "this (portfolio, security, date) may have changed"; security_id NULL touches only the
-- portfolio day; count_delta adjusts position_count.
create type portfolio_timeseries_engine.touch as (
  portfolio_id text,
  security_id text,
  date date,
  count_delta integer
);

-- >>> sql/04_effective.sql
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

-- >>> sql/05_touch.sql
-- Marking work and enqueueing jobs. Every trigger reduces its statement to a set of touches and
-- hands them here, so readiness, dirtiness and enqueueing follow one rule for every input table.

-- Enqueue one compute job per portfolio (job_key per portfolio: a backfill is one job, not one
-- per day). graphile-worker replaces a queued job with the same key and, when the keyed job is
-- already running, de-keys it and adds a new one, so a change that commits during a run is
-- always followed by another run.
create function portfolio_timeseries_engine.enqueue(p_portfolios text[])
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_portfolio text;
begin
  -- One add_job call per portfolio, in portfolio order. A single add_jobs call with several specs
  -- locks rows in two phases (it first de-keys running jobs, then upserts queued ones), so two
  -- statements enqueueing overlapping portfolios could lock them in different orders and
  -- deadlock; the randomised test saw about one in a thousand transactions do so.
  for v_portfolio in select distinct p from unnest(p_portfolios) p where p is not null order by 1 loop
    perform graphile_worker.add_job(
      'portfolio_timeseries:compute_portfolio',
      json_build_object('portfolio_id', v_portfolio),
      job_key := 'portfolio_timeseries:' || v_portfolio);
  end loop;
end;
$$;

-- Apply a statement's touches:
--  1. bump each portfolio-day once, in (portfolio, date) order (no deadlocks between statements
--     of this engine), adjusting position_count and marking it dirty;
--  2. record the dirty position days;
--  3. when p_drop_vanished, delete position rows whose effective snapshot no longer exists
--     (design section 2: deleting a day's effective snapshot removes its position row);
--  4. enqueue the portfolios of touched days that are declared and complete, in this transaction.
create function portfolio_timeseries_engine.apply_touches(
  p_touches portfolio_timeseries_engine.touch[], p_drop_vanished boolean default false)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ready text[];
  v_negative text;
begin
  if coalesce(cardinality(p_touches), 0) = 0 then
    return;
  end if;

  with days as (
    select t.portfolio_id, t.date, sum(t.count_delta)::integer as delta
    from unnest(p_touches) t
    where t.portfolio_id is not null and t.date is not null
    group by t.portfolio_id, t.date
  ), bumped as (
    insert into portfolio_timeseries_engine.portfolio_day as pd (portfolio_id, date, position_count, dirty)
    select d.portfolio_id, d.date, d.delta, true
    from days d
    order by d.portfolio_id, d.date
    on conflict (portfolio_id, date) do update
      set position_count = pd.position_count + excluded.position_count,
          dirty = true,
          blocked_reason = null
    returning pd.portfolio_id, pd.date, pd.expected_count, pd.position_count
  )
  select array_agg(distinct b.portfolio_id) filter (where b.expected_count is not null and b.position_count = b.expected_count),
         (array_agg(row(b.portfolio_id, b.date, b.position_count)::text) filter (where b.position_count < 0))[1]
    into v_ready, v_negative
  from bumped b;
  if v_negative is not null then
    raise exception 'internal: position count below zero for (portfolio, date, count) %', v_negative;
  end if;

  insert into portfolio_timeseries_engine.dirty_position (portfolio_id, date, security_id)
  select distinct t.portfolio_id, t.date, t.security_id
  from unnest(p_touches) t
  where t.security_id is not null and t.portfolio_id is not null and t.date is not null
  order by 1, 2, 3
  on conflict do nothing;

  if p_drop_vanished then
    delete from public.position_timeseries pt
    using (select distinct t.portfolio_id, t.security_id, t.date from unnest(p_touches) t
           where t.security_id is not null) x
    where pt.portfolio_id = x.portfolio_id and pt.security_id = x.security_id and pt.date = x.date
      and not exists (
        select 1 from portfolio_timeseries_engine.effective_snapshots s
        where s.portfolio_id = x.portfolio_id and s.security_id = x.security_id and s.date = x.date);
  end if;

  perform portfolio_timeseries_engine.enqueue(v_ready);
end;
$$;

-- Touches for "the key's next position day": the first date after D with an effective snapshot of
-- the key, whose BOD comes from D.
create function portfolio_timeseries_engine.next_position_touches(p_keys portfolio_timeseries_engine.touch[])
returns portfolio_timeseries_engine.touch[]
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(array_agg(row(k.portfolio_id, k.security_id, n.date, 0)::portfolio_timeseries_engine.touch), '{}')
  from (select distinct t.portfolio_id, t.security_id, t.date from unnest(p_keys) t) k
  cross join lateral (
    select s.date from portfolio_timeseries_engine.effective_snapshots s
    where s.portfolio_id = k.portfolio_id and s.security_id = k.security_id and s.date > k.date
    order by s.date
    limit 1
  ) n
$$;

-- >>> sql/06_snapshot_triggers.sql
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

-- >>> sql/07_epoch_triggers.sql
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

-- >>> sql/08_manifest.sql
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

-- >>> sql/09_input_triggers.sql
-- Cash flows, FX rates, instruments and portfolios. None of them changes a day's position count;
-- each touches exactly the days whose outputs it can change (design section 4).

-- A cash flow changes its position day (security flows) or only its portfolio day (NULL-security
-- flows). There is no epoch filter on cash flows.
create function portfolio_timeseries_engine.tg_cashflows()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_touches portfolio_timeseries_engine.touch[] := '{}';
begin
  if tg_op in ('UPDATE', 'DELETE') then
    select v_touches || coalesce(array_agg(row(o.portfolio_id, o.security_id, o.cashflow_date, 0)::portfolio_timeseries_engine.touch), '{}')
      into v_touches from old_rows o;
  end if;
  if tg_op in ('UPDATE', 'INSERT') then
    select v_touches || coalesce(array_agg(row(n.portfolio_id, n.security_id, n.cashflow_date, 0)::portfolio_timeseries_engine.touch), '{}')
      into v_touches from new_rows n;
  end if;
  perform portfolio_timeseries_engine.apply_touches(v_touches);
  return null;
end;
$$;

create trigger cashflows_insert after insert on public.cashflows
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_cashflows();
create trigger cashflows_update after update on public.cashflows
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_cashflows();
create trigger cashflows_delete after delete on public.cashflows
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_cashflows();

-- An FX rate (from, to, d) is the as-of rate of every date from d until the pair's next rate. It
-- changes the declared portfolio days in that range of portfolios whose base is `to` and that
-- need `from` (an instrument of a position, or a NULL-security portfolio flow). Position rows are
-- in local currency and are not touched.
create type portfolio_timeseries_engine.fx_ref as (
  from_currency text,
  to_currency text,
  rate_date date
);

create function portfolio_timeseries_engine.fx_changed(p_refs portfolio_timeseries_engine.fx_ref[])
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_touches portfolio_timeseries_engine.touch[];
begin
  with changed as (
    select distinct r.from_currency, r.to_currency, r.rate_date from unnest(p_refs) r
    where r.from_currency <> r.to_currency
  ), ranges as (
    select c.*, (select min(f.rate_date) from public.fx_rates f
                 where f.from_currency = c.from_currency and f.to_currency = c.to_currency
                   and f.rate_date > c.rate_date) as until
    from changed c
  )
  select coalesce(array_agg(distinct row(pd.portfolio_id, null, pd.date, 0)::portfolio_timeseries_engine.touch), '{}')
    into v_touches
  from ranges r
  join public.portfolios p on p.base_currency = r.to_currency
  join portfolio_timeseries_engine.portfolio_day pd
    on pd.portfolio_id = p.portfolio_id and pd.expected_count is not null
   and pd.date >= r.rate_date and (r.until is null or pd.date < r.until)
  where exists (
      select 1 from portfolio_timeseries_engine.effective_snapshots s
      join public.instruments i on i.security_id = s.security_id
      where s.portfolio_id = pd.portfolio_id and s.date = pd.date and i.currency = r.from_currency)
    or exists (
      select 1 from public.cashflows c
      where c.portfolio_id = pd.portfolio_id and c.cashflow_date = pd.date and c.security_id is null
        and c.is_portfolio_flow and c.currency = r.from_currency);
  perform portfolio_timeseries_engine.apply_touches(v_touches);
end;
$$;

create function portfolio_timeseries_engine.tg_fx_rates()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_refs portfolio_timeseries_engine.fx_ref[] := '{}';
begin
  if tg_op in ('UPDATE', 'DELETE') then
    select v_refs || coalesce(array_agg(row(o.from_currency, o.to_currency, o.rate_date)::portfolio_timeseries_engine.fx_ref), '{}')
      into v_refs from old_rows o;
  end if;
  if tg_op in ('UPDATE', 'INSERT') then
    select v_refs || coalesce(array_agg(row(n.from_currency, n.to_currency, n.rate_date)::portfolio_timeseries_engine.fx_ref), '{}')
      into v_refs from new_rows n;
  end if;
  perform portfolio_timeseries_engine.fx_changed(v_refs);
  return null;
end;
$$;

create trigger fx_rates_insert after insert on public.fx_rates
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_fx_rates();
create trigger fx_rates_update after update on public.fx_rates
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_fx_rates();
create trigger fx_rates_delete after delete on public.fx_rates
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_fx_rates();

-- An instrument's currency decides the FX its positions need and the currency its cash flows must
-- have; an unknown instrument blocks its days. Inserting, deleting or re-currencying one touches
-- every position day of that security (a name change touches nothing).
create function portfolio_timeseries_engine.tg_instruments()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_securities text[] := '{}';
  v_touches portfolio_timeseries_engine.touch[];
begin
  if tg_op = 'UPDATE' then
    select coalesce(array_agg(distinct x.security_id), '{}') into v_securities
    from (
      select o.security_id from old_rows o
      where not exists (select 1 from new_rows n where n.security_id = o.security_id and n.currency = o.currency)
      union
      select n.security_id from new_rows n
      where not exists (select 1 from old_rows o where o.security_id = n.security_id and o.currency = n.currency)
    ) x;
  elsif tg_op = 'INSERT' then
    select coalesce(array_agg(n.security_id), '{}') into v_securities from new_rows n;
  else
    select coalesce(array_agg(o.security_id), '{}') into v_securities from old_rows o;
  end if;
  if cardinality(v_securities) = 0 then
    return null;
  end if;

  select coalesce(array_agg(row(x.portfolio_id, x.security_id, x.date, 0)::portfolio_timeseries_engine.touch), '{}')
    into v_touches
  from (
    select s.portfolio_id, s.security_id, s.date
    from portfolio_timeseries_engine.effective_snapshots s
    where s.security_id = any(v_securities)
    union
    select c.portfolio_id, c.security_id, c.cashflow_date
    from public.cashflows c
    where c.security_id = any(v_securities)
  ) x;
  perform portfolio_timeseries_engine.apply_touches(v_touches);
  return null;
end;
$$;

create trigger instruments_insert after insert on public.instruments
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_instruments();
create trigger instruments_update after update on public.instruments
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_instruments();
create trigger instruments_delete after delete on public.instruments
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_instruments();

-- A portfolio's base currency decides every conversion of its days; an unknown portfolio blocks
-- them. Inserting, deleting or changing the base currency touches every declared day.
create function portfolio_timeseries_engine.tg_portfolios()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_portfolios text[] := '{}';
  v_touches portfolio_timeseries_engine.touch[];
begin
  if tg_op = 'UPDATE' then
    select coalesce(array_agg(distinct x.portfolio_id), '{}') into v_portfolios
    from (
      select o.portfolio_id from old_rows o
      where not exists (select 1 from new_rows n where n.portfolio_id = o.portfolio_id and n.base_currency = o.base_currency)
      union
      select n.portfolio_id from new_rows n
      where not exists (select 1 from old_rows o where o.portfolio_id = n.portfolio_id and o.base_currency = n.base_currency)
    ) x;
  elsif tg_op = 'INSERT' then
    select coalesce(array_agg(n.portfolio_id), '{}') into v_portfolios from new_rows n;
  else
    select coalesce(array_agg(o.portfolio_id), '{}') into v_portfolios from old_rows o;
  end if;
  if cardinality(v_portfolios) = 0 then
    return null;
  end if;

  select coalesce(array_agg(row(pd.portfolio_id, null, pd.date, 0)::portfolio_timeseries_engine.touch), '{}')
    into v_touches
  from portfolio_timeseries_engine.portfolio_day pd
  where pd.portfolio_id = any(v_portfolios) and pd.expected_count is not null;
  perform portfolio_timeseries_engine.apply_touches(v_touches);
  return null;
end;
$$;

create trigger portfolios_insert after insert on public.portfolios
  referencing new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_portfolios();
create trigger portfolios_update after update on public.portfolios
  referencing old table as old_rows new table as new_rows
  for each statement execute function portfolio_timeseries_engine.tg_portfolios();
create trigger portfolios_delete after delete on public.portfolios
  referencing old table as old_rows
  for each statement execute function portfolio_timeseries_engine.tg_portfolios();

-- >>> sql/10_block_reasons.sql
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

-- >>> sql/11_compute.sql
-- The job: compute every ready dirty day of one portfolio, in date order, set-based.
--
-- "Ready" means declared, complete (position_count = expected_count), not blocked, and its
-- previous declared day current (or computed earlier in the same run). The run takes the dirty
-- declared days from the first one up to (not including) the first that is not ready, builds
-- their position rows and portfolio rows in a handful of statements, and records why it stopped. Stage 2 BOD is the previous declared
-- day's EOD, which for a day in the same run is that day's new EOD (EOD never depends on BOD, so
-- the whole run is one pass). A changed EOD updates the next declared day's BOD and stops there:
-- that day's own EOD cannot change because of it (the cascade's early cutoff).
create function portfolio_timeseries_engine.compute_portfolio(p_portfolio text)
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
-- Every statement here reads one portfolio through an index on (portfolio_id, ...). The planner
-- cannot estimate the effective-epoch filter (a correlated max()) and picks bitmap scans that
-- read a key's whole history and sort it for each "previous effective snapshot" lookup instead of
-- walking the index backwards (a 50-position, 250-day backfill: 16.8 s without these settings,
-- 10.3 s with them, before the other fixes in docs/performance.md).
set enable_bitmapscan = off
set enable_seqscan = off
as $$
declare
  v_first date;
  v_incomplete record;
  v_stop date;
  v_stop_reason text;
  v_days date[];
  v_base text;
  v_claimed portfolio_timeseries_engine.touch[];
  v_changed date[];
  v_positions integer := 0;
  v_bod_updates integer := 0;
  v_fix date[];
  v_locked date[];
  v_candidates date[];
begin
  -- Two keyed jobs of one portfolio can run at once (a running job is de-keyed, not replaced):
  -- they take turns here.
  perform pg_advisory_xact_lock(hashtextextended('portfolio_timeseries:' || p_portfolio, 0));

  -- Lock the rows of the days this run may compute (every dirty declared day from the first one)
  -- and of each one's previous declared day, FOR UPDATE in date order. Writers update these rows
  -- for every change, so from here until commit nothing can change a day of the run or the day its
  -- BOD comes from; a writer that waits here commits afterwards and re-enqueues. Other days (the
  -- next day a producer is loading, current days further back) are not locked, so their writers
  -- do not wait for the run. A day declared meanwhile between two locked days touches the later
  -- one, so its transaction waits too.
  loop
    select min(pd.date) into v_first
    from portfolio_timeseries_engine.portfolio_day pd
    where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null;
    if v_first is null then
      return jsonb_build_object('portfolio_id', p_portfolio, 'portfolio_days', 0, 'position_days', 0, 'bod_updates', 0);
    end if;
    select coalesce(array_agg(l.date order by l.date), '{}') into v_locked
    from (
      with run as (
        select d.date from portfolio_timeseries_engine.portfolio_day d
        where d.portfolio_id = p_portfolio and d.dirty and d.expected_count is not null and d.date >= v_first
      )
      select pd.date
      from portfolio_timeseries_engine.portfolio_day pd
      where pd.portfolio_id = p_portfolio
        and pd.date in (
          select r.date from run r
          union
          select (select max(m.date) from portfolio_timeseries_engine.portfolio_day m
                  where m.portfolio_id = p_portfolio and m.expected_count is not null and m.date < r.date)
          from run r)
      order by pd.date
      for update of pd
    ) l;
    exit when not exists (
      select 1 from portfolio_timeseries_engine.portfolio_day pd
      where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null and pd.date < v_first);
  end loop;

  select p.base_currency into v_base from public.portfolios p where p.portfolio_id = p_portfolio;

  -- The run's candidates: the locked days that are dirty and declared (read after the locks).
  v_candidates := array(
    select pd.date from portfolio_timeseries_engine.portfolio_day pd
    where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null
      and pd.date = any(v_locked)
    order by pd.date);

  -- Where the run stops: the first candidate that is incomplete or blocked.
  select pd.date, pd.position_count, pd.expected_count into v_incomplete
  from portfolio_timeseries_engine.portfolio_day pd
  where pd.portfolio_id = p_portfolio and pd.date = any(v_candidates)
    and pd.position_count <> pd.expected_count
  order by pd.date limit 1;

  select b.date, b.reason into v_stop, v_stop_reason
  from portfolio_timeseries_engine.block_reasons(p_portfolio, array(
    select c from unnest(v_candidates) c where c < coalesce(v_incomplete.date, 'infinity'))) b
  order by b.date limit 1;

  if v_stop is null and v_incomplete.date is not null then
    v_stop := v_incomplete.date;
    if v_incomplete.position_count > v_incomplete.expected_count then
      v_stop_reason := format('%s positions exist but %s declared', v_incomplete.position_count, v_incomplete.expected_count);
    end if;
  end if;

  v_days := array(select c from unnest(v_candidates) c where c < coalesce(v_stop, 'infinity') order by c);

  if cardinality(v_days) > 0 then
    -- Stage 1 for the claimed dirty position days of the run.
    with claimed as (
      delete from portfolio_timeseries_engine.dirty_position dp
      where dp.portfolio_id = p_portfolio and dp.date = any(v_days)
      returning dp.security_id, dp.date
    )
    select coalesce(array_agg(row(p_portfolio, c.security_id, c.date, 0)::portfolio_timeseries_engine.touch), '{}')
      into v_claimed
    from claimed c;

    insert into public.position_timeseries as pt (
      portfolio_id, security_id, date, epoch, bod_market_value,
      bod_cashflow_position, eod_cashflow_position, bod_cashflow_portfolio, eod_cashflow_portfolio,
      eod_market_value, fees, quantity, cost)
    select p_portfolio, c.security_id, c.date, s.epoch, coalesce(b.market_value_local, 0),
      coalesce(f.bod_position, 0), coalesce(f.eod_position, 0),
      coalesce(f.bod_portfolio, 0), coalesce(f.eod_portfolio, 0),
      s.market_value_local, coalesce(f.fees, 0), s.quantity,
      case when s.quantity = 0 or s.cost_basis_local is null then 0
           else round(s.cost_basis_local::numeric(60, 30) / s.quantity, 10) end
    from unnest(v_claimed) c
    join portfolio_timeseries_engine.effective_snapshots s
      on s.portfolio_id = p_portfolio and s.security_id = c.security_id and s.date = c.date
    left join lateral (
      select e.market_value_local
      from portfolio_timeseries_engine.effective_snapshots e
      where e.portfolio_id = p_portfolio and e.security_id = c.security_id and e.date < c.date
      order by e.date desc limit 1) b on true
    left join lateral (
      select
        sum(cf.amount) filter (where cf.is_position_flow and cf.timing = 'BOD') as bod_position,
        sum(cf.amount) filter (where cf.is_position_flow and cf.timing = 'EOD') as eod_position,
        sum(cf.amount) filter (where cf.is_portfolio_flow and cf.timing = 'BOD') as bod_portfolio,
        sum(cf.amount) filter (where cf.is_portfolio_flow and cf.timing = 'EOD') as eod_portfolio,
        sum(abs(cf.amount)) filter (where cf.is_portfolio_flow and cf.classification = 'EXPENSE') as fees
      from public.cashflows cf
      where cf.portfolio_id = p_portfolio and cf.security_id = c.security_id and cf.cashflow_date = c.date) f on true
    on conflict (portfolio_id, security_id, date) do update set
      epoch = excluded.epoch,
      bod_market_value = excluded.bod_market_value,
      bod_cashflow_position = excluded.bod_cashflow_position,
      eod_cashflow_position = excluded.eod_cashflow_position,
      bod_cashflow_portfolio = excluded.bod_cashflow_portfolio,
      eod_cashflow_portfolio = excluded.eod_cashflow_portfolio,
      eod_market_value = excluded.eod_market_value,
      fees = excluded.fees,
      quantity = excluded.quantity,
      cost = excluded.cost,
      updated_at = now();
    get diagnostics v_positions = row_count;

    delete from public.position_timeseries pt
    using unnest(v_claimed) c
    where pt.portfolio_id = p_portfolio and pt.security_id = c.security_id and pt.date = c.date
      and not exists (select 1 from portfolio_timeseries_engine.effective_snapshots s
                      where s.portfolio_id = p_portfolio and s.security_id = c.security_id and s.date = c.date);

    -- Stage 2 for every day of the run.
    with days as (
      select unnest(v_days) as date
    ), positions as (
      select s.date, count(*)::integer as n, count(pt.security_id)::integer as n_rows,
        sum(s.market_value) as eod, max(s.epoch) as epoch,
        sum(pt.bod_cashflow_portfolio * r.rate) as bod_cashflow,
        sum(pt.eod_cashflow_portfolio * r.rate) as eod_cashflow,
        sum(pt.fees * r.rate) as fees
      from days d
      join portfolio_timeseries_engine.effective_snapshots s on s.portfolio_id = p_portfolio and s.date = d.date
      join public.instruments i on i.security_id = s.security_id
      -- A primary-key probe per position, whatever the statistics say (OFFSET 0 keeps the planner
      -- from flattening it into a join): with statistics taken while position_timeseries was
      -- nearly empty it chose a nested loop over the portfolio's whole range, 11.5 s for 250 days.
      left join lateral (
        select x.security_id, x.bod_cashflow_portfolio, x.eod_cashflow_portfolio, x.fees
        from public.position_timeseries x
        where x.portfolio_id = p_portfolio and x.security_id = s.security_id and x.date = s.date
        offset 0) pt on true
      cross join lateral (
        select case when i.currency = v_base then 1::numeric else (
          select x.rate from public.fx_rates x
          where x.from_currency = i.currency and x.to_currency = v_base and x.rate_date <= s.date
          order by x.rate_date desc limit 1) end as rate) r
      group by s.date
    ), portfolio_flows as (
      select c.cashflow_date as date,
        sum(c.amount * r.rate) filter (where c.timing = 'BOD') as bod_cashflow,
        sum(c.amount * r.rate) filter (where c.timing = 'EOD') as eod_cashflow,
        sum(abs(c.amount) * r.rate) filter (where c.classification = 'EXPENSE') as fees
      from days d
      join public.cashflows c
        on c.portfolio_id = p_portfolio and c.cashflow_date = d.date and c.security_id is null and c.is_portfolio_flow
      cross join lateral (
        select case when c.currency = v_base then 1::numeric else (
          select x.rate from public.fx_rates x
          where x.from_currency = c.currency and x.to_currency = v_base and x.rate_date <= c.cashflow_date
          order by x.rate_date desc limit 1) end as rate) r
      group by c.cashflow_date
    ), vals as (
      select d.date,
        coalesce(p.n, 0) as n,
        coalesce(p.n_rows, 0) as n_rows,
        coalesce(p.epoch, 0) as epoch,
        coalesce(p.eod, 0) as eod,
        coalesce(p.bod_cashflow, 0) + coalesce(f.bod_cashflow, 0) as bod_cashflow,
        coalesce(p.eod_cashflow, 0) + coalesce(f.eod_cashflow, 0) as eod_cashflow,
        coalesce(p.fees, 0) + coalesce(f.fees, 0) as fees,
        (select max(m.date) from portfolio_timeseries_engine.portfolio_day m
         where m.portfolio_id = p_portfolio and m.expected_count is not null and m.date < d.date) as prev_date
      from days d
      left join positions p on p.date = d.date
      left join portfolio_flows f on f.date = d.date
    ), old as (
      select pt.date, pt.eod_market_value
      from public.portfolio_timeseries pt
      where pt.portfolio_id = p_portfolio and pt.date = any(v_days)
    ), upserted as (
      insert into public.portfolio_timeseries as pt (
        portfolio_id, date, epoch, bod_market_value, bod_cashflow, eod_cashflow, eod_market_value, fees, position_count)
      select p_portfolio, v.date, v.epoch,
        round(case
          when v.prev_date is null then 0
          when v.prev_date = any(v_days) then (select v2.eod from vals v2 where v2.date = v.prev_date)
          else (select pp.eod_market_value from public.portfolio_timeseries pp
                where pp.portfolio_id = p_portfolio and pp.date = v.prev_date)
        end, 10),
        round(v.bod_cashflow, 10), round(v.eod_cashflow, 10), round(v.eod, 10), round(v.fees, 10),
        -- Every position of the day has a current row by now; a missing one is an engine bug and
        -- must abort the run rather than become a portfolio row built from part of its day.
        case when v.n_rows = v.n then v.n else portfolio_timeseries_engine.internal_error(format(
          'portfolio %s, %s: %s positions but %s position rows while computing the day',
          p_portfolio, v.date, v.n, v.n_rows)) end
      from vals v
      on conflict (portfolio_id, date) do update set
        epoch = excluded.epoch,
        bod_market_value = excluded.bod_market_value,
        bod_cashflow = excluded.bod_cashflow,
        eod_cashflow = excluded.eod_cashflow,
        eod_market_value = excluded.eod_market_value,
        fees = excluded.fees,
        position_count = excluded.position_count,
        updated_at = now()
      returning pt.date, pt.eod_market_value
    )
    select coalesce(array_agg(u.date order by u.date), '{}') into v_changed
    from upserted u left join old o on o.date = u.date
    where o.eod_market_value is distinct from u.eod_market_value;

    -- Cascade with early cutoff: the next declared day of a changed day, when it is current and
    -- outside the run, takes the new EOD as its BOD; nothing beyond it changes. In a backfill the
    -- next day is almost always inside the run, so the list is usually empty.
    select coalesce(array_agg(x.next_date), '{}') into v_fix
    from (
      select (select min(m.date) from portfolio_timeseries_engine.portfolio_day m
              where m.portfolio_id = p_portfolio and m.expected_count is not null and m.date > c.date) as next_date
      from unnest(v_changed) c(date)
    ) x
    where x.next_date is not null and not (x.next_date = any(v_days))
      and x.next_date < coalesce(v_stop, 'infinity');

    if cardinality(v_fix) > 0 then
      update public.portfolio_timeseries pt
      set bod_market_value = prev.eod_market_value, updated_at = now()
      from unnest(v_fix) f(date)
      cross join lateral (
        select pp.eod_market_value from public.portfolio_timeseries pp
        where pp.portfolio_id = p_portfolio and pp.date < f.date
        order by pp.date desc limit 1) prev
      where pt.portfolio_id = p_portfolio and pt.date = f.date
        and pt.bod_market_value is distinct from prev.eod_market_value;
      get diagnostics v_bod_updates = row_count;
    end if;

    update portfolio_timeseries_engine.portfolio_day pd
    set dirty = false, blocked_reason = null, computed_count = pd.computed_count + 1, computed_at = now()
    where pd.portfolio_id = p_portfolio and pd.date = any(v_days);
  end if;

  if v_stop is not null then
    update portfolio_timeseries_engine.portfolio_day pd
    set blocked_reason = v_stop_reason
    where pd.portfolio_id = p_portfolio and pd.date = v_stop
      and pd.blocked_reason is distinct from v_stop_reason;
  end if;

  insert into portfolio_timeseries_engine.work_counter as w (portfolio_id, jobs, portfolio_days, position_days, bod_updates)
  values (p_portfolio, 1, cardinality(v_days), v_positions, v_bod_updates)
  on conflict (portfolio_id) do update set
    jobs = w.jobs + 1,
    portfolio_days = w.portfolio_days + excluded.portfolio_days,
    position_days = w.position_days + excluded.position_days,
    bod_updates = w.bod_updates + excluded.bod_updates;

  return jsonb_build_object(
    'portfolio_id', p_portfolio,
    'portfolio_days', cardinality(v_days),
    'position_days', v_positions,
    'bod_updates', v_bod_updates,
    'stopped_at', v_stop,
    'stop_reason', v_stop_reason);
end;
$$;

-- >>> sql/12_status_sweep.sql
-- Status of every portfolio-day (design section 5) and the sweep that re-enqueues ready work.

-- States, in the order they are decided:
--   undeclared            snapshots but no manifest row
--   waiting               fewer positions than declared ("k of n")
--   blocked               more positions than declared, or the last run stopped here and said why
--   current               the row is up to date
--   waiting_previous_day  an earlier declared day is not current (its date and state are named)
--   queued                ready, not computed yet
create function portfolio_timeseries_engine.status(p_portfolio text default null)
returns table (portfolio_id text, date date, state text, detail text, has_row boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with days as (
    select pd.*,
      min(pd.date) filter (where pd.dirty and pd.expected_count is not null)
        over (partition by pd.portfolio_id order by pd.date rows between unbounded preceding and 1 preceding)
        as first_not_current_before
    from portfolio_timeseries_engine.portfolio_day pd
    where (p_portfolio is null or pd.portfolio_id = p_portfolio)
  ), decided as (
    select d.portfolio_id, d.date,
      case
        when d.expected_count is null then 'undeclared'
        when d.position_count < d.expected_count then 'waiting'
        when d.position_count > d.expected_count then 'blocked'
        when not d.dirty then 'current'
        when d.first_not_current_before is not null then 'waiting_previous_day'
        when d.blocked_reason is not null then 'blocked'
        else 'queued'
      end as state,
      d.position_count, d.expected_count, d.blocked_reason, d.first_not_current_before
    from days d
    where d.expected_count is not null or d.position_count > 0
  )
  select x.portfolio_id, x.date, x.state,
    case x.state
      when 'undeclared' then format('%s positions, no manifest row', x.position_count)
      when 'waiting' then format('%s of %s', x.position_count, x.expected_count)
      when 'blocked' then coalesce(x.blocked_reason,
        format('%s positions exist but %s declared', x.position_count, x.expected_count))
      when 'waiting_previous_day' then format('waiting for %s', x.first_not_current_before)
      when 'queued' then 'ready, not computed yet'
      else null
    end as detail,
    exists (select 1 from public.portfolio_timeseries pt
            where pt.portfolio_id = x.portfolio_id and pt.date = x.date) as has_row
  from decided x
  order by x.portfolio_id, x.date
$$;

-- Safety net (run by the crontab task and at worker start): enqueue every portfolio whose first
-- dirty declared day is complete and not known to be blocked. It covers jobs lost with a killed
-- worker (graphile-worker would otherwise leave them locked for 4 hours) and anything an
-- enqueue could have missed. Blocked days are not re-enqueued: the change that unblocks them
-- touches them and enqueues then.
create function portfolio_timeseries_engine.sweep()
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_portfolios text[];
begin
  select coalesce(array_agg(f.portfolio_id order by f.portfolio_id), '{}') into v_portfolios
  from (
    select distinct on (pd.portfolio_id) pd.portfolio_id, pd.position_count, pd.expected_count, pd.blocked_reason
    from portfolio_timeseries_engine.portfolio_day pd
    where pd.dirty and pd.expected_count is not null
    order by pd.portfolio_id, pd.date
  ) f
  where f.position_count = f.expected_count and f.blocked_reason is null;
  perform portfolio_timeseries_engine.enqueue(v_portfolios);
  return cardinality(v_portfolios);
end;
$$;

-- >>> sql/13_returns.sql
-- The read side (issue #10): time-weighted and money-weighted returns and risk, computed from the
-- two output tables. Everything here only reads; it never writes an input, an output or engine
-- state. The formulas and conventions are stated, with a worked example, in docs/methodology.md
-- ("Returns and risk"); this file says why each function is shaped the way it is.
--
-- Arithmetic is numeric throughout. Quantities that cannot be exact (a quotient, a product of
-- many daily factors, a root of the XIRR equation) are carried to 30 decimal places, rounded half
-- away from zero; the XIRR search works at 60. A numeric quotient only has about 20 significant
-- digits unless its dividend carries more decimals, so every dividend is given its scale first
-- (round(x, 40) / n, never round(x / n, 40)).

-- Which days of a range the read side may use. "Current" is the engine's notion (status), and the
-- engine's internals are free to change; this function is the one place the read side asks, so a
-- new engine only has to reimplement its body (set-based on its own state) and every return,
-- risk and missing-day report follows. p_portfolios NULL means every portfolio. A day that the
-- engine knows of (it has snapshots or a manifest row) and that is not current comes back with
-- is_current false: the read side reports it as missing instead of silently skipping it.
-- This body asks status() and inherits its cost (status computes every day of the portfolio, and
-- of the book for NULL); docs/performance.md has the figures. A set-based body must keep one plan
-- per case (NULL / an array): "p_portfolios is null or ..." in a generic plan scans the whole book
-- for one portfolio, and a UNION ALL of both cases still starts parallel workers for the branch
-- that never runs.
create or replace function portfolio_timeseries_engine.current_days(p_portfolios text[], p_from date, p_to date)
returns table (portfolio_id text, date date, is_current boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select s.portfolio_id, s.date, s.state = 'current'
  from portfolio_timeseries_engine.status(null) s
  where p_portfolios is null and s.date between p_from and p_to
  union all
  select s.portfolio_id, s.date, s.state = 'current'
  from (select distinct u.portfolio_id from unnest(p_portfolios) as u(portfolio_id)) p
  cross join lateral portfolio_timeseries_engine.status(p.portfolio_id) s
  where s.date between p_from and p_to
$$;

-- A product of many daily growth factors cannot stay exact: each numeric multiplication adds
-- the factors' decimals. This step keeps the wealth index at 30 decimal places after every day,
-- so a 10-year product costs the same per day as a 1-day one and the rounding is stated once.
create or replace function public.portfolio_wealth_step(p_wealth numeric, p_return numeric)
returns numeric
language plpgsql immutable strict parallel safe
set search_path = pg_catalog, pg_temp
as $$
begin
  return round(p_wealth * (1 + p_return), 30);
end;
$$;

-- The wealth index as an ordinary aggregate, so that cumulative returns are a window function
-- (portfolio_wealth(r) over (order by date)) over one portfolio or partitioned over many.
-- Starts at 1; each day multiplies by (1 + r).
create or replace aggregate public.portfolio_wealth(numeric) (
  sfunc = public.portfolio_wealth_step,
  stype = numeric,
  initcond = '1',
  parallel = safe
);

-- Named periods are resolved in SQL, not in each client, so the CLI, the library and any query
-- service agree on what "3Y as of D" means. Trailing years end on D and start the day after the
-- same date N years earlier; SI starts on the portfolio's open_date.
create or replace function public.portfolio_period(p_portfolio text, p_period text, p_as_of date)
returns table (period_from date, period_to date)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_open date;
begin
  if p_as_of is null or not isfinite(p_as_of) then
    raise exception 'portfolio_period: as-of date must be a finite date, got %', coalesce(p_as_of::text, 'NULL');
  end if;
  period_to := p_as_of;
  case upper(coalesce(p_period, ''))
    when 'MTD' then period_from := date_trunc('month', p_as_of)::date;
    when 'QTD' then period_from := date_trunc('quarter', p_as_of)::date;
    when 'YTD' then period_from := date_trunc('year', p_as_of)::date;
    when '1Y' then period_from := (p_as_of - interval '1 year')::date + 1;
    when '3Y' then period_from := (p_as_of - interval '3 years')::date + 1;
    when '5Y' then period_from := (p_as_of - interval '5 years')::date + 1;
    when 'SI' then
      select p.open_date into v_open from public.portfolios p where p.portfolio_id = p_portfolio;
      if not found then
        raise exception 'portfolio %: unknown (no row in portfolios), so it has no inception date', p_portfolio;
      end if;
      period_from := v_open;
    else
      raise exception 'period must be one of MTD, QTD, YTD, SI, 1Y, 3Y, 5Y, got %', coalesce(p_period, 'NULL');
  end case;
  return next;
end;
$$;

-- The range a return is computed over. A range never starts before the portfolio's open_date: a
-- 5Y figure for a 2-year-old portfolio would otherwise be annualised over 5 years, 3 of which had
-- no money in them. The single-portfolio functions take their range, and the calendar-day count
-- behind every annualisation, from here (portfolio_twr_all applies the same clamp in its query).
-- An unknown portfolio, or one that opened after the range, is an error that says which, rather
-- than an empty answer that looks like "no return".
create or replace function public.portfolio_range(p_portfolio text, p_from date, p_to date)
returns table (range_from date, range_to date, days integer)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_open date;
begin
  if p_from is null or p_to is null or not isfinite(p_from) or not isfinite(p_to) then
    raise exception 'range: from and to must be finite dates, got % and %', coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL');
  end if;
  if p_from > p_to then
    raise exception 'range: from % is after to %', p_from, p_to;
  end if;
  select p.open_date into v_open from public.portfolios p where p.portfolio_id = p_portfolio;
  if not found then
    raise exception 'portfolio %: unknown (no row in portfolios)', p_portfolio;
  end if;
  if v_open > p_to then
    raise exception 'portfolio %: opened on %, after the range ends (%)', p_portfolio, v_open, p_to;
  end if;
  range_from := greatest(p_from, v_open);
  range_to := p_to;
  days := p_to - range_from + 1;
  return next;
end;
$$;

-- One row per day of [p_from, p_to] that the read side can use or must report, for any number of
-- portfolios (NULL = all): every current day with a portfolio_timeseries row (is_current, with
-- its daily return), and every day that is not usable (is_current false, values NULL): a declared
-- day that is waiting, blocked, queued or waiting for an earlier day, an undeclared day with
-- snapshots, and a row the engine does not vouch for. A stale row is never used: while a day is
-- recomputed its last complete row stays in the table, but its return would be the old one.
-- The range is taken as given (callers clamp it to the open date) and rows come unordered: the
-- book-wide caller would otherwise pay for a sort of every row it then groups anyway.
--   daily return r = (EOD - BOD - BOD_CF - EOD_CF [- fees for NET]) / (BOD + BOD_CF), 30 places;
--   zero_base: the denominator is 0, r is 0 by convention and the day is flagged.
create or replace function public.portfolio_daily_returns(p_portfolios text[], p_from date, p_to date, p_basis text default 'GROSS')
returns table (portfolio_id text, date date, is_current boolean, daily_return numeric, zero_base boolean,
               bod_market_value numeric, bod_cashflow numeric, eod_cashflow numeric, eod_market_value numeric, fees numeric)
language plpgsql stable
rows 100000
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_custom_plan
as $$
#variable_conflict use_column
begin
  if p_basis is null or p_basis not in ('GROSS', 'NET') then
    raise exception 'basis must be GROSS or NET, got %', coalesce(p_basis, 'NULL');
  end if;
  if p_from is null or p_to is null then
    raise exception 'range: from and to must be dates, got % and %', coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL');
  end if;
  if p_from > p_to then
    raise exception 'range: from % is after to %', p_from, p_to;
  end if;
  -- force_custom_plan: the plan for one portfolio (index scans) and for the whole book (scans and
  -- hash joins) differ, and "p_portfolios is null or ..." only simplifies with the value known.
  -- One flat join, no CTEs: the plan is made on every call, and this shape plans fastest.
  return query
  select coalesce(t.portfolio_id, c.portfolio_id), coalesce(t.date, c.date), u.usable,
         case when not u.usable then null
              when t.den = 0 then 0::numeric
              else round(round(t.num, 34) / t.den, 30) end,
         case when u.usable then t.den = 0 end,
         case when u.usable then t.bod_market_value end,
         case when u.usable then t.bod_cashflow end,
         case when u.usable then t.eod_cashflow end,
         case when u.usable then t.eod_market_value end,
         case when u.usable then t.fees end
  from (
    select s.portfolio_id, s.date, s.bod_market_value, s.bod_cashflow, s.eod_cashflow, s.eod_market_value, s.fees,
           s.eod_market_value - s.bod_market_value - s.bod_cashflow - s.eod_cashflow
             - case when p_basis = 'NET' then s.fees else 0 end as num,
           s.bod_market_value + s.bod_cashflow as den
    from public.portfolio_timeseries s
    where (p_portfolios is null or s.portfolio_id = any (p_portfolios)) and s.date between p_from and p_to
  ) t
  full join portfolio_timeseries_engine.current_days(p_portfolios, p_from, p_to) c
    on c.portfolio_id = t.portfolio_id and c.date = t.date
  cross join lateral (select t.date is not null and c.is_current is true as usable) u;
end;
$$;

-- Per-day time-weighted return of one portfolio: the usable days with their daily return and the
-- cumulative return to that day (each day counted once: the product starts at the range's first
-- usable day, never at the day before it).
create or replace function public.portfolio_twr_daily(p_portfolio text, p_from date, p_to date, p_basis text default 'GROSS')
returns table (date date, daily_return numeric, cumulative_return numeric, zero_base boolean)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_from date;
begin
  select r.range_from into v_from from public.portfolio_range(p_portfolio, p_from, p_to) r;
  return query
  select d.date, d.daily_return, public.portfolio_wealth(d.daily_return) over (order by d.date) - 1, d.zero_base
  from public.portfolio_daily_returns(array[p_portfolio], v_from, p_to, p_basis) d
  where d.is_current
  order by d.date;
end;
$$;

-- The period summary for any number of portfolios in one statement (NULL = every portfolio that
-- is open by p_to): a query service asking for a book's YTD must not loop over portfolios. Each
-- portfolio's range is clamped to its open date, as portfolio_range does. twr is NULL when the
-- range has no usable day (there is nothing to compound, and 0 would claim a flat period);
-- annualised only for ranges longer than 365 calendar days and only while 1 + twr >= 0.
create or replace function public.portfolio_twr_all(p_from date, p_to date, p_basis text default 'GROSS', p_portfolios text[] default null)
returns table (portfolio_id text, range_from date, range_to date, basis text, days integer, day_count integer,
               twr numeric, twr_annualised numeric, zero_base_days date[], missing_days date[])
language plpgsql stable
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_custom_plan
as $$
#variable_conflict use_column
begin
  return query
  with g as (
    select p.portfolio_id, greatest(p_from, p.open_date) as range_from, p_to - greatest(p_from, p.open_date) + 1 as days
    from public.portfolios p
    where (p_portfolios is null or p.portfolio_id = any (p_portfolios))
      and p.open_date <= p_to
  ), chained as (
    -- The product as a window over the days in date order, read on each portfolio's last row:
    -- an aggregate with its own ORDER BY sorts its input again (measured: 6 ms of 14 for 10 years).
    select g.portfolio_id, g.range_from, g.days, d.date, d.is_current, d.zero_base,
           public.portfolio_wealth(d.daily_return) filter (where d.is_current) over w as wealth,
           lead(d.date) over w is null as is_last
    from g
    left join public.portfolio_daily_returns(p_portfolios, p_from, p_to, p_basis) d
      on d.portfolio_id = g.portfolio_id and d.date >= g.range_from
    window w as (partition by g.portfolio_id order by d.date)
  ), per as (
    select c.portfolio_id, c.range_from, c.days,
           count(*) filter (where c.is_current)::integer as day_count,
           max(c.wealth) filter (where c.is_last) as wealth,
           coalesce(array_agg(c.date order by c.date) filter (where c.is_current and c.zero_base), '{}') as zero_base_days,
           coalesce(array_agg(c.date order by c.date) filter (where not c.is_current), '{}') as missing_days
    from chained c
    group by c.portfolio_id, c.range_from, c.days
  )
  select p.portfolio_id, p.range_from, p_to, p_basis, p.days, p.day_count,
         case when p.day_count > 0 then p.wealth - 1 end,
         case when p.day_count > 0 and p.days > 365 and p.wealth >= 0
              then round(power(round(p.wealth, 40), round(365.25, 40) / p.days) - 1, 30) end,
         p.zero_base_days, p.missing_days
  from per p
  order by p.portfolio_id;
end;
$$;

-- The period summary of one portfolio: portfolio_twr_all restricted to it. The guard only runs
-- when there is no row, to say why (unknown portfolio, range before its open date, bad range).
create or replace function public.portfolio_twr(p_portfolio text, p_from date, p_to date, p_basis text default 'GROSS')
returns table (portfolio_id text, range_from date, range_to date, basis text, days integer, day_count integer,
               twr numeric, twr_annualised numeric, zero_base_days date[], missing_days date[])
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
begin
  return query select a.* from public.portfolio_twr_all(p_from, p_to, p_basis, array[p_portfolio]) a;
  if not found then
    perform 1 from public.portfolio_range(p_portfolio, p_from, p_to);
  end if;
end;
$$;

-- NPV of the investor's amounts at a daily discount factor v, and v times its derivative: the two
-- numbers every XIRR step needs, in one pass. Offsets are whole days, so v^k is an integer power
-- (repeated multiplication at v's scale) instead of an exp/ln per amount. PL/pgSQL rather than
-- SQL only so that its plan is cached: a SQL function is planned again on every call, and the
-- solver calls this a dozen times.
--   npv = sum(a_k v^k),  slope = sum(k a_k v^k) = v * d(npv)/dv
create or replace function public.portfolio_xirr_npv(p_amounts numeric[], p_days integer[], p_factor numeric,
                                                     out npv numeric, out slope numeric)
language plpgsql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
begin
  select coalesce(sum(x.a * x.p), 0), coalesce(sum(x.k * x.a * x.p), 0) into npv, slope
  from (select u.a, u.k, power(p_factor, u.k::numeric) as p from unnest(p_amounts, p_days) as u(a, k)) x;
end;
$$;

-- XIRR: the annual rate r at which the amounts, each at its day offset (time = days / 365), have
-- zero present value. It works on the daily factor v = (1 + r)^(-1/365), where the equation is a
-- polynomial with whole-day exponents. It must not diverge and must say when there is no answer:
--   * amounts at the same offset are summed; with no positive or no negative amount there is no
--     rate (reason 'no sign change in the cash flows');
--   * a bracket with a sign change is found first, searching outward from a 0% rate: first on
--     the side where a root must lie (when the first and last amounts have opposite signs), then
--     on the other side (finer steps: roots there come in pairs); the search stops at period
--     growth factors of 10^30 and 10^-30, and says so when it found nothing;
--   * inside the bracket, Newton steps, replaced by a (geometric) bisection whenever a step would
--     leave the bracket or not halve the error: it converges always;
--   * it stops when a step moves v by less than 1e-25 relative, so the rate is solved far below
--     the 1e-10 the issue asks for.
create or replace function public.portfolio_xirr(p_amounts numeric[], p_days integer[])
returns table (rate numeric, reason text)
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
declare
  c_scale constant integer := 60;
  c_tol constant numeric := 1e-25;
  c_max_log_growth constant numeric := 69.0775527898213705205397436405309262280330446588631892809; -- ln(10^30)
  -- Search steps in x = ln(period growth factor), outward from 0.
  c_coarse constant numeric[] := array[0.125, 0.5, 2, 8, 32, c_max_log_growth];
  c_fine constant numeric[] := array[0.015625, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, c_max_log_growth];
  v_a numeric[];
  v_k integer[];
  v_span integer;
  v_first numeric;
  v_last numeric;
  v_g0 numeric;
  v_ladder numeric[];
  v_guaranteed integer := 0;
  v_side integer;
  v_sides integer[];
  v_x numeric;
  v_prev_v numeric;
  v_prev_g numeric;
  v_v numeric;
  v_g numeric;
  v_h numeric;
  v_lo numeric;
  v_hi numeric;
  v_glo numeric;
  v_ghi numeric;
  v_next numeric;
  v_step numeric;
  v_step_before numeric;
  v_found boolean := false;
  v_step_ok boolean;
begin
  if p_amounts is null or p_days is null or cardinality(p_amounts) <> cardinality(p_days) then
    raise exception 'portfolio_xirr: amounts and days must be arrays of the same length';
  end if;
  -- Sum per offset, drop zero sums, shift the offsets to start at 0 (the root does not move).
  select array_agg(s.a order by s.k), array_agg(s.k - s.k0 order by s.k)
    into v_a, v_k
  from (
    select u.k, sum(u.a) as a, min(u.k) over () as k0
    from unnest(p_amounts, p_days) as u(a, k)
    where u.a is not null and u.k is not null
    group by u.k
    having sum(u.a) <> 0
  ) s;
  if v_a is null then
    return query select null::numeric, 'no cash flows'::text;
    return;
  end if;
  if not (0 < any (v_a) and 0 > any (v_a)) then
    return query select null::numeric, 'no sign change in the cash flows'::text;
    return;
  end if;
  v_span := v_k[cardinality(v_k)];
  v_first := v_a[1];
  v_last := v_a[cardinality(v_a)];

  -- x is the log of the period growth factor: v = exp(-x / span); x > 0 is a positive rate.
  select n.npv into v_g0 from public.portfolio_xirr_npv(v_a, v_k, 1) n;
  if v_g0 = 0 then
    return query select 0::numeric, null::text;
    return;
  end if;
  if sign(v_first) <> sign(v_last) then
    -- npv -> first amount as v -> 0 and -> last amount as v -> infinity: a root lies on the side
    -- of v = 1 where npv still has to change sign (it may lie beyond the search's limit; then
    -- the other side is searched too).
    v_guaranteed := case when sign(v_g0) <> sign(v_first) then 1 else -1 end;
    v_sides := array[v_guaranteed, -v_guaranteed];
  else
    v_sides := array[1, -1];
  end if;

  <<search>>
  foreach v_side in array v_sides loop
    v_prev_v := 1;
    v_prev_g := v_g0;
    -- Where no root is guaranteed there may be none, or two close together: a ladder fine enough
    -- to separate roots a few percent of period growth apart.
    v_ladder := case when v_side = v_guaranteed then c_coarse else c_fine end;
    foreach v_x in array v_ladder loop
      v_v := round(exp(-(v_side * round(v_x, c_scale)) / v_span), c_scale);
      select n.npv into v_g from public.portfolio_xirr_npv(v_a, v_k, v_v) n;
      if v_g = 0 then
        return query select round(power(v_v, -365::numeric) - 1, 30), null::text;
        return;
      end if;
      if sign(v_g) <> sign(v_prev_g) then
        -- v decreases as x grows.
        if v_side = 1 then
          v_lo := v_v; v_glo := v_g; v_hi := v_prev_v; v_ghi := v_prev_g;
        else
          v_hi := v_v; v_ghi := v_g; v_lo := v_prev_v; v_glo := v_prev_g;
        end if;
        v_found := true;
        exit search;
      end if;
      v_prev_v := v_v;
      v_prev_g := v_g;
    end loop;
  end loop;
  if not v_found then
    return query select null::numeric,
      'no rate found: no sign change of the present value for period growth between 10^-30 and 10^30'::text;
    return;
  end if;

  -- Safeguarded Newton (Numerical Recipes' rtsafe) from the regula falsi point of the bracket.
  v_v := round(v_lo - v_glo * (v_hi - v_lo) / (v_ghi - v_glo), c_scale);
  if not (v_v > v_lo and v_v < v_hi) then
    v_v := round(sqrt(v_lo * v_hi), c_scale);
  end if;
  v_step := v_hi - v_lo;
  v_step_before := v_step;
  for i in 1..400 loop
    select n.npv, n.slope into v_g, v_h from public.portfolio_xirr_npv(v_a, v_k, v_v) n;
    if v_g = 0 then
      exit;
    end if;
    if sign(v_g) = sign(v_glo) then
      v_lo := v_v; v_glo := v_g;
    else
      v_hi := v_v; v_ghi := v_g;
    end if;
    v_step_ok := false;
    if v_h <> 0 then
      v_next := round(v_v - v_v * v_g / v_h, c_scale);
      v_step_ok := v_next > v_lo and v_next < v_hi and abs(v_next - v_v) * 2 <= abs(v_step_before);
    end if;
    if not v_step_ok then
      v_next := round(sqrt(v_lo * v_hi), c_scale);
    end if;
    v_step_before := v_step;
    v_step := v_next - v_v;
    if abs(v_step) <= c_tol * v_next or v_hi - v_lo <= c_tol * v_lo then
      v_v := v_next;
      return query select round(power(v_v, -365::numeric) - 1, 30), null::text;
      return;
    end if;
    v_v := v_next;
  end loop;
  if v_g = 0 then
    return query select round(power(v_v, -365::numeric) - 1, 30), null::text;
    return;
  end if;
  return query select null::numeric, 'the solver did not converge in 400 steps'::text;
end;
$$;

-- Money-weighted return of one portfolio, from the investor's side: what went in and came out,
-- and when. The day is split in two instants so that "days of the range" means the same as for
-- TWR and a range without flows gives MWR = TWR: a day's BOD amounts are at its start, its EOD
-- amounts at its end (= the next day's start). Offsets count days from the range's start:
--   -BOD of the first usable day at 0 (the range's starting value),
--   -BOD_CF of day d at d - from, -EOD_CF of day d at d - from + 1 (NET: fees are not an external
--    flow, so the day's fees are taken back out of its end-of-day flow),
--   +EOD of the last usable day at days (the range's ending value).
-- mwr is the annual rate; mwr_annualised repeats it for ranges of at least 365 days; for shorter
-- ranges mwr_period = (1 + mwr)^(days / 365) - 1 is the return over the range itself.
create or replace function public.portfolio_mwr(p_portfolio text, p_from date, p_to date, p_basis text default 'GROSS')
returns table (portfolio_id text, range_from date, range_to date, basis text, days integer, day_count integer,
               mwr numeric, mwr_annualised numeric, mwr_period numeric, reason text, missing_days date[])
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_from date;
  v_to date;
  v_days integer;
  v_count integer;
  v_missing date[];
  v_amounts numeric[];
  v_offsets integer[];
  v_rate numeric;
  v_reason text;
begin
  select r.range_from, r.range_to, r.days into v_from, v_to, v_days from public.portfolio_range(p_portfolio, p_from, p_to) r;
  with d as (
    select * from public.portfolio_daily_returns(array[p_portfolio], v_from, v_to, p_basis)
  ), ends as (
    select count(*) filter (where d.is_current)::integer as n,
           min(d.date) filter (where d.is_current) as first_day,
           max(d.date) filter (where d.is_current) as last_day,
           coalesce(array_agg(d.date order by d.date) filter (where not d.is_current), '{}') as missing
    from d
  ), amounts as (
    -- Only non-zero amounts: most days have no external flow.
    select 0 as k, -d.bod_market_value as a from d, ends e where d.date = e.first_day
    union all
    select d.date - v_from, -d.bod_cashflow from d where d.is_current and d.bod_cashflow <> 0
    union all
    select d.date - v_from + 1, -(d.eod_cashflow + case when p_basis = 'NET' then d.fees else 0 end)
    from d where d.is_current and d.eod_cashflow + case when p_basis = 'NET' then d.fees else 0 end <> 0
    union all
    select v_days, d.eod_market_value from d, ends e where d.date = e.last_day
  )
  select e.n, e.missing,
         (select array_agg(a.a order by a.k) from amounts a),
         (select array_agg(a.k order by a.k) from amounts a)
    from ends e
    into v_count, v_missing, v_amounts, v_offsets;
  if v_count = 0 then
    v_reason := 'no usable day in the range';
  else
    select x.rate, x.reason into v_rate, v_reason
    from public.portfolio_xirr(coalesce(v_amounts, '{}'), coalesce(v_offsets, '{}')) x;
  end if;
  return query select p_portfolio, v_from, v_to, p_basis, v_days, v_count, v_rate,
    case when v_days >= 365 then v_rate end,
    case when v_days < 365 and v_rate is not null
         then round(power(round(1 + v_rate, 40), round(v_days::numeric, 40) / 365) - 1, 30) end,
    v_reason, v_missing;
end;
$$;

-- Risk from the usable days' returns of one portfolio. Annualised with 252 trading days (the
-- daily returns are per row, and rows are business days), with the risk-free rate turned into the
-- same daily unit. The drawdown runs on the same wealth index as the TWR, so the two never
-- disagree about the path; the starting wealth 1 is a possible peak, dated the day before the
-- first usable day. Ties: the trough is the earliest day of the lowest ratio, the peak the latest
-- day at the running maximum before it.
create or replace function public.portfolio_risk(p_portfolio text, p_from date, p_to date, p_basis text default 'GROSS',
                                                 p_risk_free numeric default 0)
returns table (portfolio_id text, range_from date, range_to date, basis text, days integer, day_count integer,
               risk_free_daily numeric, volatility numeric, max_drawdown numeric, drawdown_peak date,
               drawdown_trough date, sharpe numeric, sortino numeric, missing_days date[])
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_from date;
  v_to date;
  v_days integer;
  v_rf numeric;
  v_sqrt252 constant numeric := sqrt(252::numeric(60, 50));
begin
  if p_risk_free is null or p_risk_free <= -1 then
    raise exception 'risk-free rate must be a number above -1, got %', coalesce(p_risk_free::text, 'NULL');
  end if;
  select r.range_from, r.range_to, r.days into v_from, v_to, v_days from public.portfolio_range(p_portfolio, p_from, p_to) r;
  v_rf := case when p_risk_free = 0 then 0
               else round(power(round(1 + p_risk_free, 50), round(1::numeric, 50) / 252) - 1, 30) end;
  return query
  with d as (
    select * from public.portfolio_daily_returns(array[p_portfolio], v_from, v_to, p_basis)
  ), w as (
    select d.date, d.daily_return as r, d.daily_return - v_rf as x,
           public.portfolio_wealth(d.daily_return) over (order by d.date) as wealth
    from d where d.is_current
  ), pk as (
    select w.*, greatest(1, max(w.wealth) over (order by w.date)) as peak from w
  ), dd as (
    -- peak_date: the latest day so far at the running peak (NULL while the peak is the start).
    select pk.*, round(pk.wealth / pk.peak, 30) - 1 as drawdown,
           max(case when pk.wealth = pk.peak then pk.date end) over (order by pk.date) as peak_date
    from pk
  ), agg as (
    -- The sample deviation of r - rf is that of r (numeric sums are exact, so the two are the
    -- same number, not just close): it is computed once, for volatility and Sharpe.
    select count(*)::integer as n, min(dd.date) as first_date, min(dd.drawdown) as mdd,
           stddev_samp(dd.r) as sd, avg(dd.x) as mean_x,
           coalesce(sum(dd.x * dd.x) filter (where dd.x < 0), 0) as downside
    from dd
  ), trough as (
    select dd.date, dd.peak_date from dd, agg where agg.mdd < 0 and dd.drawdown = agg.mdd order by dd.date limit 1
  )
  select p_portfolio, v_from, v_to, p_basis, v_days, a.n, v_rf,
         case when a.n >= 2 then round(a.sd * v_sqrt252, 30) end,
         case when a.n >= 1 then least(a.mdd, 0) end,
         case when t.date is not null then coalesce(t.peak_date, a.first_date - 1) end,
         t.date,
         case when a.n >= 2 and a.sd > 0 then round(a.mean_x / a.sd * v_sqrt252, 30) end,
         case when a.n >= 1 and a.downside > 0 then round(a.mean_x / sqrt(a.downside / a.n) * v_sqrt252, 30) end,
         coalesce((select array_agg(d.date order by d.date) from d where not d.is_current), '{}')
  from agg a
  left join trough t on true;
end;
$$;

-- One position's daily returns in its local currency. Cash flow amounts are stored from the cash
-- perspective (a BUY is negative: cash leaves); the position's own flow is the opposite
-- (a BUY adds to the position), so F = -(cash flow of the position):
--   r = (EOD - BOD - F_BOD - F_EOD) / (BOD + F_BOD) = (EOD - BOD + BOD_CF + EOD_CF) / (BOD - BOD_CF).
-- A position day is usable when its portfolio day is current (the engine writes position rows
-- with their portfolio day); the portfolio's other days in the range are reported missing.
create or replace function public.position_daily_returns(p_portfolio text, p_security text, p_from date, p_to date)
returns table (date date, is_current boolean, daily_return numeric, zero_base boolean,
               bod_market_value numeric, bod_cashflow numeric, eod_cashflow numeric, eod_market_value numeric)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_from date;
  v_to date;
begin
  select r.range_from, r.range_to into v_from, v_to from public.portfolio_range(p_portfolio, p_from, p_to) r;
  return query
  with known as (
    select c.date, c.is_current from portfolio_timeseries_engine.current_days(array[p_portfolio], v_from, v_to) c
  ), stored as (
    select t.date, t.bod_market_value, t.bod_cashflow_position, t.eod_cashflow_position, t.eod_market_value
    from public.position_timeseries t
    where t.portfolio_id = p_portfolio and t.security_id = p_security and t.date between v_from and v_to
  ), days as (
    select coalesce(s.date, k.date) as date, (s.date is not null and coalesce(k.is_current, false)) as usable,
           s.date is null and k.is_current as not_held,
           s.bod_market_value, s.bod_cashflow_position, s.eod_cashflow_position, s.eod_market_value
    from stored s
    full join known k on k.date = s.date
  )
  select d.date, d.usable,
         case when not d.usable then null
              when x.den = 0 then 0::numeric
              else round(round(x.num, 34) / x.den, 30) end,
         case when d.usable then x.den = 0 end,
         case when d.usable then d.bod_market_value end,
         case when d.usable then d.bod_cashflow_position end,
         case when d.usable then d.eod_cashflow_position end,
         case when d.usable then d.eod_market_value end
  from days d
  cross join lateral (
    select d.eod_market_value - d.bod_market_value + d.bod_cashflow_position + d.eod_cashflow_position as num,
           d.bod_market_value - d.bod_cashflow_position as den
  ) x
  where not d.not_held -- a current day without a row of this position: it was not held
  order by d.date;
end;
$$;

-- Per-day time-weighted return of one position (usable days only), as portfolio_twr_daily.
create or replace function public.position_twr_daily(p_portfolio text, p_security text, p_from date, p_to date)
returns table (date date, daily_return numeric, cumulative_return numeric, zero_base boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select d.date, d.daily_return, public.portfolio_wealth(d.daily_return) over (order by d.date) - 1, d.zero_base
  from public.position_daily_returns(p_portfolio, p_security, p_from, p_to) d
  where d.is_current
  order by d.date
$$;

-- The period summary of one position, with the same conventions as portfolio_twr.
create or replace function public.position_twr(p_portfolio text, p_security text, p_from date, p_to date)
returns table (portfolio_id text, security_id text, range_from date, range_to date, days integer, day_count integer,
               twr numeric, twr_annualised numeric, zero_base_days date[], missing_days date[])
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with g as (
    select r.range_from, r.range_to, r.days from public.portfolio_range(p_portfolio, p_from, p_to) r
  ), per as (
    select count(d.date) filter (where d.is_current)::integer as day_count,
           public.portfolio_wealth(d.daily_return order by d.date) filter (where d.is_current) as wealth,
           coalesce(array_agg(d.date order by d.date) filter (where d.is_current and d.zero_base), '{}') as zero_base_days,
           coalesce(array_agg(d.date order by d.date) filter (where not d.is_current), '{}') as missing_days
    from public.position_daily_returns(p_portfolio, p_security, p_from, p_to) d
  )
  select p_portfolio, p_security, g.range_from, g.range_to, g.days, p.day_count,
         case when p.day_count > 0 then p.wealth - 1 end,
         case when p.day_count > 0 and g.days > 365 and p.wealth >= 0
              then round(power(round(p.wealth, 40), round(365.25, 40) / g.days) - 1, 30) end,
         p.zero_base_days, p.missing_days
  from g, per p
$$;
