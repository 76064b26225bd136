/*
 * gs_export_verify's internal function: a job of kind 'verify', owned by
 * the caller, whose worker (src/verify.c) walks the remote rows of the
 * scope by id beside the leads of the scope, and records every difference
 * in gestao_scouter_export_diffs.  It sends nothing.
 *
 * Options: the scope as gs_export_create takes it (target_table, fields or
 * field_mappings, synced_at_column, source_column, source_value, filter,
 * changed_since, time_zone), start_date and end_date (strings, days as
 * gs_export_create's: from start_date down to end_date, in time_zone;
 * without either, every lead of the filter, updated_at NULL included),
 * compare ("version": the remote column that receives updated_at; or
 * "content": every column sent; default "version" when updated_at is
 * mapped, else "content"), on_delete (what gs_export_repair applies to
 * the 'extra' rows: "delete" by default, "ignore", or a soft delete's
 * object), batch_size (leads compared per page, and remote rows asked per
 * request, at most 1000: PostgREST's usual max-rows).
 *
 * It is an active job under the one active job rule (55000 naming the job
 * in the way), but a follower of the same table does not stop it: it sends
 * nothing (a follower's backlog shows as differences while it waits).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_verify(p_caller oid, p_uid uuid, p_app_admin boolean, p_options jsonb)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    resolved jsonb;
    compare text;
    on_delete jsonb := '"delete"';
    start_date date;
    end_date date;
    k text;
    job_id uuid;
    violated text;
BEGIN
    PERFORM @extschema@._gs_export_check_caller(p_caller);
    IF p_options IS NULL THEN
        RAISE EXCEPTION 'options must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass ''{}'' for the defaults.';
    END IF;
    IF pg_catalog.jsonb_typeof(p_options) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: ''{"target_table": "fichas", "compare": "content"}''.';
    END IF;
    FOREACH k IN ARRAY ARRAY['look_back', 'backfill'] LOOP
        IF p_options ? k THEN
            RAISE EXCEPTION 'option "%" does not apply to a verify', k
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'A verify compares the leads of its scope: filter, start_date and end_date, changed_since.';
        END IF;
    END LOOP;
    IF p_options ? 'compare' THEN
        compare := p_options ->> 'compare';
        IF pg_catalog.jsonb_typeof(p_options -> 'compare') <> 'string' OR compare NOT IN ('version', 'content') THEN
            RAISE EXCEPTION 'option "compare" must be "version" or "content": %', p_options -> 'compare'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = '"version" compares the remote column that receives updated_at; "content" every column sent.';
        END IF;
    END IF;
    IF p_options ? 'on_delete' THEN
        on_delete := p_options -> 'on_delete';
    END IF;
    FOREACH k IN ARRAY ARRAY['start_date', 'end_date'] LOOP
        IF p_options ? k THEN
            BEGIN
                IF pg_catalog.jsonb_typeof(p_options -> k) <> 'string' THEN
                    RAISE invalid_datetime_format;
                END IF;
                IF k = 'start_date' THEN
                    start_date := (p_options ->> k)::date;
                ELSE
                    end_date := (p_options ->> k)::date;
                END IF;
            EXCEPTION WHEN data_exception THEN
                RAISE EXCEPTION 'option "%" must be a date as a string: %', k, p_options -> k
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'For example "2026-01-31".';
            END;
            IF (p_options ->> k)::date IN ('infinity', '-infinity') THEN
                RAISE EXCEPTION 'option "%" must be a finite date', k
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        END IF;
    END LOOP;
    IF end_date > COALESCE(start_date, CURRENT_DATE) THEN
        RAISE EXCEPTION 'end_date % is after start_date %', end_date, COALESCE(start_date, CURRENT_DATE)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Days are walked from start_date, the newest, down to end_date, the oldest.',
                  HINT = 'Swap the two dates.';
    END IF;

    resolved := @extschema@._gs_export_resolve_options(p_options - 'compare' - 'on_delete' - 'start_date' - 'end_date');
    PERFORM @extschema@._gs_export_check_on_delete(on_delete, resolved ->> 'source_column');
    IF compare IS NULL THEN
        SELECT CASE WHEN 'updated_at' = ANY (m.lead_columns) THEN 'version' ELSE 'content' END
          INTO compare
          FROM @extschema@._gs_job_mapping(resolved) m;
    ELSIF compare = 'version' AND NOT EXISTS (SELECT 1 FROM @extschema@._gs_job_mapping(resolved) m
                                              WHERE 'updated_at' = ANY (m.lead_columns)) THEN
        RAISE EXCEPTION 'compare "version" needs a remote column that receives updated_at'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Map updated_at (fields or field_mappings), or compare "content".';
    END IF;
    resolved := resolved || pg_catalog.jsonb_build_object(
        'compare', compare, 'on_delete', on_delete, 'delay_ms', 0,
        'batch_size', LEAST((resolved ->> 'batch_size')::integer, 1000));
    IF start_date IS NOT NULL OR end_date IS NOT NULL THEN
        resolved := resolved || pg_catalog.jsonb_build_object(
            'start_date', COALESCE(start_date, CURRENT_DATE)::text, 'end_date', end_date::text);
    END IF;

    PERFORM @extschema@._gs_export_check_readable(p_caller, resolved);
    PERFORM @extschema@._gs_export_check_config();
    LOCK TABLE @extschema@.gestao_scouter_export_jobs IN SHARE ROW EXCLUSIVE MODE;
    PERFORM @extschema@._gs_export_check_no_active(NULL);
    BEGIN
        INSERT INTO @extschema@.gestao_scouter_export_jobs
               (kind, status, start_date, end_date, options, batch_size, delay_ms, time_zone,
                owner_role, owner_oid, created_by, effective_options, pass_kind)
        VALUES ('verify', 'pending', COALESCE(start_date, CURRENT_DATE), end_date, p_options,
                (resolved ->> 'batch_size')::integer, 0, resolved ->> 'time_zone',
                (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = p_caller), p_caller,
                p_uid, resolved, 'range')
        RETURNING id INTO job_id;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
        PERFORM @extschema@._gs_export_active_conflict(violated, NULL);
        RAISE;
    END;
    RETURN job_id;
END;
$$;
