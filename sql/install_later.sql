--
-- install_later: CREATE EXTENSION gs_export over the tables as the original
-- left them in its later life (doc/original.md): a jobs table with
-- fields_selected and field_mappings, and its own errors table with
-- ignored_fields, with rows.  The rows are kept and used, the tables stay
-- TabuladorMax's (not members: DROP EXTENSION leaves them), and gs_export
-- works on them.
--
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
CREATE DATABASE regress_gs_later;
\c regress_gs_later
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
\getenv abs_srcdir PG_ABS_SRCDIR
\set tabuladormax_sql :abs_srcdir '/test/sql/tabuladormax.sql'
\set later_sql :abs_srcdir '/test/sql/tabuladormax_later.sql'
\set ECHO none
\i :tabuladormax_sql
\i :later_sql
\set ECHO all

INSERT INTO leads (id, name, updated_at) VALUES (1, 'Ana', '2026-01-10 12:00:00+00');
INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
VALUES ('http://127.0.0.1:9', 'k', true, true);
INSERT INTO gestao_scouter_export_jobs
    (id, status, start_date, end_date, total_leads, exported_leads, error_leads,
     fields_selected, field_mappings, completed_at)
VALUES ('00000000-0000-0000-0000-0000000000b1', 'completed', '2026-01-11', '2026-01-10', 2, 1, 1,
        '{name,scouter}', '{"nome": "tab_name"}', now());
INSERT INTO gestao_scouter_export_errors (job_id, lead_id, lead_snapshot, error_message, ignored_fields)
VALUES ('00000000-0000-0000-0000-0000000000b1', 1, '{"id": 1}', 'boom', '{foto}');

CREATE TEMP TABLE saved AS
SELECT (SELECT string_agg(format('%s|%s|%s|%s', id, status, fields_selected, field_mappings), ';')
          FROM gestao_scouter_export_jobs) AS jobs,
       (SELECT string_agg(format('%s|%s|%s|%s', job_id, lead_id, error_message, ignored_fields), ';')
          FROM gestao_scouter_export_errors) AS errors;

CREATE EXTENSION gs_export;

-- Kept as they were, and still the app's own tables.
SELECT s.jobs = (SELECT string_agg(format('%s|%s|%s|%s', id, status, fields_selected, field_mappings), ';')
                   FROM gestao_scouter_export_jobs) AS jobs_kept,
       s.errors = (SELECT string_agg(format('%s|%s|%s|%s', job_id, lead_id, error_message, ignored_fields), ';')
                     FROM gestao_scouter_export_errors) AS errors_kept
  FROM saved s;
SELECT c.relname,
       EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') AS member
  FROM pg_class c
 WHERE c.relname IN ('gestao_scouter_export_jobs', 'gestao_scouter_export_errors') ORDER BY 1;
-- Row level security and gs_export's policy on the app's errors table too.
SELECT relname, relrowsecurity FROM pg_class
 WHERE relname IN ('gestao_scouter_export_jobs', 'gestao_scouter_export_errors') ORDER BY 1;
SELECT c.relname, p.polname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
 WHERE c.relname IN ('gestao_scouter_export_jobs', 'gestao_scouter_export_errors') ORDER BY 1, 2;

-- gs_export works on them: a job is created, its row with the app's own
-- columns left empty (rolled back: no launcher is to run it).
BEGIN;
SELECT gs_export_create('2026-01-11', '2026-01-10', '{"fields": ["name"]}') AS job \gset
SELECT status, fields_selected, field_mappings, effective_options -> 'fields' AS fields
  FROM gestao_scouter_export_jobs WHERE id = :'job';
ROLLBACK;

-- DROP EXTENSION leaves both tables, with their rows.
DROP EXTENSION gs_export;
SELECT (SELECT count(*) FROM gestao_scouter_export_jobs) AS jobs,
       (SELECT count(*) FROM gestao_scouter_export_errors) AS errors;

\c contrib_regression
DROP DATABASE regress_gs_later;
