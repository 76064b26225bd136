/*
 * gestao_scouter_export_jobs: one row per job (the table of doc/reference-schema.md,
 * kept with its rows when TabuladorMax already has it; created here, a
 * member of the extension, dumped with its data).
 */
DO $jobs$
BEGIN
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs') IS NULL THEN
        CREATE TABLE @extschema@.gestao_scouter_export_jobs (
            id                  uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
            status              text NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed')),
            start_date          date NOT NULL,
            end_date            date,
            processing_date     date,
            last_completed_date date,
            total_leads         bigint NOT NULL DEFAULT 0,
            exported_leads      bigint NOT NULL DEFAULT 0,
            error_leads         bigint NOT NULL DEFAULT 0,
            pause_reason        text,
            paused_at           timestamptz,
            created_at          timestamptz DEFAULT pg_catalog.now(),
            started_at          timestamptz,
            completed_at        timestamptz,
            updated_at          timestamptz DEFAULT pg_catalog.now(),
            created_by          uuid
        );
        PERFORM pg_catalog.pg_extension_config_dump('@extschema@.gestao_scouter_export_jobs'::pg_catalog.regclass, '');
    END IF;
END
$jobs$;

/*
 * What gs_export adds to the jobs table, old or new.
 *
 * options: what the caller passed; effective_options: the options the job
 * runs with (the job's own, over the config's default_options, over the
 * settings), complete, so that a resume or a reset sends the same fields to
 * the same table.  owner_role: the role that created the job.
 *
 * A job walks its leads in passes, each over a window [pass_lower,
 * pass_upper) of updated_at, newest first, by the key (updated_at, id),
 * its position being (cursor_updated_at, cursor_id):
 *   range    the job's day range, up to the instant the job started
 *            (changes_since at the start);
 *   catchup  the leads changed during the previous pass:
 *            [its horizon, the horizon now);
 *   rest     once the catch-up passes are over, the part of the day range
 *            after the last horizon (leads dated later today, or in the
 *            future when the day range reaches there).
 *
 * leads_in_range: the leads of the job's day range, counted (as the job's
 * owner reads them) when the job starts; recent_leads_per_second: the rate
 * of the last batches, for a progress display.
 *
 * Incremental export (gs_export_sync): a sync job is a job like any other,
 * marked is_sync, whose synced_through is the instant from which the next
 * sync starts: the changes horizon (_gs_changes_horizon) when it was
 * created, so that a lead changed while it runs, even by a transaction open
 * when it was created, is taken by the next one.
 *
 * doubt_until: the end of the quarantine of the latest request the job's
 * worker gave up on without knowing its fate (a timeout, a connection lost
 * after the body was sent): until then that request may still reach the
 * remote, so no newer version of its leads may be sent, and the job may
 * not complete (gs_export.late_request_ms; doc/architecture.md).  A worker
 * that claims a job waits until the latest doubt_until of every job has
 * passed; a reset keeps it.
 *
 * worker_since: when the worker that holds the job claimed it; NULL once it
 * has left in order (_gs_job_release).  Found set by the next claim, the
 * worker before did not leave in order (a crash, a kill, a server
 * shutdown): it may have had requests at the remote whose fate is unknown,
 * so the claim puts the job in doubt for gs_export.late_request_ms.
 *
 * kind (1.2): 'export' (gs_export_create), 'sync' (gs_export_sync, also
 * is_sync), 'follow' (gs_export_follow: a follower, which never completes;
 * its pass_kind is 'backfill', every lead of its scope by id, cursor_id
 * its position, then 'follow', the changes captured in gs_export_changes),
 * and the kinds of the proof: 'verify' (gs_export_verify: compares, sends
 * nothing; cursor_id its position by id, total_leads the leads compared),
 * 'retry' and 'repair' (a set job: the follower's path over the leads
 * written into its queue when it was created, options {"retry_of": id} or
 * {"repair_of": id}; completed when the queue is empty).  deleted_leads: the leads a follower
 * deleted (or soft-deleted) at the remote, one sync_events row 'delete'
 * each.
 */
ALTER TABLE @extschema@.gestao_scouter_export_jobs
    ADD COLUMN IF NOT EXISTS options jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS batch_size integer,
    ADD COLUMN IF NOT EXISTS delay_ms integer,
    ADD COLUMN IF NOT EXISTS time_zone text,
    ADD COLUMN IF NOT EXISTS owner_role name,
    ADD COLUMN IF NOT EXISTS cursor_updated_at timestamptz,
    ADD COLUMN IF NOT EXISTS cursor_id bigint,
    ADD COLUMN IF NOT EXISTS ignored_fields text[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS changes_since timestamptz,
    ADD COLUMN IF NOT EXISTS catchup_pass integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS catchup_lower timestamptz,
    ADD COLUMN IF NOT EXISTS effective_options jsonb,
    ADD COLUMN IF NOT EXISTS leads_in_range bigint,
    ADD COLUMN IF NOT EXISTS recent_leads_per_second numeric,
    ADD COLUMN IF NOT EXISTS pass_kind text NOT NULL DEFAULT 'range',
    ADD COLUMN IF NOT EXISTS pass_lower timestamptz,
    ADD COLUMN IF NOT EXISTS pass_upper timestamptz,
    ADD COLUMN IF NOT EXISTS is_sync boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS synced_through timestamptz,
    ADD COLUMN IF NOT EXISTS doubt_until timestamptz,
    ADD COLUMN IF NOT EXISTS worker_since timestamptz,
    ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'export',
    ADD COLUMN IF NOT EXISTS deleted_leads bigint NOT NULL DEFAULT 0;

/*
 * owner_oid (1.2): the role that owns the job, by identity.  Before 1.2 a
 * job knew its owner by name alone, so a role created later under a dropped
 * owner's name took over its jobs.  When the column is added, each job's
 * owner_role is resolved once, to the role of that name now; a job whose
 * owner is gone keeps a NULL owner_oid: its owner's rights are gone with
 * it (admins still see it, and its worker fails it rather than run it as
 * whoever has the name).  Never resolved by name again after that.
 */
DO $owner_oid$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = '@extschema@.gestao_scouter_export_jobs'::pg_catalog.regclass
                     AND attname = 'owner_oid' AND NOT attisdropped) THEN
        ALTER TABLE @extschema@.gestao_scouter_export_jobs ADD COLUMN owner_oid oid;
        UPDATE @extschema@.gestao_scouter_export_jobs j
           SET owner_oid = r.oid
          FROM pg_catalog.pg_roles r
         WHERE r.rolname = j.owner_role;
    END IF;
END
$owner_oid$;

-- the syncs of 1.1 (before 1.2, a sync was known by is_sync alone)
UPDATE @extschema@.gestao_scouter_export_jobs
   SET kind = 'sync'
 WHERE is_sync AND kind = 'export';

-- jobs of 1.0 in a catch-up pass (1.0 knew no pass_kind)
UPDATE @extschema@.gestao_scouter_export_jobs
   SET pass_kind = 'catchup'
 WHERE catchup_pass > 0 AND pass_kind = 'range';

DO $jobs_constraints$
BEGIN
    /*
     * 1.2: a follower's passes, 'backfill' (every lead of its scope, by id)
     * and then 'follow' (the changes captured, for ever)
     */
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
               WHERE conrelid = '@extschema@.gestao_scouter_export_jobs'::pg_catalog.regclass
                 AND conname = 'gestao_scouter_export_jobs_pass_kind'
                 AND pg_catalog.pg_get_constraintdef(oid) NOT LIKE '%follow%') THEN
        ALTER TABLE @extschema@.gestao_scouter_export_jobs
            DROP CONSTRAINT gestao_scouter_export_jobs_pass_kind;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                   WHERE conrelid = '@extschema@.gestao_scouter_export_jobs'::pg_catalog.regclass
                     AND conname = 'gestao_scouter_export_jobs_pass_kind') THEN
        ALTER TABLE @extschema@.gestao_scouter_export_jobs
            ADD CONSTRAINT gestao_scouter_export_jobs_pass_kind
            CHECK (pass_kind IN ('range', 'catchup', 'rest', 'backfill', 'follow'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                   WHERE conrelid = '@extschema@.gestao_scouter_export_jobs'::pg_catalog.regclass
                     AND conname = 'gestao_scouter_export_jobs_kind') THEN
        ALTER TABLE @extschema@.gestao_scouter_export_jobs
            ADD CONSTRAINT gestao_scouter_export_jobs_kind
            CHECK (kind IN ('export', 'sync', 'follow', 'verify', 'repair', 'retry'));
    END IF;
    -- one follower per remote table, whatever its status
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs_one_follower') IS NULL THEN
        CREATE UNIQUE INDEX gestao_scouter_export_jobs_one_follower
            ON @extschema@.gestao_scouter_export_jobs ((effective_options ->> 'target_table'))
            WHERE kind = 'follow';
    END IF;
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs_active_idx') IS NULL THEN
        CREATE INDEX gestao_scouter_export_jobs_active_idx
            ON @extschema@.gestao_scouter_export_jobs (created_at)
            WHERE status IN ('pending', 'running', 'paused');
    END IF;
    -- the completed syncs newer than a mark (gs_export_sync)
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs_synced_idx') IS NULL THEN
        CREATE INDEX gestao_scouter_export_jobs_synced_idx
            ON @extschema@.gestao_scouter_export_jobs (synced_through)
            WHERE is_sync AND status = 'completed';
    END IF;
END
$jobs_constraints$;

/*
 * At most one job is pending, running or paused (1.2: a follower, which
 * never ends, aside: one per remote table), kept by a unique index
 * over a constant on those rows: the database holds to it at every
 * isolation level and whoever writes the row.  (1.0 only checked, under a
 * table lock; but a REPEATABLE READ or SERIALIZABLE transaction checked in
 * a snapshot taken before it got the lock, so two such sessions could each
 * create a job, and two workers ran.)  The API functions still take the
 * lock and look first, so as to name the job in the way (_gs_export_check_no_active).
 *
 * Rows already there may break the rule: TabuladorMax's original Edge
 * Function left jobs 'running' for ever, and 1.0 itself let two sessions
 * get a job each.  The index is created all the same, and what was there
 * is settled as a user would want it settled by hand, losing nothing:
 *   - the newest active job (by created_at) is kept as it is: it is the one
 *     most likely to be wanted, and old jobs left 'running' by the Edge
 *     Function are the oldest;
 *   - every other active job becomes 'failed', with a pause_reason that
 *     says why.  Not deleted, not completed: its rows, counters and
 *     position stay, nothing claims it is done, and gs_export_resume takes
 *     it on from where it stopped once the kept job has ended.  A worker
 *     still running one of them stops at its next batch boundary, as after
 *     a pause;
 *   - a WARNING names them, and the job kept.
 * The index belongs to the jobs table: when that table is TabuladorMax's
 * own, it stays after DROP EXTENSION, like 1.0's indexes and policies, and
 * CREATE EXTENSION finds it there.
 */
DO $one_active$
DECLARE
    keep record;
    stopped text;
    n bigint;
BEGIN
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_jobs_one_active') IS NOT NULL THEN
        /*
         * 1.2: a follower never ends, and does not count (the rows of 1.1
         * already keep the narrower rule)
         */
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                       WHERE i.indexrelid = '@extschema@.gestao_scouter_export_jobs_one_active'::pg_catalog.regclass
                         AND pg_catalog.pg_get_expr(i.indpred, i.indrelid) LIKE '%kind%') THEN
            DROP INDEX @extschema@.gestao_scouter_export_jobs_one_active;
            CREATE UNIQUE INDEX gestao_scouter_export_jobs_one_active
                ON @extschema@.gestao_scouter_export_jobs ((true))
                WHERE status IN ('pending', 'running', 'paused') AND kind <> 'follow';
        END IF;
        RETURN;
    END IF;

    SELECT j.id, j.status INTO keep
      FROM @extschema@.gestao_scouter_export_jobs j
     WHERE j.status IN ('pending', 'running', 'paused')
     ORDER BY j.created_at DESC NULLS LAST, j.id DESC
     LIMIT 1;
    IF FOUND THEN
        WITH others AS (
            SELECT j.id, j.status
              FROM @extschema@.gestao_scouter_export_jobs j
             WHERE j.status IN ('pending', 'running', 'paused')
               AND j.id <> keep.id
        ), failed AS (
            UPDATE @extschema@.gestao_scouter_export_jobs j
               SET status = 'failed',
                   pause_reason = pg_catalog.format(
                       'was %s when gs_export 1.1 was installed, which allows one active job at a time; job %s, the newest, was kept. Resume this one with gs_export_resume() once that job has ended.',
                       o.status, keep.id),
                   updated_at = pg_catalog.now()
              FROM others o
             WHERE j.id = o.id
            RETURNING j.id, o.status
        )
        SELECT pg_catalog.count(*),
               pg_catalog.string_agg(pg_catalog.format('%s (was %s)', f.id, f.status), ', ' ORDER BY f.id)
          INTO n, stopped
          FROM failed f;
        IF n > 0 THEN
            RAISE WARNING 'stopped % of % active export jobs: only one may be active at a time', n, n + 1
                USING DETAIL = pg_catalog.format('Job %s, the newest, stays %s.  Now failed, with the reason in pause_reason: %s.',
                                                 keep.id, keep.status, stopped),
                      HINT = 'Once that job has ended, resume the others one at a time with gs_export_resume(); each goes on from where it stopped.';
        END IF;
    END IF;

    CREATE UNIQUE INDEX gestao_scouter_export_jobs_one_active
        ON @extschema@.gestao_scouter_export_jobs ((true))
        WHERE status IN ('pending', 'running', 'paused') AND kind <> 'follow';
END
$one_active$;
