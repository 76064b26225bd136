/*
 * The API: gs_export_repair(verify_job_id), in C (api.c).
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_repair(verify_job_id uuid)
RETURNS uuid
AS 'MODULE_PATHNAME', 'gs_export_repair'
LANGUAGE C VOLATILE;
