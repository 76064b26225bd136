/*
 * gs_export_sync's internal function.  Returns the new job's id, or NULL
 * when another job is pending, running or paused: a scheduler calls it
 * blindly.  Only that 55000 becomes NULL; every other error (no config,
 * bad options, the caller's rights) is raised as gs_export_create raises
 * it.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_sync(p_caller oid, p_uid uuid, p_app_admin boolean, p_options jsonb)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    /*
     * A day at the end of PostgreSQL's timestamps (294276 AD), with a
     * margin: its days, and the next, can be counted in every time zone.
     * The walk starts there, and with no lead that late, costs nothing.
     */
    last_day constant date := date '294276-12-29';
    job @extschema@.gestao_scouter_export_jobs;
    sync_scope jsonb;
    mark timestamptz;
    newest record;
    since jsonb;
    horizon timestamptz;
    look_back interval;
    job_id uuid;
    other uuid;
    err_detail text;
    err_hint text;
BEGIN
    PERFORM @extschema@._gs_export_check_caller(p_caller);

    /*
     * As gs_export_create does, but before it, and before the mark is
     * read: no job becomes active or completes meanwhile (a worker's record
     * waits), and two syncs are taken one after the other.
     */
    LOCK TABLE @extschema@.gestao_scouter_export_jobs IN SHARE ROW EXCLUSIVE MODE;

    horizon := @extschema@._gs_changes_horizon();
    BEGIN
        job_id := @extschema@._gs_export_create(p_caller, p_uid, p_app_admin, last_day, NULL, p_options);
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        /*
         * NULL for "another job is pending, running or paused" alone: the
         * 55000 that names the job in the way, which (the table locked
         * above) is still there.  No config, and the rest: raised.
         */
        GET STACKED DIAGNOSTICS err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
        SELECT a.id INTO other FROM @extschema@._gs_export_latest_active_job(NULL) a;
        IF other IS NOT NULL
           AND (pg_catalog.strpos(err_detail, other::text) > 0 OR pg_catalog.strpos(err_hint, other::text) > 0) THEN
            RETURN NULL;
        END IF;
        RAISE;
    END;

    /*
     * The mark of the new job's scope: what gs_export_sync_marks keeps,
     * moved on to the newest completed sync of the scope, if any is newer.
     */
    SELECT * INTO job FROM @extschema@.gestao_scouter_export_jobs j WHERE j.id = job_id;
    sync_scope := @extschema@._gs_sync_scope(job.owner_role, job.created_by, job.effective_options);
    SELECT m.synced_through INTO mark
      FROM @extschema@.gs_export_sync_marks m
     WHERE pg_catalog.md5(m.scope::text) = pg_catalog.md5(sync_scope::text);
    SELECT j.id, j.synced_through INTO newest
      FROM @extschema@.gestao_scouter_export_jobs j
     WHERE j.is_sync AND j.status = 'completed'
       AND j.synced_through > COALESCE(mark, '-infinity')
       AND @extschema@._gs_sync_scope(j.owner_role, j.created_by, j.effective_options) = sync_scope
     ORDER BY j.synced_through DESC
     LIMIT 1;
    IF newest.id IS NOT NULL THEN
        mark := newest.synced_through;
        INSERT INTO @extschema@.gs_export_sync_marks AS m (scope, synced_through, job_id)
        VALUES (sync_scope, mark, newest.id)
        ON CONFLICT ((pg_catalog.md5(scope::text))) DO UPDATE
           SET synced_through = EXCLUDED.synced_through, job_id = EXCLUDED.job_id,
               updated_at = pg_catalog.now()
         WHERE m.synced_through < EXCLUDED.synced_through;
    END IF;

    /*
     * The look-back: the leads changed a little before the mark are sent
     * again, for the writers whose updated_at is late (an application
     * server's clock behind the database's, a value set by hand): a lead
     * written with updated_at up to look_back before the previous sync
     * looked is still found.  The option, else five minutes; kept in the
     * job's effective options.
     */
    IF NOT job.effective_options ? 'look_back' THEN
        job.effective_options := job.effective_options || '{"look_back": "5 minutes"}';
    END IF;
    look_back := (job.effective_options ->> 'look_back')::interval;

    /*
     * A prepared transaction (two-phase commit) may still commit leads whose
     * updated_at is its start, which nothing tells: pg_stat_activity shows
     * no prepared transaction, pg_prepared_xacts only when it was prepared.
     * While one is pending in this database, the mark does not move: the
     * next sync starts again from the mark this one started from.  Every
     * mark being kept at or before the start of each transaction that could
     * still commit (an open one through _gs_changes_horizon, a prepared one
     * through this, from the time it was open), no lead is missed.
     */
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xacts x
                WHERE x.database OPERATOR(pg_catalog.=) pg_catalog.current_database()) THEN
        horizon := LEAST(horizon, COALESCE(mark, '-infinity'));
    END IF;

    /*
     * changed_since: the mark less the look-back, or what the caller asked
     * for if earlier (checked by gs_export_create); with neither, what the
     * job has (the config's default_options may give one), or nothing.  An
     * ISO 8601 string with its offset, so that it means one instant in any
     * session.
     */
    since := pg_catalog.to_jsonb(LEAST(mark - look_back, (p_options ->> 'changed_since')::timestamptz));
    IF since IS NOT NULL THEN
        UPDATE @extschema@.gestao_scouter_export_jobs
           SET options = options || pg_catalog.jsonb_build_object('changed_since', since),
               effective_options = effective_options || pg_catalog.jsonb_build_object('changed_since', since)
         WHERE id = job_id;
    END IF;
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET effective_options = effective_options
                               || pg_catalog.jsonb_build_object('look_back', job.effective_options -> 'look_back')
     WHERE id = job_id;
    UPDATE @extschema@.gestao_scouter_export_jobs
       SET is_sync = true, kind = 'sync', synced_through = horizon
     WHERE id = job_id;
    RETURN job_id;
END;
$$;
