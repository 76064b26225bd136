/*
 * Internal: 55000 for a retry of a job without unresolved error rows, or a
 * repair of a verify job that found nothing: there is nothing to send, and
 * a job that would complete at once is no answer a caller could miss.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_set_job_nothing(p_kind text, p_source uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_kind = 'retry' THEN
        RAISE EXCEPTION 'export job % has no unresolved error rows', p_source
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Every error row of the job has resolved_at: its lead went through since.',
                  HINT = pg_catalog.format('SELECT lead_id, error_message, resolved_at FROM gestao_scouter_export_errors WHERE job_id = %L;', p_source);
    END IF;
    RAISE EXCEPTION 'verify job % found no difference', p_source
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = 'The remote was equal to the leads of its scope when it ran: there is nothing to repair.',
              HINT = 'Run gs_export_verify() again to see whether that is still so.';
END;
$$;
