--
-- api_check: gs_export_check and gs_export_remote_columns (doc/contract.md,
-- "Knowing the remote before sending"; src/check.c) without a remote: the
-- option errors as rows (one per bad option, then those of the options
-- together), lead columns the caller may not read, no config, the remote
-- that does not answer (the config's project_url is 127.0.0.1 port 9,
-- which refuses at once: this instance reaches nothing outside), who may
-- call.  The remote's own rows are test/t/112_check.pl's.
--
\set SHOW_CONTEXT never
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers_sql :abs_srcdir '/test/regress_setup/helpers.sql'
\i :helpers_sql
SELECT gs_regress_reset();

-- good options: only the remote's row (it refuses the connection)
SELECT severity, key, regexp_replace(message, ': Failed to connect.*', ': ...') AS message
  FROM gs_export_check();
SELECT severity, key, regexp_replace(message, ': Failed to connect.*', ': ...') AS message
  FROM gs_export_check('{"fields": ["name", "age"], "batch_size": 10}');

-- one row per bad option, each with the option's name as key
SELECT severity, key, message
  FROM gs_export_check('{"batch_size": 0, "pace": "fast", "fields": ["name", "nope"],
                         "colour": "blue", "time_zone": "Mars/Olympus",
                         "synced_at_column": "not a name"}');
-- options wrong only together: as gs_export_create resolves them
SELECT severity, key, message
  FROM gs_export_check('{"fields": ["name"], "field_mappings": {"nome": "name"}}');
SELECT severity, key, message
  FROM gs_export_check('{"batch_size": 500, "batch_size_max": 100}');
SELECT severity, key, message
  FROM gs_export_check('{"fields": ["name", "updated_at"], "synced_at_column": "updated_at"}');
SELECT severity, key, message FROM gs_export_check(NULL);
SELECT severity, key, message FROM gs_export_check('[1]');
-- the same options make gs_export_create raise (and nothing is created)
SELECT * FROM expect_error($$SELECT gs_export_create(options => '{"batch_size": 0}')$$);
SELECT count(*) AS jobs FROM gestao_scouter_export_jobs WHERE status IN ('pending', 'running', 'paused');

-- no usable config: a row, and no request
UPDATE gestao_scouter_config SET sync_enabled = false;
SELECT severity, key, message FROM gs_export_check('{"fields": ["name"]}');
SELECT * FROM expect_error($$SELECT * FROM gs_export_remote_columns()$$);
SELECT gs_regress_reset();

-- gs_export_remote_columns: the remote that does not answer is 08001;
-- a name that is no plain table name is 22023
SELECT state, regexp_replace(message, ': Failed to connect.*', ': ...') AS message
  FROM expect_error($$SELECT * FROM gs_export_remote_columns()$$);
SELECT state, regexp_replace(message, ': Failed to connect.*', ': ...') AS message
  FROM expect_error($$SELECT * FROM gs_export_remote_columns('fichas')$$);
SELECT * FROM expect_error($$SELECT * FROM gs_export_remote_columns('fichas; drop')$$);
-- the key is in no message
SELECT count(*) AS rows_with_key
  FROM gs_export_check('{"fields": ["name"]}') c
 WHERE c.message LIKE '%regress-anon-key%';

--
-- Callers: a gs_export user gets rows about the lead columns it may not
-- read (one per column, with the option that names it); a role that is no
-- gs_export user gets 42501, as from every API function.
--
CREATE ROLE regress_gs_check_user;
CREATE ROLE regress_gs_check_cols;
CREATE ROLE regress_gs_check_nobody;
GRANT gs_export_user TO regress_gs_check_user, regress_gs_check_cols;
GRANT SELECT ON leads TO regress_gs_check_user, regress_gs_check_nobody;
GRANT SELECT (id, updated_at, name) ON leads TO regress_gs_check_cols;

SET ROLE regress_gs_check_user;
SELECT severity, key, regexp_replace(message, ': Failed to connect.*', ': ...') AS message
  FROM gs_export_check('{"fields": ["name", "age"]}');
RESET ROLE;

SET ROLE regress_gs_check_cols;
SELECT severity, key, regexp_replace(message, ': Failed to connect.*', ': ...') AS message
  FROM gs_export_check('{"fields": ["name", "age", "scouter"], "filter": {"etapa": "novo"}}');
SELECT severity, key, regexp_replace(message, ': Failed to connect.*', ': ...') AS message
  FROM gs_export_check('{"field_mappings": {"nome": "name", "idade": "age"}}');
-- what gs_export_create says of the same options
SELECT * FROM expect_error($$SELECT gs_export_create(options => '{"fields": ["name", "age", "scouter"]}')$$);
RESET ROLE;

SET ROLE regress_gs_check_nobody;
SELECT * FROM expect_error($$SELECT * FROM gs_export_check()$$);
SELECT * FROM expect_error($$SELECT * FROM gs_export_remote_columns()$$);
RESET ROLE;

-- EXECUTE as documented: gs_export_user and gs_export_admin, not PUBLIC
SELECT p.proname, has_function_privilege('gs_export_user', p.oid, 'EXECUTE') AS users,
       has_function_privilege('gs_export_admin', p.oid, 'EXECUTE') AS admins,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public
  FROM pg_proc p
 WHERE p.proname IN ('gs_export_check', 'gs_export_remote_columns', '_gs_export_check',
                     '_gs_export_remote_target', '_gs_export_remote_config')
 ORDER BY 1;

DROP OWNED BY regress_gs_check_user, regress_gs_check_cols, regress_gs_check_nobody;
DROP ROLE regress_gs_check_user, regress_gs_check_cols, regress_gs_check_nobody;
