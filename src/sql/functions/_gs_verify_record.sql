/*
 * Record a stretch of a verify job (src/verify.c), all or nothing: its
 * differences (one row each in gestao_scouter_export_diffs: p_lead_ids,
 * p_kinds, p_details as JSON texts), the leads it compared (p_compared,
 * added to total_leads) and its position: every id up to p_cursor_id is
 * done, on both sides, so that a resume starts after it.  Returns whether
 * the job is still running (a pause stops it here).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_verify_record(p_job_id uuid, p_lead_ids bigint[],
    p_kinds text[], p_details text[], p_compared bigint, p_cursor_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    running boolean;
BEGIN
    INSERT INTO @extschema@.gestao_scouter_export_diffs (job_id, lead_id, kind, detail)
    SELECT p_job_id, u.lead_id, u.kind, u.detail::jsonb
      FROM ROWS FROM (pg_catalog.unnest(p_lead_ids), pg_catalog.unnest(p_kinds),
                      pg_catalog.unnest(p_details)) AS u(lead_id, kind, detail);
    UPDATE @extschema@.gestao_scouter_export_jobs AS j
       SET total_leads = j.total_leads + p_compared,
           cursor_id = p_cursor_id,
           recent_leads_per_second = @extschema@._gs_recent_rate(j.recent_leads_per_second, j.updated_at,
                                                                  p_compared),
           updated_at = pg_catalog.now()
     WHERE j.id = p_job_id
    RETURNING j.status = 'running' INTO running;
    RETURN COALESCE(running, false);
END;
$$;
