/*
 * Claim a job for the calling worker.  The claim is a session advisory lock
 * on the job id: a second worker for the same job, however it came to be
 * started, gets outcome 'busy' and goes away.  Outcomes: 'run' (the job is
 * running, and the other columns say how), 'busy', 'wait' (a follower
 * whose remote table a repair or a retry sends to: reason says which; the
 * launcher starts it again later), 'not_runnable' (it is
 * no longer pending or running, or gone), 'failed' (it cannot run: marked
 * failed, with the reason).  secret_keys: the config's keys (anon_key,
 * service_role_key_encrypted), which the worker keeps out of every text
 * it stores, logs or sends (src/scrub.c).  doubt_until: the latest
 * quarantine of a request given up on, of any job, not over yet (NULL if
 * none): the worker sends nothing before (_gs_job_doubt).  kind: the
 * job's; on_delete: a follower's, a retry's or a repair's; compare: a
 * verify's ("version" or "content").
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_claim(p_job_id uuid,
    OUT outcome text, OUT reason text,
    OUT batch_size integer, OUT delay_ms integer, OUT time_zone text,
    OUT max_in_flight integer, OUT pace text, OUT batch_size_max integer,
    OUT owner_oid oid, OUT owner_claims text,
    OUT pass_kind text, OUT pass_lower timestamptz,
    OUT cursor_updated_at timestamptz, OUT cursor_id bigint,
    OUT ignored_fields text[], OUT project_url text, OUT api_key text,
    OUT target_table text, OUT remote_columns text[], OUT lead_columns text[],
    OUT synced_at_column text, OUT source_column text, OUT source_value text,
    OUT count_from timestamptz, OUT count_to timestamptz,
    OUT filter_columns text[], OUT filter_types text[], OUT filter_values text[],
    OUT changed_since timestamptz, OUT secret_keys text[], OUT doubt_until timestamptz,
    OUT kind text, OUT on_delete text, OUT compare text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.gestao_scouter_export_jobs;
    range_top timestamptz;
    range_bottom timestamptz;
    cfg record;
    late_ms integer := COALESCE((SELECT s.setting::integer FROM pg_catalog.pg_settings s
                                  WHERE s.name = 'gs_export.late_request_ms'), 0);
BEGIN
    IF NOT pg_catalog.pg_try_advisory_lock(@extschema@._gs_export_limit('job_lock_key')::integer,
                                             pg_catalog.hashtext(p_job_id::text)) THEN
        outcome := 'busy';
        RETURN;
    END IF;
    SELECT * INTO j FROM @extschema@.gestao_scouter_export_jobs WHERE id = p_job_id FOR UPDATE;
    IF NOT FOUND OR j.status NOT IN ('pending', 'running') THEN
        outcome := 'not_runnable';
        RETURN;
    END IF;
    /*
     * A follower created while a repair or a retry sends to its remote
     * table waits for it to end: the two side by side could put an older
     * version of a lead after a newer one.  (Its capture goes on.)
     */
    IF j.kind = 'follow' THEN
        SELECT pg_catalog.format('waits for %s job %s, which sends to the same remote table', o.kind, o.id)
          INTO reason
          FROM @extschema@.gestao_scouter_export_jobs o
         WHERE o.kind IN ('repair', 'retry') AND o.status IN ('pending', 'running')
           AND (o.effective_options ->> 'target_table') = (j.effective_options ->> 'target_table')
         LIMIT 1;
        IF reason IS NOT NULL THEN
            outcome := 'wait';
            RETURN;
        END IF;
    END IF;

    batch_size := COALESCE(j.batch_size, pg_catalog.current_setting('gs_export.batch_size')::integer);
    delay_ms := COALESCE(j.delay_ms, (SELECT s.setting::integer FROM pg_catalog.pg_settings s
                                       WHERE s.name = 'gs_export.batch_delay_ms'));
    time_zone := COALESCE(j.time_zone, pg_catalog.current_setting('TimeZone'));
    /* the pace (a 1.0 job has none: one batch of batch_size at a time) */
    max_in_flight := COALESCE((j.effective_options ->> 'max_in_flight')::integer, 1);
    pace := COALESCE(j.effective_options ->> 'pace', 'fixed');
    batch_size_max := GREATEST(COALESCE((j.effective_options ->> 'batch_size_max')::integer,
                                        @extschema@._gs_export_limit('batch_size_max.default')::integer),
                               batch_size);
    /*
     * The owner, by identity (a role of the same name created after the
     * owner was dropped is somebody else).  A job with no owner at all
     * (TabuladorMax's own rows from before gs_export) runs as the
     * extension's owner.
     */
    IF j.owner_oid IS NOT NULL THEN
        owner_oid := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.oid = j.owner_oid);
    ELSIF j.owner_role IS NULL THEN
        owner_oid := (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'gs_export');
    ELSE
        owner_oid := NULL;
    END IF;
    IF j.created_by IS NOT NULL THEN
        owner_claims := pg_catalog.jsonb_build_object('sub', j.created_by, 'role', j.owner_role)::text;
    END IF;
    ignored_fields := j.ignored_fields;

    SELECT c.project_url, c.anon_key, c.service_role_key_encrypted INTO cfg
      FROM @extschema@.gestao_scouter_config c
     WHERE c.active AND c.sync_enabled
     ORDER BY c.updated_at DESC NULLS LAST
     LIMIT 1;
    IF owner_oid IS NULL THEN
        reason := pg_catalog.format('the job''s owner role %s does not exist (it was dropped)',
                                    pg_catalog.quote_ident(COALESCE(j.owner_role, j.owner_oid::text)));
    ELSIF NOT FOUND THEN
        reason := 'no active gestao_scouter_config row (active and sync_enabled)';
    ELSIF cfg.project_url IS NULL OR cfg.anon_key IS NULL THEN
        reason := 'gestao_scouter_config has no project_url or no anon_key';
    ELSIF cfg.anon_key ~ '[[:cntrl:]]' THEN
        reason := 'gestao_scouter_config.anon_key contains control characters';
    ELSIF pg_catalog.to_regclass('@extschema@.leads') IS NULL THEN
        reason := 'table @extschema@.leads does not exist';
    END IF;
    IF reason IS NOT NULL THEN
        PERFORM @extschema@._gs_job_stop(p_job_id, 'failed', reason);
        outcome := 'failed';
        RETURN;
    END IF;
    project_url := cfg.project_url;
    api_key := cfg.anon_key;
    secret_keys := pg_catalog.array_remove(ARRAY[cfg.anon_key, cfg.service_role_key_encrypted], NULL);
    SELECT m.target_table, m.remote_columns, m.lead_columns,
           m.synced_at_column, m.source_column, m.source_value
      INTO target_table, remote_columns, lead_columns,
           synced_at_column, source_column, source_value
      FROM @extschema@._gs_job_mapping(COALESCE(j.effective_options, j.options)) m;
    SELECT f.filter_columns, f.filter_types, f.filter_values, f.changed_since
      INTO filter_columns, filter_types, filter_values, changed_since
      FROM @extschema@._gs_job_filter(COALESCE(j.effective_options, j.options)) f;

    kind := j.kind;
    IF j.kind IN ('follow', 'retry', 'repair') THEN
        /*
         * A follower: its backfill walks the leads by id from cursor_id,
         * then it follows the changes captured; no day range, no window.
         * A retry or a repair (a set job, _gs_export_set_job) takes the
         * follower's path over the leads of its queue.
         */
        on_delete := COALESCE(j.effective_options -> 'on_delete', '"delete"')::text;
        IF on_delete IN ('"delete"', '"ignore"') THEN
            on_delete := on_delete::jsonb #>> '{}';
        END IF;
        j.cursor_id := COALESCE(j.cursor_id, -9223372036854775808);
        j.changes_since := '-infinity';
        j.pass_lower := '-infinity';
        j.pass_upper := 'infinity';
        j.cursor_updated_at := 'infinity';
    ELSIF j.kind = 'verify' THEN
        /*
         * A verify walks the ids from cursor_id; the leads it compares are
         * those of its days [pass_lower, pass_upper) (from changed_since),
         * returned as pass_lower and cursor_updated_at; without days or
         * changed_since, every lead of the filter, updated_at NULL too
         * ('-infinity', 'infinity').
         */
        compare := COALESCE(j.effective_options ->> 'compare', 'version');
        j.cursor_id := COALESCE(j.cursor_id, -9223372036854775808);
        IF j.effective_options ? 'start_date' THEN
            SELECT r.range_bottom, r.range_top INTO range_bottom, range_top
              FROM @extschema@._gs_job_range(j.start_date, j.end_date, time_zone) r;
        ELSE
            range_bottom := '-infinity';
            range_top := 'infinity';
        END IF;
        j.pass_lower := GREATEST(range_bottom, COALESCE((j.effective_options ->> 'changed_since')::timestamptz,
                                                        '-infinity'));
        j.pass_upper := range_top;
        j.cursor_updated_at := range_top;
    ELSE
        /* The first claim (of a 1.0 job too) sets the walk's first window. */
        j.changes_since := COALESCE(j.changes_since, @extschema@._gs_changes_horizon());
        SELECT r.range_bottom, r.range_top INTO range_bottom, range_top
          FROM @extschema@._gs_job_range(j.start_date, j.end_date, time_zone) r;
        IF j.leads_in_range IS NULL THEN
            /* the worker counts them, as the owner reads them */
            count_from := range_bottom;
            count_to := range_top;
        END IF;
        IF j.pass_lower IS NULL THEN
            IF j.pass_kind = 'range' THEN
                j.pass_lower := range_bottom;
                j.pass_upper := LEAST(range_top, j.changes_since);
            ELSE
                j.pass_lower := j.catchup_lower;
                j.pass_upper := j.changes_since;
            END IF;
        END IF;
        /* A 1.0 cursor may stand above the window: start at its top. */
        IF j.cursor_updated_at IS NULL OR j.cursor_updated_at > j.pass_upper
           OR j.cursor_updated_at = j.pass_upper THEN
            j.cursor_updated_at := j.pass_upper;
            j.cursor_id := -9223372036854775808;
        END IF;
    END IF;

    UPDATE @extschema@.gestao_scouter_export_jobs AS t
       SET status = 'running',
           started_at = COALESCE(t.started_at, pg_catalog.now()),
           changes_since = j.changes_since,
           pass_lower = j.pass_lower, pass_upper = j.pass_upper,
           cursor_updated_at = j.cursor_updated_at, cursor_id = j.cursor_id,
           updated_at = pg_catalog.now(),
           /*
            * A worker before this one that did not leave in order may have
            * left requests at the remote: in doubt, as one given up on.
            */
           doubt_until = CASE
               WHEN t.worker_since IS NOT NULL AND late_ms > 0
               THEN GREATEST(t.doubt_until, pg_catalog.now() + late_ms * interval '1 millisecond')
               ELSE t.doubt_until END,
           worker_since = pg_catalog.now()
     WHERE t.id = p_job_id;

    /*
     * Any job's: a request another job gave up on (one failed or paused
     * meanwhile, or reset into this one) may hold the same leads.
     */
    doubt_until := (SELECT pg_catalog.max(d.doubt_until)
                      FROM @extschema@.gestao_scouter_export_jobs d
                     WHERE d.doubt_until > pg_catalog.now());

    outcome := 'run';
    pass_kind := j.pass_kind;
    pass_lower := j.pass_lower;
    cursor_updated_at := j.cursor_updated_at;
    cursor_id := j.cursor_id;
END;
$$;
