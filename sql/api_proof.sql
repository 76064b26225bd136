--
-- api_proof: gs_export_verify, gs_export_repair and gs_export_retry_errors
-- (doc/contract.md, 1.2; doc/usage.md, "Prove the copy equal"): their
-- signatures and grants, the options verify takes, what repair and retry
-- put in their queue, and every error.  Job states are set by hand; every
-- case rolls back, so no worker ever runs one.
--
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
SELECT gs_regress_reset();

CREATE ROLE regress_gs_pr_owner;      -- a user: owns the jobs below
CREATE ROLE regress_gs_pr_other;      -- another user
CREATE ROLE regress_gs_pr_outsider;   -- no gs_export role at all
GRANT gs_export_user TO regress_gs_pr_owner, regress_gs_pr_other;
GRANT SELECT ON leads TO regress_gs_pr_owner, regress_gs_pr_other, regress_gs_pr_outsider;

--
-- The functions: named parameters, their results, EXECUTE for gs_export_user
-- and gs_export_admin only.
--
SELECT p.oid::regprocedure AS function, p.proargnames[1] AS argument,
       pg_get_expr(p.proargdefaults, 0) AS "default", pg_get_function_result(p.oid) AS result
  FROM pg_proc p
 WHERE p.proname IN ('gs_export_verify', 'gs_export_repair', 'gs_export_retry_errors')
 ORDER BY p.proname COLLATE "C";
SELECT p.proname::text AS function,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.proname IN ('gs_export_verify', 'gs_export_repair', 'gs_export_retry_errors')
   AND a.grantee <> p.proowner
 ORDER BY 1 COLLATE "C", 2 COLLATE "C";

--
-- Verify's options: 22004 for NULL, 22023 for each bad one.
--
SELECT o AS options, e.*
  FROM unnest(ARRAY[
         NULL,
         '[]',
         '{"compare": "all"}',
         '{"compare": 1}',
         '{"fields": ["id", "name"], "compare": "version"}',
         '{"start_date": 20260101}',
         '{"start_date": "yesterday-ish"}',
         '{"start_date": "infinity"}',
         '{"start_date": "2026-01-01", "end_date": "2026-02-01"}',
         '{"look_back": "5 minutes"}',
         '{"backfill": true}',
         '{"on_delete": "drop"}',
         '{"on_delete": {"sync_source": "gone"}}',
         '{"on_delete": {"id": 0}}',
         '{"batch_size": 0}',
         '{"no_such_option": 1}']) WITH ORDINALITY u(o, n),
       LATERAL expect_error(format('SELECT gs_export_verify(%L)', o)) e
 ORDER BY n;

--
-- What a verify job holds: kind verify, compare version by default when
-- updated_at is mapped, else content; the days; pages of at most 1000.
--
BEGIN;
SELECT gs_export_verify() AS v1 \gset
SELECT kind, status, pass_kind, effective_options ->> 'compare' AS compare,
       effective_options ->> 'on_delete' AS on_delete, batch_size,
       effective_options ? 'start_date' AS has_days
  FROM gestao_scouter_export_jobs WHERE id = :'v1';
-- one active job: a second verify, or an export, waits for it (55000)
SELECT * FROM expect_error($$SELECT gs_export_verify('{}')$$);
SELECT * FROM expect_error($$SELECT gs_export_create()$$);
ROLLBACK;
BEGIN;
SELECT gs_export_verify('{"fields": ["id", "name"], "batch_size": 5000, "start_date": "2026-01-31",
                          "end_date": "2026-01-01", "on_delete": {"ativo": false}}') AS v2 \gset
SELECT kind, effective_options ->> 'compare' AS compare, batch_size,
       effective_options ->> 'start_date' AS start_date, effective_options ->> 'end_date' AS end_date,
       start_date AS job_start, end_date AS job_end, effective_options -> 'on_delete' AS on_delete
  FROM gestao_scouter_export_jobs WHERE id = :'v2';
ROLLBACK;

--
-- Repair: 22004 for NULL, 42704 for an unknown job, 22023 for a job that is
-- not a verify, 55000 for a verify not completed or that found nothing.
-- A repair's queue: the leads of the diffs, each once, in rows of at most
-- 1000 ids; leads_in_range their number.
--
SELECT * FROM expect_error('SELECT gs_export_repair(NULL)');
SELECT * FROM expect_error($$SELECT gs_export_repair('00000000-0000-0000-0000-00000000dead')$$);
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}') AS export \gset
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'export';
SELECT * FROM expect_error(format('SELECT gs_export_repair(%L)', :'export'));
SELECT gs_export_verify('{"on_delete": "ignore"}') AS v \gset
SELECT * FROM expect_error(format('SELECT gs_export_repair(%L)', :'v'));
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'v';
SELECT * FROM expect_error(format('SELECT gs_export_repair(%L)', :'v'));
INSERT INTO gestao_scouter_export_diffs (job_id, lead_id, kind)
SELECT :'v', g, (ARRAY['missing', 'stale', 'different', 'extra'])[1 + g % 4]
  FROM generate_series(1, 2500) g;
SELECT gs_export_repair(verify_job_id => :'v') AS r \gset
SELECT kind, status, pass_kind, leads_in_range, options ->> 'repair_of' = :'v' AS repair_of,
       effective_options ->> 'on_delete' AS on_delete
  FROM gestao_scouter_export_jobs WHERE id = :'r';
SELECT cardinality(ids) AS ids, ids[1] AS first, ids[cardinality(ids)] AS last
  FROM gs_export_changes WHERE job_id = :'r' ORDER BY seq;
SELECT backlog, kind FROM gs_export_status(:'r');
ROLLBACK;

--
-- Retry: 42704 for an unknown job, 55000 for a job without unresolved error
-- rows; the queue holds the leads of the unresolved rows, each once.
--
SELECT * FROM expect_error($$SELECT gs_export_retry_errors('00000000-0000-0000-0000-00000000dead')$$);
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}') AS export \gset
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'export';
SELECT * FROM expect_error(format('SELECT gs_export_retry_errors(%L)', :'export'));
INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message, resolved_at)
VALUES (:'export', 7, 'refused', NULL), (:'export', 7, 'refused again', NULL),
       (:'export', 3, 'refused', NULL), (:'export', 5, 'refused', now());
SELECT gs_export_retry_errors(job_id => :'export') AS r \gset
SELECT kind, leads_in_range, options ->> 'retry_of' = :'export' AS retry_of,
       effective_options ->> 'on_delete' AS on_delete
  FROM gestao_scouter_export_jobs WHERE id = :'r';
SELECT ids FROM gs_export_changes WHERE job_id = :'r';
ROLLBACK;

--
-- Who may: another user gets 42704 (as for a job that does not exist); a
-- role outside gs_export 42501.
--
BEGIN;
SET LOCAL ROLE regress_gs_pr_owner;
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC"}') AS export \gset
RESET ROLE;
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'export';
INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message) VALUES (:'export', 1, 'refused');
SET LOCAL ROLE regress_gs_pr_other;
SELECT 'retry' AS call, * FROM expect_error(format('SELECT gs_export_retry_errors(%L)', :'export'))
UNION ALL
SELECT 'repair', * FROM expect_error(format('SELECT gs_export_repair(%L)', :'export'));
RESET ROLE;
SET LOCAL ROLE regress_gs_pr_outsider;
SELECT 'retry' AS call, * FROM expect_error(format('SELECT gs_export_retry_errors(%L)', :'export'))
UNION ALL
SELECT 'repair', * FROM expect_error(format('SELECT gs_export_repair(%L)', :'export'))
UNION ALL
SELECT 'verify', * FROM expect_error('SELECT gs_export_verify()');
RESET ROLE;
ROLLBACK;

--
-- A remote table a follower keeps: a retry creates no job, its leads go
-- into the follower's queue, and the follower's id comes back; a verify is
-- not kept from starting by the follower.
--
BEGIN;
SELECT gs_export_follow('{"backfill": false}') AS f \gset
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"time_zone": "UTC", "target_table": "other_table"}') AS export \gset
UPDATE gestao_scouter_export_jobs SET status = 'completed', effective_options = effective_options || '{"target_table": "fichas"}' WHERE id = :'export';
INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message) VALUES (:'export', 11, 'refused');
SELECT gs_export_retry_errors(:'export') = :'f' AS the_follower;
SELECT ids FROM gs_export_changes WHERE job_id = :'f';
SELECT count(*) AS retry_jobs FROM gestao_scouter_export_jobs WHERE kind = 'retry';
SELECT gs_export_verify() IS NOT NULL AS verify_beside_the_follower;
ROLLBACK;

REVOKE SELECT ON leads FROM regress_gs_pr_owner, regress_gs_pr_other, regress_gs_pr_outsider;
DROP ROLE regress_gs_pr_owner, regress_gs_pr_other, regress_gs_pr_outsider;
