/*
 * gs_export_status's internal function: the job's progress, for a UI.
 * With p_job_id NULL, the most recent job the caller may see.  Its columns
 * are gs_export_status's, type for type (api.c checks).
 *
 *   percent           total_leads over leads_in_range, in percent, rounded
 *                     to 0.1 and capped at 100; 100 once completed; 0
 *                     while leads_in_range is unknown (the job has not
 *                     started) or zero with nothing processed
 *   leads_per_second  running: the recent rate (recent_leads_per_second)
 *                     when the worker has one, else the average; otherwise
 *                     the average, total_leads over the time from
 *                     started_at to completed_at (completed), paused_at
 *                     (paused) or the last change (updated_at); NULL for a
 *                     job that never started
 *   eta               running, with a rate and leads_in_range known: the
 *                     leads left at that rate, to the second, never
 *                     negative; NULL otherwise
 *
 *   kind              export, sync, follow, verify, repair, retry (1.2)
 *   backlog, lag      a follower's changes waiting in gs_export_changes, and
 *                     the age of the oldest (a retry's or a repair's leads
 *                     not yet sent; 0 for other kinds and when none)
 *   deleted_leads     the leads a follower deleted at the remote
 *
 * The row is read without a lock, in the caller's snapshot.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_status(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid,
    OUT job_id uuid, OUT status text, OUT start_date date, OUT end_date date,
    OUT processing_date date, OUT last_completed_date date, OUT leads_in_range bigint,
    OUT total_leads bigint, OUT exported_leads bigint, OUT error_leads bigint,
    OUT percent numeric, OUT leads_per_second numeric, OUT eta interval,
    OUT pause_reason text, OUT ignored_fields text[], OUT created_at timestamptz,
    OUT started_at timestamptz, OUT completed_at timestamptz,
    OUT kind text, OUT backlog bigint, OUT lag interval, OUT deleted_leads bigint)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.gestao_scouter_export_jobs;
    stopped_at timestamptz;
    seconds numeric;
    rate numeric;
BEGIN
    IF p_job_id IS NULL THEN
        PERFORM @extschema@._gs_export_check_caller(p_caller);
        SELECT * INTO j
          FROM @extschema@.gestao_scouter_export_jobs t
         WHERE @extschema@.gs_export_job_visible_to(p_caller, p_uid, p_app_admin, t.owner_oid, t.created_by)
         ORDER BY t.created_at DESC NULLS LAST, t.id DESC
         LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'there is no export job'
                USING ERRCODE = 'undefined_object',
                      DETAIL = 'No export job that you may see exists.',
                      HINT = 'Start one with gs_export_create().';
        END IF;
    ELSE
        j := @extschema@._gs_export_see_job(p_caller, p_uid, p_app_admin, p_job_id);
    END IF;

    job_id := j.id;
    status := j.status;
    start_date := j.start_date;
    end_date := j.end_date;
    processing_date := j.processing_date;
    last_completed_date := j.last_completed_date;
    leads_in_range := j.leads_in_range;
    total_leads := j.total_leads;
    exported_leads := j.exported_leads;
    error_leads := j.error_leads;
    pause_reason := j.pause_reason;
    ignored_fields := j.ignored_fields;
    created_at := j.created_at;
    started_at := j.started_at;
    completed_at := j.completed_at;
    kind := j.kind;
    deleted_leads := j.deleted_leads;
    /* a follower's changes waiting, and the age of the oldest */
    SELECT COALESCE(pg_catalog.sum(pg_catalog.cardinality(c.ids) + CASE WHEN c.truncated THEN 1 ELSE 0 END), 0),
           COALESCE(pg_catalog.now() - pg_catalog.min(c.captured_at), interval '0')
      INTO backlog, lag
      FROM @extschema@.gs_export_changes c
     WHERE c.job_id = j.id;
    IF lag < interval '0' THEN
        lag := interval '0';
    END IF;

    percent := CASE
        WHEN j.status = 'completed' THEN 100.0
        WHEN j.leads_in_range IS NULL THEN 0.0
        WHEN j.leads_in_range <= 0 THEN CASE WHEN j.total_leads > 0 THEN 100.0 ELSE 0.0 END
        ELSE LEAST(100.0, pg_catalog.round(100.0 * j.total_leads / j.leads_in_range, 1))
    END;

    IF j.started_at IS NOT NULL THEN
        stopped_at := CASE j.status
                          WHEN 'completed' THEN COALESCE(j.completed_at, j.updated_at)
                          WHEN 'paused' THEN COALESCE(j.paused_at, j.updated_at)
                          ELSE j.updated_at
                      END;
        seconds := EXTRACT(epoch FROM stopped_at - j.started_at);
        IF seconds > 0 THEN
            rate := j.total_leads / seconds;
        END IF;
        IF j.status = 'running' AND j.recent_leads_per_second IS NOT NULL THEN
            rate := j.recent_leads_per_second;
        END IF;
    END IF;
    leads_per_second := pg_catalog.round(rate, 2);

    IF j.status = 'running' AND rate > 0 AND j.leads_in_range IS NOT NULL THEN
        eta := pg_catalog.make_interval(secs => pg_catalog.round(
                   GREATEST(j.leads_in_range - j.total_leads, 0) / rate)::double precision);
    END IF;
END;
$$;
