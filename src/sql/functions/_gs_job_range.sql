/*
 * The instants a job's days span: [bottom, top), top being the start of
 * the day after start_date, bottom the start of end_date ('-infinity'
 * without one: down to the oldest lead).
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_job_range(p_start_date date, p_end_date date, p_time_zone text,
                                          OUT range_bottom timestamptz, OUT range_top timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_end_date IS NULL THEN '-infinity'::timestamptz
                ELSE @extschema@._gs_day_start(p_end_date, p_time_zone) END,
           @extschema@._gs_day_start(p_start_date + 1, p_time_zone)
$$;
