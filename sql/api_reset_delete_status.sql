--
-- api_reset_delete_status: gs_export_reset, gs_export_delete and
-- gs_export_status (doc/contract.md, "Functions").  Job
-- states are set by hand, as a worker would leave them.  No job is ever
-- committed pending or running: every case rolls back, so the launcher of
-- this instance has nothing to run and no worker holds a job's lock.
--
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
SELECT gs_regress_reset();

CREATE ROLE regress_gs_rd_owner;      -- a user: owns the jobs below
CREATE ROLE regress_gs_rd_other;      -- another user
CREATE ROLE regress_gs_rd_admin;      -- an admin
CREATE ROLE regress_gs_rd_outsider;   -- no gs_export role at all
GRANT gs_export_user TO regress_gs_rd_owner, regress_gs_rd_other;
GRANT gs_export_admin TO regress_gs_rd_admin;
GRANT SELECT ON leads TO regress_gs_rd_owner, regress_gs_rd_other, regress_gs_rd_admin,
                         regress_gs_rd_outsider;

-- The SQLSTATE of a call in a state: the job is put in the state by hand,
-- the call is rolled back whatever it does ('ok' when it succeeds).
CREATE FUNCTION rd_try(p_job uuid, p_state text, p_call text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    UPDATE gestao_scouter_export_jobs SET status = p_state WHERE id = p_job;
    SELECT e.state INTO s FROM expect_error(format(p_call, p_job)) e;
    RETURN s;
END;
$$;

--
-- The functions: named parameters (status's job_id has a default), their
-- results (status's columns are listed at the end), EXECUTE for
-- gs_export_user and gs_export_admin only.
--
SELECT p.oid::regprocedure AS function, p.proargnames[1] AS argument,
       pg_get_expr(p.proargdefaults, 0) AS "default", pg_get_function_result(p.oid) AS result,
       p.provolatile AS volatility
  FROM pg_proc p
 WHERE p.proname IN ('gs_export_reset', 'gs_export_delete', 'gs_export_status')
 ORDER BY p.proname COLLATE "C";
SELECT * FROM (
    SELECT p.proname::text AS function,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee,
           a.privilege_type
      FROM pg_proc p, aclexplode(p.proacl) a
     WHERE p.proname IN ('gs_export_reset', 'gs_export_delete', 'gs_export_status')
       AND a.grantee <> p.proowner) g
 ORDER BY function COLLATE "C", grantee COLLATE "C";

--
-- Every state × function: reset and delete from paused, failed or
-- completed only (55000 from pending or running); status from any state.
--
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}') AS job \gset
SELECT s AS state,
       rd_try(:'job', s, 'SELECT gs_export_reset(%L)') AS reset,
       rd_try(:'job', s, 'SELECT gs_export_delete(%L)') AS delete,
       rd_try(:'job', s, 'SELECT gs_export_status(%L)') AS status
  FROM unnest(ARRAY['pending', 'running', 'paused', 'failed', 'completed']) WITH ORDINALITY u(s, n)
 ORDER BY n;
-- What a refusal says: pause first.
UPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = :'job';
SELECT * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job'));
SELECT error_hint(format('SELECT gs_export_reset(%L)', :'job')) AS hint;
SELECT * FROM expect_error(format('SELECT gs_export_delete(job_id => %L)', :'job'));
SELECT error_hint(format('SELECT gs_export_delete(%L)', :'job')) AS hint;
UPDATE gestao_scouter_export_jobs SET status = 'pending' WHERE id = :'job';
SELECT * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job'));
SELECT * FROM expect_error(format('SELECT gs_export_delete(%L)', :'job'));
-- ... and the job is as it was
SELECT status, count(*) FROM gestao_scouter_export_jobs WHERE id = :'job' GROUP BY status;
ROLLBACK;

--
-- 22004 for a NULL job_id; 42704 for an id that does not exist.
-- (gs_export_status(NULL) is not an error: the most recent job, below.)
--
SELECT * FROM expect_error('SELECT gs_export_reset(NULL)');
SELECT * FROM expect_error('SELECT gs_export_delete(job_id => NULL)');
SELECT * FROM expect_error($$SELECT gs_export_reset('00000000-0000-0000-0000-00000000dead')$$);
SELECT * FROM expect_error($$SELECT gs_export_delete('00000000-0000-0000-0000-00000000dead')$$);
SELECT * FROM expect_error($$SELECT gs_export_status('00000000-0000-0000-0000-00000000dead')$$);
SELECT * FROM expect_error($$SELECT * FROM gs_export_status(job_id => '00000000-0000-0000-0000-00000000dead')$$);

--
-- Who may: the owner and admins; another user gets 42704, word for word as
-- for a job that does not exist; a role outside gs_export 42501, as for
-- pause.
--
BEGIN;
SET LOCAL ROLE regress_gs_rd_owner;
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}') AS job \gset
SELECT gs_export_pause(:'job');
RESET ROLE;
SELECT owner_role, status FROM gestao_scouter_export_jobs WHERE id = :'job';
SET LOCAL ROLE regress_gs_rd_other;
SELECT 'reset' AS call, * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job'))
UNION ALL
SELECT 'delete', * FROM expect_error(format('SELECT gs_export_delete(%L)', :'job'))
UNION ALL
SELECT 'status', * FROM expect_error(format('SELECT gs_export_status(%L)', :'job'))
UNION ALL
SELECT 'pause', * FROM expect_error(format('SELECT gs_export_pause(%L)', :'job'));
-- the same words as for a job that does not exist, id and all
SELECT (SELECT message FROM expect_error(format('SELECT gs_export_reset(%L)', :'job')))
     = (SELECT message FROM expect_error($$SELECT gs_export_reset('00000000-0000-0000-0000-00000000dead')$$))
       AS same_as_missing;
SELECT error_hint(format('SELECT gs_export_status(%L)', :'job'))
     = error_hint($$SELECT gs_export_status('00000000-0000-0000-0000-00000000dead')$$) AS same_hint;
-- nor is it the most recent job this user may see: there is none
SELECT * FROM expect_error('SELECT gs_export_status()');
RESET ROLE;
SET LOCAL ROLE regress_gs_rd_outsider;
SELECT 'reset' AS call, * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job'))
UNION ALL
SELECT 'delete', * FROM expect_error(format('SELECT gs_export_delete(%L)', :'job'))
UNION ALL
SELECT 'status', * FROM expect_error('SELECT gs_export_status()')
UNION ALL
SELECT 'pause', * FROM expect_error(format('SELECT gs_export_pause(%L)', :'job'));
RESET ROLE;
-- the owner sees it, and so does an admin
SET LOCAL ROLE regress_gs_rd_owner;
SELECT job_id = :'job' AS owners_job, status FROM gs_export_status(:'job');
SELECT job_id = :'job' AS owners_job, status FROM gs_export_status();
RESET ROLE;
SET LOCAL ROLE regress_gs_rd_admin;
SELECT job_id = :'job' AS owners_job, status FROM gs_export_status(:'job');
SELECT job_id = :'job' AS owners_job, status FROM gs_export_status();
SELECT * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job'));
SELECT * FROM expect_error(format('SELECT gs_export_delete(%L)', :'job'));
RESET ROLE;
-- the owner resets its job, and deletes it
SET LOCAL ROLE regress_gs_rd_owner;
SELECT gs_export_reset(:'job');
SELECT status, owner_role FROM gestao_scouter_export_jobs WHERE id = :'job';
SELECT gs_export_pause(:'job');
SELECT gs_export_delete(:'job');
SELECT count(*) AS jobs_left FROM gestao_scouter_export_jobs WHERE id = :'job';
RESET ROLE;
ROLLBACK;

-- An admin resets and deletes another user's job; the job keeps its owner.
BEGIN;
SET LOCAL ROLE regress_gs_rd_owner;
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}') AS job \gset
RESET ROLE;
UPDATE gestao_scouter_export_jobs SET status = 'failed', pause_reason = 'HTTP 401' WHERE id = :'job';
SET LOCAL ROLE regress_gs_rd_admin;
SELECT gs_export_reset(:'job');
RESET ROLE;
SELECT status, pause_reason, owner_role FROM gestao_scouter_export_jobs WHERE id = :'job';
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'job';
SET LOCAL ROLE regress_gs_rd_admin;
SELECT gs_export_delete(:'job');
RESET ROLE;
SELECT count(*) AS jobs_left FROM gestao_scouter_export_jobs WHERE id = :'job';
ROLLBACK;

--
-- Reset: the job starts again from start_date.  Counters, position,
-- processing_date, last_completed_date, pause_reason, ignored_fields,
-- started_at, completed_at, leads_in_range, the rate and the walk's state
-- are cleared; id, owner, dates, options and created_at are kept; its error
-- rows are deleted, its sync_events kept.
--
BEGIN;
-- another job, with errors that are not touched
SELECT gs_export_create('2026-01-31', '2026-01-01') AS other \gset
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'other';
INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message) VALUES (:'other', 9, 'other job');
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"batch_size": 7, "time_zone": "UTC"}') AS job \gset
UPDATE gestao_scouter_export_jobs
   SET status = 'paused', pause_reason = 'Manual', paused_at = '2026-02-01 10:05:00+00',
       started_at = '2026-02-01 10:00:00+00', completed_at = '2026-02-01 10:06:00+00',
       processing_date = '2026-01-20', last_completed_date = '2026-01-21',
       total_leads = 30, exported_leads = 27, error_leads = 3,
       leads_in_range = 100, recent_leads_per_second = 12.5,
       ignored_fields = '{nome_modelo,etapa}',
       cursor_updated_at = '2026-01-20 15:00:00+00', cursor_id = 42,
       changes_since = '2026-02-01 10:00:00+00', catchup_pass = 2,
       catchup_lower = '2026-02-01 10:00:00+00', pass_kind = 'catchup',
       pass_lower = '2026-02-01 10:00:00+00', pass_upper = '2026-02-01 10:04:00+00',
       created_at = '2026-02-01 09:59:00+00'
 WHERE id = :'job';
INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message)
SELECT :'job', g, 'rejected' FROM generate_series(1, 3) g;
INSERT INTO sync_events (event_type, direction, lead_id, status, error_message, job_id)
SELECT 'update', 'supabase_to_gestao_scouter', g,
       CASE WHEN g <= 3 THEN 'error' ELSE 'success' END,
       CASE WHEN g <= 3 THEN 'rejected' END, :'job'
  FROM generate_series(1, 30) g;
CREATE TEMP TABLE before_reset AS
SELECT id, start_date, end_date, options, effective_options, batch_size, delay_ms, time_zone,
       owner_role, created_by, created_at
  FROM gestao_scouter_export_jobs WHERE id = :'job';

SELECT gs_export_reset(job_id => :'job');
\x on
SELECT status, total_leads, exported_leads, error_leads, processing_date, last_completed_date,
       pause_reason, paused_at, ignored_fields, started_at, completed_at,
       leads_in_range, recent_leads_per_second, cursor_updated_at, cursor_id,
       changes_since, catchup_pass, catchup_lower, pass_kind, pass_lower, pass_upper,
       updated_at = now() AS updated_now
  FROM gestao_scouter_export_jobs WHERE id = :'job';
\x off
SELECT (SELECT row(b.*)::text FROM before_reset b)
     = (SELECT row(id, start_date, end_date, options, effective_options, batch_size, delay_ms,
                   time_zone, owner_role, created_by, created_at)::text
          FROM gestao_scouter_export_jobs WHERE id = :'job') AS kept_id_owner_dates_options_created_at;
SELECT start_date, end_date, effective_options ->> 'batch_size' AS batch_size_option, batch_size,
       time_zone, owner_role = current_user AS same_owner, created_at
  FROM gestao_scouter_export_jobs WHERE id = :'job';
SELECT (SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = :'job') AS errors,
       (SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = :'other') AS other_jobs_errors,
       (SELECT count(*) FROM sync_events WHERE job_id = :'job') AS sync_events;
-- its status: a pending job that has not started
SELECT status, processing_date, last_completed_date, leads_in_range, total_leads, exported_leads,
       error_leads, percent, leads_per_second, eta, pause_reason, ignored_fields,
       started_at, completed_at
  FROM gs_export_status(:'job');
-- pending now: neither reset nor delete again before a pause
SELECT * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job'));
SELECT * FROM expect_error(format('SELECT gs_export_delete(%L)', :'job'));
ROLLBACK;

-- Reset needs the config, as resume does.
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job \gset
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'job';
UPDATE gestao_scouter_config SET sync_enabled = false;
SELECT * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job'));
ROLLBACK;

--
-- Reset makes the job active: one active job, as for create and resume.
--
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job1 \gset
UPDATE gestao_scouter_export_jobs SET status = 'failed', pause_reason = 'simulated' WHERE id = :'job1';
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job2 \gset
-- job2 pending, running or paused: resetting job1 is refused, naming job2
SELECT * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job1'));
SELECT position(:'job2' IN error_hint(format('SELECT gs_export_reset(%L)', :'job1'))) > 0 AS hint_names_job2;
UPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = :'job2';
SELECT * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job1'));
SELECT position(:'job2' IN error_hint(format('SELECT gs_export_reset(%L)', :'job1'))) > 0 AS hint_names_job2;
UPDATE gestao_scouter_export_jobs SET status = 'paused' WHERE id = :'job2';
SELECT * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job1'));
SELECT position(:'job2' IN error_hint(format('SELECT gs_export_reset(%L)', :'job1'))) > 0 AS hint_names_job2;
SELECT status FROM gestao_scouter_export_jobs WHERE id = :'job1';
-- a paused job is the active one itself: its reset is no conflict
SELECT gs_export_reset(:'job2');
SELECT status FROM gestao_scouter_export_jobs WHERE id = :'job2';
-- once job2 has ended, job1 may be reset; then job2 may not
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'job2';
SELECT gs_export_reset(:'job1');
SELECT * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job2'));
SELECT position(:'job1' IN error_hint(format('SELECT gs_export_reset(%L)', :'job2'))) > 0 AS hint_names_job1;
-- nor may a new job be created
SELECT * FROM expect_error('SELECT gs_export_create()');
ROLLBACK;

--
-- Delete: the row and its error rows go, even where the errors table does
-- not cascade (TabuladorMax's own may not); its sync_events stay; the job
-- no longer stands in a new job's way.
--
BEGIN;
SELECT c.conname AS fk
  FROM pg_constraint c
 WHERE c.conrelid = 'gestao_scouter_export_errors'::regclass AND c.contype = 'f' \gset
ALTER TABLE gestao_scouter_export_errors DROP CONSTRAINT :"fk";
ALTER TABLE gestao_scouter_export_errors
    ADD CONSTRAINT regress_errors_job_fk FOREIGN KEY (job_id) REFERENCES gestao_scouter_export_jobs (id);
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job \gset
SELECT gs_export_pause(:'job', 'to be deleted');
INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message)
SELECT :'job', g, 'rejected' FROM generate_series(1, 2) g;
INSERT INTO sync_events (event_type, direction, lead_id, status, job_id)
SELECT 'update', 'supabase_to_gestao_scouter', g, 'success', :'job' FROM generate_series(1, 5) g;
-- paused: in the way of a new job
SELECT state FROM expect_error('SELECT gs_export_create()');
SELECT gs_export_delete(:'job');
SELECT (SELECT count(*) FROM gestao_scouter_export_jobs WHERE id = :'job') AS jobs,
       (SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = :'job') AS errors,
       (SELECT count(*) FROM sync_events WHERE job_id = :'job') AS sync_events;
-- gone: 42704 for all three functions
SELECT 'reset' AS call, * FROM expect_error(format('SELECT gs_export_reset(%L)', :'job'))
UNION ALL
SELECT 'delete', * FROM expect_error(format('SELECT gs_export_delete(%L)', :'job'))
UNION ALL
SELECT 'status', * FROM expect_error(format('SELECT gs_export_status(%L)', :'job'));
-- and a new job may be created at once
SELECT gs_export_create('2026-01-31', '2026-01-01') IS NOT NULL AS created;
ROLLBACK;

--
-- Status: percent is total_leads over leads_in_range, to 0.1, capped at
-- 100, and 100 once completed (0 while leads_in_range is unknown);
-- leads_per_second the recent rate while running, else the average over
-- started_at .. completed_at, paused_at or updated_at; eta the leads left at
-- that rate, only while running and with leads_in_range known.
--
BEGIN;
-- Put the job in a state with these counts (started at t0, the end of the
-- average at t0 + elapsed), read its status, and end it again.
CREATE FUNCTION rd_status(p_job uuid, p_state text, p_in_range bigint, p_total bigint,
                          p_recent numeric, p_elapsed interval)
RETURNS TABLE (percent numeric, leads_per_second numeric, eta interval)
LANGUAGE plpgsql AS $$
DECLARE
    t0 constant timestamptz := '2026-02-01 10:00:00+00';
BEGIN
    UPDATE gestao_scouter_export_jobs j
       SET status = p_state, leads_in_range = p_in_range, total_leads = p_total,
           exported_leads = p_total, error_leads = 0, recent_leads_per_second = p_recent,
           started_at = CASE WHEN p_state <> 'pending' THEN t0 END,
           paused_at = CASE WHEN p_state = 'paused' THEN t0 + p_elapsed END,
           completed_at = CASE WHEN p_state = 'completed' THEN t0 + p_elapsed END,
           updated_at = CASE WHEN p_state IN ('running', 'failed') THEN t0 + p_elapsed
                             ELSE t0 + interval '1 hour' END
     WHERE j.id = p_job;
    RETURN QUERY SELECT s.percent, s.leads_per_second, s.eta FROM gs_export_status(p_job) s;
    UPDATE gestao_scouter_export_jobs j SET status = 'failed' WHERE j.id = p_job;
END;
$$;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job \gset
SELECT c.n, c.state, c.in_range, c.total, c.recent, c.elapsed, s.*, c.what
  FROM (VALUES
    (1,  'pending',   NULL::bigint, 0,   NULL::numeric, NULL::interval, 'not started'),
    (2,  'running',   NULL,         40,  NULL,  interval '20 s',  'range not counted yet'),
    (3,  'running',   200,          50,  10,    interval '20 s',  'the recent rate'),
    (4,  'running',   200,          100, NULL,  interval '50 s',  'no recent rate: the average'),
    (5,  'running',   200,          250, 10,    interval '20 s',  'past the range: capped, eta 0'),
    (6,  'running',   3,            1,   0.333, interval '20 s',  'rounded'),
    (7,  'running',   200,          50,  0,     interval '20 s',  'a rate of 0: no eta'),
    (8,  'running',   0,            5,   1,     interval '20 s',  'an empty range, leads changed since'),
    (9,  'paused',    200,          50,  10,    interval '100 s', 'the average up to paused_at'),
    (10, 'paused',    0,            0,   NULL,  interval '10 s',  'an empty range'),
    (11, 'failed',    200,          50,  10,    interval '25 s',  'the average up to updated_at'),
    (12, 'completed', 1000,         10,  10,    interval '5 s',   'completed: 100'),
    (13, 'completed', NULL,         0,   NULL,  interval '4 s',   'completed, nothing counted')
  ) c(n, state, in_range, total, recent, elapsed, what),
  LATERAL rd_status(:'job', c.state, c.in_range, c.total, c.recent, c.elapsed) s
 ORDER BY c.n;
ROLLBACK;

--
-- Status with no job_id: the most recent job (by created_at) the caller
-- may see.  Every column, in the contract's order.
--
BEGIN;
SET LOCAL ROLE regress_gs_rd_owner;
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}') AS owner_old \gset
SELECT gs_export_pause(:'owner_old');
RESET ROLE;
UPDATE gestao_scouter_export_jobs SET status = 'completed', created_at = '2030-01-01 00:00:00+00'
 WHERE id = :'owner_old';
SET LOCAL ROLE regress_gs_rd_owner;
SELECT gs_export_create('2026-03-31', '2026-03-01', '{"time_zone": "UTC"}') AS owner_new \gset
RESET ROLE;
UPDATE gestao_scouter_export_jobs
   SET status = 'paused', created_at = '2030-01-02 00:00:00+00',
       processing_date = '2026-03-20', last_completed_date = '2026-03-21',
       leads_in_range = 300, total_leads = 100, exported_leads = 98, error_leads = 2,
       recent_leads_per_second = 40, pause_reason = 'lunch', ignored_fields = '{etapa}',
       started_at = '2030-01-02 00:00:10+00', paused_at = '2030-01-02 00:00:30+00'
 WHERE id = :'owner_new';
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'owner_new';
SET LOCAL ROLE regress_gs_rd_other;
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}') AS other_job \gset
RESET ROLE;
UPDATE gestao_scouter_export_jobs SET status = 'completed', created_at = '2030-01-03 00:00:00+00'
 WHERE id = :'other_job';
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}') AS su_job \gset
UPDATE gestao_scouter_export_jobs SET status = 'failed', created_at = '2030-01-04 00:00:00+00'
 WHERE id = :'su_job';
UPDATE gestao_scouter_export_jobs SET status = 'paused' WHERE id = :'owner_new';
-- the owner: its newer job, not the other two, newer still
SET LOCAL ROLE regress_gs_rd_owner;
\x on
SELECT job_id = :'owner_new' AS is_owner_new, status, start_date, end_date, processing_date,
       last_completed_date, leads_in_range, total_leads, exported_leads, error_leads, percent,
       leads_per_second, eta, pause_reason, ignored_fields, created_at, started_at, completed_at
  FROM gs_export_status();
\x off
SELECT job_id = :'owner_new' AS is_owner_new FROM gs_export_status(NULL);
SELECT job_id = :'owner_old' AS is_owner_old, status FROM gs_export_status(:'owner_old');
RESET ROLE;
-- the other user: its own
SET LOCAL ROLE regress_gs_rd_other;
SELECT job_id = :'other_job' AS is_other_job, status FROM gs_export_status();
RESET ROLE;
-- an admin and a superuser: the newest of all
SET LOCAL ROLE regress_gs_rd_admin;
SELECT job_id = :'su_job' AS is_su_job, status FROM gs_export_status();
RESET ROLE;
SELECT job_id = :'su_job' AS is_su_job, status FROM gs_export_status();
ROLLBACK;
-- The columns, in order, with their types.
SELECT u.n - 1 AS "column", u.name, u.type::regtype AS type
  FROM pg_proc p,
       unnest(p.proargnames, p.proallargtypes, p.proargmodes::text[]) WITH ORDINALITY u(name, type, mode, n)
 WHERE p.proname = 'gs_export_status' AND u.mode = 'o'
 ORDER BY u.n;

-- Nothing pending, running or paused is left for the launcher.
SELECT count(*) AS active_jobs FROM gestao_scouter_export_jobs
 WHERE status IN ('pending', 'running', 'paused');
DROP FUNCTION rd_try(uuid, text, text);
DROP OWNED BY regress_gs_rd_owner, regress_gs_rd_other, regress_gs_rd_admin, regress_gs_rd_outsider;
DROP ROLE regress_gs_rd_owner, regress_gs_rd_other, regress_gs_rd_admin, regress_gs_rd_outsider;
