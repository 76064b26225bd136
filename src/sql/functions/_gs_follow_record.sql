/*
 * Record one batch of a follower, all or nothing: a sync_events row per
 * lead sent ('update') or deleted at the remote ('delete'), an error row
 * per failure, the job's counters, its backfill position (p_cursor_id, or
 * NULL), and the rows of gs_export_changes it consumed, deleted.
 * p_events and p_messages go with p_lead_ids (a message: that lead
 * failed); the p_err_* arrays describe the failed leads, in order.
 * An error row (of any job) of a lead that went through to the same
 * remote table, sent or deleted, gets resolved_at: the remote now holds the
 * lead as it is (gs_export_retry_errors; a follower or a repair resolves
 * them too).  Returns whether the job is still running.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_follow_record(p_job_id uuid, p_seqs bigint[],
    p_lead_ids bigint[], p_events text[], p_messages text[], p_duration_ms integer,
    p_cursor_id bigint,
    p_err_ids bigint[], p_err_snapshots text[], p_err_fields text[],
    p_err_statuses integer[], p_err_bodies text[])
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n_sent bigint;
    n_deleted bigint;
    n_err bigint;
    running boolean;
BEGIN
    INSERT INTO @extschema@.sync_events
           (event_type, direction, lead_id, status, error_message, sync_duration_ms, job_id)
    SELECT u.event, 'supabase_to_gestao_scouter', u.lead_id,
           CASE WHEN u.message IS NULL THEN 'success' ELSE 'error' END,
           u.message, p_duration_ms, p_job_id
      FROM ROWS FROM (pg_catalog.unnest(p_lead_ids), pg_catalog.unnest(p_events),
                      pg_catalog.unnest(p_messages)) AS u(lead_id, event, message);

    SELECT pg_catalog.count(*) FILTER (WHERE u.message IS NULL AND u.event = 'update'),
           pg_catalog.count(*) FILTER (WHERE u.message IS NULL AND u.event = 'delete'),
           pg_catalog.count(*) FILTER (WHERE u.message IS NOT NULL)
      INTO n_sent, n_deleted, n_err
      FROM ROWS FROM (pg_catalog.unnest(p_events), pg_catalog.unnest(p_messages)) AS u(event, message);

    IF n_err > 0 THEN
        PERFORM @extschema@._gs_record_errors(p_job_id, p_lead_ids, p_messages, p_err_ids, p_err_snapshots,
                                              p_err_fields, p_err_statuses, p_err_bodies);
    END IF;

    DELETE FROM @extschema@.gs_export_changes
     WHERE job_id = p_job_id AND seq = ANY (p_seqs);

    /* the unresolved error rows are few: a partial index on lead_id */
    UPDATE @extschema@.gestao_scouter_export_errors AS e
       SET resolved_at = pg_catalog.now()
      FROM @extschema@.gestao_scouter_export_jobs ej, @extschema@.gestao_scouter_export_jobs me
     WHERE e.resolved_at IS NULL
       AND e.lead_id = ANY (ARRAY(SELECT u.lead_id
                                    FROM ROWS FROM (pg_catalog.unnest(p_lead_ids), pg_catalog.unnest(p_messages))
                                         AS u(lead_id, message)
                                   WHERE u.message IS NULL))
       AND ej.id = e.job_id AND me.id = p_job_id
       AND (COALESCE(ej.effective_options, ej.options) ->> 'target_table')
           IS NOT DISTINCT FROM (me.effective_options ->> 'target_table');

    UPDATE @extschema@.gestao_scouter_export_jobs AS j
       SET total_leads = j.total_leads + n_sent + n_deleted + n_err,
           exported_leads = j.exported_leads + n_sent,
           deleted_leads = j.deleted_leads + n_deleted,
           error_leads = j.error_leads + n_err,
           cursor_id = COALESCE(p_cursor_id, j.cursor_id),
           recent_leads_per_second = @extschema@._gs_recent_rate(j.recent_leads_per_second, j.updated_at,
                                                                  n_sent + n_deleted + n_err),
           updated_at = pg_catalog.now()
     WHERE j.id = p_job_id
    RETURNING j.status = 'running' INTO running;
    RETURN COALESCE(running, false);
END;
$$;
