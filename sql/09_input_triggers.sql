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
