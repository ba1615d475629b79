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
