/*
 * Who is asking, for the API functions: the auth.uid() user under Supabase,
 * and whether the app calls them an admin or a manager (is_app_admin: they
 * see and steer every job), from gs_export_app_user.  Asked as the caller,
 * never as the extension's owner, so that nothing the caller's database
 * defines runs with more privileges than the caller has.  It tells callers
 * only about themselves: anyone may call it.
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
