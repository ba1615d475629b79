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
