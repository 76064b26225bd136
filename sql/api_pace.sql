--
-- api_pace: the options of the pace (doc/contract.md, "Options"):
-- max_in_flight 1-16 (default 1), pace "fixed" (default) or "adaptive",
-- batch_size_max 1-10000 (default 5000, or batch_size when that is
-- larger), never below batch_size.  Bad input is 22023 naming the key.
-- The job keeps them in effective_options; a sync's scope ignores them.
--
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
SELECT gs_regress_reset();

-- Bad options: every one 22023, the message naming the key.
SELECT o, e.* FROM (VALUES
    ('{"max_in_flight": 0}'),
    ('{"max_in_flight": 17}'),
    ('{"max_in_flight": 2.5}'),
    ('{"max_in_flight": "4"}'),
    ('{"max_in_flight": null}'),
    ('{"pace": "fast"}'),
    ('{"pace": "Adaptive"}'),
    ('{"pace": true}'),
    ('{"pace": null}'),
    ('{"batch_size_max": 0}'),
    ('{"batch_size_max": 10001}'),
    ('{"batch_size_max": "5000"}'),
    ('{"batch_size": 500, "batch_size_max": 499}'),
    ('{"max_inflight": 4}')) v(o),
    LATERAL expect_error(format('SELECT gs_export_create(%L, NULL, %L)', '2026-01-31', o)) e;

-- Good ones: what the job keeps, and what its worker is told (the claim).
CREATE FUNCTION pg_temp.created_with(opts jsonb, OUT options jsonb, OUT pace jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    j uuid;
BEGIN
    j := public.gs_export_create(start_date => date '2026-01-31', options => opts);
    SELECT g.options, jsonb_build_object('max_in_flight', g.effective_options -> 'max_in_flight',
                                         'pace', g.effective_options -> 'pace',
                                         'batch_size', g.effective_options -> 'batch_size',
                                         'batch_size_max', g.effective_options -> 'batch_size_max')
      INTO options, pace
      FROM public.gestao_scouter_export_jobs g WHERE g.id = j;
    UPDATE public.gestao_scouter_export_jobs SET status = 'completed' WHERE id = j;
END;
$$;
BEGIN;
SELECT c.* FROM (VALUES (1, '{}'),
                        (2, '{"max_in_flight": 1}'),
                        (3, '{"max_in_flight": 16}'),
                        (4, '{"max_in_flight": 8.0, "batch_size": 1000}'),
                        (5, '{"pace": "adaptive"}'),
                        (6, '{"pace": "adaptive", "max_in_flight": 16, "batch_size_max": 10000}'),
                        (7, '{"pace": "fixed", "batch_size": 8000}'),
                        (8, '{"batch_size": 300, "batch_size_max": 300}')) v(n, o),
       LATERAL pg_temp.created_with(o::jsonb) c
 ORDER BY n;
ROLLBACK;

-- The config's default_options may set the pace; a job's own options win.
BEGIN;
UPDATE gestao_scouter_config
   SET default_options = '{"pace": "adaptive", "max_in_flight": 4, "batch_size_max": 2000}';
SELECT c.* FROM (VALUES (1, '{}'),
                        (2, '{"pace": "fixed"}'),
                        (3, '{"batch_size_max": 3000}')) v(n, o),
       LATERAL pg_temp.created_with(o::jsonb) c
 ORDER BY n;
-- a job's batch_size over the config's batch_size_max is refused
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-31', NULL, '{"batch_size": 2500}')$$);
-- and the config's own options are checked when written
SELECT * FROM expect_error($$UPDATE gestao_scouter_config SET default_options = '{"max_in_flight": 32}'$$);
SELECT * FROM expect_error($$UPDATE gestao_scouter_config SET default_options = '{"pace": "slow"}'$$);
ROLLBACK;

-- The claim tells the worker the pace; a 1.0 job (no effective_options)
-- runs one batch of batch_size at a time.
BEGIN;
SELECT gs_export_create('2026-01-31', NULL,
                        '{"pace": "adaptive", "max_in_flight": 6, "batch_size": 50}') AS job \gset
SELECT max_in_flight, pace, batch_size, batch_size_max
  FROM public._gs_job_claim(:'job');
UPDATE gestao_scouter_export_jobs SET effective_options = NULL, status = 'pending' WHERE id = :'job';
SELECT max_in_flight, pace, batch_size, batch_size_max
  FROM public._gs_job_claim(:'job');
SELECT pg_advisory_unlock_all();
ROLLBACK;
