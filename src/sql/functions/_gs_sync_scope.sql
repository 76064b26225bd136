/*
 * Incremental export (1.1): gs_export_sync.
 *
 * A sync is a normal job (gs_export_create's checks, options and worker)
 * over every lead changed since the last completed sync of the same scope
 * began, all leads the first time:
 *   start_date  a day at the end of PostgreSQL's timestamps, end_date
 *               NULL: no lead is outside the range for being dated later,
 *               today or in the future (a clock ahead, a bad import), so
 *               "changed since the mark" is all that selects;
 *   changed_since  the mark (an ISO 8601 string with its offset), or,
 *               when the caller gives an earlier one, that: a caller may
 *               ask for more, never for less.  The first time, what the
 *               caller or else the config's default_options give, if any;
 *   is_sync, synced_through  the job is a sync, and the next sync starts
 *               from _gs_changes_horizon() as it was when this one was
 *               created (now, or the start of the oldest transaction then
 *               open): a lead changed while this one runs, or by a
 *               transaction open when it started and committed later, has
 *               an updated_at at or after it.
 *
 * The mark of a scope is the greatest synced_through of its completed
 * syncs: a failed, paused or pending (reset) sync moves nothing, and one
 * that completes late (resumed) takes it no further back than it was.
 * gs_export_sync_marks remembers it, so that deleting completed syncs does
 * not move it back either.
 *
 * The scope: the job's owner (owner_role and created_by: a job reads the
 * leads its owner may read) and what is sent (the effective options but
 * for those that change only the pace or the days).  A sync of another
 * role, or with other fields, another mapping, table or filter, has its
 * own mark, so that it sends every lead it would send the first time.
 * Options that 1.1 does not know of count as part of the scope: a change
 * of them starts over, which sends more, never less.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_sync_scope(p_owner_role name, p_created_by uuid, p_options jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'owner_role', p_owner_role,
        'created_by', p_created_by,
        'options', COALESCE(p_options, '{}')
                   OPERATOR(pg_catalog.-) ARRAY['batch_size', 'delay_ms', 'time_zone', 'changed_since',
                                                'max_in_flight', 'pace', 'batch_size_max', 'look_back'])
$$;
