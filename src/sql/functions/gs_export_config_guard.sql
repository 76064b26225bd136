/*
 * The config row: a clean error for a bad project_url or key, raised before
 * any constraint would quote the whole row (and with it the key) in its
 * DETAIL.  project_url: http or https, a host, an optional port, nothing
 * more.  Keys: no control characters (they would end up in HTTP headers).
 */
DROP FUNCTION IF EXISTS @extschema@.gs_export_config_guard() CASCADE;
CREATE FUNCTION @extschema@.gs_export_config_guard()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.project_url IS NULL THEN
        RAISE EXCEPTION 'project_url must not be null'
            USING ERRCODE = 'not_null_violation';
    END IF;
    IF NEW.project_url !~ '^https?://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?$' THEN
        RAISE EXCEPTION 'project_url must be an http or https URL with a host and nothing after it'
            USING ERRCODE = 'check_violation',
                  HINT = 'For example https://xxxx.supabase.co (gs_export adds /rest/v1/fichas).';
    END IF;
    IF NEW.anon_key IS NULL THEN
        RAISE EXCEPTION 'anon_key must not be null'
            USING ERRCODE = 'not_null_violation';
    END IF;
    IF NEW.anon_key ~ '[[:cntrl:]]' OR NEW.service_role_key_encrypted ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'keys must not contain control characters'
            USING ERRCODE = 'check_violation';
    END IF;
    /*
     * alert_url: project_url's rules, but a webhook's address has a path
     * and may have a query (src/remote.c, gs_remote_check_alert_url, allows
     * the same characters).
     */
    IF NEW.alert_url IS NOT NULL AND NEW.alert_url !~ '^https?://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&''()*+,;=:@%/?-]*)?$' THEN
        RAISE EXCEPTION 'alert_url must be an http or https URL with a host'
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A port, a path and a query may follow the host; a user name, a password, a fragment, spaces and control characters may not.',
                  HINT = 'For example a Slack incoming webhook, https://hooks.slack.com/services/...';
    END IF;
    IF NEW.target_table IS NOT NULL AND NEW.target_table !~ '^[A-Za-z_][A-Za-z0-9_$]{0,62}$' THEN
        RAISE EXCEPTION 'target_table must be a plain table name'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A name of letters, digits and underscores, such as "fichas" or "leads".';
    END IF;
    IF pg_catalog.to_regprocedure('@extschema@._gs_export_check_options(jsonb, text)') IS NOT NULL THEN
        PERFORM @extschema@._gs_export_check_options(NEW.default_options, 'default_options');
    END IF;
    RETURN NEW;
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_config_guard();

DROP TRIGGER IF EXISTS gs_export_config_guard ON @extschema@.gestao_scouter_config;
CREATE TRIGGER gs_export_config_guard
    BEFORE INSERT OR UPDATE ON @extschema@.gestao_scouter_config
    FOR EACH ROW EXECUTE FUNCTION @extschema@.gs_export_config_guard();
