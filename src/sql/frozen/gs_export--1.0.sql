/*
 * gs_export--1.0.sql: the SQL side of gs_export.  Bookkeeping tables (kept
 * when TabuladorMax already has them), roles, and the SQL API.
 */

\echo Use "CREATE EXTENSION gs_export" to load this file. \quit

/*
 * Roles.  Cluster-wide, so created only when missing and never dropped.
 */
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'gs_export_user') THEN
        CREATE ROLE gs_export_user NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'gs_export_admin') THEN
        CREATE ROLE gs_export_admin NOLOGIN;
    END IF;
END
$roles$;

/*
 * Tables.  TabuladorMax may already have gestao_scouter_config,
 * gestao_scouter_export_jobs and sync_events, with rows: those are kept as
 * they are (not made members of the extension, so DROP EXTENSION leaves
 * them) and only gain the columns gs_export needs.  Tables created here are
 * members of the extension and are dumped with their data.
 */
DO $tables$
DECLARE
    created text[] := '{}';
    t text;
BEGIN
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_config') IS NULL THEN
        CREATE TABLE @extschema@.gestao_scouter_config (
            id                          uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
            project_url                 text NOT NULL,
            anon_key                    text NOT NULL,
            service_role_key_encrypted  text,
            active                      boolean DEFAULT true,
            sync_enabled                boolean DEFAULT false,
            created_at                  timestamptz DEFAULT pg_catalog.now(),
            updated_at                  timestamptz DEFAULT pg_catalog.now()
        );
        created := created || 'gestao_scouter_config'::text;
    END IF;

    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs') IS NULL THEN
        CREATE TABLE @extschema@.gestao_scouter_export_jobs (
            id                  uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
            status              text NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed')),
            start_date          date NOT NULL,
            end_date            date,
            processing_date     date,
            last_completed_date date,
            total_leads         bigint NOT NULL DEFAULT 0,
            exported_leads      bigint NOT NULL DEFAULT 0,
            error_leads         bigint NOT NULL DEFAULT 0,
            pause_reason        text,
            paused_at           timestamptz,
            created_at          timestamptz DEFAULT pg_catalog.now(),
            started_at          timestamptz,
            completed_at        timestamptz,
            updated_at          timestamptz DEFAULT pg_catalog.now(),
            created_by          uuid
        );
        created := created || 'gestao_scouter_export_jobs'::text;
    END IF;

    IF pg_catalog.to_regclass('@extschema@.sync_events') IS NULL THEN
        CREATE TABLE @extschema@.sync_events (
            id                  uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
            event_type          text NOT NULL CHECK (event_type IN ('create', 'update', 'delete')),
            direction           text NOT NULL,
            lead_id             bigint,
            status              text NOT NULL CHECK (status IN ('success', 'error', 'pending')),
            error_message       text,
            sync_duration_ms    integer,
            created_at          timestamptz DEFAULT pg_catalog.now()
        );
        created := created || 'sync_events'::text;
    END IF;

    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_errors') IS NULL THEN
        CREATE TABLE @extschema@.gestao_scouter_export_errors (
            id              uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
            job_id          uuid REFERENCES @extschema@.gestao_scouter_export_jobs (id) ON DELETE CASCADE,
            lead_id         bigint,
            lead_snapshot   jsonb,
            fields_sent     jsonb,
            error_message   text,
            error_details   jsonb,
            response_status integer,
            response_body   jsonb,
            ignored_fields  text[],
            created_at      timestamptz DEFAULT pg_catalog.now()
        );
        created := created || 'gestao_scouter_export_errors'::text;
    END IF;

    /* What gs_export adds to the jobs table, old or new. */
    ALTER TABLE @extschema@.gestao_scouter_export_jobs
        ADD COLUMN IF NOT EXISTS options jsonb NOT NULL DEFAULT '{}',
        ADD COLUMN IF NOT EXISTS batch_size integer,
        ADD COLUMN IF NOT EXISTS delay_ms integer,
        ADD COLUMN IF NOT EXISTS time_zone text,
        ADD COLUMN IF NOT EXISTS owner_role name,
        ADD COLUMN IF NOT EXISTS cursor_updated_at timestamptz,
        ADD COLUMN IF NOT EXISTS cursor_id bigint,
        ADD COLUMN IF NOT EXISTS ignored_fields text[] NOT NULL DEFAULT '{}',
        ADD COLUMN IF NOT EXISTS changes_since timestamptz,
        ADD COLUMN IF NOT EXISTS catchup_pass integer NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS catchup_lower timestamptz;

    ALTER TABLE @extschema@.sync_events
        ADD COLUMN IF NOT EXISTS job_id uuid;

    IF pg_catalog.to_regclass('@extschema@.sync_events_job_id_idx') IS NULL THEN
        CREATE INDEX sync_events_job_id_idx ON @extschema@.sync_events (job_id, lead_id)
            WHERE job_id IS NOT NULL;
    END IF;
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_errors_job_id_idx') IS NULL THEN
        CREATE INDEX gestao_scouter_export_errors_job_id_idx
            ON @extschema@.gestao_scouter_export_errors (job_id);
    END IF;
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs_active_idx') IS NULL THEN
        CREATE INDEX gestao_scouter_export_jobs_active_idx
            ON @extschema@.gestao_scouter_export_jobs (created_at)
            WHERE status IN ('pending', 'running', 'paused');
    END IF;

    /*
     * The remote's address: http or https, a host, nothing else (no user,
     * password, path, query).  NOT VALID: rows already there are kept; the
     * worker checks the URL again before use.
     */
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                   WHERE conrelid = '@extschema@.gestao_scouter_config'::regclass
                     AND conname = 'gestao_scouter_config_project_url_http') THEN
        ALTER TABLE @extschema@.gestao_scouter_config
            ADD CONSTRAINT gestao_scouter_config_project_url_http
            CHECK (project_url ~ '^https?://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?$')
            NOT VALID;
    END IF;

    FOREACH t IN ARRAY created LOOP
        PERFORM pg_catalog.pg_extension_config_dump(('@extschema@.' || pg_catalog.quote_ident(t))::regclass, '');
    END LOOP;
END
$tables$;

/*
 * Who is asking, under Supabase: the auth.uid() user, and whether the app
 * calls them an admin (has_role(uid, 'admin')), where those functions exist
 * and the caller may use them.  Called as the caller (by the API functions,
 * and by the row level security below), never as the extension's owner, so
 * that nothing the caller's database defines runs with more privileges than
 * the caller has.  It tells callers only about themselves: anyone may call
 * it.
 */
CREATE FUNCTION @extschema@._gs_export_whoami(OUT uid uuid, OUT is_app_admin boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure;
BEGIN
    is_app_admin := false;
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
    IF uid IS NULL OR NOT pg_catalog.has_schema_privilege('public', 'USAGE') THEN
        RETURN;
    END IF;
    f := pg_catalog.to_regprocedure('public.has_role(uuid,text)');
    IF f IS NOT NULL AND pg_catalog.has_function_privilege(f, 'EXECUTE') THEN
        EXECUTE 'SELECT public.has_role($1, $2)' INTO is_app_admin USING uid, 'admin';
        is_app_admin := COALESCE(is_app_admin, false);
    END IF;
END;
$$;

/*
 * Functions that outlive the extension.  Row level security policies and a
 * trigger are put on gs_export's tables, which may be TabuladorMax's own
 * tables from before the extension; DROP EXTENSION leaves those tables, and
 * with them these policies, the trigger and the functions they call (made
 * no members of the extension below).  Creating the extension again
 * replaces them.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_job_visible(name, uuid) CASCADE;
DROP FUNCTION IF EXISTS @extschema@.gs_export_job_visible_to(oid, uuid, boolean, name, uuid) CASCADE;
DROP FUNCTION IF EXISTS @extschema@.gs_export_job_id_visible(uuid) CASCADE;
DROP FUNCTION IF EXISTS @extschema@.gs_export_config_guard() CASCADE;

/*
 * May this role (and, under Supabase, this auth.uid() user, who is an app
 * admin or not) see and steer a job of this owner?  Superusers, members of
 * gs_export_admin and app admins (has_role) see every job; a member of
 * gs_export_user sees the jobs its role created and, when a job was created
 * by a Supabase user, only if it is that user too.  The one rule, for the
 * API functions and for row level security.
 */
CREATE FUNCTION @extschema@.gs_export_job_visible_to(p_role oid, p_uid uuid, p_app_admin boolean,
                                                    p_owner_role name, p_created_by uuid)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE oid = p_role AND rolsuper)
       OR pg_catalog.pg_has_role(p_role, 'gs_export_admin', 'MEMBER') THEN
        RETURN true;
    END IF;
    IF NOT pg_catalog.pg_has_role(p_role, 'gs_export_user', 'MEMBER') THEN
        RETURN false;
    END IF;
    IF p_app_admin THEN
        RETURN true;
    END IF;
    RETURN COALESCE(p_owner_role = (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = p_role)
                    AND (p_created_by IS NULL OR p_created_by = p_uid), false);
END;
$$;

/*
 * The same for the current user, as row level security asks it.
 */
CREATE FUNCTION @extschema@.gs_export_job_visible(p_owner_role name, p_created_by uuid)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid uuid;
    app_admin boolean := false;
BEGIN
    IF pg_catalog.to_regprocedure('@extschema@._gs_export_whoami()') IS NOT NULL THEN
        SELECT w.uid, w.is_app_admin INTO uid, app_admin FROM @extschema@._gs_export_whoami() w;
    END IF;
    RETURN @extschema@.gs_export_job_visible_to(CURRENT_USER::regrole::oid, uid, app_admin,
                                                p_owner_role, p_created_by);
END;
$$;

/*
 * May the current user see the job with this id?  For the rows of the
 * errors and sync_events tables: those of a job one may see.  Harmless when
 * the jobs table is gone (after DROP EXTENSION) or not readable.
 */
CREATE FUNCTION @extschema@.gs_export_job_id_visible(p_job_id uuid)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jobs regclass := pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs');
    seen boolean;
BEGIN
    IF jobs IS NULL OR NOT pg_catalog.has_table_privilege(jobs, 'SELECT') THEN
        RETURN false;
    END IF;
    -- the jobs table's own row level security decides
    EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s WHERE id = $1)', jobs)
       INTO seen USING p_job_id;
    RETURN seen;
END;
$$;

/*
 * The config row: a clean error for a bad project_url or key, raised before
 * any constraint would quote the whole row (and with it the key) in its
 * DETAIL.  project_url: http or https, a host, an optional port, nothing
 * more.  Keys: no control characters (they would end up in HTTP headers).
 */
CREATE FUNCTION @extschema@.gs_export_config_guard()
RETURNS trigger
LANGUAGE plpgsql
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
    RETURN NEW;
END;
$$;

ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_job_visible(name, uuid);
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_job_visible_to(oid, uuid, boolean, name, uuid);
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_job_id_visible(uuid);
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_config_guard();

DROP TRIGGER IF EXISTS gs_export_config_guard ON @extschema@.gestao_scouter_config;
CREATE TRIGGER gs_export_config_guard
    BEFORE INSERT OR UPDATE ON @extschema@.gestao_scouter_config
    FOR EACH ROW EXECUTE FUNCTION @extschema@.gs_export_config_guard();

/*
 * Row level security.  Jobs: their owner, admins, superusers.  Errors and
 * the export's sync_events: those of the jobs one may see.  sync_events is
 * often TabuladorMax's own table, which the app reads: when gs_export
 * created it, it has row level security of gs_export's; when it was there
 * and has row level security on, a restrictive policy hides the export's
 * rows of jobs one may not see and leaves the other rows to the app's own
 * policies.
 */
ALTER TABLE @extschema@.gestao_scouter_export_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.gestao_scouter_export_errors ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS gs_export_jobs_visible ON @extschema@.gestao_scouter_export_jobs;
DROP POLICY IF EXISTS gs_export_errors_visible ON @extschema@.gestao_scouter_export_errors;
DROP POLICY IF EXISTS gs_export_sync_events_visible ON @extschema@.sync_events;
CREATE POLICY gs_export_jobs_visible ON @extschema@.gestao_scouter_export_jobs
    FOR SELECT TO PUBLIC
    USING (@extschema@.gs_export_job_visible(owner_role, created_by));
CREATE POLICY gs_export_errors_visible ON @extschema@.gestao_scouter_export_errors
    FOR SELECT TO PUBLIC
    USING (@extschema@.gs_export_job_id_visible(job_id));
DO $sync_events$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend
               WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 AND objid = '@extschema@.sync_events'::pg_catalog.regclass
                 AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                 AND deptype = 'e') THEN
        ALTER TABLE @extschema@.sync_events ENABLE ROW LEVEL SECURITY;
        CREATE POLICY gs_export_sync_events_visible ON @extschema@.sync_events
            FOR SELECT TO PUBLIC
            USING (job_id IS NOT NULL AND @extschema@.gs_export_job_id_visible(job_id));
    ELSIF (SELECT relrowsecurity FROM pg_catalog.pg_class
           WHERE oid = '@extschema@.sync_events'::pg_catalog.regclass) THEN
        CREATE POLICY gs_export_sync_events_visible ON @extschema@.sync_events
            AS RESTRICTIVE FOR SELECT TO PUBLIC
            USING (job_id IS NULL OR @extschema@.gs_export_job_id_visible(job_id));
    END IF;
END
$sync_events$;

/*
 * Internal: the caller must be a gs_export user at all.
 */
CREATE FUNCTION @extschema@._gs_export_check_caller(p_caller oid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE oid = p_caller AND rolsuper)
            OR pg_catalog.pg_has_role(p_caller, 'gs_export_user', 'MEMBER')
            OR pg_catalog.pg_has_role(p_caller, 'gs_export_admin', 'MEMBER')) THEN
        RAISE EXCEPTION 'permission denied to use gs_export'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('Role %I is not a member of gs_export_user or gs_export_admin.',
                                             (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = p_caller)),
                  HINT = 'Ask an administrator to GRANT gs_export_user TO your role.';
    END IF;
END;
$$;

/*
 * Internal: validate the options object and resolve it against the GUC
 * defaults.  Returns the resolved options.
 */
CREATE FUNCTION @extschema@._gs_export_resolve_options(p_options jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    v jsonb;
    n numeric;
    batch_size integer := pg_catalog.current_setting('gs_export.batch_size')::integer;
    delay_ms integer := (SELECT s.setting::integer FROM pg_catalog.pg_settings s
                          WHERE s.name = 'gs_export.batch_delay_ms');
    time_zone text := pg_catalog.current_setting('TimeZone');
BEGIN
    IF p_options IS NULL THEN
        RAISE EXCEPTION 'options must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass ''{}'' for the defaults.';
    END IF;
    IF pg_catalog.jsonb_typeof(p_options) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: ''{"batch_size": 500, "delay_ms": 0, "time_zone": "America/Sao_Paulo"}''.';
    END IF;

    FOR k, v IN SELECT * FROM pg_catalog.jsonb_each(p_options) LOOP
        IF k IN ('batch_size', 'delay_ms') THEN
            IF pg_catalog.jsonb_typeof(v) <> 'number' THEN
                RAISE EXCEPTION 'option "%" must be a whole number', k
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            n := v::text::numeric;
            IF n <> pg_catalog.trunc(n)
               OR (k = 'batch_size' AND (n < 1 OR n > 10000))
               OR (k = 'delay_ms' AND (n < 0 OR n > 60000)) THEN
                RAISE EXCEPTION 'option "%" is out of range: %', k, v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = CASE k WHEN 'batch_size' THEN 'batch_size goes from 1 to 10000.'
                                        ELSE 'delay_ms goes from 0 to 60000.' END;
            END IF;
            IF k = 'batch_size' THEN
                batch_size := n::integer;
            ELSE
                delay_ms := n::integer;
            END IF;
        ELSIF k = 'time_zone' THEN
            IF pg_catalog.jsonb_typeof(v) <> 'string'
               OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names
                              WHERE name = (v #>> '{}')) THEN
                RAISE EXCEPTION 'option "time_zone" is not a known time zone: %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Use an IANA name from pg_timezone_names, such as "America/Sao_Paulo" or "UTC".';
            END IF;
            time_zone := v #>> '{}';
        ELSE
            RAISE EXCEPTION 'unknown option "%"', k
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Known options are batch_size, delay_ms and time_zone.';
        END IF;
    END LOOP;

    RETURN pg_catalog.jsonb_build_object('batch_size', batch_size,
                                         'delay_ms', delay_ms,
                                         'time_zone', time_zone);
END;
$$;

/*
 * Internal: the other active job, if any.  Called with the jobs table
 * locked, so that two callers cannot both see none.
 */
CREATE FUNCTION @extschema@._gs_export_check_no_active(p_except uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    other record;
BEGIN
    SELECT id, status INTO other
      FROM @extschema@.gestao_scouter_export_jobs
     WHERE status IN ('pending', 'running', 'paused')
       AND id IS DISTINCT FROM p_except
     ORDER BY created_at
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'another export job is %', other.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('Only one export job may be pending, running or paused at a time; job %s is %s.',
                                             other.id, other.status),
                  HINT = pg_catalog.format('Wait for job %s to finish, or pause it and let it fail or complete first.', other.id);
    END IF;
END;
$$;

CREATE FUNCTION @extschema@._gs_export_check_config()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM @extschema@.gestao_scouter_config
                   WHERE active AND sync_enabled) THEN
        RAISE EXCEPTION 'gestao-scouter is not configured'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'No row of gestao_scouter_config has active and sync_enabled both true.',
                  HINT = 'An administrator must insert the remote''s project_url and anon_key into gestao_scouter_config with active = true and sync_enabled = true.';
    END IF;
END;
$$;

/*
 * Internal implementation of gs_export_create.  Runs as the extension's
 * owner; p_caller is the role that called the API function.
 */
CREATE FUNCTION @extschema@._gs_export_create(p_caller oid, p_uid uuid, p_app_admin boolean, p_start_date date, p_end_date date, p_options jsonb)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    resolved jsonb;
    job_id uuid;
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
    IF NOT pg_catalog.has_table_privilege(p_caller, '@extschema@.leads', 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table leads'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A job reads the leads with its owner''s privileges: GRANT SELECT ON leads to the role that creates it.';
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

    INSERT INTO @extschema@.gestao_scouter_export_jobs
           (status, start_date, end_date, options, batch_size, delay_ms, time_zone,
            owner_role, created_by, total_leads, exported_leads, error_leads)
    VALUES ('pending', p_start_date, p_end_date, p_options,
            (resolved ->> 'batch_size')::integer, (resolved ->> 'delay_ms')::integer,
            resolved ->> 'time_zone',
            (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = p_caller),
            p_uid, 0, 0, 0)
    RETURNING id INTO job_id;

    RETURN job_id;
END;
$$;

/*
 * Internal: the job, locked, if the caller may see it; else 42704.
 */
CREATE FUNCTION @extschema@._gs_export_lock_job(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid)
RETURNS @extschema@.gestao_scouter_export_jobs
LANGUAGE plpgsql
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
    SELECT * INTO job FROM @extschema@.gestao_scouter_export_jobs
     WHERE id = p_job_id FOR UPDATE;
    IF NOT FOUND OR NOT @extschema@.gs_export_job_visible_to(p_caller, p_uid, p_app_admin, job.owner_role, job.created_by) THEN
        RAISE EXCEPTION 'export job % does not exist', p_job_id
            USING ERRCODE = 'undefined_object',
                  HINT = 'List your jobs with: SELECT id, status FROM gestao_scouter_export_jobs ORDER BY created_at DESC;';
    END IF;
    RETURN job;
END;
$$;

CREATE FUNCTION @extschema@._gs_export_pause(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid, p_reason text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job @extschema@.gestao_scouter_export_jobs;
BEGIN
    job := @extschema@._gs_export_lock_job(p_caller, p_uid, p_app_admin, p_job_id);
    IF p_reason IS NULL THEN
        RAISE EXCEPTION 'reason must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave reason out to record ''Manual''.';
    END IF;
    IF job.status NOT IN ('pending', 'running') THEN
        RAISE EXCEPTION 'export job % cannot be paused: it is %', p_job_id, job.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a pending or running job can be paused.';
    END IF;
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET status = 'paused', paused_at = pg_catalog.now(), pause_reason = p_reason,
           updated_at = pg_catalog.now()
     WHERE id = p_job_id;
END;
$$;

CREATE FUNCTION @extschema@._gs_export_resume(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job @extschema@.gestao_scouter_export_jobs;
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
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET status = 'running', pause_reason = NULL, paused_at = NULL,
           completed_at = NULL, updated_at = pg_catalog.now()
     WHERE id = p_job_id;
END;
$$;


/*
 * The SQL API.  C functions that note who called, then run the internal
 * function above as the extension's owner with a fixed search_path, and
 * wake the launcher when the calling transaction commits.
 */
CREATE FUNCTION @extschema@.gs_export_create(start_date date DEFAULT CURRENT_DATE,
                                             end_date date DEFAULT NULL,
                                             options jsonb DEFAULT '{}')
RETURNS uuid
AS 'MODULE_PATHNAME', 'gs_export_create'
LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.gs_export_pause(job_id uuid, reason text DEFAULT 'Manual')
RETURNS void
AS 'MODULE_PATHNAME', 'gs_export_pause'
LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.gs_export_resume(job_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'gs_export_resume'
LANGUAGE C VOLATILE;

/*
 * gs_export_grant_access(role, admin): what a role needs to use gs_export,
 * granted to it directly.  Needed where roles do not inherit (Supabase's
 * authenticated is NOINHERIT: membership of gs_export_user alone gives it
 * no privileges).  For the extension's owner and superusers.
 */
CREATE FUNCTION @extschema@.gs_export_grant_access(grantee regrole, admin boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF grantee IS NULL OR admin IS NULL THEN
        RAISE EXCEPTION 'grantee and admin must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    EXECUTE pg_catalog.format('GRANT %s TO %s',
                              CASE WHEN admin THEN 'gs_export_admin' ELSE 'gs_export_user' END, grantee);
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %s TO %s', '@extschema@', grantee);
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION @extschema@.gs_export_create(date, date, jsonb),'
                              ' @extschema@.gs_export_pause(uuid, text), @extschema@.gs_export_resume(uuid)'
                              ' TO %s', grantee);
    EXECUTE pg_catalog.format('GRANT SELECT ON @extschema@.gestao_scouter_export_jobs,'
                              ' @extschema@.gestao_scouter_export_errors TO %s', grantee);
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend
               WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 AND objid = '@extschema@.sync_events'::pg_catalog.regclass
                 AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                 AND deptype = 'e') THEN
        EXECUTE pg_catalog.format('GRANT SELECT ON @extschema@.sync_events TO %s', grantee);
    END IF;
    IF admin THEN
        EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE'
                                  ' ON @extschema@.gestao_scouter_config TO %s', grantee);
    END IF;
END;
$$;

/*
 * Privileges, last, so that nothing granted by default (Supabase grants
 * ALL on new tables and functions of public to anon, authenticated and
 * service_role) survives: everything of gs_export's is revoked from every
 * role but its owner, then granted as documented.  TabuladorMax's own
 * sync_events is left to its owner.
 */
DO $privileges$
DECLARE
    r record;
    ext oid := (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'gs_export');
    outliving pg_catalog.regprocedure[] := ARRAY[
        '@extschema@.gs_export_job_visible(name, uuid)',
        '@extschema@.gs_export_job_visible_to(oid, uuid, boolean, name, uuid)',
        '@extschema@.gs_export_job_id_visible(uuid)',
        '@extschema@.gs_export_config_guard()'];
BEGIN
    -- a NULL ACL is the default one, which lets PUBLIC execute a function
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure::text AS fn,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END AS grantee
          FROM pg_catalog.pg_proc p,
               pg_catalog.aclexplode(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
         WHERE a.grantee <> p.proowner
           AND (p.oid IN (SELECT objid FROM pg_catalog.pg_depend
                          WHERE classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                            AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                            AND refobjid = ext AND deptype = 'e')
                OR p.oid = ANY (outliving))
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %s', r.fn, r.grantee);
    END LOOP;

    FOR r IN
        SELECT c.oid::pg_catalog.regclass::text AS tab,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END AS grantee
          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
         WHERE a.grantee <> c.relowner
           AND (c.oid IN ('@extschema@.gestao_scouter_export_jobs'::pg_catalog.regclass,
                          '@extschema@.gestao_scouter_export_errors'::pg_catalog.regclass,
                          '@extschema@.gestao_scouter_config'::pg_catalog.regclass)
                OR c.oid IN (SELECT objid FROM pg_catalog.pg_depend
                             WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                               AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                               AND refobjid = ext AND deptype = 'e'))
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', r.tab, r.grantee);
    END LOOP;

    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend
               WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 AND objid = '@extschema@.sync_events'::pg_catalog.regclass
                 AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                 AND refobjid = ext AND deptype = 'e') THEN
        GRANT SELECT ON @extschema@.sync_events TO gs_export_user, gs_export_admin;
    END IF;
END
$privileges$;

GRANT USAGE ON SCHEMA @extschema@ TO gs_export_user, gs_export_admin;
GRANT SELECT ON @extschema@.gestao_scouter_export_jobs TO gs_export_user, gs_export_admin;
GRANT SELECT ON @extschema@.gestao_scouter_export_errors TO gs_export_user, gs_export_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.gestao_scouter_config TO gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_create(date, date, jsonb) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_pause(uuid, text) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_resume(uuid) TO gs_export_user, gs_export_admin;
-- called as any role, by the API functions and by row level security
GRANT EXECUTE ON FUNCTION @extschema@._gs_export_whoami() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_job_visible(name, uuid) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_job_visible_to(oid, uuid, boolean, name, uuid) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_job_id_visible(uuid) TO PUBLIC;
