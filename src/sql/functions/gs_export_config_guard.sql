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
DECLARE
    url text;
    port text;
    opts jsonb;
    default_fields text[];
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
    -- a port is 1 to 65535 (the patterns above let five digits through)
    FOREACH url IN ARRAY ARRAY['project_url', 'alert_url'] LOOP
        port := pg_catalog.substring(CASE url WHEN 'project_url' THEN NEW.project_url ELSE NEW.alert_url END,
                                     '^https?://(?:\[[^]]*\]|[^/:?#]*):([0-9]+)');
        IF port IS NOT NULL AND (port::integer < 1 OR port::integer > 65535) THEN
            RAISE EXCEPTION '% has port %, which does not exist', url, port
                USING ERRCODE = 'check_violation',
                      HINT = 'A port goes from 1 to 65535; without one, http uses 80 and https 443.';
        END IF;
    END LOOP;
    /*
     * default_options are options: checked as a job's are, and with the
     * mapping a job would send when they name none (the default one), so
     * that a synced-at or source column that the mapping also sends is
     * refused here rather than by every job.
     */
    IF pg_catalog.to_regprocedure('@extschema@._gs_export_check_options(jsonb, text)') IS NOT NULL THEN
        opts := NEW.default_options;
        IF pg_catalog.jsonb_typeof(opts) = 'object'
           AND NOT (opts ? 'fields' OR opts ? 'field_mappings')
           AND pg_catalog.to_regprocedure('@extschema@._gs_export_default_fields()') IS NOT NULL THEN
            default_fields := @extschema@._gs_export_default_fields();
            IF default_fields IS NOT NULL THEN
                opts := opts || pg_catalog.jsonb_build_object('fields', pg_catalog.to_jsonb(default_fields));
            END IF;
        END IF;
        PERFORM @extschema@._gs_export_check_options(opts, 'default_options');
    END IF;
    RETURN NEW;
END;
$$;
ALTER EXTENSION gs_export DROP FUNCTION @extschema@.gs_export_config_guard();

DROP TRIGGER IF EXISTS gs_export_config_guard ON @extschema@.gestao_scouter_config;
CREATE TRIGGER gs_export_config_guard
    BEFORE INSERT OR UPDATE ON @extschema@.gestao_scouter_config
    FOR EACH ROW EXECUTE FUNCTION @extschema@.gs_export_config_guard();
