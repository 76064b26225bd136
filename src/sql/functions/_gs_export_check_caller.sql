/*
 * Internal: the caller must be a gs_export user at all.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check_caller(p_caller oid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE oid = p_caller AND rolsuper)
            OR pg_catalog.pg_has_role(p_caller, 'gs_export_user', 'MEMBER')
            OR pg_catalog.pg_has_role(p_caller, 'gs_export_admin', 'MEMBER')) THEN
        RAISE EXCEPTION 'permission denied to use gs_export'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('Role %I is not a member of gs_export_user or gs_export_admin.',
                                             (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = p_caller)),
                  HINT = 'Ask an administrator to GRANT gs_export_user TO your role.';
    END IF;
END;
$$;
