-- The job: compute every ready dirty day of one portfolio, in date order, set-based.
--
-- "Ready" means declared, complete (position_count = expected_count), not blocked, and its
-- previous declared day current (or computed earlier in the same run). The run takes the dirty
-- declared days from the first one up to (not including) the first that is not ready, builds
-- their position rows and portfolio rows in a handful of statements, and records why it stopped. Stage 2 BOD is the previous declared
-- day's EOD, which for a day in the same run is that day's new EOD (EOD never depends on BOD, so
-- the whole run is one pass). A changed EOD updates the next declared day's BOD and stops there:
-- that day's own EOD cannot change because of it (the cascade's early cutoff).
create function portfolio_timeseries_engine.compute_portfolio(p_portfolio text)
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
-- Every statement here reads one portfolio through an index on (portfolio_id, ...). The planner
-- cannot estimate the effective-epoch filter (a correlated max()) and picks bitmap scans that
-- read a key's whole history and sort it for each "previous effective snapshot" lookup instead of
-- walking the index backwards (a 50-position, 250-day backfill: 16.8 s without these settings,
-- 10.3 s with them, before the other fixes in docs/performance.md).
set enable_bitmapscan = off
set enable_seqscan = off
as $$
declare
  v_first date;
  v_incomplete record;
  v_stop date;
  v_stop_reason text;
  v_days date[];
  v_base text;
  v_claimed portfolio_timeseries_engine.touch[];
  v_changed date[];
  v_positions integer := 0;
  v_bod_updates integer := 0;
  v_fix date[];
  v_locked date[];
  v_candidates date[];
begin
  -- Two keyed jobs of one portfolio can run at once (a running job is de-keyed, not replaced):
  -- they take turns here.
  perform pg_advisory_xact_lock(hashtextextended('portfolio_timeseries:' || p_portfolio, 0));

  -- Lock the rows of the days this run may compute (every dirty declared day from the first one)
  -- and of each one's previous declared day, FOR UPDATE in date order. Writers update these rows
  -- for every change, so from here until commit nothing can change a day of the run or the day its
  -- BOD comes from; a writer that waits here commits afterwards and re-enqueues. Other days (the
  -- next day a producer is loading, current days further back) are not locked, so their writers
  -- do not wait for the run. A day declared meanwhile between two locked days touches the later
  -- one, so its transaction waits too.
  loop
    select min(pd.date) into v_first
    from portfolio_timeseries_engine.portfolio_day pd
    where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null;
    if v_first is null then
      return jsonb_build_object('portfolio_id', p_portfolio, 'portfolio_days', 0, 'position_days', 0, 'bod_updates', 0);
    end if;
    select coalesce(array_agg(l.date order by l.date), '{}') into v_locked
    from (
      with run as (
        select d.date from portfolio_timeseries_engine.portfolio_day d
        where d.portfolio_id = p_portfolio and d.dirty and d.expected_count is not null and d.date >= v_first
      )
      select pd.date
      from portfolio_timeseries_engine.portfolio_day pd
      where pd.portfolio_id = p_portfolio
        and pd.date in (
          select r.date from run r
          union
          select (select max(m.date) from portfolio_timeseries_engine.portfolio_day m
                  where m.portfolio_id = p_portfolio and m.expected_count is not null and m.date < r.date)
          from run r)
      order by pd.date
      for update of pd
    ) l;
    exit when not exists (
      select 1 from portfolio_timeseries_engine.portfolio_day pd
      where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null and pd.date < v_first);
  end loop;

  select p.base_currency into v_base from public.portfolios p where p.portfolio_id = p_portfolio;

  -- The run's candidates: the locked days that are dirty and declared (read after the locks).
  v_candidates := array(
    select pd.date from portfolio_timeseries_engine.portfolio_day pd
    where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null
      and pd.date = any(v_locked)
    order by pd.date);

  -- Where the run stops: the first candidate that is incomplete or blocked.
  select pd.date, pd.position_count, pd.expected_count into v_incomplete
  from portfolio_timeseries_engine.portfolio_day pd
  where pd.portfolio_id = p_portfolio and pd.date = any(v_candidates)
    and pd.position_count <> pd.expected_count
  order by pd.date limit 1;

  select b.date, b.reason into v_stop, v_stop_reason
  from portfolio_timeseries_engine.block_reasons(p_portfolio, array(
    select c from unnest(v_candidates) c where c < coalesce(v_incomplete.date, 'infinity'))) b
  order by b.date limit 1;

  if v_stop is null and v_incomplete.date is not null then
    v_stop := v_incomplete.date;
    if v_incomplete.position_count > v_incomplete.expected_count then
      v_stop_reason := format('%s positions exist but %s declared', v_incomplete.position_count, v_incomplete.expected_count);
    end if;
  end if;

  v_days := array(select c from unnest(v_candidates) c where c < coalesce(v_stop, 'infinity') order by c);

  if cardinality(v_days) > 0 then
    -- Stage 1 for the claimed dirty position days of the run.
    with claimed as (
      delete from portfolio_timeseries_engine.dirty_position dp
      where dp.portfolio_id = p_portfolio and dp.date = any(v_days)
      returning dp.security_id, dp.date
    )
    select coalesce(array_agg(row(p_portfolio, c.security_id, c.date, 0)::portfolio_timeseries_engine.touch), '{}')
      into v_claimed
    from claimed c;

    insert into public.position_timeseries as pt (
      portfolio_id, security_id, date, epoch, bod_market_value,
      bod_cashflow_position, eod_cashflow_position, bod_cashflow_portfolio, eod_cashflow_portfolio,
      eod_market_value, fees, quantity, cost)
    select p_portfolio, c.security_id, c.date, s.epoch, coalesce(b.market_value_local, 0),
      coalesce(f.bod_position, 0), coalesce(f.eod_position, 0),
      coalesce(f.bod_portfolio, 0), coalesce(f.eod_portfolio, 0),
      s.market_value_local, coalesce(f.fees, 0), s.quantity,
      case when s.quantity = 0 or s.cost_basis_local is null then 0
           else round(s.cost_basis_local::numeric(60, 30) / s.quantity, 10) end
    from unnest(v_claimed) c
    join portfolio_timeseries_engine.effective_snapshots s
      on s.portfolio_id = p_portfolio and s.security_id = c.security_id and s.date = c.date
    left join lateral (
      select e.market_value_local
      from portfolio_timeseries_engine.effective_snapshots e
      where e.portfolio_id = p_portfolio and e.security_id = c.security_id and e.date < c.date
      order by e.date desc limit 1) b on true
    left join lateral (
      select
        sum(cf.amount) filter (where cf.is_position_flow and cf.timing = 'BOD') as bod_position,
        sum(cf.amount) filter (where cf.is_position_flow and cf.timing = 'EOD') as eod_position,
        sum(cf.amount) filter (where cf.is_portfolio_flow and cf.timing = 'BOD') as bod_portfolio,
        sum(cf.amount) filter (where cf.is_portfolio_flow and cf.timing = 'EOD') as eod_portfolio,
        sum(abs(cf.amount)) filter (where cf.is_portfolio_flow and cf.classification = 'EXPENSE') as fees
      from public.cashflows cf
      where cf.portfolio_id = p_portfolio and cf.security_id = c.security_id and cf.cashflow_date = c.date) f on true
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
      updated_at = now();
    get diagnostics v_positions = row_count;

    delete from public.position_timeseries pt
    using unnest(v_claimed) c
    where pt.portfolio_id = p_portfolio and pt.security_id = c.security_id and pt.date = c.date
      and not exists (select 1 from portfolio_timeseries_engine.effective_snapshots s
                      where s.portfolio_id = p_portfolio and s.security_id = c.security_id and s.date = c.date);

    -- Stage 2 for every day of the run.
    with days as (
      select unnest(v_days) as date
    ), positions as (
      select s.date, count(*)::integer as n, count(pt.security_id)::integer as n_rows,
        sum(s.market_value) as eod, max(s.epoch) as epoch,
        sum(pt.bod_cashflow_portfolio * r.rate) as bod_cashflow,
        sum(pt.eod_cashflow_portfolio * r.rate) as eod_cashflow,
        sum(pt.fees * r.rate) as fees
      from days d
      join portfolio_timeseries_engine.effective_snapshots s on s.portfolio_id = p_portfolio and s.date = d.date
      join public.instruments i on i.security_id = s.security_id
      -- A primary-key probe per position, whatever the statistics say (OFFSET 0 keeps the planner
      -- from flattening it into a join): with statistics taken while position_timeseries was
      -- nearly empty it chose a nested loop over the portfolio's whole range, 11.5 s for 250 days.
      left join lateral (
        select x.security_id, x.bod_cashflow_portfolio, x.eod_cashflow_portfolio, x.fees
        from public.position_timeseries x
        where x.portfolio_id = p_portfolio and x.security_id = s.security_id and x.date = s.date
        offset 0) pt on true
      cross join lateral (
        select case when i.currency = v_base then 1::numeric else (
          select x.rate from public.fx_rates x
          where x.from_currency = i.currency and x.to_currency = v_base and x.rate_date <= s.date
          order by x.rate_date desc limit 1) end as rate) r
      group by s.date
    ), portfolio_flows as (
      select c.cashflow_date as date,
        sum(c.amount * r.rate) filter (where c.timing = 'BOD') as bod_cashflow,
        sum(c.amount * r.rate) filter (where c.timing = 'EOD') as eod_cashflow,
        sum(abs(c.amount) * r.rate) filter (where c.classification = 'EXPENSE') as fees
      from days d
      join public.cashflows c
        on c.portfolio_id = p_portfolio and c.cashflow_date = d.date and c.security_id is null and c.is_portfolio_flow
      cross join lateral (
        select case when c.currency = v_base then 1::numeric else (
          select x.rate from public.fx_rates x
          where x.from_currency = c.currency and x.to_currency = v_base and x.rate_date <= c.cashflow_date
          order by x.rate_date desc limit 1) end as rate) r
      group by c.cashflow_date
    ), vals as (
      select d.date,
        coalesce(p.n, 0) as n,
        coalesce(p.n_rows, 0) as n_rows,
        coalesce(p.epoch, 0) as epoch,
        coalesce(p.eod, 0) as eod,
        coalesce(p.bod_cashflow, 0) + coalesce(f.bod_cashflow, 0) as bod_cashflow,
        coalesce(p.eod_cashflow, 0) + coalesce(f.eod_cashflow, 0) as eod_cashflow,
        coalesce(p.fees, 0) + coalesce(f.fees, 0) as fees,
        (select max(m.date) from portfolio_timeseries_engine.portfolio_day m
         where m.portfolio_id = p_portfolio and m.expected_count is not null and m.date < d.date) as prev_date
      from days d
      left join positions p on p.date = d.date
      left join portfolio_flows f on f.date = d.date
    ), old as (
      select pt.date, pt.eod_market_value
      from public.portfolio_timeseries pt
      where pt.portfolio_id = p_portfolio and pt.date = any(v_days)
    ), upserted as (
      insert into public.portfolio_timeseries as pt (
        portfolio_id, date, epoch, bod_market_value, bod_cashflow, eod_cashflow, eod_market_value, fees, position_count)
      select p_portfolio, v.date, v.epoch,
        round(case
          when v.prev_date is null then 0
          when v.prev_date = any(v_days) then (select v2.eod from vals v2 where v2.date = v.prev_date)
          else (select pp.eod_market_value from public.portfolio_timeseries pp
                where pp.portfolio_id = p_portfolio and pp.date = v.prev_date)
        end, 10),
        round(v.bod_cashflow, 10), round(v.eod_cashflow, 10), round(v.eod, 10), round(v.fees, 10),
        -- Every position of the day has a current row by now; a missing one is an engine bug and
        -- must abort the run rather than become a portfolio row built from part of its day.
        case when v.n_rows = v.n then v.n else portfolio_timeseries_engine.internal_error(format(
          'portfolio %s, %s: %s positions but %s position rows while computing the day',
          p_portfolio, v.date, v.n, v.n_rows)) end
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
    select coalesce(array_agg(u.date order by u.date), '{}') into v_changed
    from upserted u left join old o on o.date = u.date
    where o.eod_market_value is distinct from u.eod_market_value;

    -- Cascade with early cutoff: the next declared day of a changed day, when it is current and
    -- outside the run, takes the new EOD as its BOD; nothing beyond it changes. In a backfill the
    -- next day is almost always inside the run, so the list is usually empty.
    select coalesce(array_agg(x.next_date), '{}') into v_fix
    from (
      select (select min(m.date) from portfolio_timeseries_engine.portfolio_day m
              where m.portfolio_id = p_portfolio and m.expected_count is not null and m.date > c.date) as next_date
      from unnest(v_changed) c(date)
    ) x
    where x.next_date is not null and not (x.next_date = any(v_days))
      and x.next_date < coalesce(v_stop, 'infinity');

    if cardinality(v_fix) > 0 then
      update public.portfolio_timeseries pt
      set bod_market_value = prev.eod_market_value, updated_at = now()
      from unnest(v_fix) f(date)
      cross join lateral (
        select pp.eod_market_value from public.portfolio_timeseries pp
        where pp.portfolio_id = p_portfolio and pp.date < f.date
        order by pp.date desc limit 1) prev
      where pt.portfolio_id = p_portfolio and pt.date = f.date
        and pt.bod_market_value is distinct from prev.eod_market_value;
      get diagnostics v_bod_updates = row_count;
    end if;

    update portfolio_timeseries_engine.portfolio_day pd
    set dirty = false, blocked_reason = null, computed_count = pd.computed_count + 1, computed_at = now()
    where pd.portfolio_id = p_portfolio and pd.date = any(v_days);
  end if;

  if v_stop is not null then
    update portfolio_timeseries_engine.portfolio_day pd
    set blocked_reason = v_stop_reason
    where pd.portfolio_id = p_portfolio and pd.date = v_stop
      and pd.blocked_reason is distinct from v_stop_reason;
  end if;

  insert into portfolio_timeseries_engine.work_counter as w (portfolio_id, jobs, portfolio_days, position_days, bod_updates)
  values (p_portfolio, 1, cardinality(v_days), v_positions, v_bod_updates)
  on conflict (portfolio_id) do update set
    jobs = w.jobs + 1,
    portfolio_days = w.portfolio_days + excluded.portfolio_days,
    position_days = w.position_days + excluded.position_days,
    bod_updates = w.bod_updates + excluded.bod_updates;

  return jsonb_build_object(
    'portfolio_id', p_portfolio,
    'portfolio_days', cardinality(v_days),
    'position_days', v_positions,
    'bod_updates', v_bod_updates,
    'stopped_at', v_stop,
    'stop_reason', v_stop_reason);
end;
$$;
