/*-------------------------------------------------------------------------
 *
 * store.c
 *	  The one way gs_export's C code reaches its own tables: calls of the
 *	  state machine's functions in the extension script (section 3 of
 *	  gs_export--1.0--1.1.sql), each prepared once per process and kept,
 *	  with results copied into the caller's memory context and read by
 *	  column name.  Also the transaction bracket that every unit of the
 *	  launcher's and the workers' database work uses.
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
