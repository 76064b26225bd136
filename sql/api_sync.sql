--
-- api_sync: the option changed_since, and gs_export_sync (doc/contract.md,
-- "Options"; doc/sync.md): the job it
-- creates, the high-water mark from one sync to the next, NULL while
-- another job is active, the errors it does not swallow, who may call it.
-- No job is left pending or running in a committed state: the launcher of
-- this instance has nothing to run and nothing here depends on timing.
--
\set SHOW_CONTEXT never
SET DateStyle = 'ISO, YMD';
SET TimeZone = 'UTC';
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
SELECT gs_regress_reset();

--
-- changed_since: a string that is a finite timestamp with time zone.
-- Stored in effective_options as given.
--
BEGIN;
SELECT gs_export_create('2026-01-31', options => '{"changed_since": "2025-10-17T00:00:00-03:00"}') AS job \gset
SELECT options, effective_options -> 'changed_since' AS changed_since
  FROM gestao_scouter_export_jobs WHERE id = :'job';
ROLLBACK;
SELECT n, e.*
  FROM (VALUES (1, '{"changed_since": "2025-10-17 10:00:00.123456+00"}'),
               (2, '{"changed_since": "2025-10-17"}'),
               (3, '{"changed_since": "2025-10-17 10:00 America/Sao_Paulo"}'),
               (4, '{"changed_since": "epoch"}'),
               (11, '{"changed_since": "now"}'),
               (12, '{"changed_since": "Today"}'),
               (13, '{"changed_since": "yesterday 10:00"}'),
               (14, '{"changed_since": "infinity"}'),
               (15, '{"changed_since": "-infinity"}'),
               (16, '{"changed_since": "2025-02-30"}'),
               (17, '{"changed_since": "2025-10-17 10:00 Mars/Olympus"}'),
               (18, '{"changed_since": ""}'),
               (19, '{"changed_since": 1760659200}'),
               (20, '{"changed_since": null}'),
               (21, '{"changed_since": ["2025-10-17"]}'),
               (22, '{"changed_since": "300000-01-01"}')) v(n, o),
       LATERAL expect_error(format('SELECT gs_export_create(%L, options => %L)', '2026-01-31', o)) e
 ORDER BY n;
-- checked in the config's default_options too
SELECT * FROM expect_error($$UPDATE gestao_scouter_config SET default_options = '{"changed_since": "soon"}'$$);
SELECT * FROM expect_error($$UPDATE gestao_scouter_config SET default_options = '{"changed_since": "2025-10-17T00:00:00Z"}'$$);

--
-- The first sync: every lead.  A job like gs_export_create's, from the end
-- of time down (end_date NULL), marked as a sync, synced_through the
-- changes horizon when it was created, no changed_since.
--
CREATE VIEW sync_job AS
SELECT id, status, start_date, end_date, is_sync, options - 'changed_since' AS options,
       effective_options -> 'changed_since' AS changed_since,
       effective_options ->> 'delay_ms' AS delay_ms, owner_role = current_user AS owned_by_caller,
       created_by,
       synced_through IS NOT NULL AND synced_through <= now() AS synced_through_ok
  FROM gestao_scouter_export_jobs;
BEGIN;
SELECT gs_export_sync() AS s1 \gset
SELECT status, start_date, end_date, is_sync, options, changed_since, delay_ms, owned_by_caller,
       created_by, synced_through_ok
  FROM sync_job WHERE id = :'s1';
-- another job is pending: NULL, no error, no new job
SELECT gs_export_sync() IS NULL AS null_while_pending,
       (SELECT count(*) FROM gestao_scouter_export_jobs WHERE is_sync) AS sync_jobs;
SELECT gs_export_pause(:'s1');
SELECT gs_export_sync('{"delay_ms": 0}') IS NULL AS null_while_paused;
-- but every other error is raised, a 55000 among them
UPDATE gestao_scouter_config SET sync_enabled = false;
SELECT * FROM expect_error('SELECT gs_export_sync()');
UPDATE gestao_scouter_config SET sync_enabled = true;
SELECT * FROM expect_error($$SELECT gs_export_sync('{"batch_size": 0}')$$);
SELECT * FROM expect_error('SELECT gs_export_sync(NULL)');
-- a gs_export_create job in the way: NULL too
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'s1';
SELECT gs_export_create() AS other \gset
SELECT gs_export_sync() IS NULL AS null_while_another_job;
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'other';

--
-- The next sync starts where the last completed one's synced_through says,
-- less its look-back (option look_back, default five minutes).
--
SELECT gs_export_sync('{"delay_ms": 0}') AS s2 \gset
SELECT status, start_date, end_date, is_sync, options, delay_ms, owned_by_caller, synced_through_ok,
       (SELECT o.options ? 'changed_since' FROM gestao_scouter_export_jobs o WHERE o.id = :'s2') AS passed_in_options
  FROM sync_job WHERE id = :'s2';
SELECT (SELECT (effective_options ->> 'changed_since')::timestamptz + (effective_options ->> 'look_back')::interval
           FROM gestao_scouter_export_jobs WHERE id = :'s2')
     = (SELECT synced_through FROM gestao_scouter_export_jobs WHERE id = :'s1') AS from_s1_mark;
-- s2 fails: the mark stays at s1's
UPDATE gestao_scouter_export_jobs SET status = 'failed', synced_through = now() + interval '1 hour'
 WHERE id = :'s2';
SELECT gs_export_sync() AS s3 \gset
SELECT (SELECT (effective_options ->> 'changed_since')::timestamptz + (effective_options ->> 'look_back')::interval
           FROM gestao_scouter_export_jobs WHERE id = :'s3')
     = (SELECT synced_through FROM gestao_scouter_export_jobs WHERE id = :'s1') AS failed_sync_moves_nothing;
-- the greatest synced_through of the completed syncs counts, not the
-- latest completion
UPDATE gestao_scouter_export_jobs SET status = 'completed', synced_through = now() + interval '2 hours'
 WHERE id = :'s3';
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'s2';
SELECT gs_export_sync() AS s4 \gset
SELECT (SELECT (effective_options ->> 'changed_since')::timestamptz + (effective_options ->> 'look_back')::interval
           FROM gestao_scouter_export_jobs WHERE id = :'s4')
     = now() + interval '2 hours' AS greatest_mark;
-- a caller may ask for an earlier start, never for a later one
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'s4';
SELECT gs_export_sync('{"changed_since": "2020-01-01T00:00:00Z"}') AS s5 \gset
SELECT j.options, s.changed_since
  FROM sync_job s JOIN gestao_scouter_export_jobs j USING (id) WHERE id = :'s5';
UPDATE gestao_scouter_export_jobs SET status = 'failed' WHERE id = :'s5';
SELECT gs_export_sync('{"changed_since": "2200-01-01T00:00:00Z"}') AS s6 \gset
SELECT (SELECT (effective_options ->> 'changed_since')::timestamptz + (effective_options ->> 'look_back')::interval
           FROM gestao_scouter_export_jobs WHERE id = :'s6')
     = now() + interval '2 hours' AS later_ask_ignored;
UPDATE gestao_scouter_export_jobs SET status = 'failed' WHERE id = :'s6';
-- deleting the completed syncs does not take the mark back
DELETE FROM gestao_scouter_export_jobs WHERE is_sync;
SELECT gs_export_sync() AS s7 \gset
SELECT (SELECT (effective_options ->> 'changed_since')::timestamptz + (effective_options ->> 'look_back')::interval
           FROM gestao_scouter_export_jobs WHERE id = :'s7')
     = now() + interval '2 hours' AS mark_kept_after_delete;
UPDATE gestao_scouter_export_jobs SET status = 'failed' WHERE id = :'s7';
-- other fields, another scope: a mark of its own (none yet)
SELECT gs_export_sync('{"fields": ["name"]}') AS s8 \gset
SELECT changed_since FROM sync_job WHERE id = :'s8';
UPDATE gestao_scouter_export_jobs SET status = 'failed' WHERE id = :'s8';
SELECT count(*) AS marks FROM gs_export_sync_marks;
ROLLBACK;

-- The look-back: five minutes unless given, kept in the effective options;
-- not part of the scope (the mark is the same whatever the look-back).
BEGIN;
SELECT gs_export_sync() AS l1 \gset
UPDATE gestao_scouter_export_jobs SET status = 'completed', synced_through = now() - interval '1 hour'
 WHERE id = :'l1';
SELECT gs_export_sync('{"look_back": "0 seconds"}') AS l2 \gset
SELECT effective_options ->> 'look_back' AS look_back,
       (effective_options ->> 'changed_since')::timestamptz = now() - interval '1 hour' AS from_the_mark
  FROM gestao_scouter_export_jobs WHERE id = :'l2';
UPDATE gestao_scouter_export_jobs SET status = 'failed' WHERE id = :'l2';
SELECT gs_export_sync('{"look_back": "2 hours"}') AS l3 \gset
SELECT effective_options ->> 'look_back' AS look_back,
       (effective_options ->> 'changed_since')::timestamptz = now() - interval '3 hours' AS two_hours_before
  FROM gestao_scouter_export_jobs WHERE id = :'l3';
UPDATE gestao_scouter_export_jobs SET status = 'failed' WHERE id = :'l3';
SELECT gs_export_sync() AS l4 \gset
SELECT effective_options ->> 'look_back' AS look_back,
       (effective_options ->> 'changed_since')::timestamptz = now() - interval '65 minutes' AS five_minutes_before
  FROM gestao_scouter_export_jobs WHERE id = :'l4';
ROLLBACK;
SELECT o, e.* FROM (VALUES
    ('{"look_back": "-1 minute"}'),
    ('{"look_back": "8 days"}'),
    ('{"look_back": 300}'),
    ('{"look_back": "soon"}')) v(o),
    LATERAL expect_error(format('SELECT gs_export_sync(%L)', o)) e;

-- The config's default changed_since is the first sync's (no mark yet),
-- not the next's: the mark wins.
BEGIN;
UPDATE gestao_scouter_config SET default_options = '{"changed_since": "2021-06-01T00:00:00Z"}';
SELECT gs_export_sync() AS c1 \gset
SELECT options, changed_since FROM sync_job WHERE id = :'c1';
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'c1';
SELECT gs_export_sync() AS c2 \gset
SELECT (SELECT (effective_options ->> 'changed_since')::timestamptz + (effective_options ->> 'look_back')::interval
           FROM gestao_scouter_export_jobs WHERE id = :'c2')
     = (SELECT synced_through FROM gestao_scouter_export_jobs WHERE id = :'c1') AS mark_over_config;
ROLLBACK;

--
-- Who may call it: as gs_export_create.  The job is the caller's, with a
-- mark of its own; grant_access grants it.
--
CREATE ROLE regress_gs_syncer;
CREATE ROLE regress_gs_stranger;
GRANT gs_export_user TO regress_gs_syncer;
GRANT SELECT ON leads TO regress_gs_syncer, regress_gs_stranger;
SELECT has_function_privilege('regress_gs_syncer', 'gs_export_sync(jsonb)', 'EXECUTE') AS user_may,
       has_function_privilege('regress_gs_stranger', 'gs_export_sync(jsonb)', 'EXECUTE') AS stranger_may,
       has_table_privilege('regress_gs_syncer', 'gs_export_sync_marks', 'SELECT') AS marks_readable;
BEGIN;
SELECT gs_export_sync() AS first \gset
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'first';
SET ROLE regress_gs_syncer;
SELECT gs_export_sync() AS mine \gset
RESET ROLE;
SELECT j.owner_role, s.changed_since, s.is_sync
  FROM sync_job s JOIN gestao_scouter_export_jobs j USING (id) WHERE id = :'mine';
ROLLBACK;
SET ROLE regress_gs_stranger;
SELECT * FROM expect_error('SELECT gs_export_sync()');
RESET ROLE;
BEGIN;
SELECT gs_export_grant_access('regress_gs_stranger');
SELECT has_function_privilege('regress_gs_stranger', 'gs_export_sync(jsonb)', 'EXECUTE') AS granted,
       array_agg(p.proname ORDER BY p.proname) AS functions_granted
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE a.grantee = 'regress_gs_stranger'::regrole AND a.privilege_type = 'EXECUTE';
ROLLBACK;
REVOKE SELECT ON leads FROM regress_gs_syncer, regress_gs_stranger;
DROP ROLE regress_gs_syncer, regress_gs_stranger;

SELECT count(*) AS active_jobs FROM gestao_scouter_export_jobs
 WHERE status IN ('pending', 'running', 'paused');
