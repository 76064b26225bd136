/*
 * The API: gs_export_follow(options), in C (api.c).
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_follow(options jsonb DEFAULT '{}')
RETURNS uuid
AS 'MODULE_PATHNAME', 'gs_export_follow'
LANGUAGE C VOLATILE;
