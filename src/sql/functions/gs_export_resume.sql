/*
 * The API: gs_export_resume(job_id), in C (api.c).
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_resume(job_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'gs_export_resume'
LANGUAGE C VOLATILE;
