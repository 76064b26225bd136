/*
 * Roles.  Cluster-wide, so created only when missing and never dropped.
 * gs_export_user may create jobs and steer its own; gs_export_admin every
 * job, and the config.
 */
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'gs_export_user') THEN
        CREATE ROLE gs_export_user NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'gs_export_admin') THEN
        CREATE ROLE gs_export_admin NOLOGIN;
    END IF;
END
$roles$;
