/*
 * Internal: 22023 unless p_on_delete is an option "on_delete" a job may
 * take ("delete", "ignore", or an object of remote columns and the values
 * a soft delete sets, neither id nor the source column p_source_column,
 * which scopes every delete).  gs_export_follow's, and gs_export_verify's
 * (for the repair that follows it).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check_on_delete(p_on_delete jsonb, p_source_column text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    ident constant text := '^[A-Za-z_][A-Za-z0-9_$]{0,62}$';
BEGIN
    IF pg_catalog.jsonb_typeof(p_on_delete) = 'object' AND p_on_delete <> '{}' THEN
        FOR k IN SELECT pg_catalog.jsonb_object_keys(p_on_delete) LOOP
            IF k !~ ident OR k = 'id' THEN
                RAISE EXCEPTION 'option "on_delete": "%" is not a remote column a soft delete may set', k
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Plain column names other than id, for example {"ativo": false}.';
            END IF;
        END LOOP;
    ELSIF p_on_delete IS DISTINCT FROM '"delete"' AND p_on_delete IS DISTINCT FROM '"ignore"' THEN
        RAISE EXCEPTION 'option "on_delete" must be "delete", "ignore" or an object of remote columns: %', p_on_delete
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '"delete" deletes the row at the remote; "ignore" leaves it; {"ativo": false} updates it instead (a soft delete).';
    END IF;
    IF pg_catalog.jsonb_typeof(p_on_delete) = 'object' AND p_source_column IS NOT NULL
       AND p_on_delete ? p_source_column THEN
        RAISE EXCEPTION 'option "on_delete" sets the source column "%"', p_source_column
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The source column scopes every delete; a soft delete may not change it.';
    END IF;
END;
$$;
