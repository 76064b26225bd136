/*
 * The jobs that want a worker (pending, or running: after a restart, or
 * whose worker stopped), oldest first.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_runnable_jobs()
RETURNS SETOF uuid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT id FROM @extschema@.gestao_scouter_export_jobs
     WHERE status IN ('pending', 'running')
     ORDER BY created_at
$$;
