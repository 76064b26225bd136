/*
 * The 1.1 API: a C function like gs_export_create (see api.c).  EXECUTE in
 * privileges.sql.
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_sync(options jsonb DEFAULT '{}')
RETURNS uuid
AS 'MODULE_PATHNAME', 'gs_export_sync'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
