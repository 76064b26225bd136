/*
 * Internal, for resume and reset: 55000 unless the job may become active
 * again: another job active is in the way (but of a follower, which never
 * counts), and so is a follower of its remote table (but of a verify,
 * which sends nothing, and of the follower itself); and the config must
 * be usable.  The caller holds the jobs table's SHARE ROW EXCLUSIVE lock.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check_may_run(p_job @extschema@.gestao_scouter_export_jobs)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_job.kind <> 'follow' THEN
        PERFORM @extschema@._gs_export_check_no_active(p_job.id);
    END IF;
    IF p_job.kind NOT IN ('follow', 'verify') THEN
        PERFORM @extschema@._gs_export_check_no_follower(p_job.effective_options ->> 'target_table');
    END IF;
    PERFORM @extschema@._gs_export_check_config();
END;
$$;
