/*
 * Stop the job: 'paused' (only if it is running: the remote's trouble
 * outlasted the retries, or an operator cancelled the worker) or 'failed'
 * (whatever it was), with the reason in pause_reason.  Returns whether the
 * row changed.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_stop(p_job_id uuid, p_status text, p_reason text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_status NOT IN ('paused', 'failed') THEN
        RAISE EXCEPTION 'a job can be stopped as paused or failed, not %', p_status
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET status = p_status, pause_reason = p_reason,
           paused_at = CASE WHEN p_status = 'paused' THEN pg_catalog.now() ELSE paused_at END,
           updated_at = pg_catalog.now()
     WHERE id = p_job_id AND (p_status = 'failed' OR status = 'running');
    RETURN FOUND;
END;
$$;
