/*
 * The SQL API.  C functions that note who called, then run the internal
 * function (here _gs_export_create) as the extension's owner with a fixed search_path, and
 * wake the launcher when the calling transaction commits.
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_create(start_date date DEFAULT CURRENT_DATE,
                                             end_date date DEFAULT NULL,
                                             options jsonb DEFAULT '{}')
RETURNS uuid
AS 'MODULE_PATHNAME', 'gs_export_create'
LANGUAGE C VOLATILE;
