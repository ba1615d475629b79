-- The job: apply a portfolio's pending changes, then compute every ready dirty day in date order,
-- set-based. One call is one REPEATABLE READ transaction, so every read sees the same committed
-- inputs and the rows it writes are exactly what the methodology gives for them; a change that
-- commits meanwhile leaves a change row this call did not read, and the next call applies it.
--
-- "Ready" means declared, complete (position_count = expected_count), not blocked, and its
-- previous declared day current (or computed earlier in the same call). The call takes the dirty
-- declared days from the first one up to (not including) the first that is not ready. A day's
-- EOD never depends on its BOD, so a run of days is one pass; a changed EOD updates the next
-- declared day's BOD and stops there (the cascade's early cutoff).
--
-- The job never waits for a lock: the per-portfolio lock is tried, not awaited (a busy portfolio
-- is left to the job that holds it), producers only append change rows, and outputs are written
-- by jobs only. So a job can neither be the reason a producer waits nor part of a deadlock.

-- Raised inside the set-based statements for a day that turns out not to be computable while it
-- is being built (a BOD source that is unvalued, a total that does not fit the output columns):
-- the statement stops, the call computes the days before it and records the reason.
create or replace function portfolio_timeseries_engine.stop_day(p_date date, p_reason text)
returns numeric
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception '%', p_reason using errcode = 'PTB01', detail = p_date::text;
end;
$$;

-- The physical rows of a portfolio's days, one index probe per date. The job updates and deletes
-- days by these row ids (a TID scan) instead of "date = any(dates)": without statistics the
-- planner takes a portfolio for a dozen days and reads all of them through the index on
-- portfolio_id, filtering by date, which on ten years of history cost more than the day computed.
create or replace function portfolio_timeseries_engine.day_rows(p_portfolio text, p_dates date[])
returns tid[]
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  -- PL/pgSQL keeps the plan for the session (an SQL function would be planned at every call).
  return array(
    select x.ctid from unnest(p_dates) d(date)
    cross join lateral (
      select pd.ctid from portfolio_timeseries_engine.portfolio_day pd
      where pd.portfolio_id = p_portfolio and pd.date = d.date offset 0) x);
end;
$$;

create or replace function portfolio_timeseries_engine.compute_portfolio(p_portfolio text)
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
-- Every statement here is written to be planned right without statistics (index probes keyed by
-- portfolio, security and date; no join of two derived sets), so one generic plan per statement
-- and session serves every call: planning them again at every call cost as much as running them
-- for a day of 50 positions (docs/performance.md).
set plan_cache_mode = force_generic_plan
-- ... and none of them should ever read a table sequentially: each reads one portfolio through an
-- index on (portfolio_id, ...). Statistics taken while the outputs and the engine's tables were
-- empty (a fresh install analysed before its backfill) make a sequential scan look free, and it
-- then grows with every portfolio computed: 135 ms per portfolio without statistics, 300 to
-- 600 ms and rising with them, before this setting.
set enable_seqscan = off
-- ... nor through a bitmap: the rows a statement reads are one day's or one run's of one
-- portfolio, which a plain index scan reads in index order (and marks dead index entries as it
-- goes). Without statistics the planner took a portfolio's day for hundreds of rows and chose
-- bitmaps, which made a one-day job 1.35x dearer than with statistics (docs/performance.md).
set enable_bitmapscan = off
as $$
declare
  v_changes portfolio_timeseries_engine.change[];
  v_hist text[];
  v_all boolean;
  v_recount date[];
  v_touch date[];
  v_positions portfolio_timeseries_engine.position_ref[];
  v_next portfolio_timeseries_engine.position_ref[];
  v_last_kept date;
  v_first date;
  v_candidates date[];
  v_incomplete record;
  v_stop date;
  v_stop_reason text;
  v_stop_waiting text;
  v_days date[];
  v_all_dirty date[];
  v_all_dirty_old date[];
  v_new_days date[];
  v_base text;
  v_changed date[];
  v_fix date[];
  v_undeclared date[];
  v_position_rows integer := 0;
  v_bod_updates integer := 0;
  v_caught_date date;
  v_caught_reason text;
  v_bad record;
  v_computed date[];
  v_partial date[];
begin
  if current_setting('transaction_isolation') <> 'repeatable read' then
    raise exception 'portfolio_timeseries_engine.compute_portfolio(%) must run in a REPEATABLE READ transaction', p_portfolio;
  end if;
  if not pg_try_advisory_xact_lock(hashtextextended('portfolio_timeseries:' || p_portfolio, 0)) then
    return jsonb_build_object('portfolio_id', p_portfolio, 'busy', true);
  end if;
  -- Guard: a job whose snapshot was taken before another job of this portfolio committed fails
  -- here with a serialization error (40001) instead of working from stale rows; it is retried.
  insert into portfolio_timeseries_engine.portfolio_job as j (portfolio_id, runs, last_run_at)
  values (p_portfolio, 1, now())
  on conflict (portfolio_id) do update set runs = j.runs + 1, last_run_at = now();

  with consumed as (
    delete from portfolio_timeseries_engine.change c where c.portfolio_id = p_portfolio returning c.*
  )
  select coalesce(array_agg(c), '{}') into v_changes from consumed c;

  v_hist := portfolio_timeseries_engine.epoch_keys(p_portfolio);
  v_all := exists (select 1 from unnest(v_changes) c where c.kind = 'A');

  ---------------------------------------------------------------------------------------------
  -- 1. What the changes affect, decided now (after their commits, in this snapshot).
  ---------------------------------------------------------------------------------------------
  -- Position days named by snapshot and cash flow changes, and every snapshot date of a key whose
  -- epochs changed (its effective snapshot may have changed on each of them).
  -- A snapshot write at an epoch that is not the key's effective one on that date changes
  -- nothing: epochs only go up and their starts never move, so a snapshot that is not effective
  -- now never was when it was written, or an epoch change made it ineffective since, and that
  -- change is applied as such.
  v_positions := array(
    select row(x.kind, x.security_id, x.date)::portfolio_timeseries_engine.position_ref
    from (select distinct x.kind, x.security_id, x.date from (
      select 'S'::"char" as kind, k.security_id, c.date_from as date
      from unnest(v_changes) c cross join lateral unnest(c.securities, c.epochs) k(security_id, epoch)
      where c.kind = 'S'
        and k.epoch = case when k.security_id = any(v_hist)
                           then portfolio_timeseries_engine.effective_epoch(p_portfolio, k.security_id, c.date_from) else 0 end
      union all
      select 'C', k.security_id, c.date_from
      from unnest(v_changes) c cross join lateral unnest(c.securities) k(security_id)
      where c.kind = 'C' and k.security_id is not null
      union all
      -- An epoch change: every date from its start where the key has a snapshot (any epoch), has
      -- a position row, or had a snapshot written in this batch (a snapshot deleted in the same
      -- transaction as the raise has left no other trace).
      select 'E', c.securities[1], x.date
      from unnest(v_changes) c
      cross join lateral (
        select s.date from public.daily_position_snapshots s
        where s.portfolio_id = p_portfolio and s.security_id = c.securities[1] and s.date >= c.date_from
        union
        select pt.date from public.position_timeseries pt
        where pt.portfolio_id = p_portfolio and pt.security_id = c.securities[1] and pt.date >= c.date_from
        union
        select w.date_from from unnest(v_changes) w
        where w.kind = 'S' and c.securities[1] = any(w.securities) and w.date_from >= c.date_from
      ) x
      where c.kind = 'E'
    ) x) x);

  -- Days whose counters are re-read: snapshot, manifest and epoch changes (everything for A).
  v_recount := array(
    select distinct x.date from (
      select c.date_from as date from unnest(v_changes) c where c.kind = 'M'
      union all
      select p.date from unnest(v_positions) p where p.kind in ('S', 'E')
      union all
      select d.date from portfolio_timeseries_engine.portfolio_day d where v_all and d.portfolio_id = p_portfolio
      union all
      select s.date from public.daily_position_snapshots s where v_all and s.portfolio_id = p_portfolio
      union all
      select m.aggregation_date from public.daily_aggregation_manifest m where v_all and m.portfolio_id = p_portfolio
    ) x);

  with counted as (
    select r.date,
      (select count(*)::integer from public.daily_position_snapshots s
       where s.portfolio_id = p_portfolio and s.date = r.date
         and case when s.security_id = any(v_hist)
                  then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                  else s.epoch = 0 end) as n,
      (select m.expected_count from public.daily_aggregation_manifest m
       where m.portfolio_id = p_portfolio and m.aggregation_date = r.date) as expected
    from unnest(v_recount) r(date)
  ), upserted as (
    insert into portfolio_timeseries_engine.portfolio_day as pd
      (portfolio_id, date, position_count, expected_count, dirty, all_positions_dirty)
    select p_portfolio, c.date, c.n, c.expected, true, true from counted c
    order by c.date
    on conflict (portfolio_id, date) do update set
      position_count = excluded.position_count,
      expected_count = excluded.expected_count,
      dirty = true,
      -- An undeclared day has no rows; when it is declared again every position is built.
      all_positions_dirty = pd.all_positions_dirty or excluded.expected_count is null or v_all,
      blocked_reason = null
    returning pd.date, pd.position_count, pd.expected_count
  )
  select coalesce(array_agg(u.date), '{}') into v_undeclared from upserted u where u.expected_count is null;

  -- Neither snapshots nor a manifest row: the day no longer exists.
  delete from portfolio_timeseries_engine.portfolio_day pd
  where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio, v_recount))
    and pd.position_count = 0 and pd.expected_count is null;

  -- An undeclared day has no rows (contract section 2: deleting a day's manifest row removes
  -- that day's portfolio row; its position rows go with it, they would go stale otherwise).
  if cardinality(v_undeclared) > 0 then
    delete from public.portfolio_timeseries pt where pt.portfolio_id = p_portfolio and pt.date = any(v_undeclared);
    delete from public.position_timeseries pt where pt.portfolio_id = p_portfolio and pt.date = any(v_undeclared);
    delete from portfolio_timeseries_engine.dirty_position dp where dp.portfolio_id = p_portfolio and dp.date = any(v_undeclared);
  end if;

  -- The portfolio's securities, for the fan-out of instrument changes.
  insert into portfolio_timeseries_engine.portfolio_security (security_id, portfolio_id)
  select x.security_id, p_portfolio
  from (select distinct p.security_id from unnest(v_positions) p where p.kind in ('S', 'E')) x
  where not exists (select 1 from portfolio_timeseries_engine.portfolio_security ps
                    where ps.security_id = x.security_id and ps.portfolio_id = p_portfolio)
  order by 1
  on conflict do nothing;

  -- Snapshot writes also change the BOD of the key's next position day: the first effective
  -- snapshot date after each written date, one forward index probe each. A written date after
  -- which every day with positions will be rebuilt whole anyway needs none (a backfill, a new
  -- latest day): its key's next position day, if any, is rebuilt with its day.
  v_last_kept := (
    select max(pd.date) from portfolio_timeseries_engine.portfolio_day pd
    where pd.portfolio_id = p_portfolio and pd.position_count > 0 and not pd.all_positions_dirty);
  v_next := case when v_last_kept is null then '{}' else array(
    select distinct row('N', p.security_id, n.date)::portfolio_timeseries_engine.position_ref
    from unnest(v_positions) p
    cross join lateral (
      select s.date from public.daily_position_snapshots s
      where s.portfolio_id = p_portfolio and s.security_id = p.security_id and s.date > p.date
        and case when s.security_id = any(v_hist)
                 then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                 else s.epoch = 0 end
      order by s.date limit 1) n
    where p.kind = 'S' and p.date < v_last_kept) end;

  -- A deleted (or moved, or re-epoched away) effective snapshot removes its position row at once
  -- (contract section 2), whether or not its day can be recomputed yet. Only days computed before
  -- can hold position rows (none in a backfill); their written positions are probed one by one by
  -- key and the rows found deleted by row id (a join of the written set with the table could be
  -- planned as a scan of the portfolio's history).
  v_computed := array(
    select pd.date from portfolio_timeseries_engine.portfolio_day pd
    where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio,
            array(select distinct p.date from unnest(v_positions) p where p.kind = 'S')))
      and pd.computed_count > 0);
  if cardinality(v_computed) > 0 then
    delete from public.position_timeseries pt
    where pt.ctid = any(array(
      select r.ctid
      from unnest(v_positions) p
      cross join lateral (
        select x.ctid from public.position_timeseries x
        where x.portfolio_id = p_portfolio and x.security_id = p.security_id and x.date = p.date offset 0) r
      where p.kind = 'S' and p.date = any(v_computed)
        and not exists (
          select 1 from public.daily_position_snapshots s
          where s.portfolio_id = p_portfolio and s.security_id = p.security_id and s.date = p.date
            and case when s.security_id = any(v_hist)
                     then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                     else s.epoch = 0 end
          offset 0)));
  end if;
  if v_all then
    delete from public.position_timeseries pt
    where pt.portfolio_id = p_portfolio
      and not exists (
        select 1 from public.daily_position_snapshots s
        where s.portfolio_id = p_portfolio and s.security_id = pt.security_id and s.date = pt.date
          and case when s.security_id = any(v_hist)
                   then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                   else s.epoch = 0 end);
  end if;

  -- Position days to rebuild, on days that are not rebuilt whole anyway (none in a backfill): one
  -- probe per date, then the positions of the dates found.
  v_partial := array(
    select pd.date from portfolio_timeseries_engine.portfolio_day pd
    where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio,
            array(select p.date from unnest(v_positions) p union select p.date from unnest(v_next) p)))
      and not pd.all_positions_dirty);
  if cardinality(v_partial) > 0 then
    insert into portfolio_timeseries_engine.dirty_position (portfolio_id, date, security_id)
    select distinct p_portfolio, p.date, p.security_id
    from (select * from unnest(v_positions) union all select * from unnest(v_next)) p
    where p.date = any(v_partial)
    order by 2, 3
    on conflict do nothing;
  end if;

  -- Days whose portfolio row is affected without a change of their counters.
  v_touch := array(
    select distinct x.date from (
      select c.date_from as date from unnest(v_changes) c where c.kind = 'C'
      union all
      select p.date from unnest(v_positions) p where p.kind = 'S'
      union all
      select p.date from unnest(v_next) p
      union all
      -- A manifest change moves "the previous declared day" of the next declared day.
      select (select min(d.date) from portfolio_timeseries_engine.portfolio_day d
              where d.portfolio_id = p_portfolio and d.expected_count is not null and d.date > c.date_from)
      from unnest(v_changes) c where c.kind = 'M'
      union all
      select d.date from portfolio_timeseries_engine.portfolio_day d
      where d.portfolio_id = p_portfolio and d.expected_count is not null and not d.dirty
        and exists (select 1 from unnest(v_changes) c where c.kind = 'P')
      union all
      -- An instrument change: the days in its range where the key has a position or a flow (days
      -- already dirty are recomputed anyway).
      select d.date
      from unnest(v_changes) c
      join portfolio_timeseries_engine.portfolio_day d
        on d.portfolio_id = p_portfolio and d.date between c.date_from and c.date_to and not d.dirty
      where c.kind = 'I'
        and (exists (select 1 from public.daily_position_snapshots s
                     where s.portfolio_id = p_portfolio and s.security_id = c.securities[1] and s.date = d.date)
             or exists (select 1 from public.cashflows f
                        where f.portfolio_id = p_portfolio and f.security_id = c.securities[1] and f.cashflow_date = d.date))
      union all
      -- An FX change: the declared days in its range that need the currency.
      select d.date
      from unnest(v_changes) c
      join portfolio_timeseries_engine.portfolio_day d
        on d.portfolio_id = p_portfolio and d.expected_count is not null and d.date between c.date_from and c.date_to
          and not d.dirty
      where c.kind = 'F'
        and (exists (select 1 from public.daily_position_snapshots s
                     join public.instruments i on i.security_id = s.security_id
                     where s.portfolio_id = p_portfolio and s.date = d.date and i.currency = c.currency
                       and case when s.security_id = any(v_hist)
                                then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                                else s.epoch = 0 end)
             or exists (select 1 from public.cashflows f
                        where f.portfolio_id = p_portfolio and f.cashflow_date = d.date and f.security_id is null
                          and f.is_portfolio_flow and f.currency = c.currency))
    ) x
    where x.date is not null);

  update portfolio_timeseries_engine.portfolio_day pd
  set dirty = true, blocked_reason = null
  where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio, v_touch))
    and (not pd.dirty or pd.blocked_reason is not null);

  ---------------------------------------------------------------------------------------------
  -- 2. Which days can be computed now.
  ---------------------------------------------------------------------------------------------
  select min(pd.date) into v_first
  from portfolio_timeseries_engine.portfolio_day pd
  where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null;

  if v_first is not null then
    v_candidates := array(
      select pd.date from portfolio_timeseries_engine.portfolio_day pd
      where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null and pd.date >= v_first
      order by pd.date);

    -- The same set as v_candidates, read again through the index of dirty days: a probe of each
    -- candidate date (date = any(...)) was planned generically as a scan of every declared day.
    select pd.date, pd.position_count, pd.expected_count into v_incomplete
    from portfolio_timeseries_engine.portfolio_day pd
    where pd.portfolio_id = p_portfolio and pd.dirty and pd.expected_count is not null and pd.date >= v_first
      and pd.position_count <> pd.expected_count
    order by pd.date limit 1;

    select b.date, b.reason into v_stop, v_stop_reason
    from portfolio_timeseries_engine.day_reasons(p_portfolio, array(
      select c from unnest(v_candidates) c where c < coalesce(v_incomplete.date, 'infinity')), false) b
    order by b.date limit 1;

    if v_stop is null and v_incomplete.date is not null then
      v_stop := v_incomplete.date;
      if v_incomplete.position_count > v_incomplete.expected_count then
        v_stop_reason := format('%s positions exist but %s declared', v_incomplete.position_count, v_incomplete.expected_count);
      else
        -- Not a block (the day is waiting for its snapshots; status() says so from the counts),
        -- but the job's result says why it stopped all the same.
        v_stop_waiting := format('waiting: %s of %s positions', v_incomplete.position_count, v_incomplete.expected_count);
      end if;
    end if;
    v_days := array(select c from unnest(v_candidates) c where c < coalesce(v_stop, 'infinity') order by c);
  else
    v_days := '{}';
  end if;

  select p.base_currency into v_base from public.portfolios p where p.portfolio_id = p_portfolio;

  ---------------------------------------------------------------------------------------------
  -- 3. Build the rows of those days. A day found not computable while building (a BOD source
  --    unvalued, a total that does not fit) ends the run before it: the block is a
  --    subtransaction, undone and redone without that day and the days after it.
  ---------------------------------------------------------------------------------------------
  loop
    exit when cardinality(v_days) = 0;
    begin
      v_all_dirty := array(
        select pd.date from portfolio_timeseries_engine.portfolio_day pd
        where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio, v_days)) and pd.all_positions_dirty
        order by pd.date);
      -- Of those, the days computed before: only they can hold rows to remove or replace.
      v_all_dirty_old := array(
        select pd.date from portfolio_timeseries_engine.portfolio_day pd
        where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio, v_all_dirty)) and pd.computed_count > 0
        order by pd.date);
      v_new_days := array(select d from unnest(v_all_dirty) d where not (d = any(v_all_dirty_old)));

      -- Stage 1: the position rows to rebuild. BOD is the key's previous effective snapshot: the
      -- window's previous row when it lies in the same segment of the run (a stretch of run days
      -- with no other snapshot day of the portfolio between them), else the key's row on the
      -- portfolio's previous snapshot day, else one backward probe of the key's history.
      -- A day never computed has no rows: its rows are plain inserts; others replace theirs.
      with seg as (
        select x.date, x.is_run, x.date = any(v_all_dirty) as all_dirty, x.date = any(v_new_days) as is_new,
          sum(case when x.is_run then 0 else 1 end) over (order by x.date) as seg
        from (
          select d as date, true as is_run from unnest(v_days) d
          union all
          select pd.date, false from portfolio_timeseries_engine.portfolio_day pd
          where pd.portfolio_id = p_portfolio and pd.date > v_days[1] and pd.date < v_days[cardinality(v_days)]
            and pd.position_count > 0 and not (pd.date = any(v_days))
        ) x
      ), snaps as (
        -- Each run day's snapshots by one index scan of (portfolio, date), with the day's security
        -- flows summed per security by one index scan of (portfolio, date) and joined within the
        -- day (a few rows on each side, whatever the plan).
        select s.security_id, g.date, s.epoch, s.quantity, s.cost_basis_local, s.market_value, s.market_value_local,
               s.valuation_status, g.seg, g.all_dirty, g.is_new,
               s.bod_position, s.eod_position, s.bod_portfolio, s.eod_portfolio, s.fees
        from seg g
        cross join lateral (
          select x.security_id, x.epoch, x.quantity, x.cost_basis_local, x.market_value, x.market_value_local, x.valuation_status,
                 f.bod_position, f.eod_position, f.bod_portfolio, f.eod_portfolio, f.fees
          from public.daily_position_snapshots x
          left join (
            select cf.security_id,
              sum(cf.amount) filter (where cf.is_position_flow and cf.timing = 'BOD') as bod_position,
              sum(cf.amount) filter (where cf.is_position_flow and cf.timing = 'EOD') as eod_position,
              sum(cf.amount) filter (where cf.is_portfolio_flow and cf.timing = 'BOD') as bod_portfolio,
              sum(cf.amount) filter (where cf.is_portfolio_flow and cf.timing = 'EOD') as eod_portfolio,
              sum(abs(cf.amount)) filter (where cf.is_portfolio_flow and cf.classification = 'EXPENSE') as fees
            from public.cashflows cf
            where cf.portfolio_id = p_portfolio and cf.cashflow_date = g.date and cf.security_id is not null
            group by cf.security_id) f on f.security_id = x.security_id
          where x.portfolio_id = p_portfolio and x.date = g.date
            and case when x.security_id = any(v_hist)
                     then x.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, x.security_id, x.date)
                     else x.epoch = 0 end
          offset 0) s
        where g.is_run
      ), lagged as (
        select sn.*,
          lag(sn.date) over w as prev_date, lag(sn.epoch) over w as prev_epoch,
          lag(sn.market_value_local) over w as prev_mvl, lag(sn.market_value) over w as prev_mv,
          lag(sn.valuation_status) over w as prev_status
        from snaps sn
        window w as (partition by sn.seg, sn.security_id order by sn.date)
      ), rebuild as (
        select l.* from lagged l
        where l.all_dirty
           or exists (select 1 from portfolio_timeseries_engine.dirty_position dp
                      where dp.portfolio_id = p_portfolio and dp.date = l.date and dp.security_id = l.security_id)
      ), starts as materialized (
        -- The run days with rows whose BOD lies before their segment (usually only the run's first
        -- day), each with the portfolio's latest snapshot day before it: one backward probe of the
        -- (portfolio, date) index per such day.
        select s.date, (select max(x.date) from public.daily_position_snapshots x
                        where x.portfolio_id = p_portfolio and x.date < s.date) as prev_day
        from (select distinct r.date from rebuild r where r.prev_date is null) s
      ), prev_day_snaps as materialized (
        -- That day's effective snapshots, read as one range of the (portfolio, date) index: a key
        -- with a snapshot there has no later one before the start day, so it is the BOD source.
        -- Probing each key's own history instead touches one index page per key, and on a long
        -- history those pages are far apart (a one-day job on 10 years cost 1.5x one on 10 days).
        select st.date as for_date, x.security_id, x.date, x.epoch, x.market_value_local, x.market_value, x.valuation_status
        from starts st
        join public.daily_position_snapshots x on x.portfolio_id = p_portfolio and x.date = st.prev_day
        where case when x.security_id = any(v_hist)
                   then x.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, x.security_id, x.date)
                   else x.epoch = 0 end
      ), bod as (
        select r.*,
          coalesce(r.prev_date, b.date) as bod_date, coalesce(r.prev_epoch, b.epoch) as bod_epoch,
          -- The reason is only built for a source that is unvalued (a function call per row would
          -- cost more than the rest of the row).
          case when r.prev_date is not null
                    and (r.prev_status in ('UNVALUED', 'FAILED') or r.prev_mv is null or r.prev_mvl is null)
               then portfolio_timeseries_engine.unvalued_reason(r.prev_status, r.prev_mv, r.prev_mvl)
               when r.prev_date is null and b.date is not null
                    and (b.valuation_status in ('UNVALUED', 'FAILED') or b.market_value is null or b.market_value_local is null)
               then portfolio_timeseries_engine.unvalued_reason(b.valuation_status, b.market_value, b.market_value_local)
          end as bod_unvalued,
          case when r.prev_date is not null then r.prev_mvl else coalesce(b.market_value_local, 0) end as bod_value
        from rebuild r
        left join starts st on r.prev_date is null and st.date = r.date
        left join prev_day_snaps ps on ps.for_date = st.date and ps.security_id = r.security_id
        left join lateral (
          -- A key absent from that day (a gap, or a new position): its own backward probe.
          select x.date, x.epoch, x.market_value_local, x.market_value, x.valuation_status
          from public.daily_position_snapshots x
          where ps.security_id is null and st.prev_day is not null
            and x.portfolio_id = p_portfolio and x.security_id = r.security_id and x.date < st.prev_day
            and case when x.security_id = any(v_hist)
                     then x.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, x.security_id, x.date)
                     else x.epoch = 0 end
          order by x.date desc limit 1) bk on true
        -- bk has no row when ps has one, so each coalesce takes ps's value, NULL included.
        cross join lateral (
          select coalesce(ps.date, bk.date) as date, coalesce(ps.epoch, bk.epoch) as epoch,
                 coalesce(ps.market_value_local, bk.market_value_local) as market_value_local,
                 coalesce(ps.market_value, bk.market_value) as market_value,
                 coalesce(ps.valuation_status, bk.valuation_status) as valuation_status) b
      ), vals as (
        select b.security_id, b.date, b.epoch, b.bod_value, b.market_value_local, b.quantity, b.bod_unvalued,
          b.bod_date, b.bod_epoch, b.is_new,
          coalesce(b.bod_position, 0) as bod_position, coalesce(b.eod_position, 0) as eod_position,
          coalesce(b.bod_portfolio, 0) as bod_portfolio, coalesce(b.eod_portfolio, 0) as eod_portfolio,
          coalesce(b.fees, 0) as fees,
          -- cost_basis_local / quantity rounded half away from zero at 10 places from the exact
          -- quotient: the integer quotient of the value scaled by 10^10, plus one unit when the
          -- remainder is at least half the divisor (dividing first would round twice).
          case when b.quantity = 0 or b.cost_basis_local is null then 0::numeric
               else (div(b.cost_basis_local * 10000000000, b.quantity)
                     + case when 2 * abs(b.cost_basis_local * 10000000000
                                         - div(b.cost_basis_local * 10000000000, b.quantity) * b.quantity) >= abs(b.quantity)
                            then sign(b.cost_basis_local) * sign(b.quantity) else 0 end) / 10000000000
          end as cost
        from bod b
      ), checked as materialized (
      select v.is_new, v.security_id, v.date, v.epoch,
        case when v.bod_unvalued is null then v.bod_value
             else portfolio_timeseries_engine.stop_day(v.date, format('BOD snapshot of %s on %s (epoch %s) is unvalued: %s',
                    v.security_id, v.bod_date, v.bod_epoch, v.bod_unvalued)) end as bod_value,
        case when abs(v.bod_position) < 1e20 then v.bod_position else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.bod_cashflow_position of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.bod_position)) end as bod_position,
        case when abs(v.eod_position) < 1e20 then v.eod_position else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.eod_cashflow_position of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.eod_position)) end as eod_position,
        case when abs(v.bod_portfolio) < 1e20 then v.bod_portfolio else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.bod_cashflow_portfolio of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.bod_portfolio)) end as bod_portfolio,
        case when abs(v.eod_portfolio) < 1e20 then v.eod_portfolio else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.eod_cashflow_portfolio of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.eod_portfolio)) end as eod_portfolio,
        v.market_value_local as eod_value,
        case when abs(v.fees) < 1e20 then v.fees else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.fees of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.fees)) end as fees,
        v.quantity as quantity,
        case when abs(v.cost) < 1e20 then v.cost else portfolio_timeseries_engine.stop_day(v.date,
          format('position_timeseries.cost of %s on %s is %s, which does not fit numeric(30,10)', v.security_id, v.date, v.cost)) end as cost
      from vals v
      ), inserted as (
        insert into public.position_timeseries (
          portfolio_id, security_id, date, epoch, bod_market_value,
          bod_cashflow_position, eod_cashflow_position, bod_cashflow_portfolio, eod_cashflow_portfolio,
          eod_market_value, fees, quantity, cost)
        select p_portfolio, c.security_id, c.date, c.epoch, c.bod_value, c.bod_position, c.eod_position,
          c.bod_portfolio, c.eod_portfolio, c.eod_value, c.fees, c.quantity, c.cost
        from checked c where c.is_new
        returning 1
      ), replaced as (
        insert into public.position_timeseries as pt (
          portfolio_id, security_id, date, epoch, bod_market_value,
          bod_cashflow_position, eod_cashflow_position, bod_cashflow_portfolio, eod_cashflow_portfolio,
          eod_market_value, fees, quantity, cost)
        select p_portfolio, c.security_id, c.date, c.epoch, c.bod_value, c.bod_position, c.eod_position,
          c.bod_portfolio, c.eod_portfolio, c.eod_value, c.fees, c.quantity, c.cost
        from checked c where not c.is_new
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
        updated_at = now()
        returning 1
      )
      select (select count(*) from inserted) + (select count(*) from replaced) into v_position_rows;

      -- Rebuilt position days without an effective snapshot any more (an epoch change made it
      -- ineffective; its row was kept as the last complete one until now). Only days computed
      -- before can hold such rows; each candidate row is checked with one index probe.
      delete from public.position_timeseries pt
      using portfolio_timeseries_engine.dirty_position dp
      where dp.portfolio_id = p_portfolio and dp.date = any(v_days)
        and pt.portfolio_id = p_portfolio and pt.security_id = dp.security_id and pt.date = dp.date
        and not exists (
          select 1 from public.daily_position_snapshots s
          where s.portfolio_id = p_portfolio and s.security_id = pt.security_id and s.date = pt.date
            and case when s.security_id = any(v_hist)
                     then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                     else s.epoch = 0 end
          offset 0);
      if cardinality(v_all_dirty_old) > 0 then
        delete from public.position_timeseries pt
        where pt.portfolio_id = p_portfolio and pt.date = any(v_all_dirty_old)
          and not exists (
            select 1 from public.daily_position_snapshots s
            where s.portfolio_id = p_portfolio and s.security_id = pt.security_id and s.date = pt.date
              and case when s.security_id = any(v_hist)
                       then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                       else s.epoch = 0 end
            offset 0);
      end if;

      -- Stage 2: one row per day of the run, from the day's effective snapshots (market_value is
      -- already in the base currency) and its portfolio flows converted at the as-of rate. A
      -- security flow is in its instrument's currency (a day where it is not is blocked), so
      -- converting each flow at the rate of its own currency is the methodology's
      -- "position flows x rate(instrument currency)", summed.
      -- Driven by the run's days: every lookup is a lateral probe keyed by (portfolio, date), so
      -- no plan joins two derived sets, whatever the statistics.
      with vals as materialized (
        select d.date, pd.position_count, p.n, p.epoch, p.eod, cv.bod_cashflow, cv.eod_cashflow, cv.fees,
          pv.prev_date,
          lag(d.date) over w as prev_run_date, lag(p.eod) over w as prev_run_eod
        from unnest(v_days) d(date)
        cross join lateral (
          select x.position_count from portfolio_timeseries_engine.portfolio_day x
          where x.portfolio_id = p_portfolio and x.date = d.date offset 0) pd
        cross join lateral (
          select max(m.date) as prev_date from portfolio_timeseries_engine.portfolio_day m
          where m.portfolio_id = p_portfolio and m.expected_count is not null and m.date < d.date) pv
        cross join lateral (
          select count(*)::integer as n, round(coalesce(sum(s.market_value), 0), 10) as eod, coalesce(max(s.epoch), 0) as epoch
          from public.daily_position_snapshots s
          where s.portfolio_id = p_portfolio and s.date = d.date
            and case when s.security_id = any(v_hist)
                     then s.epoch = portfolio_timeseries_engine.effective_epoch(p_portfolio, s.security_id, s.date)
                     else s.epoch = 0 end) p
        -- The day's portfolio flows, summed per currency, converted once per currency at the
        -- as-of rate (exact: sum(x) * r = sum(x * r) in numeric).
        cross join lateral (
          select round(coalesce(sum(f.bod * r.rate), 0), 10) as bod_cashflow,
                 round(coalesce(sum(f.eod * r.rate), 0), 10) as eod_cashflow,
                 round(coalesce(sum(f.fees * r.rate), 0), 10) as fees
          from (
            select c.currency,
              sum(c.amount) filter (where c.timing = 'BOD') as bod,
              sum(c.amount) filter (where c.timing = 'EOD') as eod,
              sum(abs(c.amount)) filter (where c.classification = 'EXPENSE') as fees
            from public.cashflows c
            where c.portfolio_id = p_portfolio and c.cashflow_date = d.date and c.is_portfolio_flow
            group by c.currency) f
          cross join lateral (
            select case when f.currency = v_base then 1::numeric else coalesce((
              select x.rate from public.fx_rates x
              where x.from_currency = f.currency and x.to_currency = v_base and x.rate_date <= d.date
              order by x.rate_date desc limit 1),
              portfolio_timeseries_engine.internal_error(format('portfolio %s, %s: no %s->%s rate for a day that was not blocked',
                p_portfolio, d.date, f.currency, v_base))) end as rate) r) cv
        window w as (order by d.date)
      ), upserted as (
        insert into public.portfolio_timeseries as pt (
          portfolio_id, date, epoch, bod_market_value, bod_cashflow, eod_cashflow, eod_market_value, fees, position_count)
        select p_portfolio, v.date, v.epoch,
          -- BOD: the previous declared day's EOD, new when that day is in this run.
          case
            when v.prev_date is null then 0
            when v.prev_date = v.prev_run_date then v.prev_run_eod
            else coalesce((select pp.eod_market_value from public.portfolio_timeseries pp
                           where pp.portfolio_id = p_portfolio and pp.date = v.prev_date),
                          portfolio_timeseries_engine.internal_error(format(
                            'portfolio %s, %s: the previous declared day %s is current but has no row', p_portfolio, v.date, v.prev_date)))
          end,
          case when abs(v.bod_cashflow) < 1e20 then v.bod_cashflow else portfolio_timeseries_engine.stop_day(v.date,
            format('portfolio_timeseries.bod_cashflow on %s is %s, which does not fit numeric(30,10)', v.date, v.bod_cashflow)) end,
          case when abs(v.eod_cashflow) < 1e20 then v.eod_cashflow else portfolio_timeseries_engine.stop_day(v.date,
            format('portfolio_timeseries.eod_cashflow on %s is %s, which does not fit numeric(30,10)', v.date, v.eod_cashflow)) end,
          case when abs(v.eod) < 1e20 then v.eod else portfolio_timeseries_engine.stop_day(v.date,
            format('portfolio_timeseries.eod_market_value on %s is %s, which does not fit numeric(30,10)', v.date, v.eod)) end,
          case when abs(v.fees) < 1e20 then v.fees else portfolio_timeseries_engine.stop_day(v.date,
            format('portfolio_timeseries.fees on %s is %s, which does not fit numeric(30,10)', v.date, v.fees)) end,
          -- The day's counter and its effective snapshots agree, or this is an engine bug that
          -- must not become a row built from part of the day.
          case when v.n = v.position_count then v.n else portfolio_timeseries_engine.internal_error(format(
            'portfolio %s, %s: %s effective snapshots but a counter of %s', p_portfolio, v.date, v.n, v.position_count)) end
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
      -- The probe below reads the table as it was before this statement: the old EOD.
      select coalesce(array_agg(u.date order by u.date), '{}') into v_changed
      from upserted u
      left join lateral (
        select o.eod_market_value from public.portfolio_timeseries o
        where o.portfolio_id = p_portfolio and o.date = u.date offset 0) o on true
      where o.eod_market_value is distinct from u.eod_market_value;

      exit;
    exception when sqlstate 'PTB01' then
      get stacked diagnostics v_caught_reason = message_text, v_caught_date = pg_exception_detail;
      -- Every reason of that day, for status: the BOD sources of all its positions, and what
      -- stopped the statement.
      select string_agg(distinct r, '; ' order by r) into v_stop_reason
      from (select b.reason as r from portfolio_timeseries_engine.day_reasons(p_portfolio, array[v_caught_date], true) b
            union select v_caught_reason) x;
      v_stop := v_caught_date;
      v_days := array(select d from unnest(v_days) d where d < v_caught_date order by d);
    end;
  end loop;

  if cardinality(v_days) > 0 then
    -- Every rebuilt day has exactly its positions' rows.
    select d.date, pd.position_count, n.n into v_bad
    from unnest(v_days) d(date)
    cross join lateral (
      select x.position_count from portfolio_timeseries_engine.portfolio_day x
      where x.portfolio_id = p_portfolio and x.date = d.date offset 0) pd
    cross join lateral (
      select count(*) as n from public.position_timeseries pt
      where pt.portfolio_id = p_portfolio and pt.date = d.date) n
    where pd.position_count <> n.n
    limit 1;
    if found then
      perform portfolio_timeseries_engine.internal_error(format('portfolio %s, %s: %s positions but %s position rows',
        p_portfolio, v_bad.date, v_bad.position_count, v_bad.n));
    end if;

    -- Cascade with early cutoff: the next declared day of a day whose EOD changed, when it is
    -- not in this run and not behind a day that stays dirty, takes the new EOD as its BOD;
    -- nothing beyond it changes (a day's EOD does not depend on its BOD).
    v_fix := array(
      select x.next_date from (
        select (select min(m.date) from portfolio_timeseries_engine.portfolio_day m
                where m.portfolio_id = p_portfolio and m.expected_count is not null and m.date > c.date) as next_date
        from unnest(v_changed) c(date)) x
      where x.next_date is not null and not (x.next_date = any(v_days)) and x.next_date < coalesce(v_stop, 'infinity'));
    if cardinality(v_fix) > 0 then
      -- A new BOD is a new daily return: the day's stored returns follow its row.
      with fixed as (
        update public.portfolio_timeseries pt
        set bod_market_value = prev.eod_market_value, updated_at = now()
        from unnest(v_fix) f(date)
        cross join lateral (
          select pp.eod_market_value from public.portfolio_timeseries pp
          where pp.portfolio_id = p_portfolio and pp.date < f.date
          order by pp.date desc limit 1) prev
        where pt.portfolio_id = p_portfolio and pt.date = f.date
          and pt.bod_market_value is distinct from prev.eod_market_value
        returning pt.date, pt.bod_market_value, pt.bod_cashflow, pt.eod_cashflow, pt.eod_market_value, pt.fees
      )
      update portfolio_timeseries_engine.portfolio_day pd
      set gross_return = r.gross, net_return = r.net, zero_base = r.zero_base
      from fixed f
      cross join lateral portfolio_timeseries_engine.day_returns(
        f.bod_market_value, f.bod_cashflow, f.eod_cashflow, f.eod_market_value, f.fees) r
      where pd.portfolio_id = p_portfolio and pd.date = f.date;
      get diagnostics v_bod_updates = row_count;
    end if;

    delete from portfolio_timeseries_engine.dirty_position dp
    where dp.portfolio_id = p_portfolio and dp.date = any(v_days);
    -- The day is current from here on, with the returns of the row just written.
    update portfolio_timeseries_engine.portfolio_day pd
    set dirty = false, all_positions_dirty = false, blocked_reason = null,
        computed_count = pd.computed_count + 1, computed_at = now(),
        (gross_return, net_return, zero_base) = (
          select r.gross, r.net, r.zero_base
          from public.portfolio_timeseries pt
          cross join lateral portfolio_timeseries_engine.day_returns(
            pt.bod_market_value, pt.bod_cashflow, pt.eod_cashflow, pt.eod_market_value, pt.fees) r
          where pt.portfolio_id = p_portfolio and pt.date = pd.date)
    where pd.ctid = any(portfolio_timeseries_engine.day_rows(p_portfolio, v_days));
  end if;

  if v_stop is not null then
    update portfolio_timeseries_engine.portfolio_day pd
    set blocked_reason = v_stop_reason
    where pd.portfolio_id = p_portfolio and pd.date = v_stop
      and pd.blocked_reason is distinct from v_stop_reason;
  end if;

  update portfolio_timeseries_engine.portfolio_job j
  set portfolio_days = j.portfolio_days + cardinality(v_days),
      position_days = j.position_days + v_position_rows,
      bod_updates = j.bod_updates + v_bod_updates,
      failures = 0, last_error = null, retry_at = null
  where j.portfolio_id = p_portfolio;

  return jsonb_build_object(
    'portfolio_id', p_portfolio,
    'changes', cardinality(v_changes),
    'portfolio_days', cardinality(v_days),
    'position_days', v_position_rows,
    'bod_updates', v_bod_updates,
    'stopped_at', v_stop,
    'stop_reason', coalesce(v_stop_reason, v_stop_waiting));
end;
$$;

-- Several portfolios in one transaction (the drain's unit of work): the commit, its WAL flush and
-- the round trips are paid once per batch instead of once per portfolio, which is most of the
-- cost of a day of many small portfolios. Each portfolio runs in its own subtransaction: one that
-- fails is undone alone, recorded (portfolio_job.last_error, retried after a back-off) and the
-- others go on; one that another job holds is reported busy; one whose guard row tells it that
-- this transaction's snapshot is older than another job's commit (40001) is reported for retry.
-- Stops taking portfolios after p_max_ms; those not reached stay pending.
create or replace function portfolio_timeseries_engine.compute_portfolios(p_portfolios text[], p_max_ms integer default 500)
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_started timestamptz := clock_timestamp();
  v_portfolio text;
  v_run jsonb;
  v_runs jsonb := '[]';
  v_busy jsonb := '[]';
  v_retry jsonb := '[]';
  v_failed jsonb := '[]';
  v_not_reached jsonb := '[]';
  v_error text;
  v_retry_at timestamptz;
begin
  foreach v_portfolio in array p_portfolios loop
    if clock_timestamp() - v_started > make_interval(secs => p_max_ms / 1000.0) then
      v_not_reached := v_not_reached || to_jsonb(v_portfolio);
      continue;
    end if;
    begin
      v_run := portfolio_timeseries_engine.compute_portfolio(v_portfolio);
      if (v_run ->> 'busy')::boolean then
        v_busy := v_busy || to_jsonb(v_portfolio);
      else
        v_runs := v_runs || v_run;
      end if;
    exception
      when serialization_failure or deadlock_detected then
        v_retry := v_retry || to_jsonb(v_portfolio);
      when others then
        get stacked diagnostics v_error = message_text;
        begin
          v_retry_at := portfolio_timeseries_engine.record_failure(v_portfolio, v_error);
        exception when serialization_failure then
          v_retry_at := null; -- another job of it committed meanwhile: it fails again next time if it must
        end;
        v_failed := v_failed || jsonb_build_object('portfolio_id', v_portfolio, 'error', v_error, 'retry_at', v_retry_at);
    end;
  end loop;
  return jsonb_build_object('runs', v_runs, 'busy', v_busy, 'retry', v_retry, 'failed', v_failed,
    'not_reached', v_not_reached);
end;
$$;
