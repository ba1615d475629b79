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
