/*
 * Internal: 55000 when a follower (gs_export_follow) keeps the remote table
 * p_target_table: a job sending to that table beside it could put an older
 * version of a lead there after the follower sent a newer one.  The
 * caller holds the jobs table's SHARE ROW EXCLUSIVE lock.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check_no_follower(p_target_table text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    other record;
BEGIN
    SELECT j.id, j.status INTO other
      FROM @extschema@.gestao_scouter_export_jobs j
     WHERE j.kind = 'follow' AND (j.effective_options ->> 'target_table') = p_target_table;
    IF FOUND THEN
        RAISE EXCEPTION 'remote table "%" is kept by follower %', p_target_table, other.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('Follower %s (%s) sends every change of leads to "%s"; another job sending there could put an older version of a lead after a newer one.',
                                             other.id, other.status, p_target_table),
                  HINT = pg_catalog.format('To send every lead again, pause the follower and gs_export_reset(%L); or gs_export_delete(%L) it first.',
                                           other.id, other.id);
    END IF;
END;
$$;
