/*
 * gs_export_grant_access(role, admin): what a role needs to use gs_export,
 * granted to it directly.  Needed where roles do not inherit (Supabase's
 * authenticated is NOINHERIT: membership of gs_export_user alone gives it
 * no privileges).  For the extension's owner and superusers.
 */
CREATE OR REPLACE FUNCTION @extschema@.gs_export_grant_access(grantee regrole, admin boolean DEFAULT false,
                                                              config boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn text;
BEGIN
    IF grantee IS NULL OR admin IS NULL OR config IS NULL THEN
        RAISE EXCEPTION 'grantee, admin and config must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = grantee) = 'anon' THEN
        RAISE EXCEPTION 'gs_export is not for anon'
            USING ERRCODE = 'invalid_grant_operation',
                  DETAIL = 'anon''s callers have no auth.uid(): they would share each other''s jobs.',
                  HINT = 'Grant access to authenticated: the app''s signed-in users.';
    END IF;
    IF config AND NOT admin
       AND NOT (SELECT c.relrowsecurity FROM pg_catalog.pg_class c
                WHERE c.oid = '@extschema@.gestao_scouter_config'::pg_catalog.regclass
                  AND EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                              WHERE p.polrelid = c.oid AND NOT p.polpermissive
                                AND p.polname = 'gs_export_config_admins_only')) THEN
        RAISE EXCEPTION 'gestao_scouter_config has no row level security of gs_export''s'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Config access for a role would then be access to the keys for all its users.',
                  HINT = 'ALTER TABLE gestao_scouter_config ENABLE ROW LEVEL SECURITY, or ALTER EXTENSION gs_export UPDATE.';
    END IF;
    EXECUTE pg_catalog.format('GRANT %s TO %s',
                              CASE WHEN admin THEN 'gs_export_admin' ELSE 'gs_export_user' END, grantee);
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %s TO %s', '@extschema@', grantee);
    FOR fn IN
        SELECT DISTINCT p.oid::pg_catalog.regprocedure::text
          FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
         WHERE a.privilege_type = 'EXECUTE'
           AND a.grantee IN (SELECT r.oid FROM pg_catalog.pg_roles r
                              WHERE r.rolname IN ('gs_export_user', 'gs_export_admin'))
           AND p.proname NOT LIKE '\_%'
           AND p.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d
                          WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                            AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                            AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e
                                               WHERE e.extname = 'gs_export')
                            AND d.deptype = 'e')
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', fn, grantee);
    END LOOP;
    EXECUTE pg_catalog.format('GRANT SELECT ON @extschema@.gestao_scouter_export_jobs,'
                              ' @extschema@.gestao_scouter_export_errors,'
                              ' @extschema@.gestao_scouter_export_diffs TO %s', grantee);
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend
               WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 AND objid = '@extschema@.sync_events'::pg_catalog.regclass
                 AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                 AND deptype = 'e') THEN
        EXECUTE pg_catalog.format('GRANT SELECT ON @extschema@.sync_events TO %s', grantee);
    END IF;
    IF admin OR config THEN
        EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE'
                                  ' ON @extschema@.gestao_scouter_config TO %s', grantee);
    END IF;
END;
$$;
