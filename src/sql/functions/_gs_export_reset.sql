/*
 * gs_export_reset's internal function: a paused, failed or completed job
 * becomes pending and starts again from its start_date, as if new but for
 * its id, owner, options (the same fields go to the same table) and
 * created_at.  Its error rows go; its sync_events stay, the history of
 * what was sent.  It becomes active, so the one active job rule holds as
 * for create and resume.  A follower (1.2) backfills again, then follows
 * the changes waiting (but a TRUNCATE's mark: a reset wipes nothing).
 * A retry or a repair takes again the leads of its source as they are
 * now (the unresolved error rows, the verify's diffs).  A verify compares
 * again from the first row, its diffs gone.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_reset(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job @extschema@.gestao_scouter_export_jobs;
    violated text;
BEGIN
    job := @extschema@._gs_export_see_job(p_caller, p_uid, p_app_admin, p_job_id);
    PERFORM @extschema@._gs_export_check_stopped(p_job_id, job.status, 'reset');
    PERFORM @extschema@._gs_export_wait_for_worker(p_job_id, 'reset');

    LOCK TABLE @extschema@.gestao_scouter_export_jobs IN SHARE ROW EXCLUSIVE MODE;
    job := @extschema@._gs_export_lock_job(p_caller, p_uid, p_app_admin, p_job_id);
    PERFORM @extschema@._gs_export_check_stopped(p_job_id, job.status, 'reset');
    PERFORM @extschema@._gs_export_check_may_run(job);
    BEGIN
        UPDATE @extschema@.gestao_scouter_export_jobs
           SET status = 'pending',
               total_leads = 0, exported_leads = 0, error_leads = 0,
               processing_date = NULL, last_completed_date = NULL,
               pause_reason = NULL, paused_at = NULL, ignored_fields = '{}',
               started_at = NULL, completed_at = NULL,
               leads_in_range = NULL, recent_leads_per_second = NULL,
               cursor_updated_at = NULL, cursor_id = NULL, changes_since = NULL,
               catchup_pass = 0, catchup_lower = NULL,
               pass_kind = CASE WHEN job.kind IN ('retry', 'repair') THEN 'follow'
                                WHEN job.kind <> 'follow' THEN 'range'
                                WHEN COALESCE((job.effective_options ->> 'backfill')::boolean, true) THEN 'backfill'
                                ELSE 'follow' END,
               pass_lower = NULL, pass_upper = NULL, deleted_leads = 0,
               updated_at = pg_catalog.now()
         WHERE id = p_job_id;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
        PERFORM @extschema@._gs_export_active_conflict(violated, p_job_id);
        RAISE;
    END;
    DELETE FROM @extschema@.gestao_scouter_export_errors WHERE job_id = p_job_id;
    /*
     * A follower backfills again, then follows on: the changes waiting stay
     * (a lead deleted meanwhile is deleted at the remote after the
     * backfill), but a TRUNCATE's mark goes -- a reset deletes nothing at
     * the remote for it.
     */
    DELETE FROM @extschema@.gs_export_changes WHERE job_id = p_job_id AND truncated;
    IF job.kind IN ('retry', 'repair') THEN
        DELETE FROM @extschema@.gs_export_changes WHERE job_id = p_job_id;
        UPDATE @extschema@.gestao_scouter_export_jobs
           SET leads_in_range = @extschema@._gs_set_job_fill(p_job_id, job.kind,
                   COALESCE(job.options ->> 'retry_of', job.options ->> 'repair_of')::uuid)
         WHERE id = p_job_id;
    END IF;
    IF job.kind = 'verify' THEN
        DELETE FROM @extschema@.gestao_scouter_export_diffs WHERE job_id = p_job_id;
    END IF;
    IF job.kind = 'follow' THEN
        /* those missing (a follower failed for their loss) */
        PERFORM @extschema@._gs_capture_triggers(p_job_id, true);
    END IF;
END;
$$;
