/*-------------------------------------------------------------------------
 *
 * api.c
 *	  The SQL-callable functions gs_export_create, gs_export_pause and
 *	  gs_export_resume.  Each notes the calling role, runs the matching
 *	  internal plpgsql function as the extension's owner with a fixed
 *	  search_path (the statements are store.c's), and wakes the launcher
 *	  when the transaction commits.
 *	  And _gs_export_latest_active_job, which those internal functions use
 *	  to name the active job as the latest committed state has it.
 *	  Version 1.1 adds gs_export_reset, gs_export_delete and
 *	  gs_export_status, the same way; 1.2 gs_export_sync, gs_export_follow,
 *	  gs_export_retry_errors, gs_export_repair and gs_export_verify, and
 *	  lends call_internal to check.c (gs_api_call_readonly).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "gs_export.h"

PG_FUNCTION_INFO_V1(gs_export_create);
PG_FUNCTION_INFO_V1(gs_export_pause);
PG_FUNCTION_INFO_V1(gs_export_resume);
PG_FUNCTION_INFO_V1(gs_export_latest_active_job);
PG_FUNCTION_INFO_V1(gs_export_reset);
PG_FUNCTION_INFO_V1(gs_export_delete);
PG_FUNCTION_INFO_V1(gs_export_status);

static bool wake_on_commit = false;
static bool wake_followers_on_commit = false;
static bool xact_callback_registered = false;

/*
 * At commit, tell the launcher and the workers that jobs changed.  Setting
 * latches before commit would let them look too early and see nothing.
 */
static void
gs_export_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_on_commit)
				gs_export_wake_all();
			else if (wake_followers_on_commit)
				gs_export_wake_followers();
			wake_on_commit = false;
			wake_followers_on_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			wake_on_commit = false;
			wake_followers_on_commit = false;
			break;
		default:
			break;
	}
}

static void
register_callback(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(gs_export_xact_callback, NULL);
		xact_callback_registered = true;
	}
}

static void
wake_at_commit(void)
{
	register_callback();
	wake_on_commit = true;
}

/*
 * Run SELECT <schema>.<function>(caller, uid, app_admin, args...) as the
 * extension owner, with search_path fixed to pg_catalog, pg_temp.  caller
 * is the calling role; uid and app_admin say who the caller is under
 * Supabase, found out first with the caller's own privileges.  Returns the
 * single result (copied out of SPI), or 0 with *isnull set.
 */
static Datum
call_internal(const char *function, int nargs, Oid *argtypes,
			  Datum *values, bool *isnull_args, bool *isnull)
{
	Oid			nspoid;
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	Oid			types[8];
	Datum		args[8];
	bool		nulls[8];
	bool		app_admin;
	Datum		result;
	int			i;

	Assert(nargs + 3 <= 8);

	gs_export_require_preload();

	if (!gs_extension_lookup(&nspoid, &owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"gs_export\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION gs_export;")));

	/* Who the caller is under Supabase, asked as the caller. */
	types[0] = OIDOID;
	args[0] = ObjectIdGetDatum(GetUserId());
	nulls[0] = false;
	types[1] = UUIDOID;
	gs_store_whoami(nspoid, &args[1], &nulls[1], &app_admin);
	types[2] = BOOLOID;
	args[2] = BoolGetDatum(app_admin);
	nulls[2] = false;
	for (i = 0; i < nargs; i++)
	{
		types[i + 3] = argtypes[i];
		args[i + 3] = values[i];
		nulls[i + 3] = isnull_args[i];
	}

	/* The rest as the extension's owner, with a search_path of our own. */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	result = gs_store_call_internal(nspoid, function, nargs + 3, types, args, nulls, isnull);

	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);

	wake_at_commit();
	return result;
}

/*
 * Call the internal function with this call's arguments (fcinfo's, of the
 * given types), as call_internal does.
 */
static Datum
call_with_args(FunctionCallInfo fcinfo, const char *function, int nargs,
			   Oid *types, bool *isnull)
{
	Datum		values[8];
	bool		nulls[8];
	int			i;

	Assert(nargs <= 8);
	for (i = 0; i < nargs; i++)
	{
		nulls[i] = PG_ARGISNULL(i);
		values[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	return call_internal(function, nargs, types, values, nulls, isnull);
}

/*
 * call_internal for a function that changes no job (check.c's): the wake
 * that call_internal arranges is undone, as gs_export_status does.
 */
Datum
gs_api_call_readonly(const char *function, int nargs, Oid *argtypes,
					 Datum *values, bool *isnull_args, bool *isnull)
{
	bool		wake_was_due = wake_on_commit;
	Datum		result = call_internal(function, nargs, argtypes, values,
									   isnull_args, isnull);

	wake_on_commit = wake_was_due;
	return result;
}

/*
 * gs_export_create(start_date date, end_date date, options jsonb) → uuid
 */
Datum
gs_export_create(PG_FUNCTION_ARGS)
{
	Oid			types[3] = {DATEOID, DATEOID, JSONBOID};
	bool		isnull;
	Datum		result = call_with_args(fcinfo, "_gs_export_create", 3, types, &isnull);

	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * gs_export_pause(job_id uuid, reason text)
 */
Datum
gs_export_pause(PG_FUNCTION_ARGS)
{
	Oid			types[2] = {UUIDOID, TEXTOID};
	bool		isnull;

	(void) call_with_args(fcinfo, "_gs_export_pause", 2, types, &isnull);
	PG_RETURN_VOID();
}

/*
 * gs_export_resume(job_id uuid)
 */
Datum
gs_export_resume(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {UUIDOID};
	bool		isnull;

	(void) call_with_args(fcinfo, "_gs_export_resume", 1, types, &isnull);
	PG_RETURN_VOID();
}

/*
 * gs_export_reset(job_id uuid)
 */
Datum
gs_export_reset(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {UUIDOID};
	bool		isnull;

	(void) call_with_args(fcinfo, "_gs_export_reset", 1, types, &isnull);
	PG_RETURN_VOID();
}

/*
 * gs_export_delete(job_id uuid)
 */
Datum
gs_export_delete(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {UUIDOID};
	bool		isnull;

	(void) call_with_args(fcinfo, "_gs_export_delete", 1, types, &isnull);
	PG_RETURN_VOID();
}

/*
 * gs_export_status(job_id uuid, OUT job_id uuid, OUT status text, ...)
 *
 * One row: the internal function's, whose columns are this function's
 * OUT parameters, type for type.  Its row comes back as an anonymous
 * record; it is checked against this function's row type and formed again
 * with it.
 *
 * A status changes no job, so the launcher has nothing to look at: the
 * wake that call_internal arranges is undone, and one that an earlier call
 * of this transaction arranged (a pause, say) is kept.
 */
Datum
gs_export_status(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {UUIDOID};
	Datum		args[1];
	bool		argnulls[1];
	bool		wake_was_due = wake_on_commit;
	bool		isnull;
	Datum		result;
	TupleDesc	tupdesc;
	TupleDesc	rowdesc;
	HeapTupleHeader row;
	HeapTupleData tuple;
	Datum	   *values;
	bool	   *nulls;
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "gs_export: gs_export_status must return a row");
	tupdesc = BlessTupleDesc(tupdesc);

	argnulls[0] = PG_ARGISNULL(0);
	args[0] = argnulls[0] ? (Datum) 0 : PG_GETARG_DATUM(0);
	result = call_internal("_gs_export_status", 1, types, args, argnulls, &isnull);
	wake_on_commit = wake_was_due;
	if (isnull)
		elog(ERROR, "gs_export: _gs_export_status returned no row");

	row = DatumGetHeapTupleHeader(result);
	rowdesc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(row),
									 HeapTupleHeaderGetTypMod(row));
	if (rowdesc->natts != tupdesc->natts)
		elog(ERROR, "gs_export: _gs_export_status returned %d columns, gs_export_status has %d",
			 rowdesc->natts, tupdesc->natts);
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute from = TupleDescAttr(rowdesc, i);
		Form_pg_attribute to = TupleDescAttr(tupdesc, i);

		if (from->attisdropped || to->attisdropped || from->atttypid != to->atttypid)
			elog(ERROR, "gs_export: column %d of _gs_export_status does not match gs_export_status",
				 i + 1);
	}

	tuple.t_len = HeapTupleHeaderGetDatumLength(row);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = row;
	values = palloc(sizeof(Datum) * tupdesc->natts);
	nulls = palloc(sizeof(bool) * tupdesc->natts);
	heap_deform_tuple(&tuple, rowdesc, values, nulls);
	ReleaseTupleDesc(rowdesc);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * _gs_export_latest_active_job(except uuid, OUT id uuid, OUT status text)
 *
 * The job, other than "except", that is pending, running or paused in the
 * latest committed state of the jobs table (and this transaction's own
 * changes), or a row of NULLs when there is none.  Not the transaction's
 * snapshot: under REPEATABLE READ or SERIALIZABLE a job that another
 * session committed after this transaction took its snapshot is invisible
 * to it, yet it is the one that the unique index
 * gestao_scouter_export_jobs_one_active says is in the way, and the one the
 * error must name.  The same device as the foreign key checks' (ri_triggers.c);
 * the query is store.c's (gs_store_latest_active_job).
 *
 * Internal: run by the internal functions as the extension's owner (EXECUTE
 * is revoked from PUBLIC), with search_path pinned by its SET clause.
 */
Datum
gs_export_latest_active_job(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Oid			nspoid;
	Datum		values[2];
	bool		nulls[2];

	gs_export_require_preload();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "gs_export: _gs_export_latest_active_job must return a row");
	tupdesc = BlessTupleDesc(tupdesc);

	if (!gs_extension_lookup(&nspoid, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"gs_export\" is not installed in this database")));

	gs_store_latest_active_job(nspoid, PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0),
							   PG_ARGISNULL(0), values, nulls);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

PG_FUNCTION_INFO_V1(gs_export_sync);

/*
 * gs_export_sync(options jsonb) → uuid, or NULL when another job is active
 *
 * The incremental export: a job over the leads changed since the last
 * completed sync (see _gs_export_sync), created with gs_export_create's
 * checks, for the calling role.
 */
Datum
gs_export_sync(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {JSONBOID};
	bool		isnull;
	Datum		result = call_with_args(fcinfo, "_gs_export_sync", 1, types, &isnull);

	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(gs_export_follow);

/*
 * gs_export_follow(options jsonb) → uuid
 *
 * The live sync of a remote table: a follower, created with its capture
 * triggers (see _gs_export_follow), for the calling role.
 */
Datum
gs_export_follow(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {JSONBOID};
	bool		isnull;
	Datum		result = call_with_args(fcinfo, "_gs_export_follow", 1, types, &isnull);

	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * The capture (capture.c) wrote changes for a follower: wake the followers'
 * workers when this transaction commits, not before (they would look too
 * early and find nothing).  Cheap: a flag, and a callback registered once
 * per backend.
 */
void
gs_export_wake_followers_at_commit(void)
{
	register_callback();
	wake_followers_on_commit = true;
}

PG_FUNCTION_INFO_V1(gs_export_retry_errors);

/*
 * gs_export_retry_errors(job_id uuid) → uuid
 *
 * A job of kind 'retry' over the leads of the job's unresolved error rows
 * (see _gs_export_retry_errors), for the calling role.
 */
Datum
gs_export_retry_errors(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {UUIDOID};
	bool		isnull;
	Datum		result = call_with_args(fcinfo, "_gs_export_retry_errors", 1, types, &isnull);

	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(gs_export_repair);

/*
 * gs_export_repair(verify_job_id uuid) → uuid
 *
 * A job of kind 'repair' over the leads a verify job found different (see
 * _gs_export_repair), for the calling role.
 */
Datum
gs_export_repair(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {UUIDOID};
	bool		isnull;
	Datum		result = call_with_args(fcinfo, "_gs_export_repair", 1, types, &isnull);

	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(gs_export_verify);

/*
 * gs_export_verify(options jsonb) → uuid
 *
 * A job of kind 'verify' (see _gs_export_verify; its worker is verify.c),
 * for the calling role.
 */
Datum
gs_export_verify(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {JSONBOID};
	bool		isnull;
	Datum		result = call_with_args(fcinfo, "_gs_export_verify", 1, types, &isnull);

	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(gs_export_capture_owned);

/*
 * _gs_capture_owned(trigger oid): the capture trigger depends on the
 * extension, automatically (DEPENDENCY_AUTO), so that DROP EXTENSION drops
 * it with the extension's objects; a trigger cannot be a member of an
 * extension, and its dependency on _gs_capture alone would make DROP
 * EXTENSION refuse without CASCADE.  Internal: run by _gs_capture_triggers
 * as the extension's owner (EXECUTE is revoked from PUBLIC); only for a
 * trigger whose function is the extension's _gs_capture.
 */
Datum
gs_export_capture_owned(PG_FUNCTION_ARGS)
{
	Oid			trigger_oid = PG_GETARG_OID(0);
	Oid			nspoid;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			tgfoid = InvalidOid;
	ObjectAddress trigger;
	ObjectAddress extension;

	if (!gs_extension_lookup(&nspoid, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"gs_export\" is not installed in this database")));
	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigger_oid));
	scan = systable_beginscan(rel, TriggerOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		tgfoid = ((Form_pg_trigger) GETSTRUCT(tuple))->tgfoid;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(tgfoid) ||
		get_func_namespace(tgfoid) != nspoid ||
		strcmp(get_func_name(tgfoid), "_gs_capture") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger %u is not a capture trigger of gs_export", trigger_oid)));

	ObjectAddressSet(trigger, TriggerRelationId, trigger_oid);
	ObjectAddressSet(extension, ExtensionRelationId, get_extension_oid("gs_export", false));
	recordDependencyOn(&trigger, &extension, DEPENDENCY_AUTO);
	PG_RETURN_VOID();
}
