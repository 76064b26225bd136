/*
 * Who is reading, for the jobs policy: whether the current user sees every
 * job (sees_all), else the owner of the jobs it may see (own_oid, with
 * own_role its name; NULL for none) and its auth.uid() under Supabase
 * (uid): gs_export_job_visible_to's rule, for the current user.
 * _gs_export_whoami is asked only where the extension is there and only
 * when the answer matters.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_viewer() CASCADE;
CREATE FUNCTION @extschema@.gs_export_viewer(OUT sees_all boolean, OUT own_role name, OUT uid uuid,
                                             OUT own_oid oid)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me oid;
    is_super boolean;
    app_admin boolean := false;
BEGIN
    -- by name: CURRENT_USER::regrole would read a name such as "Ana" as ana
    SELECT r.oid, r.rolsuper INTO me, is_super FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER;
    IF is_super OR pg_catalog.pg_has_role(me, 'gs_export_admin', 'MEMBER') THEN
        sees_all := true;
        RETURN;
    END IF;
    sees_all := false;
    IF NOT pg_catalog.pg_has_role(me, 'gs_export_user', 'MEMBER') THEN
        RETURN;
    END IF;
    IF pg_catalog.to_regprocedure('@extschema@._gs_export_whoami()') IS NOT NULL THEN
        SELECT w.uid, w.is_app_admin INTO uid, app_admin FROM @extschema@._gs_export_whoami() w;
    END IF;
    sees_all := COALESCE(app_admin, false);
    own_role := CURRENT_USER;
    own_oid := me;
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_viewer();
