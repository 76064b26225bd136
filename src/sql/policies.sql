/*
 * Row level security.  Jobs: their owner, admins, superusers (the rule of
 * gs_export_job_visible_to, asked through gs_export_viewer).  Errors, a
 * verify's diffs and the export's sync_events: those of the jobs one may
 * see.  The config: its
 * admins only.  The functions these policies call outlive the extension
 * (see functions/gs_export_viewer.sql), as the policies do on tables that
 * were TabuladorMax's own.
 */
ALTER TABLE @extschema@.gestao_scouter_export_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.gestao_scouter_export_errors ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.gestao_scouter_export_diffs ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS gs_export_jobs_visible ON @extschema@.gestao_scouter_export_jobs;
CREATE POLICY gs_export_jobs_visible ON @extschema@.gestao_scouter_export_jobs
    FOR SELECT TO PUBLIC
    USING ((SELECT v.sees_all FROM @extschema@.gs_export_viewer() v)
           OR (owner_oid = (SELECT v.own_oid FROM @extschema@.gs_export_viewer() v)
               AND (created_by IS NULL
                    OR created_by = (SELECT v.uid FROM @extschema@.gs_export_viewer() v))));

DROP POLICY IF EXISTS gs_export_errors_visible ON @extschema@.gestao_scouter_export_errors;
CREATE POLICY gs_export_errors_visible ON @extschema@.gestao_scouter_export_errors
    FOR SELECT TO PUBLIC
    USING (job_id IN (SELECT v.id FROM @extschema@.gs_export_visible_job_ids() AS v(id)));

DROP POLICY IF EXISTS gs_export_diffs_visible ON @extschema@.gestao_scouter_export_diffs;
CREATE POLICY gs_export_diffs_visible ON @extschema@.gestao_scouter_export_diffs
    FOR SELECT TO PUBLIC
    USING (job_id IN (SELECT v.id FROM @extschema@.gs_export_visible_job_ids() AS v(id)));

/*
 * sync_events: its own permissive policy when gs_export created the table
 * (with row level security turned on); on TabuladorMax's own table with
 * row level security, a restrictive one that hides the export's rows of
 * jobs one may not see and leaves the other rows to the app's policies
 * (kept too where an earlier version made one and row level security was
 * turned off since).
 */
DO $sync_events$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend
               WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 AND objid = '@extschema@.sync_events'::pg_catalog.regclass
                 AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                 AND deptype = 'e') THEN
        ALTER TABLE @extschema@.sync_events ENABLE ROW LEVEL SECURITY;
        DROP POLICY IF EXISTS gs_export_sync_events_visible ON @extschema@.sync_events;
        CREATE POLICY gs_export_sync_events_visible ON @extschema@.sync_events
            FOR SELECT TO PUBLIC
            USING (job_id IS NOT NULL
                   AND job_id IN (SELECT v.id FROM @extschema@.gs_export_visible_job_ids() AS v(id)));
    ELSIF (SELECT relrowsecurity FROM pg_catalog.pg_class
           WHERE oid = '@extschema@.sync_events'::pg_catalog.regclass)
          OR EXISTS (SELECT 1 FROM pg_catalog.pg_policy
                     WHERE polrelid = '@extschema@.sync_events'::pg_catalog.regclass
                       AND polname = 'gs_export_sync_events_visible') THEN
        DROP POLICY IF EXISTS gs_export_sync_events_visible ON @extschema@.sync_events;
        CREATE POLICY gs_export_sync_events_visible ON @extschema@.sync_events
            AS RESTRICTIVE FOR SELECT TO PUBLIC
            USING (job_id IS NULL
                   OR job_id IN (SELECT v.id FROM @extschema@.gs_export_visible_job_ids() AS v(id)));
    END IF;
END
$sync_events$;

/*
 * The config holds keys: its rows are for superusers, gs_export_admin
 * members and, through a role granted config access, app admins.  A
 * permissive policy lets them in where gs_export made the table; a
 * restrictive one keeps everyone else out where TabuladorMax's own table
 * has broader policies of its own (the original had "public CRUD" in one
 * migration).  Others with a grant see no row, insert none (42501), and
 * update or delete none.  The table's owner (and so the workers, which
 * run as the extension's owner, a superuser) is not subject to them.
 */
ALTER TABLE @extschema@.gestao_scouter_config ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS gs_export_config_admins ON @extschema@.gestao_scouter_config;
DROP POLICY IF EXISTS gs_export_config_admins_only ON @extschema@.gestao_scouter_config;
CREATE POLICY gs_export_config_admins ON @extschema@.gestao_scouter_config
    FOR ALL TO PUBLIC
    USING ((SELECT @extschema@.gs_export_config_admin()))
    WITH CHECK ((SELECT @extschema@.gs_export_config_admin()));
CREATE POLICY gs_export_config_admins_only ON @extschema@.gestao_scouter_config
    AS RESTRICTIVE FOR ALL TO PUBLIC
    USING ((SELECT @extschema@.gs_export_config_admin()))
    WITH CHECK ((SELECT @extschema@.gs_export_config_admin()));
