/*
 * gs_export_changes: the changes of leads a follower (gs_export_follow) has
 * yet to send, written by its capture triggers on leads (_gs_capture) in
 * the application's own transactions: one row per statement and per
 * thousand ids, the ids of the leads the statement inserted, updated
 * (before and after: an UPDATE may change an id) or deleted.  truncated: a
 * TRUNCATE of leads (no ids): the follower stops there until a person
 * resumes it.  The follower consumes the rows that exist, whatever their
 * order of commit (no high-water mark on seq: a transaction that took a
 * lower seq may commit later), and deletes those it consumed in the
 * transaction that records what it sent.  A table, never memory: a backlog
 * survives crashes and restarts.  Internal; pg_dump dumps its rows.
 */
CREATE TABLE @extschema@.gs_export_changes (
    job_id      uuid NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    ids         bigint[] NOT NULL DEFAULT '{}',
    truncated   boolean NOT NULL DEFAULT false,
    captured_at timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
    PRIMARY KEY (job_id, seq)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.gs_export_changes', '');
