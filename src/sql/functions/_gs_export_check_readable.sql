/*
 * Internal: 42P01 without a table leads; 42501 unless p_caller may read
 * every column of leads that a job with these (resolved) options reads as
 * its owner: the columns it sends, its key (id, updated_at) and the
 * columns its filter compares.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check_readable(p_caller oid, p_resolved jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    denied text;
BEGIN
    IF pg_catalog.to_regclass('@extschema@.leads') IS NULL THEN
        RAISE EXCEPTION 'relation "@extschema@.leads" does not exist'
            USING ERRCODE = 'undefined_table',
                  HINT = 'gs_export exports the table leads of the schema it is installed in.';
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ' ORDER BY c) INTO denied
      FROM (SELECT DISTINCT c
              FROM pg_catalog.unnest((SELECT m.lead_columns FROM @extschema@._gs_job_mapping(p_resolved) m)
                                     || ARRAY['id', 'updated_at']
                                     || ARRAY(SELECT pg_catalog.jsonb_object_keys(
                                                  CASE WHEN pg_catalog.jsonb_typeof(p_resolved -> 'filter') = 'object'
                                                       THEN p_resolved -> 'filter' ELSE '{}' END))) AS c) cs
     WHERE NOT pg_catalog.has_column_privilege(p_caller, '@extschema@.leads', c, 'SELECT');
    IF denied IS NOT NULL THEN
        RAISE EXCEPTION 'permission denied for table leads'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('The job would read the columns %s, which the role may not read.', denied),
                  HINT = 'A job reads the leads with its owner''s privileges: GRANT SELECT ON leads (or on those columns) to the role that creates it.';
    END IF;
END;
$$;
