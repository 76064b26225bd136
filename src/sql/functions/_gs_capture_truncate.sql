/*
 * Internal, for the capture (capture.c): leads was truncated.  The
 * follower is paused (one already paused or failed stays so, its reason
 * now this one), and a mark is left in its queue: nothing
 * is deleted at the remote until a person resumes it (then on_delete
 * applies to every row of its scope) or resets it.  Run as the
 * extension's owner, in the truncating transaction.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_capture_truncate(p_job_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO @extschema@.gs_export_changes (job_id, truncated)
    VALUES (p_job_id, true);
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET status = CASE WHEN status = 'failed' THEN 'failed' ELSE 'paused' END,
           paused_at = pg_catalog.now(),
           pause_reason = pg_catalog.format(
               'leads was truncated (by %s): nothing is deleted at the remote until a person decides. gs_export_resume() applies on_delete to every row of the scope at the remote, then follows on; gs_export_reset() sends every lead again and deletes nothing.',
               pg_catalog.session_user()),
           updated_at = pg_catalog.now()
     WHERE id = p_job_id;
END;
$$;
