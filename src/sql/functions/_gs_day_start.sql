/*
 * The first instant whose local date, in the time zone, is p_day.  Usually
 * local midnight; where midnight happens twice (a clock set back at 01:00)
 * the first one, and where it is skipped the first instant after the gap.
 * Offsets change by at most a few hours, so the start lies within six hours
 * of "p_day 00:00" read in the zone.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_day_start(p_day date, p_time_zone text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t timestamptz := p_day::timestamp AT TIME ZONE p_time_zone;
    lo timestamptz;
    hi timestamptz;
    mid timestamptz;
BEGIN
    IF (t AT TIME ZONE p_time_zone)::date = p_day
       AND ((t - interval '1 microsecond') AT TIME ZONE p_time_zone)::date < p_day THEN
        RETURN t;
    END IF;
    lo := t - interval '6 hours';
    hi := t + interval '6 hours';
    WHILE hi - lo > interval '1 microsecond' LOOP
        mid := lo + (hi - lo) / 2;
        IF (mid AT TIME ZONE p_time_zone)::date >= p_day THEN
            hi := mid;
        ELSE
            lo := mid;
        END IF;
    END LOOP;
    RETURN hi;
EXCEPTION WHEN datetime_field_overflow THEN
    -- at the very ends of the timestamp range (4714 BC, 294276 AD): no
    -- offset change happens there
    RETURN t;
END;
$$;
