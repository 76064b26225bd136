/*
 * May this role (and, under Supabase, this auth.uid() user, who is an app
 * admin or not) see and steer a job of this owner (a role's oid: 1.2; 1.0
 * and 1.1 passed its name, and with it the jobs of a dropped role to any
 * later role of that name)?  Superusers, members of
 * gs_export_admin and app admins (has_role) see every job; a member of
 * gs_export_user sees the jobs its role created and, when a job was created
 * by a Supabase user, only if it is that user too.  The one rule, for the
 * API functions and for row level security.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_job_visible_to(oid, uuid, boolean, name, uuid) CASCADE;
DROP FUNCTION IF EXISTS @extschema@.gs_export_job_visible_to(oid, uuid, boolean, oid, uuid) CASCADE;
-- 1.0's row level security helper, by name, unused since 1.1: gone
DROP FUNCTION IF EXISTS @extschema@.gs_export_job_visible(name, uuid) CASCADE;
CREATE FUNCTION @extschema@.gs_export_job_visible_to(p_role oid, p_uid uuid, p_app_admin boolean,
                                                    p_owner oid, p_created_by uuid)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE oid = p_role AND rolsuper)
       OR pg_catalog.pg_has_role(p_role, 'gs_export_admin', 'MEMBER') THEN
        RETURN true;
    END IF;
    IF NOT pg_catalog.pg_has_role(p_role, 'gs_export_user', 'MEMBER') THEN
        RETURN false;
    END IF;
    IF p_app_admin THEN
        RETURN true;
    END IF;
    RETURN COALESCE(p_owner = p_role AND (p_created_by IS NULL OR p_created_by = p_uid), false);
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_job_visible_to(oid, uuid, boolean, oid, uuid);
