--
-- api_mapping: the 1.1 options that say what a job sends and where
-- (doc/contract.md, "Options"): target_table, fields,
-- field_mappings, synced_at_column, source_column, source_value; the
-- config's target_table and default_options; the effective options a job
-- keeps.  Bad input is 22023 naming the key, and changes nothing.
--
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
SELECT gs_regress_reset();

-- Bad options: every one 22023 (22004 for NULL), the message naming it.
SELECT o, e.* FROM (VALUES
    ('{"fields": ["name"], "field_mappings": {"nome": "name"}}'),
    ('{"fields": []}'),
    ('{"fields": "name"}'),
    ('{"fields": ["name", "no_such_column"]}'),
    ('{"fields": ["name", 7]}'),
    ('{"fields": ["name", "name"]}'),
    ('{"field_mappings": {}}'),
    ('{"field_mappings": ["nome", "name"]}'),
    ('{"field_mappings": {"nome": "no_such_column"}}'),
    ('{"field_mappings": {"nome": 1}}'),
    ('{"field_mappings": {"no me": "name"}}'),
    ('{"field_mappings": {"nome;drop table leads": "name"}}'),
    ('{"target_table": "fichas; drop"}'),
    ('{"target_table": "public.fichas"}'),
    ('{"target_table": ""}'),
    ('{"target_table": 5}'),
    ('{"synced_at_column": "a b"}'),
    ('{"synced_at_column": 1}'),
    ('{"source_column": ["x"]}'),
    ('{"source_value": null}'),
    ('{"source_value": 3}'),
    ('{"field_mappings": {"nome": "name"}, "synced_at_column": "nome"}'),
    ('{"fields": ["name"], "source_column": "name"}'),
    ('{"filed_mappings": {}}'),
    ('{"filter": []}'),
    ('{"filter": {}}'),
    ('{"filter": {"no_such_column": 1}}'),
    ('{"filter": {"age": "forty"}}'),
    ('{"filter": {"age": [40, "x"]}}'),
    ('{"filter": {"age": []}}'),
    ('{"filter": {"etapa": {"in": ["A"]}}}'),
    ('{"filter": {"data_agendamento": "2026-02-30"}}'),
    ('{"filter": {"ficha_confirmada": "perhaps"}}')) v(o),
    LATERAL expect_error(format('SELECT gs_export_create(%L, NULL, %L)', '2026-01-31', o)) e;
-- (expect_error rolls back whatever a statement did: nothing to count)

-- Good ones, and what the job keeps: options as passed, effective_options
-- complete (the settings' defaults, the config's, the job's own).
CREATE FUNCTION pg_temp.created_with(opts jsonb, OUT options jsonb, OUT effective jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    j uuid;
BEGIN
    j := public.gs_export_create(start_date => date '2026-01-31', options => opts);
    -- the default mapping's long list of fields is checked below
    SELECT g.options,
           CASE WHEN opts ? 'fields' THEN g.effective_options ELSE g.effective_options - 'fields' END
      INTO options, effective
      FROM public.gestao_scouter_export_jobs g WHERE g.id = j;
    UPDATE public.gestao_scouter_export_jobs SET status = 'completed' WHERE id = j;
END;
$$;
BEGIN;
SELECT c.* FROM (VALUES (1, '{}'),
                        (2, '{"fields": ["name", "etapa"]}'),
                        (3, '{"field_mappings": {"nome": "name", "id": "id"}, "target_table": "leads"}'),
                        (4, '{"synced_at_column": null, "source_column": "origem", "source_value": "batch_export"}'),
                        (5, '{"batch_size": 1.000, "delay_ms": 0e5}'),
                        (6, '{"filter": {"etapa": ["A", null], "age": 40, "ficha_confirmada": true}}')) v(n, o),
       LATERAL pg_temp.created_with(o::jsonb) c
 ORDER BY n;
-- fields of the default mapping, frozen on the job: every fichas column
-- that leads has
SELECT g.effective_options -> 'fields' = to_jsonb(ARRAY['id', 'name', 'responsible', 'age', 'address',
       'scouter', 'photo_url', 'date_modify', 'raw', 'updated_at', 'bitrix_telemarketing_id',
       'commercial_project_id', 'responsible_user_id', 'celular', 'telefone_trabalho', 'telefone_casa',
       'etapa', 'fonte', 'criado', 'nome_modelo', 'local_abordagem', 'ficha_confirmada',
       'data_criacao_ficha', 'data_confirmacao_ficha', 'presenca_confirmada', 'compareceu',
       'valor_ficha', 'data_criacao_agendamento', 'horario_agendamento', 'data_agendamento',
       'gerenciamento_funil', 'status_fluxo', 'etapa_funil', 'etapa_fluxo', 'funil_fichas',
       'status_tabulacao', 'maxsystem_id_ficha', 'gestao_scouter', 'op_telemarketing',
       'data_retorno_ligacao', 'cadastro_existe_foto']) AS default_fields
  FROM gestao_scouter_export_jobs g WHERE g.options = '{}' AND g.effective_options IS NOT NULL;
ROLLBACK;

-- The config: target_table and default_options apply to new jobs, the
-- job's own options over them key by key; a job that gives fields drops
-- the config's field_mappings.
BEGIN;
UPDATE gestao_scouter_config SET target_table = 'leads',
       default_options = '{"field_mappings": {"nome": "name"}, "batch_size": 7, "source_value": "batch_export"}';
SELECT c.* FROM (VALUES (1, '{}'),
                        (2, '{"batch_size": 9, "target_table": "fichas"}'),
                        (3, '{"fields": ["age"]}')) v(n, o),
       LATERAL pg_temp.created_with(o::jsonb) c
 ORDER BY n;
ROLLBACK;

-- default_options and target_table are checked when written.
SELECT * FROM expect_error($$UPDATE gestao_scouter_config SET default_options = '{"batch_size": 0}'$$);
SELECT * FROM expect_error($$UPDATE gestao_scouter_config SET default_options = '{"fields": ["nope"]}'$$);
SELECT * FROM expect_error($$UPDATE gestao_scouter_config SET default_options = '[]'$$);
SELECT * FROM expect_error($$UPDATE gestao_scouter_config SET default_options = '{"colour": "red"}'$$);
SELECT * FROM expect_error($$UPDATE gestao_scouter_config SET target_table = 'a-b'$$);
SELECT * FROM expect_error($$UPDATE gestao_scouter_config SET default_options = '{"time_zone": "America/Sao_Paulo", "fields": ["name"]}', target_table = 'fichas'$$);
