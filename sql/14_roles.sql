-- Least privilege (docs/operations.md, "Roles"). Three roles keep each service in its lane:
--   producer  writes the input tables and the manifest, calls seal_portfolio_day(); cannot write
--             an output, run the engine or touch its tables: the input triggers and
--             seal_portfolio_day run as the engine's owner (SECURITY DEFINER, pinned search_path);
--   worker    runs the jobs (graphile-worker's schema, the engine's tables and functions, the
--             outputs; reads the inputs);
--   reader    reads the outputs, status() and the read-side functions (returns and risk).
-- Roles are cluster-wide, so the migration never creates them: the DBA does, and
-- `portfolio-timeseries migrate --roles` (or `select portfolio_timeseries_engine.grant_roles(...)`)
-- grants to the roles it names. Everything here can be applied again.

-- PostgreSQL lets PUBLIC execute every new function. In the engine's schema only refuse() stays
-- so: the CHECK constraints of the input tables call it as the writing role. The schema's USAGE
-- stays with PUBLIC for the same reason; it reveals names, not rows (no table of the schema is
-- granted to PUBLIC). Functions created by later migrations start revoked too.
revoke all on schema portfolio_timeseries_engine from public;
grant usage on schema portfolio_timeseries_engine to public;
revoke execute on all functions in schema portfolio_timeseries_engine from public;
grant execute on function portfolio_timeseries_engine.refuse(text, text) to public;
alter default privileges in schema portfolio_timeseries_engine revoke execute on functions from public;
-- seal_portfolio_day writes the manifest as the engine's owner: only producers may call it.
revoke execute on function public.seal_portfolio_day(text, date) from public;

-- Grants for the three roles; each must exist (`create role ... login`), and a role may be named
-- for more than one part. Run by the engine's owner (or a superuser).
create or replace function portfolio_timeseries_engine.grant_roles(
  p_producer text default 'portfolio_timeseries_producer',
  p_worker text default 'portfolio_timeseries_worker',
  p_reader text default 'portfolio_timeseries_reader')
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_role text;
  v_table regclass;
  v_inputs constant text := 'public.portfolios, public.instruments, public.fx_rates, public.cashflows, '
    'public.position_state, public.daily_position_snapshots, public.daily_aggregation_manifest';
  v_outputs constant text := 'public.portfolio_timeseries, public.position_timeseries';
begin
  foreach v_role in array array[p_producer, p_worker, p_reader] loop
    if not exists (select 1 from pg_roles where rolname = v_role) then
      raise exception 'role % does not exist: create it first (create role % login password ...), or name another role', v_role, v_role
        using errcode = 'undefined_object';
    end if;
  end loop;

  -- producer: the inputs and the manifest (TRUNCATE included: the engine handles it), sealing.
  execute format('grant usage on schema public to %I', p_producer);
  execute format('grant select, insert, update, delete, truncate on %s to %I', v_inputs, p_producer);
  execute format('grant execute on function public.seal_portfolio_day(text, date) to %I', p_producer);

  -- reader: the outputs, status() (SECURITY DEFINER), and what the read-side functions of
  -- sql/13_returns.sql read to tell current days (they run as the caller).
  execute format('grant usage on schema public, portfolio_timeseries_engine to %I', p_reader);
  execute format('grant select on %s to %I', v_outputs, p_reader);
  execute format('grant select on public.portfolios, public.portfolio_day_status to %I', p_reader);
  execute format('grant execute on function portfolio_timeseries_engine.status(text, text[], date, date) to %I', p_reader);
  execute format('grant execute on function portfolio_timeseries_engine.current_days(text[], date, date), '
    'portfolio_timeseries_engine.day_series(text[], date, date, boolean), '
    'portfolio_timeseries_engine.current_limit(text[]), portfolio_timeseries_engine.basis_is_net(text), '
    'portfolio_timeseries_engine.check_range(date, date), '
    'portfolio_timeseries_engine.pending_from(text) to %I', p_reader);
  execute format('grant select on portfolio_timeseries_engine.portfolio_day, portfolio_timeseries_engine.change, '
    'portfolio_timeseries_engine.reference_change, portfolio_timeseries_engine.portfolio_security to %I', p_reader);

  -- worker: graphile-worker's schema, the engine, the outputs; the inputs read-only.
  execute format('grant usage on schema public, portfolio_timeseries_engine, graphile_worker to %I', p_worker);
  execute format('grant select on %s to %I', v_inputs, p_worker);
  execute format('grant select, insert, update, delete on %s to %I', v_outputs, p_worker);
  execute format('grant select, insert, update, delete on all tables in schema portfolio_timeseries_engine to %I', p_worker);
  execute format('grant usage, select, update on all sequences in schema portfolio_timeseries_engine to %I', p_worker);
  execute format('grant execute on all functions in schema portfolio_timeseries_engine to %I', p_worker);
  execute format('revoke execute on function portfolio_timeseries_engine.grant_roles(text, text, text) from %I', p_worker);
  execute format('grant select, insert, update, delete on all tables in schema graphile_worker to %I', p_worker);
  execute format('grant usage, select, update on all sequences in schema graphile_worker to %I', p_worker);
  execute format('grant execute on all functions in schema graphile_worker to %I', p_worker);
  -- graphile-worker turns row-level security on for its private tables, with no policy: only
  -- their owner (or a BYPASSRLS role) sees a row. The worker role gets a policy of its own on
  -- each, rather than BYPASSRLS (which would reach every table of the cluster).
  for v_table in
    select c.oid::regclass from pg_class c
    where c.relnamespace = 'graphile_worker'::regnamespace and c.relkind = 'r' and c.relrowsecurity
  loop
    execute format('drop policy if exists %I on %s', 'portfolio_timeseries worker ' || p_worker, v_table);
    execute format('create policy %I on %s for all to %I using (true) with check (true)',
      'portfolio_timeseries worker ' || p_worker, v_table, p_worker);
  end loop;
end;
$$;
revoke execute on function portfolio_timeseries_engine.grant_roles(text, text, text) from public;
comment on function portfolio_timeseries_engine.grant_roles(text, text, text) is
  'Grant the producer, worker and reader roles (which must exist) what each needs and nothing more (docs/operations.md, Roles).';
