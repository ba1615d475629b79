-- defect: the old engine's FX fan-out: the writer's own trigger decides which portfolios and days
--   a rate reaches, from the manifest rows its transaction can see; fan_out ignores FX. A day
--   declared by a transaction that commits after the rate's statement (and computed with the old
--   rate before the rate commits) is never looked at again.
-- replaces: portfolio_timeseries_engine.tg_fx_rates() (whole function) and
--   portfolio_timeseries_engine.fan_out() (FX branch disabled)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=fx-beside-manifest
create or replace function portfolio_timeseries_engine.tg_fx_rates()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_rows jsonb;
begin
  if tg_op = 'INSERT' then
    select jsonb_agg(n) into v_rows from new_rows n;
  elsif tg_op = 'UPDATE' then
    select jsonb_agg(x) into v_rows from (select * from old_rows union all select * from new_rows) x;
  else
    select jsonb_agg(o) into v_rows from old_rows o;
  end if;
  insert into portfolio_timeseries_engine.change (portfolio_id, kind, date_from, date_to, currency)
  select p.portfolio_id, 'F', r.rate_date, coalesce(r.until - 1, 'infinity'), r.from_currency
  from (
    select x.from_currency, x.to_currency, x.rate_date,
      (select min(f.rate_date) from public.fx_rates f
       where f.from_currency = x.from_currency and f.to_currency = x.to_currency and f.rate_date > x.rate_date) as until
    from (select distinct r.from_currency, r.to_currency, r.rate_date
          from jsonb_populate_recordset(null::public.fx_rates, v_rows) r
          where r.from_currency <> r.to_currency) x
  ) r
  join public.portfolios p on p.base_currency = r.to_currency
  where exists (
    select 1 from public.daily_aggregation_manifest m
    where m.portfolio_id = p.portfolio_id and m.aggregation_date >= r.rate_date
      and (r.until is null or m.aggregation_date < r.until));
  if found then
    perform portfolio_timeseries_engine.enqueue_drain();
  end if;
  return null;
end;
$$;

select pg_temp.mutate('portfolio_timeseries_engine.fan_out()',
  $m$from unnest(v_refs) r where r.kind = 'F'$m$,
  $m$from unnest(v_refs) r where r.kind = 'F' and false$m$);
