/*
 * The API: gs_export_verify(options), in C (api.c).
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_verify(options jsonb DEFAULT '{}')
RETURNS uuid
AS 'MODULE_PATHNAME', 'gs_export_verify'
LANGUAGE C VOLATILE;
