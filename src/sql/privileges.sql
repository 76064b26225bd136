/*
 * Privileges: the one place where gs_export's objects get theirs, last in
 * every script (a fresh install and each upgrade), so that nothing granted
 * by default survives: PUBLIC's EXECUTE on a new function, and Supabase's
 * default privileges (ALL on new tables and functions of public to anon,
 * authenticated and service_role).
 *
 * 1. Closed -- every privilege revoked from every role but the owner:
 *    - the internal functions (members named _*, the state machine's and
 *      the API's helpers) and gs_export_grant_access;
 *    - the functions that outlive the extension (the policies' and the
 *      triggers'; not members, so found by name);
 *    - the internal table gs_export_sync_marks;
 *    - an API function or a table that gs_export_user and gs_export_admin
 *      hold nothing on yet: a new one, or on a first install a table that
 *      was TabuladorMax's own.  Those already granted keep their
 *      privileges, including what gs_export_grant_access gave since.
 * 2. Granted as documented.
 * 3. On an upgrade, the roles that gs_export_grant_access served (holding
 *    EXECUTE on gs_export_create themselves, such as Supabase's
 *    authenticated, which inherits nothing from gs_export_user) get every
 *    API function gs_export_user has, and SELECT on a verify's diffs when
 *    they may read the errors: what they could do, they still can.
 *    Never anon, which gs_export_grant_access refuses.  A fresh install
 *    has none.
 */
DO $privileges$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'gs_export');
    gs_roles oid[] := ARRAY(SELECT r.oid FROM pg_catalog.pg_roles r
                             WHERE r.rolname IN ('gs_export_user', 'gs_export_admin'));
    outliving text[] := ARRAY['gs_export_job_visible_to',
                              'gs_export_job_id_visible', 'gs_export_config_guard',
                              'gs_export_viewer', 'gs_export_visible_job_ids',
                              'gs_export_app_user', 'gs_export_config_admin',
                              'gs_export_job_notify'];
    r record;
BEGIN
    FOR r IN
        WITH members AS (
            SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
             WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
               AND d.refobjid = ext AND d.deptype = 'e'
        ), closing AS (
            SELECT 'FUNCTION ' || p.oid::pg_catalog.regprocedure::text AS object,
                   COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner)) AS acl, p.proowner AS owner
              FROM pg_catalog.pg_proc p
             WHERE (p.oid IN (SELECT m.objid FROM members m
                              WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass)
                    AND (p.proname LIKE '\_%'
                         OR p.proname = 'gs_export_grant_access'
                         OR NOT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(p.proacl) a
                                        WHERE a.grantee = ANY (gs_roles))))
                OR (p.pronamespace = '@extschema@'::pg_catalog.regnamespace
                    AND p.proname = ANY (outliving))
            UNION ALL
            SELECT 'TABLE ' || c.oid::pg_catalog.regclass::text,
                   COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner)), c.relowner
              FROM pg_catalog.pg_class c
             WHERE (c.oid = '@extschema@.gs_export_sync_marks'::pg_catalog.regclass
                    OR ((c.oid IN ('@extschema@.gestao_scouter_export_jobs'::pg_catalog.regclass,
                                   '@extschema@.gestao_scouter_export_errors'::pg_catalog.regclass,
                                   '@extschema@.gestao_scouter_export_diffs'::pg_catalog.regclass,
                                   '@extschema@.gestao_scouter_config'::pg_catalog.regclass)
                         OR c.oid IN (SELECT m.objid FROM members m
                                      WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass))
                        AND NOT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(c.relacl) a
                                        WHERE a.grantee = ANY (gs_roles))))
        )
        SELECT DISTINCT c.object,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END AS grantee
          FROM closing c, pg_catalog.aclexplode(c.acl) a
         WHERE a.grantee <> c.owner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', r.object, r.grantee);
    END LOOP;
END
$privileges$;

GRANT USAGE ON SCHEMA @extschema@ TO gs_export_user, gs_export_admin;
GRANT SELECT ON @extschema@.gestao_scouter_export_jobs TO gs_export_user, gs_export_admin;
GRANT SELECT ON @extschema@.gestao_scouter_export_errors TO gs_export_user, gs_export_admin;
GRANT SELECT ON @extschema@.gestao_scouter_export_diffs TO gs_export_user, gs_export_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.gestao_scouter_config TO gs_export_admin;
DO $sync_events_privileges$
BEGIN
    -- TabuladorMax's own sync_events is left to its owner
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend
               WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 AND objid = '@extschema@.sync_events'::pg_catalog.regclass
                 AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                 AND deptype = 'e') THEN
        GRANT SELECT ON @extschema@.sync_events TO gs_export_user, gs_export_admin;
    END IF;
END
$sync_events_privileges$;

-- the API
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_create(date, date, jsonb) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_pause(uuid, text) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_resume(uuid) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_reset(uuid) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_delete(uuid) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_status(uuid) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_sync(jsonb) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_follow(jsonb) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_remote_columns(text) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_check(jsonb) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_retry_errors(uuid) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_repair(uuid) TO gs_export_user, gs_export_admin;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_verify(jsonb) TO gs_export_user, gs_export_admin;

-- called as any role, by the API functions and by row level security; each
-- tells a caller only about itself or about what it may see
GRANT EXECUTE ON FUNCTION @extschema@._gs_export_whoami() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_job_visible_to(oid, uuid, boolean, oid, uuid) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_job_id_visible(uuid) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_viewer() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_visible_job_ids() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_app_user() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.gs_export_config_admin() TO PUBLIC;

DO $grant_access_upgrade$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT f.oid::pg_catalog.regprocedure::text AS fn, g.grantee::pg_catalog.regrole::text AS grantee
          FROM pg_catalog.pg_proc c, pg_catalog.aclexplode(c.proacl) g,
               pg_catalog.pg_proc f, pg_catalog.aclexplode(f.proacl) u
         WHERE c.oid = '@extschema@.gs_export_create(date, date, jsonb)'::pg_catalog.regprocedure
           AND g.privilege_type = 'EXECUTE'
           AND g.grantee <> 0
           AND g.grantee <> c.proowner
           AND g.grantee NOT IN (SELECT ro.oid FROM pg_catalog.pg_roles ro
                                  WHERE ro.rolname IN ('gs_export_user', 'gs_export_admin', 'anon'))
           AND f.pronamespace = c.pronamespace
           AND f.proname NOT LIKE '\_%'
           AND u.privilege_type = 'EXECUTE'
           AND u.grantee = 'gs_export_user'::pg_catalog.regrole
           AND NOT pg_catalog.has_function_privilege(g.grantee, f.oid, 'EXECUTE')
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', r.fn, r.grantee);
    END LOOP;
    -- and what they could read: a verify's diffs (1.2) as the errors
    FOR r IN
        SELECT DISTINCT g.grantee::pg_catalog.regrole::text AS grantee
          FROM pg_catalog.pg_proc c, pg_catalog.aclexplode(c.proacl) g
         WHERE c.oid = '@extschema@.gs_export_create(date, date, jsonb)'::pg_catalog.regprocedure
           AND g.privilege_type = 'EXECUTE'
           AND g.grantee <> 0
           AND g.grantee <> c.proowner
           AND g.grantee NOT IN (SELECT ro.oid FROM pg_catalog.pg_roles ro
                                  WHERE ro.rolname IN ('gs_export_user', 'gs_export_admin', 'anon'))
           AND pg_catalog.has_table_privilege(g.grantee, '@extschema@.gestao_scouter_export_errors', 'SELECT')
           AND NOT pg_catalog.has_table_privilege(g.grantee, '@extschema@.gestao_scouter_export_diffs', 'SELECT')
    LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON @extschema@.gestao_scouter_export_diffs TO %s', r.grantee);
    END LOOP;
END
$grant_access_upgrade$;
