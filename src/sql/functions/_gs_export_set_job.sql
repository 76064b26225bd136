/*
 * Internal: create a set job (gs_export_retry_errors, gs_export_repair): a
 * job of kind p_kind ('retry' or 'repair') over a set of leads known when
 * it is created (_gs_set_job_fill writes their ids into its queue in
 * gs_export_changes), owned by the caller, that runs the follower's path
 * (pass_kind 'follow': no capture, no backfill): each lead as it is now is
 * sent, or on_delete applied to it at the remote when it is gone or out
 * of the scope, and the job completes when its queue is empty.
 * p_effective: the options it runs with (the source job's); p_options:
 * what is stored as its options, {"retry_of": id} or {"repair_of": id}.
 *
 * A follower keeps the remote table (gs_export_follow): the contract says
 * that none of verify, repair and retry blocks or is blocked by a
 * follower, and that no older version of a lead may reach the remote after
 * a newer one.  A job of its own beside the follower could read a lead,
 * then the follower read and send a newer version, then the job's older
 * request arrive last.  So no job is created: the ids go into the
 * follower's own queue, where they are sent in order with its other
 * changes (its scope and on_delete apply), and the follower's id is
 * returned: its gs_export_status shows them in backlog until they are
 * sent.  The caller must be able to see that follower (else 55000: a
 * follower of somebody else's keeps the table).
 *
 * Else a job of its own, active under the one active job rule as an
 * export is (55000 naming the job in the way).  No lead to send: 55000.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_set_job(p_caller oid, p_uid uuid, p_app_admin boolean,
    p_kind text, p_source uuid, p_options jsonb, p_effective jsonb)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    follower @extschema@.gestao_scouter_export_jobs;
    job_id uuid;
    n bigint;
    violated text;
BEGIN
    PERFORM @extschema@._gs_export_check_readable(p_caller, p_effective);
    PERFORM @extschema@._gs_export_check_config();
    LOCK TABLE @extschema@.gestao_scouter_export_jobs IN SHARE ROW EXCLUSIVE MODE;

    SELECT * INTO follower
      FROM @extschema@.gestao_scouter_export_jobs j
     WHERE j.kind = 'follow' AND (j.effective_options ->> 'target_table') = (p_effective ->> 'target_table');
    IF FOUND THEN
        IF NOT @extschema@.gs_export_job_visible_to(p_caller, p_uid, p_app_admin, follower.owner_oid, follower.created_by) THEN
            RAISE EXCEPTION 'remote table "%" is kept by a follower of another user', p_effective ->> 'target_table'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = pg_catalog.format('A %s beside a follower could send an older version of a lead after the follower sent a newer one; it goes through the follower''s queue, and this follower is not yours.', p_kind),
                      HINT = 'Ask its owner, or an admin, to run it.';
        END IF;
        n := @extschema@._gs_set_job_fill(follower.id, p_kind, p_source);
        IF n = 0 THEN
            PERFORM @extschema@._gs_export_set_job_nothing(p_kind, p_source);
        END IF;
        RETURN follower.id;
    END IF;

    PERFORM @extschema@._gs_export_check_no_active(NULL);
    BEGIN
        INSERT INTO @extschema@.gestao_scouter_export_jobs
               (kind, status, start_date, options, batch_size, delay_ms, time_zone,
                owner_role, owner_oid, created_by, effective_options, pass_kind)
        VALUES (p_kind, 'pending', CURRENT_DATE, p_options,
                (p_effective ->> 'batch_size')::integer, 0, 'UTC',
                (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = p_caller), p_caller,
                p_uid, p_effective, 'follow')
        RETURNING id INTO job_id;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
        PERFORM @extschema@._gs_export_active_conflict(violated, NULL);
        RAISE;
    END;
    n := @extschema@._gs_set_job_fill(job_id, p_kind, p_source);
    IF n = 0 THEN
        PERFORM @extschema@._gs_export_set_job_nothing(p_kind, p_source);
    END IF;
    UPDATE @extschema@.gestao_scouter_export_jobs SET leads_in_range = n WHERE id = job_id;
    RETURN job_id;
END;
$$;
