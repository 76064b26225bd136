-- The remote side, second table: gestao-scouter's own public.leads, with
-- Portuguese column names, as the original's later versions wrote to it
-- (doc/original.md: from 2708f369 the target was `leads`, from
-- f79dcaee with these names, origem_sincronizacao 'batch_export' from
-- da70706f).  For jobs with the option target_table = 'leads'.  Loaded into
-- the stand-in remote's own database next to fichas.sql (the stand-in serves
-- every table of public; reload its schema cache after loading this file
-- into a database it already serves).
CREATE TABLE public.leads (
    id                      bigint PRIMARY KEY,
    nome                    text,
    responsavel             text,
    idade                   integer,
    foto                    text,
    telefone                text,
    etapa                   text,
    projeto_comercial       text,
    scouter                 text,
    criado                  timestamptz,
    modificado              timestamptz,
    ultima_sincronizacao    timestamptz,
    origem_sincronizacao    text CHECK (origem_sincronizacao IN
                                ('batch_export', 'tabuladormax', 'gestao_scouter',
                                 'bitrix', 'manual'))
);
