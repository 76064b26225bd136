/*
 * A filter's value (a scalar or an array of them) as text[]: strings as
 * they are, numbers and booleans as JSON writes them, null as NULL.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_filter_values(p_value jsonb)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.array_agg(e #>> '{}' ORDER BY n)
      FROM pg_catalog.jsonb_array_elements(CASE WHEN pg_catalog.jsonb_typeof(p_value) = 'array'
                                                THEN p_value ELSE pg_catalog.jsonb_build_array(p_value) END)
           WITH ORDINALITY AS x(e, n)
$$;
