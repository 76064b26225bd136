/*
 * What a job sends, from its (effective) options: the remote table, each
 * remote column with the lead column it gets, and the two columns gs_export
 * fills itself.  Jobs of 1.0 have none of these keys: the defaults.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_mapping(p_options jsonb,
    OUT target_table text, OUT remote_columns text[], OUT lead_columns text[],
    OUT synced_at_column text, OUT source_column text, OUT source_value text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o jsonb := COALESCE(p_options, '{}');
BEGIN
    target_table := COALESCE(o ->> 'target_table', 'fichas');
    IF pg_catalog.jsonb_typeof(o -> 'field_mappings') = 'object' THEN
        SELECT pg_catalog.array_agg(m.key ORDER BY m.key), pg_catalog.array_agg(m.value ORDER BY m.key)
          INTO remote_columns, lead_columns
          FROM pg_catalog.jsonb_each_text(o -> 'field_mappings') m;
    ELSIF pg_catalog.jsonb_typeof(o -> 'fields') = 'array' THEN
        SELECT pg_catalog.array_agg(f.value ORDER BY f.ordinality)
          INTO lead_columns
          FROM pg_catalog.jsonb_array_elements_text(o -> 'fields') WITH ORDINALITY f;
        remote_columns := lead_columns;
    ELSE
        lead_columns := @extschema@._gs_export_default_fields();
        remote_columns := lead_columns;
    END IF;
    IF NOT ('id' = ANY (remote_columns)) THEN
        remote_columns := 'id'::text || remote_columns;
        lead_columns := 'id'::text || lead_columns;
    END IF;
    synced_at_column := CASE WHEN o ? 'synced_at_column' THEN o ->> 'synced_at_column'
                             ELSE 'last_sync_at' END;
    source_column := CASE WHEN o ? 'source_column' THEN o ->> 'source_column'
                          ELSE 'sync_source' END;
    source_value := COALESCE(o ->> 'source_value', 'tabuladormax');
END;
$$;
