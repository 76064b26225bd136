/*
 * Internal: 55000 unless a gestao_scouter_config row is active and has
 * sync_enabled.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check_config()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM @extschema@.gestao_scouter_config
                   WHERE active AND sync_enabled) THEN
        RAISE EXCEPTION 'gestao-scouter is not configured'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'No row of gestao_scouter_config has active and sync_enabled both true.',
                  HINT = 'An administrator must insert the remote''s project_url and anon_key into gestao_scouter_config with active = true and sync_enabled = true.';
    END IF;
END;
$$;
