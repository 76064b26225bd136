/*
 * The ids of the jobs the current user may see, for the errors and
 * sync_events policies: the jobs table's own row level security decides.
 * None when that table is gone (after DROP EXTENSION) or not readable.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_visible_job_ids() CASCADE;
CREATE FUNCTION @extschema@.gs_export_visible_job_ids()
RETURNS SETOF uuid
LANGUAGE plpgsql STABLE
ROWS 100
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jobs regclass := pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs');
BEGIN
    IF jobs IS NULL OR NOT pg_catalog.has_table_privilege(jobs, 'SELECT') THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE pg_catalog.format('SELECT id FROM %s', jobs);
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_visible_job_ids();
