/*
 * Who is asking, for the API functions: as 1.0's, with the app's admins
 * and managers both as is_app_admin (they see and steer every job).  Asked
 * as the caller, never as the extension's owner (see gs_export--1.0.sql).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_whoami(OUT uid uuid, OUT is_app_admin boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT a.uid, a.app_admin OR a.app_manager INTO uid, is_app_admin
      FROM @extschema@.gs_export_app_user() a;
END;
$$;
