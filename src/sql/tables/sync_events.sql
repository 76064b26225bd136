/*
 * sync_events: one row per lead sent (the table of doc/reference-schema.md, often
 * TabuladorMax's own, which the app reads: kept with its rows when it is
 * there; created here, a member of the extension, dumped with its data).
 * gs_export adds job_id: the job that sent the lead.
 */
DO $sync_events_table$
BEGIN
    IF pg_catalog.to_regclass('@extschema@.sync_events') IS NULL THEN
        CREATE TABLE @extschema@.sync_events (
            id                  uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
            event_type          text NOT NULL CHECK (event_type IN ('create', 'update', 'delete')),
            direction           text NOT NULL,
            lead_id             bigint,
            status              text NOT NULL CHECK (status IN ('success', 'error', 'pending')),
            error_message       text,
            sync_duration_ms    integer,
            created_at          timestamptz DEFAULT pg_catalog.now()
        );
        PERFORM pg_catalog.pg_extension_config_dump('@extschema@.sync_events'::pg_catalog.regclass, '');
    END IF;

    ALTER TABLE @extschema@.sync_events
        ADD COLUMN IF NOT EXISTS job_id uuid;

    IF pg_catalog.to_regclass('@extschema@.sync_events_job_id_idx') IS NULL THEN
        CREATE INDEX sync_events_job_id_idx ON @extschema@.sync_events (job_id, lead_id)
            WHERE job_id IS NOT NULL;
    END IF;
END
$sync_events_table$;
