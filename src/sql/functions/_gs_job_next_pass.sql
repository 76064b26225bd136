/*
 * The pass being walked has no more leads.  Start the next one, or
 * complete the job.  Catch-up passes go on while they find leads, ten at
 * the most; then the rest of the range, if it reaches past the last
 * horizon; then the job is completed: last_completed_date becomes the
 * oldest day walked (end_date, or without one the day of the oldest lead).
 * A follower's backfill ends in its pass 'follow', which never ends.  A
 * retry or a repair (a set job) completes when its queue is empty: its
 * worker ends its only pass when it takes nothing more; a verify when
 * both sides are walked.
 * Outcomes: 'walk' (a new pass: the other columns say where), 'completed'
 * (with the counts, for the log), 'stopped' (the job is no longer running).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_next_pass(p_job_id uuid,
    OUT outcome text, OUT pass_kind text, OUT pass_number integer,
    OUT pass_lower timestamptz, OUT cursor_updated_at timestamptz, OUT cursor_id bigint,
    OUT kept_changing boolean,
    OUT total_leads bigint, OUT exported_leads bigint, OUT error_leads bigint, OUT seconds numeric)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    max_catchup_passes constant integer := 10;
    j @extschema@.gestao_scouter_export_jobs;
    tz text;
    range_top timestamptz;
    range_bottom timestamptz;
    found_leads boolean;
    horizon timestamptz;
BEGIN
    SELECT * INTO j FROM @extschema@.gestao_scouter_export_jobs WHERE id = p_job_id FOR UPDATE;
    IF NOT FOUND OR j.status <> 'running' THEN
        outcome := 'stopped';
        RETURN;
    END IF;
    IF j.kind = 'follow' THEN
        /* a follower's backfill is over: it follows the changes, for ever */
        UPDATE @extschema@.gestao_scouter_export_jobs AS t
           SET pass_kind = 'follow', updated_at = pg_catalog.now()
         WHERE t.id = p_job_id;
        outcome := 'walk';
        pass_kind := 'follow';
        pass_number := 0;
        pass_lower := '-infinity';
        cursor_updated_at := 'infinity';
        cursor_id := j.cursor_id;
        RETURN;
    END IF;
    IF j.kind IN ('retry', 'repair') THEN
        DELETE FROM @extschema@.gs_export_changes c WHERE c.job_id = p_job_id;
    END IF;
    tz := COALESCE(j.time_zone, pg_catalog.current_setting('TimeZone'));
    SELECT r.range_bottom, r.range_top INTO range_bottom, range_top
      FROM @extschema@._gs_job_range(j.start_date, j.end_date, tz) r;
    /* The cursor starts at the window's top and moves down as leads are done. */
    found_leads := j.cursor_updated_at < j.pass_upper;
    kept_changing := false;

    /* a retry, a repair or a verify has one pass: completed (the last branch) */
    IF j.kind NOT IN ('retry', 'repair', 'verify')
       AND (j.pass_kind = 'range' OR (j.pass_kind = 'catchup' AND found_leads
                                      AND j.catchup_pass < max_catchup_passes)) THEN
        horizon := @extschema@._gs_changes_horizon();
        j.pass_kind := 'catchup';
        j.catchup_pass := j.catchup_pass + 1;
        j.pass_lower := j.changes_since;
        j.pass_upper := GREATEST(horizon, j.changes_since);
        j.catchup_lower := j.changes_since;
        j.changes_since := j.pass_upper;
    ELSIF j.kind NOT IN ('retry', 'repair', 'verify') AND j.pass_kind = 'catchup' AND GREATEST(j.changes_since, range_bottom) < range_top THEN
        kept_changing := found_leads;
        j.pass_kind := 'rest';
        j.pass_lower := GREATEST(j.changes_since, range_bottom);
        j.pass_upper := range_top;
    ELSE
        kept_changing := (j.pass_kind = 'catchup' AND found_leads);
        UPDATE @extschema@.gestao_scouter_export_jobs AS t
           SET status = 'completed', completed_at = pg_catalog.now(),
               last_completed_date = COALESCE(t.end_date, t.processing_date, t.start_date),
               processing_date = COALESCE(t.end_date, t.processing_date, t.start_date),
               updated_at = pg_catalog.now()
         WHERE t.id = p_job_id
        RETURNING t.total_leads, t.exported_leads, t.error_leads,
                  pg_catalog.round(EXTRACT(epoch FROM t.completed_at - t.started_at), 1)
             INTO total_leads, exported_leads, error_leads, seconds;
        outcome := 'completed';
        RETURN;
    END IF;

    UPDATE @extschema@.gestao_scouter_export_jobs AS t
       SET pass_kind = j.pass_kind, catchup_pass = j.catchup_pass,
           pass_lower = j.pass_lower, pass_upper = j.pass_upper,
           catchup_lower = j.catchup_lower, changes_since = j.changes_since,
           cursor_updated_at = j.pass_upper, cursor_id = -9223372036854775808,
           updated_at = pg_catalog.now()
     WHERE t.id = p_job_id;
    outcome := 'walk';
    pass_kind := j.pass_kind;
    pass_number := j.catchup_pass;
    pass_lower := j.pass_lower;
    cursor_updated_at := j.pass_upper;
    cursor_id := -9223372036854775808;
END;
$$;
