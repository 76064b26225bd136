/*
 * Which leads a job reads besides its days: the option "filter" as
 * (column, its type, its values as a text[] literal), every column ANDed,
 * and "changed_since" ('-infinity' when not given).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_filter(p_options jsonb,
    OUT filter_columns text[], OUT filter_types text[], OUT filter_values text[],
    OUT changed_since timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- a column gone from leads since has a NULL type: the worker stops
    SELECT pg_catalog.array_agg(f.key ORDER BY f.key) FILTER (WHERE f.key IS NOT NULL),
           pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY f.key)
               FILTER (WHERE f.key IS NOT NULL),
           pg_catalog.array_agg(@extschema@._gs_export_filter_values(f.value)::text ORDER BY f.key)
               FILTER (WHERE f.key IS NOT NULL),
           COALESCE((p_options ->> 'changed_since')::timestamptz, '-infinity')
      FROM (SELECT 1) one
      LEFT JOIN pg_catalog.jsonb_each(CASE WHEN pg_catalog.jsonb_typeof(p_options -> 'filter') = 'object'
                                           THEN p_options -> 'filter' END) f ON true
      LEFT JOIN pg_catalog.pg_attribute a
             ON a.attrelid = pg_catalog.to_regclass('@extschema@.leads') AND a.attname = f.key
            AND a.attnum > 0 AND NOT a.attisdropped
$$;
