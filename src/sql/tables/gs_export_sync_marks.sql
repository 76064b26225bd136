/*
 * The high-water marks of the syncs, one per scope (the owner and what is
 * sent: _gs_sync_scope): the greatest synced_through of the completed sync
 * jobs of that scope, as gs_export_sync last found it.  Kept here, not only
 * on the job rows, so that the mark only moves forward: deleting or
 * resetting a completed sync job does not take it back (and make the next
 * sync send again everything since an older mark).  Internal: read and
 * written by gs_export_sync as the extension's owner; pg_dump dumps its
 * rows.
 */
CREATE TABLE @extschema@.gs_export_sync_marks (
    scope           jsonb NOT NULL,
    synced_through  timestamptz NOT NULL,
    job_id          uuid,
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- by a hash: a scope (a long field list, a filter) may outgrow a btree entry
CREATE UNIQUE INDEX gs_export_sync_marks_scope
    ON @extschema@.gs_export_sync_marks (pg_catalog.md5(scope::text));
SELECT pg_catalog.pg_extension_config_dump('@extschema@.gs_export_sync_marks', '');
