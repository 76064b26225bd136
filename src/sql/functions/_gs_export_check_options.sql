/*
 * Check an options object (a job's, or the config's default_options): every
 * key known, every value of the right type and range.  22023 naming the bad
 * key, 22004 for a NULL object.  p_what says whose options they are.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_check_options(p_options jsonb, p_what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    v jsonb;
    n numeric;
    lo integer;
    hi integer;
    e jsonb;
    ident constant text := '^[A-Za-z_][A-Za-z0-9_$]{0,62}$';
    lead_columns text[] := (SELECT pg_catalog.array_agg(a.attname::text)
                              FROM pg_catalog.pg_attribute a
                             WHERE a.attrelid = pg_catalog.to_regclass('@extschema@.leads')
                               AND a.attnum > 0 AND NOT a.attisdropped);
    remote_names text[] := '{}';
    instant timestamptz;
    look_back interval;
BEGIN
    IF p_options IS NULL THEN
        RAISE EXCEPTION '% must not be null', p_what
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass ''{}'' for the defaults.';
    END IF;
    IF pg_catalog.jsonb_typeof(p_options) <> 'object' THEN
        RAISE EXCEPTION '% must be a JSON object', p_what
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: ''{"batch_size": 500, "delay_ms": 0, "time_zone": "America/Sao_Paulo"}''.';
    END IF;
    IF p_options ? 'fields' AND p_options ? 'field_mappings' THEN
        RAISE EXCEPTION 'options "fields" and "field_mappings" cannot be given together'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '"fields" sends lead columns under their own names; "field_mappings" names each remote column and its lead column. Use one.';
    END IF;

    FOR k, v IN SELECT * FROM pg_catalog.jsonb_each(p_options) LOOP
        IF k IN ('batch_size', 'delay_ms', 'max_in_flight', 'batch_size_max') THEN
            IF pg_catalog.jsonb_typeof(v) <> 'number' THEN
                RAISE EXCEPTION 'option "%" must be a whole number', k
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            n := v::text::numeric;
            -- the limits are the C code's (src/gs_limits.h), asked by name
            lo := @extschema@._gs_export_limit(k || '.min');
            hi := @extschema@._gs_export_limit(k || '.max');
            IF n <> pg_catalog.trunc(n) OR n < lo OR n > hi THEN
                RAISE EXCEPTION 'option "%" is out of range: %', k, v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = pg_catalog.format('%s goes from %s to %s.', k, lo, hi);
            END IF;
        ELSIF k = 'pace' THEN
            IF v IS DISTINCT FROM '"fixed"' AND v IS DISTINCT FROM '"adaptive"' THEN
                RAISE EXCEPTION 'option "pace" must be "fixed" or "adaptive": %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = '"fixed" sends batches of batch_size, max_in_flight at a time; "adaptive" finds the pace the remote sustains, up to batch_size_max and max_in_flight.';
            END IF;
        ELSIF k = 'time_zone' THEN
            IF pg_catalog.jsonb_typeof(v) <> 'string'
               OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names
                              WHERE name = (v #>> '{}')) THEN
                RAISE EXCEPTION 'option "time_zone" is not a known time zone: %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Use an IANA name from pg_timezone_names, such as "America/Sao_Paulo" or "UTC".';
            END IF;
        ELSIF k = 'filter' THEN
            PERFORM @extschema@._gs_export_check_filter(v);
        ELSIF k = 'target_table' THEN
            IF pg_catalog.jsonb_typeof(v) <> 'string' OR (v #>> '{}') !~ ident THEN
                RAISE EXCEPTION 'option "target_table" must be a plain table name: %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'A name of letters, digits and underscores, such as "fichas" or "leads".';
            END IF;
        ELSIF k = 'fields' THEN
            IF pg_catalog.jsonb_typeof(v) <> 'array' OR pg_catalog.jsonb_array_length(v) = 0 THEN
                RAISE EXCEPTION 'option "fields" must be a non-empty array of column names of leads'
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'For example: ''{"fields": ["name", "etapa", "updated_at"]}'' (id is always sent).';
            END IF;
            FOR e IN SELECT * FROM pg_catalog.jsonb_array_elements(v) LOOP
                IF pg_catalog.jsonb_typeof(e) <> 'string' OR NOT ((e #>> '{}') = ANY (lead_columns)) THEN
                    RAISE EXCEPTION 'option "fields": % is not a column of leads', e
                        USING ERRCODE = 'invalid_parameter_value',
                              HINT = 'Name columns of the table leads.';
                END IF;
                IF (e #>> '{}') = ANY (remote_names) THEN
                    RAISE EXCEPTION 'option "fields": % is given twice', e
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
                remote_names := remote_names || (e #>> '{}');
            END LOOP;
        ELSIF k = 'field_mappings' THEN
            IF pg_catalog.jsonb_typeof(v) <> 'object' OR v = '{}' THEN
                RAISE EXCEPTION 'option "field_mappings" must be a non-empty object of remote column: lead column'
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'For example: ''{"field_mappings": {"nome": "name", "idade": "age"}}'' ("id" is added).';
            END IF;
            FOR k, e IN SELECT * FROM pg_catalog.jsonb_each(v) LOOP
                IF k !~ ident THEN
                    RAISE EXCEPTION 'option "field_mappings": remote column "%" is not a plain column name', k
                        USING ERRCODE = 'invalid_parameter_value',
                              HINT = 'Remote column names are letters, digits and underscores.';
                END IF;
                IF pg_catalog.jsonb_typeof(e) <> 'string' OR NOT ((e #>> '{}') = ANY (lead_columns)) THEN
                    RAISE EXCEPTION 'option "field_mappings": % (for remote column "%") is not a column of leads', e, k
                        USING ERRCODE = 'invalid_parameter_value',
                              HINT = 'Each value names a column of the table leads.';
                END IF;
                remote_names := remote_names || k;
            END LOOP;
            k := 'field_mappings';
        ELSIF k IN ('synced_at_column', 'source_column') THEN
            IF pg_catalog.jsonb_typeof(v) <> 'null'
               AND (pg_catalog.jsonb_typeof(v) <> 'string' OR (v #>> '{}') !~ ident) THEN
                RAISE EXCEPTION 'option "%" must be a plain column name or null: %', k, v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'null leaves the column out.';
            END IF;
        ELSIF k = 'source_value' THEN
            IF pg_catalog.jsonb_typeof(v) <> 'string' THEN
                RAISE EXCEPTION 'option "source_value" must be a string: %', v
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        ELSIF k = 'changed_since' THEN
            -- a fixed, finite instant: not 'now' or 'today', which would
            -- mean another instant each time the value is read
            instant := NULL;
            IF pg_catalog.jsonb_typeof(v) = 'string'
               AND (v #>> '{}') !~* '(now|today|tomorrow|yesterday)' THEN
                BEGIN
                    instant := (v #>> '{}')::timestamptz;
                EXCEPTION WHEN data_exception THEN
                    instant := NULL;
                END;
            END IF;
            IF instant IS NULL OR NOT pg_catalog.isfinite(instant) THEN
                RAISE EXCEPTION 'option "changed_since" must be a finite timestamp with time zone: %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'A string such as "2025-10-17T00:00:00-03:00"; leads with updated_at at or after that instant are exported.';
            END IF;
        ELSIF k = 'look_back' THEN
            -- gs_export_sync's look-back: an interval from 0 to 7 days
            look_back := NULL;
            IF pg_catalog.jsonb_typeof(v) = 'string' THEN
                BEGIN
                    look_back := (v #>> '{}')::interval;
                EXCEPTION WHEN data_exception THEN
                    look_back := NULL;
                END;
            END IF;
            IF look_back IS NULL OR look_back < interval '0' OR look_back > interval '7 days' THEN
                RAISE EXCEPTION 'option "look_back" must be an interval from 0 to 7 days: %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'A string such as "5 minutes": gs_export_sync also sends the leads changed that long before its mark, for clocks that write updated_at late.';
            END IF;
        ELSE
            RAISE EXCEPTION 'unknown option "%"', k
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Known options are batch_size, delay_ms, max_in_flight, pace, batch_size_max, time_zone, target_table, fields, field_mappings, synced_at_column, source_column, source_value, filter, changed_since and look_back.';
        END IF;
    END LOOP;

    IF pg_catalog.jsonb_typeof(p_options -> 'batch_size') = 'number'
       AND pg_catalog.jsonb_typeof(p_options -> 'batch_size_max') = 'number'
       AND (p_options ->> 'batch_size_max')::numeric < (p_options ->> 'batch_size')::numeric THEN
        RAISE EXCEPTION 'option "batch_size_max" (%) is less than "batch_size" (%)',
                        p_options -> 'batch_size_max', p_options -> 'batch_size'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'batch_size is where an adaptive pace starts, batch_size_max the most it grows to.';
    END IF;

    /*
     * The synced-at and source columns get values of their own: neither may
     * be a column the mapping also sends, id included (always sent).  Known
     * here when the options name the mapping; the job's final options
     * always do (_gs_export_resolve_options adds the default mapping's
     * fields before it checks them), and so does a config's
     * default_options as gs_export_config_guard checks it.
     */
    IF p_options ? 'fields' OR p_options ? 'field_mappings' THEN
        remote_names := remote_names || 'id'::text;
    END IF;
    FOREACH k IN ARRAY ARRAY['synced_at_column', 'source_column'] LOOP
        IF pg_catalog.jsonb_typeof(p_options -> k) = 'string' THEN
            IF (p_options ->> k) = ANY (remote_names) THEN
                RAISE EXCEPTION 'option "%": remote column "%" is also a mapped column', k, p_options ->> k
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'A remote column gets one value: rename one of them, or set the option to null.';
            END IF;
            remote_names := remote_names || (p_options ->> k);
        END IF;
    END LOOP;
END;
$$;
