--! Previous: -
--! Hash: sha1:75b3f6f85df27dc982e8921406418456dacaace2
--! Message: engine: contract tables, change queue, per-portfolio job, status

-- >>> sql/00_schemas.sql
-- The engine enqueues its jobs with graphile_worker.add_job from inside producers' transactions:
-- without graphile-worker's schema the first write that completes a day would fail in the
-- producer's transaction. Refuse here, before anything is created.
do $$
begin
  if not exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                 where n.nspname = 'graphile_worker' and p.proname = 'add_job') then
    raise exception 'portfolio-timeseries needs graphile-worker''s schema (graphile_worker.add_job) in this database'
      using hint = 'Install it first: `npx graphile-worker --schema-only -c "$DATABASE_URL"`, or run `portfolio-timeseries migrate`, which installs it before the engine.';
  end if;
end;
$$;

-- The engine's internals live apart from the contract tables: producers and readers only ever see
-- the tables of the contract (docs/contract.md section 2); everything in
-- `portfolio_timeseries_engine` may change between versions (docs/architecture.md says which
-- objects are public).
create schema if not exists portfolio_timeseries_engine;
comment on schema portfolio_timeseries_engine is
  'Internals of portfolio-timeseries: change queue, per-day state, epoch history, the job. Private: may change in any release.';

-- >>> sql/01_refuse.sql
-- Row checks that refuse bad input at write time are CHECK constraints of the form
--   check (case when <condition> then true else refuse(<row key>, <message>) end)
-- refuse() raises an error whose message names the row's key: a constraint violation alone would
-- only name the constraint, and a producer loading a million rows needs to know which one is
-- wrong. CASE (not OR) builds the message only for a failing row: building it for every row cost
-- about 30% of a raw COPY.
-- CHECK constraints run as the writing role, so every role may execute this function (it only
-- raises); nothing else in the engine schema is executable by producers.
create or replace function portfolio_timeseries_engine.refuse(p_row text, p_message text)
returns boolean
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception '%: %', p_row, p_message using errcode = 'check_violation';
end;
$$;

-- An invariant the engine relies on is broken: abort the statement (and the job's transaction)
-- from inside a set-based statement rather than write a row built on it.
create or replace function portfolio_timeseries_engine.internal_error(p_message text)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception 'internal: %', p_message using errcode = 'XX000';
end;
$$;

-- >>> sql/02_contract_tables.sql
-- The contract tables (docs/contract.md section 2). Producers write plain INSERT/UPDATE/DELETE
-- naming only these columns; anything the engine needs beyond them lives in
-- portfolio_timeseries_engine. Table DDL: applied once by the initial migration, changed only by
-- ALTERs in later migrations (docs/development.md).
--
-- No foreign keys between inputs on purpose: upstream services write in any order, and a
-- reference that is missing for now (unknown instrument, unknown portfolio) blocks the day with a
-- reason instead of refusing the row.
--
-- numeric(30, 10): 20 integer digits and 10 decimals. The type itself refuses infinities
-- ("numeric field overflow"; COPY names the line and column); NaN is a valid numeric value, so
-- every money, quantity and rate column refuses it explicitly, as every date column refuses
-- 'infinity' and every identifier the empty string: values like these would otherwise be stored
-- and either poison a sum or leave a day that can never be computed.

create table public.portfolios (
  portfolio_id text primary key,
  base_currency text not null,
  open_date date not null,
  close_date date,
  constraint portfolios_base_currency_check check (case when base_currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('portfolio %s', portfolio_id), format('base_currency must be 3 upper-case letters, got %s', quote_nullable(base_currency))) end),
  constraint portfolios_values_check check (case
    when portfolio_id <> '' and isfinite(open_date) and (close_date is null or isfinite(close_date)) then true
    else portfolio_timeseries_engine.refuse(format('portfolio %s', quote_literal(portfolio_id)),
      case when portfolio_id = '' then 'portfolio_id must not be empty'
           else format('open_date and close_date must be finite dates, got %s and %s', open_date, coalesce(close_date::text, 'NULL')) end) end)
);

create table public.instruments (
  security_id text primary key,
  currency text not null,
  name text,
  constraint instruments_currency_check check (case when currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('instrument %s', security_id), format('currency must be 3 upper-case letters, got %s', quote_nullable(currency))) end),
  constraint instruments_security_id_check check (case when security_id <> '' then true else portfolio_timeseries_engine.refuse(
    format('instrument %s', quote_literal(security_id)), 'security_id must not be empty') end)
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
  -- NaN compares greater than every number in PostgreSQL, so "rate > 0" alone lets it through.
  constraint fx_rates_rate_check check (case when rate > 0 and rate <> 'NaN' then true else portfolio_timeseries_engine.refuse(
    format('fx rate %s->%s on %s', from_currency, to_currency, rate_date),
    format('rate must be a number > 0, got %s', rate)) end),
  constraint fx_rates_rate_date_check check (case when isfinite(rate_date) then true else portfolio_timeseries_engine.refuse(
    format('fx rate %s->%s on %s', from_currency, to_currency, rate_date), format('rate_date must be a finite date, got %s', rate_date)) end)
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
    format('timing must be BOD or EOD, got %s', coalesce(quote_literal(timing), 'NULL'))) end),
  constraint cashflows_values_check check (case
    when amount <> 'NaN' and isfinite(cashflow_date) and transaction_id <> '' and portfolio_id <> ''
         and (security_id is null or security_id <> '') then true
    else portfolio_timeseries_engine.refuse(
      format('cash flow %s (portfolio %s, security %s, %s)',
        quote_literal(transaction_id), quote_literal(portfolio_id), coalesce(quote_literal(security_id), 'NULL'), cashflow_date),
      case when amount = 'NaN' then 'amount must be a number, got NaN'
           when not isfinite(cashflow_date) then format('cashflow_date must be a finite date, got %s', cashflow_date)
           else 'transaction_id, portfolio_id and security_id must not be empty' end) end)
);
create index cashflows_portfolio_date_idx on public.cashflows (portfolio_id, cashflow_date, security_id);

create table public.position_state (
  portfolio_id text not null,
  security_id text not null,
  epoch integer not null default 0,
  watermark_date date,
  status text,
  primary key (portfolio_id, security_id),
  constraint position_state_epoch_check check (case when epoch >= 0 then true else portfolio_timeseries_engine.refuse(
    format('position state (portfolio %s, security %s)', portfolio_id, security_id),
    format('epoch must be >= 0, got %s', epoch)) end),
  -- An epoch raised with watermark W starts on W + 1, which must be a date.
  constraint position_state_watermark_check check (case
    when (watermark_date is null or (isfinite(watermark_date) and watermark_date < '5874897-12-31'))
         and portfolio_id <> '' and security_id <> '' then true
    else portfolio_timeseries_engine.refuse(
      format('position state (portfolio %s, security %s)', quote_literal(portfolio_id), quote_literal(security_id)),
      case when portfolio_id = '' or security_id = '' then 'portfolio_id and security_id must not be empty'
           else format('watermark_date must be a finite date before 5874897-12-31, got %s', watermark_date) end) end)
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
      coalesce(quote_literal(valuation_status), 'NULL'))) end),
  constraint daily_position_snapshots_values_check check (case
    when quantity <> 'NaN' and (cost_basis is null or cost_basis <> 'NaN')
         and (cost_basis_local is null or cost_basis_local <> 'NaN') and (market_price is null or market_price <> 'NaN')
         and (market_value is null or market_value <> 'NaN') and (market_value_local is null or market_value_local <> 'NaN')
         and epoch >= 0 and isfinite(date) and portfolio_id <> '' and security_id <> '' then true
    else portfolio_timeseries_engine.refuse(
      format('snapshot (portfolio %s, security %s, %s, epoch %s)', quote_literal(portfolio_id), quote_literal(security_id), date, epoch),
      case when epoch < 0 then format('epoch must be >= 0, got %s', epoch)
           when not isfinite(date) then format('date must be a finite date, got %s', date)
           when portfolio_id = '' or security_id = '' then 'portfolio_id and security_id must not be empty'
           else concat_ws(', ',
             case when quantity = 'NaN' then 'quantity' end, case when cost_basis = 'NaN' then 'cost_basis' end,
             case when cost_basis_local = 'NaN' then 'cost_basis_local' end, case when market_price = 'NaN' then 'market_price' end,
             case when market_value = 'NaN' then 'market_value' end, case when market_value_local = 'NaN' then 'market_value_local' end)
             || ' must be a number, got NaN' end) end)
);
-- (portfolio_id, date, security_id): a day's positions. The unique key serves "the key's previous
-- / next snapshot" (a backward or forward index scan). Both indexes hold portfolio, security and
-- date, so a probe for one position day is exact whichever of the two the planner picks (without
-- statistics it cannot tell them apart). No index leads with security_id: an instrument change
-- finds its portfolios in the engine's registry (portfolio_timeseries_engine.portfolio_security),
-- and an index the planner could mistake for a probe of one portfolio's key would read every
-- portfolio's rows of that security.
create index daily_position_snapshots_day_idx on public.daily_position_snapshots (portfolio_id, date, security_id);

create table public.daily_aggregation_manifest (
  portfolio_id text not null,
  aggregation_date date not null,
  expected_count integer not null,
  primary key (portfolio_id, aggregation_date),
  constraint daily_aggregation_manifest_expected_count_check check (case when expected_count >= 0 then true else portfolio_timeseries_engine.refuse(
    format('manifest (portfolio %s, %s)', portfolio_id, aggregation_date),
    format('expected_count must be >= 0, got %s', expected_count)) end),
  constraint daily_aggregation_manifest_values_check check (case
    when isfinite(aggregation_date) and portfolio_id <> '' then true
    else portfolio_timeseries_engine.refuse(format('manifest (portfolio %s, %s)', quote_literal(portfolio_id), aggregation_date),
      case when portfolio_id = '' then 'portfolio_id must not be empty'
           else format('aggregation_date must be a finite date, got %s', aggregation_date) end) end)
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
create index position_timeseries_day_idx on public.position_timeseries (portfolio_id, date, security_id);

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

-- >>> sql/03_engine_tables.sql
-- Engine state (table DDL: applied once, changed only by ALTERs in later migrations).
--
-- The input triggers never decide what a change affects: they only record that something of a
-- portfolio changed (`change`) or that reference data changed (`reference_change`). Deciding
-- which days and positions a change affects, counting a day's positions and building the rows is
-- done after the change has committed, by the per-portfolio job in one REPEATABLE READ snapshot
-- (docs/architecture.md). A trigger that looked at other tables to decide what to touch would
-- miss rows that another transaction has not committed yet; a job that runs after the commit and
-- reads one snapshot sees every committed input, and any later commit leaves a change of its own.

-- Changes of one portfolio not yet applied by its job. Append-only for producers (no unique key,
-- so a producer never waits on a job, and a job never waits on a producer); the job deletes the
-- rows it has read.
--   kind  S  snapshot write on date_from, of the keys in securities at the epochs in epochs
--            (a write at an epoch that is not the effective one changes nothing)
--         C  cash flow write on date_from, of the keys in securities (NULL: portfolio-level)
--         M  manifest write on date_from
--         E  epoch change of securities[1] from date_from on
--         P  portfolio row inserted, deleted or re-based: every declared day
--         I  instrument securities[1] inserted, deleted or re-currencied (from reference_change)
--         F  FX rate of currency -> base changed for dates date_from..date_to (from reference_change)
--         A  everything of the portfolio (TRUNCATE of an input table)
--         R  nothing changed, look again (the sweep's safety net)
create table portfolio_timeseries_engine.change (
  portfolio_id text not null,
  kind "char" not null,
  date_from date not null,
  date_to date not null,
  securities text[],
  epochs integer[],
  currency text
);
create index change_portfolio_idx on portfolio_timeseries_engine.change (portfolio_id);

-- A position day the job must look at: kind S (snapshot written), C (cash flow), E (epoch change),
-- N (the next position day of a written key).
create type portfolio_timeseries_engine.position_ref as (
  kind "char",
  security_id text,
  date date
);

-- FX rates and instruments are shared by every portfolio. Which portfolios a change of theirs
-- affects is decided after it has committed (fan_out), from one snapshot, for the same reason.
create table portfolio_timeseries_engine.reference_change (
  id bigint generated always as identity primary key,
  kind "char" not null,          -- F: fx rate (from, to, rate_date), I: instrument (security_id)
  security_id text,
  from_currency text,
  to_currency text,
  rate_date date
);

-- One row per portfolio-day that has snapshots or a manifest row, as of the last job.
--   position_count       securities with an effective snapshot that day (recounted by the job)
--   expected_count       the manifest's expected_count; NULL = undeclared
--   dirty                declared: the portfolio row is not current
--   all_positions_dirty  every position row of the day must be rebuilt (a new day, a day that was
--                        undeclared, an epoch change); otherwise dirty_position lists them
--   blocked_reason       why the last job could not build the day
--   gross_return,        the daily returns of the day's portfolio_timeseries row (GROSS, NET) and
--   net_return,          whether its denominator is 0, written by the job in the transaction that
--   zero_base            writes the row (day_return(), sql/13_returns.sql); NULL until then. A
--                        book-wide return reads them here instead of dividing 2.6 million rows
--                        again on every call (docs/decisions.md, "Stored daily returns").
create table portfolio_timeseries_engine.portfolio_day (
  portfolio_id text not null,
  date date not null,
  position_count integer not null default 0,
  expected_count integer,
  dirty boolean not null default true,
  all_positions_dirty boolean not null default true,
  blocked_reason text,
  computed_count bigint not null default 0,
  computed_at timestamptz,
  gross_return numeric,
  net_return numeric,
  zero_base boolean,
  primary key (portfolio_id, date)
);
create index portfolio_day_declared_idx on portfolio_timeseries_engine.portfolio_day (portfolio_id, date)
  where expected_count is not null;
create index portfolio_day_dirty_idx on portfolio_timeseries_engine.portfolio_day (portfolio_id, date)
  where dirty and expected_count is not null;

-- Position days to rebuild on days that are not all_positions_dirty.
create table portfolio_timeseries_engine.dirty_position (
  portfolio_id text not null,
  date date not null,
  security_id text not null,
  primary key (portfolio_id, date, security_id)
);

-- Which securities each portfolio has had snapshots of (kept by the job): where an instrument
-- change is fanned out to.
create table portfolio_timeseries_engine.portfolio_security (
  security_id text not null,
  portfolio_id text not null,
  primary key (security_id, portfolio_id)
);

-- Epoch history: epoch `epoch` of the key applies from start_date ('-infinity' for the epoch a
-- position_state row was inserted with). Epoch 0 from '-infinity' is implicit, so a key without
-- rows here has only epoch-0 snapshots (a higher epoch is refused at write time).
create table portfolio_timeseries_engine.epoch_start (
  portfolio_id text not null,
  security_id text not null,
  epoch integer not null,
  start_date date not null,
  primary key (portfolio_id, security_id, epoch)
);

-- Per portfolio: the job's bookkeeping. `runs` is also the guard that detects a job whose
-- snapshot predates another job's commit (both update this row; REPEATABLE READ refuses the
-- second). A job that failed is retried after retry_at (back-off), so one bad portfolio cannot
-- keep a worker busy.
create table portfolio_timeseries_engine.portfolio_job (
  portfolio_id text primary key,
  runs bigint not null default 0,
  portfolio_days bigint not null default 0,
  position_days bigint not null default 0,
  bod_updates bigint not null default 0,
  last_run_at timestamptz,
  failures integer not null default 0,
  last_error text,
  retry_at timestamptz
);

-- The same guard for fan_out (one row).
create table portfolio_timeseries_engine.fan_out_guard (
  id boolean primary key default true check (id),
  runs bigint not null default 0
);
insert into portfolio_timeseries_engine.fan_out_guard default values;

-- >>> sql/04_effective.sql
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

-- >>> sql/05_enqueue.sql
-- Waking the worker. A producer's transaction adds one graphile-worker job (task
-- portfolio_timeseries:drain) with no job_key, whatever it wrote: the job starts after the
-- commit, so it sees the transaction's changes, and it applies every pending change of every
-- portfolio (see drain in docs/architecture.md). A job_key would make concurrent producers queue
-- behind each other: every keyed add_job updates the one queued row and holds that row lock
-- until its transaction ends.
create or replace function portfolio_timeseries_engine.enqueue_drain()
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  -- Once per transaction: the setting is transaction-local, and rolls back with a savepoint
  -- together with the job it records.
  if current_setting('portfolio_timeseries.drain_enqueued', true) is distinct from 'on' then
    perform graphile_worker.add_job('portfolio_timeseries:drain', '{}'::json);
    perform set_config('portfolio_timeseries.drain_enqueued', 'on', true);
  end if;
end;
$$;

-- >>> sql/06_input_triggers.sql
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

-- >>> sql/07_fan_out.sql
-- Reference data (FX rates, instruments) is shared by every portfolio. Which portfolios a change
-- of it affects is decided here, after the change has committed and from one REPEATABLE READ
-- snapshot: a decision taken inside the writer's transaction would miss a portfolio whose
-- snapshots or manifest another transaction had not committed yet, and nothing would look at
-- that portfolio again. Run by the drain job before it computes portfolios.
--
-- A portfolio committed after this snapshot is not missed: its own change row makes its job run
-- after its commit, which is after the reference change committed, so that job reads it.
--
-- Returns the number of reference changes applied, or -1 when another fan_out is running (that
-- one will see these changes, or they wait for the next drain).
create or replace function portfolio_timeseries_engine.fan_out()
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_refs portfolio_timeseries_engine.reference_change[];
begin
  if current_setting('transaction_isolation') <> 'repeatable read' then
    raise exception 'portfolio_timeseries_engine.fan_out() must run in a REPEATABLE READ transaction';
  end if;
  if not pg_try_advisory_xact_lock(hashtextextended('portfolio_timeseries:fan_out', 0)) then
    return -1;
  end if;
  -- Two fan_outs that both got the lock (one committed between the other's snapshot and its
  -- lock) both update this row: REPEATABLE READ refuses the later one (40001), which retries.
  update portfolio_timeseries_engine.fan_out_guard set runs = runs + 1;

  with consumed as (
    delete from portfolio_timeseries_engine.reference_change returning *
  )
  select coalesce(array_agg(c), '{}') into v_refs from consumed c;
  if cardinality(v_refs) = 0 then
    return 0;
  end if;

  -- FX (from, to, d): the rate of every date from d until the pair's next rate, for portfolios
  -- based in `to` that have a declared day in that range. Their jobs keep only the days that
  -- need `from` (an instrument of a position, or a NULL-security portfolio flow).
  insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, currency)
  with ranges as materialized (
    select x.from_currency, x.to_currency, x.rate_date,
      coalesce((select min(f.rate_date) from public.fx_rates f
                where f.from_currency = x.from_currency and f.to_currency = x.to_currency and f.rate_date > x.rate_date),
               'infinity') as until
    from (select distinct r.from_currency, r.to_currency, r.rate_date from unnest(v_refs) r where r.kind = 'F') x
  ), islands as materialized (
    -- Ranges of one pair that touch (a day's rate until the next day's rate: a whole history of
    -- daily rates) are merged, so a reload of every rate is one change per portfolio and currency,
    -- not one per rate.
    select g.from_currency, g.to_currency, min(g.rate_date) as date_from, max(g.until) as until
    from (
      select r.*, sum(case when r.rate_date = r.prev_until then 0 else 1 end)
               over (partition by r.from_currency, r.to_currency order by r.rate_date) as island
      from (select r.*, lag(r.until) over (partition by r.from_currency, r.to_currency order by r.rate_date) as prev_until
            from ranges r) r
    ) g
    group by g.from_currency, g.to_currency, g.island
  )
  select p.portfolio_id, 'F', r.date_from, r.until - 1, r.from_currency
  from islands r
  join public.portfolios p on p.base_currency = r.to_currency
  where exists (
    select 1 from public.daily_aggregation_manifest m
    where m.portfolio_id = p.portfolio_id and m.aggregation_date >= r.date_from and m.aggregation_date < r.until
    offset 0);

  -- Instrument K: every portfolio that has had a snapshot of K (the registry its jobs keep), or
  -- whose pending changes name K (a job that has not committed yet may have read the instrument
  -- as it was before): all of that portfolio's days with K, which its job narrows down.
  insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities)
  select distinct x.portfolio_id, 'I', '-infinity'::date, 'infinity'::date, array[x.security_id]
  from (
    select ps.portfolio_id, ps.security_id
    from portfolio_timeseries_engine.portfolio_security ps
    where ps.security_id in (select r.security_id from unnest(v_refs) r where r.kind = 'I')
    union
    select c.portfolio_id, k.security_id
    from portfolio_timeseries_engine.change c
    cross join lateral unnest(c.securities) k(security_id)
    where c.kind in ('S', 'C') and k.security_id in (select r.security_id from unnest(v_refs) r where r.kind = 'I')
  ) x;

  return cardinality(v_refs);
end;
$$;

-- >>> sql/08_day_reasons.sql
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

-- >>> sql/09_compute.sql
-- The job: apply a portfolio's pending changes, then compute every ready dirty day in date order,
-- set-based. One call is one REPEATABLE READ transaction, so every read sees the same committed
-- inputs and the rows it writes are exactly what the methodology gives for them; a change that
-- commits meanwhile leaves a change row this call did not read, and the next call applies it.
--
-- "Ready" means declared, complete (position_count = expected_count), not blocked, and its
-- previous declared day current (or computed earlier in the same call). The call takes the dirty
-- declared days from the first one up to (not including) the first that is not ready. A day's
-- EOD never depends on its BOD, so a run of days is one pass; a changed EOD updates the next
-- declared day's BOD and stops there (the cascade's early cutoff).
--
-- The job never waits for a lock: the per-portfolio lock is tried, not awaited (a busy portfolio
-- is left to the job that holds it), producers only append change rows, and outputs are written
-- by jobs only. So a job can neither be the reason a producer waits nor part of a deadlock.

-- Raised inside the set-based statements for a day that turns out not to be computable while it
-- is being built (a BOD source that is unvalued, a total that does not fit the output columns):
-- the statement stops, the call computes the days before it and records the reason.
create or replace function portfolio_timeseries_engine.stop_day(p_date date, p_reason text)
returns numeric
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception '%', p_reason using errcode = 'PTB01', detail = p_date::text;
end;
$$;

-- The physical rows of a portfolio's days, one index probe per date. The job updates and deletes
-- days by these row ids (a TID scan) instead of "date = any(dates)": without statistics the
-- planner takes a portfolio for a dozen days and reads all of them through the index on
-- portfolio_id, filtering by date, which on ten years of history cost more than the day computed.
create or replace function portfolio_timeseries_engine.day_rows(p_portfolio text, p_dates date[])
returns tid[]
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  -- PL/pgSQL keeps the plan for the session (an SQL function would be planned at every call).
  return array(
    select x.ctid from unnest(p_dates) d(date)
    cross join lateral (
      select pd.ctid from portfolio_timeseries_engine.portfolio_day pd
      where pd.portfolio_id = p_portfolio and pd.date = d.date offset 0) x);
end;
$$;

create or replace function portfolio_timeseries_engine.compute_portfolio(p_portfolio text)
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
-- Every statement here is written to be planned right without statistics (index probes keyed by
-- portfolio, security and date; no join of two derived sets), so one generic plan per statement
-- and session serves every call: planning them again at every call cost as much as running them
-- for a day of 50 positions (docs/performance.md).
set plan_cache_mode = force_generic_plan
-- ... and none of them should ever read a table sequentially: each reads one portfolio through an
-- index on (portfolio_id, ...). Statistics taken while the outputs and the engine's tables were
-- empty (a fresh install analysed before its backfill) make a sequential scan look free, and it
-- then grows with every portfolio computed: 135 ms per portfolio without statistics, 300 to
-- 600 ms and rising with them, before this setting.
set enable_seqscan = off
-- ... nor through a bitmap: the rows a statement reads are one day's or one run's of one
-- portfolio, which a plain index scan reads in index order (and marks dead index entries as it
-- goes). Without statistics the planner took a portfolio's day for hundreds of rows and chose
-- bitmaps, which made a one-day job 1.35x dearer than with statistics (docs/performance.md).
set enable_bitmapscan = off
as $$
declare
  v_changes portfolio_timeseries_engine.change[];
  v_hist text[];
  v_all boolean;
  v_recount date[];
  v_touch date[];
  v_positions portfolio_timeseries_engine.position_ref[];
  v_next portfolio_timeseries_engine.position_ref[];
  v_last_kept date;
  v_first date;
  v_candidates date[];
  v_incomplete record;
  v_stop date;
  v_stop_reason text;
  v_stop_waiting text;
  v_days date[];
  v_all_dirty date[];
  v_all_dirty_old date[];
  v_new_days date[];
  v_base text;
  v_changed date[];
  v_fix date[];
  v_undeclared date[];
  v_position_rows integer := 0;
  v_bod_updates integer := 0;
  v_caught_date date;
  v_caught_reason text;
  v_bad record;
  v_computed date[];
  v_partial date[];
begin
  if current_setting('transaction_isolation') <> 'repeatable read' then
    raise exception 'portfolio_timeseries_engine.compute_portfolio(%) must run in a REPEATABLE READ transaction', p_portfolio;
  end if;
  if not pg_try_advisory_xact_lock(hashtextextended('portfolio_timeseries:' || p_portfolio, 0)) then
    return jsonb_build_object('portfolio_id', p_portfolio, 'busy', true);
  end if;
  -- Guard: a job whose snapshot was taken before another job of this portfolio committed fails
  -- here with a serialization error (40001) instead of working from stale rows; it is retried.
  insert into portfolio_timeseries_engine.portfolio_job as j (portfolio_id, runs, last_run_at)
  values (p_portfolio, 1, now())
  on conflict (portfolio_id) do update set runs = j.runs + 1, last_run_at = now();

  with consumed as (
    delete from portfolio_timeseries_engine.change c where c.portfolio_id = p_portfolio returning c.*
  )
  select coalesce(array_agg(c), '{}') into v_changes from consumed c;

  v_hist := portfolio_timeseries_engine.epoch_keys(p_portfolio);
  v_all := exists (select 1 from unnest(v_changes) c where c.kind = 'A');

  ---------------------------------------------------------------------------------------------
  -- 1. What the changes affect, decided now (after their commits, in this snapshot).
  ---------------------------------------------------------------------------------------------
  -- Position days named by snapshot and cash flow changes, and every snapshot date of a key whose
  -- epochs changed (its effective snapshot may have changed on each of them).
  -- A snapshot write at an epoch that is not the key's effective one on that date changes
  -- nothing: epochs only go up and their starts never move, so a snapshot that is not effective
  -- now never was when it was written, or an epoch change made it ineffective since, and that
  -- change is applied as such.
  v_positions := array(
    select row(x.kind, x.security_id, x.date)::portfolio_timeseries_engine.position_ref
    from (select distinct x.kind, x.security_id, x.date from (
      select 'S'::"char" as kind, k.security_id, c.date_from as date
      from unnest(v_changes) c cross join lateral unnest(c.securities, c.epochs) k(security_id, epoch)
      where c.kind = 'S'
        and k.epoch = case when k.security_id = any(v_hist)
                           then portfolio_timeseries_engine.effective_epoch(p_portfolio, k.security_id, c.date_from) else 0 end
      union all
      select 'C', k.security_id, c.date_from
      from unnest(v_changes) c cross join lateral unnest(c.securities) k(security_id)
      where c.kind = 'C' and k.security_id is not null
      union all
      -- An epoch change: every date from its start where the key has a snapshot (any epoch), has
      -- a position row, or had a snapshot written in this batch (a snapshot deleted in the same
      -- transaction as the raise has left no other trace).
      select 'E', c.securities[1], x.date
      from unnest(v_changes) c
      cross join lateral (
        select s.date from public.daily_position_snapshots s
        where s.portfolio_id = p_portfolio and s.security_id = c.securities[1] and s.date >= c.date_from
        union
        select pt.date from public.position_timeseries pt
        where pt.portfolio_id = p_portfolio and pt.security_id = c.securities[1] and pt.date >= c.date_from
        union
        select w.date_from from unnest(v_changes) w
        where w.kind = 'S' and c.securities[1] = any(w.securities) and w.date_from >= c.date_from
      ) x
      where c.kind = 'E'
    ) x) x);

  -- Days whose counters are re-read: snapshot, manifest and epoch changes (everything for A).
  v_recount := array(
    select distinct x.date from (
      select c.date_from as date from unnest(v_changes) c where c.kind = 'M'
      union all
      select p.date from unnest(v_positions) p where p.kind in ('S', 'E')
      union all
      select d.date from portfolio_timeseries_engine.portfolio_day d where v_all and d.portfolio_id = p_portfolio
      union all
      select s.date from public.daily_position_snapshots s where v_all and s.portfolio_id = p_portfolio
      union all
      select m.aggregation_date from public.daily_aggregation_manifest m where v_all and m.portfolio_id = p_portfolio
    ) x);

  with counted as (
    select r.date,
      (select count(*)::integer from public.daily_position_snapshots s
       where s.portfolio_id = p_portfolio and s.date = r.date
         and case when s.security_id = any(v_hist)
                  then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                  else s.epoch = 0 end) as n,
      (select m.expected_count from public.daily_aggregation_manifest m
       where m.portfolio_id = p_portfolio and m.aggregation_date = r.date) as expected
    from unnest(v_recount) r(date)
  ), upserted as (
    insert into portfolio_timeseries_engine.portfolio_day as pd
      (portfolio_id, date, position_count, expected_count, dirty, all_positions_dirty)
    select p_portfolio, c.date, c.n, c.expected, true, true from counted c
    order by c.date
    on conflict (portfolio_id, date) do update set
      position_count = excluded.position_count,
      expected_count = excluded.expected_count,
      dirty = true,
      -- An undeclared day has no rows; when it is declared again every position is built.
      all_positions_dirty = pd.all_positions_dirty or excluded.expected_count is null or v_all,
      blocked_reason = null
    returning pd.date, pd.position_count, pd.expected_count
  )
  select coalesce(array_agg(u.date), '{}') into v_undeclared from upserted u where u.expected_count is null;

  -- Neither snapshots nor a manifest row: the day no longer exists.
  delete from portfolio_timeseries_engine.portfolio_day pd
  where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio, v_recount))
    and pd.position_count = 0 and pd.expected_count is null;

  -- An undeclared day has no rows (contract section 2: deleting a day's manifest row removes
  -- that day's portfolio row; its position rows go with it, they would go stale otherwise).
  if cardinality(v_undeclared) > 0 then
    delete from public.portfolio_timeseries pt where pt.portfolio_id = p_portfolio and pt.date = any(v_undeclared);
    delete from public.position_timeseries pt where pt.portfolio_id = p_portfolio and pt.date = any(v_undeclared);
    delete from portfolio_timeseries_engine.dirty_position dp where dp.portfolio_id = p_portfolio and dp.date = any(v_undeclared);
  end if;

  -- The portfolio's securities, for the fan-out of instrument changes.
  insert into portfolio_timeseries_engine.portfolio_security (security_id, portfolio_id)
  select x.security_id, p_portfolio
  from (select distinct p.security_id from unnest(v_positions) p where p.kind in ('S', 'E')) x
  where not exists (select 1 from portfolio_timeseries_engine.portfolio_security ps
                    where ps.security_id = x.security_id and ps.portfolio_id = p_portfolio)
  order by 1
  on conflict do nothing;

  -- Snapshot writes also change the BOD of the key's next position day: the first effective
  -- snapshot date after each written date, one forward index probe each. A written date after
  -- which every day with positions will be rebuilt whole anyway needs none (a backfill, a new
  -- latest day): its key's next position day, if any, is rebuilt with its day.
  v_last_kept := (
    select max(pd.date) from portfolio_timeseries_engine.portfolio_day pd
    where pd.portfolio_id = p_portfolio and pd.position_count > 0 and not pd.all_positions_dirty);
  v_next := case when v_last_kept is null then '{}' else array(
    select distinct row('N', p.security_id, n.date)::portfolio_timeseries_engine.position_ref
    from unnest(v_positions) p
    cross join lateral (
      select s.date from public.daily_position_snapshots s
      where s.portfolio_id = p_portfolio and s.security_id = p.security_id and s.date > p.date
        and case when s.security_id = any(v_hist)
                 then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                 else s.epoch = 0 end
      order by s.date limit 1) n
    where p.kind = 'S' and p.date < v_last_kept) end;

  -- A deleted (or moved, or re-epoched away) effective snapshot removes its position row at once
  -- (contract section 2), whether or not its day can be recomputed yet. Only days computed before
  -- can hold position rows (none in a backfill); their written positions are probed one by one by
  -- key and the rows found deleted by row id (a join of the written set with the table could be
  -- planned as a scan of the portfolio's history).
  v_computed := array(
    select pd.date from portfolio_timeseries_engine.portfolio_day pd
    where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio,
            array(select distinct p.date from unnest(v_positions) p where p.kind = 'S')))
      and pd.computed_count > 0);
  if cardinality(v_computed) > 0 then
    delete from public.position_timeseries pt
    where pt.ctid = any(array(
      select r.ctid
      from unnest(v_positions) p
      cross join lateral (
        select x.ctid from public.position_timeseries x
        where x.portfolio_id = p_portfolio and x.security_id = p.security_id and x.date = p.date offset 0) r
      where p.kind = 'S' and p.date = any(v_computed)
        and not exists (
          select 1 from public.daily_position_snapshots s
          where s.portfolio_id = p_portfolio and s.security_id = p.security_id and s.date = p.date
            and case when s.security_id = any(v_hist)
                     then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                     else s.epoch = 0 end
          offset 0)));
  end if;
  if v_all then
    delete from public.position_timeseries pt
    where pt.portfolio_id = p_portfolio
      and not exists (
        select 1 from public.daily_position_snapshots s
        where s.portfolio_id = p_portfolio and s.security_id = pt.security_id and s.date = pt.date
          and case when s.security_id = any(v_hist)
                   then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                   else s.epoch = 0 end);
  end if;

  -- Position days to rebuild, on days that are not rebuilt whole anyway (none in a backfill): one
  -- probe per date, then the positions of the dates found.
  v_partial := array(
    select pd.date from portfolio_timeseries_engine.portfolio_day pd
    where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio,
            array(select p.date from unnest(v_positions) p union select p.date from unnest(v_next) p)))
      and not pd.all_positions_dirty);
  if cardinality(v_partial) > 0 then
    insert into portfolio_timeseries_engine.dirty_position (portfolio_id, date, security_id)
    select distinct p_portfolio, p.date, p.security_id
    from (select * from unnest(v_positions) union all select * from unnest(v_next)) p
    where p.date = any(v_partial)
    order by 2, 3
    on conflict do nothing;
  end if;

  -- Days whose portfolio row is affected without a change of their counters.
  v_touch := array(
    select distinct x.date from (
      select c.date_from as date from unnest(v_changes) c where c.kind = 'C'
      union all
      select p.date from unnest(v_positions) p where p.kind = 'S'
      union all
      select p.date from unnest(v_next) p
      union all
      -- A manifest change moves "the previous declared day" of the next declared day.
      select (select min(d.date) from portfolio_timeseries_engine.portfolio_day d
              where d.portfolio_id = p_portfolio and d.expected_count is not null and d.date > c.date_from)
      from unnest(v_changes) c where c.kind = 'M'
      union all
      select d.date from portfolio_timeseries_engine.portfolio_day d
      where d.portfolio_id = p_portfolio and d.expected_count is not null and not d.dirty
        and exists (select 1 from unnest(v_changes) c where c.kind = 'P')
      union all
      -- An instrument change: the days in its range where the key has a position or a flow (days
      -- already dirty are recomputed anyway).
      select d.date
      from unnest(v_changes) c
      join portfolio_timeseries_engine.portfolio_day d
        on d.portfolio_id = p_portfolio and d.date between c.date_from and c.date_to and not d.dirty
      where c.kind = 'I'
        and (exists (select 1 from public.daily_position_snapshots s
                     where s.portfolio_id = p_portfolio and s.security_id = c.securities[1] and s.date = d.date)
             or exists (select 1 from public.cashflows f
                        where f.portfolio_id = p_portfolio and f.security_id = c.securities[1] and f.cashflow_date = d.date))
      union all
      -- An FX change: the declared days in its range that need the currency.
      select d.date
      from unnest(v_changes) c
      join portfolio_timeseries_engine.portfolio_day d
        on d.portfolio_id = p_portfolio and d.expected_count is not null and d.date between c.date_from and c.date_to
          and not d.dirty
      where c.kind = 'F'
        and (exists (select 1 from public.daily_position_snapshots s
                     join public.instruments i on i.security_id = s.security_id
                     where s.portfolio_id = p_portfolio and s.date = d.date and i.currency = c.currency
                       and case when s.security_id = any(v_hist)
                                then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                                else s.epoch = 0 end)
             or exists (select 1 from public.cashflows f
                        where f.portfolio_id = p_portfolio and f.cashflow_date = d.date and f.security_id is null
                          and f.is_portfolio_flow and f.currency = c.currency))
    ) x
    where x.date is not null);

  update portfolio_timeseries_engine.portfolio_day pd
  set dirty = true, blocked_reason = null
  where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio, v_touch))
    and (not pd.dirty or pd.blocked_reason is not null);

  ---------------------------------------------------------------------------------------------
  -- 2. Which days can be computed now.
  ---------------------------------------------------------------------------------------------
  select min(pd.date) into v_first
  from portfolio_timeseries_engine.portfolio_day pd
  where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null;

  if v_first is not null then
    v_candidates := array(
      select pd.date from portfolio_timeseries_engine.portfolio_day pd
      where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null and pd.date >= v_first
      order by pd.date);

    -- The same set as v_candidates, read again through the index of dirty days: a probe of each
    -- candidate date (date = any(...)) was planned generically as a scan of every declared day.
    select pd.date, pd.position_count, pd.expected_count into v_incomplete
    from portfolio_timeseries_engine.portfolio_day pd
    where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null and pd.date >= v_first
      and pd.position_count <> pd.expected_count
    order by pd.date limit 1;

    select b.date, b.reason into v_stop, v_stop_reason
    from portfolio_timeseries_engine.day_reasons(p_portfolio, array(
      select c from unnest(v_candidates) c where c < coalesce(v_incomplete.date, 'infinity')), false) b
    order by b.date limit 1;

    if v_stop is null and v_incomplete.date is not null then
      v_stop := v_incomplete.date;
      if v_incomplete.position_count > v_incomplete.expected_count then
        v_stop_reason := format('%s positions exist but %s declared', v_incomplete.position_count, v_incomplete.expected_count);
      else
        -- Not a block (the day is waiting for its snapshots; status() says so from the counts),
        -- but the job's result says why it stopped all the same.
        v_stop_waiting := format('waiting: %s of %s positions', v_incomplete.position_count, v_incomplete.expected_count);
      end if;
    end if;
    v_days := array(select c from unnest(v_candidates) c where c < coalesce(v_stop, 'infinity') order by c);
  else
    v_days := '{}';
  end if;

  select p.base_currency into v_base from public.portfolios p where p.portfolio_id = p_portfolio;

  ---------------------------------------------------------------------------------------------
  -- 3. Build the rows of those days. A day found not computable while building (a BOD source
  --    unvalued, a total that does not fit) ends the run before it: the block is a
  --    subtransaction, undone and redone without that day and the days after it.
  ---------------------------------------------------------------------------------------------
  loop
    exit when cardinality(v_days) = 0;
    begin
      v_all_dirty := array(
        select pd.date from portfolio_timeseries_engine.portfolio_day pd
        where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio, v_days)) and pd.all_positions_dirty
        order by pd.date);
      -- Of those, the days computed before: only they can hold rows to remove or replace.
      v_all_dirty_old := array(
        select pd.date from portfolio_timeseries_engine.portfolio_day pd
        where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio, v_all_dirty)) and pd.computed_count > 0
        order by pd.date);
      v_new_days := array(select d from unnest(v_all_dirty) d where not (d = any(v_all_dirty_old)));

      -- Stage 1: the position rows to rebuild. BOD is the key's previous effective snapshot: the
      -- window's previous row when it lies in the same segment of the run (a stretch of run days
      -- with no other snapshot day of the portfolio between them), else the key's row on the
      -- portfolio's previous snapshot day, else one backward probe of the key's history.
      -- A day never computed has no rows: its rows are plain inserts; others replace theirs.
      with seg as (
        select x.date, x.is_run, x.date = any(v_all_dirty) as all_dirty, x.date = any(v_new_days) as is_new,
          sum(case when x.is_run then 0 else 1 end) over (order by x.date) as seg
        from (
          select d as date, true as is_run from unnest(v_days) d
          union all
          select pd.date, false from portfolio_timeseries_engine.portfolio_day pd
          where pd.portfolio_id = p_portfolio and pd.date > v_days[1] and pd.date < v_days[cardinality(v_days)]
            and pd.position_count > 0 and not (pd.date = any(v_days))
        ) x
      ), snaps as (
        -- Each run day's snapshots by one index scan of (portfolio, date), with the day's security
        -- flows summed per security by one index scan of (portfolio, date) and joined within the
        -- day (a few rows on each side, whatever the plan).
        select s.security_id, g.date, s.epoch, s.quantity, s.cost_basis_local, s.market_value, s.market_value_local,
               s.valuation_status, g.seg, g.all_dirty, g.is_new,
               s.bod_position, s.eod_position, s.bod_portfolio, s.eod_portfolio, s.fees
        from seg g
        cross join lateral (
          select x.security_id, x.epoch, x.quantity, x.cost_basis_local, x.market_value, x.market_value_local, x.valuation_status,
                 f.bod_position, f.eod_position, f.bod_portfolio, f.eod_portfolio, f.fees
          from public.daily_position_snapshots x
          left join (
            select cf.security_id,
              sum(cf.amount) filter (where cf.is_position_flow and cf.timing = 'BOD') as bod_position,
              sum(cf.amount) filter (where cf.is_position_flow and cf.timing = 'EOD') as eod_position,
              sum(cf.amount) filter (where cf.is_portfolio_flow and cf.timing = 'BOD') as bod_portfolio,
              sum(cf.amount) filter (where cf.is_portfolio_flow and cf.timing = 'EOD') as eod_portfolio,
              sum(abs(cf.amount)) filter (where cf.is_portfolio_flow and cf.classification = 'EXPENSE') as fees
            from public.cashflows cf
            where cf.portfolio_id = p_portfolio and cf.cashflow_date = g.date and cf.security_id is not null
            group by cf.security_id) f on f.security_id = x.security_id
          where x.portfolio_id = p_portfolio and x.date = g.date
            and case when x.security_id = any(v_hist)
                     then x.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, x.security_id, x.date)
                     else x.epoch = 0 end
          offset 0) s
        where g.is_run
      ), lagged as (
        select sn.*,
          lag(sn.date) over w as prev_date, lag(sn.epoch) over w as prev_epoch,
          lag(sn.market_value_local) over w as prev_mvl, lag(sn.market_value) over w as prev_mv,
          lag(sn.valuation_status) over w as prev_status
        from snaps sn
        window w as (partition by sn.seg, sn.security_id order by sn.date)
      ), rebuild as (
        select l.* from lagged l
        where l.all_dirty
           or exists (select 1 from portfolio_timeseries_engine.dirty_position dp
                      where dp.portfolio_id = p_portfolio and dp.date = l.date and dp.security_id = l.security_id)
      ), starts as materialized (
        -- The run days with rows whose BOD lies before their segment (usually only the run's first
        -- day), each with the portfolio's latest snapshot day before it: one backward probe of the
        -- (portfolio, date) index per such day.
        select s.date, (select max(x.date) from public.daily_position_snapshots x
                        where x.portfolio_id = p_portfolio and x.date < s.date) as prev_day
        from (select distinct r.date from rebuild r where r.prev_date is null) s
      ), prev_day_snaps as materialized (
        -- That day's effective snapshots, read as one range of the (portfolio, date) index: a key
        -- with a snapshot there has no later one before the start day, so it is the BOD source.
        -- Probing each key's own history instead touches one index page per key, and on a long
        -- history those pages are far apart (a one-day job on 10 years cost 1.5x one on 10 days).
        select st.date as for_date, x.security_id, x.date, x.epoch, x.market_value_local, x.market_value, x.valuation_status
        from starts st
        join public.daily_position_snapshots x on x.portfolio_id = p_portfolio and x.date = st.prev_day
        where case when x.security_id = any(v_hist)
                   then x.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, x.security_id, x.date)
                   else x.epoch = 0 end
      ), bod as (
        select r.*,
          coalesce(r.prev_date, b.date) as bod_date, coalesce(r.prev_epoch, b.epoch) as bod_epoch,
          -- The reason is only built for a source that is unvalued (a function call per row would
          -- cost more than the rest of the row).
          case when r.prev_date is not null
                    and (r.prev_status in ('UNVALUED', 'FAILED') or r.prev_mv is null or r.prev_mvl is null)
               then portfolio_timeseries_engine.unvalued_reason(r.prev_status, r.prev_mv, r.prev_mvl)
               when r.prev_date is null and b.date is not null
                    and (b.valuation_status in ('UNVALUED', 'FAILED') or b.market_value is null or b.market_value_local is null)
               then portfolio_timeseries_engine.unvalued_reason(b.valuation_status, b.market_value, b.market_value_local)
          end as bod_unvalued,
          case when r.prev_date is not null then r.prev_mvl else coalesce(b.market_value_local, 0) end as bod_value
        from rebuild r
        left join starts st on r.prev_date is null and st.date = r.date
        left join prev_day_snaps ps on ps.for_date = st.date and ps.security_id = r.security_id
        left join lateral (
          -- A key absent from that day (a gap, or a new position): its own backward probe.
          select x.date, x.epoch, x.market_value_local, x.market_value, x.valuation_status
          from public.daily_position_snapshots x
          where ps.security_id is null and st.prev_day is not null
            and x.portfolio_id = p_portfolio and x.security_id = r.security_id and x.date < st.prev_day
            and case when x.security_id = any(v_hist)
                     then x.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, x.security_id, x.date)
                     else x.epoch = 0 end
          order by x.date desc limit 1) bk on true
        -- bk has no row when ps has one, so each coalesce takes ps's value, NULL included.
        cross join lateral (
          select coalesce(ps.date, bk.date) as date, coalesce(ps.epoch, bk.epoch) as epoch,
                 coalesce(ps.market_value_local, bk.market_value_local) as market_value_local,
                 coalesce(ps.market_value, bk.market_value) as market_value,
                 coalesce(ps.valuation_status, bk.valuation_status) as valuation_status) b
      ), vals as (
        select b.security_id, b.date, b.epoch, b.bod_value, b.market_value_local, b.quantity, b.bod_unvalued,
          b.bod_date, b.bod_epoch, b.is_new,
          coalesce(b.bod_position, 0) as bod_position, coalesce(b.eod_position, 0) as eod_position,
          coalesce(b.bod_portfolio, 0) as bod_portfolio, coalesce(b.eod_portfolio, 0) as eod_portfolio,
          coalesce(b.fees, 0) as fees,
          -- cost_basis_local / quantity rounded half away from zero at 10 places from the exact
          -- quotient: the integer quotient of the value scaled by 10^10, plus one unit when the
          -- remainder is at least half the divisor (dividing first would round twice).
          case when b.quantity = 0 or b.cost_basis_local is null then 0::numeric
               else (div(b.cost_basis_local * 10000000000, b.quantity)
                     + case when 2 * abs(b.cost_basis_local * 10000000000
                                         - div(b.cost_basis_local * 10000000000, b.quantity) * b.quantity) >= abs(b.quantity)
                            then sign(b.cost_basis_local) * sign(b.quantity) else 0 end) / 10000000000
          end as cost
        from bod b
      ), checked as materialized (
      select v.is_new, v.security_id, v.date, v.epoch,
        case when v.bod_unvalued is null then v.bod_value
             else portfolio_timeseries_engine.stop_day(v.date, format('BOD snapshot of %s on %s (epoch %s) is unvalued: %s',
                    v.security_id, v.bod_date, v.bod_epoch, v.bod_unvalued)) end as bod_value,
        case when abs(v.bod_position) < 1e20 then v.bod_position else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.bod_cashflow_position of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.bod_position)) end as bod_position,
        case when abs(v.eod_position) < 1e20 then v.eod_position else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.eod_cashflow_position of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.eod_position)) end as eod_position,
        case when abs(v.bod_portfolio) < 1e20 then v.bod_portfolio else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.bod_cashflow_portfolio of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.bod_portfolio)) end as bod_portfolio,
        case when abs(v.eod_portfolio) < 1e20 then v.eod_portfolio else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.eod_cashflow_portfolio of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.eod_portfolio)) end as eod_portfolio,
        v.market_value_local as eod_value,
        case when abs(v.fees) < 1e20 then v.fees else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.fees of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.fees)) end as fees,
        v.quantity as quantity,
        case when abs(v.cost) < 1e20 then v.cost else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.cost of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.cost)) end as cost
      from vals v
      ), inserted as (
        insert into public.position_timeseries (
          portfolio_id, security_id, date, epoch, bod_market_value,
          bod_cashflow_position, eod_cashflow_position, bod_cashflow_portfolio, eod_cashflow_portfolio,
          eod_market_value, fees, quantity, cost)
        select p_portfolio, c.security_id, c.date, c.epoch, c.bod_value, c.bod_position, c.eod_position,
          c.bod_portfolio, c.eod_portfolio, c.eod_value, c.fees, c.quantity, c.cost
        from checked c where c.is_new
        returning 1
      ), replaced as (
        insert into public.position_timeseries as pt (
          portfolio_id, security_id, date, epoch, bod_market_value,
          bod_cashflow_position, eod_cashflow_position, bod_cashflow_portfolio, eod_cashflow_portfolio,
          eod_market_value, fees, quantity, cost)
        select p_portfolio, c.security_id, c.date, c.epoch, c.bod_value, c.bod_position, c.eod_position,
          c.bod_portfolio, c.eod_portfolio, c.eod_value, c.fees, c.quantity, c.cost
        from checked c where not c.is_new
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
        updated_at = now()
        returning 1
      )
      select (select count(*) from inserted) + (select count(*) from replaced) into v_position_rows;

      -- Rebuilt position days without an effective snapshot any more (an epoch change made it
      -- ineffective; its row was kept as the last complete one until now). Only days computed
      -- before can hold such rows; each candidate row is checked with one index probe.
      delete from public.position_timeseries pt
      using portfolio_timeseries_engine.dirty_position dp
      where dp.portfolio_id = p_portfolio and dp.date = any(v_days)
        and pt.portfolio_id = p_portfolio and pt.security_id = dp.security_id and pt.date = dp.date
        and not exists (
          select 1 from public.daily_position_snapshots s
          where s.portfolio_id = p_portfolio and s.security_id = pt.security_id and s.date = pt.date
            and case when s.security_id = any(v_hist)
                     then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                     else s.epoch = 0 end
          offset 0);
      if cardinality(v_all_dirty_old) > 0 then
        delete from public.position_timeseries pt
        where pt.portfolio_id = p_portfolio and pt.date = any(v_all_dirty_old)
          and not exists (
            select 1 from public.daily_position_snapshots s
            where s.portfolio_id = p_portfolio and s.security_id = pt.security_id and s.date = pt.date
              and case when s.security_id = any(v_hist)
                       then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                       else s.epoch = 0 end
            offset 0);
      end if;

      -- Stage 2: one row per day of the run, from the day's effective snapshots (market_value is
      -- already in the base currency) and its portfolio flows converted at the as-of rate. A
      -- security flow is in its instrument's currency (a day where it is not is blocked), so
      -- converting each flow at the rate of its own currency is the methodology's
      -- "position flows x rate(instrument currency)", summed.
      -- Driven by the run's days: every lookup is a lateral probe keyed by (portfolio, date), so
      -- no plan joins two derived sets, whatever the statistics.
      with vals as materialized (
        select d.date, pd.position_count, p.n, p.epoch, p.eod, cv.bod_cashflow, cv.eod_cashflow, cv.fees,
          pv.prev_date,
          lag(d.date) over w as prev_run_date, lag(p.eod) over w as prev_run_eod
        from unnest(v_days) d(date)
        cross join lateral (
          select x.position_count from portfolio_timeseries_engine.portfolio_day x
          where x.portfolio_id = p_portfolio and x.date = d.date offset 0) pd
        cross join lateral (
          select max(m.date) as prev_date from portfolio_timeseries_engine.portfolio_day m
          where m.portfolio_id = p_portfolio and m.expected_count is not null and m.date < d.date) pv
        cross join lateral (
          select count(*)::integer as n, round(coalesce(sum(s.market_value), 0), 10) as eod, coalesce(max(s.epoch), 0) as epoch
          from public.daily_position_snapshots s
          where s.portfolio_id = p_portfolio and s.date = d.date
            and case when s.security_id = any(v_hist)
                     then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                     else s.epoch = 0 end) p
        -- The day's portfolio flows, summed per currency, converted once per currency at the
        -- as-of rate (exact: sum(x) * r = sum(x * r) in numeric).
        cross join lateral (
          select round(coalesce(sum(f.bod * r.rate), 0), 10) as bod_cashflow,
                 round(coalesce(sum(f.eod * r.rate), 0), 10) as eod_cashflow,
                 round(coalesce(sum(f.fees * r.rate), 0), 10) as fees
          from (
            select c.currency,
              sum(c.amount) filter (where c.timing = 'BOD') as bod,
              sum(c.amount) filter (where c.timing = 'EOD') as eod,
              sum(abs(c.amount)) filter (where c.classification = 'EXPENSE') as fees
            from public.cashflows c
            where c.portfolio_id = p_portfolio and c.cashflow_date = d.date and c.is_portfolio_flow
            group by c.currency) f
          cross join lateral (
            select case when f.currency = v_base then 1::numeric else coalesce((
              select x.rate from public.fx_rates x
              where x.from_currency = f.currency and x.to_currency = v_base and x.rate_date <= d.date
              order by x.rate_date desc limit 1),
              portfolio_timeseries_engine.internal_error(format('portfolio %s, %s: no %s->%s rate for a day that was not blocked',
                p_portfolio, d.date, f.currency, v_base))) end as rate) r) cv
        window w as (order by d.date)
      ), upserted as (
        insert into public.portfolio_timeseries as pt (
          portfolio_id, date, epoch, bod_market_value, bod_cashflow, eod_cashflow, eod_market_value, fees, position_count)
        select p_portfolio, v.date, v.epoch,
          -- BOD: the previous declared day's EOD, new when that day is in this run.
          case
            when v.prev_date is null then 0
            when v.prev_date = v.prev_run_date then v.prev_run_eod
            else coalesce((select pp.eod_market_value from public.portfolio_timeseries pp
                           where pp.portfolio_id = p_portfolio and pp.date = v.prev_date),
                          portfolio_timeseries_engine.internal_error(format(
                            'portfolio %s, %s: the previous declared day %s is current but has no row', p_portfolio, v.date, v.prev_date)))
          end,
          case when abs(v.bod_cashflow) < 1e20 then v.bod_cashflow else portfolio_timeseries_engine.stop_day(v.date,
            format('portfolio_timeseries.bod_cashflow on %s is %s, which does not fit numeric(30,10)', v.date, v.bod_cashflow)) end,
          case when abs(v.eod_cashflow) < 1e20 then v.eod_cashflow else portfolio_timeseries_engine.stop_day(v.date,
            format('portfolio_timeseries.eod_cashflow on %s is %s, which does not fit numeric(30,10)', v.date, v.eod_cashflow)) end,
          case when abs(v.eod) < 1e20 then v.eod else portfolio_timeseries_engine.stop_day(v.date,
            format('portfolio_timeseries.eod_market_value on %s is %s, which does not fit numeric(30,10)', v.date, v.eod)) end,
          case when abs(v.fees) < 1e20 then v.fees else portfolio_timeseries_engine.stop_day(v.date,
            format('portfolio_timeseries.fees on %s is %s, which does not fit numeric(30,10)', v.date, v.fees)) end,
          -- The day's counter and its effective snapshots agree, or this is an engine bug that
          -- must not become a row built from part of the day.
          case when v.n = v.position_count then v.n else portfolio_timeseries_engine.internal_error(format(
            'portfolio %s, %s: %s effective snapshots but a counter of %s', p_portfolio, v.date, v.n, v.position_count)) end
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
      -- The probe below reads the table as it was before this statement: the old EOD.
      select coalesce(array_agg(u.date order by u.date), '{}') into v_changed
      from upserted u
      left join lateral (
        select o.eod_market_value from public.portfolio_timeseries o
        where o.portfolio_id = p_portfolio and o.date = u.date offset 0) o on true
      where o.eod_market_value is distinct from u.eod_market_value;

      exit;
    exception when sqlstate 'PTB01' then
      get stacked diagnostics v_caught_reason = message_text, v_caught_date = pg_exception_detail;
      -- Every reason of that day, for status: the BOD sources of all its positions, and what
      -- stopped the statement.
      select string_agg(distinct r, '; ' order by r) into v_stop_reason
      from (select b.reason as r from portfolio_timeseries_engine.day_reasons(p_portfolio, array[v_caught_date], true) b
            union select v_caught_reason) x;
      v_stop := v_caught_date;
      v_days := array(select d from unnest(v_days) d where d < v_caught_date order by d);
    end;
  end loop;

  if cardinality(v_days) > 0 then
    -- Every rebuilt day has exactly its positions' rows.
    select d.date, pd.position_count, n.n into v_bad
    from unnest(v_days) d(date)
    cross join lateral (
      select x.position_count from portfolio_timeseries_engine.portfolio_day x
      where x.portfolio_id = p_portfolio and x.date = d.date offset 0) pd
    cross join lateral (
      select count(*) as n from public.position_timeseries pt
      where pt.portfolio_id = p_portfolio and pt.date = d.date) n
    where pd.position_count <> n.n
    limit 1;
    if found then
      perform portfolio_timeseries_engine.internal_error(format('portfolio %s, %s: %s positions but %s position rows',
        p_portfolio, v_bad.date, v_bad.position_count, v_bad.n));
    end if;

    -- Cascade with early cutoff: the next declared day of a day whose EOD changed, when it is
    -- not in this run and not behind a day that stays dirty, takes the new EOD as its BOD;
    -- nothing beyond it changes (a day's EOD does not depend on its BOD).
    v_fix := array(
      select x.next_date from (
        select (select min(m.date) from portfolio_timeseries_engine.portfolio_day m
                where m.portfolio_id = p_portfolio and m.expected_count is not null and m.date > c.date) as next_date
        from unnest(v_changed) c(date)) x
      where x.next_date is not null and not (x.next_date = any(v_days)) and x.next_date < coalesce(v_stop, 'infinity'));
    if cardinality(v_fix) > 0 then
      -- A new BOD is a new daily return: the day's stored returns follow its row.
      with fixed as (
        update public.portfolio_timeseries pt
        set bod_market_value = prev.eod_market_value, updated_at = now()
        from unnest(v_fix) f(date)
        cross join lateral (
          select pp.eod_market_value from public.portfolio_timeseries pp
          where pp.portfolio_id = p_portfolio and pp.date < f.date
          order by pp.date desc limit 1) prev
        where pt.portfolio_id = p_portfolio and pt.date = f.date
          and pt.bod_market_value is distinct from prev.eod_market_value
        returning pt.date, pt.bod_market_value, pt.bod_cashflow, pt.eod_cashflow, pt.eod_market_value, pt.fees
      )
      update portfolio_timeseries_engine.portfolio_day pd
      set gross_return = r.gross, net_return = r.net, zero_base = r.zero_base
      from fixed f
      cross join lateral portfolio_timeseries_engine.day_returns(
        f.bod_market_value, f.bod_cashflow, f.eod_cashflow, f.eod_market_value, f.fees) r
      where pd.portfolio_id = p_portfolio and pd.date = f.date;
      get diagnostics v_bod_updates = row_count;
    end if;

    delete from portfolio_timeseries_engine.dirty_position dp
    where dp.portfolio_id = p_portfolio and dp.date = any(v_days);
    -- The day is current from here on, with the returns of the row just written.
    update portfolio_timeseries_engine.portfolio_day pd
    set dirty = false, all_positions_dirty = false, blocked_reason = null,
        computed_count = pd.computed_count + 1, computed_at = now(),
        (gross_return, net_return, zero_base) = (
          select r.gross, r.net, r.zero_base
          from public.portfolio_timeseries pt
          cross join lateral portfolio_timeseries_engine.day_returns(
            pt.bod_market_value, pt.bod_cashflow, pt.eod_cashflow, pt.eod_market_value, pt.fees) r
          where pt.portfolio_id = p_portfolio and pt.date = pd.date)
    where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio, v_days));
  end if;

  if v_stop is not null then
    update portfolio_timeseries_engine.portfolio_day pd
    set blocked_reason = v_stop_reason
    where pd.portfolio_id = p_portfolio and pd.date = v_stop
      and pd.blocked_reason is distinct from v_stop_reason;
  end if;

  update portfolio_timeseries_engine.portfolio_job j
  set portfolio_days = j.portfolio_days + cardinality(v_days),
      position_days = j.position_days + v_position_rows,
      bod_updates = j.bod_updates + v_bod_updates,
      failures = 0, last_error = null, retry_at = null
  where j.portfolio_id = p_portfolio;

  return jsonb_build_object(
    'portfolio_id', p_portfolio,
    'changes', cardinality(v_changes),
    'portfolio_days', cardinality(v_days),
    'position_days', v_position_rows,
    'bod_updates', v_bod_updates,
    'stopped_at', v_stop,
    'stop_reason', coalesce(v_stop_reason, v_stop_waiting));
end;
$$;

-- Several portfolios in one transaction (the drain's unit of work): the commit, its WAL flush and
-- the round trips are paid once per batch instead of once per portfolio, which is most of the
-- cost of a day of many small portfolios. Each portfolio runs in its own subtransaction: one that
-- fails is undone alone, recorded (portfolio_job.last_error, retried after a back-off) and the
-- others go on; one that another job holds is reported busy; one whose guard row tells it that
-- this transaction's snapshot is older than another job's commit (40001) is reported for retry.
-- Stops taking portfolios after p_max_ms; those not reached stay pending.
create or replace function portfolio_timeseries_engine.compute_portfolios(p_portfolios text[], p_max_ms integer default 500)
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_started timestamptz := clock_timestamp();
  v_portfolio text;
  v_run jsonb;
  v_runs jsonb := '[]';
  v_busy jsonb := '[]';
  v_retry jsonb := '[]';
  v_failed jsonb := '[]';
  v_not_reached jsonb := '[]';
  v_error text;
  v_retry_at timestamptz;
begin
  foreach v_portfolio in array p_portfolios loop
    if clock_timestamp() - v_started > make_interval(secs => p_max_ms / 1000.0) then
      v_not_reached := v_not_reached || to_jsonb(v_portfolio);
      continue;
    end if;
    begin
      v_run := portfolio_timeseries_engine.compute_portfolio(v_portfolio);
      if (v_run ->> 'busy')::boolean then
        v_busy := v_busy || to_jsonb(v_portfolio);
      else
        v_runs := v_runs || v_run;
      end if;
    exception
      when serialization_failure or deadlock_detected then
        v_retry := v_retry || to_jsonb(v_portfolio);
      when others then
        get stacked diagnostics v_error = message_text;
        begin
          v_retry_at := portfolio_timeseries_engine.record_failure(v_portfolio, v_error);
        exception when serialization_failure then
          v_retry_at := null; -- another job of it committed meanwhile: it fails again next time if it must
        end;
        v_failed := v_failed || jsonb_build_object('portfolio_id', v_portfolio, 'error', v_error, 'retry_at', v_retry_at);
    end;
  end loop;
  return jsonb_build_object('runs', v_runs, 'busy', v_busy, 'retry', v_retry, 'failed', v_failed,
    'not_reached', v_not_reached);
end;
$$;

-- >>> sql/10_status.sql
-- Status of every portfolio-day (docs/contract.md section 5), and what the drain and the sweep
-- need to find work.

-- The earliest date each portfolio's pending (not yet applied) changes can affect, including
-- reference changes not yet fanned out. Every declared day from that date on is not current
-- until the portfolio's job has run: a pending change at D can move the BOD of any later day.
create or replace function portfolio_timeseries_engine.pending_from(p_portfolio text default null)
returns table (portfolio_id text, from_date date)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  -- One statement per case: a cached plan of "p IS NULL OR portfolio_id = p" reads everything.
  if p_portfolio is null then
    return query
    select x.portfolio_id, min(x.from_date)
    from (
      select c.portfolio_id, case when c.kind in ('P', 'A') then '-infinity'::date else c.date_from end as from_date
      from portfolio_timeseries_engine.change c
      union all
      select p.portfolio_id, r.rate_date
      from portfolio_timeseries_engine.reference_change r
      join public.portfolios p on p.base_currency = r.to_currency
      where r.kind = 'F'
      union all
      -- An instrument: every day of the portfolios fan_out will reach (the pending changes that
      -- name it already count above).
      select ps.portfolio_id, '-infinity'::date
      from portfolio_timeseries_engine.reference_change r
      join portfolio_timeseries_engine.portfolio_security ps on ps.security_id = r.security_id
      where r.kind = 'I'
    ) x
    group by x.portfolio_id;
  else
    return query
    select p_portfolio, min(x.from_date)
    from (
      select case when c.kind in ('P', 'A') then '-infinity'::date else c.date_from end as from_date
      from portfolio_timeseries_engine.change c
      where c.portfolio_id = p_portfolio
      union all
      select r.rate_date
      from portfolio_timeseries_engine.reference_change r
      join public.portfolios p on p.base_currency = r.to_currency and p.portfolio_id = p_portfolio
      where r.kind = 'F'
      union all
      select '-infinity'::date
      from portfolio_timeseries_engine.reference_change r
      join portfolio_timeseries_engine.portfolio_security ps
        on ps.security_id = r.security_id and ps.portfolio_id = p_portfolio
      where r.kind = 'I'
    ) x
    having min(x.from_date) is not null;
  end if;
end;
$$;

-- States, decided per portfolio in date order:
--   undeclared            snapshots but no manifest row
--   waiting               fewer positions than declared ("k of n")
--   blocked               more positions than declared, or the day cannot be computed (the reason)
--   waiting_previous_day  an earlier declared day is not current (the first such day is named)
--   queued                ready, not computed yet (or changed since it was computed)
--   current               the row equals what the methodology gives for the committed inputs
-- Days a pending change may affect are counted and checked from the inputs here, as the job will
-- do, so a day says why it cannot be computed before any worker has run.
-- Filters (each NULL = all): one portfolio, the states to return, and a date range. A day's state
-- depends on the days before it (waiting_previous_day), so p_to prunes the days read while
-- p_from and p_states only select what is returned.
-- SECURITY DEFINER: a reader role needs EXECUTE on this function only, not rights on the inputs or
-- the engine's tables (sql/14_roles.sql).
drop function if exists portfolio_timeseries_engine.status(text);
create or replace function portfolio_timeseries_engine.status(
  p_portfolio text default null, p_states text[] default null, p_from date default null, p_to date default null)
returns table (portfolio_id text, date date, state text, detail text, has_row boolean)
language sql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  with pending as (
    select * from portfolio_timeseries_engine.pending_from(p_portfolio)
  ), hist as (
    select distinct e.portfolio_id, e.security_id from portfolio_timeseries_engine.epoch_start e
    where p_portfolio is null or e.portfolio_id = p_portfolio
  ), live as (
    select d.portfolio_id, d.date,
      (select count(*)::integer from public.daily_position_snapshots s
       where s.portfolio_id = d.portfolio_id and s.date = d.date
         and case when exists (select 1 from hist h where h.portfolio_id = s.portfolio_id and h.security_id = s.security_id)
                  then s.epoch = portfolio_timeseries_engine.effective_epoch(s.portfolio_id, s.security_id, s.date)
                  else s.epoch = 0 end) as position_count,
      (select m.expected_count from public.daily_aggregation_manifest m
       where m.portfolio_id = d.portfolio_id and m.aggregation_date = d.date) as expected_count
    from (
      select s.portfolio_id, s.date
      from public.daily_position_snapshots s join pending p on p.portfolio_id = s.portfolio_id and s.date >= p.from_date
      where p_to is null or s.date <= p_to
      union
      select m.portfolio_id, m.aggregation_date
      from public.daily_aggregation_manifest m join pending p on p.portfolio_id = m.portfolio_id and m.aggregation_date >= p.from_date
      where p_to is null or m.aggregation_date <= p_to
    ) d
  ), days as (
    select pd.portfolio_id, pd.date, pd.position_count, pd.expected_count, pd.dirty, pd.blocked_reason, false as live
    from portfolio_timeseries_engine.portfolio_day pd
    left join pending p on p.portfolio_id = pd.portfolio_id
    where (p_portfolio is null or pd.portfolio_id = p_portfolio)
      and (p.from_date is null or pd.date < p.from_date)
      and (p_to is null or pd.date <= p_to)
    union all
    select l.portfolio_id, l.date, l.position_count, l.expected_count, true, null, true
    from live l
  ), ordered as (
    select d.*,
      min(d.date) filter (where d.dirty and d.expected_count is not null)
        over (partition by d.portfolio_id order by d.date rows between unbounded preceding and 1 preceding)
        as first_not_current_before
    from days d
    where d.expected_count is not null or d.position_count > 0
  ), live_reasons as (
    -- The first not-current declared day of a portfolio whose state depends on pending changes.
    select o.portfolio_id, o.date, r.reason
    from ordered o
    cross join lateral portfolio_timeseries_engine.day_reasons(o.portfolio_id, array[o.date], true) r
    where o.live and o.dirty and o.expected_count is not null and o.position_count = o.expected_count
      and o.first_not_current_before is null
  ), decided as (
    select o.portfolio_id, o.date, o.position_count, o.expected_count, o.first_not_current_before,
      coalesce(lr.reason, o.blocked_reason) as reason,
      case
        when o.expected_count is null then 'undeclared'
        when o.position_count < o.expected_count then 'waiting'
        when o.position_count > o.expected_count then 'blocked'
        when o.first_not_current_before is not null then 'waiting_previous_day'
        when not o.dirty then 'current'
        when coalesce(lr.reason, o.blocked_reason) is not null then 'blocked'
        else 'queued'
      end as state
    from ordered o
    left join live_reasons lr on lr.portfolio_id = o.portfolio_id and lr.date = o.date
  )
  select x.portfolio_id, x.date, x.state,
    case x.state
      when 'undeclared' then format('%s positions, no manifest row', x.position_count)
      when 'waiting' then format('%s of %s', x.position_count, x.expected_count)
      when 'blocked' then case when x.position_count > x.expected_count
        then format('%s positions exist but %s declared', x.position_count, x.expected_count) else x.reason end
      when 'waiting_previous_day' then format('waiting for %s', x.first_not_current_before)
      when 'queued' then coalesce((
        select format('ready; the last job failed (%s), retried after %s', j.last_error, j.retry_at)
        from portfolio_timeseries_engine.portfolio_job j
        where j.portfolio_id = x.portfolio_id and j.failures > 0), 'ready, not computed yet')
      else null
    end as detail,
    exists (select 1 from public.portfolio_timeseries pt
            where pt.portfolio_id = x.portfolio_id and pt.date = x.date offset 0) as has_row
  from decided x
  where (p_from is null or x.date >= p_from) and (p_states is null or x.state = any(p_states))
  order by x.portfolio_id, x.date
$$;

-- Portfolios with pending changes whose job is not in back-off after a failure, in random order
-- (concurrent drains then rarely try the same portfolio at once).
create or replace function portfolio_timeseries_engine.pending_portfolios(p_limit integer default 1000)
returns table (portfolio_id text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select p.portfolio_id
  from (select distinct c.portfolio_id from portfolio_timeseries_engine.change c) p
  left join portfolio_timeseries_engine.portfolio_job j on j.portfolio_id = p.portfolio_id
  where j.retry_at is null or j.retry_at <= now()
  order by random()
  limit p_limit
$$;

-- A job that failed (an unexpected error, not a blocked day): its transaction rolled back, so
-- its changes are pending again; it is retried after a back-off (1 s doubling to 5 min) and
-- status shows the error meanwhile.
create or replace function portfolio_timeseries_engine.record_failure(p_portfolio text, p_error text)
returns timestamptz
language sql
set search_path = pg_catalog, pg_temp
as $$
  insert into portfolio_timeseries_engine.portfolio_job as j (portfolio_id, failures, last_error, retry_at)
  values (p_portfolio, 1, p_error, now() + interval '1 second')
  on conflict (portfolio_id) do update set
    failures = j.failures + 1,
    last_error = excluded.last_error,
    retry_at = now() + least(interval '5 minutes', interval '1 second' * power(2, least(j.failures, 16)))
  returning retry_at
$$;

-- Safety net, run by the crontab task every minute and when a worker starts: wake a drain when
-- anything is pending (work left by a killed worker, a failed job due for its retry), and give a
-- portfolio whose first dirty declared day is ready but has no pending change (it cannot happen
-- by design; this is a net) a change that makes its job look again. Returns how many portfolios
-- have pending work.
create or replace function portfolio_timeseries_engine.sweep()
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_stuck integer;
  v_pending integer;
begin
  insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to)
  select f.portfolio_id, 'R', f.date, f.date
  from (
    select distinct on (pd.portfolio_id) pd.portfolio_id, pd.date, pd.position_count, pd.expected_count, pd.blocked_reason
    from portfolio_timeseries_engine.portfolio_day pd
    where pd.dirty and pd.expected_count is not null
    order by pd.portfolio_id, pd.date
  ) f
  where f.position_count = f.expected_count and f.blocked_reason is null
    and not exists (select 1 from portfolio_timeseries_engine.change c where c.portfolio_id = f.portfolio_id);
  get diagnostics v_stuck = row_count;

  select count(distinct c.portfolio_id)::integer into v_pending from portfolio_timeseries_engine.change c;
  if v_pending > 0 or exists (select 1 from portfolio_timeseries_engine.reference_change) then
    perform graphile_worker.add_job('portfolio_timeseries:drain', '{}'::json,
      job_key := 'portfolio_timeseries:sweep', job_key_mode := 'replace');
  end if;
  return v_pending;
end;
$$;

-- >>> sql/11_seal.sql
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

-- >>> sql/12_status_view.sql
-- public.portfolio_day_status: the public, documented way to read the state of every
-- portfolio-day in SQL (docs/contract.md, "Public surface"). The function behind it
-- (portfolio_timeseries_engine.status) is private and may change between versions; this view's
-- columns do not.
--
-- One status(p) call per portfolio, driven by the portfolios the engine knows (the portfolios
-- table, every portfolio a job ran for, every portfolio with a pending change: a day can exist
-- for a portfolio missing from `portfolios`, blocked with that reason). The portfolio_id column is
-- the driving row's, so `where portfolio_id = 'P'` is pushed into the driving set and reads one
-- portfolio; a view over status(NULL) would evaluate the whole book for every query.
create or replace view public.portfolio_day_status as
select k.portfolio_id, s.date, s.state, s.detail, s.has_row
from (
  select p.portfolio_id from public.portfolios p
  union
  select j.portfolio_id from portfolio_timeseries_engine.portfolio_job j
  union
  select c.portfolio_id from portfolio_timeseries_engine.change c
) k
cross join lateral portfolio_timeseries_engine.status(k.portfolio_id) s;

comment on view public.portfolio_day_status is
  'State of every portfolio-day: undeclared, waiting, waiting_previous_day, blocked, queued, current (docs/operations.md). Filter by portfolio_id to read one portfolio.';

-- >>> sql/13_returns.sql
-- The read side (issue #10): time-weighted and money-weighted returns and risk, computed from the
-- two output tables and the daily returns the job stores beside each portfolio row (day_returns,
-- below). Everything here only reads; it never writes an input, an output or engine state. The
-- formulas and conventions are stated, with a worked example, in docs/methodology.md ("Returns
-- and risk"); this file says why each function is shaped the way it is.
--
-- Arithmetic is numeric throughout. Quantities that cannot be exact (a quotient, a product of
-- many daily factors, a root of the XIRR equation) are carried to 30 decimal places, rounded half
-- away from zero; the XIRR search works at 60. A numeric quotient only has about 20 significant
-- digits unless its dividend carries more decimals, so every dividend is given its scale first
-- (round(x, 40) / n, never round(x / n, 40)).
--
-- The functions that query set jit = off: a function result is estimated at 1000 rows, which
-- for one portfolio's ten years put the estimate past jit_above_cost, and compiling the plan
-- cost 300 ms for a query of 8; for the whole book JIT saved nothing (docs/performance.md).

-- A day's returns from its portfolio_timeseries row, the one place the formula is written. The job
-- calls it in the transaction that writes the row and stores the result in portfolio_day
-- (gross_return, net_return, zero_base); the read side reads it from there, so a book-wide return
-- divides nothing (docs/decisions.md, "Stored daily returns").
--   r = (EOD - BOD - BOD_CF - EOD_CF [- fees for NET]) / (BOD + BOD_CF), 30 places, half away from zero;
--   zero_base: the denominator is 0; r is 0 by convention and the day is flagged.
create or replace function portfolio_timeseries_engine.day_returns(
  p_bod numeric, p_bod_cashflow numeric, p_eod_cashflow numeric, p_eod numeric, p_fees numeric,
  out gross numeric, out net numeric, out zero_base boolean)
language plpgsql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
declare
  v_den numeric := p_bod + p_bod_cashflow;
  v_num numeric := p_eod - p_bod - p_bod_cashflow - p_eod_cashflow;
begin
  zero_base := v_den = 0;
  if zero_base then
    gross := 0;
    net := 0;
  else
    gross := round(round(v_num, 34) / v_den, 30);
    net := round(round(v_num - p_fees, 34) / v_den, 30);
  end if;
end;
$$;

-- GROSS or NET, or an error naming what was given: every function taking a basis asks here.
create or replace function portfolio_timeseries_engine.basis_is_net(p_basis text)
returns boolean
language plpgsql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_basis is null or p_basis not in ('GROSS', 'NET') then
    raise exception 'basis must be GROSS or NET, got %', coalesce(p_basis, 'NULL');
  end if;
  return p_basis = 'NET';
end;
$$;

-- A range of finite dates, from <= to, or an error saying which is wrong: every function taking
-- a range asks here.
create or replace function portfolio_timeseries_engine.check_range(p_from date, p_to date)
returns void
language plpgsql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_from is null or p_to is null or not isfinite(p_from) or not isfinite(p_to) then
    raise exception 'range: from and to must be finite dates, got % and %', coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL');
  end if;
  if p_from > p_to then
    raise exception 'range: from % is after to %', p_from, p_to;
  end if;
end;
$$;

-- The part of the current-day rule that belongs to a portfolio rather than to a day: the first
-- day from which nothing can be current, because an earlier declared day is dirty (every later
-- day waits for it) or because a pending change reaches it (pending_from, the rule status() uses).
-- NULL portfolios = every portfolio that has such a day; current_before is NULL when there is none.
-- Two statements rather than one with "p IS NULL OR ...": a generic plan of the combined form
-- reads the whole book for one portfolio. Rows 10: such a portfolio is the exception.
create or replace function portfolio_timeseries_engine.current_limit(p_portfolios text[])
returns table (portfolio_id text, current_before date)
language plpgsql stable
rows 10
set search_path = pg_catalog, pg_temp
set jit = off
as $$
begin
  if p_portfolios is null then
    return query
    select x.portfolio_id, min(x.first_date)
    from (
      select d.portfolio_id, min(d.date) as first_date
      from portfolio_timeseries_engine.portfolio_day d
      where d.dirty and d.expected_count is not null
      group by d.portfolio_id
      union all
      select f.portfolio_id, f.from_date from portfolio_timeseries_engine.pending_from(null) f
    ) x
    group by x.portfolio_id;
  else
    return query
    select p.portfolio_id, least(fd.first_date, pe.from_date)
    from (select distinct u.portfolio_id from unnest(p_portfolios) u(portfolio_id)) p
    cross join lateral (
      select min(d.date) as first_date from portfolio_timeseries_engine.portfolio_day d
      where d.portfolio_id = p.portfolio_id and d.dirty and d.expected_count is not null) fd
    cross join lateral (
      select min(f.from_date) as from_date from portfolio_timeseries_engine.pending_from(p.portfolio_id) f) pe;
  end if;
end;
$$;

-- The current-day rule, in one place, and each portfolio's usable days as arrays in date order:
-- what every read-side function starts from. A day is usable (current) when it is declared, its
-- row is up to date (not dirty) and was written with its returns, and it lies before the
-- portfolio's current_limit. Every other day the engine knows of in the range is in missing: a
-- declared day that is waiting, blocked, queued or waiting for an earlier day, an undeclared day
-- with snapshots, and a day only a pending change knows about yet.
-- One row per portfolio in p_portfolios (NULL = all) that is open by p_to, its range clamped to
-- its open date (range_from). dates, returns (GROSS, or NET when p_net), zero_base: the usable
-- days, aligned; missing: the others. Arrays rather than rows: a book is 10,000 portfolios of
-- 261 days, and each portfolio's days are one index range of portfolio_day folded by one
-- aggregate, with the returns the job stored there (nothing is divided, portfolio_timeseries is
-- not read); a result of 2.6 million rows and its sort cost more than the returns themselves.
-- The four arrays are aggregated from one sorted subquery rather than with ORDER BY inside each
-- aggregate, which sorts the same rows once per aggregate (1.2 s of the book's 3.3 s): a plain
-- aggregate directly over a sorted subquery reads it in that order (the PostgreSQL manual's
-- other way to order an aggregate's input), and the tests compare every day's position.
create or replace function portfolio_timeseries_engine.day_series(p_portfolios text[], p_from date, p_to date, p_net boolean)
returns table (portfolio_id text, range_from date, dates date[], returns numeric[], zero_base boolean[], missing date[])
language plpgsql stable
set search_path = pg_catalog, pg_temp
set jit = off
-- One plan for every call (planning it cost 1 ms of the 3 ms of one portfolio's ten years): each
-- portfolio's days are one index range whatever the statistics, and the two ways of choosing the
-- portfolios are two branches, only one of which runs.
set plan_cache_mode = force_generic_plan
as $$
begin
  perform portfolio_timeseries_engine.check_range(p_from, p_to);
  return query
  select g.portfolio_id, g.range_from, coalesce(x.dates, '{}'), coalesce(x.returns, '{}'),
         coalesce(x.zero_base, '{}'), coalesce(x.missing, '{}')
  from (
    select p.portfolio_id, greatest(p_from, p.open_date) as range_from
    from public.portfolios p
    where p.portfolio_id = any (p_portfolios) and p.open_date <= p_to
    union all
    select p.portfolio_id, greatest(p_from, p.open_date)
    from public.portfolios p
    where p_portfolios is null and p.open_date <= p_to
  ) g
  left join portfolio_timeseries_engine.current_limit(p_portfolios) l on l.portfolio_id = g.portfolio_id
  cross join lateral (
    select array_agg(u.date) filter (where u.usable) as dates,
           array_agg(u.r) filter (where u.usable) as returns,
           array_agg(u.zero_base) filter (where u.usable) as zero_base,
           array_agg(u.date) filter (where not u.usable) as missing
    from (
      select d.date, d.zero_base, case when p_net then d.net_return else d.gross_return end as r,
             d.expected_count is not null and not d.dirty and d.gross_return is not null
               and d.date < coalesce(l.current_before, 'infinity') as usable
      from portfolio_timeseries_engine.portfolio_day d
      where d.portfolio_id = g.portfolio_id and d.date between g.range_from and p_to
        and (d.expected_count is not null or d.position_count > 0)
      union all
      select distinct c.date_from, null::boolean, null::numeric, false
      from portfolio_timeseries_engine.change c
      where c.portfolio_id = g.portfolio_id and c.kind in ('S', 'M') and c.date_from between g.range_from and p_to
        and not exists (select 1 from portfolio_timeseries_engine.portfolio_day d
                        where d.portfolio_id = c.portfolio_id and d.date = c.date_from offset 0)
      order by 1
    ) u
  ) x;
end;
$$;

-- day_series as one row per day: is_current for each usable day, false for each missing one.
create or replace function portfolio_timeseries_engine.current_days(p_portfolios text[], p_from date, p_to date)
returns table (portfolio_id text, date date, is_current boolean)
language plpgsql stable
set search_path = pg_catalog, pg_temp
set jit = off
as $$
begin
  return query
  select s.portfolio_id, u.date, u.is_current
  from portfolio_timeseries_engine.day_series(p_portfolios, p_from, p_to, false) s
  cross join lateral (
    select d, true from unnest(s.dates) d
    union all
    select d, false from unnest(s.missing) d) u(date, is_current);
end;
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

-- The wealth index as an ordinary aggregate, for queries of one's own over the returns (a window
-- portfolio_wealth(r) over (order by date), or r ordered inside it). Starts at 1; each day
-- multiplies by (1 + r). The read side's functions use the array forms below.
create or replace aggregate public.portfolio_wealth(numeric) (
  sfunc = public.portfolio_wealth_step,
  stype = numeric,
  initcond = '1',
  parallel = safe
);

-- The same index over an array of returns in date order, for callers that have the whole series
-- at once: one PL/pgSQL loop instead of one call of the step function per day, which as a window
-- aggregate cost 5 µs a day (docs/performance.md). Each step is portfolio_wealth_step's rounding,
-- written out (a call per element would cost what the loop saves); the tests hold them equal.
-- portfolio_wealth_path: the wealth after each day; portfolio_wealth_end: after the last (1 for
-- no day).
create or replace function public.portfolio_wealth_path(p_returns numeric[])
returns numeric[]
language plpgsql immutable strict parallel safe
set search_path = pg_catalog, pg_temp
as $$
declare
  v_wealth numeric := 1;
  v_return numeric;
  v_path numeric[] := '{}';
  v_i integer := 0;
begin
  foreach v_return in array p_returns loop
    if v_return is null then
      raise exception 'portfolio_wealth_path: return % of % is NULL', v_i + 1, cardinality(p_returns);
    end if;
    v_wealth := round(v_wealth * (1 + v_return), 30);
    v_i := v_i + 1;
    v_path[v_i] := v_wealth;
  end loop;
  return v_path;
end;
$$;

create or replace function public.portfolio_wealth_end(p_returns numeric[])
returns numeric
language plpgsql immutable strict parallel safe
set search_path = pg_catalog, pg_temp
as $$
declare
  v_wealth numeric := 1;
  v_return numeric;
begin
  foreach v_return in array p_returns loop
    if v_return is null then
      raise exception 'portfolio_wealth_end: a return of % is NULL', cardinality(p_returns);
    end if;
    v_wealth := round(v_wealth * (1 + v_return), 30);
  end loop;
  return v_wealth;
end;
$$;

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
-- behind every annualisation, from here (day_series applies the same clamp to each portfolio of
-- a book). An unknown portfolio, or one that opened after the range, is an error that says which, rather
-- than an empty answer that looks like "no return".
create or replace function public.portfolio_range(p_portfolio text, p_from date, p_to date)
returns table (range_from date, range_to date, days integer)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_open date;
begin
  perform portfolio_timeseries_engine.check_range(p_from, p_to);
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

-- One row per day of the range that the read side can use or must report, for any number of
-- portfolios (NULL = all), with the row's values: every usable day of day_series with its
-- portfolio_timeseries row and the daily return the job stored with it (is_current), and every
-- day that is not usable (is_current false, values NULL): day_series' missing days, and a row
-- the engine's per-day state does not vouch for. A stale row is never used: while a day is
-- recomputed its last complete row stays in the table, but its return would be the old one.
-- Each portfolio's range starts at its open date at the earliest; rows come unordered.
create or replace function public.portfolio_daily_returns(p_portfolios text[], p_from date, p_to date, p_basis text default 'GROSS')
returns table (portfolio_id text, date date, is_current boolean, daily_return numeric, zero_base boolean,
               bod_market_value numeric, bod_cashflow numeric, eod_cashflow numeric, eod_market_value numeric, fees numeric)
language plpgsql stable
rows 100000
set search_path = pg_catalog, pg_temp
set jit = off
set plan_cache_mode = force_custom_plan
as $$
#variable_conflict use_column
declare
  v_net boolean := portfolio_timeseries_engine.basis_is_net(p_basis);
begin
  return query
  select coalesce(t.portfolio_id, c.portfolio_id), coalesce(t.date, c.date), u.usable,
         case when u.usable then c.r end,
         case when u.usable then c.zero_base end,
         case when u.usable then t.bod_market_value end,
         case when u.usable then t.bod_cashflow end,
         case when u.usable then t.eod_cashflow end,
         case when u.usable then t.eod_market_value end,
         case when u.usable then t.fees end
  from (
    select s.portfolio_id, s.date, s.bod_market_value, s.bod_cashflow, s.eod_cashflow, s.eod_market_value, s.fees
    from public.portfolio_timeseries s
    where (p_portfolios is null or s.portfolio_id = any (p_portfolios)) and s.date between p_from and p_to
  ) t
  full join (
    select ds.portfolio_id, x.date, x.is_current, x.r, x.zero_base
    from portfolio_timeseries_engine.day_series(p_portfolios, p_from, p_to, v_net) ds
    cross join lateral (
      select d.date, true as is_current, d.r, d.zero_base from unnest(ds.dates, ds.returns, ds.zero_base) d(date, r, zero_base)
      union all
      select m, false, null, null from unnest(ds.missing) m) x
  ) c on c.portfolio_id = t.portfolio_id and c.date = t.date
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
set jit = off
as $$
#variable_conflict use_column
declare
  v_net boolean := portfolio_timeseries_engine.basis_is_net(p_basis);
  v_from date;
begin
  select r.range_from into v_from from public.portfolio_range(p_portfolio, p_from, p_to) r;
  return query
  select u.date, u.r, u.wealth - 1, u.zero_base
  from portfolio_timeseries_engine.day_series(array[p_portfolio], v_from, p_to, v_net) s
  cross join lateral unnest(s.dates, s.returns, public.portfolio_wealth_path(s.returns), s.zero_base)
    as u(date, r, wealth, zero_base)
  order by u.date;
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
set jit = off
as $$
#variable_conflict use_column
declare
  v_net boolean := portfolio_timeseries_engine.basis_is_net(p_basis);
begin
  return query
  select s.portfolio_id, s.range_from, p_to, p_basis, x.days, x.day_count,
         case when x.day_count > 0 then x.wealth - 1 end,
         case when x.day_count > 0 and x.days > 365 and x.wealth >= 0
              then round(power(round(x.wealth, 40), round(365.25, 40) / x.days) - 1, 30) end,
         case when true = any (s.zero_base)
              then array(select z.date from unnest(s.dates, s.zero_base) z(date, flag) where z.flag order by z.date)
              else '{}' end,
         s.missing
  from portfolio_timeseries_engine.day_series(p_portfolios, p_from, p_to, v_net) s
  cross join lateral (
    select p_to - s.range_from + 1 as days, cardinality(s.dates) as day_count,
           public.portfolio_wealth_end(s.returns) as wealth) x
  order by s.portfolio_id;
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
-- numbers every XIRR step needs, in one pass. Offsets are whole days, so v^k is an integer power.
-- The solver passes the offsets in ascending order: each power is then the previous one times
-- v^(gap), kept at 60 places (a gap of one day, the common case, is one multiplication), which
-- costs a third of one power() per amount (docs/performance.md); an offset below the previous
-- one is raised on its own.
--   npv = sum(a_k v^k),  slope = sum(k a_k v^k) = v * d(npv)/dv
create or replace function public.portfolio_xirr_npv(p_amounts numeric[], p_days integer[], p_factor numeric,
                                                     out npv numeric, out slope numeric)
language plpgsql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
declare
  v_a numeric;
  v_k integer;
  v_i integer := 0;
  v_prev integer := 0;
  v_power numeric := 1;
  v_term numeric;
begin
  npv := 0;
  slope := 0;
  if p_amounts is null or p_days is null or p_factor is null then
    return;
  end if;
  foreach v_a in array p_amounts loop
    v_i := v_i + 1;
    v_k := p_days[v_i];
    continue when v_a is null or v_k is null;
    if v_k = v_prev + 1 and v_k > 0 then
      v_power := round(v_power * p_factor, 60);
    elsif v_k > v_prev and v_prev >= 0 then
      v_power := round(v_power * power(p_factor, (v_k - v_prev)::numeric), 60);
    elsif v_k <> v_prev then
      v_power := round(power(p_factor, v_k::numeric), 60);
    end if;
    v_prev := v_k;
    v_term := v_a * v_power;
    npv := npv + v_term;
    slope := slope + v_k * v_term;
  end loop;
end;
$$;

-- An annual rate from its growth factor, to 30 decimals; to 60 when the factor is so small (a
-- loss of nearly 100%) that 30 decimals would round it to -1 and lose the period return with it.
create or replace function public.portfolio_rate_from_factor(p_factor numeric)
returns numeric
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select round(p_factor - 1, case when p_factor < 1e-20 then 60 else 30 end)
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
        return query select public.portfolio_rate_from_factor(power(v_v, -365::numeric)), null::text;
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
      return query select public.portfolio_rate_from_factor(power(v_v, -365::numeric)), null::text;
      return;
    end if;
    v_v := v_next;
  end loop;
  if v_g = 0 then
    return query select public.portfolio_rate_from_factor(power(v_v, -365::numeric)), null::text;
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
set jit = off
as $$
#variable_conflict use_column
declare
  v_net boolean := portfolio_timeseries_engine.basis_is_net(p_basis);
  v_from date;
  v_to date;
  v_days integer;
  v_count integer;
  v_ends integer;
  v_missing date[];
  v_amounts numeric[];
  v_offsets integer[];
  v_rate numeric;
  v_reason text;
begin
  select r.range_from, r.range_to, r.days into v_from, v_to, v_days from public.portfolio_range(p_portfolio, p_from, p_to) r;
  with s as (
    select x.dates, x.missing, x.dates[1] as first_day, x.dates[cardinality(x.dates)] as last_day
    from portfolio_timeseries_engine.day_series(array[p_portfolio], v_from, v_to, v_net) x
  ), candidates as materialized (
    -- The rows the amounts come from: the first and the last usable day's, and those with an
    -- external flow (most days have none), read as one index range; then only the usable ones.
    select r.date, r.bod_market_value, r.bod_cashflow, r.eod_market_value,
           r.eod_cashflow + case when v_net then r.fees else 0 end as eod_flow,
           r.date = s.first_day as is_first, r.date = s.last_day as is_last
    from s cross join public.portfolio_timeseries r
    where r.portfolio_id = p_portfolio and r.date between v_from and v_to
      and (r.bod_cashflow <> 0 or r.eod_cashflow + case when v_net then r.fees else 0 end <> 0
           or r.date = s.first_day or r.date = s.last_day)
  ), t as (
    select c.* from candidates c
    where c.date in (select u.date from s cross join unnest(s.dates) u(date))
  ), amounts as (
    select 0 as k, -t.bod_market_value as a from t where t.is_first
    union all
    select t.date - v_from, -t.bod_cashflow from t where t.bod_cashflow <> 0
    union all
    select t.date - v_from + 1, -t.eod_flow from t where t.eod_flow <> 0
    union all
    select v_days, t.eod_market_value from t where t.is_last
  )
  select cardinality(s.dates), s.missing,
         (select count(*) filter (where t.is_first) + count(*) filter (where t.is_last) from t),
         (select array_agg(a.a order by a.k) from amounts a),
         (select array_agg(a.k order by a.k) from amounts a)
    from s
    into v_count, v_missing, v_ends, v_amounts, v_offsets;
  if v_count > 0 and v_ends <> 2 then
    -- A current day always has its row (the job writes both in one transaction).
    raise exception 'internal: portfolio %: a current day of % .. % has no portfolio_timeseries row', p_portfolio, v_from, v_to
      using errcode = 'XX000';
  end if;
  if v_count = 0 then
    v_reason := 'no usable day in the range';
  else
    select x.rate, x.reason into v_rate, v_reason
    from public.portfolio_xirr(coalesce(v_amounts, '{}'), coalesce(v_offsets, '{}')) x;
  end if;
  return query select p_portfolio, v_from, v_to, p_basis, v_days, v_count, v_rate,
    case when v_days >= 365 then v_rate end,
    case when v_days < 365 and v_rate is not null
         then round(power(1 + v_rate, round(v_days::numeric, 60) / 365) - 1, 30) end,
    v_reason, v_missing;
end;
$$;

-- The maximum drawdown of a wealth path (the wealth after each day, in date order, starting from
-- 1 before the first day): the lowest wealth / running peak - 1 (30 places), the trough (the
-- earliest day at that lowest ratio) and its peak (the latest day at the running peak before it;
-- NULL while the peak is the starting wealth). No drawdown: 0 and NULL dates. One pass that
-- divides only on days below the peak; as two window functions over the days it cost a third of
-- portfolio_risk (docs/performance.md).
create or replace function public.portfolio_drawdown(p_dates date[], p_wealth numeric[],
                                                     out max_drawdown numeric, out peak_date date, out trough_date date)
language plpgsql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
declare
  v_wealth numeric;
  v_peak numeric := 1;
  v_peak_date date;
  v_ratio numeric;
  v_i integer := 0;
begin
  if cardinality(p_dates) is distinct from cardinality(p_wealth) then
    raise exception 'portfolio_drawdown: % dates but % wealth values', cardinality(p_dates), cardinality(p_wealth);
  end if;
  max_drawdown := 0;
  foreach v_wealth in array coalesce(p_wealth, '{}') loop
    v_i := v_i + 1;
    if v_wealth >= v_peak then
      v_peak := v_wealth;
      v_peak_date := p_dates[v_i];
    else
      v_ratio := round(round(v_wealth, 40) / v_peak, 30) - 1;
      if v_ratio < max_drawdown then
        max_drawdown := v_ratio;
        trough_date := p_dates[v_i];
        peak_date := v_peak_date;
      end if;
    end if;
  end loop;
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
set jit = off
as $$
#variable_conflict use_column
declare
  v_net boolean := portfolio_timeseries_engine.basis_is_net(p_basis);
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
  with s as (
    select x.dates, x.returns, x.missing, public.portfolio_wealth_path(x.returns) as wealth
    from portfolio_timeseries_engine.day_series(array[p_portfolio], v_from, v_to, v_net) x
  ), agg as (
    -- The sample deviation of r - rf is that of r (numeric sums are exact, so the two are the
    -- same number, not just close): it is computed once, for volatility and Sharpe.
    select count(*)::integer as n, stddev_samp(u.r) as sd, avg(u.r - v_rf) as mean_x,
           coalesce(sum((u.r - v_rf) * (u.r - v_rf)) filter (where u.r - v_rf < 0), 0) as downside
    from s cross join lateral unnest(s.returns) u(r)
  )
  select p_portfolio, v_from, v_to, p_basis, v_days, a.n, v_rf,
         case when a.n >= 2 then round(a.sd * v_sqrt252, 30) end,
         case when a.n >= 1 then d.max_drawdown end,
         case when d.trough_date is not null then coalesce(d.peak_date, s.dates[1] - 1) end,
         d.trough_date,
         case when a.n >= 2 and a.sd > 0 then round(a.mean_x / a.sd * v_sqrt252, 30) end,
         case when a.n >= 1 and a.downside > 0 then round(a.mean_x / sqrt(a.downside / a.n) * v_sqrt252, 30) end,
         s.missing
  from s cross join agg a
  cross join lateral public.portfolio_drawdown(s.dates, s.wealth) d;
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
set jit = off
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

-- >>> sql/14_roles.sql
-- Least privilege (docs/operations.md, "Roles"). Three roles keep each service in its lane:
--   producer  writes the input tables and the manifest, calls seal_portfolio_day(); cannot write
--             an output, run the engine or touch its tables: the input triggers and
--             seal_portfolio_day run as the engine's owner (SECURITY DEFINER, pinned search_path);
--   worker    runs the jobs (graphile-worker's schema, the engine's tables and functions, the
--             outputs; reads the inputs);
--   reader    reads the outputs, status() and the read-side functions (returns and risk).
-- Roles are cluster-wide, so the migration never creates them: the DBA does, and
-- `portfolio-timeseries migrate --roles` (or `select portfolio_timeseries_engine.grant_roles(...)`)
-- grants to the roles it names. Everything here can be applied again.

-- PostgreSQL lets PUBLIC execute every new function. In the engine's schema only refuse() stays
-- so: the CHECK constraints of the input tables call it as the writing role. The schema's USAGE
-- stays with PUBLIC for the same reason; it reveals names, not rows (no table of the schema is
-- granted to PUBLIC). Functions created by later migrations start revoked too.
revoke all on schema portfolio_timeseries_engine from public;
grant usage on schema portfolio_timeseries_engine to public;
revoke execute on all functions in schema portfolio_timeseries_engine from public;
grant execute on function portfolio_timeseries_engine.refuse(text, text) to public;
alter default privileges in schema portfolio_timeseries_engine revoke execute on functions from public;
-- seal_portfolio_day writes the manifest as the engine's owner: only producers may call it.
revoke execute on function public.seal_portfolio_day(text, date) from public;

-- Grants for the three roles; each must exist (`create role ... login`), and a role may be named
-- for more than one part. Run by the engine's owner (or a superuser).
create or replace function portfolio_timeseries_engine.grant_roles(
  p_producer text default 'portfolio_timeseries_producer',
  p_worker text default 'portfolio_timeseries_worker',
  p_reader text default 'portfolio_timeseries_reader')
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_role text;
  v_table regclass;
  v_inputs constant text := 'public.portfolios, public.instruments, public.fx_rates, public.cashflows, '
    'public.position_state, public.daily_position_snapshots, public.daily_aggregation_manifest';
  v_outputs constant text := 'public.portfolio_timeseries, public.position_timeseries';
begin
  foreach v_role in array array[p_producer, p_worker, p_reader] loop
    if not exists (select 1 from pg_roles where rolname = v_role) then
      raise exception 'role % does not exist: create it first (create role % login password ...), or name another role', v_role, v_role
        using errcode = 'undefined_object';
    end if;
  end loop;

  -- producer: the inputs and the manifest (TRUNCATE included: the engine handles it), sealing.
  execute format('grant usage on schema public to %I', p_producer);
  execute format('grant select, insert, update, delete, truncate on %s to %I', v_inputs, p_producer);
  execute format('grant execute on function public.seal_portfolio_day(text, date) to %I', p_producer);

  -- reader: the outputs, status() (SECURITY DEFINER), and what the read-side functions of
  -- sql/13_returns.sql read to tell current days (they run as the caller).
  execute format('grant usage on schema public, portfolio_timeseries_engine to %I', p_reader);
  execute format('grant select on %s to %I', v_outputs, p_reader);
  execute format('grant select on public.portfolios, public.portfolio_day_status to %I', p_reader);
  execute format('grant execute on function portfolio_timeseries_engine.status(text, text[], date, date) to %I', p_reader);
  execute format('grant execute on function portfolio_timeseries_engine.current_days(text[], date, date), '
    'portfolio_timeseries_engine.day_series(text[], date, date, boolean), '
    'portfolio_timeseries_engine.current_limit(text[]), portfolio_timeseries_engine.basis_is_net(text), '
    'portfolio_timeseries_engine.check_range(date, date), '
    'portfolio_timeseries_engine.pending_from(text) to %I', p_reader);
  execute format('grant select on portfolio_timeseries_engine.portfolio_day, portfolio_timeseries_engine.change, '
    'portfolio_timeseries_engine.reference_change, portfolio_timeseries_engine.portfolio_security to %I', p_reader);

  -- worker: graphile-worker's schema, the engine, the outputs; the inputs read-only.
  execute format('grant usage on schema public, portfolio_timeseries_engine, graphile_worker to %I', p_worker);
  execute format('grant select on %s to %I', v_inputs, p_worker);
  execute format('grant select, insert, update, delete on %s to %I', v_outputs, p_worker);
  execute format('grant select, insert, update, delete on all tables in schema portfolio_timeseries_engine to %I', p_worker);
  execute format('grant usage, select, update on all sequences in schema portfolio_timeseries_engine to %I', p_worker);
  execute format('grant execute on all functions in schema portfolio_timeseries_engine to %I', p_worker);
  execute format('revoke execute on function portfolio_timeseries_engine.grant_roles(text, text, text) from %I', p_worker);
  execute format('grant select, insert, update, delete on all tables in schema graphile_worker to %I', p_worker);
  execute format('grant usage, select, update on all sequences in schema graphile_worker to %I', p_worker);
  execute format('grant execute on all functions in schema graphile_worker to %I', p_worker);
  -- graphile-worker turns row-level security on for its private tables, with no policy: only
  -- their owner (or a BYPASSRLS role) sees a row. The worker role gets a policy of its own on
  -- each, rather than BYPASSRLS (which would reach every table of the cluster).
  for v_table in
    select c.oid::regclass from pg_class c
    where c.relnamespace = 'graphile_worker'::regnamespace and c.relkind = 'r' and c.relrowsecurity
  loop
    execute format('drop policy if exists %I on %s', 'portfolio_timeseries worker ' || p_worker, v_table);
    execute format('create policy %I on %s for all to %I using (true) with check (true)',
      'portfolio_timeseries worker ' || p_worker, v_table, p_worker);
  end loop;
end;
$$;
revoke execute on function portfolio_timeseries_engine.grant_roles(text, text, text) from public;
comment on function portfolio_timeseries_engine.grant_roles(text, text, text) is
  'Grant the producer, worker and reader roles (which must exist) what each needs and nothing more (docs/operations.md, Roles).';
