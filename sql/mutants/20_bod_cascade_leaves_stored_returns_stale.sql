-- defect: the cascade's early cutoff gives the next declared day a new BOD but leaves the daily
--   returns stored with it as they were: the day stays current with the return of its old BOD.
-- replaces: portfolio_timeseries_engine.compute_portfolio(text) (the BOD cascade)
-- caught-by: test/returns.test.ts
select pg_temp.mutate('portfolio_timeseries_engine.compute_portfolio(text)',
  $m$      where pd.portfolio_id = p_portfolio and pd.date = f.date;$m$,
  $m$      where pd.portfolio_id = p_portfolio and pd.date = f.date and false;$m$);
