-- What TabuladorMax's tables grew into after the seed
-- (doc/original.md), to load after tabuladormax.sql: the jobs table
-- gained fields_selected and field_mappings, and the errors table was added
-- (with ignored_fields, its job_id cascading on delete).
ALTER TABLE public.gestao_scouter_export_jobs
    ADD COLUMN fields_selected text[],
    ADD COLUMN field_mappings jsonb;

CREATE TABLE public.gestao_scouter_export_errors (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id          uuid REFERENCES public.gestao_scouter_export_jobs (id) ON DELETE CASCADE,
    lead_id         bigint,
    lead_snapshot   jsonb,
    fields_sent     jsonb,
    error_message   text,
    error_details   jsonb,
    response_status integer,
    response_body   jsonb,
    ignored_fields  text[],
    created_at      timestamptz DEFAULT now()
);
