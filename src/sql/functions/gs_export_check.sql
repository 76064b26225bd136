/*
 * The API: gs_export_check(options), in C (src/check.c): what a job with
 * these options would meet, as rows; no rows: good to go.  Creates nothing.
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_check(options jsonb DEFAULT '{}',
                                            OUT severity text, OUT key text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'gs_export_check'
LANGUAGE C VOLATILE;
