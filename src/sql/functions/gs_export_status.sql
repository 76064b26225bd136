/*
 * The API: gs_export_status(job_id), in C (api.c).
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_status(job_id uuid DEFAULT NULL,
    OUT job_id uuid, OUT status text, OUT start_date date, OUT end_date date,
    OUT processing_date date, OUT last_completed_date date, OUT leads_in_range bigint,
    OUT total_leads bigint, OUT exported_leads bigint, OUT error_leads bigint,
    OUT percent numeric, OUT leads_per_second numeric, OUT eta interval,
    OUT pause_reason text, OUT ignored_fields text[], OUT created_at timestamptz,
    OUT started_at timestamptz, OUT completed_at timestamptz,
    OUT kind text, OUT backlog bigint, OUT lag interval, OUT deleted_leads bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'gs_export_status'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;
