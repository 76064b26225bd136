--
-- fresh_install: CREATE EXTENSION gs_export in a brand-new database, without
-- any of TabuladorMax's tables (doc/contract.md, "Requirements and installation"): it creates
-- its four tables as members of the extension, and the SQL API with named
-- parameters.  No launcher runs in this database (gs_export.database names
-- contrib_regression).
--
\set SHOW_CONTEXT never
CREATE DATABASE regress_gs_fresh;
\c regress_gs_fresh
SET DateStyle = 'ISO, YMD';
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql

CREATE EXTENSION gs_export;
SELECT extname, extversion, extnamespace::regnamespace AS schema, extrelocatable
  FROM pg_extension WHERE extname = 'gs_export';

-- The four tables, members of the extension, dumped with their data.
SELECT c.relname,
       EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
                  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'gs_export')) AS member,
       c.oid = ANY ((SELECT extconfig FROM pg_extension WHERE extname = 'gs_export')::oid[]) AS dumped
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
 ORDER BY c.relname COLLATE "C";

-- Their columns: every column of doc/reference-schema.md and those gs_export
-- adds, with its type (more columns may come: only missing or different
-- ones are listed, so no rows is right).
SELECT e.t AS "table", e.col, e.type AS expected_type, format_type(a.atttypid, a.atttypmod) AS actual_type
  FROM (VALUES
    ('gestao_scouter_config', 'id', 'uuid'),
    ('gestao_scouter_config', 'project_url', 'text'),
    ('gestao_scouter_config', 'anon_key', 'text'),
    ('gestao_scouter_config', 'service_role_key_encrypted', 'text'),
    ('gestao_scouter_config', 'active', 'boolean'),
    ('gestao_scouter_config', 'sync_enabled', 'boolean'),
    ('gestao_scouter_export_jobs', 'id', 'uuid'),
    ('gestao_scouter_export_jobs', 'status', 'text'),
    ('gestao_scouter_export_jobs', 'start_date', 'date'),
    ('gestao_scouter_export_jobs', 'end_date', 'date'),
    ('gestao_scouter_export_jobs', 'processing_date', 'date'),
    ('gestao_scouter_export_jobs', 'last_completed_date', 'date'),
    ('gestao_scouter_export_jobs', 'total_leads', 'bigint'),
    ('gestao_scouter_export_jobs', 'exported_leads', 'bigint'),
    ('gestao_scouter_export_jobs', 'error_leads', 'bigint'),
    ('gestao_scouter_export_jobs', 'pause_reason', 'text'),
    ('gestao_scouter_export_jobs', 'paused_at', 'timestamp with time zone'),
    ('gestao_scouter_export_jobs', 'created_at', 'timestamp with time zone'),
    ('gestao_scouter_export_jobs', 'started_at', 'timestamp with time zone'),
    ('gestao_scouter_export_jobs', 'completed_at', 'timestamp with time zone'),
    ('gestao_scouter_export_jobs', 'updated_at', 'timestamp with time zone'),
    ('gestao_scouter_export_jobs', 'created_by', 'uuid'),
    ('gestao_scouter_export_jobs', 'options', 'jsonb'),
    ('gestao_scouter_export_jobs', 'batch_size', 'integer'),
    ('gestao_scouter_export_jobs', 'delay_ms', 'integer'),
    ('gestao_scouter_export_jobs', 'time_zone', 'text'),
    ('gestao_scouter_export_jobs', 'owner_role', 'name'),
    ('gestao_scouter_export_jobs', 'cursor_updated_at', 'timestamp with time zone'),
    ('gestao_scouter_export_jobs', 'cursor_id', 'bigint'),
    ('gestao_scouter_export_jobs', 'ignored_fields', 'text[]'),
    ('sync_events', 'id', 'uuid'),
    ('sync_events', 'event_type', 'text'),
    ('sync_events', 'direction', 'text'),
    ('sync_events', 'lead_id', 'bigint'),
    ('sync_events', 'status', 'text'),
    ('sync_events', 'error_message', 'text'),
    ('sync_events', 'sync_duration_ms', 'integer'),
    ('sync_events', 'created_at', 'timestamp with time zone'),
    ('sync_events', 'job_id', 'uuid'),
    ('gestao_scouter_export_errors', 'id', 'uuid'),
    ('gestao_scouter_export_errors', 'job_id', 'uuid'),
    ('gestao_scouter_export_errors', 'lead_id', 'bigint'),
    ('gestao_scouter_export_errors', 'error_message', 'text'),
    ('gestao_scouter_export_errors', 'created_at', 'timestamp with time zone')
  ) e(t, col, type)
  LEFT JOIN pg_attribute a
         ON a.attrelid = to_regclass(e.t) AND a.attname = e.col AND NOT a.attisdropped
 WHERE a.attname IS NULL OR format_type(a.atttypid, a.atttypmod) <> e.type
 ORDER BY 1, 2;

-- A new job row gets its defaults from the table (what the API does not set).
BEGIN;
INSERT INTO gestao_scouter_export_jobs (start_date) VALUES ('2026-01-31');
SELECT status, total_leads, exported_leads, error_leads, options, ignored_fields,
       id IS NOT NULL AS has_id, created_at IS NOT NULL AS has_created_at
  FROM gestao_scouter_export_jobs;
-- and only the five states are allowed: 23514
SELECT state FROM expect_error($$INSERT INTO gestao_scouter_export_jobs (start_date, status) VALUES ('2026-01-31', 'done')$$);
ROLLBACK;

-- The API: named parameters with their defaults, the return types, and
-- EXECUTE for gs_export_user and gs_export_admin only.
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result, p.proargnames, p.pronargdefaults
  FROM pg_proc p
 WHERE p.proname IN ('gs_export_create', 'gs_export_pause', 'gs_export_resume')
 ORDER BY p.proname COLLATE "C";
SELECT p.proname, a.grantee::regrole AS grantee, a.privilege_type
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.proname IN ('gs_export_create', 'gs_export_pause', 'gs_export_resume')
   AND a.grantee <> p.proowner
 ORDER BY p.proname COLLATE "C", a.grantee::regrole::text COLLATE "C";
-- PUBLIC may execute only what tells a caller about itself
-- (_gs_export_whoami, gs_export_viewer) and what row level security calls
-- as any reader.
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE '%gs\_export\_%'
   AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY p.proname COLLATE "C";

-- The roles exist (cluster-wide; created by the first CREATE EXTENSION).
SELECT rolname FROM pg_roles WHERE rolname IN ('gs_export_user', 'gs_export_admin') ORDER BY 1;

-- Without a leads table, gs_export_create fails clearly: 42P01, even with a
-- usable config.
INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
VALUES ('http://127.0.0.1:9', 'k', true, true);
SELECT * FROM expect_error('SELECT gs_export_create()');
SELECT * FROM expect_error($$SELECT gs_export_create(start_date => '2026-01-31', end_date => '2026-01-01')$$);
SELECT count(*) AS jobs FROM gestao_scouter_export_jobs;
-- Argument errors still come first.
SELECT * FROM expect_error($$SELECT gs_export_create(options => '{"nope": 1}')$$);
-- Pause and resume know no job here.
SELECT * FROM expect_error($$SELECT gs_export_pause('00000000-0000-0000-0000-00000000dead')$$);
SELECT * FROM expect_error($$SELECT gs_export_resume('00000000-0000-0000-0000-00000000dead')$$);

-- DROP EXTENSION takes its four tables with it.
DROP EXTENSION gs_export;
SELECT count(*) AS tables_left FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND relkind = 'r';

\c contrib_regression
DROP DATABASE regress_gs_fresh;
