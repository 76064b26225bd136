/*
 * Internal, for the record of a batch (_gs_job_record, _gs_follow_record):
 * a gestao_scouter_export_errors row per failed lead, with what was sent
 * and what the remote answered.  p_lead_ids and p_messages are the batch's
 * leads and their outcomes (a message: that lead failed); the p_err_*
 * arrays describe the failed leads, in order.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_record_errors(p_job_id uuid, p_lead_ids bigint[], p_messages text[],
    p_err_ids bigint[], p_err_snapshots text[], p_err_fields text[],
    p_err_statuses integer[], p_err_bodies text[])
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO @extschema@.gestao_scouter_export_errors
           (job_id, lead_id, lead_snapshot, fields_sent, error_message,
            error_details, response_status, response_body, ignored_fields)
    SELECT p_job_id, e.lead_id, e.snapshot::jsonb, e.fields::jsonb, u.message,
           e.body::jsonb, e.status, e.body::jsonb, j.ignored_fields
      FROM ROWS FROM (pg_catalog.unnest(p_err_ids), pg_catalog.unnest(p_err_snapshots),
                      pg_catalog.unnest(p_err_fields), pg_catalog.unnest(p_err_statuses),
                      pg_catalog.unnest(p_err_bodies)) AS e(lead_id, snapshot, fields, status, body)
      JOIN ROWS FROM (pg_catalog.unnest(p_lead_ids), pg_catalog.unnest(p_messages))
               AS u(lead_id, message) USING (lead_id)
      CROSS JOIN @extschema@.gestao_scouter_export_jobs j
     WHERE j.id = p_job_id AND u.message IS NOT NULL
$$;
