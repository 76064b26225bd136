-- The remote side: gestao-scouter's public.fichas, as doc/reference-schema.md
-- describes it.  Loaded into the stand-in remote's own database.
CREATE TABLE public.fichas (
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
    bitrix_telemarketing_id     bigint,
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
    last_sync_at                timestamptz,
    sync_source                 text CHECK (sync_source IN ('tabuladormax', 'gestao_scouter', 'bitrix', 'manual')),
    sync_status                 text CHECK (sync_status IN ('synced', 'syncing', 'error', 'pending'))
);

-- The remote syncs changes back to TabuladorMax unless they came from it;
-- here that is a queue a test can look at.
CREATE TABLE public.fichas_sync_back (
    ficha_id    bigint,
    queued_at   timestamptz DEFAULT clock_timestamp()
);

CREATE FUNCTION public.fichas_sync_back_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sync_source IS DISTINCT FROM 'tabuladormax' THEN
        INSERT INTO public.fichas_sync_back (ficha_id) VALUES (NEW.id);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER fichas_sync_back AFTER INSERT OR UPDATE ON public.fichas
    FOR EACH ROW EXECUTE FUNCTION public.fichas_sync_back_trigger();
