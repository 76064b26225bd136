/*-------------------------------------------------------------------------
 *
 * store.c
 *	  The one way gs_export's C code reaches the extension's own tables
 *	  (jobs, events, errors, config), always through the extension's SQL
 *	  functions or, for one read that needs a snapshot of its own, a fixed
 *	  query:
 *	  - for the launcher and the workers, the transaction bracket that
 *		every unit of their database work uses, and calls of the state
 *		machine's functions (_gs_job_*, _gs_runnable_jobs,
 *		_gs_export_alert_info), each prepared once per process and kept,
 *		with results copied into the caller's memory context and read by
 *		column name;
 *	  - for the SQL-callable functions of api.c, in the caller's
 *		transaction, the call of an internal function, who the caller is,
 *		and the latest committed active job.
 *	  What it does not cover: the leads themselves, the data being
 *	  exported, which source.c reads as the job's owner with queries built
 *	  from the job's columns; and pg_extension (catalog.c).  The design is
 *	  in doc/architecture.md.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "gs_export.h"

#define STORE_MAX_ARGS 12

typedef struct StoreFunction
{
	const char *name;
	int			nargs;
	Oid			argtypes[STORE_MAX_ARGS];
} StoreFunction;

static const StoreFunction store_functions[GS_STORE_NFUNCTIONS] = {
	[GS_STORE_CLAIM] = {"_gs_job_claim", 1, {UUIDOID}},
	[GS_STORE_RECORD] = {"_gs_job_record", 12,
		{UUIDOID, INT8ARRAYOID, TEXTARRAYOID, INT4OID, TIMESTAMPTZOID, INT8OID, DATEOID,
	INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID}},
	[GS_STORE_NEXT_PASS] = {"_gs_job_next_pass", 1, {UUIDOID}},
	[GS_STORE_STOP] = {"_gs_job_stop", 3, {UUIDOID, TEXTOID, TEXTOID}},
	[GS_STORE_IGNORE_COLUMN] = {"_gs_job_ignore_column", 2, {UUIDOID, TEXTOID}},
	[GS_STORE_IS_RUNNING] = {"_gs_job_is_running", 1, {UUIDOID}},
	[GS_STORE_SET_LEADS_IN_RANGE] = {"_gs_job_set_leads_in_range", 2, {UUIDOID, INT8OID}},
	[GS_STORE_RUNNABLE_JOBS] = {"_gs_runnable_jobs", 0, {InvalidOid}},
	[GS_STORE_ALERT_INFO] = {"_gs_export_alert_info", 3, {UUIDOID, TEXTOID, TEXTOID}},
	[GS_STORE_DOUBT] = {"_gs_job_doubt", 2, {UUIDOID, TIMESTAMPTZOID}},
	[GS_STORE_RELEASE] = {"_gs_job_release", 1, {UUIDOID}},
	[GS_STORE_FOLLOW_TAKE] = {"_gs_follow_take", 4, {UUIDOID, INT8ARRAYOID, INT4OID, BOOLOID}},
	[GS_STORE_FOLLOW_RECORD] = {"_gs_follow_record", 12,
		{UUIDOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4OID, INT8OID,
	INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID}},
	[GS_STORE_VERIFY_RECORD] = {"_gs_verify_record", 6,
		{UUIDOID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8OID, INT8OID}},
};

/* Kept plans, valid for the schema they were prepared in. */
static SPIPlanPtr store_plans[GS_STORE_NFUNCTIONS];
static Oid	store_plans_schema = InvalidOid;

/* The open transaction: the extension's schema, and where the caller was. */
static Oid	xact_schema = InvalidOid;
static bool xact_snapshot = false;
static MemoryContext xact_caller_cxt = NULL;

/*
 * Start a transaction for one unit of work, and say what it is in
 * pg_stat_activity.  With lock_leads, the extension's leads table is locked
 * (ACCESS SHARE) before the transaction's snapshot is taken: a table
 * rewrite (ALTER TABLE) that commits while we wait for the lock is then
 * seen, whereas a snapshot taken before the lock would see the rewritten
 * table empty.  *leads_oid gets the table (InvalidOid if there is none).
 *
 * Returns whether the extension is there, at this library's version; the
 * transaction is open whatever it returns, and gs_xact_end ends it.  The
 * caller's memory context stays current: what it allocates in the
 * transaction outlives it.
 */
GsStoreState
gs_xact_begin(const char *activity, bool lock_leads, Oid *leads_oid)
{
	char	   *version;

	xact_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* allocations stay the caller's, not the transaction's */
	MemoryContextSwitchTo(xact_caller_cxt);
	pgstat_report_activity(STATE_RUNNING, activity);
	xact_snapshot = false;
	if (leads_oid)
		*leads_oid = InvalidOid;

	if (!gs_extension_lookup(&xact_schema, NULL))
		return GS_STORE_ABSENT;
	version = gs_extension_version();
	if (version == NULL || strcmp(version, GS_EXPORT_VERSION) != 0)
		return GS_STORE_OTHER_VERSION;

	if (lock_leads)
	{
		RangeVar   *rv = makeRangeVar(get_namespace_name(xact_schema), "leads", -1);
		Oid			relid = RangeVarGetRelid(rv, AccessShareLock, true);

		if (leads_oid)
			*leads_oid = relid;
	}
	PushActiveSnapshot(GetTransactionSnapshot());
	xact_snapshot = true;
	return GS_STORE_READY;
}

/*
 * Commit the transaction gs_xact_begin started and go back to the caller's
 * memory context (a commit leaves us in TopMemoryContext).
 */
void
gs_xact_end(void)
{
	if (xact_snapshot)
		PopActiveSnapshot();
	xact_snapshot = false;
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(xact_caller_cxt);
}

/*
 * The extension's schema, in the open transaction.
 */
Oid
gs_xact_schema(void)
{
	return xact_schema;
}

/*
 * The kept plan of a function, prepared on first use in this process (and
 * again if the extension moved to another schema).
 */
static SPIPlanPtr
store_plan(GsStoreFunctionId fn)
{
	const StoreFunction *f = &store_functions[fn];
	StringInfoData sql;
	SPIPlanPtr	plan;
	int			i;

	if (store_plans_schema != xact_schema)
	{
		for (i = 0; i < GS_STORE_NFUNCTIONS; i++)
		{
			if (store_plans[i] != NULL)
				SPI_freeplan(store_plans[i]);
			store_plans[i] = NULL;
		}
		store_plans_schema = xact_schema;
	}
	if (store_plans[fn] != NULL)
		return store_plans[fn];

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT * FROM %s(",
					 quote_qualified_identifier(get_namespace_name(xact_schema), f->name));
	for (i = 0; i < f->nargs; i++)
		appendStringInfo(&sql, "%s$%d", i > 0 ? ", " : "", i + 1);
	appendStringInfoChar(&sql, ')');

	plan = SPI_prepare(sql.data, f->nargs, (Oid *) f->argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare %s: %s", f->name, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep the plan of %s", f->name);
	store_plans[fn] = plan;
	pfree(sql.data);
	return plan;
}

/*
 * Call a function of the state machine in the open transaction.  The rows
 * it returns are copied into the caller's memory context, whatever SPI
 * does with its own: nothing of the result lives in SPI's memory.
 */
GsRows *
gs_store_call(GsStoreFunctionId fn, const Datum *args, const bool *nulls)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext oldcxt;
	char		n[STORE_MAX_ARGS];
	GsRows	   *rows;
	uint64		i;
	int			ret;

	Assert(fn >= 0 && fn < GS_STORE_NFUNCTIONS);
	for (i = 0; i < store_functions[fn].nargs; i++)
		n[i] = (nulls && nulls[i]) ? 'n' : ' ';

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_plan(store_plan(fn), (Datum *) args, n, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "%s failed: %s", store_functions[fn].name, SPI_result_code_string(ret));

	oldcxt = MemoryContextSwitchTo(caller);
	rows = palloc0(sizeof(GsRows));
	rows->function = store_functions[fn].name;
	rows->n = (int) SPI_processed;
	rows->tupdesc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
	rows->tuples = palloc(sizeof(HeapTuple) * Max(rows->n, 1));
	for (i = 0; i < SPI_processed; i++)
		rows->tuples[i] = heap_copytuple(SPI_tuptable->vals[i]);
	MemoryContextSwitchTo(oldcxt);

	SPI_finish();
	return rows;
}

/*
 * A column of a row of the result, by name.
 */
Datum
gs_rows_value(GsRows *rows, int row, const char *column, bool *isnull)
{
	int			attno = SPI_fnumber(rows->tupdesc, column);

	if (attno <= 0)
		elog(ERROR, "%s returned no column \"%s\"", rows->function, column);
	if (row < 0 || row >= rows->n)
		elog(ERROR, "%s returned no row %d", rows->function, row);
	return heap_getattr(rows->tuples[row], attno, rows->tupdesc, isnull);
}

/* A text column as a C string in the current memory context, or NULL. */
char *
gs_rows_text(GsRows *rows, int row, const char *column)
{
	bool		isnull;
	Datum		d = gs_rows_value(rows, row, column, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* A boolean column; NULL reads as false. */
bool
gs_rows_bool(GsRows *rows, int row, const char *column)
{
	bool		isnull;
	Datum		d = gs_rows_value(rows, row, column, &isnull);

	return !isnull && DatumGetBool(d);
}

/* Any column as its type's output text, or NULL.  Needs a transaction. */
char *
gs_rows_output(GsRows *rows, int row, const char *column)
{
	int			attno = SPI_fnumber(rows->tupdesc, column);

	if (attno <= 0)
		elog(ERROR, "%s returned no column \"%s\"", rows->function, column);
	return SPI_getvalue(rows->tuples[row], rows->tupdesc, attno);
}

/*
 * The statements of the SQL-callable functions (api.c).  They run in the
 * caller's transaction and snapshot, once per call: nothing is kept.
 * Results are copied into the caller's memory context.
 */

/*
 * Who the caller is under Supabase (_gs_export_whoami, asked with the
 * caller's own privileges): *uid (NULL when none) and whether the caller
 * is an app admin.
 */
void
gs_store_whoami(Oid nspoid, Datum *uid, bool *uid_null, bool *is_app_admin)
{
	char	   *sql;
	bool		isnull;
	Datum		d;
	int			ret;

	sql = psprintf("SELECT uid, is_app_admin FROM %s()",
				   quote_qualified_identifier(get_namespace_name(nspoid), "_gs_export_whoami"));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute(sql, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "gs_export: could not tell who the caller is: %s",
			 SPI_result_code_string(ret));
	*uid = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, uid_null);
	if (!*uid_null)
		*uid = SPI_datumTransfer(*uid, false, UUID_LEN);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	*is_app_admin = !isnull && DatumGetBool(d);
	SPI_finish();
	pfree(sql);
}

/*
 * SELECT <schema>.<function>($1, ...) with the given arguments, in the
 * current user's privileges and settings (api.c sets them), and its single
 * result (copied out of SPI), or 0 with *isnull set.
 */
Datum
gs_store_call_internal(Oid nspoid, const char *function, int nargs,
					   Oid *argtypes, Datum *args, const bool *argnulls, bool *isnull)
{
	StringInfoData sql;
	char		nulls[8];
	Datum		result;
	int			i;
	int			ret;

	Assert(nargs <= lengthof(nulls));
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s(",
					 quote_qualified_identifier(get_namespace_name(nspoid), function));
	for (i = 0; i < nargs; i++)
	{
		appendStringInfo(&sql, "%s$%d", i > 0 ? ", " : "", i + 1);
		nulls[i] = argnulls[i] ? 'n' : ' ';
	}
	appendStringInfoChar(&sql, ')');

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(sql.data, nargs, argtypes, args, nulls, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "gs_export: internal call %s failed: %s", function,
			 SPI_result_code_string(ret));
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	if (!*isnull)
	{
		Oid			rettype = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
		int16		typlen;
		bool		typbyval;

		get_typlenbyval(rettype, &typlen, &typbyval);
		result = SPI_datumTransfer(result, typbyval, typlen);
	}
	else
		result = (Datum) 0;
	SPI_finish();
	pfree(sql.data);
	return result;
}

/*
 * The job, other than except (NULL: none), that is pending, running or
 * paused, a follower aside (1.2; its kind read so that the query works on
 * a 1.1 jobs table too, before ALTER EXTENSION UPDATE), in the latest
 * committed state of the jobs table and this
 * transaction's own changes (api.c, gs_export_latest_active_job, says why
 * not the transaction's snapshot): values[0] its id, values[1] its status
 * (text), copied out of SPI; nulls[] true when there is none.
 */
void
gs_store_latest_active_job(Oid nspoid, Datum except, bool except_null,
						   Datum *values, bool *nulls)
{
	StringInfoData sql;
	SPIPlanPtr	plan;
	Oid			argtypes[1] = {UUIDOID};
	Datum		args[1];
	char		argnulls[1];
	int			ret;

	args[0] = except;
	argnulls[0] = except_null ? 'n' : ' ';
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT j.id, j.status::pg_catalog.text FROM %s j"
					 " WHERE j.status IN ('pending', 'running', 'paused')"
					 "   AND (pg_catalog.to_jsonb(j) OPERATOR(pg_catalog.->>) 'kind') IS DISTINCT FROM 'follow'"
					 "   AND j.id IS DISTINCT FROM $1"
					 " ORDER BY j.created_at"
					 " LIMIT 1",
					 quote_qualified_identifier(get_namespace_name(nspoid),
												"gestao_scouter_export_jobs"));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(sql.data, 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "gs_export: could not prepare the active job query: %s",
			 SPI_result_code_string(SPI_result));

	/*
	 * read_only with a snapshot of our own: exactly that snapshot is used.
	 * GetLatestSnapshot() sees what is committed now, and this
	 * transaction's earlier commands.
	 */
	ret = SPI_execute_snapshot(plan, args, argnulls,
							   GetLatestSnapshot(), InvalidSnapshot,
							   true, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "gs_export: could not read the active job: %s",
			 SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		TupleDesc	rowdesc = SPI_tuptable->tupdesc;

		values[0] = SPI_getbinval(row, rowdesc, 1, &nulls[0]);
		if (!nulls[0])
			values[0] = SPI_datumTransfer(values[0], false, UUID_LEN);
		values[1] = SPI_getbinval(row, rowdesc, 2, &nulls[1]);
		if (!nulls[1])
			values[1] = SPI_datumTransfer(values[1], false, -1);
	}
	else
		nulls[0] = nulls[1] = true;
	SPI_finish();
	pfree(sql.data);
}
