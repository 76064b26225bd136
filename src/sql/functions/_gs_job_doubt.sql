/*
 * The job's worker gave up on a request whose fate at the remote is
 * unknown: it may still be applied until p_until.  Kept on the job's row
 * (doubt_until, the latest of them), so that a worker that claims this or
 * any other job later, after a pause, a crash or a reset, waits until then
 * before it sends anything; until then the job does not complete either.
 * updated_at is left alone: it times the batches (_gs_job_record).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_doubt(p_job_id uuid, p_until timestamptz)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET doubt_until = GREATEST(doubt_until, p_until)
     WHERE id = p_job_id
$$;
