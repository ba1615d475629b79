-- defect: a manifest change (a day declared, undeclared or re-counted) no longer touches the next
--   declared day, whose "previous declared day", and so BOD and readiness, it changes.
-- replaces: portfolio_timeseries_engine.compute_portfolio(text) (the 'M' expansion of v_touch)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=manifest-next-declared-day
select pg_temp.mutate('portfolio_timeseries_engine.compute_portfolio(text)',
  $m$where d.portfolio_id = p_portfolio and d.expected_count is not null and d.date > c.date_from)$m$,
  $m$where d.portfolio_id = p_portfolio and d.expected_count is not null and d.date > c.date_from and false)$m$);
