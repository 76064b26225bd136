--
-- api_follow: gs_export_follow and the jobs of kind 'follow' (doc/contract.md,
-- "Live sync"; doc/usage.md, "Live sync"): its options and every error, one
-- follower per remote table and the jobs it stands in the way of, its
-- capture triggers on leads and the rows they queue in gs_export_changes,
-- TRUNCATE, gs_export_status's new columns, pause, reset and delete of a
-- follower.  Every case rolls back: no follower is ever committed, so the
-- launcher of this instance starts no worker for it, no change is consumed,
-- and the queue holds exactly what the test's statements captured.
--
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
SELECT gs_regress_reset();

-- A uuid without its dashes, as the triggers' names have it, masked.
CREATE FUNCTION follow_mask(t text)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT regexp_replace(regexp_replace(t,
    '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g'),
    '[0-9a-f]{32}', '<id>', 'g')
$$;
-- The capture triggers on leads, per follower (masked), in name order.
CREATE VIEW follow_triggers AS
SELECT follow_mask(t.tgname) AS name,
       follow_mask(pg_get_triggerdef(t.oid)) AS definition,
       t.tgenabled AS enabled
  FROM pg_trigger t
 WHERE t.tgrelid = 'leads'::regclass AND t.tgname LIKE 'gs_export_follow_%';

--
-- The function: options with a default, a uuid, EXECUTE for gs_export_user
-- and gs_export_admin only.
--
SELECT p.oid::regprocedure AS function, p.proargnames[1] AS argument,
       pg_get_expr(p.proargdefaults, 0) AS "default", pg_get_function_result(p.oid) AS result,
       p.provolatile AS volatility
  FROM pg_proc p
 WHERE p.proname = 'gs_export_follow';
SELECT * FROM (
    SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee,
           a.privilege_type
      FROM pg_proc p, aclexplode(p.proacl) a
     WHERE p.proname = 'gs_export_follow' AND a.grantee <> p.proowner) g
 ORDER BY grantee COLLATE "C";

--
-- Options refused, each with its SQLSTATE: null (22004), not an object,
-- the dates of gs_export_create and gs_export_sync (a follower's scope is
-- every lead of its filter, whatever its updated_at), backfill not a
-- boolean, on_delete other than "delete", "ignore" or an object of plain
-- remote columns (not id, not the source column that scopes every
-- delete), an option no job knows, and the options every job checks.
--
SELECT n, e.*
  FROM (VALUES (1, NULL),
               (2, '[]'),
               (3, '"fichas"'),
               (4, '{"changed_since": "2025-10-17T00:00:00Z"}'),
               (5, '{"look_back": "5 minutes"}'),
               (6, '{"time_zone": "UTC"}'),
               (7, '{"delay_ms": 0}'),
               (8, '{"backfill": "yes"}'),
               (9, '{"backfill": null}'),
               (10, '{"backfill": 1}'),
               (11, '{"on_delete": "drop"}'),
               (12, '{"on_delete": "DELETE"}'),
               (13, '{"on_delete": 1}'),
               (14, '{"on_delete": null}'),
               (15, '{"on_delete": {}}'),
               (16, '{"on_delete": ["ativo"]}'),
               (17, '{"on_delete": {"id": true}}'),
               (18, '{"on_delete": {"bad name": 1}}'),
               (19, '{"on_delete": {"sync_source": "gone"}}'),
               (20, '{"source_column": "origem", "on_delete": {"origem": null}}'),
               (21, '{"colour": "blue"}'),
               (22, '{"batch_size": 0}'),
               (23, '{"target_table": "fichas; drop"}'),
               (24, '{"filter": {"no_such_column": 1}}')) v(n, o),
       LATERAL expect_error(format('SELECT gs_export_follow(%L)', o)) e
 ORDER BY n;
-- The hint of a date option says who takes it.
SELECT error_hint($$SELECT gs_export_follow('{"delay_ms": 0}')$$) AS hint;
-- Accepted: a soft delete of columns other than the source column (even
-- the default source column's, when another is the source); "ignore";
-- backfill false; a filter.
SELECT n, e.*
  FROM (VALUES (1, '{}'),
               (2, '{"on_delete": {"ativo": false, "excluido_em": "now"}}'),
               (3, '{"on_delete": "ignore", "backfill": false}'),
               (4, '{"on_delete": "delete", "backfill": true, "filter": {"scouter": "Scout A"}}'),
               (5, '{"source_column": "origem", "on_delete": {"sync_source": "x"}}')) v(n, o),
       LATERAL expect_error(format('SELECT gs_export_follow(%L)', o)) e
 ORDER BY n;

-- Without a leads table: 42P01 (rolled back).
BEGIN;
ALTER TABLE leads RENAME TO leads_elsewhere;
SELECT * FROM expect_error($$SELECT gs_export_follow('{"fields": ["name"]}')$$);
ROLLBACK;
-- Without an active config: as gs_export_create.
BEGIN;
UPDATE gestao_scouter_config SET active = false;
SELECT * FROM expect_error('SELECT gs_export_follow()');
ROLLBACK;

--
-- Who may call it: a gs_export user or admin who may read the columns the
-- follower reads (as its owner); not a role outside gs_export, even with
-- EXECUTE granted to it directly (42501 either way).
--
CREATE ROLE regress_gs_fl_user;       -- a user: reads every column of leads
CREATE ROLE regress_gs_fl_narrow;     -- a user who may read three columns
CREATE ROLE regress_gs_fl_admin;      -- an admin
CREATE ROLE regress_gs_fl_outsider;   -- no gs_export role at all
CREATE ROLE regress_gs_fl_app;        -- the application: writes leads, nothing else
GRANT gs_export_user TO regress_gs_fl_user, regress_gs_fl_narrow;
GRANT gs_export_admin TO regress_gs_fl_admin;
GRANT SELECT ON leads TO regress_gs_fl_user, regress_gs_fl_admin, regress_gs_fl_outsider;
GRANT SELECT (id, updated_at, name) ON leads TO regress_gs_fl_narrow;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON leads TO regress_gs_fl_app;

BEGIN;
SET LOCAL ROLE regress_gs_fl_outsider;
SELECT * FROM expect_error('SELECT gs_export_follow()');
RESET ROLE;
GRANT EXECUTE ON FUNCTION gs_export_follow(jsonb) TO regress_gs_fl_outsider;
SET LOCAL ROLE regress_gs_fl_outsider;
SELECT * FROM expect_error('SELECT gs_export_follow()');
RESET ROLE;
ROLLBACK;
BEGIN;
SET LOCAL ROLE regress_gs_fl_narrow;
SELECT * FROM expect_error('SELECT gs_export_follow()');
-- the columns its filter compares count too
SELECT * FROM expect_error($$SELECT gs_export_follow('{"fields": ["name"], "filter": {"scouter": "Scout A"}}')$$);
SELECT * FROM expect_error($$SELECT gs_export_follow('{"fields": ["name"]}')$$);
RESET ROLE;
ROLLBACK;
BEGIN;
SET LOCAL ROLE regress_gs_fl_admin;
SELECT gs_export_follow('{"target_table": "fichas_admin"}') IS NOT NULL AS admin_may;
RESET ROLE;
ROLLBACK;

--
-- A follower: a job of kind 'follow', pending, owned by the caller, its
-- options as given and resolved (backfill, on_delete, delay_ms 0), first
-- a backfill by id (pass_kind 'backfill', cursor_id unset) unless backfill
-- is false; and its four capture triggers on leads.  Creating them locks
-- leads in SHARE ROW EXCLUSIVE mode until the caller's transaction ends.
--
BEGIN;
SET LOCAL ROLE regress_gs_fl_user;
SELECT gs_export_follow('{"on_delete": {"ativo": false}}') AS f \gset
RESET ROLE;
SELECT kind, status, options, pass_kind, cursor_id, owner_role, deleted_leads,
       total_leads, exported_leads, error_leads, delay_ms, end_date,
       effective_options ->> 'target_table' AS target_table,
       effective_options -> 'backfill' AS backfill,
       effective_options -> 'on_delete' AS on_delete,
       effective_options -> 'delay_ms' AS effective_delay_ms,
       effective_options ->> 'source_column' AS source_column,
       effective_options ? 'changed_since' AS has_changed_since
  FROM gestao_scouter_export_jobs WHERE id = :'f';
SELECT * FROM follow_triggers ORDER BY name COLLATE "C";
-- named after this follower, each with its id as argument
SELECT count(*) AS triggers_of_f
  FROM pg_trigger t
 WHERE t.tgrelid = 'leads'::regclass
   AND t.tgname LIKE 'gs_export_follow_' || replace(:'f', '-', '') || '_%'
   AND pg_get_triggerdef(t.oid) LIKE '%_gs_capture(''' || :'f' || ''')';
SELECT mode FROM pg_locks
 WHERE relation = 'leads'::regclass AND pid = pg_backend_pid() AND mode = 'ShareRowExclusiveLock';
-- nothing captured yet
SELECT count(*) AS queued FROM gs_export_changes WHERE job_id = :'f';

-- The same options again, by the same role, however written: the same id;
-- while it is pending, running (as a worker leaves it) or not.
SET LOCAL ROLE regress_gs_fl_user;
SELECT gs_export_follow('{"on_delete": {"ativo": false}}') = :'f' AS same_id,
       gs_export_follow('{"on_delete": {"ativo": false}, "backfill": true, "target_table": "fichas"}') = :'f' AS same_resolved;
RESET ROLE;
UPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = :'f';
SET LOCAL ROLE regress_gs_fl_user;
SELECT gs_export_follow('{"on_delete": {"ativo": false}}') = :'f' AS same_id_running;
-- Other options for the same remote table: 55000 naming the follower.
SELECT * FROM expect_error($$SELECT gs_export_follow('{"on_delete": "delete"}')$$);
SELECT * FROM expect_error($$SELECT gs_export_follow('{"backfill": false, "on_delete": {"ativo": false}}')$$);
SELECT error_hint($$SELECT gs_export_follow('{}')$$) LIKE '%' || :'f' || '%' AS hint_names_it;
RESET ROLE;
-- Another role, the same options: its own would be another follower.
SET LOCAL ROLE regress_gs_fl_admin;
SELECT * FROM expect_error($$SELECT gs_export_follow('{"on_delete": {"ativo": false}}')$$);
RESET ROLE;
-- A paused follower, the same options: 55000 too (resume it).
UPDATE gestao_scouter_export_jobs SET status = 'paused' WHERE id = :'f';
SET LOCAL ROLE regress_gs_fl_user;
SELECT * FROM expect_error($$SELECT gs_export_follow('{"on_delete": {"ativo": false}}')$$);
RESET ROLE;
UPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = :'f';

--
-- A follower keeps its remote table: gs_export_create and gs_export_sync
-- to it are refused (55000, the hint names the follower); to another
-- remote table they are not, and a follower is not the one active job.
--
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}')$$);
SELECT error_hint($$SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}')$$)
       LIKE '%' || :'f' || '%' AS create_hint_names_it;
SELECT * FROM expect_error('SELECT gs_export_sync()');
SELECT error_hint('SELECT gs_export_sync()') LIKE '%' || :'f' || '%' AS sync_hint_names_it;
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC", "target_table": "fichas_b"}')$$);
SELECT * FROM expect_error($$SELECT gs_export_sync('{"target_table": "fichas_b"}')$$);
-- a second follower, of another remote table: allowed
SELECT gs_export_follow('{"target_table": "fichas_b", "backfill": false, "on_delete": "ignore"}') AS g \gset
SELECT kind, status, pass_kind, effective_options -> 'backfill' AS backfill,
       effective_options -> 'on_delete' AS on_delete, effective_options -> 'delay_ms' AS delay_ms
  FROM gestao_scouter_export_jobs WHERE id = :'g';
SELECT count(*) AS capture_triggers FROM follow_triggers;

--
-- Capture: each statement that writes leads queues, for every follower,
-- one row per thousand ids: the ids it inserted, updated (before and
-- after: an UPDATE may change an id) or deleted, whoever writes (the
-- application's role has no privilege on the queue), whatever it does to
-- updated_at.  A statement that writes no row queues nothing.  Paused, a
-- follower still captures (and sends nothing).
--
SELECT gs_export_pause(:'f');
SET LOCAL ROLE regress_gs_fl_app;
INSERT INTO leads (id, name, updated_at) VALUES (901, 'Nina', '2026-02-01 10:00:00+00'),
                                               (902, 'Otto', NULL);
UPDATE leads SET name = 'Nina B' WHERE id = 901;                    -- updated_at untouched
UPDATE leads SET updated_at = '1999-01-01 00:00:00+00' WHERE id = 902;  -- into the past
UPDATE leads SET id = 903 WHERE id = 902;                           -- a new id
UPDATE leads SET name = name WHERE false;                           -- no row
DELETE FROM leads WHERE id = 901;
INSERT INTO leads (id, name) SELECT i, 'bulk' FROM generate_series(10000, 12499) i;
RESET ROLE;
SELECT c.job_id = :'f' AS of_f, c.ids, c.truncated
  FROM gs_export_changes c WHERE c.job_id IN (:'f', :'g') AND cardinality(c.ids) <= 2
 ORDER BY c.job_id = :'f' DESC, c.seq;
-- the insert of 2,500 leads: three rows of at most 1,000 ids, by thousand
-- (in no given order)
SELECT c.job_id = :'f' AS of_f, cardinality(c.ids) AS ids, min(u.id) AS first_id, max(u.id) AS last_id
  FROM gs_export_changes c, unnest(c.ids) u(id)
 WHERE c.job_id IN (:'f', :'g') AND cardinality(c.ids) > 2
 GROUP BY c.job_id, c.seq
 ORDER BY c.job_id = :'f' DESC, first_id;
SELECT count(*) AS privileges_of_app
  FROM information_schema.role_table_grants
 WHERE grantee = 'regress_gs_fl_app' AND table_name = 'gs_export_changes';
SELECT status FROM gestao_scouter_export_jobs WHERE id = :'f';

--
-- gs_export_status: kind, backlog (the ids waiting, a TRUNCATE counting
-- one), lag (the age of the oldest change waiting, 0 when none),
-- deleted_leads; for a follower and for an export job (kind 'export',
-- backlog 0, lag 0).
--
UPDATE gs_export_changes SET captured_at = now() - interval '90 seconds'
 WHERE job_id = :'f' AND seq = (SELECT min(seq) FROM gs_export_changes WHERE job_id = :'f');
UPDATE gestao_scouter_export_jobs SET deleted_leads = 7 WHERE id = :'f';
SELECT job_id = :'f' AS is_f, status, kind, backlog, lag, deleted_leads, end_date, pause_reason
  FROM gs_export_status(:'f');
-- (changes captured in this transaction are not older than its now(): lag 0)
SELECT kind, backlog, lag, deleted_leads FROM gs_export_status(:'g');
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC", "target_table": "fichas_c"}') AS e \gset
SELECT kind, backlog, lag, deleted_leads FROM gs_export_status(:'e');
ROLLBACK;

--
-- TRUNCATE leads: every running or pending follower is paused, with a
-- reason that says so, and a marker (no ids) waits in its queue; the
-- leads are gone, nothing else happens until a person decides.
--
BEGIN;
SELECT gs_export_follow() AS f \gset
UPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = :'f';
SET LOCAL ROLE regress_gs_fl_app;
UPDATE leads SET name = name || '.' WHERE id = 1;
TRUNCATE leads;
INSERT INTO leads (id, name) VALUES (7, 'after');
RESET ROLE;
SELECT status, regexp_replace(pause_reason, '\(by [^)]*\)', '(by <user>)') AS pause_reason,
       paused_at IS NOT NULL AS paused_at_set
  FROM gestao_scouter_export_jobs WHERE id = :'f';
SELECT ids, truncated FROM gs_export_changes WHERE job_id = :'f' ORDER BY seq;
SELECT backlog FROM gs_export_status(:'f');

--
-- gs_export_reset of the paused follower: back to its backfill (cursor
-- and counters cleared); the changes waiting stay (a lead deleted while it
-- was paused is deleted at the remote after the backfill), but the
-- TRUNCATE's marker goes (a reset deletes nothing at the remote for it).
-- Of a running one: 55000, as for any job.
--
UPDATE gestao_scouter_export_jobs
   SET pass_kind = 'follow', cursor_id = 3, total_leads = 4, exported_leads = 3, deleted_leads = 1
 WHERE id = :'f';
SELECT gs_export_reset(:'f');
SELECT status, pass_kind, cursor_id, total_leads, exported_leads, deleted_leads, pause_reason
  FROM gestao_scouter_export_jobs WHERE id = :'f';
SELECT count(*) AS queued, count(*) FILTER (WHERE truncated) AS marks
  FROM gs_export_changes WHERE job_id = :'f';
-- reset does not touch the triggers: capture goes on
SELECT count(*) AS capture_triggers FROM follow_triggers;
UPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = :'f';
SELECT * FROM expect_error(format('SELECT gs_export_reset(%L)', :'f'));
SELECT * FROM expect_error(format('SELECT gs_export_delete(%L)', :'f'));

--
-- A job of the follower's remote table that is not active (failed, say)
-- may not be resumed or reset beside it (55000); gs_export_resume of the
-- paused follower is allowed.
--
INSERT INTO gestao_scouter_export_jobs (status, start_date, end_date, effective_options, options)
SELECT 'failed', '2026-01-31', '2026-01-01', j.effective_options - 'backfill' - 'on_delete', '{}'
  FROM gestao_scouter_export_jobs j WHERE j.id = :'f'
RETURNING id AS old \gset
SELECT * FROM expect_error(format('SELECT gs_export_resume(%L)', :'old'));
SELECT * FROM expect_error(format('SELECT gs_export_reset(%L)', :'old'));
SELECT gs_export_pause(:'f');
SELECT * FROM expect_error(format('SELECT gs_export_resume(%L)', :'f'));

--
-- gs_export_delete of the paused follower: its row, its capture triggers
-- and its waiting changes go; the writes of leads queue nothing after.
--
INSERT INTO leads (id, name) VALUES (8, 'queued');
SELECT count(*) AS queued_before FROM gs_export_changes WHERE job_id = :'f';
SELECT gs_export_delete(:'f');
SELECT count(*) AS jobs_left FROM gestao_scouter_export_jobs WHERE id = :'f';
SELECT count(*) AS capture_triggers FROM follow_triggers;
SELECT count(*) AS queued_after FROM gs_export_changes WHERE job_id = :'f';
INSERT INTO leads (id, name) VALUES (9, 'not captured');
SELECT count(*) AS queued_at_all FROM gs_export_changes;
-- now gs_export_create to that remote table is allowed again
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}')$$);
ROLLBACK;

--
-- A follower is refused beside an export job active on the same remote
-- table (55000: an older version of a lead could arrive after a newer
-- one), not beside one on another table.
--
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}') AS e \gset
SELECT gs_export_pause(:'e');
SELECT * FROM expect_error('SELECT gs_export_follow()');
SELECT error_hint('SELECT gs_export_follow()') LIKE '%' || :'e' || '%' AS hint_names_job;
SELECT * FROM expect_error($$SELECT gs_export_follow('{"target_table": "fichas_b"}')$$);
ROLLBACK;

REVOKE ALL ON leads FROM regress_gs_fl_user, regress_gs_fl_narrow, regress_gs_fl_admin,
                         regress_gs_fl_outsider, regress_gs_fl_app;
DROP ROLE regress_gs_fl_user, regress_gs_fl_narrow, regress_gs_fl_admin, regress_gs_fl_outsider,
          regress_gs_fl_app;
SELECT count(*) AS followers_left FROM gestao_scouter_export_jobs WHERE kind = 'follow';
SELECT count(*) AS capture_triggers_left FROM follow_triggers;
SELECT count(*) AS changes_left FROM gs_export_changes;
