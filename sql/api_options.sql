--
-- api_options: valid options are accepted, stored as passed in the jsonb
-- column options, and resolved into batch_size, delay_ms and time_zone
-- (doc/contract.md, "Options": batch_size 1–10000, default gs_export.batch_size;
-- delay_ms 0–60000, default gs_export.batch_delay_ms; time_zone an IANA
-- name, default the session's TimeZone).  Invalid ones: api_errors.
-- Everything is rolled back: no job is left for the launcher.
--
\set SHOW_CONTEXT never
SET DateStyle = 'ISO, YMD';
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
SELECT gs_regress_reset();

-- Create a job with these options, return what was stored, and mark the job
-- completed so that the next one may be created.
CREATE FUNCTION pg_temp.created_with(opts jsonb,
                                     OUT options jsonb, OUT batch_size integer,
                                     OUT delay_ms integer, OUT time_zone text)
LANGUAGE plpgsql AS $$
DECLARE
    j uuid;
BEGIN
    j := public.gs_export_create(start_date => date '2026-01-31', options => opts);
    SELECT g.options, g.batch_size, g.delay_ms, g.time_zone
      INTO options, batch_size, delay_ms, time_zone
      FROM public.gestao_scouter_export_jobs g WHERE g.id = j;
    UPDATE public.gestao_scouter_export_jobs SET status = 'completed' WHERE id = j;
END;
$$;

SET TimeZone = 'America/New_York';
BEGIN;
SELECT o AS passed, c.*
  FROM (VALUES (1, '{}'),
               (2, '{"time_zone": "America/Sao_Paulo"}'),
               (3, '{"time_zone": "UTC"}'),
               (4, '{"time_zone": "Etc/GMT+3"}'),
               (5, '{"batch_size": 1}'),
               (6, '{"batch_size": 10000}'),
               (7, '{"delay_ms": 0}'),
               (8, '{"delay_ms": 60000}'),
               (9, '{"batch_size": 1, "delay_ms": 60000}'),
               (10, '{"time_zone": "Asia/Kolkata", "delay_ms": 0, "batch_size": 10000}'),
               (11, '{"batch_size": 500,   "delay_ms" : 250}')) v(n, o),
       LATERAL pg_temp.created_with(o::jsonb) c
 ORDER BY n;
ROLLBACK;

-- The options column keeps exactly the jsonb that was passed, not the
-- resolved values.
BEGIN;
SELECT gs_export_create(options => '{"delay_ms": 0, "time_zone": "America/Sao_Paulo"}') AS job \gset
SELECT options = '{"delay_ms": 0, "time_zone": "America/Sao_Paulo"}'::jsonb AS kept_as_passed,
       options ? 'batch_size' AS batch_size_added,
       batch_size, delay_ms, time_zone
  FROM gestao_scouter_export_jobs WHERE id = :'job';
ROLLBACK;

-- The GUCs, as set in the session that creates the job, fill in what the
-- options leave out; so does the session's time zone.
BEGIN;
SET LOCAL gs_export.batch_size = 10000;
SET LOCAL gs_export.batch_delay_ms = 0;
SET LOCAL TimeZone = 'Africa/Lagos';
SELECT * FROM pg_temp.created_with('{}');
SELECT * FROM pg_temp.created_with('{"batch_size": 1}');
SELECT * FROM pg_temp.created_with('{"time_zone": "UTC"}');
ROLLBACK;

SELECT count(*) AS active_jobs FROM gestao_scouter_export_jobs
 WHERE status IN ('pending', 'running', 'paused');
