--
-- api_states: the states a job goes through by the SQL API and the defaults
-- of a new job (doc/contract.md, "Functions" and "How a job behaves").  No job is ever
-- committed pending or running: every case either pauses its job before
-- COMMIT or rolls back, so the launcher of this instance has nothing to run
-- and nothing here depends on timing.
--
\set SHOW_CONTEXT never
SET DateStyle = 'ISO, YMD';
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
SELECT gs_regress_reset();

-- The job row, without what changes from run to run.
CREATE VIEW job_row AS
SELECT id, status, start_date, end_date, processing_date, last_completed_date,
       total_leads, exported_leads, error_leads, pause_reason,
       paused_at IS NOT NULL AS paused, started_at IS NOT NULL AS started,
       completed_at IS NOT NULL AS completed,
       options, batch_size, delay_ms, time_zone, owner_role,
       cursor_updated_at, cursor_id
  FROM gestao_scouter_export_jobs;

--
-- A job created with every default: pending, from today, no end_date,
-- batch_size and delay_ms from the GUCs, the session's time zone, owned by
-- the calling role.  Paused before COMMIT.
--
SET TimeZone = 'Europe/Lisbon';
SHOW gs_export.batch_size;
SHOW gs_export.batch_delay_ms;
BEGIN;
SELECT gs_export_create() AS job \gset
SELECT status, start_date = current_date AS starts_today, end_date, processing_date,
       last_completed_date, total_leads, exported_leads, error_leads, pause_reason,
       paused, started, completed, options, batch_size, delay_ms, time_zone,
       owner_role = current_user AS owned_by_caller, cursor_updated_at, cursor_id
  FROM job_row WHERE id = :'job';
SELECT created_by, ignored_fields, created_at IS NOT NULL AS has_created_at
  FROM gestao_scouter_export_jobs WHERE id = :'job';
SELECT gs_export_pause(:'job');
COMMIT;
-- After COMMIT: paused, paused_at set, reason 'Manual' (the default).
SELECT status, pause_reason, paused_at IS NOT NULL AS paused, paused_at <= now() AS paused_in_the_past
  FROM gestao_scouter_export_jobs WHERE id = :'job';
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'job';

-- The time zone is the session's when the job is created.
BEGIN;
SET LOCAL TimeZone = 'Asia/Tokyo';
SELECT gs_export_create() AS job \gset
SELECT time_zone, options FROM job_row WHERE id = :'job';
ROLLBACK;

-- The GUCs give the defaults of new jobs; options win over them.
SET gs_export.batch_size = 250;
SET gs_export.batch_delay_ms = '2s';
BEGIN;
SELECT gs_export_create('2026-01-31') AS job \gset
SELECT batch_size, delay_ms, options FROM job_row WHERE id = :'job';
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'job';
SELECT gs_export_create('2026-01-31', options => '{"batch_size": 7}') AS job \gset
SELECT batch_size, delay_ms, options FROM job_row WHERE id = :'job';
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'job';
SELECT gs_export_create('2026-01-31', options => '{"delay_ms": 0}') AS job \gset
SELECT batch_size, delay_ms, options FROM job_row WHERE id = :'job';
ROLLBACK;
RESET gs_export.batch_size;
RESET gs_export.batch_delay_ms;
-- ... and the GUC is read when the job is created: later changes do not
-- touch existing jobs.
BEGIN;
SELECT gs_export_create('2026-01-31') AS job \gset
SET LOCAL gs_export.batch_size = 9;
SELECT batch_size, delay_ms FROM job_row WHERE id = :'job';
ROLLBACK;

--
-- pending → paused → running → paused → running; pause records when and
-- why, resume clears it.
--
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job \gset
SELECT gs_export_pause(:'job');
SELECT status, pause_reason, paused FROM job_row WHERE id = :'job';
SELECT gs_export_resume(:'job');
SELECT status, pause_reason, paused FROM job_row WHERE id = :'job';
-- A reason that looks like SQL is stored as text, nothing more.
SELECT gs_export_pause(:'job', $$x'); DROP TABLE leads; --$$);
SELECT status, pause_reason, paused FROM job_row WHERE id = :'job';
SELECT to_regclass('leads') IS NOT NULL AS leads_still_there, count(*) AS leads FROM leads;
SELECT gs_export_resume(:'job');
SELECT status, pause_reason, paused FROM job_row WHERE id = :'job';
-- running (as the worker leaves it) → paused with a reason
UPDATE gestao_scouter_export_jobs SET started_at = now() WHERE id = :'job';
SELECT gs_export_pause(:'job', 'for the night');
SELECT status, pause_reason, paused, started FROM job_row WHERE id = :'job';
-- a completed job can be neither paused nor resumed
UPDATE gestao_scouter_export_jobs
   SET status = 'completed', completed_at = now(), pause_reason = NULL, paused_at = NULL
 WHERE id = :'job';
SELECT * FROM expect_error(format('SELECT gs_export_pause(%L)', :'job'));
SELECT * FROM expect_error(format('SELECT gs_export_resume(%L)', :'job'));
SELECT status, pause_reason, paused, completed FROM job_row WHERE id = :'job';
ROLLBACK;

-- An empty reason is a reason.
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job \gset
SELECT gs_export_pause(:'job', '');
SELECT status, pause_reason = '' AS empty_reason FROM job_row WHERE id = :'job';
ROLLBACK;

--
-- failed → running by resume, from where it stopped: the position and the
-- counters are kept, the reason cleared.  (The job is made failed by hand,
-- as the worker would after a 401.)
--
BEGIN;
SELECT gs_export_create('2026-01-31', '2026-01-01', '{"batch_size": 3}') AS job \gset
UPDATE gestao_scouter_export_jobs
   SET status = 'failed', pause_reason = 'HTTP 401: invalid API key',
       started_at = now(), completed_at = now(),
       processing_date = '2026-01-20', last_completed_date = '2026-01-21',
       total_leads = 10, exported_leads = 9, error_leads = 1,
       cursor_updated_at = '2026-01-20 15:00:00+00', cursor_id = 42
 WHERE id = :'job';
SELECT gs_export_resume(job_id => :'job');
SET LOCAL TimeZone = 'UTC';
SELECT status, pause_reason, paused, started, completed, processing_date, last_completed_date,
       total_leads, exported_leads, error_leads, cursor_updated_at, cursor_id, batch_size
  FROM job_row WHERE id = :'job';
ROLLBACK;

--
-- Named arguments, as Supabase RPC and plpgsql callers use them.
--
BEGIN;
SELECT gs_export_create(start_date => '2026-01-31', end_date => '2026-01-01',
                        options => '{"batch_size": 10}') AS job \gset
SELECT status, start_date, end_date, batch_size, delay_ms, options FROM job_row WHERE id = :'job';
SELECT gs_export_pause(job_id => :'job', reason => 'named');
SELECT status, pause_reason FROM job_row WHERE id = :'job';
SELECT gs_export_resume(job_id => :'job');
SELECT status, pause_reason FROM job_row WHERE id = :'job';
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'job';
-- in any order, and mixed with positional ones
SELECT gs_export_create(options => '{"delay_ms": 100}', end_date => '2026-02-01',
                        start_date => '2026-02-28') AS job \gset
SELECT status, start_date, end_date, batch_size, delay_ms, options FROM job_row WHERE id = :'job';
UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = :'job';
SELECT gs_export_create('2026-03-31', options => '{"time_zone": "UTC"}') AS job \gset
SELECT status, start_date, end_date, time_zone, options FROM job_row WHERE id = :'job';
SELECT gs_export_pause(:'job', reason => 'mixed');
SELECT status, pause_reason FROM job_row WHERE id = :'job';
ROLLBACK;

-- From plpgsql, with named arguments.
BEGIN;
DO $$
DECLARE
    j uuid;
    s text;
BEGIN
    j := gs_export_create(start_date => date '2026-01-31', end_date => date '2026-01-30');
    PERFORM gs_export_pause(job_id => j, reason => 'from plpgsql');
    SELECT status || ' / ' || pause_reason INTO s FROM gestao_scouter_export_jobs WHERE id = j;
    RAISE NOTICE 'job is %', s;
END
$$;
ROLLBACK;

--
-- A plain user's job belongs to that role.
--
CREATE ROLE regress_gs_carol;
GRANT gs_export_user TO regress_gs_carol;
GRANT SELECT ON leads TO regress_gs_carol;
BEGIN;
SET ROLE regress_gs_carol;
SET LOCAL TimeZone = 'America/Sao_Paulo';
SELECT gs_export_create('2026-01-31', '2026-01-01') AS job \gset
SELECT status, owner_role, time_zone, batch_size, delay_ms
  FROM gestao_scouter_export_jobs WHERE id = :'job';
SELECT gs_export_pause(:'job', 'carol pauses');
SELECT status, pause_reason, owner_role FROM gestao_scouter_export_jobs WHERE id = :'job';
SELECT gs_export_resume(:'job');
SELECT status, pause_reason, owner_role FROM gestao_scouter_export_jobs WHERE id = :'job';
RESET ROLE;
ROLLBACK;
DROP OWNED BY regress_gs_carol;
DROP ROLE regress_gs_carol;

-- Nothing pending, running or paused is left for the launcher.
SELECT count(*) AS active_jobs FROM gestao_scouter_export_jobs
 WHERE status IN ('pending', 'running', 'paused');
DROP VIEW job_row;
