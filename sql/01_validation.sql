-- Row checks that refuse bad input at write time. They are CHECK constraints (so COPY, INSERT and
-- UPDATE all pass through them and no trigger can be skipped) calling functions that raise an
-- error whose message names the row's key: a constraint violation alone would only name the
-- constraint, and a producer loading a million rows needs to know which one is wrong.

create function portfolio_timeseries_engine.check_currency(p_code text, p_column text, p_row text)
returns boolean
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_code is null or p_code !~ '^[A-Z]{3}$' then
    raise exception '%: % must be 3 upper-case letters, got %', p_row, p_column, coalesce(quote_literal(p_code), 'NULL')
      using errcode = 'check_violation';
  end if;
  return true;
end;
$$;

create function portfolio_timeseries_engine.check_true(p_ok boolean, p_row text, p_message text)
returns boolean
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_ok is not true then
    raise exception '%: %', p_row, p_message using errcode = 'check_violation';
  end if;
  return true;
end;
$$;
