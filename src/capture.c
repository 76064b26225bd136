/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  The capture of a follower (gs_export_follow): _gs_capture, the C
 *	  function of its statement-level triggers on leads (created by
 *	  _gs_capture_triggers with the follower's id as argument).  It runs
 *	  inside the application's transactions, once per statement, so it
 *	  does little: it reads the ids of the statement's transition tables
 *	  (the rows inserted, the rows before and after an UPDATE -- an UPDATE
 *	  may change an id -- the rows deleted), sorts them, writes them into
 *	  gs_export_changes a thousand to a row with one kept plan, as the
 *	  extension's owner (the application's roles may not write the queue),
 *	  and asks for the followers' workers to be woken when the transaction
 *	  commits (api.c).  It reads nothing that a snapshot could hide: the
 *	  follower is named by the trigger, which every transaction that locks
 *	  leads sees.  A TRUNCATE is _gs_capture_truncate's (pause the
 *	  follower, saying so, and leave a mark in its queue).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "gs_export.h"

/* Ids per row of gs_export_changes. */
#define CAPTURE_IDS_PER_ROW 1000

PG_FUNCTION_INFO_V1(gs_export_capture);

/* The kept plans, for the extension's schema they were made in. */
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr truncate_plan = NULL;
static Oid	plans_schema = InvalidOid;

static int
cmp_id(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Append the ids of a transition table's rows to ids[*n] (grown as
 * needed).  A read pointer of our own, as the executor's scan of a
 * transition table takes: other triggers read the same tuplestore.
 */
static void
read_ids(Tuplestorestate *store, Relation rel, AttrNumber attnum, Oid atttype,
		 int64 **ids, int *n, int *cap)
{
	TupleTableSlot *slot;
	int			ptr;

	if (store == NULL)
		return;
	ptr = tuplestore_alloc_read_pointer(store, 0);
	tuplestore_select_read_pointer(store, ptr);
	tuplestore_rescan(store);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	while (tuplestore_gettupleslot(store, true, false, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, attnum, &isnull);

		if (isnull)
			continue;
		if (*n == *cap)
		{
			*cap *= 2;
			*ids = repalloc_huge(*ids, sizeof(int64) * *cap);
		}
		switch (atttype)
		{
			case INT2OID:
				(*ids)[(*n)++] = DatumGetInt16(d);
				break;
			case INT4OID:
				(*ids)[(*n)++] = DatumGetInt32(d);
				break;
			default:
				(*ids)[(*n)++] = DatumGetInt64(d);
				break;
		}
	}
	ExecDropSingleTupleTableSlot(slot);
}

static SPIPlanPtr
keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "gs_export: could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * _gs_capture(): see the file's header.  AFTER ... FOR EACH STATEMENT, one
 * argument, the follower's id.
 */
Datum
gs_export_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Oid			nspoid;
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	Datum		follower;
	int64	   *ids;
	int			n = 0;
	int			cap = 64;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		!TRIGGER_FIRED_AFTER(td->tg_event) || td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_gs_capture must be an AFTER ... FOR EACH STATEMENT trigger with the follower's id as argument"),
				 errhint("gs_export_follow() creates the capture triggers.")));
	if (!gs_extension_lookup(&nspoid, &owner))
		return PointerGetDatum(NULL);
	follower = DirectFunctionCall1(uuid_in, CStringGetDatum(td->tg_trigger->tgargs[0]));

	if (!TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		AttrNumber	attnum = get_attnum(RelationGetRelid(td->tg_relation), "id");
		Oid			atttype = get_atttype(RelationGetRelid(td->tg_relation), attnum);

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table \"%s\" has no column \"id\", which gs_export's capture reads",
							RelationGetRelationName(td->tg_relation))));
		ids = palloc(sizeof(int64) * cap);
		if (TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event))
			read_ids(td->tg_newtable, td->tg_relation, attnum, atttype, &ids, &n, &cap);
		if (TRIGGER_FIRED_BY_DELETE(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event))
			read_ids(td->tg_oldtable, td->tg_relation, attnum, atttype, &ids, &n, &cap);
		if (n == 0)
			return PointerGetDatum(NULL);
		/* each once, in order: an UPDATE's ids come twice */
		qsort(ids, n, sizeof(int64), cmp_id);
		for (i = 1, cap = 1; i < n; i++)
			if (ids[i] != ids[cap - 1])
				ids[cap++] = ids[i];
		n = cap;
	}

	/* the queue is the extension owner's */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plans_schema != nspoid || insert_plan == NULL)
	{
		const char *schema = quote_identifier(get_namespace_name(nspoid));
		Oid			insert_types[2] = {UUIDOID, INT8ARRAYOID};
		Oid			truncate_types[1] = {UUIDOID};

		if (insert_plan)
			SPI_freeplan(insert_plan);
		if (truncate_plan)
			SPI_freeplan(truncate_plan);
		insert_plan = truncate_plan = NULL;
		insert_plan = keep_plan(psprintf("INSERT INTO %s.gs_export_changes (job_id, ids) VALUES ($1, $2)",
										 schema), 2, insert_types);
		truncate_plan = keep_plan(psprintf("SELECT %s._gs_capture_truncate($1)", schema),
								  1, truncate_types);
		plans_schema = nspoid;
	}
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		Datum		args[1] = {follower};

		if (SPI_execute_plan(truncate_plan, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "gs_export: could not record a TRUNCATE of leads");
	}
	else
	{
		Datum	   *elems = palloc(sizeof(Datum) * Min(n, CAPTURE_IDS_PER_ROW));

		for (i = 0; i < n; i += CAPTURE_IDS_PER_ROW)
		{
			int			k;
			int			m = Min(CAPTURE_IDS_PER_ROW, n - i);
			Datum		args[2];

			for (k = 0; k < m; k++)
				elems[k] = Int64GetDatum(ids[i + k]);
			args[0] = follower;
			args[1] = PointerGetDatum(construct_array(elems, m, INT8OID, 8,
													  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			if (SPI_execute_plan(insert_plan, args, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "gs_export: could not record the changes of leads");
		}
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);
	gs_export_wake_followers_at_commit();
	return PointerGetDatum(NULL);
}
