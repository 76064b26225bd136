/*
 * The remote has no column p_column: it is no longer sent, for the rest of
 * the job's life (a resume too).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_ignore_column(p_job_id uuid, p_column text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET ignored_fields = pg_catalog.array_append(ignored_fields, p_column),
           updated_at = pg_catalog.now()
     WHERE id = p_job_id AND NOT (p_column = ANY (ignored_fields))
$$;
