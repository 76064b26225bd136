/*
 * The job's worker leaves in order: nothing of its is at the remote any
 * more (what it gave up on is in doubt_until).  The next claim of the job
 * then need not wait (see worker_since, tables/gestao_scouter_export_jobs.sql).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_release(p_job_id uuid)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET worker_since = NULL
     WHERE id = p_job_id
$$;
