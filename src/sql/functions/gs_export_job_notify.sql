/*
 * NOTIFY gs_export after every change of a job's state or progress (one
 * per recorded batch, per pause, resume, completion ...), delivered when
 * the change commits.  Any role that may connect may LISTEN, so the payload
 * holds nothing but the job's id, status, position and counts.  The
 * setting gs_export.notify (default on) turns it off.  Like the config
 * guard, the function outlives the extension: the jobs table may be
 * TabuladorMax's own, which DROP EXTENSION leaves, trigger included.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_job_notify() CASCADE;
CREATE FUNCTION @extschema@.gs_export_job_notify()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF NOT COALESCE(pg_catalog.current_setting('gs_export.notify', true), 'on')::boolean THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    PERFORM pg_catalog.pg_notify('gs_export', pg_catalog.json_build_object(
        'job_id', r.id,
        'status', CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE r.status END,
        'processing_date', r.processing_date,
        'total_leads', r.total_leads,
        'exported_leads', r.exported_leads,
        'error_leads', r.error_leads)::text);
    RETURN NULL;
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_job_notify();

DROP TRIGGER IF EXISTS gs_export_job_notify ON @extschema@.gestao_scouter_export_jobs;
CREATE TRIGGER gs_export_job_notify
    AFTER INSERT OR DELETE OR UPDATE OF status, processing_date, total_leads, exported_leads, error_leads
    ON @extschema@.gestao_scouter_export_jobs
    FOR EACH ROW EXECUTE FUNCTION @extschema@.gs_export_job_notify();
