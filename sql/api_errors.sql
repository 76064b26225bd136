--
-- api_errors: every row of the error table of doc/contract.md
-- ("Errors"), checked by SQLSTATE.  expect_error() (test/regress_setup/
-- helpers.sql) runs one statement, reports its SQLSTATE and message (ids
-- shown as <id>) and rolls back whatever it did.  No job is ever committed
-- pending or running, so the launcher of this instance has nothing to run.
-- (The 55000 "gs_export is not loaded" case needs an instance without the
-- preload: not testable here.)
--
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
SELECT gs_regress_reset();

--
-- 22023 / 22004: arguments.
--
-- end_date after start_date
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-01', '2026-01-02')$$);
SELECT * FROM expect_error($$SELECT gs_export_create(start_date => '2026-01-01', end_date => '2026-01-02')$$);
-- end_date after the default start_date (today; the message holds the
-- dates, so only the state is shown)
SELECT state FROM expect_error($$SELECT gs_export_create(end_date => current_date + 1)$$);
-- infinite dates
SELECT * FROM expect_error($$SELECT gs_export_create('infinity', '2026-01-01')$$);
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-01', '-infinity')$$);
-- NULL where a value is needed: 22004
SELECT * FROM expect_error($$SELECT gs_export_create(NULL)$$);
SELECT * FROM expect_error($$SELECT gs_export_create(start_date => NULL, end_date => '2026-01-01')$$);
SELECT * FROM expect_error($$SELECT gs_export_create(options => NULL)$$);
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-31', NULL, NULL)$$);
SELECT * FROM expect_error($$SELECT gs_export_pause(NULL)$$);
SELECT * FROM expect_error($$SELECT gs_export_pause(job_id => NULL, reason => 'r')$$);
SELECT * FROM expect_error($$SELECT gs_export_resume(NULL)$$);
-- end_date NULL is allowed (no lower bound): the control case
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-31', NULL)$$);
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-31', '2026-01-31')$$);

-- Bad options: 22023.
SELECT o AS options, e.*
  FROM (VALUES ('{"unknown": 1}'),
               ('{"batch_size": 10, "Batch_Size": 10}'),
               ('{"batch_size": 0}'),
               ('{"batch_size": 10001}'),
               ('{"batch_size": -5}'),
               ('{"batch_size": 1.5}'),
               ('{"batch_size": "100"}'),
               ('{"batch_size": true}'),
               ('{"batch_size": 1e10}'),
               ('{"delay_ms": -1}'),
               ('{"delay_ms": 60001}'),
               ('{"delay_ms": 0.5}'),
               ('{"delay_ms": "500"}'),
               ('{"time_zone": "Mars/Olympus"}'),
               ('{"time_zone": 3}'),
               ('{"time_zone": ""}'),
               ('[]'),
               ('[{"batch_size": 10}]'),
               ('"batch_size"'),
               ('42'),
               ('null')) v(o),
       LATERAL expect_error(format('SELECT gs_export_create(options => %L)', o)) e;

--
-- 55000: no config row with active AND sync_enabled.
--
BEGIN;
DELETE FROM gestao_scouter_config;
SELECT * FROM expect_error('SELECT gs_export_create()');
INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
VALUES ('http://127.0.0.1:9', 'k', true, false);
SELECT * FROM expect_error('SELECT gs_export_create()');
UPDATE gestao_scouter_config SET active = false, sync_enabled = true;
SELECT * FROM expect_error('SELECT gs_export_create()');
UPDATE gestao_scouter_config SET active = NULL, sync_enabled = true;
SELECT * FROM expect_error('SELECT gs_export_create()');
-- one good row among bad ones is enough
INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
VALUES ('http://127.0.0.1:9', 'k', true, true);
SELECT * FROM expect_error('SELECT gs_export_create()');
ROLLBACK;

-- Resuming needs the config too.
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job \gset
SELECT gs_export_pause(:'job');
UPDATE gestao_scouter_config SET sync_enabled = false;
SELECT * FROM expect_error(format('SELECT gs_export_resume(%L)', :'job'));
ROLLBACK;

--
-- 55000: another job is pending, running or paused; the hint names it.
--
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job1 \gset
-- pending
SELECT * FROM expect_error('SELECT gs_export_create()');
SELECT position(:'job1' IN error_hint('SELECT gs_export_create()')) > 0 AS hint_names_job1;
-- running
UPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = :'job1';
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-15')$$);
SELECT position(:'job1' IN error_hint($$SELECT gs_export_create('2026-01-15')$$)) > 0 AS hint_names_job1;
-- paused
SELECT gs_export_pause(:'job1');
SELECT * FROM expect_error($$SELECT gs_export_create(options => '{"batch_size": 5}')$$);
SELECT position(:'job1' IN error_hint($$SELECT gs_export_create(options => '{"batch_size": 5}')$$)) > 0 AS hint_names_job1;
-- completed and failed jobs do not stand in the way
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'job1';
SELECT * FROM expect_error('SELECT gs_export_create()');
UPDATE gestao_scouter_export_jobs SET status = 'failed', pause_reason = 'simulated' WHERE id = :'job1';
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job2 \gset
SELECT gs_export_pause(:'job2');
-- ... but resuming the failed job1 while job2 is paused is refused, naming job2
SELECT * FROM expect_error(format('SELECT gs_export_resume(%L)', :'job1'));
SELECT position(:'job2' IN error_hint(format('SELECT gs_export_resume(%L)', :'job1'))) > 0 AS hint_names_job2;
ROLLBACK;

--
-- 55000: pause or resume from a state that does not allow it.
--
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job \gset
-- pending: cannot be resumed
SELECT * FROM expect_error(format('SELECT gs_export_resume(%L)', :'job'));
SELECT gs_export_pause(:'job');
-- paused: cannot be paused again
SELECT * FROM expect_error(format('SELECT gs_export_pause(%L)', :'job'));
SELECT * FROM expect_error(format('SELECT gs_export_pause(%L, %L)', :'job', 'again'));
SELECT gs_export_resume(:'job');
-- running: cannot be resumed (one worker per job, ever)
SELECT * FROM expect_error(format('SELECT gs_export_resume(%L)', :'job'));
-- completed: neither
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'job';
SELECT * FROM expect_error(format('SELECT gs_export_pause(%L)', :'job'));
SELECT * FROM expect_error(format('SELECT gs_export_resume(%L)', :'job'));
-- failed: cannot be paused
UPDATE gestao_scouter_export_jobs SET status = 'failed' WHERE id = :'job';
SELECT * FROM expect_error(format('SELECT gs_export_pause(%L)', :'job'));
-- NULL reason on a job that could be paused: 22004
UPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = :'job';
SELECT * FROM expect_error(format('SELECT gs_export_pause(%L, NULL)', :'job'));
SELECT status FROM gestao_scouter_export_jobs WHERE id = :'job';
ROLLBACK;

--
-- 42704: a job id that does not exist.
--
SELECT * FROM expect_error($$SELECT gs_export_pause('00000000-0000-0000-0000-00000000dead')$$);
SELECT * FROM expect_error($$SELECT gs_export_pause('00000000-0000-0000-0000-00000000dead', 'why')$$);
SELECT * FROM expect_error($$SELECT gs_export_resume('00000000-0000-0000-0000-00000000dead')$$);

--
-- Roles.  alice and bob are plain users (members of gs_export_user with
-- SELECT on leads), boss is an admin, nobody is no gs_export user at all,
-- noleads is a user who may not read leads.
--
CREATE ROLE regress_gs_alice;
CREATE ROLE regress_gs_bob;
CREATE ROLE regress_gs_boss;
CREATE ROLE regress_gs_nobody;
CREATE ROLE regress_gs_noleads;
GRANT gs_export_user TO regress_gs_alice, regress_gs_bob, regress_gs_noleads;
GRANT gs_export_admin TO regress_gs_boss;
GRANT SELECT ON leads TO regress_gs_alice, regress_gs_bob, regress_gs_boss, regress_gs_nobody;

BEGIN;
SET ROLE regress_gs_alice;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS alice_job \gset
SELECT status, owner_role FROM gestao_scouter_export_jobs WHERE id = :'alice_job';
RESET ROLE;

-- 42704 for another user's job, exactly as for a job that does not exist
-- (existence is not leaked).
SET ROLE regress_gs_bob;
SELECT * FROM expect_error(format('SELECT gs_export_pause(%L)', :'alice_job'));
SELECT * FROM expect_error(format('SELECT gs_export_resume(%L)', :'alice_job'));
SELECT (SELECT message FROM expect_error(format('SELECT gs_export_pause(%L)', :'alice_job')))
     = (SELECT message FROM expect_error($$SELECT gs_export_pause('00000000-0000-0000-0000-00000000dead')$$))
       AS same_message_as_unknown_id;
-- a caught error leaves the caller as he was: same role, same search_path
-- (the API runs its internals as the extension's owner)
SELECT current_user, session_user = current_user AS is_session_user, current_setting('search_path') AS search_path;
-- bob does not see alice's job in the table either (row level security)
SELECT count(*) AS alice_jobs_seen_by_bob FROM gestao_scouter_export_jobs WHERE id = :'alice_job';
-- nor the config, which holds keys: 42501
SELECT * FROM expect_error('SELECT count(*) FROM gestao_scouter_config');
-- nor can he write the jobs table directly: 42501
SELECT * FROM expect_error(format($$UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = %L$$, :'alice_job'));
RESET ROLE;

-- 42501: not a member of gs_export_user (EXECUTE is not PUBLIC's).
SET ROLE regress_gs_nobody;
SELECT * FROM expect_error('SELECT gs_export_create()');
SELECT * FROM expect_error(format('SELECT gs_export_pause(%L)', :'alice_job'));
SELECT * FROM expect_error(format('SELECT gs_export_resume(%L)', :'alice_job'));
SELECT * FROM expect_error('SELECT count(*) FROM gestao_scouter_export_jobs');
RESET ROLE;

-- 42501: a user who may not read leads cannot create a job (a job reads
-- leads with its owner's privileges).
SET ROLE regress_gs_noleads;
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-31')$$);
RESET ROLE;

-- An admin may see, pause and resume another's job.
SET ROLE regress_gs_boss;
SELECT status, owner_role FROM gestao_scouter_export_jobs WHERE id = :'alice_job';
SELECT gs_export_pause(:'alice_job', 'paused by the admin');
SELECT status, pause_reason FROM gestao_scouter_export_jobs WHERE id = :'alice_job';
RESET ROLE;
-- The owner may resume it and pause it again; the job stays alice's.
SET ROLE regress_gs_alice;
SELECT gs_export_resume(:'alice_job');
SELECT status, pause_reason, owner_role FROM gestao_scouter_export_jobs WHERE id = :'alice_job';
SELECT gs_export_pause(:'alice_job');
RESET ROLE;
SET ROLE regress_gs_boss;
SELECT gs_export_resume(:'alice_job');
SELECT status, pause_reason, owner_role FROM gestao_scouter_export_jobs WHERE id = :'alice_job';
-- the admin reads the config
SELECT count(*) AS config_rows FROM gestao_scouter_config;
RESET ROLE;
ROLLBACK;

-- A user sees only his own jobs when reading the table.
BEGIN;
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE status IN ('pending', 'running', 'paused');
SET ROLE regress_gs_alice;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS alice_job \gset
SELECT gs_export_pause(:'alice_job');
RESET ROLE;
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'alice_job';
SET ROLE regress_gs_bob;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS bob_job \gset
SELECT gs_export_pause(:'bob_job');
RESET ROLE;
INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message)
VALUES (:'alice_job', 1, 'alice''s lead failed'), (:'bob_job', 2, 'bob''s lead failed');
SET ROLE regress_gs_bob;
SELECT count(*) AS rows_seen, count(*) FILTER (WHERE owner_role = current_user) AS own_rows_seen
  FROM gestao_scouter_export_jobs;
SELECT lead_id, error_message FROM gestao_scouter_export_errors ORDER BY lead_id;
RESET ROLE;
SET ROLE regress_gs_boss;
SELECT count(*) FILTER (WHERE id IN (:'alice_job', :'bob_job')) AS rows_seen_by_admin
  FROM gestao_scouter_export_jobs;
SELECT count(*) FILTER (WHERE job_id IN (:'alice_job', :'bob_job')) AS error_rows_seen_by_admin
  FROM gestao_scouter_export_errors;
RESET ROLE;
ROLLBACK;

--
-- Under Supabase every user is the role "authenticated"; auth.uid() tells
-- them apart and a job belongs to the user who created it (created_by).
-- Simulated with an auth.uid() that reads request.jwt.claim.sub, as
-- PostgREST sets it.  Rolled back, auth schema and all.
--
CREATE ROLE regress_gs_authenticated;
GRANT gs_export_user TO regress_gs_authenticated;
GRANT SELECT ON leads TO regress_gs_authenticated;
BEGIN;
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO PUBLIC;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
SET LOCAL request.jwt.claim.sub = '00000000-0000-0000-0000-0000000000aa';
SET ROLE regress_gs_authenticated;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS sb_job \gset
SELECT status, created_by, owner_role FROM gestao_scouter_export_jobs WHERE id = :'sb_job';
-- another Supabase user, same role: 42704, and the row is not visible
SET LOCAL request.jwt.claim.sub = '00000000-0000-0000-0000-0000000000bb';
SELECT * FROM expect_error(format('SELECT gs_export_pause(%L)', :'sb_job'));
SELECT count(*) AS seen_by_other_user FROM gestao_scouter_export_jobs WHERE id = :'sb_job';
-- the user who created it may pause and resume it
SET LOCAL request.jwt.claim.sub = '00000000-0000-0000-0000-0000000000aa';
SELECT gs_export_pause(:'sb_job', 'mine');
SELECT gs_export_resume(:'sb_job');
SELECT status, pause_reason FROM gestao_scouter_export_jobs WHERE id = :'sb_job';
RESET ROLE;
ROLLBACK;
DROP OWNED BY regress_gs_authenticated;
DROP ROLE regress_gs_authenticated;

-- Nothing was left behind by any of this.
SELECT count(*) AS active_jobs FROM gestao_scouter_export_jobs
 WHERE status IN ('pending', 'running', 'paused');

DROP OWNED BY regress_gs_alice, regress_gs_bob, regress_gs_boss, regress_gs_nobody, regress_gs_noleads;
DROP ROLE regress_gs_alice, regress_gs_bob, regress_gs_boss, regress_gs_nobody, regress_gs_noleads;
