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
