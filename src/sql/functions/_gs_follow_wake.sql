/*
 * Internal, for the capture (_gs_capture): wake the followers' workers when
 * the calling transaction commits (api.c), not before: they would look too
 * early and find nothing.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_follow_wake()
RETURNS void
AS 'MODULE_PATHNAME', 'gs_export_follow_wake'
LANGUAGE C VOLATILE;
