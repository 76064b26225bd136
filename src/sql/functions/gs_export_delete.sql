/*
 * The API: gs_export_delete(job_id), in C (api.c).
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_delete(job_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'gs_export_delete'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
