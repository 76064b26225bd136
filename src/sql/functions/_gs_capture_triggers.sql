/*
 * Internal: create (p_create) or drop a follower's capture triggers on
 * leads, four statement-level AFTER triggers named after it
 * (gs_export_follow_<id>_{insert,update,delete,truncate}) that run
 * _gs_capture with its id.  Creating them takes SHARE ROW EXCLUSIVE on
 * leads, which waits for every transaction that has written leads to end
 * and holds new writers back until the caller's transaction ends: every
 * change committed after that is captured, in whatever snapshot its
 * transaction runs.  Only the triggers missing are created; dropping a
 * trigger that is not there is no error.  Each trigger depends on the
 * extension (_gs_capture_owned): DROP EXTENSION drops them, and leads is
 * left as it was before the first follower.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_capture_triggers(p_job_id uuid, p_create boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    base constant text := 'gs_export_follow_' || pg_catalog.replace(p_job_id::text, '-', '');
    ev text;
BEGIN
    IF pg_catalog.to_regclass('@extschema@.leads') IS NULL THEN
        IF p_create THEN
            RAISE EXCEPTION 'relation "@extschema@.leads" does not exist'
                USING ERRCODE = 'undefined_table',
                      HINT = 'gs_export exports the table leads of the schema it is installed in.';
        END IF;
        RETURN;
    END IF;
    LOCK TABLE @extschema@.leads IN SHARE ROW EXCLUSIVE MODE;
    FOREACH ev IN ARRAY ARRAY['insert', 'update', 'delete', 'truncate'] LOOP
        IF p_create THEN
            CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                   WHERE t.tgrelid = '@extschema@.leads'::pg_catalog.regclass
                                     AND t.tgname = base || '_' || ev);
            EXECUTE pg_catalog.format(
                'CREATE TRIGGER %I AFTER %s ON @extschema@.leads %s FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._gs_capture(%L)',
                base || '_' || ev, pg_catalog.upper(ev),
                CASE ev WHEN 'insert' THEN 'REFERENCING NEW TABLE AS gs_new'
                        WHEN 'update' THEN 'REFERENCING OLD TABLE AS gs_old NEW TABLE AS gs_new'
                        WHEN 'delete' THEN 'REFERENCING OLD TABLE AS gs_old'
                        ELSE '' END,
                p_job_id);
            /* dropped with the extension (DROP EXTENSION needs no CASCADE) */
            PERFORM @extschema@._gs_capture_owned(t.oid)
               FROM pg_catalog.pg_trigger t
              WHERE t.tgrelid = '@extschema@.leads'::pg_catalog.regclass
                AND t.tgname = base || '_' || ev;
        ELSE
            EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON @extschema@.leads', base || '_' || ev);
        END IF;
    END LOOP;
END;
$$;
