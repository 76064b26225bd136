/*
 * Lock order, first in an upgrade.  A job worker records a batch in one
 * transaction that writes sync_events, then gestao_scouter_export_errors,
 * then the job's row; an upgrade changes those tables (policies,
 * privileges) and may run while a job does.  Taking them first, at once,
 * in the worker's order, keeps the two from deadlocking (a deadlock would
 * fail the job).
 */
LOCK TABLE @extschema@.sync_events, @extschema@.gestao_scouter_export_errors,
           @extschema@.gestao_scouter_export_jobs IN ACCESS EXCLUSIVE MODE;
