-- public.portfolio_day_status: the public, documented way to read the state of every
-- portfolio-day in SQL (docs/contract.md, "Public surface"). The function behind it
-- (portfolio_timeseries_engine.status) is private and may change between versions; this view's
-- columns do not.
--
-- One status(p) call per portfolio, driven by the portfolios the engine knows (the portfolios
-- table, every portfolio a job ran for, every portfolio with a pending change: a day can exist
-- for a portfolio missing from `portfolios`, blocked with that reason). The portfolio_id column is
-- the driving row's, so `where portfolio_id = 'P'` is pushed into the driving set and reads one
-- portfolio; a view over status(NULL) would evaluate the whole book for every query.
create or replace view public.portfolio_day_status as
select k.portfolio_id, s.date, s.state, s.detail, s.has_row
from (
  select p.portfolio_id from public.portfolios p
  union
  select j.portfolio_id from portfolio_timeseries_engine.portfolio_job j
  union
  select c.portfolio_id from portfolio_timeseries_engine.change c
) k
cross join lateral portfolio_timeseries_engine.status(k.portfolio_id) s;

comment on view public.portfolio_day_status is
  'State of every portfolio-day: undeclared, waiting, waiting_previous_day, blocked, queued, current (docs/operations.md). Filter by portfolio_id to read one portfolio.';
