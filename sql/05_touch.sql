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
