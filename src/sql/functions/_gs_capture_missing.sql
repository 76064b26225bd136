/*
 * Internal: how many of a follower's four capture triggers
 * (_gs_capture_triggers) are not there, or disabled: someone dropped or
 * disabled them, or leads was dropped and created again.  Changes may
 * then have gone uncaptured (_gs_follow_take fails the follower).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_capture_missing(p_job_id uuid)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 4 - pg_catalog.count(*)::integer
      FROM pg_catalog.pg_trigger t
     WHERE t.tgrelid = pg_catalog.to_regclass('@extschema@.leads')
       AND t.tgname IN (SELECT 'gs_export_follow_' || pg_catalog.replace(p_job_id::text, '-', '') || '_' || e
                          FROM pg_catalog.unnest(ARRAY['insert', 'update', 'delete', 'truncate']) AS e)
       AND t.tgenabled <> 'D'
$$;
