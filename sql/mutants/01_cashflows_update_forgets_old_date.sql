-- defect: an UPDATE that moves a cash flow to another day records only the new day, so the day
--   it left keeps the flow in its (current) rows.
-- replaces: portfolio_timeseries_engine.tg_cashflows() (UPDATE branch: old_rows never read)
-- caught-by: test/isolation.test.ts PT_ISOLATION_SPEC=flows-beside-snapshots
select pg_temp.mutate('portfolio_timeseries_engine.tg_cashflows()',
  $m$select o.portfolio_id, o.security_id, o.cashflow_date from old_rows o$m$,
  $m$select o.portfolio_id, o.security_id, o.cashflow_date from (select * from old_rows where false) o$m$);
