/*
 * Internal: make sure that no worker is still at the job.  A pause stops a
 * worker's sending at once, but the batches that were at the remote get
 * their answers and are recorded into the job (counters, position, events,
 * errors) before the worker goes away.  Its worker holds a session advisory lock on
 * the job from its claim (_gs_job_claim) until it exits; this takes the
 * same lock for the transaction, so that reset and delete never change a
 * job under a worker still recording into it, and no worker can claim it
 * again before they commit.
 *
 * It waits five seconds at the most, then 55000: try again.  It tries
 * rather than queues for the lock.  A queued wait could close a circle with
 * the worker when the calling transaction already holds the job's row (a
 * pause and then a reset, in one transaction): the worker's record would
 * wait for the row, the deadlock detector would cancel one of the two, and
 * a worker whose record fails fails its job.  Trying never waits in the
 * lock manager: at worst the worker waits for the caller's transaction to
 * end.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_wait_for_worker(p_job_id uuid, p_done text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    deadline constant timestamptz := pg_catalog.clock_timestamp() + interval '5 seconds';
BEGIN
    WHILE NOT pg_catalog.pg_try_advisory_xact_lock(@extschema@._gs_export_limit('job_lock_key')::integer,
                                                     pg_catalog.hashtext(p_job_id::text)) LOOP
        /*
         * The worker may be waiting for this very transaction: when it
         * paused the job (or changed its row otherwise) and the worker
         * records a batch into that row, the worker waits for this
         * transaction to end, and no wait here can see it finish.  Say so
         * at once: the row was written by this transaction (its xmin is
         * ours), or the worker is blocked by this backend.
         */
        IF EXISTS (SELECT 1 FROM @extschema@.gestao_scouter_export_jobs j
                    WHERE j.id = p_job_id
                      AND j.xmin::text = (pg_catalog.pg_current_xact_id_if_assigned()::text::numeric
                                          % 4294967296)::text)
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                       WHERE l.locktype = 'advisory' AND l.granted
                         AND l.classid = @extschema@._gs_export_limit('job_lock_key')::oid
                         AND l.objid = ((pg_catalog.hashtext(p_job_id::text)::bigint + 4294967296) % 4294967296)::oid
                         AND l.objsubid = 2
                         AND pg_catalog.pg_backend_pid() = ANY (pg_catalog.pg_blocking_pids(l.pid))) THEN
            RAISE EXCEPTION 'export job % cannot be % in the transaction that stopped it', p_job_id, p_done
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'Its worker is recording the batches it had at the remote, and waits for this transaction to commit.',
                      HINT = pg_catalog.format('Commit the pause first, then call gs_export_%s in a new transaction.',
                                               CASE p_done WHEN 'deleted' THEN 'delete' ELSE 'reset' END);
        END IF;
        IF pg_catalog.clock_timestamp() >= deadline THEN
            RAISE EXCEPTION 'export job % cannot be % yet: its worker is still finishing a batch', p_job_id, p_done
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'A batch that was at the remote when the job stopped is recorded before its worker stops.',
                      HINT = 'The job''s worker is still finishing its last batch: try again in a few seconds.';
        END IF;
        PERFORM pg_catalog.pg_sleep(0.05);
    END LOOP;
END;
$$;
