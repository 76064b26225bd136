/*
 * The lead columns the default mapping sends, each under its own name:
 * every column of the remote's fichas (doc/reference-schema.md) that leads also
 * has.  (last_sync_at and sync_source are set by gs_export itself,
 * sync_status is the remote's.)
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_default_fields()
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum)
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = pg_catalog.to_regclass('@extschema@.leads')
       AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname::text = ANY (ARRAY[
           'id', 'name', 'responsible', 'age', 'address', 'scouter', 'photo_url',
           'date_modify', 'raw', 'updated_at', 'bitrix_telemarketing_id',
           'commercial_project_id', 'responsible_user_id', 'celular',
           'telefone_trabalho', 'telefone_casa', 'etapa', 'fonte', 'criado',
           'nome_modelo', 'local_abordagem', 'ficha_confirmada',
           'data_criacao_ficha', 'data_confirmacao_ficha', 'presenca_confirmada',
           'compareceu', 'valor_ficha', 'data_criacao_agendamento',
           'horario_agendamento', 'data_agendamento', 'gerenciamento_funil',
           'status_fluxo', 'etapa_funil', 'etapa_fluxo', 'funil_fichas',
           'status_tabulacao', 'maxsystem_id_ficha', 'gestao_scouter',
           'op_telemarketing', 'data_retorno_ligacao', 'cadastro_existe_foto'])
$$;
