/*
 * The capture of a follower (gs_export_follow): the function of its
 * statement-level triggers on leads, one per event, created by
 * _gs_capture_triggers with the follower's id as argument.  It runs inside
 * the application's transactions, so it is one INSERT per statement (the
 * ids of the statement's transition tables, a row per thousand) and a
 * wake-up of the follower at commit (_gs_follow_wake); it reads nothing
 * that a snapshot could hide (the follower is named by the trigger, which
 * the catalog gives every transaction that locks leads).  A TRUNCATE
 * pauses the follower, saying so, and leaves a mark in its queue: nothing
 * is deleted at the remote until a person resumes it.  As the extension's
 * owner: the application's roles may not write the queue.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_capture()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    follower constant uuid := TG_ARGV[0]::uuid;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO @extschema@.gs_export_changes (job_id, ids)
        SELECT follower, pg_catalog.array_agg(n.id)
          FROM gs_new n
         GROUP BY n.id OPERATOR(pg_catalog./) 1000;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO @extschema@.gs_export_changes (job_id, ids)
        SELECT follower, pg_catalog.array_agg(u.id)
          FROM (SELECT n.id FROM gs_new n UNION SELECT o.id FROM gs_old o) u
         GROUP BY u.id OPERATOR(pg_catalog./) 1000;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO @extschema@.gs_export_changes (job_id, ids)
        SELECT follower, pg_catalog.array_agg(o.id)
          FROM gs_old o
         GROUP BY o.id OPERATOR(pg_catalog./) 1000;
    ELSE
        INSERT INTO @extschema@.gs_export_changes (job_id, truncated)
        VALUES (follower, true);
        UPDATE @extschema@.gestao_scouter_export_jobs
           SET status = 'paused', paused_at = pg_catalog.now(),
               pause_reason = pg_catalog.format(
                   'leads was truncated (by %s): nothing is deleted at the remote until a person decides. gs_export_resume() applies on_delete to every row of the scope at the remote, then follows on; gs_export_reset() sends every lead again and deletes nothing.',
                   pg_catalog.session_user()),
               updated_at = pg_catalog.now()
         WHERE id = follower AND status IN ('pending', 'running');
    END IF;
    IF FOUND THEN
        PERFORM @extschema@._gs_follow_wake();
    END IF;
    RETURN NULL;
END;
$$;
