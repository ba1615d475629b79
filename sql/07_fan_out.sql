-- Reference data (FX rates, instruments) is shared by every portfolio. Which portfolios a change
-- of it affects is decided here, after the change has committed and from one REPEATABLE READ
-- snapshot: a decision taken inside the writer's transaction would miss a portfolio whose
-- snapshots or manifest another transaction had not committed yet, and nothing would look at
-- that portfolio again. Run by the drain job before it computes portfolios.
--
-- A portfolio committed after this snapshot is not missed: its own change row makes its job run
-- after its commit, which is after the reference change committed, so that job reads it.
--
-- Returns the number of reference changes applied, or -1 when another fan_out is running (that
-- one will see these changes, or they wait for the next drain).
create or replace function portfolio_timeseries_engine.fan_out()
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_refs portfolio_timeseries_engine.reference_change[];
begin
  if current_setting('transaction_isolation') <> 'repeatable read' then
    raise exception 'portfolio_timeseries_engine.fan_out() must run in a REPEATABLE READ transaction';
  end if;
  if not pg_try_advisory_xact_lock(hashtextextended('portfolio_timeseries:fan_out', 0)) then
    return -1;
  end if;
  -- Two fan_outs that both got the lock (one committed between the other's snapshot and its
  -- lock) both update this row: REPEATABLE READ refuses the later one (40001), which retries.
  update portfolio_timeseries_engine.fan_out_guard set runs = runs + 1;

  with consumed as (
    delete from portfolio_timeseries_engine.reference_change returning *
  )
  select coalesce(array_agg(c), '{}') into v_refs from consumed c;
  if cardinality(v_refs) = 0 then
    return 0;
  end if;

  -- FX (from, to, d): the rate of every date from d until the pair's next rate, for portfolios
  -- based in `to` that have a declared day in that range. Their jobs keep only the days that
  -- need `from` (an instrument of a position, or a NULL-security portfolio flow).
  insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, currency)
  with ranges as materialized (
    select x.from_currency, x.to_currency, x.rate_date,
      coalesce((select min(f.rate_date) from public.fx_rates f
                where f.from_currency = x.from_currency and f.to_currency = x.to_currency and f.rate_date > x.rate_date),
               'infinity') as until
    from (select distinct r.from_currency, r.to_currency, r.rate_date from unnest(v_refs) r where r.kind = 'F') x
  ), islands as materialized (
    -- Ranges of one pair that touch (a day's rate until the next day's rate: a whole history of
    -- daily rates) are merged, so a reload of every rate is one change per portfolio and currency,
    -- not one per rate.
    select g.from_currency, g.to_currency, min(g.rate_date) as date_from, max(g.until) as until
    from (
      select r.*, sum(case when r.rate_date = r.prev_until then 0 else 1 end)
               over (partition by r.from_currency, r.to_currency order by r.rate_date) as island
      from (select r.*, lag(r.until) over (partition by r.from_currency, r.to_currency order by r.rate_date) as prev_until
            from ranges r) r
    ) g
    group by g.from_currency, g.to_currency, g.island
  )
  select p.portfolio_id, 'F', r.date_from, r.until - 1, r.from_currency
  from islands r
  join public.portfolios p on p.base_currency = r.to_currency
  where exists (
    select 1 from public.daily_aggregation_manifest m
    where m.portfolio_id = p.portfolio_id and m.aggregation_date >= r.date_from and m.aggregation_date < r.until
    offset 0);

  -- Instrument K: every portfolio that has had a snapshot of K (the registry its jobs keep), or
  -- whose pending changes name K (a job that has not committed yet may have read the instrument
  -- as it was before): all of that portfolio's days with K, which its job narrows down.
  insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, securities)
  select distinct x.portfolio_id, 'I', '-infinity'::date, 'infinity'::date, array[x.security_id]
  from (
    select ps.portfolio_id, ps.security_id
    from portfolio_timeseries_engine.portfolio_security ps
    where ps.security_id in (select r.security_id from unnest(v_refs) r where r.kind = 'I')
    union
    select c.portfolio_id, k.security_id
    from portfolio_timeseries_engine.change c
    cross join lateral unnest(c.securities) k(security_id)
    where c.kind in ('S', 'C') and k.security_id in (select r.security_id from unnest(v_refs) r where r.kind = 'I')
  ) x;

  return cardinality(v_refs);
end;
$$;
