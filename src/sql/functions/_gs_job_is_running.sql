/*
 * The state machine: should the worker go on with this job?
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_is_running(p_job_id uuid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE((SELECT status = 'running' FROM @extschema@.gestao_scouter_export_jobs
                      WHERE id = p_job_id), false)
$$;
