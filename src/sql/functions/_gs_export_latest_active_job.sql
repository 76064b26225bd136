/*
 * Internal: the job other than p_except that is pending, running or paused
 * as the latest committed state has it, not the transaction's snapshot (a
 * row of NULLs when there is none).  See api.c.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_latest_active_job(p_except uuid, OUT id uuid, OUT status text)
RETURNS record
AS 'MODULE_PATHNAME', 'gs_export_latest_active_job'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
