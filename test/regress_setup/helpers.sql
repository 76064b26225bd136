\set ECHO none
-- test/regress_setup/helpers.sql: helpers shared by the pg_regress tests of
-- gs_export's SQL API, run as the superuser of the test instance.  Not
-- echoed, to keep the .out files short.  pg_regress feeds each test to psql
-- on stdin, so a test includes this file through the environment pg_regress
-- sets:
--   \getenv abs_srcdir PG_ABS_SRCDIR
--   \set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
--   \i :helpers_sql
SET client_min_messages = warning;

-- expect_error(sql): run one statement and report how it ended, with every
-- uuid in the message replaced by <id>.  Whatever the statement did is rolled
-- back in both cases, so a call that unexpectedly succeeds leaves no job
-- behind to disturb the next case.  state is the SQLSTATE, or 'ok'.
CREATE OR REPLACE FUNCTION public.expect_error(sql text, OUT state text, OUT message text)
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE sql;
        RAISE EXCEPTION USING ERRCODE = 'GSOK0';
    EXCEPTION
        WHEN SQLSTATE 'GSOK0' THEN
            state := 'ok';
            message := '(no error)';
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
            message := regexp_replace(message,
                '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
    END;
END;
$$;

-- error_hint(sql): the raw HINT of the error the statement raises ('' when
-- it has none, NULL when it succeeds; rolled back either way).  Used to
-- check that a hint names a job id captured with \gset.
CREATE OR REPLACE FUNCTION public.error_hint(sql text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    h text;
BEGIN
    BEGIN
        EXECUTE sql;
        RAISE EXCEPTION USING ERRCODE = 'GSOK0';
    EXCEPTION
        WHEN SQLSTATE 'GSOK0' THEN
            RETURN NULL;
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
            RETURN h;
    END;
END;
$$;

-- gs_regress_reset(): the state every API test starts from: one active,
-- sync-enabled config row whose project_url refuses connections at once,
-- and no job pending, running or paused.  Only call it when no job is
-- pending or running in a committed state (the tests never commit one), so
-- no worker is touching the rows it changes.
CREATE OR REPLACE FUNCTION public.gs_regress_reset()
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM public.gestao_scouter_config;
    INSERT INTO public.gestao_scouter_config (project_url, anon_key, active, sync_enabled)
    VALUES ('http://127.0.0.1:9', 'regress-anon-key', true, true);
    UPDATE public.gestao_scouter_export_jobs
       SET status = 'completed', completed_at = now()
     WHERE status IN ('pending', 'running', 'paused');
END;
$$;

RESET client_min_messages;
\set ECHO all
