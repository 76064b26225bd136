/*
 * Internal: 55000 unless the job is paused, failed or completed.  A pending
 * or running job has a worker, or is about to get one: it is paused first.
 * p_done says what would be done to it ("reset", "deleted").
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check_stopped(p_job_id uuid, p_status text, p_done text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_status NOT IN ('paused', 'failed', 'completed') THEN
        RAISE EXCEPTION 'export job % cannot be %: it is %', p_job_id, p_done, p_status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = pg_catalog.format('Pause it first with gs_export_pause(); a paused, failed or completed job can be %s.',
                                           p_done);
    END IF;
END;
$$;
