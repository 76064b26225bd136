/*
 * The same for the current user, as row level security asks it.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_job_visible(name, uuid) CASCADE;
CREATE FUNCTION @extschema@.gs_export_job_visible(p_owner_role name, p_created_by uuid)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid uuid;
    app_admin boolean := false;
BEGIN
    IF pg_catalog.to_regprocedure('@extschema@._gs_export_whoami()') IS NOT NULL THEN
        SELECT w.uid, w.is_app_admin INTO uid, app_admin FROM @extschema@._gs_export_whoami() w;
    END IF;
    RETURN @extschema@.gs_export_job_visible_to(CURRENT_USER::regrole::oid, uid, app_admin,
                                                p_owner_role, p_created_by);
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_job_visible(name, uuid);
