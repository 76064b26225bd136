/*
 * gs_export_pause's work, for the caller api.c names: pending or running
 * becomes paused, with paused_at and pause_reason.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_pause(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid, p_reason text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job @extschema@.gestao_scouter_export_jobs;
BEGIN
    job := @extschema@._gs_export_lock_job(p_caller, p_uid, p_app_admin, p_job_id);
    IF p_reason IS NULL THEN
        RAISE EXCEPTION 'reason must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave reason out to record ''Manual''.';
    END IF;
    IF job.status NOT IN ('pending', 'running') THEN
        RAISE EXCEPTION 'export job % cannot be paused: it is %', p_job_id, job.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a pending or running job can be paused.';
    END IF;
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET status = 'paused', paused_at = pg_catalog.now(), pause_reason = p_reason,
           updated_at = pg_catalog.now()
     WHERE id = p_job_id;
END;
$$;
