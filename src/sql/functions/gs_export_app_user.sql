/*
 * Admins and managers of the app (1.1).  1.0 asked only a
 * public.has_role(uuid, text), and only for 'admin'; TabuladorMax's is
 * has_role(_user_id uuid, _role public.app_role) with an enum, so its
 * admins were nobody's admins here.  gs_export_app_user() asks every
 * public.has_role(uuid, X) whose X is text or an enum (the label cast to X,
 * X's name from the catalog, never from the caller) for 'admin' and for
 * 'manager' (where the enum has the label), as the caller, and only where
 * the caller may use auth.uid(), has_role, its schema and its type: one it
 * may not execute is passed over, not an error.  Two overloads: either's
 * yes counts.
 *
 * It outlives the extension, like gs_export_viewer: the config's policies
 * (policies.sql) call it, and gestao_scouter_config may be TabuladorMax's own table,
 * which DROP EXTENSION leaves.  _gs_export_whoami answers
 * from it, so the API functions (p_app_admin), gs_export_viewer and 1.0's
 * gs_export_job_visible see an app admin or manager as one who sees and
 * steers every job -- still only through a role that is a gs_export user.
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_app_user() CASCADE;
CREATE FUNCTION @extschema@.gs_export_app_user(OUT uid uuid, OUT app_admin boolean, OUT app_manager boolean)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure;
    c record;
    label text;
    yes boolean;
BEGIN
    app_admin := false;
    app_manager := false;
    -- looking a function up in a schema one may not use is an error
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'auth')
       OR NOT pg_catalog.has_schema_privilege('auth', 'USAGE') THEN
        RETURN;
    END IF;
    f := pg_catalog.to_regprocedure('auth.uid()');
    IF f IS NULL OR NOT pg_catalog.has_function_privilege(f, 'EXECUTE') THEN
        RETURN;
    END IF;
    EXECUTE 'SELECT auth.uid()' INTO uid;
    IF uid IS NULL
       OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'public')
       OR NOT pg_catalog.has_schema_privilege('public', 'USAGE') THEN
        RETURN;
    END IF;
    FOR c IN
        SELECT p.oid::pg_catalog.regprocedure AS fn, t.oid::pg_catalog.regtype AS role_type,
               t.typtype, t.typnamespace
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
          JOIN pg_catalog.pg_type t ON t.oid = p.proargtypes[1]
         WHERE n.nspname = 'public' AND p.proname = 'has_role'
           AND p.prokind = 'f' AND p.pronargs = 2 AND NOT p.proretset
           AND p.prorettype = 'pg_catalog.bool'::pg_catalog.regtype
           AND p.proargtypes[0] = 'pg_catalog.uuid'::pg_catalog.regtype
           AND (t.oid = 'pg_catalog.text'::pg_catalog.regtype OR t.typtype = 'e')
         ORDER BY p.oid
    LOOP
        CONTINUE WHEN NOT pg_catalog.has_function_privilege(c.fn, 'EXECUTE');
        CONTINUE WHEN c.typtype = 'e'
                      AND NOT (pg_catalog.has_schema_privilege(c.typnamespace, 'USAGE')
                               AND pg_catalog.has_type_privilege(c.role_type, 'USAGE'));
        FOREACH label IN ARRAY ARRAY['admin', 'manager'] LOOP
            CONTINUE WHEN c.typtype = 'e'
                          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_enum e
                                          WHERE e.enumtypid = c.role_type AND e.enumlabel = label);
            -- the type's name as the catalog prints it (qualified, quoted);
            -- the user and the label travel as parameters
            EXECUTE pg_catalog.format('SELECT public.has_role($1, $2::%s)', c.role_type)
               INTO yes USING uid, label;
            IF yes THEN
                IF label = 'admin' THEN
                    app_admin := true;
                ELSE
                    app_manager := true;
                END IF;
            END IF;
        END LOOP;
    END LOOP;
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_app_user();
