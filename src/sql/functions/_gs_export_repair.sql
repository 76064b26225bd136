/*
 * gs_export_repair's internal function: a job of kind 'repair' over
 * exactly the leads the verify job p_verify_job_id found different
 * (gestao_scouter_export_diffs), with that verify job's options: each is
 * sent as it is now ('missing', 'stale', 'different'), or, gone or out of
 * the scope ('extra'), has the verify's on_delete applied at the remote,
 * scoped by the source column (_gs_export_set_job).  The caller must see
 * the verify job (42704); 22023 when it is not a verify job; 55000 when it
 * has not completed, or found nothing.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_repair(p_caller oid, p_uid uuid, p_app_admin boolean, p_verify_job_id uuid)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    source @extschema@.gestao_scouter_export_jobs;
    effective jsonb;
BEGIN
    source := @extschema@._gs_export_see_job(p_caller, p_uid, p_app_admin, p_verify_job_id);
    IF source.kind <> 'verify' THEN
        RAISE EXCEPTION 'job % is not a verify job: it is of kind %', p_verify_job_id, source.kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'gs_export_repair takes the id gs_export_verify() returned; gs_export_retry_errors() sends again the failed leads of any job.';
    END IF;
    IF source.status <> 'completed' THEN
        RAISE EXCEPTION 'verify job % has not completed: it is %', p_verify_job_id, source.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A repair sends exactly what the verify found; until it has compared every row, that is not known.',
                  HINT = 'Wait for it to complete (gs_export_status), or resume it.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM @extschema@.gestao_scouter_export_diffs d WHERE d.job_id = p_verify_job_id) THEN
        PERFORM @extschema@._gs_export_set_job_nothing('repair', p_verify_job_id);
    END IF;
    effective := source.effective_options || pg_catalog.jsonb_build_object(
        'on_delete', COALESCE(source.effective_options -> 'on_delete', '"delete"'),
        'delay_ms', 0, 'time_zone', 'UTC');
    RETURN @extschema@._gs_export_set_job(p_caller, p_uid, p_app_admin, 'repair', p_verify_job_id,
                                           pg_catalog.jsonb_build_object('repair_of', p_verify_job_id), effective);
END;
$$;
