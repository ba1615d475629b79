-- defect: a day's daily returns are stored the first time it is computed and kept when it is
--   recomputed (a correction): its row is new, its stored return the old one.
-- replaces: portfolio_timeseries_engine.compute_portfolio(text) (the day's stored returns)
-- caught-by: test/returns.test.ts
select pg_temp.mutate('portfolio_timeseries_engine.compute_portfolio(text)',
  $m$          select r.gross, r.net, r.zero_base$m$,
  $m$          select coalesce(pd.gross_return, r.gross), coalesce(pd.net_return, r.net), coalesce(pd.zero_base, r.zero_base)$m$);
