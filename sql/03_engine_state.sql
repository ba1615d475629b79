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
