/*
 * Record one batch's outcome, all or nothing: a sync_events row per lead, a
 * gestao_scouter_export_errors row per failed lead, the job's counters and
 * position.  p_messages holds NULL for a lead that went through, else its
 * error; the p_err_* arrays describe the failed leads, in order.  Returns
 * whether the job is still running (a pause may have come meanwhile).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_record(p_job_id uuid, p_lead_ids bigint[], p_messages text[],
                                           p_duration_ms integer,
                                           p_last_updated_at timestamptz, p_last_id bigint, p_last_day date,
                                           p_err_ids bigint[], p_err_snapshots text[], p_err_fields text[],
                                           p_err_statuses integer[], p_err_bodies text[])
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n_ok bigint;
    n_err bigint;
    running boolean;
BEGIN
    INSERT INTO @extschema@.sync_events
           (event_type, direction, lead_id, status, error_message, sync_duration_ms, job_id)
    SELECT 'update', 'supabase_to_gestao_scouter', u.lead_id,
           CASE WHEN u.message IS NULL THEN 'success' ELSE 'error' END,
           u.message, p_duration_ms, p_job_id
      FROM ROWS FROM (pg_catalog.unnest(p_lead_ids), pg_catalog.unnest(p_messages)) AS u(lead_id, message);

    SELECT pg_catalog.count(*) FILTER (WHERE m IS NULL), pg_catalog.count(*) FILTER (WHERE m IS NOT NULL)
      INTO n_ok, n_err
      FROM pg_catalog.unnest(p_messages) AS m;

    IF n_err > 0 THEN
        PERFORM @extschema@._gs_record_errors(p_job_id, p_lead_ids, p_messages, p_err_ids, p_err_snapshots,
                                              p_err_fields, p_err_statuses, p_err_bodies);
    END IF;

    UPDATE @extschema@.gestao_scouter_export_jobs AS j
       SET total_leads = j.total_leads + n_ok + n_err,
           exported_leads = j.exported_leads + n_ok,
           error_leads = j.error_leads + n_err,
           cursor_updated_at = p_last_updated_at, cursor_id = p_last_id,
           recent_leads_per_second = @extschema@._gs_recent_rate(j.recent_leads_per_second, j.updated_at,
                                                                  n_ok + n_err),
           processing_date = CASE WHEN j.pass_kind = 'range'
                                  THEN LEAST(GREATEST(p_last_day, j.end_date), j.start_date)
                                  ELSE j.processing_date END,
           last_completed_date = CASE WHEN j.pass_kind = 'range' AND p_last_day < j.start_date
                                      THEN GREATEST(p_last_day + 1, j.end_date)
                                      ELSE j.last_completed_date END,
           updated_at = pg_catalog.now()
     WHERE j.id = p_job_id
    RETURNING j.status = 'running' INTO running;
    RETURN COALESCE(running, false);
END;
$$;
