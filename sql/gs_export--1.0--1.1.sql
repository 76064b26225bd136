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
 */

\echo Use "ALTER EXTENSION gs_export UPDATE TO '1.1'" to load this file. \quit

/* ---- 1. Jobs table ----------------------------------------------------- */

/* ---- 2. One active job -------------------------------------------------- */

/*
 * Lock order.  A job worker records a batch in one transaction that writes
 * sync_events, then gestao_scouter_export_errors, then the job's row; this
 * script changes all three tables (an index, policies) and may run while a
 * job does.  Taking them here at once, in the worker's order, keeps the two
 * from deadlocking (a deadlock would fail the job).  For that, nothing
 * before this statement may lock the jobs table.
 */
LOCK TABLE @extschema@.sync_events, @extschema@.gestao_scouter_export_errors,
           @extschema@.gestao_scouter_export_jobs IN ACCESS EXCLUSIVE MODE;

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

/* ---- 4. The SQL API's internal functions -------------------------------- */

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

    BEGIN
        INSERT INTO @extschema@.gestao_scouter_export_jobs
               (status, start_date, end_date, options, batch_size, delay_ms, time_zone,
                owner_role, created_by, total_leads, exported_leads, error_leads)
        VALUES ('pending', p_start_date, p_end_date, p_options,
                (resolved ->> 'batch_size')::integer, (resolved ->> 'delay_ms')::integer,
                resolved ->> 'time_zone',
                (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = p_caller),
                p_uid, 0, 0, 0)
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

/* ---- 6. Privileges ------------------------------------------------------ */

/*
 * As at the end of gs_export--1.0.sql: nothing of what this script makes is
 * left to default privileges (Supabase's grant ALL on new functions of
 * public to anon, authenticated and service_role; PUBLIC's EXECUTE).  Every
 * grant is revoked from every role but the owner on the internal functions
 * (members named _gs_export_*, but _gs_export_whoami, which anyone may call)
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
                OR (p.proname LIKE '\_gs\_export\_%'
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
