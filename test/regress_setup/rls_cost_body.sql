-- test/regress_setup/rls_cost_body.sql: the body of sql/rls_cost.sql, run
-- in each of its databases, with gs_export installed and the roles
-- regress_rls_* there.

-- Supabase's auth.uid() (from the JWT's claims) and the app's has_role().
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO PUBLIC;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
    AS $$ SELECT (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid $$;
CREATE TABLE public.user_roles (user_id uuid, role text);
INSERT INTO public.user_roles VALUES ('00000000-0000-4000-8000-0000000000a9', 'admin');
CREATE FUNCTION public.has_role(uuid, text) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public
    AS $$ SELECT EXISTS (SELECT 1 FROM public.user_roles WHERE user_id = $1 AND role = $2) $$;

GRANT SELECT ON public.leads TO regress_rls_owner;
GRANT SELECT ON gestao_scouter_export_jobs, gestao_scouter_export_errors, sync_events
   TO regress_rls_outsider;
INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
VALUES ('http://127.0.0.1:9', 'regress-anon-key', true, true);

-- The job measured: created by its owner through the API, then paused.
SET ROLE regress_rls_owner;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job \gset
SELECT gs_export_pause(:'job', 'measured');
RESET ROLE;
-- Other jobs, ended: one more of the owner's, from a Supabase user (a1);
-- another user's; two of the app's role, from two of its users (a2, a3).
INSERT INTO gestao_scouter_export_jobs (id, status, start_date, owner_role, owner_oid, created_by) VALUES
    ('00000000-0000-4000-8000-000000000002', 'completed', '2026-01-31', 'regress_rls_owner', 'regress_rls_owner'::regrole, '00000000-0000-4000-8000-0000000000a1'),
    ('00000000-0000-4000-8000-000000000003', 'completed', '2026-01-31', 'regress_rls_other', 'regress_rls_other'::regrole, NULL),
    ('00000000-0000-4000-8000-000000000004', 'failed',    '2026-01-31', 'regress_rls_app',   'regress_rls_app'::regrole,   '00000000-0000-4000-8000-0000000000a2'),
    ('00000000-0000-4000-8000-000000000005', 'completed', '2026-01-31', 'regress_rls_app',   'regress_rls_app'::regrole,   '00000000-0000-4000-8000-0000000000a3');

-- 1.0's policy on the jobs table called, per row, a function that asked
-- who the caller is and applied the rule (gs_export_job_visible, dropped in
-- 1.2; its rule is gs_export_job_visible_to's, by owner now): the same,
-- for the comparisons below.
CREATE FUNCTION public.regress_gs_export_job_visible(p_owner oid, p_created_by uuid)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
DECLARE
    uid uuid;
    app_admin boolean := false;
BEGIN
    SELECT w.uid, w.is_app_admin INTO uid, app_admin FROM public._gs_export_whoami() w;
    RETURN public.gs_export_job_visible_to(CURRENT_USER::regrole::oid, uid, app_admin, p_owner, p_created_by);
END;
$$;
-- A few sync_events of each job, every tenth an error, and some of no job
-- (the app's own); an errors row for each error.
INSERT INTO sync_events (event_type, direction, lead_id, status, error_message, job_id)
SELECT 'update', 'supabase_to_gestao_scouter', g,
       CASE WHEN g % 10 = 0 THEN 'error' ELSE 'success' END,
       CASE WHEN g % 10 = 0 THEN 'rejected' END, j.id
  FROM (VALUES (:'job'::uuid, 50),
               ('00000000-0000-4000-8000-000000000002', 40),
               ('00000000-0000-4000-8000-000000000003', 30),
               ('00000000-0000-4000-8000-000000000004', 20),
               ('00000000-0000-4000-8000-000000000005', 10),
               (NULL, 30)) j(id, n),
       generate_series(1, j.n) g;
INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message)
SELECT e.job_id, e.lead_id, e.error_message FROM sync_events e WHERE e.status = 'error' AND e.job_id IS NOT NULL;
SELECT CASE WHEN job_id = :'job' THEN 'measured' ELSE coalesce(right(job_id::text, 1), '-') END AS job,
       count(*) AS events,
       (SELECT count(*) FROM gestao_scouter_export_errors r WHERE r.job_id IS NOT DISTINCT FROM e.job_id) AS errors
  FROM sync_events e GROUP BY job_id ORDER BY 1;

-- The policies: plain expressions; what depends on the caller is in
-- uncorrelated sub-selects.
SELECT c.relname, p.polname, p.polpermissive, pg_get_expr(p.polqual, p.polrelid) AS qual
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
 WHERE p.polname LIKE 'gs\_export\_%'
 ORDER BY 1, 2;

-- What a viewer sees: counts, and a digest of the rows' ids.
CREATE FUNCTION public.rls_seen(OUT jobs bigint, OUT events bigint, OUT errors bigint, OUT digest text)
LANGUAGE sql AS $$
    SELECT (SELECT count(*) FROM public.gestao_scouter_export_jobs),
           (SELECT count(*) FROM public.sync_events),
           (SELECT count(*) FROM public.gestao_scouter_export_errors),
           md5(concat_ws('/',
               (SELECT string_agg(id::text, ',' ORDER BY id) FROM public.gestao_scouter_export_jobs),
               (SELECT string_agg(id::text, ',' ORDER BY id) FROM public.sync_events),
               (SELECT string_agg(id::text, ',' ORDER BY id) FROM public.gestao_scouter_export_errors)))
$$;
-- ... as a role, with a Supabase user's JWT claims or none.
CREATE FUNCTION public.rls_seen_as(r name, sub uuid)
RETURNS TABLE (jobs bigint, events bigint, errors bigint, digest text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('request.jwt.claims',
                       CASE WHEN sub IS NULL THEN '' ELSE json_build_object('sub', sub)::text END, true);
    EXECUTE format('SET LOCAL ROLE %I', r);
    RETURN QUERY EXECUTE 'SELECT * FROM public.rls_seen()';
    RESET ROLE;
    PERFORM set_config('request.jwt.claims', '', true);
END;
$$;
CREATE TEMP TABLE viewers (who text, r name, sub uuid);
INSERT INTO viewers VALUES
    ('owner',                   'regress_rls_owner',    NULL),
    ('owner as Supabase a1',    'regress_rls_owner',    '00000000-0000-4000-8000-0000000000a1'),
    ('other user',              'regress_rls_other',    NULL),
    ('admin',                   'regress_rls_admin',    NULL),
    ('app user a2',             'regress_rls_app',      '00000000-0000-4000-8000-0000000000a2'),
    ('app user a4',             'regress_rls_app',      '00000000-0000-4000-8000-0000000000a4'),
    ('app admin a9',            'regress_rls_app',      '00000000-0000-4000-8000-0000000000a9'),
    ('app, no JWT',             'regress_rls_app',      NULL),
    ('outsider',                'regress_rls_outsider', NULL),
    ('outsider as app admin',   'regress_rls_outsider', '00000000-0000-4000-8000-0000000000a9');

-- What each sees under 1.0's policies (put back for one transaction) ...
BEGIN;
ALTER POLICY gs_export_jobs_visible ON gestao_scouter_export_jobs
    USING (regress_gs_export_job_visible(owner_oid, created_by));
ALTER POLICY gs_export_errors_visible ON gestao_scouter_export_errors
    USING (gs_export_job_id_visible(job_id));
SELECT CASE WHEN p.polpermissive
            THEN 'ALTER POLICY gs_export_sync_events_visible ON sync_events USING (job_id IS NOT NULL AND gs_export_job_id_visible(job_id))'
            ELSE 'ALTER POLICY gs_export_sync_events_visible ON sync_events USING (job_id IS NULL OR gs_export_job_id_visible(job_id))'
       END AS sync_events_1_0
  FROM pg_policy p WHERE p.polrelid = 'sync_events'::regclass AND p.polname = 'gs_export_sync_events_visible' \gset
:sync_events_1_0;
SELECT string_agg(format('%s: %s %s %s %s', v.who, s.jobs, s.events, s.errors, s.digest), '; ' ORDER BY v.who) AS seen_1_0
  FROM viewers v, rls_seen_as(v.r, v.sub) s \gset
ROLLBACK;
-- ... and under 1.1's: the same rows.
SELECT v.who, s.jobs, s.events, s.errors
  FROM viewers v, rls_seen_as(v.r, v.sub) s ORDER BY v.who;
SELECT string_agg(format('%s: %s %s %s %s', v.who, s.jobs, s.events, s.errors, s.digest), '; ' ORDER BY v.who)
       = :'seen_1_0' AS same_rows_as_1_0
  FROM viewers v, rls_seen_as(v.r, v.sub) s;

-- Calls of gs_export's functions while the owner reads the events and the
-- errors of the job (doc/usage.md's queries) and the jobs table.  Function
-- statistics reach pg_stat_user_functions when the backend flushes them at
-- the end of a transaction: forced before each reading.
CREATE FUNCTION public.rls_calls_mark() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DROP TABLE IF EXISTS pg_temp.calls_before;
    CREATE TEMP TABLE calls_before AS
    SELECT funcid, calls FROM pg_stat_user_functions WHERE funcname LIKE '%gs\_export\_%';
END;
$$;
CREATE FUNCTION public.rls_calls() RETURNS TABLE (funcname name, calls bigint) LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    SELECT s.funcname, s.calls - coalesce(b.calls, 0)
      FROM pg_stat_user_functions s LEFT JOIN pg_temp.calls_before b USING (funcid)
     WHERE s.funcname LIKE '%gs\_export\_%' AND s.calls - coalesce(b.calls, 0) > 0
     ORDER BY 1;
END;
$$;
-- The job measured gets 3,000 sync_events and 300 errors in all.
INSERT INTO sync_events (event_type, direction, lead_id, status, error_message, job_id)
SELECT 'update', 'supabase_to_gestao_scouter', g,
       CASE WHEN g % 10 = 0 THEN 'error' ELSE 'success' END,
       CASE WHEN g % 10 = 0 THEN 'rejected' END, :'job'
  FROM generate_series(51, 3000) g;
INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message)
SELECT e.job_id, e.lead_id, e.error_message FROM sync_events e
 WHERE e.status = 'error' AND e.job_id = :'job' AND e.lead_id > 50;
ANALYZE gestao_scouter_export_errors, sync_events;
SET track_functions = 'all';

-- Under 1.0's policies: per row (for each event and error row of the job,
-- a function that queries the jobs table, whose policy calls a function per
-- job row).
SELECT pg_stat_force_next_flush();
SELECT rls_calls_mark();
BEGIN;
ALTER POLICY gs_export_jobs_visible ON gestao_scouter_export_jobs
    USING (regress_gs_export_job_visible(owner_oid, created_by));
ALTER POLICY gs_export_errors_visible ON gestao_scouter_export_errors
    USING (gs_export_job_id_visible(job_id));
:sync_events_1_0;
SET ROLE regress_rls_owner;
SELECT status, count(*) FROM sync_events WHERE job_id = :'job' GROUP BY status ORDER BY status;
SELECT count(*) AS errors FROM gestao_scouter_export_errors WHERE job_id = :'job';
SELECT count(*) AS jobs FROM gestao_scouter_export_jobs;
RESET ROLE;
ROLLBACK;
SELECT pg_stat_force_next_flush();
SELECT funcname, calls >= 3300 AS at_least_one_per_row FROM rls_calls();

-- Under 1.1's: a few per query, whatever the number of rows.
SELECT pg_stat_force_next_flush();
SELECT rls_calls_mark();
SET ROLE regress_rls_owner;
SELECT status, count(*) FROM sync_events WHERE job_id = :'job' GROUP BY status ORDER BY status;
SELECT count(*) AS errors FROM gestao_scouter_export_errors WHERE job_id = :'job';
SELECT count(*) AS jobs FROM gestao_scouter_export_jobs;
RESET ROLE;
SELECT pg_stat_force_next_flush();
SELECT * FROM rls_calls();

-- Twice the rows, the same calls.
INSERT INTO sync_events (event_type, direction, lead_id, status, job_id)
SELECT 'update', 'supabase_to_gestao_scouter', g, 'success', :'job' FROM generate_series(3001, 6000) g;
INSERT INTO gestao_scouter_export_errors (job_id, lead_id) SELECT :'job', g FROM generate_series(3001, 3300) g;
ANALYZE gestao_scouter_export_errors, sync_events;
SELECT pg_stat_force_next_flush();
SELECT rls_calls_mark();
SET ROLE regress_rls_owner;
SELECT status, count(*) FROM sync_events WHERE job_id = :'job' GROUP BY status ORDER BY status;
SELECT count(*) AS errors FROM gestao_scouter_export_errors WHERE job_id = :'job';
SELECT count(*) AS jobs FROM gestao_scouter_export_jobs;
RESET ROLE;
SELECT pg_stat_force_next_flush();
SELECT * FROM rls_calls();
RESET track_functions;
