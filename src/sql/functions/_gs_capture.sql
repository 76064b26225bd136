/*
 * The capture of a follower (gs_export_follow): the function of its
 * statement-level triggers on leads, one per event, created by
 * _gs_capture_triggers with the follower's id as argument.  In C
 * (capture.c): it runs inside the application's transactions, once per
 * statement, and must cost little.  A TRUNCATE goes to
 * _gs_capture_truncate.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_capture()
RETURNS trigger
AS 'MODULE_PATHNAME', 'gs_export_capture'
LANGUAGE C;
