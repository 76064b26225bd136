/*
 * The leads of the job's range, as its worker counted them when it started.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_set_leads_in_range(p_job_id uuid, p_count bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET leads_in_range = p_count
     WHERE id = p_job_id AND leads_in_range IS NULL
$$;
