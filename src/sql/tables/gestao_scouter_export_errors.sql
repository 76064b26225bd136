/*
 * gestao_scouter_export_errors: one row per lead the remote refused, with
 * what was sent and what the remote answered.  Created here when missing
 * (a member of the extension, dumped with its data).
 */
DO $errors$
BEGIN
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_errors') IS NULL THEN
        CREATE TABLE @extschema@.gestao_scouter_export_errors (
            id              uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
            job_id          uuid REFERENCES @extschema@.gestao_scouter_export_jobs (id) ON DELETE CASCADE,
            lead_id         bigint,
            lead_snapshot   jsonb,
            fields_sent     jsonb,
            error_message   text,
            error_details   jsonb,
            response_status integer,
            response_body   jsonb,
            ignored_fields  text[],
            created_at      timestamptz DEFAULT pg_catalog.now()
        );
        PERFORM pg_catalog.pg_extension_config_dump('@extschema@.gestao_scouter_export_errors'::pg_catalog.regclass, '');
    END IF;

    /*
     * 1.2: resolved_at, when the lead of an error row went through after
     * all (gs_export_retry_errors sends those without one again)
     */
    ALTER TABLE @extschema@.gestao_scouter_export_errors
        ADD COLUMN IF NOT EXISTS resolved_at timestamptz;

    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_errors_job_id_idx') IS NULL THEN
        CREATE INDEX gestao_scouter_export_errors_job_id_idx
            ON @extschema@.gestao_scouter_export_errors (job_id);
    END IF;
    /*
     * 1.2: the error rows not resolved, by lead: each batch of the
     * follower's path resolves those of the leads it got through
     * (_gs_follow_record); they are few, the index small
     */
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_export_errors_unresolved_idx') IS NULL THEN
        CREATE INDEX gestao_scouter_export_errors_unresolved_idx
            ON @extschema@.gestao_scouter_export_errors (lead_id)
            WHERE resolved_at IS NULL;
    END IF;
END
$errors$;
