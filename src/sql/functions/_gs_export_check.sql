/*
 * gs_export_check's internal function: what it can tell without the
 * remote, and what the C side (src/check.c) needs to ask the remote.
 * Returns {"rows": [{severity, key, message}, ...], "remote": null or
 * {project_url, api_key, secret_keys, target_table, columns, ...}}.
 *
 * Rows, as gs_export_create would meet them (its checks, reported instead
 * of raised):
 *  - each option on its own (_gs_export_check_options), one row per bad
 *    option, key = the option; then the options together, as create
 *    resolves them (_gs_export_resolve_options: cross-option rules), key =
 *    the option the message names, else "options";
 *  - leads missing (key "leads"); lead columns the job reads that the
 *    caller may not read (key: the option that names the column, "leads"
 *    for id and updated_at, which every job reads);
 *  - no usable config (key "config").
 * The caller who may not use gs_export at all gets 42501, not rows.
 * "remote" is null when the options or the config leave nothing to ask.
 * columns: each column sent, {remote, lead, option, lead_type (format_type
 * of its base type, as PostgREST names types), lead_category (pg_type's
 * typcategory), lead_not_null, lead_max_len (character types' length)}.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check(p_caller oid, p_uid uuid, p_app_admin boolean,
                                                        p_options jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rows jsonb := '[]';
    resolved jsonb;
    remote jsonb;
    k text;
    v jsonb;
    msg text;
    hint text;
    key text;
    mapping record;
    mapping_option text;
    cols jsonb;
    failed boolean := false;
BEGIN
    PERFORM @extschema@._gs_export_check_caller(p_caller);

    -- each option alone: one row per bad option
    IF p_options IS NOT NULL AND pg_catalog.jsonb_typeof(p_options) = 'object' THEN
        FOR k, v IN SELECT * FROM pg_catalog.jsonb_each(p_options) ORDER BY 1 LOOP
            BEGIN
                PERFORM @extschema@._gs_export_check_options(pg_catalog.jsonb_build_object(k, v), 'options');
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
                rows := rows || pg_catalog.jsonb_build_object(
                    'severity', 'error', 'key', k,
                    'message', msg || CASE WHEN hint <> '' THEN ' (' || hint || ')' ELSE '' END);
                failed := true;
            END;
        END LOOP;
    END IF;
    -- then together, as gs_export_create resolves them
    IF NOT failed THEN
        BEGIN
            resolved := @extschema@._gs_export_resolve_options(p_options);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
            key := COALESCE(pg_catalog.substring(msg, 'options? "([A-Za-z_]+)"'), 'options');
            rows := rows || pg_catalog.jsonb_build_object(
                'severity', 'error', 'key', key,
                'message', msg || CASE WHEN hint <> '' THEN ' (' || hint || ')' ELSE '' END);
            failed := true;
        END;
    END IF;

    IF pg_catalog.to_regclass('@extschema@.leads') IS NULL THEN
        rows := rows || pg_catalog.jsonb_build_object(
            'severity', 'error', 'key', 'leads',
            'message', 'relation "@extschema@.leads" does not exist (gs_export exports the table leads of the schema it is installed in)');
        failed := true;
    END IF;

    IF NOT failed THEN
        SELECT m.* INTO mapping FROM @extschema@._gs_job_mapping(resolved) m;
        mapping_option := CASE WHEN resolved ? 'field_mappings' THEN 'field_mappings' ELSE 'fields' END;
        -- the columns the job reads as its owner, one row per column the
        -- caller may not read (what _gs_export_check_readable raises)
        SELECT rows || COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'severity', 'error', 'key', r.opt,
                   'message', pg_catalog.format('permission denied for column %s of table leads: a job reads the leads with its owner''s privileges (GRANT SELECT ON leads (%s) to the role)',
                                                pg_catalog.quote_ident(r.col), pg_catalog.quote_ident(r.col)))
                   ORDER BY r.col), '[]')
          INTO rows
          FROM (SELECT DISTINCT ON (c.col) c.col, c.opt
                  FROM (SELECT 'id' AS col, 'leads' AS opt, 0 AS o
                        UNION ALL SELECT 'updated_at', 'leads', 0
                        UNION ALL SELECT l, mapping_option, 1 FROM pg_catalog.unnest(mapping.lead_columns) l
                        UNION ALL SELECT f, 'filter', 2
                          FROM pg_catalog.jsonb_object_keys(
                                   CASE WHEN pg_catalog.jsonb_typeof(resolved -> 'filter') = 'object'
                                        THEN resolved -> 'filter' ELSE '{}' END) f) c
                 ORDER BY c.col, c.o) r
         WHERE NOT pg_catalog.has_column_privilege(p_caller, '@extschema@.leads', r.col, 'SELECT');

        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'remote', m.remote, 'lead', m.lead, 'option', mapping_option,
                   'lead_type', pg_catalog.format_type(COALESCE(NULLIF(t.typbasetype, 0), t.oid), NULL),
                   'lead_category', COALESCE(bt.typcategory, t.typcategory)::text,
                   'lead_not_null', a.attnotnull OR (t.typtype = 'd' AND t.typnotnull),
                   'lead_max_len', information_schema._pg_char_max_length(
                                       information_schema._pg_truetypid(a.*, t.*),
                                       information_schema._pg_truetypmod(a.*, t.*)))
                   ORDER BY m.n)
          INTO cols
          FROM ROWS FROM (pg_catalog.unnest(mapping.remote_columns), pg_catalog.unnest(mapping.lead_columns))
               WITH ORDINALITY AS m(remote, lead, n)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = '@extschema@.leads'::pg_catalog.regclass
                                         AND a.attname = m.lead AND NOT a.attisdropped
          JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype;

        BEGIN
            remote := @extschema@._gs_export_remote_config();
        EXCEPTION WHEN object_not_in_prerequisite_state THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
            rows := rows || pg_catalog.jsonb_build_object(
                'severity', 'error', 'key', 'config',
                'message', msg || CASE WHEN hint <> '' THEN ' (' || hint || ')' ELSE '' END);
        END;
        IF remote IS NOT NULL THEN
            remote := remote || pg_catalog.jsonb_build_object(
                'target_table', mapping.target_table,
                'columns', COALESCE(cols, '[]'),
                'synced_at_column', mapping.synced_at_column,
                'source_column', mapping.source_column);
        END IF;
    END IF;

    RETURN pg_catalog.jsonb_build_object('rows', rows, 'remote', remote);
END;
$$;
