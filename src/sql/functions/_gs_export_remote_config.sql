/*
 * Internal: what a request from the calling backend needs of the active
 * config (as the job's worker takes it, _gs_job_claim): project_url, the
 * key it sends (anon_key) and every key of the config, which the C side
 * keeps out of what it returns and logs (secret_keys).  55000 when there
 * is no usable config.  For gs_export_remote_columns and gs_export_check
 * (src/check.c) only: the keys never leave the C code.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_remote_config()
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg record;
BEGIN
    PERFORM @extschema@._gs_export_check_config();
    SELECT c.project_url, c.anon_key, c.service_role_key_encrypted INTO cfg
      FROM @extschema@.gestao_scouter_config c
     WHERE c.active AND c.sync_enabled
     ORDER BY c.updated_at DESC NULLS LAST
     LIMIT 1;
    IF cfg.project_url IS NULL OR cfg.anon_key IS NULL THEN
        RAISE EXCEPTION 'gestao_scouter_config has no project_url or no anon_key'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'An administrator must set project_url and anon_key in the active row of gestao_scouter_config.';
    END IF;
    IF cfg.anon_key ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'gestao_scouter_config.anon_key contains control characters'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'An administrator must correct anon_key in the active row of gestao_scouter_config.';
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'project_url', cfg.project_url,
        'api_key', cfg.anon_key,
        'secret_keys', pg_catalog.to_jsonb(pg_catalog.array_remove(
            ARRAY[cfg.anon_key, cfg.service_role_key_encrypted], NULL)));
END;
$$;
