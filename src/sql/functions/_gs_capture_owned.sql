/*
 * Internal (_gs_capture_triggers): a capture trigger on leads depends on
 * the extension, automatically: DROP EXTENSION drops it with the
 * extension's own objects, no CASCADE needed (a trigger cannot be a
 * member of an extension).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_capture_owned(p_trigger oid)
RETURNS void
AS 'MODULE_PATHNAME', 'gs_export_capture_owned'
LANGUAGE C STRICT VOLATILE;
