/*
 * The API: gs_export_pause(job_id, reason), in C (api.c).
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_pause(job_id uuid, reason text DEFAULT 'Manual')
RETURNS void
AS 'MODULE_PATHNAME', 'gs_export_pause'
LANGUAGE C VOLATILE;
