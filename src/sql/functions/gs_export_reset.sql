/*
 * The 1.1 API: C functions like gs_export_pause and gs_export_resume (see
 * api.c).  EXECUTE in privileges.sql.
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_reset(job_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'gs_export_reset'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
