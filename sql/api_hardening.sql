--
-- api_hardening: options and config values that 1.1 accepted and that then
-- silently corrupted what is sent, or failed every lead (issue 17, items 5
-- and 7): a synced-at or source column that the job's final mapping also
-- sends (the default mapping and id included), in a job's options and in
-- the config's default_options; a URL's port out of 1..65535; a filter on a
-- column the caller may not read.  Each is refused when written, 22023
-- naming the key (23514 for the config's URLs, 42501 for privileges).
--
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
SELECT gs_regress_reset();

-- A synced-at or source column that the mapping also sends: with the
-- default mapping (which sends name and updated_at), with fields (id is
-- always sent), with field_mappings (its remote names, and "id").
SELECT o, e.* FROM (VALUES
    ('{"synced_at_column": "name"}'),
    ('{"source_column": "updated_at", "source_value": "1999-01-01T00:00:00Z"}'),
    ('{"source_column": "id"}'),
    ('{"source_column": "id", "fields": ["name"]}'),
    ('{"synced_at_column": "id", "fields": ["name"]}'),
    ('{"synced_at_column": "id", "field_mappings": {"nome": "name"}}'),
    ('{"source_column": "nome", "field_mappings": {"nome": "name"}}'),
    ('{"synced_at_column": "marca", "source_column": "marca"}')) v(o),
    LATERAL expect_error(format('SELECT gs_export_create(%L, NULL, %L)', '2026-01-31', o)) e;

-- What does not collide is accepted: the columns are the remote's, not sent
-- otherwise (checked without committing a job).
SELECT o, e.* FROM (VALUES
    ('{"synced_at_column": "exported_at", "source_column": "origin"}'),
    ('{"fields": ["name"], "source_column": "updated_at"}'),
    ('{"field_mappings": {"nome": "name"}, "synced_at_column": "name"}'),
    ('{"synced_at_column": null, "source_column": null}')) v(o),
    LATERAL expect_error(format('SELECT gs_export_create(%L, NULL, %L)', '2026-01-31', o)) e;

-- gs_export_sync resolves options the same way.
SELECT * FROM expect_error($$SELECT gs_export_sync('{"source_column": "name"}')$$);

-- The config's default_options: checked with the default mapping when they
-- name none, with their own when they do.
SELECT d, e.* FROM (VALUES
    ('{"source_column": "name"}'),
    ('{"synced_at_column": "updated_at"}'),
    ('{"source_column": "id", "fields": ["name"]}'),
    ('{"source_column": "updated_at", "fields": ["name"]}'),
    ('{"source_column": "origin"}')) v(d),
    LATERAL expect_error(format('UPDATE gestao_scouter_config SET default_options = %L', d)) e;

-- A default_options accepted alone but colliding with a job's own mapping:
-- refused when the job is created (its final options are checked).
BEGIN;
UPDATE gestao_scouter_config SET default_options = '{"source_column": "nome"}';
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-31', NULL, '{"field_mappings": {"nome": "name"}}')$$);
ROLLBACK;

-- Ports: 1 to 65535, in project_url and alert_url.
SELECT u, e.* FROM (VALUES
    ('project_url', 'http://127.0.0.1:99999'),
    ('project_url', 'https://example.supabase.co:0'),
    ('project_url', 'http://[::1]:70000'),
    ('alert_url', 'https://hooks.example.com:99999/services/x'),
    ('alert_url', 'http://127.0.0.1:65536'),
    ('project_url', 'http://127.0.0.1:65535'),
    ('project_url', 'http://[::1]:8080/'),
    ('alert_url', 'https://hooks.example.com:443/a?b=1')) v(c, u),
    LATERAL expect_error(format('UPDATE gestao_scouter_config SET %I = %L', c, u)) e;

-- A filter on a column the caller may not read: 42501 at create, as for
-- the columns it sends.
CREATE ROLE regress_hardening_user;
GRANT gs_export_user TO regress_hardening_user;
GRANT SELECT (id, updated_at, name) ON leads TO regress_hardening_user;
SET ROLE regress_hardening_user;
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-31', NULL, '{"fields": ["name"], "filter": {"etapa": "Lead"}}')$$);
SELECT * FROM expect_error($$SELECT gs_export_create('2026-01-31', NULL, '{"fields": ["name"], "filter": {"name": "Ana"}}')$$);
RESET ROLE;
DROP OWNED BY regress_hardening_user;
DROP ROLE regress_hardening_user;
