/*
 * Internal: the job, locked, if the caller may see it; else 42704.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_lock_job(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid)
RETURNS @extschema@.gestao_scouter_export_jobs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job @extschema@.gestao_scouter_export_jobs;
BEGIN
    PERFORM @extschema@._gs_export_check_caller(p_caller);
    IF p_job_id IS NULL THEN
        RAISE EXCEPTION 'job_id must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO job FROM @extschema@.gestao_scouter_export_jobs
     WHERE id = p_job_id FOR UPDATE;
    IF NOT FOUND OR NOT @extschema@.gs_export_job_visible_to(p_caller, p_uid, p_app_admin, job.owner_oid, job.created_by) THEN
        RAISE EXCEPTION 'export job % does not exist', p_job_id
            USING ERRCODE = 'undefined_object',
                  HINT = 'List your jobs with: SELECT id, status FROM gestao_scouter_export_jobs ORDER BY created_at DESC;';
    END IF;
    RETURN job;
END;
$$;
