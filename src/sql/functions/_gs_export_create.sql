/*
 * gs_export_create's internal function: 1.0's, but the one active job is
 * kept by the unique index, and a row it refuses is the 55000 of doc/contract.md.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_create(p_caller oid, p_uid uuid, p_app_admin boolean, p_start_date date, p_end_date date, p_options jsonb)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    resolved jsonb;
    job_id uuid;
    violated text;
BEGIN
    PERFORM @extschema@._gs_export_check_caller(p_caller);

    IF p_start_date IS NULL THEN
        RAISE EXCEPTION 'start_date must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave start_date out to start from today.';
    END IF;
    IF p_start_date IN ('infinity', '-infinity') OR p_end_date IN ('infinity', '-infinity') THEN
        RAISE EXCEPTION 'start_date and end_date must be finite dates'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_end_date > p_start_date THEN
        RAISE EXCEPTION 'end_date % is after start_date %', p_end_date, p_start_date
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Days are walked from start_date, the newest, down to end_date, the oldest.',
                  HINT = 'Swap the two dates.';
    END IF;
    resolved := @extschema@._gs_export_resolve_options(p_options);
    -- the days must be instants PostgreSQL can count in (years 4713 BC to 294276 AD)
    BEGIN
        PERFORM ((p_start_date + 1)::timestamp AT TIME ZONE (resolved ->> 'time_zone')),
                (p_end_date::timestamp AT TIME ZONE (resolved ->> 'time_zone'));
    EXCEPTION WHEN datetime_field_overflow THEN
        RAISE EXCEPTION 'start_date or end_date is out of range'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('The days from %s down to %s are not all timestamps in time zone %s.',
                                             p_start_date, COALESCE(p_end_date::text, 'the oldest lead'),
                                             resolved ->> 'time_zone'),
                  HINT = 'Use dates between 4713 BC and 294276 AD.';
    END;

    PERFORM @extschema@._gs_export_check_readable(p_caller, resolved);

    PERFORM @extschema@._gs_export_check_config();

    LOCK TABLE @extschema@.gestao_scouter_export_jobs IN SHARE ROW EXCLUSIVE MODE;
    PERFORM @extschema@._gs_export_check_no_active(NULL);
    PERFORM @extschema@._gs_export_check_no_follower(resolved ->> 'target_table');

    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                   WHERE i.indrelid = '@extschema@.leads'::regclass
                     AND i.indkey[0] = (SELECT attnum FROM pg_catalog.pg_attribute
                                        WHERE attrelid = i.indrelid AND attname = 'updated_at')
                     AND i.indkey[1] = (SELECT attnum FROM pg_catalog.pg_attribute
                                        WHERE attrelid = i.indrelid AND attname = 'id')
                     AND i.indpred IS NULL) THEN
        RAISE NOTICE 'leads has no index on (updated_at, id): each batch will scan the table'
            USING HINT = 'CREATE INDEX ON leads (updated_at, id);';
    END IF;

    BEGIN
        INSERT INTO @extschema@.gestao_scouter_export_jobs
               (status, start_date, end_date, options, batch_size, delay_ms, time_zone,
                owner_role, owner_oid, created_by, total_leads, exported_leads, error_leads,
                effective_options)
        VALUES ('pending', p_start_date, p_end_date, p_options,
                (resolved ->> 'batch_size')::integer, (resolved ->> 'delay_ms')::integer,
                resolved ->> 'time_zone',
                (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = p_caller), p_caller,
                p_uid, 0, 0, 0, resolved)
        RETURNING id INTO job_id;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
        PERFORM @extschema@._gs_export_active_conflict(violated, NULL);
        RAISE;
    END;

    RETURN job_id;
END;
$$;
