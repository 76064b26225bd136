/*
 * A new job's effective options: the settings' defaults, then the active
 * config's target_table and default_options, then the job's own options,
 * key by key ("fields" and "field_mappings" go together: a job that gives
 * one drops the config's other).  Checked, and complete: the job row keeps
 * them, so that a resume or a reset sends the same fields to the same table.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_resolve_options(p_options jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg record;
    defaults jsonb;
    merged jsonb;
    default_fields text[];
BEGIN
    PERFORM @extschema@._gs_export_check_options(p_options, 'options');
    SELECT c.target_table, c.default_options INTO cfg
      FROM @extschema@.gestao_scouter_config c
     WHERE c.active AND c.sync_enabled
     ORDER BY c.updated_at DESC NULLS LAST
     LIMIT 1;
    defaults := pg_catalog.jsonb_build_object(
        'batch_size', pg_catalog.current_setting('gs_export.batch_size')::integer,
        'delay_ms', (SELECT s.setting::integer FROM pg_catalog.pg_settings s
                      WHERE s.name = 'gs_export.batch_delay_ms'),
        'time_zone', pg_catalog.current_setting('TimeZone'),
        'max_in_flight', 1,
        'pace', 'fixed',
        'target_table', COALESCE(cfg.target_table, 'fichas'),
        'synced_at_column', 'last_sync_at',
        'source_column', 'sync_source',
        'source_value', 'tabuladormax');
    merged := defaults || COALESCE(cfg.default_options, '{}');
    IF p_options ? 'fields' OR p_options ? 'field_mappings' THEN
        merged := merged - 'fields' - 'field_mappings';
    END IF;
    merged := merged || p_options;
    -- an adaptive pace grows from batch_size up to batch_size_max: unless
    -- given, the most is the default or batch_size, whichever is larger
    IF NOT (COALESCE(cfg.default_options, '{}') ? 'batch_size_max' OR p_options ? 'batch_size_max') THEN
        merged := merged || pg_catalog.jsonb_build_object(
            'batch_size_max', GREATEST(@extschema@._gs_export_limit('batch_size_max.default'),
                                       (merged ->> 'batch_size')::numeric));
    END IF;
    -- the default mapping, unless one is given: the check below sees what
    -- is sent (a synced-at or source column must not be a mapped one).
    -- Without a leads table there is none (fields null: the worker says so).
    IF NOT (merged ? 'fields' OR merged ? 'field_mappings') THEN
        default_fields := @extschema@._gs_export_default_fields();
        IF default_fields IS NOT NULL THEN
            merged := merged || pg_catalog.jsonb_build_object('fields', pg_catalog.to_jsonb(default_fields));
        END IF;
    END IF;
    PERFORM @extschema@._gs_export_check_options(merged, 'options');
    IF NOT (merged ? 'fields' OR merged ? 'field_mappings') THEN
        merged := merged || '{"fields": null}'::jsonb;
    END IF;
    -- changed_since as an instant with its offset, read in the caller's
    -- time zone (the worker's may differ)
    IF merged ? 'changed_since' THEN
        merged := merged || pg_catalog.jsonb_build_object(
            'changed_since', (merged ->> 'changed_since')::timestamptz);
    END IF;
    -- whole numbers as integers (1.000 and 0e5 are accepted as 1 and 0)
    merged := merged || pg_catalog.jsonb_build_object(
        'batch_size', (merged ->> 'batch_size')::numeric::integer,
        'delay_ms', (merged ->> 'delay_ms')::numeric::integer,
        'max_in_flight', (merged ->> 'max_in_flight')::numeric::integer,
        'batch_size_max', (merged ->> 'batch_size_max')::numeric::integer);
    RETURN merged;
END;
$$;
