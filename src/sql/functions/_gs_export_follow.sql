/*
 * gs_export_follow's internal function: a follower of the remote table its
 * options name (a job of kind 'follow', owned by the caller), with its
 * capture triggers on leads, created in the caller's transaction: every
 * change of leads committed after it is captured (_gs_capture_triggers).
 * Its options are gs_export_create's that make sense without dates, plus
 * backfill (boolean, default true: first every lead of the scope) and
 * on_delete ("delete", "ignore", or an object of remote columns and the
 * values a soft delete sets).  For a remote table that already has a
 * follower: that follower's id when the options resolve to its own, else
 * 55000 naming it.  Another job active on the same remote table is in the
 * way too (55000): an older version of a lead could follow a newer one;
 * but a verify, which sends nothing.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_follow(p_caller oid, p_uid uuid, p_app_admin boolean, p_options jsonb)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    resolved jsonb;
    backfill boolean := true;
    on_delete jsonb := '"delete"';
    existing @extschema@.gestao_scouter_export_jobs;
    active record;
    job_id uuid;
BEGIN
    PERFORM @extschema@._gs_export_check_caller(p_caller);
    IF p_options IS NULL THEN
        RAISE EXCEPTION 'options must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass ''{}'' for the defaults.';
    END IF;
    IF pg_catalog.jsonb_typeof(p_options) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: ''{"target_table": "fichas", "on_delete": "delete"}''.';
    END IF;
    FOREACH k IN ARRAY ARRAY['changed_since', 'look_back', 'time_zone', 'delay_ms'] LOOP
        IF p_options ? k THEN
            RAISE EXCEPTION 'option "%" does not apply to a follower', k
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'A follower sends every lead of its scope, whatever its updated_at, then every change as it commits.',
                      HINT = 'Leave it out; gs_export_create and gs_export_sync take it.';
        END IF;
    END LOOP;
    IF p_options ? 'backfill' THEN
        IF pg_catalog.jsonb_typeof(p_options -> 'backfill') <> 'boolean' THEN
            RAISE EXCEPTION 'option "backfill" must be true or false: %', p_options -> 'backfill'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'true (the default) first sends every lead of the scope; false only the changes from now on.';
        END IF;
        backfill := (p_options ->> 'backfill')::boolean;
    END IF;
    IF p_options ? 'on_delete' THEN
        on_delete := p_options -> 'on_delete';
    END IF;

    resolved := @extschema@._gs_export_resolve_options(p_options - 'backfill' - 'on_delete');
    /* no days, no pause between batches: the same options in every session */
    resolved := resolved || pg_catalog.jsonb_build_object('backfill', backfill, 'on_delete', on_delete,
                                                          'delay_ms', 0, 'time_zone', 'UTC');
    PERFORM @extschema@._gs_export_check_on_delete(on_delete, resolved ->> 'source_column');

    PERFORM @extschema@._gs_export_check_readable(p_caller, resolved);
    PERFORM @extschema@._gs_export_check_config();

    LOCK TABLE @extschema@.gestao_scouter_export_jobs IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO existing
      FROM @extschema@.gestao_scouter_export_jobs j
     WHERE j.kind = 'follow' AND (j.effective_options ->> 'target_table') = (resolved ->> 'target_table');
    IF FOUND THEN
        IF existing.effective_options = resolved AND existing.owner_oid = p_caller
           AND existing.created_by IS NOT DISTINCT FROM p_uid
           AND existing.status IN ('pending', 'running') THEN
            RETURN existing.id;
        END IF;
        RAISE EXCEPTION 'remote table "%" already has a follower', resolved ->> 'target_table'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('Follower %s is %s%s.', existing.id, existing.status,
                                             CASE WHEN existing.effective_options = resolved THEN ''
                                                  ELSE ', with other options' END),
                  HINT = pg_catalog.format('One follower per remote table: resume it with gs_export_resume(%L), or gs_export_delete(%L) it first (pause it before).',
                                           existing.id, existing.id);
    END IF;
    SELECT a.id, a.status INTO active FROM @extschema@._gs_export_latest_active_job(NULL) a;
    IF active.id IS NOT NULL AND EXISTS (
           SELECT 1 FROM @extschema@.gestao_scouter_export_jobs j
            WHERE j.id = active.id AND j.kind IN ('export', 'sync')
              AND (j.effective_options ->> 'target_table') = (resolved ->> 'target_table')) THEN
        RAISE EXCEPTION 'export job % is % on remote table "%"', active.id, active.status, resolved ->> 'target_table'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A follower beside it could see an older version of a lead arrive after the newer one it sent.',
                  HINT = pg_catalog.format('Wait for job %s to end (or pause it and let it fail or complete), then start the follower: its backfill sends every lead.', active.id);
    END IF;

    INSERT INTO @extschema@.gestao_scouter_export_jobs
           (kind, status, start_date, options, batch_size, delay_ms, time_zone,
            owner_role, owner_oid, created_by, effective_options, pass_kind)
    VALUES ('follow', 'pending', CURRENT_DATE, p_options,
            (resolved ->> 'batch_size')::integer, 0, 'UTC',
            (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = p_caller), p_caller,
            p_uid, resolved, CASE WHEN backfill THEN 'backfill' ELSE 'follow' END)
    RETURNING id INTO job_id;
    PERFORM @extschema@._gs_capture_triggers(job_id, true);
    RETURN job_id;
END;
$$;
