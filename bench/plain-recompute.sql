-- Plain set-based recompute of the engine's two outputs for the whole book (contract section 3, docs/contract.md),
-- the baseline the benchmark compares the engine against. It reads only the contract tables,
-- has no triggers, no readiness counters, no dirty sets and no blocking logic, and writes into
-- UNLOGGED tables in schema pt_bench (no WAL: an advantage the engine's logged outputs do not
-- have; see docs/performance.md).
--
-- Simplifications, valid for the benchmark's book and stated so the comparison stays honest:
--  * Effective epoch = the key's current epoch (position_state.epoch, 0 without a row). The
--    engine keeps the epoch history (start dates) in its own schema; the benchmark book is all
--    epoch 0 with no position_state rows, where both rules agree.
--  * Every day is computable (no unvalued snapshots, no missing FX, all instruments known), so
--    nothing is blocked and every manifest day gets a row.
--
-- bench/run.ts runs the sections in order: `-- @setup` untimed, `-- @step` timed one by one (the
-- plain recompute time is their sum); `-- @check` sections are the untimed comparison with the engine's tables (each returns one row of counts that must be
-- zero, or equal). The file also runs as is: psql -f bench/plain-recompute.sql.

-- @setup tables
drop schema if exists pt_bench cascade;
create schema pt_bench;
create unlogged table pt_bench.position_timeseries (
  portfolio_id text not null,
  security_id text not null,
  date date not null,
  epoch integer not null,
  bod_market_value numeric(30, 10) not null,
  bod_cashflow_position numeric(30, 10) not null,
  eod_cashflow_position numeric(30, 10) not null,
  bod_cashflow_portfolio numeric(30, 10) not null,
  eod_cashflow_portfolio numeric(30, 10) not null,
  eod_market_value numeric(30, 10) not null,
  fees numeric(30, 10) not null,
  quantity numeric(30, 10) not null,
  cost numeric(30, 10) not null,
  -- not an output column: the snapshot's base-currency market value, carried for stage 2
  market_value_base numeric(30, 10)
);
create unlogged table pt_bench.portfolio_timeseries (
  portfolio_id text not null,
  date date not null,
  epoch integer not null,
  bod_market_value numeric(30, 10) not null,
  bod_cashflow numeric(30, 10) not null,
  eod_cashflow numeric(30, 10) not null,
  eod_market_value numeric(30, 10) not null,
  fees numeric(30, 10) not null,
  position_count integer not null
);

-- @setup keyed_outputs
-- Only in the keyed variant (plainRecompute(url, { keyed: true })): the tables above are created
-- logged (not unlogged) and get the outputs' primary keys and day index before the inserts, so
-- the recompute writes what a nightly batch producing the contract's two tables would write.
alter table pt_bench.position_timeseries add primary key (portfolio_id, security_id, date);
create index on pt_bench.position_timeseries (portfolio_id, date, security_id);
alter table pt_bench.portfolio_timeseries add primary key (portfolio_id, date);

-- @step stage1_positions
-- One pass over the snapshots: BOD is the previous snapshot of the key (lag over the key's
-- dates), cash flows are pre-aggregated per (portfolio, security, date) and hash-joined.
insert into pt_bench.position_timeseries
with snaps as (
  select s.portfolio_id, s.security_id, s.date, s.epoch, s.quantity, s.cost_basis_local,
    s.market_value, s.market_value_local,
    lag(s.market_value_local) over (partition by s.portfolio_id, s.security_id order by s.date) as bod_mvl
  from public.daily_position_snapshots s
  left join public.position_state ps on ps.portfolio_id = s.portfolio_id and ps.security_id = s.security_id
  where s.epoch = coalesce(ps.epoch, 0)
), flows as (
  select c.portfolio_id, c.security_id, c.cashflow_date as date,
    sum(c.amount) filter (where c.is_position_flow and c.timing = 'BOD') as bod_position,
    sum(c.amount) filter (where c.is_position_flow and c.timing = 'EOD') as eod_position,
    sum(c.amount) filter (where c.is_portfolio_flow and c.timing = 'BOD') as bod_portfolio,
    sum(c.amount) filter (where c.is_portfolio_flow and c.timing = 'EOD') as eod_portfolio,
    sum(abs(c.amount)) filter (where c.is_portfolio_flow and c.classification = 'EXPENSE') as fees
  from public.cashflows c
  where c.security_id is not null
  group by c.portfolio_id, c.security_id, c.cashflow_date
)
select s.portfolio_id, s.security_id, s.date, s.epoch,
  coalesce(s.bod_mvl, 0),
  coalesce(f.bod_position, 0), coalesce(f.eod_position, 0),
  coalesce(f.bod_portfolio, 0), coalesce(f.eod_portfolio, 0),
  s.market_value_local, coalesce(f.fees, 0), s.quantity,
  -- cost rounded once, half away from zero, from the exact quotient (docs/methodology.md)
  case when s.quantity = 0 or s.cost_basis_local is null then 0
       else (div(s.cost_basis_local * 10000000000, s.quantity)
             + case when 2 * abs(s.cost_basis_local * 10000000000 - div(s.cost_basis_local * 10000000000, s.quantity) * s.quantity) >= abs(s.quantity)
                    then sign(s.cost_basis_local) * sign(s.quantity) else 0 end) / 10000000000 end,
  s.market_value
from snaps s
left join flows f on f.portfolio_id = s.portfolio_id and f.security_id = s.security_id and f.date = s.date;

-- @step stage2_portfolios
-- Sum per (portfolio, day, currency) first, convert once per group with the as-of rate (exact:
-- numeric products and sums do not round, so sum(x * r) = r * sum(x)), then BOD = previous
-- declared day's EOD with lag over the manifest days.
insert into pt_bench.portfolio_timeseries
with by_currency as (
  select p.portfolio_id, p.date, i.currency,
    count(*) as n, max(p.epoch) as epoch, sum(p.market_value_base) as eod,
    sum(p.bod_cashflow_portfolio) as bod_cf, sum(p.eod_cashflow_portfolio) as eod_cf, sum(p.fees) as fees
  from pt_bench.position_timeseries p
  join public.instruments i on i.security_id = p.security_id
  group by p.portfolio_id, p.date, i.currency
  union all
  select c.portfolio_id, c.cashflow_date, c.currency,
    0, null, 0,
    sum(c.amount) filter (where c.timing = 'BOD'),
    sum(c.amount) filter (where c.timing = 'EOD'),
    sum(abs(c.amount)) filter (where c.classification = 'EXPENSE')
  from public.cashflows c
  where c.security_id is null and c.is_portfolio_flow
  group by c.portfolio_id, c.cashflow_date, c.currency
), converted as (
  select b.portfolio_id, b.date,
    sum(b.n) as n, max(b.epoch) as epoch, sum(b.eod) as eod,
    sum(b.bod_cf * r.rate) as bod_cf, sum(b.eod_cf * r.rate) as eod_cf, sum(b.fees * r.rate) as fees
  from by_currency b
  join public.portfolios pf on pf.portfolio_id = b.portfolio_id
  cross join lateral (
    select case when b.currency = pf.base_currency then 1::numeric else (
      select x.rate from public.fx_rates x
      where x.from_currency = b.currency and x.to_currency = pf.base_currency and x.rate_date <= b.date
      order by x.rate_date desc limit 1) end as rate) r
  group by b.portfolio_id, b.date
)
select m.portfolio_id, m.aggregation_date, coalesce(c.epoch, 0),
  round(lag(coalesce(c.eod, 0), 1, 0) over (partition by m.portfolio_id order by m.aggregation_date), 10),
  round(coalesce(c.bod_cf, 0), 10), round(coalesce(c.eod_cf, 0), 10), round(coalesce(c.eod, 0), 10),
  round(coalesce(c.fees, 0), 10), coalesce(c.n, 0)::integer
from public.daily_aggregation_manifest m
left join converted c on c.portfolio_id = m.portfolio_id and c.date = m.aggregation_date;

-- @check position_rows
select
  (select count(*) from pt_bench.position_timeseries) as plain_rows,
  (select count(*) from public.position_timeseries) as engine_rows,
  (select count(*) from (
     select portfolio_id, security_id, date, epoch, bod_market_value, bod_cashflow_position,
       eod_cashflow_position, bod_cashflow_portfolio, eod_cashflow_portfolio, eod_market_value, fees,
       quantity, cost from pt_bench.position_timeseries
     except
     select portfolio_id, security_id, date, epoch, bod_market_value, bod_cashflow_position,
       eod_cashflow_position, bod_cashflow_portfolio, eod_cashflow_portfolio, eod_market_value, fees,
       quantity, cost from public.position_timeseries) x) as plain_not_in_engine,
  (select count(*) from (
     select portfolio_id, security_id, date, epoch, bod_market_value, bod_cashflow_position,
       eod_cashflow_position, bod_cashflow_portfolio, eod_cashflow_portfolio, eod_market_value, fees,
       quantity, cost from public.position_timeseries
     except
     select portfolio_id, security_id, date, epoch, bod_market_value, bod_cashflow_position,
       eod_cashflow_position, bod_cashflow_portfolio, eod_cashflow_portfolio, eod_market_value, fees,
       quantity, cost from pt_bench.position_timeseries) x) as engine_not_in_plain;

-- @check portfolio_rows
select
  (select count(*) from pt_bench.portfolio_timeseries) as plain_rows,
  (select count(*) from public.portfolio_timeseries) as engine_rows,
  (select count(*) from (
     select portfolio_id, date, epoch, bod_market_value, bod_cashflow, eod_cashflow, eod_market_value,
       fees, position_count from pt_bench.portfolio_timeseries
     except
     select portfolio_id, date, epoch, bod_market_value, bod_cashflow, eod_cashflow, eod_market_value,
       fees, position_count from public.portfolio_timeseries) x) as plain_not_in_engine,
  (select count(*) from (
     select portfolio_id, date, epoch, bod_market_value, bod_cashflow, eod_cashflow, eod_market_value,
       fees, position_count from public.portfolio_timeseries
     except
     select portfolio_id, date, epoch, bod_market_value, bod_cashflow, eod_cashflow, eod_market_value,
       fees, position_count from pt_bench.portfolio_timeseries) x) as engine_not_in_plain;
