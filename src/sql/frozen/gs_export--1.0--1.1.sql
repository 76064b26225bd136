/*
 * gs_export--1.0--1.1.sql: from 1.0 to 1.1.  A fresh CREATE EXTENSION runs
 * gs_export--1.0.sql and then this file, so that a fresh install and an
 * upgraded one are made by the same statements.  Every change to the SQL
 * from 1.0 on goes here (and later versions ship their own script).
 *
 * Sections:
 *   1. Jobs table: what the 1.1 state machine keeps.
 *   2. One active job, kept by a unique index.
 *   3. The job's state machine, as the workers drive it.
 *   4. The SQL API's internal functions.
 *   5. Row level security.
 *   6. Privileges.
 *   7. Live updates: NOTIFY gs_export, Supabase Realtime.
 */

\echo Use "ALTER EXTENSION gs_export UPDATE TO '1.1'" to load this file. \quit

/*
 * Lock order.  A job worker records a batch in one transaction that writes
 * sync_events, then gestao_scouter_export_errors, then the job's row; this
 * script changes all three tables (an index, policies) and may run while a
 * job does.  Taking them first, at once, in the worker's order, keeps the
 * two from deadlocking (a deadlock would fail the job): nothing before this
 * statement may lock those tables.
 */
LOCK TABLE @extschema@.sync_events, @extschema@.gestao_scouter_export_errors,
           @extschema@.gestao_scouter_export_jobs IN ACCESS EXCLUSIVE MODE;

/* ---- 1. Jobs table ----------------------------------------------------- */

/*
 * A job walks its leads in passes, each over a window [pass_lower,
 * pass_upper) of updated_at, newest first, by the key (updated_at, id):
 *   range    the job's days, up to the instant the job started
 *            (changes_since at the start);
 *   catchup  the leads changed during the previous pass:
 *            [its horizon, the horizon now);
 *   rest     once the catch-up passes are over, the part of the range
 *            after the last horizon (leads dated later today, or in the
 *            future when the range reaches there).
 * 1.0 jobs (running ones included) get their window when next claimed.
 *
 * effective_options: the options the job runs with (the job's own, over the
 * config's default_options, over the settings), complete, so that a resume
 * or a reset sends the same fields to the same table; options keeps what
 * the caller passed, as in 1.0.  leads_in_range: the leads of the job's
 * range, counted (as the job's owner
 * reads them) when the job starts; recent_leads_per_second: the rate of the
 * last batches, for a progress display.
 */
ALTER TABLE @extschema@.gestao_scouter_export_jobs
    ADD COLUMN IF NOT EXISTS effective_options jsonb,
    ADD COLUMN IF NOT EXISTS leads_in_range bigint,
    ADD COLUMN IF NOT EXISTS recent_leads_per_second numeric,
    ADD COLUMN IF NOT EXISTS pass_kind text NOT NULL DEFAULT 'range',
    ADD COLUMN IF NOT EXISTS pass_lower timestamptz,
    ADD COLUMN IF NOT EXISTS pass_upper timestamptz;

UPDATE @extschema@.gestao_scouter_export_jobs
   SET pass_kind = 'catchup'
 WHERE catchup_pass > 0 AND pass_kind = 'range';

DO $pass_kind$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                   WHERE conrelid = '@extschema@.gestao_scouter_export_jobs'::pg_catalog.regclass
                     AND conname = 'gestao_scouter_export_jobs_pass_kind') THEN
        ALTER TABLE @extschema@.gestao_scouter_export_jobs
            ADD CONSTRAINT gestao_scouter_export_jobs_pass_kind
            CHECK (pass_kind IN ('range', 'catchup', 'rest'));
    END IF;
END
$pass_kind$;

/*
 * The config row gains target_table (the remote table of new jobs) and
 * default_options (option defaults for new jobs, checked like options when
 * written).
 */
ALTER TABLE @extschema@.gestao_scouter_config
    ADD COLUMN IF NOT EXISTS target_table text,
    ADD COLUMN IF NOT EXISTS default_options jsonb NOT NULL DEFAULT '{}';

/*
 * alert_url: where a job's worker POSTs a small JSON document when the job
 * completes, fails, or is paused by the remote's trouble (src/alert.c).
 * NULL, the default: no alerts.  Checked by gs_export_config_guard
 * (section 4).
 */
ALTER TABLE @extschema@.gestao_scouter_config
    ADD COLUMN IF NOT EXISTS alert_url text;

/*
 * Incremental export (gs_export_sync, section 4).  A sync job is a job like
 * any other, marked is_sync, whose synced_through is the instant from which
 * the next sync starts: the changes horizon (_gs_changes_horizon) when it
 * was created, so that a lead changed while it runs, even by a transaction
 * open when it was created (whose leads' updated_at is that transaction's
 * start), is taken by the next one.  The index finds the completed syncs
 * newer than a mark.  Like the one-active-job index, it belongs to the jobs
 * table and stays with TabuladorMax's own table after DROP EXTENSION.
 */
ALTER TABLE @extschema@.gestao_scouter_export_jobs
    ADD COLUMN IF NOT EXISTS is_sync boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS synced_through timestamptz;

DO $sync_index$
BEGIN
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs_synced_idx') IS NULL THEN
        CREATE INDEX gestao_scouter_export_jobs_synced_idx
            ON @extschema@.gestao_scouter_export_jobs (synced_through)
            WHERE is_sync AND status = 'completed';
    END IF;
END
$sync_index$;

/*
 * The high-water marks of the syncs, one per scope (the owner and what is
 * sent: _gs_sync_scope): the greatest synced_through of the completed sync
 * jobs of that scope, as gs_export_sync last found it.  Kept here, not only
 * on the job rows, so that the mark only moves forward: deleting or
 * resetting a completed sync job does not take it back (and make the next
 * sync send again everything since an older mark).  Internal: read and
 * written by gs_export_sync as the extension's owner; pg_dump dumps its
 * rows.
 */
CREATE TABLE @extschema@.gs_export_sync_marks (
    scope           jsonb NOT NULL,
    synced_through  timestamptz NOT NULL,
    job_id          uuid,
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- by a hash: a scope (a long field list, a filter) may outgrow a btree entry
CREATE UNIQUE INDEX gs_export_sync_marks_scope
    ON @extschema@.gs_export_sync_marks (pg_catalog.md5(scope::text));
SELECT pg_catalog.pg_extension_config_dump('@extschema@.gs_export_sync_marks', '');

/* ---- 2. One active job -------------------------------------------------- */


/*
 * At most one job is pending, running or paused, kept by a unique index
 * over a constant on those rows: the database holds to it at every
 * isolation level and whoever writes the row.  (1.0 only checked, under a
 * table lock; but a REPEATABLE READ or SERIALIZABLE transaction checked in
 * a snapshot taken before it got the lock, so two such sessions could each
 * create a job, and two workers ran.)  The API functions still take the
 * lock and look first, so as to name the job in the way (section 4).
 *
 * Rows already there may break the rule: TabuladorMax's original Edge
 * Function left jobs 'running' for ever, and 1.0 itself let two sessions
 * get a job each.  The index is created all the same, and what was there
 * is settled as a user would want it settled by hand, losing nothing:
 *   - the newest active job (by created_at) is kept as it is: it is the one
 *     most likely to be wanted, and old jobs left 'running' by the Edge
 *     Function are the oldest;
 *   - every other active job becomes 'failed', with a pause_reason that
 *     says why.  Not deleted, not completed: its rows, counters and
 *     position stay, nothing claims it is done, and gs_export_resume takes
 *     it on from where it stopped once the kept job has ended.  A worker
 *     still running one of them stops at its next batch boundary, as after
 *     a pause;
 *   - a WARNING names them, and the job kept.
 * The index belongs to the jobs table: when that table is TabuladorMax's
 * own, it stays after DROP EXTENSION, like 1.0's indexes and policies, and
 * CREATE EXTENSION finds it there.
 */
DO $one_active$
DECLARE
    keep record;
    stopped text;
    n bigint;
BEGIN
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs_one_active') IS NOT NULL THEN
        RETURN;
    END IF;

    SELECT j.id, j.status INTO keep
      FROM @extschema@.gestao_scouter_export_jobs j
     WHERE j.status IN ('pending', 'running', 'paused')
     ORDER BY j.created_at DESC NULLS LAST, j.id DESC
     LIMIT 1;
    IF FOUND THEN
        WITH others AS (
            SELECT j.id, j.status
              FROM @extschema@.gestao_scouter_export_jobs j
             WHERE j.status IN ('pending', 'running', 'paused')
               AND j.id <> keep.id
        ), failed AS (
            UPDATE @extschema@.gestao_scouter_export_jobs j
               SET status = 'failed',
                   pause_reason = pg_catalog.format(
                       'was %s when gs_export 1.1 was installed, which allows one active job at a time; job %s, the newest, was kept. Resume this one with gs_export_resume() once that job has ended.',
                       o.status, keep.id),
                   updated_at = pg_catalog.now()
              FROM others o
             WHERE j.id = o.id
            RETURNING j.id, o.status
        )
        SELECT pg_catalog.count(*),
               pg_catalog.string_agg(pg_catalog.format('%s (was %s)', f.id, f.status), ', ' ORDER BY f.id)
          INTO n, stopped
          FROM failed f;
        IF n > 0 THEN
            RAISE WARNING 'stopped % of % active export jobs: only one may be active at a time', n, n + 1
                USING DETAIL = pg_catalog.format('Job %s, the newest, stays %s.  Now failed, with the reason in pause_reason: %s.',
                                                 keep.id, keep.status, stopped),
                      HINT = 'Once that job has ended, resume the others one at a time with gs_export_resume(); each goes on from where it stopped.';
        END IF;
    END IF;

    CREATE UNIQUE INDEX gestao_scouter_export_jobs_one_active
        ON @extschema@.gestao_scouter_export_jobs ((true))
        WHERE status IN ('pending', 'running', 'paused');
END
$one_active$;

/* ---- 3. The job's state machine ---------------------------------------- */

/*
 * Everything a job worker does to the job's rows goes through the
 * functions of this section, one call per step, each in its own short
 * transaction of the worker:
 *
 *   _gs_job_claim         pending|running → running: take the job, say how
 *                         to run it (or fail it: no owner, no config)
 *   _gs_job_record        one batch's outcome: events, errors, counters,
 *                         position (and still running?)
 *   _gs_job_next_pass     a pass is walked: start the next one, or
 *                         running → completed
 *   _gs_job_stop          running → paused (the remote's trouble, a
 *                         cancel), or → failed (an error)
 *   _gs_job_ignore_column the remote lacks a column
 *   _gs_job_set_leads_in_range  the leads of the range, counted at start
 *   _gs_job_is_running    should the worker go on?
 *   _gs_runnable_jobs     the launcher: jobs that want a worker
 *
 * The user's side (create, pause, resume) is in section 4.  These run as
 * the worker's role (a superuser), are called only by the worker and the
 * launcher, and are revoked from everybody else (section 6).
 */

/*
 * The first instant whose local date, in the time zone, is p_day.  Usually
 * local midnight; where midnight happens twice (a clock set back at 01:00)
 * the first one, and where it is skipped the first instant after the gap.
 * Offsets change by at most a few hours, so the start lies within six hours
 * of "p_day 00:00" read in the zone.
 */
CREATE FUNCTION @extschema@._gs_day_start(p_day date, p_time_zone text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t timestamptz := p_day::timestamp AT TIME ZONE p_time_zone;
    lo timestamptz;
    hi timestamptz;
    mid timestamptz;
BEGIN
    IF (t AT TIME ZONE p_time_zone)::date = p_day
       AND ((t - interval '1 microsecond') AT TIME ZONE p_time_zone)::date < p_day THEN
        RETURN t;
    END IF;
    lo := t - interval '6 hours';
    hi := t + interval '6 hours';
    WHILE hi - lo > interval '1 microsecond' LOOP
        mid := lo + (hi - lo) / 2;
        IF (mid AT TIME ZONE p_time_zone)::date >= p_day THEN
            hi := mid;
        ELSE
            lo := mid;
        END IF;
    END LOOP;
    RETURN hi;
EXCEPTION WHEN datetime_field_overflow THEN
    -- at the very ends of the timestamp range (4714 BC, 294276 AD): no
    -- offset change happens there
    RETURN t;
END;
$$;

/*
 * The instants a job's days span: [bottom, top), top being the start of
 * the day after start_date, bottom the start of end_date ('-infinity'
 * without one: down to the oldest lead).
 */
CREATE FUNCTION @extschema@._gs_job_range(p_start_date date, p_end_date date, p_time_zone text,
                                          OUT range_bottom timestamptz, OUT range_top timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_end_date IS NULL THEN '-infinity'::timestamptz
                ELSE @extschema@._gs_day_start(p_end_date, p_time_zone) END,
           @extschema@._gs_day_start(p_start_date + 1, p_time_zone)
$$;

/*
 * The instant from which a lead may have been changed after we looked: now,
 * or the start of the oldest transaction still open in this database, since
 * a lead it changes gets that start as its updated_at (default now()) but
 * becomes visible only when it commits.
 */
CREATE FUNCTION @extschema@._gs_changes_horizon()
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT LEAST(pg_catalog.now(), pg_catalog.min(a.xact_start))
      FROM pg_catalog.pg_stat_activity a
     WHERE a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
$$;

/*
 * The lead columns the default mapping sends, each under its own name:
 * every column of the remote's fichas (reference-schema.md) that leads also
 * has.  (last_sync_at and sync_source are set by gs_export itself,
 * sync_status is the remote's.)
 */
CREATE FUNCTION @extschema@._gs_export_default_fields()
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum)
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = pg_catalog.to_regclass('@extschema@.leads')
       AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname::text = ANY (ARRAY[
           'id', 'name', 'responsible', 'age', 'address', 'scouter', 'photo_url',
           'date_modify', 'raw', 'updated_at', 'bitrix_telemarketing_id',
           'commercial_project_id', 'responsible_user_id', 'celular',
           'telefone_trabalho', 'telefone_casa', 'etapa', 'fonte', 'criado',
           'nome_modelo', 'local_abordagem', 'ficha_confirmada',
           'data_criacao_ficha', 'data_confirmacao_ficha', 'presenca_confirmada',
           'compareceu', 'valor_ficha', 'data_criacao_agendamento',
           'horario_agendamento', 'data_agendamento', 'gerenciamento_funil',
           'status_fluxo', 'etapa_funil', 'etapa_fluxo', 'funil_fichas',
           'status_tabulacao', 'maxsystem_id_ficha', 'gestao_scouter',
           'op_telemarketing', 'data_retorno_ligacao', 'cadastro_existe_foto'])
$$;

/*
 * What a job sends, from its (effective) options: the remote table, each
 * remote column with the lead column it gets, and the two columns gs_export
 * fills itself.  Jobs of 1.0 have none of these keys: the defaults.
 */
CREATE FUNCTION @extschema@._gs_job_mapping(p_options jsonb,
    OUT target_table text, OUT remote_columns text[], OUT lead_columns text[],
    OUT synced_at_column text, OUT source_column text, OUT source_value text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o jsonb := COALESCE(p_options, '{}');
BEGIN
    target_table := COALESCE(o ->> 'target_table', 'fichas');
    IF pg_catalog.jsonb_typeof(o -> 'field_mappings') = 'object' THEN
        SELECT pg_catalog.array_agg(m.key ORDER BY m.key), pg_catalog.array_agg(m.value ORDER BY m.key)
          INTO remote_columns, lead_columns
          FROM pg_catalog.jsonb_each_text(o -> 'field_mappings') m;
    ELSIF pg_catalog.jsonb_typeof(o -> 'fields') = 'array' THEN
        SELECT pg_catalog.array_agg(f.value ORDER BY f.ordinality)
          INTO lead_columns
          FROM pg_catalog.jsonb_array_elements_text(o -> 'fields') WITH ORDINALITY f;
        remote_columns := lead_columns;
    ELSE
        lead_columns := @extschema@._gs_export_default_fields();
        remote_columns := lead_columns;
    END IF;
    IF NOT ('id' = ANY (remote_columns)) THEN
        remote_columns := 'id'::text || remote_columns;
        lead_columns := 'id'::text || lead_columns;
    END IF;
    synced_at_column := CASE WHEN o ? 'synced_at_column' THEN o ->> 'synced_at_column'
                             ELSE 'last_sync_at' END;
    source_column := CASE WHEN o ? 'source_column' THEN o ->> 'source_column'
                          ELSE 'sync_source' END;
    source_value := COALESCE(o ->> 'source_value', 'tabuladormax');
END;
$$;

/*
 * Which leads a job reads besides its days: the option "filter" as
 * (column, its type, its values as a text[] literal), every column ANDed,
 * and "changed_since" ('-infinity' when not given).
 */
CREATE FUNCTION @extschema@._gs_job_filter(p_options jsonb,
    OUT filter_columns text[], OUT filter_types text[], OUT filter_values text[],
    OUT changed_since timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- a column gone from leads since has a NULL type: the worker stops
    SELECT pg_catalog.array_agg(f.key ORDER BY f.key) FILTER (WHERE f.key IS NOT NULL),
           pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY f.key)
               FILTER (WHERE f.key IS NOT NULL),
           pg_catalog.array_agg(@extschema@._gs_export_filter_values(f.value)::text ORDER BY f.key)
               FILTER (WHERE f.key IS NOT NULL),
           COALESCE((p_options ->> 'changed_since')::timestamptz, '-infinity')
      FROM (SELECT 1) one
      LEFT JOIN pg_catalog.jsonb_each(CASE WHEN pg_catalog.jsonb_typeof(p_options -> 'filter') = 'object'
                                           THEN p_options -> 'filter' END) f ON true
      LEFT JOIN pg_catalog.pg_attribute a
             ON a.attrelid = pg_catalog.to_regclass('@extschema@.leads') AND a.attname = f.key
            AND a.attnum > 0 AND NOT a.attisdropped
$$;

/*
 * Claim a job for the calling worker.  The claim is a session advisory lock
 * on the job id: a second worker for the same job, however it came to be
 * started, gets outcome 'busy' and goes away.  Outcomes: 'run' (the job is
 * running, and the other columns say how), 'busy', 'not_runnable' (it is
 * no longer pending or running, or gone), 'failed' (it cannot run: marked
 * failed, with the reason).
 */
CREATE FUNCTION @extschema@._gs_job_claim(p_job_id uuid,
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
    OUT changed_since timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.gestao_scouter_export_jobs;
    range_top timestamptz;
    range_bottom timestamptz;
    cfg record;
BEGIN
    IF NOT pg_catalog.pg_try_advisory_lock(1735617912, pg_catalog.hashtext(p_job_id::text)) THEN
        outcome := 'busy';
        RETURN;
    END IF;
    SELECT * INTO j FROM @extschema@.gestao_scouter_export_jobs WHERE id = p_job_id FOR UPDATE;
    IF NOT FOUND OR j.status NOT IN ('pending', 'running') THEN
        outcome := 'not_runnable';
        RETURN;
    END IF;

    batch_size := COALESCE(j.batch_size, pg_catalog.current_setting('gs_export.batch_size')::integer);
    delay_ms := COALESCE(j.delay_ms, (SELECT s.setting::integer FROM pg_catalog.pg_settings s
                                       WHERE s.name = 'gs_export.batch_delay_ms'));
    time_zone := COALESCE(j.time_zone, pg_catalog.current_setting('TimeZone'));
    /* the pace (a 1.0 job has none: one batch of batch_size at a time) */
    max_in_flight := COALESCE((j.effective_options ->> 'max_in_flight')::integer, 1);
    pace := COALESCE(j.effective_options ->> 'pace', 'fixed');
    batch_size_max := GREATEST(COALESCE((j.effective_options ->> 'batch_size_max')::integer, 5000),
                               batch_size);
    owner_oid := pg_catalog.to_regrole(pg_catalog.quote_ident(
                     COALESCE(j.owner_role, (SELECT r.rolname FROM pg_catalog.pg_extension e
                                               JOIN pg_catalog.pg_roles r ON r.oid = e.extowner
                                              WHERE e.extname = 'gs_export'))));
    IF j.created_by IS NOT NULL THEN
        owner_claims := pg_catalog.jsonb_build_object('sub', j.created_by, 'role', j.owner_role)::text;
    END IF;
    ignored_fields := j.ignored_fields;

    SELECT c.project_url, c.anon_key INTO cfg
      FROM @extschema@.gestao_scouter_config c
     WHERE c.active AND c.sync_enabled
     ORDER BY c.updated_at DESC NULLS LAST
     LIMIT 1;
    IF owner_oid IS NULL THEN
        reason := pg_catalog.format('the job''s owner role %s does not exist', pg_catalog.quote_ident(j.owner_role));
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
    SELECT m.target_table, m.remote_columns, m.lead_columns,
           m.synced_at_column, m.source_column, m.source_value
      INTO target_table, remote_columns, lead_columns,
           synced_at_column, source_column, source_value
      FROM @extschema@._gs_job_mapping(COALESCE(j.effective_options, j.options)) m;
    SELECT f.filter_columns, f.filter_types, f.filter_values, f.changed_since
      INTO filter_columns, filter_types, filter_values, changed_since
      FROM @extschema@._gs_job_filter(COALESCE(j.effective_options, j.options)) f;

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

    UPDATE @extschema@.gestao_scouter_export_jobs AS t
       SET status = 'running',
           started_at = COALESCE(t.started_at, pg_catalog.now()),
           changes_since = j.changes_since,
           pass_lower = j.pass_lower, pass_upper = j.pass_upper,
           cursor_updated_at = j.cursor_updated_at, cursor_id = j.cursor_id,
           updated_at = pg_catalog.now()
     WHERE t.id = p_job_id;

    outcome := 'run';
    pass_kind := j.pass_kind;
    pass_lower := j.pass_lower;
    cursor_updated_at := j.cursor_updated_at;
    cursor_id := j.cursor_id;
END;
$$;

/*
 * Record one batch's outcome, all or nothing: a sync_events row per lead, a
 * gestao_scouter_export_errors row per failed lead, the job's counters and
 * position.  p_messages holds NULL for a lead that went through, else its
 * error; the p_err_* arrays describe the failed leads, in order.  Returns
 * whether the job is still running (a pause may have come meanwhile).
 */
CREATE FUNCTION @extschema@._gs_job_record(p_job_id uuid, p_lead_ids bigint[], p_messages text[],
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
    /*
     * recent_leads_per_second: the leads per second since the last record,
     * averaged with a weight that fades over this many seconds, so that
     * batches recorded in quick succession (several were in flight) do
     * not make it jump.
     */
    rate_seconds constant float8 := 5;
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
         WHERE j.id = p_job_id;
    END IF;

    UPDATE @extschema@.gestao_scouter_export_jobs AS j
       SET total_leads = j.total_leads + n_ok + n_err,
           exported_leads = j.exported_leads + n_ok,
           error_leads = j.error_leads + n_err,
           cursor_updated_at = p_last_updated_at, cursor_id = p_last_id,
           recent_leads_per_second = pg_catalog.round((
               SELECT CASE WHEN j.recent_leads_per_second IS NULL THEN (n_ok + n_err) / r.dt
                           ELSE r.keep * j.recent_leads_per_second::float8
                                + (1 - r.keep) * (n_ok + n_err) / r.dt END
                 FROM (SELECT d.dt, pg_catalog.exp(-d.dt / rate_seconds) AS keep
                         FROM (SELECT GREATEST(EXTRACT(epoch FROM pg_catalog.clock_timestamp() - j.updated_at)::float8,
                                               0.001) AS dt) d) r)::numeric,
               3),
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

/*
 * The pass being walked has no more leads.  Start the next one, or
 * complete the job.  Catch-up passes go on while they find leads, ten at
 * the most; then the rest of the range, if it reaches past the last
 * horizon; then the job is completed: last_completed_date becomes the
 * oldest day walked (end_date, or without one the day of the oldest lead).
 * Outcomes: 'walk' (a new pass: the other columns say where), 'completed'
 * (with the counts, for the log), 'stopped' (the job is no longer running).
 */
CREATE FUNCTION @extschema@._gs_job_next_pass(p_job_id uuid,
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
    tz := COALESCE(j.time_zone, pg_catalog.current_setting('TimeZone'));
    SELECT r.range_bottom, r.range_top INTO range_bottom, range_top
      FROM @extschema@._gs_job_range(j.start_date, j.end_date, tz) r;
    /* The cursor starts at the window's top and moves down as leads are done. */
    found_leads := j.cursor_updated_at < j.pass_upper;
    kept_changing := false;

    IF j.pass_kind = 'range' OR (j.pass_kind = 'catchup' AND found_leads
                                 AND j.catchup_pass < max_catchup_passes) THEN
        horizon := @extschema@._gs_changes_horizon();
        j.pass_kind := 'catchup';
        j.catchup_pass := j.catchup_pass + 1;
        j.pass_lower := j.changes_since;
        j.pass_upper := GREATEST(horizon, j.changes_since);
        j.catchup_lower := j.changes_since;
        j.changes_since := j.pass_upper;
    ELSIF j.pass_kind = 'catchup' AND GREATEST(j.changes_since, range_bottom) < range_top THEN
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

/*
 * Stop the job: 'paused' (only if it is running: the remote's trouble
 * outlasted the retries, or an operator cancelled the worker) or 'failed'
 * (whatever it was), with the reason in pause_reason.  Returns whether the
 * row changed.
 */
CREATE FUNCTION @extschema@._gs_job_stop(p_job_id uuid, p_status text, p_reason text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_status NOT IN ('paused', 'failed') THEN
        RAISE EXCEPTION 'a job can be stopped as paused or failed, not %', p_status
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET status = p_status, pause_reason = p_reason,
           paused_at = CASE WHEN p_status = 'paused' THEN pg_catalog.now() ELSE paused_at END,
           updated_at = pg_catalog.now()
     WHERE id = p_job_id AND (p_status = 'failed' OR status = 'running');
    RETURN FOUND;
END;
$$;

/*
 * The remote has no column p_column: it is no longer sent, for the rest of
 * the job's life (a resume too).
 */
CREATE FUNCTION @extschema@._gs_job_ignore_column(p_job_id uuid, p_column text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET ignored_fields = pg_catalog.array_append(ignored_fields, p_column),
           updated_at = pg_catalog.now()
     WHERE id = p_job_id AND NOT (p_column = ANY (ignored_fields))
$$;

/*
 * The leads of the job's range, as its worker counted them when it started.
 */
CREATE FUNCTION @extschema@._gs_job_set_leads_in_range(p_job_id uuid, p_count bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET leads_in_range = p_count
     WHERE id = p_job_id AND leads_in_range IS NULL
$$;

CREATE FUNCTION @extschema@._gs_job_is_running(p_job_id uuid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE((SELECT status = 'running' FROM @extschema@.gestao_scouter_export_jobs
                      WHERE id = p_job_id), false)
$$;

/*
 * The jobs that want a worker (pending, or running: after a restart, or
 * whose worker stopped), oldest first.
 */
CREATE FUNCTION @extschema@._gs_runnable_jobs()
RETURNS SETOF uuid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT id FROM @extschema@.gestao_scouter_export_jobs
     WHERE status IN ('pending', 'running')
     ORDER BY created_at
$$;

/* ---- 4. The SQL API's internal functions -------------------------------- */

/*
 * Check the option "filter": an object {leads column: value, or array of
 * values}, each value a JSON scalar that reads as the column's type (null
 * matches NULL).  22023 naming the bad key.  The values are data: the
 * worker binds them as a parameter, cast to the column's type.
 */
CREATE FUNCTION @extschema@._gs_export_check_filter(p_filter jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    v jsonb;
    coltype text;
BEGIN
    IF pg_catalog.jsonb_typeof(p_filter) <> 'object' OR p_filter = '{}' THEN
        RAISE EXCEPTION 'option "filter" must be a non-empty object of leads column: value or array of values'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: ''{"filter": {"etapa": ["Agendado", "Confirmado"], "commercial_project_id": "…"}}''.';
    END IF;
    FOR k, v IN SELECT * FROM pg_catalog.jsonb_each(p_filter) LOOP
        SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO coltype
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = pg_catalog.to_regclass('@extschema@.leads')
           AND a.attname = k AND a.attnum > 0 AND NOT a.attisdropped;
        IF coltype IS NULL THEN
            RAISE EXCEPTION 'option "filter": "%" is not a column of leads', k
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Filter on columns of the table leads.';
        END IF;
        IF (pg_catalog.jsonb_typeof(v) = 'array' AND (pg_catalog.jsonb_array_length(v) = 0
              OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(v) e
                          WHERE pg_catalog.jsonb_typeof(e) IN ('array', 'object'))))
           OR pg_catalog.jsonb_typeof(v) = 'object' THEN
            RAISE EXCEPTION 'option "filter": the value of "%" must be a value or a non-empty array of values', k
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        BEGIN
            -- the type's name comes from the catalog, the values are bound
            EXECUTE pg_catalog.format('SELECT $1::text[]::%s[]', coltype)
              USING @extschema@._gs_export_filter_values(v);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'option "filter": % is not a value of "%" (%)', v, k, coltype
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = pg_catalog.format('Values are compared in the column''s own type, %s.', coltype);
        END;
    END LOOP;
END;
$$;

/*
 * A filter's value (a scalar or an array of them) as text[]: strings as
 * they are, numbers and booleans as JSON writes them, null as NULL.
 */
CREATE FUNCTION @extschema@._gs_export_filter_values(p_value jsonb)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.array_agg(e #>> '{}' ORDER BY n)
      FROM pg_catalog.jsonb_array_elements(CASE WHEN pg_catalog.jsonb_typeof(p_value) = 'array'
                                                THEN p_value ELSE pg_catalog.jsonb_build_array(p_value) END)
           WITH ORDINALITY AS x(e, n)
$$;

/*
 * Check an options object (a job's, or the config's default_options): every
 * key known, every value of the right type and range.  22023 naming the bad
 * key, 22004 for a NULL object.  p_what says whose options they are.
 */
CREATE FUNCTION @extschema@._gs_export_check_options(p_options jsonb, p_what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    v jsonb;
    n numeric;
    lo integer;
    hi integer;
    e jsonb;
    ident constant text := '^[A-Za-z_][A-Za-z0-9_$]{0,62}$';
    lead_columns text[] := (SELECT pg_catalog.array_agg(a.attname::text)
                              FROM pg_catalog.pg_attribute a
                             WHERE a.attrelid = pg_catalog.to_regclass('@extschema@.leads')
                               AND a.attnum > 0 AND NOT a.attisdropped);
    remote_names text[] := '{}';
    instant timestamptz;
BEGIN
    IF p_options IS NULL THEN
        RAISE EXCEPTION '% must not be null', p_what
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass ''{}'' for the defaults.';
    END IF;
    IF pg_catalog.jsonb_typeof(p_options) <> 'object' THEN
        RAISE EXCEPTION '% must be a JSON object', p_what
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: ''{"batch_size": 500, "delay_ms": 0, "time_zone": "America/Sao_Paulo"}''.';
    END IF;
    IF p_options ? 'fields' AND p_options ? 'field_mappings' THEN
        RAISE EXCEPTION 'options "fields" and "field_mappings" cannot be given together'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '"fields" sends lead columns under their own names; "field_mappings" names each remote column and its lead column. Use one.';
    END IF;

    FOR k, v IN SELECT * FROM pg_catalog.jsonb_each(p_options) LOOP
        IF k IN ('batch_size', 'delay_ms', 'max_in_flight', 'batch_size_max') THEN
            IF pg_catalog.jsonb_typeof(v) <> 'number' THEN
                RAISE EXCEPTION 'option "%" must be a whole number', k
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            n := v::text::numeric;
            lo := CASE k WHEN 'delay_ms' THEN 0 ELSE 1 END;
            hi := CASE k WHEN 'delay_ms' THEN 60000 WHEN 'max_in_flight' THEN 16 ELSE 10000 END;
            IF n <> pg_catalog.trunc(n) OR n < lo OR n > hi THEN
                RAISE EXCEPTION 'option "%" is out of range: %', k, v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = pg_catalog.format('%s goes from %s to %s.', k, lo, hi);
            END IF;
        ELSIF k = 'pace' THEN
            IF v IS DISTINCT FROM '"fixed"' AND v IS DISTINCT FROM '"adaptive"' THEN
                RAISE EXCEPTION 'option "pace" must be "fixed" or "adaptive": %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = '"fixed" sends batches of batch_size, max_in_flight at a time; "adaptive" finds the pace the remote sustains, up to batch_size_max and max_in_flight.';
            END IF;
        ELSIF k = 'time_zone' THEN
            IF pg_catalog.jsonb_typeof(v) <> 'string'
               OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names
                              WHERE name = (v #>> '{}')) THEN
                RAISE EXCEPTION 'option "time_zone" is not a known time zone: %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Use an IANA name from pg_timezone_names, such as "America/Sao_Paulo" or "UTC".';
            END IF;
        ELSIF k = 'filter' THEN
            PERFORM @extschema@._gs_export_check_filter(v);
        ELSIF k = 'target_table' THEN
            IF pg_catalog.jsonb_typeof(v) <> 'string' OR (v #>> '{}') !~ ident THEN
                RAISE EXCEPTION 'option "target_table" must be a plain table name: %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'A name of letters, digits and underscores, such as "fichas" or "leads".';
            END IF;
        ELSIF k = 'fields' THEN
            IF pg_catalog.jsonb_typeof(v) <> 'array' OR pg_catalog.jsonb_array_length(v) = 0 THEN
                RAISE EXCEPTION 'option "fields" must be a non-empty array of column names of leads'
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'For example: ''{"fields": ["name", "etapa", "updated_at"]}'' (id is always sent).';
            END IF;
            FOR e IN SELECT * FROM pg_catalog.jsonb_array_elements(v) LOOP
                IF pg_catalog.jsonb_typeof(e) <> 'string' OR NOT ((e #>> '{}') = ANY (lead_columns)) THEN
                    RAISE EXCEPTION 'option "fields": % is not a column of leads', e
                        USING ERRCODE = 'invalid_parameter_value',
                              HINT = 'Name columns of the table leads.';
                END IF;
                IF (e #>> '{}') = ANY (remote_names) THEN
                    RAISE EXCEPTION 'option "fields": % is given twice', e
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
                remote_names := remote_names || (e #>> '{}');
            END LOOP;
        ELSIF k = 'field_mappings' THEN
            IF pg_catalog.jsonb_typeof(v) <> 'object' OR v = '{}' THEN
                RAISE EXCEPTION 'option "field_mappings" must be a non-empty object of remote column: lead column'
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'For example: ''{"field_mappings": {"nome": "name", "idade": "age"}}'' ("id" is added).';
            END IF;
            FOR k, e IN SELECT * FROM pg_catalog.jsonb_each(v) LOOP
                IF k !~ ident THEN
                    RAISE EXCEPTION 'option "field_mappings": remote column "%" is not a plain column name', k
                        USING ERRCODE = 'invalid_parameter_value',
                              HINT = 'Remote column names are letters, digits and underscores.';
                END IF;
                IF pg_catalog.jsonb_typeof(e) <> 'string' OR NOT ((e #>> '{}') = ANY (lead_columns)) THEN
                    RAISE EXCEPTION 'option "field_mappings": % (for remote column "%") is not a column of leads', e, k
                        USING ERRCODE = 'invalid_parameter_value',
                              HINT = 'Each value names a column of the table leads.';
                END IF;
                remote_names := remote_names || k;
            END LOOP;
            k := 'field_mappings';
        ELSIF k IN ('synced_at_column', 'source_column') THEN
            IF pg_catalog.jsonb_typeof(v) <> 'null'
               AND (pg_catalog.jsonb_typeof(v) <> 'string' OR (v #>> '{}') !~ ident) THEN
                RAISE EXCEPTION 'option "%" must be a plain column name or null: %', k, v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'null leaves the column out.';
            END IF;
        ELSIF k = 'source_value' THEN
            IF pg_catalog.jsonb_typeof(v) <> 'string' THEN
                RAISE EXCEPTION 'option "source_value" must be a string: %', v
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        ELSIF k = 'changed_since' THEN
            -- a fixed, finite instant: not 'now' or 'today', which would
            -- mean another instant each time the value is read
            instant := NULL;
            IF pg_catalog.jsonb_typeof(v) = 'string'
               AND (v #>> '{}') !~* '(now|today|tomorrow|yesterday)' THEN
                BEGIN
                    instant := (v #>> '{}')::timestamptz;
                EXCEPTION WHEN data_exception THEN
                    instant := NULL;
                END;
            END IF;
            IF instant IS NULL OR NOT pg_catalog.isfinite(instant) THEN
                RAISE EXCEPTION 'option "changed_since" must be a finite timestamp with time zone: %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'A string such as "2025-10-17T00:00:00-03:00"; leads with updated_at at or after that instant are exported.';
            END IF;
        ELSE
            RAISE EXCEPTION 'unknown option "%"', k
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Known options are batch_size, delay_ms, max_in_flight, pace, batch_size_max, time_zone, target_table, fields, field_mappings, synced_at_column, source_column, source_value, filter and changed_since.';
        END IF;
    END LOOP;

    IF pg_catalog.jsonb_typeof(p_options -> 'batch_size') = 'number'
       AND pg_catalog.jsonb_typeof(p_options -> 'batch_size_max') = 'number'
       AND (p_options ->> 'batch_size_max')::numeric < (p_options ->> 'batch_size')::numeric THEN
        RAISE EXCEPTION 'option "batch_size_max" (%) is less than "batch_size" (%)',
                        p_options -> 'batch_size_max', p_options -> 'batch_size'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'batch_size is where an adaptive pace starts, batch_size_max the most it grows to.';
    END IF;

    FOREACH k IN ARRAY ARRAY['synced_at_column', 'source_column'] LOOP
        IF pg_catalog.jsonb_typeof(p_options -> k) = 'string' THEN
            IF (p_options ->> k) = ANY (remote_names) THEN
                RAISE EXCEPTION 'option "%": remote column "%" is also a mapped column', k, p_options ->> k
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'A remote column gets one value: rename one of them, or set the option to null.';
            END IF;
            remote_names := remote_names || (p_options ->> k);
        END IF;
    END LOOP;
END;
$$;

/*
 * A new job's effective options: the settings' defaults, then the active
 * config's target_table and default_options, then the job's own options,
 * key by key ("fields" and "field_mappings" go together: a job that gives
 * one drops the config's other).  Checked, and complete: the job row keeps
 * them, so that a resume or a reset sends the same fields to the same table.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_resolve_options(p_options jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg record;
    defaults jsonb;
    merged jsonb;
BEGIN
    PERFORM @extschema@._gs_export_check_options(p_options, 'options');
    SELECT c.target_table, c.default_options INTO cfg
      FROM @extschema@.gestao_scouter_config c
     WHERE c.active AND c.sync_enabled
     ORDER BY c.updated_at DESC NULLS LAST
     LIMIT 1;
    defaults := pg_catalog.jsonb_build_object(
        'batch_size', pg_catalog.current_setting('gs_export.batch_size')::integer,
        'delay_ms', (SELECT s.setting::integer FROM pg_catalog.pg_settings s
                      WHERE s.name = 'gs_export.batch_delay_ms'),
        'time_zone', pg_catalog.current_setting('TimeZone'),
        'max_in_flight', 1,
        'pace', 'fixed',
        'target_table', COALESCE(cfg.target_table, 'fichas'),
        'synced_at_column', 'last_sync_at',
        'source_column', 'sync_source',
        'source_value', 'tabuladormax');
    merged := defaults || COALESCE(cfg.default_options, '{}');
    IF p_options ? 'fields' OR p_options ? 'field_mappings' THEN
        merged := merged - 'fields' - 'field_mappings';
    END IF;
    merged := merged || p_options;
    -- an adaptive pace grows from batch_size up to batch_size_max: unless
    -- given, the most is the default or batch_size, whichever is larger
    IF NOT (COALESCE(cfg.default_options, '{}') ? 'batch_size_max' OR p_options ? 'batch_size_max') THEN
        merged := merged || pg_catalog.jsonb_build_object(
            'batch_size_max', GREATEST(5000, (merged ->> 'batch_size')::numeric));
    END IF;
    PERFORM @extschema@._gs_export_check_options(merged, 'options');
    -- changed_since as an instant with its offset, read in the caller's
    -- time zone (the worker's may differ)
    IF merged ? 'changed_since' THEN
        merged := merged || pg_catalog.jsonb_build_object(
            'changed_since', (merged ->> 'changed_since')::timestamptz);
    END IF;
    -- whole numbers as integers (1.000 and 0e5 are accepted as 1 and 0)
    merged := merged || pg_catalog.jsonb_build_object(
        'batch_size', (merged ->> 'batch_size')::numeric::integer,
        'delay_ms', (merged ->> 'delay_ms')::numeric::integer,
        'max_in_flight', (merged ->> 'max_in_flight')::numeric::integer,
        'batch_size_max', (merged ->> 'batch_size_max')::numeric::integer);
    IF NOT (merged ? 'fields' OR merged ? 'field_mappings') THEN
        merged := merged || pg_catalog.jsonb_build_object(
            'fields', pg_catalog.to_jsonb(@extschema@._gs_export_default_fields()));
    END IF;
    RETURN merged;
END;
$$;

/*
 * The config row, written: besides 1.0's checks (project_url, keys),
 * target_table must be a plain name and default_options must be options.
 * It outlives the extension (see gs_export--1.0.sql): what it calls of the
 * extension is looked up first.  SECURITY DEFINER, so that the check of
 * default_options, an internal function nobody else may execute, runs as
 * the extension's owner; it reads nothing but the new row and the
 * catalog, and its search_path is fixed.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_config_guard() CASCADE;
CREATE FUNCTION @extschema@.gs_export_config_guard()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.project_url IS NULL THEN
        RAISE EXCEPTION 'project_url must not be null'
            USING ERRCODE = 'not_null_violation';
    END IF;
    IF NEW.project_url !~ '^https?://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?$' THEN
        RAISE EXCEPTION 'project_url must be an http or https URL with a host and nothing after it'
            USING ERRCODE = 'check_violation',
                  HINT = 'For example https://xxxx.supabase.co (gs_export adds /rest/v1/fichas).';
    END IF;
    IF NEW.anon_key IS NULL THEN
        RAISE EXCEPTION 'anon_key must not be null'
            USING ERRCODE = 'not_null_violation';
    END IF;
    IF NEW.anon_key ~ '[[:cntrl:]]' OR NEW.service_role_key_encrypted ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'keys must not contain control characters'
            USING ERRCODE = 'check_violation';
    END IF;
    /*
     * alert_url: project_url's rules, but a webhook's address has a path
     * and may have a query (src/remote.c, gs_remote_check_alert_url, allows
     * the same characters).
     */
    IF NEW.alert_url IS NOT NULL AND NEW.alert_url !~ '^https?://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&''()*+,;=:@%/?-]*)?$' THEN
        RAISE EXCEPTION 'alert_url must be an http or https URL with a host'
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A port, a path and a query may follow the host; a user name, a password, a fragment, spaces and control characters may not.',
                  HINT = 'For example a Slack incoming webhook, https://hooks.slack.com/services/...';
    END IF;
    IF NEW.target_table IS NOT NULL AND NEW.target_table !~ '^[A-Za-z_][A-Za-z0-9_$]{0,62}$' THEN
        RAISE EXCEPTION 'target_table must be a plain table name'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A name of letters, digits and underscores, such as "fichas" or "leads".';
    END IF;
    IF pg_catalog.to_regprocedure('@extschema@._gs_export_check_options(jsonb, text)') IS NOT NULL THEN
        PERFORM @extschema@._gs_export_check_options(NEW.default_options, 'default_options');
    END IF;
    RETURN NEW;
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_config_guard();
REVOKE ALL ON FUNCTION @extschema@.gs_export_config_guard() FROM PUBLIC;
CREATE TRIGGER gs_export_config_guard
    BEFORE INSERT OR UPDATE ON @extschema@.gestao_scouter_config
    FOR EACH ROW EXECUTE FUNCTION @extschema@.gs_export_config_guard();

/*
 * Internal: the job other than p_except that is pending, running or paused
 * as the latest committed state has it, not the transaction's snapshot (a
 * row of NULLs when there is none).  See api.c.
 */
CREATE FUNCTION @extschema@._gs_export_latest_active_job(p_except uuid, OUT id uuid, OUT status text)
RETURNS record
AS 'MODULE_PATHNAME', 'gs_export_latest_active_job'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

/*
 * Internal: 55000 when another job is pending, running or paused, the hint
 * naming it.  1.0 looked in the transaction's snapshot: under REPEATABLE
 * READ or SERIALIZABLE, taken before the jobs table was locked, it missed
 * a job committed in between.  Now it looks in the latest committed state.
 * The unique index gestao_scouter_export_jobs_one_active is what holds; this
 * check only lets the error name the job in the way.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check_no_active(p_except uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    other record;
BEGIN
    SELECT a.id, a.status INTO other
      FROM @extschema@._gs_export_latest_active_job(p_except) a;
    IF other.id IS NOT NULL THEN
        RAISE EXCEPTION 'another export job is %', other.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('Only one export job may be pending, running or paused at a time; job %s is %s.',
                                             other.id, other.status),
                  HINT = pg_catalog.format('Wait for job %s to finish, or pause it and let it fail or complete first.', other.id);
    END IF;
END;
$$;

/*
 * Internal: the error for a row that the index
 * gestao_scouter_export_jobs_one_active refused.  Every statement that makes
 * a job pending, running or paused (create, resume, and reset to come)
 * runs in a block that ends
 *
 *     EXCEPTION WHEN unique_violation THEN
 *         GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME;
 *         PERFORM @extschema@._gs_export_active_conflict(c, <the job's id, or NULL>);
 *         RAISE;
 *
 * For that index it raises _gs_export_check_no_active's 55000, naming the
 * job in the way; should that job have ended in the meantime, a 55000 that
 * says to try again.  For any other constraint it returns, and the handler
 * raises the error as it was.
 */
CREATE FUNCTION @extschema@._gs_export_active_conflict(p_constraint text, p_except uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_constraint IS DISTINCT FROM 'gestao_scouter_export_jobs_one_active' THEN
        RETURN;
    END IF;
    PERFORM @extschema@._gs_export_check_no_active(p_except);
    RAISE EXCEPTION 'another export job was active'
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = 'Only one export job may be pending, running or paused at a time; another one was, and has ended since.',
              HINT = 'Try again.';
END;
$$;

/*
 * gs_export_create's internal function: 1.0's, but the one active job is
 * kept by the unique index, and a row it refuses is the contract's 55000.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_create(p_caller oid, p_uid uuid, p_app_admin boolean, p_start_date date, p_end_date date, p_options jsonb)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    denied text;
    resolved jsonb;
    job_id uuid;
    violated text;
BEGIN
    PERFORM @extschema@._gs_export_check_caller(p_caller);

    IF p_start_date IS NULL THEN
        RAISE EXCEPTION 'start_date must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave start_date out to start from today.';
    END IF;
    IF p_start_date IN ('infinity', '-infinity') OR p_end_date IN ('infinity', '-infinity') THEN
        RAISE EXCEPTION 'start_date and end_date must be finite dates'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_end_date > p_start_date THEN
        RAISE EXCEPTION 'end_date % is after start_date %', p_end_date, p_start_date
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Days are walked from start_date, the newest, down to end_date, the oldest.',
                  HINT = 'Swap the two dates.';
    END IF;
    resolved := @extschema@._gs_export_resolve_options(p_options);
    -- the days must be instants PostgreSQL can count in (years 4713 BC to 294276 AD)
    BEGIN
        PERFORM ((p_start_date + 1)::timestamp AT TIME ZONE (resolved ->> 'time_zone')),
                (p_end_date::timestamp AT TIME ZONE (resolved ->> 'time_zone'));
    EXCEPTION WHEN datetime_field_overflow THEN
        RAISE EXCEPTION 'start_date or end_date is out of range'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('The days from %s down to %s are not all timestamps in time zone %s.',
                                             p_start_date, COALESCE(p_end_date::text, 'the oldest lead'),
                                             resolved ->> 'time_zone'),
                  HINT = 'Use dates between 4713 BC and 294276 AD.';
    END;

    IF pg_catalog.to_regclass('@extschema@.leads') IS NULL THEN
        RAISE EXCEPTION 'relation "@extschema@.leads" does not exist'
            USING ERRCODE = 'undefined_table',
                  HINT = 'gs_export exports the table leads of the schema it is installed in.';
    END IF;
    /* the job reads, as its owner, the columns it sends and its key */
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ' ORDER BY c) INTO denied
      FROM (SELECT DISTINCT c
              FROM pg_catalog.unnest((SELECT m.lead_columns FROM @extschema@._gs_job_mapping(resolved) m)
                                     || ARRAY['id', 'updated_at']) AS c) cs
     WHERE NOT pg_catalog.has_column_privilege(p_caller, '@extschema@.leads', c, 'SELECT');
    IF denied IS NOT NULL THEN
        RAISE EXCEPTION 'permission denied for table leads'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('The job would read the columns %s, which the role may not read.', denied),
                  HINT = 'A job reads the leads with its owner''s privileges: GRANT SELECT ON leads (or on those columns) to the role that creates it.';
    END IF;

    PERFORM @extschema@._gs_export_check_config();

    LOCK TABLE @extschema@.gestao_scouter_export_jobs IN SHARE ROW EXCLUSIVE MODE;
    PERFORM @extschema@._gs_export_check_no_active(NULL);

    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                   WHERE i.indrelid = '@extschema@.leads'::regclass
                     AND i.indkey[0] = (SELECT attnum FROM pg_catalog.pg_attribute
                                        WHERE attrelid = i.indrelid AND attname = 'updated_at')
                     AND i.indkey[1] = (SELECT attnum FROM pg_catalog.pg_attribute
                                        WHERE attrelid = i.indrelid AND attname = 'id')
                     AND i.indpred IS NULL) THEN
        RAISE NOTICE 'leads has no index on (updated_at, id): each batch will scan the table'
            USING HINT = 'CREATE INDEX ON leads (updated_at, id);';
    END IF;

    BEGIN
        INSERT INTO @extschema@.gestao_scouter_export_jobs
               (status, start_date, end_date, options, batch_size, delay_ms, time_zone,
                owner_role, created_by, total_leads, exported_leads, error_leads,
                effective_options)
        VALUES ('pending', p_start_date, p_end_date, p_options,
                (resolved ->> 'batch_size')::integer, (resolved ->> 'delay_ms')::integer,
                resolved ->> 'time_zone',
                (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = p_caller),
                p_uid, 0, 0, 0, resolved)
        RETURNING id INTO job_id;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
        PERFORM @extschema@._gs_export_active_conflict(violated, NULL);
        RAISE;
    END;

    RETURN job_id;
END;
$$;

/*
 * gs_export_resume's internal function: 1.0's, but the one active job is
 * kept by the unique index, and a row it refuses is the contract's 55000.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_resume(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job @extschema@.gestao_scouter_export_jobs;
    violated text;
BEGIN
    LOCK TABLE @extschema@.gestao_scouter_export_jobs IN SHARE ROW EXCLUSIVE MODE;
    job := @extschema@._gs_export_lock_job(p_caller, p_uid, p_app_admin, p_job_id);
    IF job.status NOT IN ('paused', 'failed') THEN
        RAISE EXCEPTION 'export job % cannot be resumed: it is %', p_job_id, job.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a paused or failed job can be resumed.';
    END IF;
    PERFORM @extschema@._gs_export_check_no_active(p_job_id);
    PERFORM @extschema@._gs_export_check_config();
    BEGIN
        UPDATE @extschema@.gestao_scouter_export_jobs
           SET status = 'running', pause_reason = NULL, paused_at = NULL,
               completed_at = NULL, updated_at = pg_catalog.now()
         WHERE id = p_job_id;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
        PERFORM @extschema@._gs_export_active_conflict(violated, p_job_id);
        RAISE;
    END;
END;
$$;

/*
 * Reset, delete and status (1.1).  Each follows the visibility rule of
 * pause and resume (_gs_export_lock_job): the job's owner, admins, the
 * app's admins and superusers; anyone else gets 42704, exactly as for a
 * job that does not exist.
 */

/*
 * Internal: the job, if the caller may see it; else 42704, in the words of
 * _gs_export_lock_job (42501 for a caller outside gs_export, 22004 for a
 * NULL id, as there).  The row is not locked: status must not wait for a
 * worker that is recording a batch into it, and reset and delete look
 * first, before they wait for the job's worker to be gone (a lock on the
 * row would make that worker wait for them in turn).
 */
CREATE FUNCTION @extschema@._gs_export_see_job(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid)
RETURNS @extschema@.gestao_scouter_export_jobs
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job @extschema@.gestao_scouter_export_jobs;
BEGIN
    PERFORM @extschema@._gs_export_check_caller(p_caller);
    IF p_job_id IS NULL THEN
        RAISE EXCEPTION 'job_id must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO job FROM @extschema@.gestao_scouter_export_jobs j WHERE j.id = p_job_id;
    IF NOT FOUND OR NOT @extschema@.gs_export_job_visible_to(p_caller, p_uid, p_app_admin, job.owner_role, job.created_by) THEN
        RAISE EXCEPTION 'export job % does not exist', p_job_id
            USING ERRCODE = 'undefined_object',
                  HINT = 'List your jobs with: SELECT id, status FROM gestao_scouter_export_jobs ORDER BY created_at DESC;';
    END IF;
    RETURN job;
END;
$$;

/*
 * Internal: 55000 unless the job is paused, failed or completed.  A pending
 * or running job has a worker, or is about to get one: it is paused first.
 * p_done says what would be done to it ("reset", "deleted").
 */
CREATE FUNCTION @extschema@._gs_export_check_stopped(p_job_id uuid, p_status text, p_done text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_status NOT IN ('paused', 'failed', 'completed') THEN
        RAISE EXCEPTION 'export job % cannot be %: it is %', p_job_id, p_done, p_status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = pg_catalog.format('Pause it first with gs_export_pause(); a paused, failed or completed job can be %s.',
                                           p_done);
    END IF;
END;
$$;

/*
 * Internal: make sure that no worker is still at the job.  A pause stops a
 * worker's sending at once, but the batches that were at the remote get
 * their answers and are recorded into the job (counters, position, events,
 * errors) before the worker goes away.  Its worker holds a session advisory lock on
 * the job from its claim (_gs_job_claim) until it exits; this takes the
 * same lock for the transaction, so that reset and delete never change a
 * job under a worker still recording into it, and no worker can claim it
 * again before they commit.
 *
 * It waits five seconds at the most, then 55000: try again.  It tries
 * rather than queues for the lock.  A queued wait could close a circle with
 * the worker when the calling transaction already holds the job's row (a
 * pause and then a reset, in one transaction): the worker's record would
 * wait for the row, the deadlock detector would cancel one of the two, and
 * a worker whose record fails fails its job.  Trying never waits in the
 * lock manager: at worst the worker waits for the caller's transaction to
 * end.
 */
CREATE FUNCTION @extschema@._gs_export_wait_for_worker(p_job_id uuid, p_done text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    deadline constant timestamptz := pg_catalog.clock_timestamp() + interval '5 seconds';
BEGIN
    WHILE NOT pg_catalog.pg_try_advisory_xact_lock(1735617912, pg_catalog.hashtext(p_job_id::text)) LOOP
        IF pg_catalog.clock_timestamp() >= deadline THEN
            RAISE EXCEPTION 'export job % cannot be % yet: its worker is still finishing a batch', p_job_id, p_done
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'A batch that was at the remote when the job stopped is recorded before its worker stops.',
                      HINT = 'The job''s worker is still finishing its last batch: try again in a few seconds.';
        END IF;
        PERFORM pg_catalog.pg_sleep(0.05);
    END LOOP;
END;
$$;

/*
 * gs_export_reset's internal function: a paused, failed or completed job
 * becomes pending and starts again from its start_date, as if new but for
 * its id, owner, options (the same fields go to the same table) and
 * created_at.  Its error rows go; its sync_events stay, the history of
 * what was sent.  It becomes active, so the one active job rule holds as
 * for create and resume.
 */
CREATE FUNCTION @extschema@._gs_export_reset(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid)
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
    PERFORM @extschema@._gs_export_check_no_active(p_job_id);
    PERFORM @extschema@._gs_export_check_config();
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
               pass_kind = 'range', pass_lower = NULL, pass_upper = NULL,
               updated_at = pg_catalog.now()
         WHERE id = p_job_id;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
        PERFORM @extschema@._gs_export_active_conflict(violated, p_job_id);
        RAISE;
    END;
    DELETE FROM @extschema@.gestao_scouter_export_errors WHERE job_id = p_job_id;
END;
$$;

/*
 * gs_export_delete's internal function: a paused, failed or completed job
 * and its error rows are deleted (explicitly: TabuladorMax's errors table
 * may predate the extension without ON DELETE CASCADE); its sync_events
 * stay.  Once it is gone it stands in no new job's way.
 */
CREATE FUNCTION @extschema@._gs_export_delete(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job @extschema@.gestao_scouter_export_jobs;
BEGIN
    job := @extschema@._gs_export_see_job(p_caller, p_uid, p_app_admin, p_job_id);
    PERFORM @extschema@._gs_export_check_stopped(p_job_id, job.status, 'deleted');
    PERFORM @extschema@._gs_export_wait_for_worker(p_job_id, 'deleted');

    job := @extschema@._gs_export_lock_job(p_caller, p_uid, p_app_admin, p_job_id);
    PERFORM @extschema@._gs_export_check_stopped(p_job_id, job.status, 'deleted');
    DELETE FROM @extschema@.gestao_scouter_export_errors WHERE job_id = p_job_id;
    DELETE FROM @extschema@.gestao_scouter_export_jobs WHERE id = p_job_id;
END;
$$;

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
 * The row is read without a lock, in the caller's snapshot.
 */
CREATE FUNCTION @extschema@._gs_export_status(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid,
    OUT job_id uuid, OUT status text, OUT start_date date, OUT end_date date,
    OUT processing_date date, OUT last_completed_date date, OUT leads_in_range bigint,
    OUT total_leads bigint, OUT exported_leads bigint, OUT error_leads bigint,
    OUT percent numeric, OUT leads_per_second numeric, OUT eta interval,
    OUT pause_reason text, OUT ignored_fields text[], OUT created_at timestamptz,
    OUT started_at timestamptz, OUT completed_at timestamptz)
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
         WHERE @extschema@.gs_export_job_visible_to(p_caller, p_uid, p_app_admin, t.owner_role, t.created_by)
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

/*
 * The 1.1 API: C functions like gs_export_pause and gs_export_resume (see
 * api.c).  EXECUTE in section 6.
 */
CREATE FUNCTION @extschema@.gs_export_reset(job_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'gs_export_reset'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.gs_export_delete(job_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'gs_export_delete'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.gs_export_status(job_id uuid DEFAULT NULL,
    OUT job_id uuid, OUT status text, OUT start_date date, OUT end_date date,
    OUT processing_date date, OUT last_completed_date date, OUT leads_in_range bigint,
    OUT total_leads bigint, OUT exported_leads bigint, OUT error_leads bigint,
    OUT percent numeric, OUT leads_per_second numeric, OUT eta interval,
    OUT pause_reason text, OUT ignored_fields text[], OUT created_at timestamptz,
    OUT started_at timestamptz, OUT completed_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'gs_export_status'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;

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
CREATE FUNCTION @extschema@._gs_export_alert_info(p_job_id uuid, p_status text, p_reason text,
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

/*
 * Incremental export (1.1): gs_export_sync.
 *
 * A sync is a normal job (gs_export_create's checks, options and worker)
 * over every lead changed since the last completed sync of the same scope
 * began, all leads the first time:
 *   start_date  a day at the end of PostgreSQL's timestamps, end_date
 *               NULL: no lead is outside the range for being dated later,
 *               today or in the future (a clock ahead, a bad import), so
 *               "changed since the mark" is all that selects;
 *   changed_since  the mark (an ISO 8601 string with its offset), or,
 *               when the caller gives an earlier one, that: a caller may
 *               ask for more, never for less.  The first time, what the
 *               caller or else the config's default_options give, if any;
 *   is_sync, synced_through  the job is a sync, and the next sync starts
 *               from _gs_changes_horizon() as it was when this one was
 *               created (now, or the start of the oldest transaction then
 *               open): a lead changed while this one runs, or by a
 *               transaction open when it started and committed later, has
 *               an updated_at at or after it.
 *
 * The mark of a scope is the greatest synced_through of its completed
 * syncs: a failed, paused or pending (reset) sync moves nothing, and one
 * that completes late (resumed) takes it no further back than it was.
 * gs_export_sync_marks remembers it, so that deleting completed syncs does
 * not move it back either.
 *
 * The scope: the job's owner (owner_role and created_by: a job reads the
 * leads its owner may read) and what is sent (the effective options but
 * for those that change only the pace or the days).  A sync of another
 * role, or with other fields, another mapping, table or filter, has its
 * own mark, so that it sends every lead it would send the first time.
 * Options that 1.1 does not know of count as part of the scope: a change
 * of them starts over, which sends more, never less.
 */
CREATE FUNCTION @extschema@._gs_sync_scope(p_owner_role name, p_created_by uuid, p_options jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'owner_role', p_owner_role,
        'created_by', p_created_by,
        'options', COALESCE(p_options, '{}')
                   OPERATOR(pg_catalog.-) ARRAY['batch_size', 'delay_ms', 'time_zone', 'changed_since',
                                                'max_in_flight', 'pace', 'batch_size_max'])
$$;

/*
 * gs_export_sync's internal function.  Returns the new job's id, or NULL
 * when another job is pending, running or paused: a scheduler calls it
 * blindly.  Only that 55000 becomes NULL; every other error (no config,
 * bad options, the caller's rights) is raised as gs_export_create raises
 * it.
 */
CREATE FUNCTION @extschema@._gs_export_sync(p_caller oid, p_uid uuid, p_app_admin boolean, p_options jsonb)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    /*
     * A day at the end of PostgreSQL's timestamps (294276 AD), with a
     * margin: its days, and the next, can be counted in every time zone.
     * The walk starts there, and with no lead that late, costs nothing.
     */
    last_day constant date := date '294276-12-29';
    job @extschema@.gestao_scouter_export_jobs;
    sync_scope jsonb;
    mark timestamptz;
    newest record;
    since jsonb;
    horizon timestamptz;
    job_id uuid;
    other uuid;
    err_detail text;
    err_hint text;
BEGIN
    PERFORM @extschema@._gs_export_check_caller(p_caller);

    /*
     * As gs_export_create does, but before it, and before the mark is
     * read: no job becomes active or completes meanwhile (a worker's record
     * waits), and two syncs are taken one after the other.
     */
    LOCK TABLE @extschema@.gestao_scouter_export_jobs IN SHARE ROW EXCLUSIVE MODE;

    horizon := @extschema@._gs_changes_horizon();
    BEGIN
        job_id := @extschema@._gs_export_create(p_caller, p_uid, p_app_admin, last_day, NULL, p_options);
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        /*
         * NULL for "another job is pending, running or paused" alone: the
         * 55000 that names the job in the way, which (the table locked
         * above) is still there.  No config, and the rest: raised.
         */
        GET STACKED DIAGNOSTICS err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
        SELECT a.id INTO other FROM @extschema@._gs_export_latest_active_job(NULL) a;
        IF other IS NOT NULL
           AND (pg_catalog.strpos(err_detail, other::text) > 0 OR pg_catalog.strpos(err_hint, other::text) > 0) THEN
            RETURN NULL;
        END IF;
        RAISE;
    END;

    /*
     * The mark of the new job's scope: what gs_export_sync_marks keeps,
     * moved on to the newest completed sync of the scope, if any is newer.
     */
    SELECT * INTO job FROM @extschema@.gestao_scouter_export_jobs j WHERE j.id = job_id;
    sync_scope := @extschema@._gs_sync_scope(job.owner_role, job.created_by, job.effective_options);
    SELECT m.synced_through INTO mark
      FROM @extschema@.gs_export_sync_marks m
     WHERE pg_catalog.md5(m.scope::text) = pg_catalog.md5(sync_scope::text);
    SELECT j.id, j.synced_through INTO newest
      FROM @extschema@.gestao_scouter_export_jobs j
     WHERE j.is_sync AND j.status = 'completed'
       AND j.synced_through > COALESCE(mark, '-infinity')
       AND @extschema@._gs_sync_scope(j.owner_role, j.created_by, j.effective_options) = sync_scope
     ORDER BY j.synced_through DESC
     LIMIT 1;
    IF newest.id IS NOT NULL THEN
        mark := newest.synced_through;
        INSERT INTO @extschema@.gs_export_sync_marks AS m (scope, synced_through, job_id)
        VALUES (sync_scope, mark, newest.id)
        ON CONFLICT ((pg_catalog.md5(scope::text))) DO UPDATE
           SET synced_through = EXCLUDED.synced_through, job_id = EXCLUDED.job_id,
               updated_at = pg_catalog.now()
         WHERE m.synced_through < EXCLUDED.synced_through;
    END IF;

    /*
     * changed_since: the mark, or what the caller asked for if earlier
     * (checked by gs_export_create); with neither, what the job has (the
     * config's default_options may give one), or nothing.  An ISO 8601
     * string with its offset, so that it means one instant in any session.
     */
    since := pg_catalog.to_jsonb(LEAST(mark, (p_options ->> 'changed_since')::timestamptz));
    IF since IS NOT NULL THEN
        UPDATE @extschema@.gestao_scouter_export_jobs
           SET options = options || pg_catalog.jsonb_build_object('changed_since', since),
               effective_options = effective_options || pg_catalog.jsonb_build_object('changed_since', since)
         WHERE id = job_id;
    END IF;
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET is_sync = true, synced_through = horizon
     WHERE id = job_id;
    RETURN job_id;
END;
$$;

/*
 * The 1.1 API: a C function like gs_export_create (see api.c).  EXECUTE in
 * section 6.
 */
CREATE FUNCTION @extschema@.gs_export_sync(options jsonb DEFAULT '{}')
RETURNS uuid
AS 'MODULE_PATHNAME', 'gs_export_sync'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

/* ---- 5. Row level security ---------------------------------------------- */

/*
 * Row level security at a cost per query, not per row.  1.0's policies
 * called a plpgsql function for every row, and for the errors and
 * sync_events one that queried the jobs table every time: a job's owner
 * counting the 100,000 sync_events of a job took seconds where a superuser
 * took milliseconds.  The policies are now plain expressions; the parts
 * that depend on who is asking are uncorrelated sub-selects, which the
 * planner runs once per query (InitPlans, and a hashed SubPlan for the jobs
 * one may see), and the rows are found through job_id's indexes
 * (sync_events_job_id_idx and gestao_scouter_export_errors_job_id_idx,
 * from 1.0).
 *
 * The rule is 1.0's (gs_export_job_visible_to), unchanged.  Superusers,
 * members of gs_export_admin, and members of gs_export_user whom the app
 * calls admins (has_role) see every job; other members of gs_export_user
 * see the jobs whose owner_role is their role and, when created_by is set
 * (a Supabase user created it), whose created_by is their auth.uid(); nobody
 * else sees any.  Errors and sync_events: the rows of the jobs one may see.
 *
 * The two functions below, like 1.0's, belong to the tables rather than to
 * the extension (see "Functions that outlive the extension" in
 * gs_export--1.0.sql): they are no members of it, so that DROP EXTENSION
 * leaves TabuladorMax's tables with policies that still work.  For the same
 * reason the policies on errors and sync_events reach the jobs table only
 * through gs_export_visible_job_ids(), by name when it runs: a policy on
 * TabuladorMax's sync_events that referred to an extension-made jobs table
 * would stop DROP EXTENSION.  1.0's gs_export_job_visible and
 * gs_export_job_id_visible stay as they were, for whoever calls them.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_viewer() CASCADE;
DROP FUNCTION IF EXISTS @extschema@.gs_export_visible_job_ids() CASCADE;

/*
 * Who is reading, for the jobs policy: whether the current user sees every
 * job (sees_all), else the owner_role of the jobs it may see (own_role,
 * NULL for none) and its auth.uid() under Supabase (uid).  1.0's rule, as
 * gs_export_job_visible_to applies it to the current user.  _gs_export_whoami
 * is asked only where the extension is there and only when the answer
 * matters.
 */
CREATE FUNCTION @extschema@.gs_export_viewer(OUT sees_all boolean, OUT own_role name, OUT uid uuid)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me oid;
    is_super boolean;
    app_admin boolean := false;
BEGIN
    -- by name: CURRENT_USER::regrole would read a name such as "Ana" as ana
    SELECT r.oid, r.rolsuper INTO me, is_super FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER;
    IF is_super OR pg_catalog.pg_has_role(me, 'gs_export_admin', 'MEMBER') THEN
        sees_all := true;
        RETURN;
    END IF;
    sees_all := false;
    IF NOT pg_catalog.pg_has_role(me, 'gs_export_user', 'MEMBER') THEN
        RETURN;
    END IF;
    IF pg_catalog.to_regprocedure('@extschema@._gs_export_whoami()') IS NOT NULL THEN
        SELECT w.uid, w.is_app_admin INTO uid, app_admin FROM @extschema@._gs_export_whoami() w;
    END IF;
    sees_all := COALESCE(app_admin, false);
    own_role := CURRENT_USER;
END;
$$;

/*
 * The ids of the jobs the current user may see, for the errors and
 * sync_events policies: the jobs table's own row level security decides.
 * None when that table is gone (after DROP EXTENSION) or not readable.
 */
CREATE FUNCTION @extschema@.gs_export_visible_job_ids()
RETURNS SETOF uuid
LANGUAGE plpgsql STABLE
ROWS 100
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jobs regclass := pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs');
BEGIN
    IF jobs IS NULL OR NOT pg_catalog.has_table_privilege(jobs, 'SELECT') THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE pg_catalog.format('SELECT id FROM %s', jobs);
END;
$$;

ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_viewer();
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_visible_job_ids();

DROP POLICY IF EXISTS gs_export_jobs_visible ON @extschema@.gestao_scouter_export_jobs;
CREATE POLICY gs_export_jobs_visible ON @extschema@.gestao_scouter_export_jobs
    FOR SELECT TO PUBLIC
    USING ((SELECT v.sees_all FROM @extschema@.gs_export_viewer() v)
           OR (owner_role = (SELECT v.own_role FROM @extschema@.gs_export_viewer() v)
               AND (created_by IS NULL
                    OR created_by = (SELECT v.uid FROM @extschema@.gs_export_viewer() v))));

DROP POLICY IF EXISTS gs_export_errors_visible ON @extschema@.gestao_scouter_export_errors;
CREATE POLICY gs_export_errors_visible ON @extschema@.gestao_scouter_export_errors
    FOR SELECT TO PUBLIC
    USING (job_id IN (SELECT v.id FROM @extschema@.gs_export_visible_job_ids() AS v(id)));

/*
 * sync_events as 1.0 decides: its own permissive policy when gs_export
 * created the table; on TabuladorMax's own table with row level security, a
 * restrictive one that hides the export's rows of jobs one may not see and
 * leaves the other rows to the app's policies (kept too where 1.0 made one
 * and row level security was turned off since).
 */
DO $sync_events$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend
               WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 AND objid = '@extschema@.sync_events'::pg_catalog.regclass
                 AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                 AND deptype = 'e') THEN
        DROP POLICY IF EXISTS gs_export_sync_events_visible ON @extschema@.sync_events;
        CREATE POLICY gs_export_sync_events_visible ON @extschema@.sync_events
            FOR SELECT TO PUBLIC
            USING (job_id IS NOT NULL
                   AND job_id IN (SELECT v.id FROM @extschema@.gs_export_visible_job_ids() AS v(id)));
    ELSIF (SELECT relrowsecurity FROM pg_catalog.pg_class
           WHERE oid = '@extschema@.sync_events'::pg_catalog.regclass)
          OR EXISTS (SELECT 1 FROM pg_catalog.pg_policy
                     WHERE polrelid = '@extschema@.sync_events'::pg_catalog.regclass
                       AND polname = 'gs_export_sync_events_visible') THEN
        DROP POLICY IF EXISTS gs_export_sync_events_visible ON @extschema@.sync_events;
        CREATE POLICY gs_export_sync_events_visible ON @extschema@.sync_events
            AS RESTRICTIVE FOR SELECT TO PUBLIC
            USING (job_id IS NULL
                   OR job_id IN (SELECT v.id FROM @extschema@.gs_export_visible_job_ids() AS v(id)));
    END IF;
END
$sync_events$;

/*
 * Admins and managers of the app (1.1).  1.0 asked only a
 * public.has_role(uuid, text), and only for 'admin'; TabuladorMax's is
 * has_role(_user_id uuid, _role public.app_role) with an enum, so its
 * admins were nobody's admins here.  gs_export_app_user() asks every
 * public.has_role(uuid, X) whose X is text or an enum (the label cast to X,
 * X's name from the catalog, never from the caller) for 'admin' and for
 * 'manager' (where the enum has the label), as the caller, and only where
 * the caller may use auth.uid(), has_role, its schema and its type: one it
 * may not execute is passed over, not an error.  Two overloads: either's
 * yes counts.
 *
 * It outlives the extension, like gs_export_viewer: the config's policies
 * below call it, and gestao_scouter_config may be TabuladorMax's own table,
 * which DROP EXTENSION leaves.  _gs_export_whoami (replaced below) answers
 * from it, so the API functions (p_app_admin), gs_export_viewer and 1.0's
 * gs_export_job_visible see an app admin or manager as one who sees and
 * steers every job -- still only through a role that is a gs_export user.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_config_admin() CASCADE;
DROP FUNCTION IF EXISTS @extschema@.gs_export_app_user() CASCADE;

CREATE FUNCTION @extschema@.gs_export_app_user(OUT uid uuid, OUT app_admin boolean, OUT app_manager boolean)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure;
    c record;
    label text;
    yes boolean;
BEGIN
    app_admin := false;
    app_manager := false;
    -- looking a function up in a schema one may not use is an error
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'auth')
       OR NOT pg_catalog.has_schema_privilege('auth', 'USAGE') THEN
        RETURN;
    END IF;
    f := pg_catalog.to_regprocedure('auth.uid()');
    IF f IS NULL OR NOT pg_catalog.has_function_privilege(f, 'EXECUTE') THEN
        RETURN;
    END IF;
    EXECUTE 'SELECT auth.uid()' INTO uid;
    IF uid IS NULL
       OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'public')
       OR NOT pg_catalog.has_schema_privilege('public', 'USAGE') THEN
        RETURN;
    END IF;
    FOR c IN
        SELECT p.oid::pg_catalog.regprocedure AS fn, t.oid::pg_catalog.regtype AS role_type,
               t.typtype, t.typnamespace
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
          JOIN pg_catalog.pg_type t ON t.oid = p.proargtypes[1]
         WHERE n.nspname = 'public' AND p.proname = 'has_role'
           AND p.prokind = 'f' AND p.pronargs = 2 AND NOT p.proretset
           AND p.prorettype = 'pg_catalog.bool'::pg_catalog.regtype
           AND p.proargtypes[0] = 'pg_catalog.uuid'::pg_catalog.regtype
           AND (t.oid = 'pg_catalog.text'::pg_catalog.regtype OR t.typtype = 'e')
         ORDER BY p.oid
    LOOP
        CONTINUE WHEN NOT pg_catalog.has_function_privilege(c.fn, 'EXECUTE');
        CONTINUE WHEN c.typtype = 'e'
                      AND NOT (pg_catalog.has_schema_privilege(c.typnamespace, 'USAGE')
                               AND pg_catalog.has_type_privilege(c.role_type, 'USAGE'));
        FOREACH label IN ARRAY ARRAY['admin', 'manager'] LOOP
            CONTINUE WHEN c.typtype = 'e'
                          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_enum e
                                          WHERE e.enumtypid = c.role_type AND e.enumlabel = label);
            -- the type's name as the catalog prints it (qualified, quoted);
            -- the user and the label travel as parameters
            EXECUTE pg_catalog.format('SELECT public.has_role($1, $2::%s)', c.role_type)
               INTO yes USING uid, label;
            IF yes THEN
                IF label = 'admin' THEN
                    app_admin := true;
                ELSE
                    app_manager := true;
                END IF;
            END IF;
        END LOOP;
    END LOOP;
END;
$$;

/*
 * May the current user read and write gestao_scouter_config's rows?
 * Superusers and members of gs_export_admin, as in 1.0; and an app admin
 * (has_role 'admin', not 'manager') -- who reaches the table at all only
 * through a role granted it by gs_export_grant_access(role, config =>
 * true).  For the config's policies; it outlives the extension with them.
 */
CREATE FUNCTION @extschema@.gs_export_config_admin()
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me oid;
    is_super boolean;
    admins oid;
BEGIN
    -- by name: CURRENT_USER::regrole would read a name such as "Ana" as ana
    SELECT r.oid, r.rolsuper INTO me, is_super FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER;
    IF is_super THEN
        RETURN true;
    END IF;
    SELECT r.oid INTO admins FROM pg_catalog.pg_roles r WHERE r.rolname = 'gs_export_admin';
    IF admins IS NOT NULL AND pg_catalog.pg_has_role(me, admins, 'MEMBER') THEN
        RETURN true;
    END IF;
    RETURN COALESCE((SELECT a.app_admin FROM @extschema@.gs_export_app_user() a), false);
END;
$$;

ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_app_user();
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_config_admin();

/*
 * Who is asking, for the API functions: as 1.0's, with the app's admins
 * and managers both as is_app_admin (they see and steer every job).  Asked
 * as the caller, never as the extension's owner (see gs_export--1.0.sql).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_whoami(OUT uid uuid, OUT is_app_admin boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT a.uid, a.app_admin OR a.app_manager INTO uid, is_app_admin
      FROM @extschema@.gs_export_app_user() a;
END;
$$;

/*
 * The config holds keys: its rows are for superusers, gs_export_admin
 * members and, through a role granted config access, app admins.  A
 * permissive policy lets them in where gs_export made the table; a
 * restrictive one keeps everyone else out where TabuladorMax's own table
 * has broader policies of its own (the original had "public CRUD" in one
 * migration).  Others with a grant see no row, insert none (42501), and
 * update or delete none.  The table's owner (and so the workers, which
 * run as the extension's owner, a superuser) is not subject to them.
 */
ALTER TABLE @extschema@.gestao_scouter_config ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS gs_export_config_admins ON @extschema@.gestao_scouter_config;
DROP POLICY IF EXISTS gs_export_config_admins_only ON @extschema@.gestao_scouter_config;
CREATE POLICY gs_export_config_admins ON @extschema@.gestao_scouter_config
    FOR ALL TO PUBLIC
    USING ((SELECT @extschema@.gs_export_config_admin()))
    WITH CHECK ((SELECT @extschema@.gs_export_config_admin()));
CREATE POLICY gs_export_config_admins_only ON @extschema@.gestao_scouter_config
    AS RESTRICTIVE FOR ALL TO PUBLIC
    USING ((SELECT @extschema@.gs_export_config_admin()))
    WITH CHECK ((SELECT @extschema@.gs_export_config_admin()));

/* ---- 6. Privileges ------------------------------------------------------ */

/*
 * As at the end of gs_export--1.0.sql: nothing of what this script makes is
 * left to default privileges (Supabase's grant ALL on new functions of
 * public to anon, authenticated and service_role; PUBLIC's EXECUTE).  Every
 * grant is revoked from every role but the owner on the internal functions
 * (members named _gs_*, the API's and the state machine's, but
 * _gs_export_whoami, which anyone may call)
 * and on the functions added here, and then granted as documented.  The API
 * functions and the tables keep their privileges, including those that
 * gs_export_grant_access gave since 1.0 was installed.
 */
DO $privileges$
DECLARE
    r record;
    ext oid := (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'gs_export');
    added pg_catalog.regprocedure[] := ARRAY[
        '@extschema@._gs_export_latest_active_job(uuid)',
        '@extschema@._gs_export_active_conflict(text, uuid)',
        '@extschema@.gs_export_viewer()',
        '@extschema@.gs_export_visible_job_ids()'];
BEGIN
    -- a NULL ACL is the default one, which lets PUBLIC execute a function
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure::text AS fn,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END AS grantee
          FROM pg_catalog.pg_proc p,
               pg_catalog.aclexplode(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
         WHERE a.grantee <> p.proowner
           AND (p.oid = ANY (added)
                OR (p.proname LIKE '\_gs\_%'
                    AND p.proname <> '_gs_export_whoami'
                    AND p.oid IN (SELECT objid FROM pg_catalog.pg_depend
                                  WHERE classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                    AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                                    AND refobjid = ext AND deptype = 'e')))
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %s', r.fn, r.grantee);
    END LOOP;
END
$privileges$;

-- called as any role, by row level security
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_viewer() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_visible_job_ids() TO PUBLIC;

/*
 * gs_export_grant_access(role, admin, config): 1.0's, and config => true
 * grants the role SELECT, INSERT, UPDATE and DELETE on
 * gestao_scouter_config, whose row level security (section 5) admits
 * through it only the app's admins.  For a role that the app's users share
 * (Supabase's authenticated).  Never for anon: it has no auth.uid(), so
 * every anonymous caller would be the same user, and it must reach neither
 * the jobs nor the keys.  For the extension's owner and superusers, as in
 * 1.0.  The API functions it grants are a list, not names written out:
 * every function of the extension, not internal (_gs_*), on which
 * gs_export_user or gs_export_admin holds EXECUTE, so that a function
 * added to the API is granted by its own GRANT to those two roles only.
 */
DROP FUNCTION @extschema@.gs_export_grant_access(regrole, boolean);
CREATE FUNCTION @extschema@.gs_export_grant_access(grantee regrole, admin boolean DEFAULT false,
                                                              config boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn text;
BEGIN
    IF grantee IS NULL OR admin IS NULL OR config IS NULL THEN
        RAISE EXCEPTION 'grantee, admin and config must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = grantee) = 'anon' THEN
        RAISE EXCEPTION 'gs_export is not for anon'
            USING ERRCODE = 'invalid_grant_operation',
                  DETAIL = 'anon''s callers have no auth.uid(): they would share each other''s jobs.',
                  HINT = 'Grant access to authenticated: the app''s signed-in users.';
    END IF;
    IF config AND NOT admin
       AND NOT (SELECT c.relrowsecurity FROM pg_catalog.pg_class c
                WHERE c.oid = '@extschema@.gestao_scouter_config'::pg_catalog.regclass
                  AND EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                              WHERE p.polrelid = c.oid AND NOT p.polpermissive
                                AND p.polname = 'gs_export_config_admins_only')) THEN
        RAISE EXCEPTION 'gestao_scouter_config has no row level security of gs_export''s'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Config access for a role would then be access to the keys for all its users.',
                  HINT = 'ALTER TABLE gestao_scouter_config ENABLE ROW LEVEL SECURITY, or ALTER EXTENSION gs_export UPDATE.';
    END IF;
    EXECUTE pg_catalog.format('GRANT %s TO %s',
                              CASE WHEN admin THEN 'gs_export_admin' ELSE 'gs_export_user' END, grantee);
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %s TO %s', '@extschema@', grantee);
    FOR fn IN
        SELECT DISTINCT p.oid::pg_catalog.regprocedure::text
          FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
         WHERE a.privilege_type = 'EXECUTE'
           AND a.grantee IN (SELECT r.oid FROM pg_catalog.pg_roles r
                              WHERE r.rolname IN ('gs_export_user', 'gs_export_admin'))
           AND p.proname NOT LIKE '\_%'
           AND p.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d
                          WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                            AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                            AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e
                                               WHERE e.extname = 'gs_export')
                            AND d.deptype = 'e')
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', fn, grantee);
    END LOOP;
    EXECUTE pg_catalog.format('GRANT SELECT ON @extschema@.gestao_scouter_export_jobs,'
                              ' @extschema@.gestao_scouter_export_errors TO %s', grantee);
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend
               WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 AND objid = '@extschema@.sync_events'::pg_catalog.regclass
                 AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                 AND deptype = 'e') THEN
        EXECUTE pg_catalog.format('GRANT SELECT ON @extschema@.sync_events TO %s', grantee);
    END IF;
    IF admin OR config THEN
        EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE'
                                  ' ON @extschema@.gestao_scouter_config TO %s', grantee);
    END IF;
END;
$$;

/*
 * Nothing of the above left to default privileges: gs_export_grant_access
 * for the owner and superusers only; the two functions the config's
 * policies call, like gs_export_viewer, for anyone (they tell a caller only
 * about itself).
 */
DO $privileges_app_admins$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure::text AS fn,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END AS grantee
          FROM pg_catalog.pg_proc p,
               pg_catalog.aclexplode(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
         WHERE a.grantee <> p.proowner
           AND p.oid IN ('@extschema@.gs_export_grant_access(regrole, boolean, boolean)'::pg_catalog.regprocedure,
                         '@extschema@.gs_export_app_user()'::pg_catalog.regprocedure,
                         '@extschema@.gs_export_config_admin()'::pg_catalog.regprocedure)
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %s', r.fn, r.grantee);
    END LOOP;
END
$privileges_app_admins$;

-- called as any role, by _gs_export_whoami and by row level security
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_app_user() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_config_admin() TO PUBLIC;

/*
 * gs_export_reset, gs_export_delete and gs_export_status: EXECUTE for
 * gs_export_user and gs_export_admin only, as for the 1.0 API (revoked
 * first from whoever else got it: PUBLIC by default, anon, authenticated
 * and service_role by Supabase's default privileges).  Their internal
 * functions are closed by $privileges$ above.
 */
DO $privileges_reset_delete_status$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure::text AS fn,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END AS grantee
          FROM pg_catalog.pg_proc p,
               pg_catalog.aclexplode(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
         WHERE a.grantee <> p.proowner
           AND p.oid IN ('@extschema@.gs_export_reset(uuid)'::pg_catalog.regprocedure,
                         '@extschema@.gs_export_delete(uuid)'::pg_catalog.regprocedure,
                         '@extschema@.gs_export_status(uuid)'::pg_catalog.regprocedure)
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %s', r.fn, r.grantee);
    END LOOP;
END
$privileges_reset_delete_status$;

GRANT EXECUTE ON FUNCTION @extschema@.gs_export_reset(uuid) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_delete(uuid) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_status(uuid) TO gs_export_user, gs_export_admin;

/*
 * On an upgrade, the roles that gs_export_grant_access served under 1.0
 * (those holding EXECUTE on gs_export_resume themselves, such as Supabase's
 * authenticated, which inherits nothing from gs_export_user) get the new
 * functions as well: what they could do, they still can.  A fresh install
 * has none.
 */
DO $grant_access_upgrade$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT a.grantee::pg_catalog.regrole::text AS grantee
          FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
         WHERE p.oid = '@extschema@.gs_export_resume(uuid)'::pg_catalog.regprocedure
           AND a.privilege_type = 'EXECUTE'
           AND a.grantee <> 0
           AND a.grantee <> p.proowner
           AND a.grantee NOT IN ('gs_export_user'::pg_catalog.regrole, 'gs_export_admin'::pg_catalog.regrole)
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION @extschema@.gs_export_reset(uuid),'
                                  ' @extschema@.gs_export_delete(uuid), @extschema@.gs_export_status(uuid)'
                                  ' TO %s', r.grantee);
    END LOOP;
END
$grant_access_upgrade$;

/*
 * gs_export_sync: EXECUTE for gs_export_user and gs_export_admin only, as
 * gs_export_create (revoked first from whoever else got it: PUBLIC by
 * default, anon, authenticated and service_role by Supabase's default
 * privileges).  Its internal functions are closed by $privileges$ above.
 * gs_export_sync_marks is internal: nobody but its owner (Supabase's
 * default privileges would give it to anon and authenticated).
 */
DO $privileges_sync$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure::text AS fn,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END AS grantee
          FROM pg_catalog.pg_proc p,
               pg_catalog.aclexplode(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
         WHERE a.grantee <> p.proowner
           AND p.oid = '@extschema@.gs_export_sync(jsonb)'::pg_catalog.regprocedure
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %s', r.fn, r.grantee);
    END LOOP;
    FOR r IN
        SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END AS grantee
          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
         WHERE c.oid = '@extschema@.gs_export_sync_marks'::pg_catalog.regclass
           AND a.grantee <> c.relowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON @extschema@.gs_export_sync_marks FROM %s', r.grantee);
    END LOOP;
END
$privileges_sync$;

GRANT EXECUTE ON FUNCTION @extschema@.gs_export_sync(jsonb) TO gs_export_user, gs_export_admin;

/*
 * On an upgrade, the roles that gs_export_grant_access served under 1.0
 * (those holding EXECUTE on gs_export_create themselves, such as
 * Supabase's authenticated, which inherits nothing from gs_export_user)
 * get gs_export_sync too: what grant_access gives now.  Not anon, which
 * 1.1 refuses.  A fresh install has none.
 */
DO $grant_access_sync$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT a.grantee::pg_catalog.regrole::text AS grantee
          FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
         WHERE p.oid = '@extschema@.gs_export_create(date, date, jsonb)'::pg_catalog.regprocedure
           AND a.privilege_type = 'EXECUTE'
           AND a.grantee <> 0
           AND a.grantee <> p.proowner
           AND a.grantee NOT IN (SELECT ro.oid FROM pg_catalog.pg_roles ro
                                  WHERE ro.rolname IN ('gs_export_user', 'gs_export_admin', 'anon'))
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION @extschema@.gs_export_sync(jsonb) TO %s', r.grantee);
    END LOOP;
END
$grant_access_sync$;

/* ---- 7. Live updates ---------------------------------------------------- */

/*
 * NOTIFY gs_export after every change of a job's state or progress (one
 * per recorded batch, per pause, resume, completion ...), delivered when
 * the change commits.  Any role that may connect may LISTEN, so the payload
 * holds nothing but the job's id, status, position and counts.  The
 * setting gs_export.notify (default on) turns it off.  Like the config
 * guard, the function outlives the extension: the jobs table may be
 * TabuladorMax's own, which DROP EXTENSION leaves, trigger included.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_job_notify() CASCADE;
CREATE FUNCTION @extschema@.gs_export_job_notify()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF NOT COALESCE(pg_catalog.current_setting('gs_export.notify', true), 'on')::boolean THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    PERFORM pg_catalog.pg_notify('gs_export', pg_catalog.json_build_object(
        'job_id', r.id,
        'status', CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE r.status END,
        'processing_date', r.processing_date,
        'total_leads', r.total_leads,
        'exported_leads', r.exported_leads,
        'error_leads', r.error_leads)::text);
    RETURN NULL;
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_job_notify();

DROP TRIGGER IF EXISTS gs_export_job_notify ON @extschema@.gestao_scouter_export_jobs;
CREATE TRIGGER gs_export_job_notify
    AFTER INSERT OR DELETE OR UPDATE OF status, processing_date, total_leads, exported_leads, error_leads
    ON @extschema@.gestao_scouter_export_jobs
    FOR EACH ROW EXECUTE FUNCTION @extschema@.gs_export_job_notify();

DO $notify_privileges$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END AS grantee
          FROM pg_catalog.pg_proc p,
               pg_catalog.aclexplode(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
         WHERE p.oid = '@extschema@.gs_export_job_notify()'::pg_catalog.regprocedure
           AND a.grantee <> p.proowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION @extschema@.gs_export_job_notify() FROM %s',
                                  r.grantee);
    END LOOP;
END
$notify_privileges$;

/*
 * Supabase Realtime sends the changes of the tables of the publication
 * supabase_realtime, filtered by their row level security: where it exists,
 * the jobs and errors tables join it, so that a UI subscribed to them sees
 * each change.
 */
DO $realtime$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'supabase_realtime') THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['gestao_scouter_export_jobs', 'gestao_scouter_export_errors'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables
                       WHERE pubname = 'supabase_realtime'
                         AND schemaname = '@extschema@' AND tablename = t)
           AND NOT (SELECT puballtables FROM pg_catalog.pg_publication
                    WHERE pubname = 'supabase_realtime') THEN
            EXECUTE pg_catalog.format('ALTER PUBLICATION supabase_realtime ADD TABLE %I.%I',
                                      '@extschema@', t);
        END IF;
    END LOOP;
END
$realtime$;
