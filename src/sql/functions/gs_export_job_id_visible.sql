/*
 * May the current user see the job with this id?  For the rows of the
 * errors and sync_events tables: those of a job one may see.  Harmless when
 * the jobs table is gone (after DROP EXTENSION) or not readable.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_job_id_visible(uuid) CASCADE;
CREATE FUNCTION @extschema@.gs_export_job_id_visible(p_job_id uuid)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jobs regclass := pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs');
    seen boolean;
BEGIN
    IF jobs IS NULL OR NOT pg_catalog.has_table_privilege(jobs, 'SELECT') THEN
        RETURN false;
    END IF;
    -- the jobs table's own row level security decides
    EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s WHERE id = $1)', jobs)
       INTO seen USING p_job_id;
    RETURN seen;
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_job_id_visible(uuid);
