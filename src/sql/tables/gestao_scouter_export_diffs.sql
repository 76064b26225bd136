/*
 * gestao_scouter_export_diffs (1.2): what a verify job (gs_export_verify)
 * found different between the remote and the leads, one row per lead:
 * kind 'missing' (a lead of the scope the remote lacks), 'stale' (the
 * remote holds an older updated_at), 'different' (same version, a column
 * differs), 'extra' (a remote row carrying our source_value whose lead is
 * gone or out of the scope); detail: the versions, or the columns that
 * differ with the values the remote and the lead have.  A repair job
 * (gs_export_repair) sends exactly these leads.  Deleted with its job.
 * Row level security as on errors.  A member of the extension, dumped
 * with its data.
 */
CREATE TABLE @extschema@.gestao_scouter_export_diffs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES @extschema@.gestao_scouter_export_jobs (id) ON DELETE CASCADE,
    lead_id     bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('missing', 'stale', 'different', 'extra')),
    detail      jsonb,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX gestao_scouter_export_diffs_job_id_idx
    ON @extschema@.gestao_scouter_export_diffs (job_id, lead_id);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.gestao_scouter_export_diffs', '');
