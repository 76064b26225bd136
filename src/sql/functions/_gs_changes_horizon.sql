/*
 * The instant from which a lead may have been changed after we looked: now,
 * or the start of the oldest transaction still open in this database, since
 * a lead it changes gets that start as its updated_at (default now()) but
 * becomes visible only when it commits.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_changes_horizon()
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT LEAST(pg_catalog.now(), pg_catalog.min(a.xact_start))
      FROM pg_catalog.pg_stat_activity a
     WHERE a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
$$;
