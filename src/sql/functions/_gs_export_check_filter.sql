/*
 * Check the option "filter": an object {leads column: value, or array of
 * values}, each value a JSON scalar that reads as the column's type (null
 * matches NULL).  22023 naming the bad key.  The values are data: the
 * worker binds them as a parameter, cast to the column's type.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check_filter(p_filter jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    v jsonb;
    coltype text;
BEGIN
    IF pg_catalog.jsonb_typeof(p_filter) <> 'object' OR p_filter = '{}' THEN
        RAISE EXCEPTION 'option "filter" must be a non-empty object of leads column: value or array of values'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: ''{"filter": {"etapa": ["Agendado", "Confirmado"], "commercial_project_id": "…"}}''.';
    END IF;
    FOR k, v IN SELECT * FROM pg_catalog.jsonb_each(p_filter) LOOP
        SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO coltype
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = pg_catalog.to_regclass('@extschema@.leads')
           AND a.attname = k AND a.attnum > 0 AND NOT a.attisdropped;
        IF coltype IS NULL THEN
            RAISE EXCEPTION 'option "filter": "%" is not a column of leads', k
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Filter on columns of the table leads.';
        END IF;
        IF (pg_catalog.jsonb_typeof(v) = 'array' AND (pg_catalog.jsonb_array_length(v) = 0
              OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(v) e
                          WHERE pg_catalog.jsonb_typeof(e) IN ('array', 'object'))))
           OR pg_catalog.jsonb_typeof(v) = 'object' THEN
            RAISE EXCEPTION 'option "filter": the value of "%" must be a value or a non-empty array of values', k
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        BEGIN
            -- the type's name comes from the catalog, the values are bound
            EXECUTE pg_catalog.format('SELECT $1::text[]::%s[]', coltype)
              USING @extschema@._gs_export_filter_values(v);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'option "filter": % is not a value of "%" (%)', v, k, coltype
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = pg_catalog.format('Values are compared in the column''s own type, %s.', coltype);
        END;
    END LOOP;
END;
$$;
