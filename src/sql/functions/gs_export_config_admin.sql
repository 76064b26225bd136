/*
 * May the current user read and write gestao_scouter_config's rows?
 * Superusers and members of gs_export_admin, as in 1.0; and an app admin
 * (has_role 'admin', not 'manager') -- who reaches the table at all only
 * through a role granted it by gs_export_grant_access(role, config =>
 * true).  For the config's policies; it outlives the extension with them.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_config_admin() CASCADE;
CREATE FUNCTION @extschema@.gs_export_config_admin()
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me oid;
    is_super boolean;
    admins oid;
BEGIN
    -- by name: CURRENT_USER::regrole would read a name such as "Ana" as ana
    SELECT r.oid, r.rolsuper INTO me, is_super FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER;
    IF is_super THEN
        RETURN true;
    END IF;
    SELECT r.oid INTO admins FROM pg_catalog.pg_roles r WHERE r.rolname = 'gs_export_admin';
    IF admins IS NOT NULL AND pg_catalog.pg_has_role(me, admins, 'MEMBER') THEN
        RETURN true;
    END IF;
    RETURN COALESCE((SELECT a.app_admin FROM @extschema@.gs_export_app_user() a), false);
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_config_admin();
