/*
 * gs_export_delete's internal function: a paused, failed or completed job
 * and its error rows are deleted (explicitly: TabuladorMax's errors table
 * may predate the extension without ON DELETE CASCADE); its sync_events
 * stay.  Once it is gone it stands in no new job's way.  A follower's
 * capture triggers and waiting changes go with it (a retry's and a
 * repair's queue too); a verify's diffs go with it.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_delete(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job @extschema@.gestao_scouter_export_jobs;
BEGIN
    job := @extschema@._gs_export_see_job(p_caller, p_uid, p_app_admin, p_job_id);
    PERFORM @extschema@._gs_export_check_stopped(p_job_id, job.status, 'deleted');
    PERFORM @extschema@._gs_export_wait_for_worker(p_job_id, 'deleted');

    job := @extschema@._gs_export_lock_job(p_caller, p_uid, p_app_admin, p_job_id);
    PERFORM @extschema@._gs_export_check_stopped(p_job_id, job.status, 'deleted');
    DELETE FROM @extschema@.gestao_scouter_export_errors WHERE job_id = p_job_id;
    DELETE FROM @extschema@.gestao_scouter_export_jobs WHERE id = p_job_id;
    IF job.kind = 'follow' THEN
        /* its capture ends with it */
        PERFORM @extschema@._gs_capture_triggers(p_job_id, false);
    END IF;
    /* and what it had yet to send */
    DELETE FROM @extschema@.gs_export_changes WHERE job_id = p_job_id;
    DELETE FROM @extschema@.gestao_scouter_export_diffs WHERE job_id = p_job_id;
END;
$$;
