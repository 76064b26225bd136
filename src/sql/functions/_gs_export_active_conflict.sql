/*
 * Internal: the error for a row that the index
 * gestao_scouter_export_jobs_one_active refused.  Every statement that makes
 * a job pending, running or paused (create, resume, and reset to come)
 * runs in a block that ends
 *
 *     EXCEPTION WHEN unique_violation THEN
 *         GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME;
 *         PERFORM @extschema@._gs_export_active_conflict(c, <the job's id, or NULL>);
 *         RAISE;
 *
 * For that index it raises _gs_export_check_no_active's 55000, naming the
 * job in the way; should that job have ended in the meantime, a 55000 that
 * says to try again.  For any other constraint it returns, and the handler
 * raises the error as it was.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_active_conflict(p_constraint text, p_except uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_constraint IS DISTINCT FROM 'gestao_scouter_export_jobs_one_active' THEN
        RETURN;
    END IF;
    PERFORM @extschema@._gs_export_check_no_active(p_except);
    RAISE EXCEPTION 'another export job was active'
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = 'Only one export job may be pending, running or paused at a time; another one was, and has ended since.',
              HINT = 'Try again.';
END;
$$;
