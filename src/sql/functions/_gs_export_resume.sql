/*
 * gs_export_resume's internal function: 1.0's, but the one active job is
 * kept by the unique index, and a row it refuses is the 55000 of doc/contract.md.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_resume(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job @extschema@.gestao_scouter_export_jobs;
    violated text;
BEGIN
    LOCK TABLE @extschema@.gestao_scouter_export_jobs IN SHARE ROW EXCLUSIVE MODE;
    job := @extschema@._gs_export_lock_job(p_caller, p_uid, p_app_admin, p_job_id);
    IF job.status NOT IN ('paused', 'failed') THEN
        RAISE EXCEPTION 'export job % cannot be resumed: it is %', p_job_id, job.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a paused or failed job can be resumed.';
    END IF;
    PERFORM @extschema@._gs_export_check_may_run(job);
    BEGIN
        UPDATE @extschema@.gestao_scouter_export_jobs
           SET status = 'running', pause_reason = NULL, paused_at = NULL,
               completed_at = NULL, updated_at = pg_catalog.now()
         WHERE id = p_job_id;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
        PERFORM @extschema@._gs_export_active_conflict(violated, p_job_id);
        RAISE;
    END;
END;
$$;
