-- Status of every portfolio-day (design section 5) and the sweep that re-enqueues ready work.

-- States, in the order they are decided:
--   undeclared            snapshots but no manifest row
--   waiting               fewer positions than declared ("k of n")
--   blocked               more positions than declared, or the last run stopped here and said why
--   current               the row is up to date
--   waiting_previous_day  an earlier declared day is not current (its date and state are named)
--   queued                ready, not computed yet
create function portfolio_timeseries_engine.status(p_portfolio text default null)
returns table (portfolio_id text, date date, state text, detail text, has_row boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with days as (
    select pd.*,
      min(pd.date) filter (where pd.dirty and pd.expected_count is not null)
        over (partition by pd.portfolio_id order by pd.date rows between unbounded preceding and 1 preceding)
        as first_not_current_before
    from portfolio_timeseries_engine.portfolio_day pd
    where (p_portfolio is null or pd.portfolio_id = p_portfolio)
  ), decided as (
    select d.portfolio_id, d.date,
      case
        when d.expected_count is null then 'undeclared'
        when d.position_count < d.expected_count then 'waiting'
        when d.position_count > d.expected_count then 'blocked'
        when not d.dirty then 'current'
        when d.first_not_current_before is not null then 'waiting_previous_day'
        when d.blocked_reason is not null then 'blocked'
        else 'queued'
      end as state,
      d.position_count, d.expected_count, d.blocked_reason, d.first_not_current_before
    from days d
    where d.expected_count is not null or d.position_count > 0
  )
  select x.portfolio_id, x.date, x.state,
    case x.state
      when 'undeclared' then format('%s positions, no manifest row', x.position_count)
      when 'waiting' then format('%s of %s', x.position_count, x.expected_count)
      when 'blocked' then coalesce(x.blocked_reason,
        format('%s positions exist but %s declared', x.position_count, x.expected_count))
      when 'waiting_previous_day' then format('waiting for %s', x.first_not_current_before)
      when 'queued' then 'ready, not computed yet'
      else null
    end as detail,
    exists (select 1 from public.portfolio_timeseries pt
            where pt.portfolio_id = x.portfolio_id and pt.date = x.date) as has_row
  from decided x
  order by x.portfolio_id, x.date
$$;

-- Safety net (run by the crontab task and at worker start): enqueue every portfolio whose first
-- dirty declared day is complete and not known to be blocked. It covers jobs lost with a killed
-- worker (graphile-worker would otherwise leave them locked for 4 hours) and anything an
-- enqueue could have missed. Blocked days are not re-enqueued: the change that unblocks them
-- touches them and enqueues then.
create function portfolio_timeseries_engine.sweep()
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_portfolios text[];
begin
  select coalesce(array_agg(f.portfolio_id order by f.portfolio_id), '{}') into v_portfolios
  from (
    select distinct on (pd.portfolio_id) pd.portfolio_id, pd.position_count, pd.expected_count, pd.blocked_reason
    from portfolio_timeseries_engine.portfolio_day pd
    where pd.dirty and pd.expected_count is not null
    order by pd.portfolio_id, pd.date
  ) f
  where f.position_count = f.expected_count and f.blocked_reason is null;
  perform portfolio_timeseries_engine.enqueue(v_portfolios);
  return cardinality(v_portfolios);
end;
$$;
