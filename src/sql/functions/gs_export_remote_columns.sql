/*
 * The API: gs_export_remote_columns(target_table), in C (src/check.c): the
 * remote table's columns as the remote's PostgREST describes them (its
 * OpenAPI document, GET /rest/v1/).
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_remote_columns(target_table text DEFAULT NULL,
                                                     OUT column_name text, OUT data_type text,
                                                     OUT required boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'gs_export_remote_columns'
LANGUAGE C VOLATILE;
