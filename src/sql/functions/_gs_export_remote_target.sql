/*
 * gs_export_remote_columns' internal function: who may call (42501), the
 * table (NULL: the config's target_table, else 'fichas', as
 * _gs_export_resolve_options chooses it; a plain name, else 22023), and
 * the config's address and keys (_gs_export_remote_config), as one jsonb
 * for src/check.c.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_remote_target(p_caller oid, p_uid uuid, p_app_admin boolean,
                                                                p_target_table text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target text := p_target_table;
BEGIN
    PERFORM @extschema@._gs_export_check_caller(p_caller);
    IF target IS NULL THEN
        target := @extschema@._gs_export_resolve_options('{}') ->> 'target_table';
    ELSE
        PERFORM @extschema@._gs_export_check_options(pg_catalog.jsonb_build_object('target_table', target),
                                                     'target_table');
    END IF;
    RETURN @extschema@._gs_export_remote_config()
           || pg_catalog.jsonb_build_object('target_table', target);
END;
$$;
