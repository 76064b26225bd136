-- TabuladorMax's tables as they exist before gs_export is installed
-- (doc/reference-schema.md), with a few rows, to test CREATE EXTENSION on an
-- existing database.
CREATE TABLE public.leads (
    id                          bigint PRIMARY KEY,
    name                        text,
    responsible                 text,
    age                         integer,
    address                     text,
    scouter                     text,
    photo_url                   text,
    date_modify                 timestamptz,
    raw                         jsonb,
    updated_at                  timestamptz DEFAULT now(),
    bitrix_telemarketing_id     integer,
    commercial_project_id       uuid,
    responsible_user_id         uuid,
    celular                     text,
    telefone_trabalho           text,
    telefone_casa               text,
    etapa                       text,
    fonte                       text,
    criado                      timestamptz,
    nome_modelo                 text,
    local_abordagem             text,
    ficha_confirmada            boolean DEFAULT false,
    data_criacao_ficha          timestamptz,
    data_confirmacao_ficha      timestamptz,
    presenca_confirmada         boolean DEFAULT false,
    compareceu                  boolean DEFAULT false,
    valor_ficha                 numeric(10,2),
    data_criacao_agendamento    timestamptz,
    horario_agendamento         text,
    data_agendamento            date,
    gerenciamento_funil         text,
    status_fluxo                text,
    etapa_funil                 text,
    etapa_fluxo                 text,
    funil_fichas                text,
    status_tabulacao            text,
    maxsystem_id_ficha          text,
    gestao_scouter              text,
    op_telemarketing            text,
    data_retorno_ligacao        timestamptz,
    cadastro_existe_foto        boolean DEFAULT false,
    sync_source                 text
);

CREATE TABLE public.sync_events (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_type          text NOT NULL CHECK (event_type IN ('create', 'update', 'delete')),
    direction           text NOT NULL,
    lead_id             bigint,
    status              text NOT NULL CHECK (status IN ('success', 'error', 'pending')),
    error_message       text,
    sync_duration_ms    integer,
    created_at          timestamptz DEFAULT now()
);

CREATE TABLE public.gestao_scouter_config (
    id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_url                 text NOT NULL,
    anon_key                    text NOT NULL,
    service_role_key_encrypted  text,
    active                      boolean DEFAULT true,
    sync_enabled                boolean DEFAULT false,
    created_at                  timestamptz DEFAULT now(),
    updated_at                  timestamptz DEFAULT now()
);

CREATE TABLE public.gestao_scouter_export_jobs (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed')),
    start_date          date NOT NULL,
    end_date            date,
    processing_date     date,
    last_completed_date date,
    total_leads         integer DEFAULT 0,
    exported_leads      integer DEFAULT 0,
    error_leads         integer DEFAULT 0,
    pause_reason        text,
    paused_at           timestamptz,
    created_at          timestamptz DEFAULT now(),
    started_at          timestamptz,
    completed_at        timestamptz,
    updated_at          timestamptz DEFAULT now(),
    created_by          uuid
);
