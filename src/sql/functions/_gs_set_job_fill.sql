/*
 * Internal: the lead ids a set job (kind 'retry' or 'repair') is to send,
 * written into the queue of changes of p_queue_job (the set job itself, or
 * the follower that keeps its remote table), in rows of at most a thousand
 * ids, in id order, as a capture writes them: the worker then takes them
 * by the follower's path (_gs_follow_take, gs_source_follow_next), sends
 * each lead as it is now, and applies on_delete to one that is gone or out
 * of the scope.  p_source: the job whose leads these are (options
 * retry_of or repair_of of the set job): for a retry, the leads of its
 * error rows without resolved_at; for a repair, the leads of the verify
 * job's diffs.  Returns how many ids it wrote.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_set_job_fill(p_queue_job uuid, p_kind text, p_source uuid)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    WITH ids AS (
        SELECT DISTINCT e.lead_id
          FROM @extschema@.gestao_scouter_export_errors e
         WHERE p_kind = 'retry' AND e.job_id = p_source
           AND e.resolved_at IS NULL AND e.lead_id IS NOT NULL
        UNION
        SELECT d.lead_id
          FROM @extschema@.gestao_scouter_export_diffs d
         WHERE p_kind = 'repair' AND d.job_id = p_source
    ), chunks AS (
        SELECT i.lead_id, (pg_catalog.row_number() OVER (ORDER BY i.lead_id) - 1) / 1000 AS chunk
          FROM ids i
    ), written AS (
        INSERT INTO @extschema@.gs_export_changes (job_id, ids)
        SELECT p_queue_job, pg_catalog.array_agg(c.lead_id ORDER BY c.lead_id)
          FROM chunks c
         GROUP BY c.chunk
         ORDER BY c.chunk
        RETURNING pg_catalog.cardinality(ids) AS n
    )
    SELECT COALESCE(pg_catalog.sum(w.n), 0) INTO n FROM written w;
    RETURN n;
END;
$$;
