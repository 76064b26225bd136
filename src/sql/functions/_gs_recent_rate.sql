/*
 * Internal, for the record of a batch (_gs_job_record, _gs_follow_record,
 * _gs_verify_record): a job's recent_leads_per_second once p_n more leads
 * are done, p_previous being the rate before and p_since the job's last
 * change: the leads per second since then, averaged with a weight that
 * fades over five seconds, so that batches recorded in quick succession
 * (several were in flight) do not make it jump.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_recent_rate(p_previous numeric, p_since timestamptz, p_n bigint)
RETURNS numeric
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.round((
               CASE WHEN p_previous IS NULL THEN p_n / r.dt
                    ELSE r.keep * p_previous::float8 + (1 - r.keep) * p_n / r.dt END)::numeric, 3)
      FROM (SELECT d.dt, pg_catalog.exp(-d.dt / 5.0) AS keep
              FROM (SELECT GREATEST(EXTRACT(epoch FROM pg_catalog.clock_timestamp() - p_since)::float8,
                                    0.001) AS dt) d) r
$$;
