-- defect: the sweep no longer skips blocked days: a portfolio whose first dirty day is blocked
--   gets a change and a drain every minute, forever, although nothing can change.
-- replaces: portfolio_timeseries_engine.sweep()
-- caught-by: test/sweep.test.ts
select pg_temp.mutate('portfolio_timeseries_engine.sweep()',
  $m$where f.position_count = f.expected_count and f.blocked_reason is null$m$,
  $m$where f.position_count = f.expected_count$m$);
