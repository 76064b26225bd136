--
-- install: CREATE EXTENSION gs_export into a database that already has
-- TabuladorMax's tables with rows in them (doc/contract.md, "Requirements and installation"):
-- existing rows are kept, the pre-existing tables only gain columns, are not
-- members of the extension and so survive DROP EXTENSION.
--
\set SHOW_CONTEXT never
\set VERBOSITY default
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- TabuladorMax as it is before gs_export (doc/reference-schema.md).
-- pg_regress feeds this file on stdin: find the DDL through PG_ABS_SRCDIR
-- (the --inputdir, the top of the source tree).
\getenv abs_srcdir PG_ABS_SRCDIR
\set tabuladormax_sql :abs_srcdir '/test/sql/tabuladormax.sql'
\set ECHO none
\i :tabuladormax_sql
\set ECHO all

INSERT INTO leads (id, name, scouter, updated_at) VALUES
    (1, 'Ana',   'Scout A', '2026-01-10 12:00:00+00'),
    (2, 'Bruno', 'Scout B', '2026-01-11 09:30:00+00'),
    (3, 'Carla', NULL,      NULL);
INSERT INTO sync_events (event_type, direction, lead_id, status, error_message, sync_duration_ms) VALUES
    ('update', 'supabase_to_gestao_scouter', 1, 'success', NULL,   12),
    ('update', 'supabase_to_gestao_scouter', 2, 'error',   'boom', 15),
    ('create', 'bitrix_to_supabase',         3, 'pending', NULL,   NULL);
-- The remote of this config refuses connections at once (nothing listens on
-- port 9), should the launcher ever run a job of these tests.
INSERT INTO gestao_scouter_config (id, project_url, anon_key, active, sync_enabled) VALUES
    ('00000000-0000-0000-0000-0000000000c1', 'http://127.0.0.1:9', 'old-anon-key', true, true);
INSERT INTO gestao_scouter_export_jobs
    (id, status, start_date, end_date, processing_date, last_completed_date,
     total_leads, exported_leads, error_leads, completed_at)
VALUES
    ('00000000-0000-0000-0000-0000000000a1', 'completed', '2026-01-11', '2026-01-10', '2026-01-10',
     '2026-01-10', 2, 1, 1, now());

-- What must survive, as text, to compare after each step.
CREATE TEMP VIEW before_rows AS
SELECT 'leads' AS t, (SELECT string_agg(format('%s|%s|%s|%s', id, name, scouter, updated_at), ';' ORDER BY id) FROM leads) AS rows
UNION ALL
SELECT 'sync_events', (SELECT string_agg(format('%s|%s|%s|%s|%s|%s', event_type, direction, lead_id, status, error_message, sync_duration_ms), ';' ORDER BY lead_id) FROM sync_events)
UNION ALL
SELECT 'gestao_scouter_config', (SELECT string_agg(format('%s|%s|%s|%s|%s', id, project_url, anon_key, active, sync_enabled), ';' ORDER BY id) FROM gestao_scouter_config)
UNION ALL
SELECT 'gestao_scouter_export_jobs', (SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s', id, status, start_date, end_date, processing_date, last_completed_date, total_leads, exported_leads, error_leads), ';' ORDER BY id) FROM gestao_scouter_export_jobs);
CREATE TEMP TABLE saved AS SELECT * FROM before_rows;
SELECT * FROM saved ORDER BY t;

CREATE EXTENSION gs_export;

-- Every row is still there, unchanged.
SELECT s.t, s.rows = b.rows AS unchanged FROM saved s JOIN before_rows b USING (t) ORDER BY t;

-- The columns gs_export adds to the existing tables.
SELECT a.attrelid::regclass AS "table", a.attname, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS "default"
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE (a.attrelid = 'sync_events'::regclass AND a.attname = 'job_id')
    OR (a.attrelid = 'gestao_scouter_export_jobs'::regclass
        AND a.attname IN ('options', 'batch_size', 'delay_ms', 'time_zone', 'owner_role',
                          'cursor_updated_at', 'cursor_id', 'ignored_fields'))
 ORDER BY a.attrelid::regclass::text COLLATE "C", a.attnum;

-- The old job got the new columns' defaults.
SELECT id, status, options, batch_size, delay_ms, time_zone, owner_role, cursor_updated_at,
       cursor_id, ignored_fields
  FROM gestao_scouter_export_jobs;

-- The pre-existing tables are not members of the extension; the one it
-- created (gestao_scouter_export_errors) is.
CREATE TEMP VIEW membership AS
SELECT c.relname,
       EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
                  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'gs_export')) AS member
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
   AND c.relname IN ('leads', 'sync_events', 'gestao_scouter_config',
                     'gestao_scouter_export_jobs', 'gestao_scouter_export_errors');
SELECT * FROM membership ORDER BY relname;
-- Only tables the extension created are dumped with their data.
SELECT unnest(extconfig)::regclass AS config_table FROM pg_extension WHERE extname = 'gs_export';

-- The API functions are members of the extension.
SELECT p.oid::regprocedure AS function,
       EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e') AS member
  FROM pg_proc p
 WHERE p.proname IN ('gs_export_create', 'gs_export_pause', 'gs_export_resume')
 ORDER BY p.oid::regprocedure::text COLLATE "C";

-- The two roles exist and cannot log in.
SELECT rolname, rolcanlogin, rolsuper FROM pg_roles
 WHERE rolname IN ('gs_export_user', 'gs_export_admin') ORDER BY rolname;

-- EXECUTE: not PUBLIC's on any gs_export function; gs_export_user and
-- gs_export_admin have it on the three API functions and on nothing else.
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('gs_export_user', p.oid, 'EXECUTE') AS "user",
       has_function_privilege('gs_export_admin', p.oid, 'EXECUTE') AS admin
  FROM pg_proc p
 WHERE p.proname LIKE '%gs\_export\_%'
   AND p.pronamespace = 'public'::regnamespace
 ORDER BY p.oid::regprocedure::text COLLATE "C";

-- Tables: users and admins read the jobs and errors; the config (it holds
-- keys) is for admins only.
SELECT c.t AS "table", r.role,
       has_table_privilege(r.role, c.t, 'SELECT') AS "select",
       has_table_privilege(r.role, c.t, 'INSERT') AS "insert",
       has_table_privilege(r.role, c.t, 'UPDATE') AS "update",
       has_table_privilege(r.role, c.t, 'DELETE') AS "delete"
  FROM (VALUES ('gestao_scouter_config'), ('gestao_scouter_export_jobs'),
               ('gestao_scouter_export_errors')) c(t),
       (VALUES ('public'), ('gs_export_user'), ('gs_export_admin')) r(role)
 ORDER BY 1, 2;

-- The API works on the existing data: the completed old job does not stand
-- in the way of a new one (rolled back: nothing for the launcher to run).
BEGIN;
SELECT gs_export_create(start_date => '2026-01-11', end_date => '2026-01-10') IS NOT NULL AS created;
SELECT count(*) AS jobs, count(*) FILTER (WHERE status = 'pending') AS pending FROM gestao_scouter_export_jobs;
ROLLBACK;

-- Without an index on leads (updated_at, id) gs_export_create says so
-- (above: a NOTICE with the CREATE INDEX to run).  The rest of the tests
-- run with it.
CREATE INDEX leads_updated_at_id ON leads (updated_at, id);

-- The old rows are used: an old job left paused blocks a new one (55000,
-- the hint naming it) and can be resumed (rolled back again).
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
BEGIN;
UPDATE gestao_scouter_export_jobs SET status = 'paused', pause_reason = 'old pause'
 WHERE id = '00000000-0000-0000-0000-0000000000a1';
SELECT * FROM expect_error('SELECT gs_export_create()');
SELECT error_hint('SELECT gs_export_create()') LIKE '%00000000-0000-0000-0000-0000000000a1%' AS hint_names_old_job;
SELECT gs_export_resume('00000000-0000-0000-0000-0000000000a1');
SELECT status, pause_reason FROM gestao_scouter_export_jobs
 WHERE id = '00000000-0000-0000-0000-0000000000a1';
ROLLBACK;

-- DROP EXTENSION keeps TabuladorMax's tables and their rows; it drops only
-- what it created.
DROP EXTENSION gs_export;
SELECT t, to_regclass(t) IS NOT NULL AS exists
  FROM (VALUES ('leads'), ('sync_events'), ('gestao_scouter_config'),
               ('gestao_scouter_export_jobs'), ('gestao_scouter_export_errors')) v(t)
 ORDER BY t;
SELECT s.t, s.rows = b.rows AS unchanged FROM saved s JOIN before_rows b USING (t) ORDER BY t;
-- What is left of gs_export: the functions that the policies and the
-- trigger on these tables call, which stay with the tables.
SELECT p.oid::regprocedure AS left_behind FROM pg_proc p
 WHERE proname LIKE '%gs\_export\_%' ORDER BY p.oid::regprocedure::text COLLATE "C";
SELECT c.relname, p.polname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid ORDER BY 1, 2;
SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1;

-- CREATE EXTENSION again works (the columns it adds are there already) and
-- still keeps every row.
CREATE EXTENSION gs_export;
SELECT s.t, s.rows = b.rows AS unchanged FROM saved s JOIN before_rows b USING (t) ORDER BY t;
SELECT * FROM membership ORDER BY relname;
SELECT count(*) AS added_columns
  FROM pg_attribute
 WHERE attrelid = 'gestao_scouter_export_jobs'::regclass AND NOT attisdropped
   AND attname IN ('options', 'batch_size', 'delay_ms', 'time_zone', 'owner_role',
                   'cursor_updated_at', 'cursor_id', 'ignored_fields');
BEGIN;
SELECT gs_export_create() IS NOT NULL AS created;
ROLLBACK;

DROP VIEW membership;
DROP VIEW before_rows;
DROP TABLE saved;
