/*
 * Internal: what the alert of a job's change says (src/alert.c).  Its
 * worker calls it in a short read-only transaction of its own, just after
 * the change (to p_status, with p_reason) committed.  is_current: that
 * change is still the job's state (else someone changed it since, and the
 * alert is not sent).  The reason has the config's keys blanked out: a
 * remote that echoed a key would not get it into a webhook.  alert_url is
 * the active config's (the row _gs_job_claim uses).  Nothing else of the
 * config leaves this function.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_alert_info(p_job_id uuid, p_status text, p_reason text,
    OUT is_current boolean, OUT status text, OUT reason text,
    OUT total_leads bigint, OUT exported_leads bigint, OUT error_leads bigint,
    OUT start_date text, OUT end_date text, OUT alert_url text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j record;
    cfg record;
    k text;
BEGIN
    SELECT t.status, t.pause_reason, t.total_leads, t.exported_leads, t.error_leads,
           t.start_date, t.end_date
      INTO j
      FROM @extschema@.gestao_scouter_export_jobs t
     WHERE t.id = p_job_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT c.alert_url, c.anon_key, c.service_role_key_encrypted INTO cfg
      FROM @extschema@.gestao_scouter_config c
     WHERE c.active AND c.sync_enabled
     ORDER BY c.updated_at DESC NULLS LAST
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN;                 -- no active config: no alert_url
    END IF;

    is_current := j.status = p_status
                  AND (p_status = 'completed' OR j.pause_reason IS NOT DISTINCT FROM p_reason);
    status := j.status;
    IF p_status <> 'completed' THEN
        reason := j.pause_reason;
        FOREACH k IN ARRAY ARRAY[cfg.anon_key, cfg.service_role_key_encrypted] LOOP
            IF k <> '' THEN
                reason := pg_catalog.replace(reason, k, '[key]');
            END IF;
        END LOOP;
    END IF;
    total_leads := j.total_leads;
    exported_leads := j.exported_leads;
    error_leads := j.error_leads;
    start_date := pg_catalog.to_char(j.start_date, 'YYYY-MM-DD');
    end_date := pg_catalog.to_char(j.end_date, 'YYYY-MM-DD');
    alert_url := cfg.alert_url;
END;
$$;
