/*
 * Internal: 55000 when another job is pending, running or paused, the hint
 * naming it.  1.0 looked in the transaction's snapshot: under REPEATABLE
 * READ or SERIALIZABLE, taken before the jobs table was locked, it missed
 * a job committed in between.  Now it looks in the latest committed state.
 * The unique index gestao_scouter_export_jobs_one_active is what holds; this
 * check only lets the error name the job in the way.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check_no_active(p_except uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    other record;
BEGIN
    SELECT a.id, a.status INTO other
      FROM @extschema@._gs_export_latest_active_job(p_except) a;
    IF other.id IS NOT NULL THEN
        RAISE EXCEPTION 'another export job is %', other.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('Only one export job may be pending, running or paused at a time; job %s is %s.',
                                             other.id, other.status),
                  HINT = pg_catalog.format('Wait for job %s to finish, or pause it and let it fail or complete first.', other.id);
    END IF;
END;
$$;
