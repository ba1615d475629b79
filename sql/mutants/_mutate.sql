-- Helper of the mutation check (scripts/mutation-check.ts); not a mutant and not part of the
-- engine: scripts/write-current-migration.ts reads only the top-level sql/*.sql files.
--
-- pg_temp.mutate(function, from, to) re-creates an installed engine function with one piece of its
-- body replaced: `from` must occur exactly once in the installed definition, else it raises (the
-- engine changed under the mutant: update the mutant). A mutant therefore follows the engine as
-- it is now instead of carrying a stale copy of a 600-line function. The replaced text is followed
-- by a marker comment, so applying a mutant twice is a no-op.
--
-- It lives in pg_temp: it exists only in the session that applies a mutant, so nothing of it is
-- left in the scratch template. By hand:
--   psql -d <scratch database> -f sql/mutants/_mutate.sql -f sql/mutants/NN_name.sql
create or replace function pg_temp.mutate(p_function regprocedure, p_from text, p_to text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_def text := pg_get_functiondef(p_function);
  v_marker text := format('/* mutant %s */', left(md5(p_from || p_to), 8));
  v_count integer;
begin
  if position(v_marker in v_def) > 0 then
    raise notice '% already carries this mutation', p_function;
    return;
  end if;
  v_count := (length(v_def) - length(replace(v_def, p_from, ''))) / greatest(length(p_from), 1);
  if v_count <> 1 then
    raise exception 'mutant is stale: % contains the text to replace % times (expected once): %',
      p_function, v_count, p_from;
  end if;
  execute replace(v_def, p_from, p_to || ' ' || v_marker);
end;
$$;
