/*
 * gs_export_retry_errors's internal function: a job of kind 'retry' that
 * sends again, as they are now, the leads of the error rows of job
 * p_job_id that have no resolved_at (_gs_export_set_job), with that job's
 * options: the same remote table, fields and scope.  A lead gone or out of
 * the scope since is not sent (a follower's on_delete applies to it, when
 * the job retried is a follower; an export never deletes: "ignore"), and
 * its error row stays unresolved.  An error row gets resolved_at when its
 * lead goes through to that remote table (_gs_follow_record).  The caller
 * must see the job (42704); 55000 when it has no unresolved error row.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_retry_errors(p_caller oid, p_uid uuid, p_app_admin boolean, p_job_id uuid)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    source @extschema@.gestao_scouter_export_jobs;
    effective jsonb;
BEGIN
    source := @extschema@._gs_export_see_job(p_caller, p_uid, p_app_admin, p_job_id);
    IF NOT EXISTS (SELECT 1 FROM @extschema@.gestao_scouter_export_errors e
                    WHERE e.job_id = p_job_id AND e.resolved_at IS NULL AND e.lead_id IS NOT NULL) THEN
        PERFORM @extschema@._gs_export_set_job_nothing('retry', p_job_id);
    END IF;
    effective := COALESCE(source.effective_options,
                          @extschema@._gs_export_resolve_options(source.options));
    effective := effective || pg_catalog.jsonb_build_object(
        'on_delete', COALESCE(effective -> 'on_delete', '"ignore"'),
        'delay_ms', 0, 'time_zone', 'UTC');
    RETURN @extschema@._gs_export_set_job(p_caller, p_uid, p_app_admin, 'retry', p_job_id,
                                           pg_catalog.jsonb_build_object('retry_of', p_job_id), effective);
END;
$$;
