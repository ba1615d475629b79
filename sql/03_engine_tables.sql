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
