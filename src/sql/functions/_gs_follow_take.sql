/*
 * A follower's next changes (its worker, in the transaction that then
 * reads those leads): the rows of gs_export_changes that exist now, but for
 * p_except (rows already taken, not yet recorded), in order of seq, until
 * they hold p_max ids; ids: their ids, each once.  A TRUNCATE's row
 * (truncated) comes alone, and only first and when p_marker_ok (nothing
 * else under way); the rows after it wait until it is done.  status: the
 * job's (no rows unless 'running').  A retry or a repair (a set job) has
 * no capture: its queue was written when it was created.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_follow_take(p_job_id uuid, p_except bigint[], p_max integer,
    p_marker_ok boolean,
    OUT status text, OUT seqs bigint[], OUT ids bigint[], OUT truncated boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    all_ids bigint[] := '{}';
    job_kind text;
BEGIN
    SELECT j.status, j.kind INTO status, job_kind FROM @extschema@.gestao_scouter_export_jobs j WHERE j.id = p_job_id;
    seqs := '{}';
    ids := '{}';
    truncated := false;
    IF status IS DISTINCT FROM 'running' THEN
        RETURN;
    END IF;
    IF job_kind = 'follow' AND @extschema@._gs_capture_missing(p_job_id) > 0 THEN
        PERFORM @extschema@._gs_job_stop(p_job_id, 'failed',
            'its capture triggers on leads are gone (dropped, disabled, or leads was created again): changes may have gone uncaptured. gs_export_reset() creates them again and sends every lead again.');
        status := 'failed';
        RETURN;
    END IF;
    FOR r IN SELECT c.seq, c.ids, c.truncated
               FROM @extschema@.gs_export_changes c
              WHERE c.job_id = p_job_id AND c.seq <> ALL (COALESCE(p_except, '{}'))
              ORDER BY c.seq
    LOOP
        IF r.truncated THEN
            IF pg_catalog.cardinality(seqs) = 0 AND p_marker_ok THEN
                seqs := ARRAY[r.seq];
                truncated := true;
            END IF;
            EXIT;
        END IF;
        seqs := seqs || r.seq;
        all_ids := all_ids || r.ids;
        EXIT WHEN pg_catalog.cardinality(all_ids) >= p_max;
    END LOOP;
    ids := ARRAY(SELECT DISTINCT u.id FROM pg_catalog.unnest(all_ids) AS u(id) ORDER BY u.id);
END;
$$;
