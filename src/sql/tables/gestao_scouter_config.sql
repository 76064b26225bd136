/*
 * gestao_scouter_config: the remote's address and keys (doc/reference-schema.md).
 * TabuladorMax may already have it, with rows: then it is kept as
 * it is (not made a member of the extension, so DROP EXTENSION leaves it)
 * and only gains what gs_export needs.  Created here, it is a member of the
 * extension and is dumped with its data.
 */
DO $config$
BEGIN
    IF pg_catalog.to_regclass('@extschema@.gestao_scouter_config') IS NULL THEN
        CREATE TABLE @extschema@.gestao_scouter_config (
            id                          uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
            project_url                 text NOT NULL,
            anon_key                    text NOT NULL,
            service_role_key_encrypted  text,
            active                      boolean DEFAULT true,
            sync_enabled                boolean DEFAULT false,
            created_at                  timestamptz DEFAULT pg_catalog.now(),
            updated_at                  timestamptz DEFAULT pg_catalog.now()
        );
        PERFORM pg_catalog.pg_extension_config_dump('@extschema@.gestao_scouter_config'::pg_catalog.regclass, '');
    END IF;

    /*
     * The remote's address: http or https, a host, nothing else (no user,
     * password, path, query).  NOT VALID: rows already there are kept; the
     * worker checks the URL again before use.
     */
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                   WHERE conrelid = '@extschema@.gestao_scouter_config'::regclass
                     AND conname = 'gestao_scouter_config_project_url_http') THEN
        ALTER TABLE @extschema@.gestao_scouter_config
            ADD CONSTRAINT gestao_scouter_config_project_url_http
            CHECK (project_url ~ '^https?://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?$')
            NOT VALID;
    END IF;
END
$config$;

/*
 * target_table: the remote table of new jobs; default_options: option
 * defaults for new jobs, checked like options when written
 * (gs_export_config_guard); alert_url: where a job's worker POSTs a small
 * JSON document when the job completes, fails, or is paused by the
 * remote's trouble (src/alert.c); NULL, the default: no alerts.
 */
ALTER TABLE @extschema@.gestao_scouter_config
    ADD COLUMN IF NOT EXISTS target_table text,
    ADD COLUMN IF NOT EXISTS default_options jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS alert_url text;
