/*-------------------------------------------------------------------------
 *
 * source.c
 *	  Reads the leads of a job, batch by batch, with SPI: a prepared keyset
 *	  query on (updated_at, id), newest first, never OFFSET, each lead once,
 *	  fetched through a cursor so that a batch stops at the request size
 *	  cap without holding more rows than it sends.  Each read locks leads
 *	  before it takes its snapshot.  The query runs with the job owner's
 *	  privileges, so row level security and grants on leads apply to what a
 *	  job can export; so does the read of a failed lead's snapshot.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "gs_export.h"

/* Rows fetched from the cursor at a time. */
#define SOURCE_FETCH_ROWS 128

struct GsSource
{
	GsJob	   *job;
	SPIPlanPtr	plan;			/* the batch query */
	SPIPlanPtr	backfill_plan;	/* a follower's: its backfill, by id */
	SPIPlanPtr	ids_plan;		/* a follower's: leads by id */
	SPIPlanPtr	keys_plan;		/* a verify's by version: only the keys */
	SPIPlanPtr	snapshot_plan;	/* failed leads as read: the whole row */
	SPIPlanPtr	snapshot_columns_plan;	/* or the columns the job reads */
	Oid			leads;
	List	   *columns;		/* names of the keys each object has */
	int			ncolumns;		/* lead columns selected (before the key) */
	MemoryContext shape_cxt;	/* the shape, made again if leads' types change */
	GsPayloadShape *shape;
	int			att_updated_at; /* the key and the day, by name */
	int			att_id;
	int			att_day;
	int			nextra;			/* parameters after the query's own */
	Oid		   *extra_types;
	Datum	   *extra_values;
};

/*
 * The job's owner reads the leads: a lead the owner may not read is not
 * sent.  Under Supabase the owner is a user of the role authenticated,
 * whom row level security on leads knows by auth.uid(): the JWT claims.
 * An error in between is cleaned up by the transaction's abort.
 */
typedef struct AsOwner
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} AsOwner;

static void
as_owner_begin(GsJob *job, AsOwner *as)
{
	GetUserIdAndSecContext(&as->save_userid, &as->save_sec_context);
	SetUserIdAndSecContext(job->owner, as->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	as->save_nestlevel = NewGUCNestLevel();
	if (job->owner_claims)
		(void) set_config_option("request.jwt.claims", job->owner_claims,
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
}

static void
as_owner_end(AsOwner *as)
{
	AtEOXact_GUC(true, as->save_nestlevel);
	SetUserIdAndSecContext(as->save_userid, as->save_sec_context);
}

static void
missing_leads(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_TABLE),
			 errmsg("relation \"%s.leads\" does not exist",
					get_namespace_name(gs_xact_schema())),
			 errhint("gs_export exports the table leads of the schema it is installed in.")));
}

/*
 * Start a transaction that reads leads (gs_xact_begin, leads locked before
 * its snapshot); *leads gets the table.  False, the transaction ended,
 * when the extension is gone (or not at this library's version); an error
 * when leads is.
 */
static bool
begin_leads_xact(const char *activity, Oid *leads)
{
	if (gs_xact_begin(activity, true, leads) != GS_STORE_READY)
	{
		gs_xact_end();
		return false;
	}
	if (!OidIsValid(*leads))
		missing_leads();
	return true;
}

static SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep the plan of \"%s\"", sql);
	return plan;
}

/*
 * The conditions of the job's filter and changed_since, for a query whose
 * own parameters end at $first - 1: changed_since is $first, each filter's
 * values (a text[] literal, cast to the column's type) one more.  Values
 * are parameters, never SQL; the types come from the catalog.
 */
static void
append_filter(StringInfo sql, GsJob *job, int first)
{
	ListCell   *lc;
	ListCell   *lt;
	int			n = first + 1;

	/*
	 * A follower's scope is every lead its filter takes, whatever its
	 * updated_at (NULL included): no changed_since, the values from $first.
	 * A verify's too: it looks at the days and changed_since itself.
	 */
	if (job->follow || job->verify)
		n = first;
	else
		appendStringInfo(sql, " AND l.updated_at >= $%d", first);
	forboth(lc, job->filter_columns, lt, job->filter_types)
	{
		const char *col = quote_identifier(lfirst(lc));

		appendStringInfo(sql,
						 " AND (l.%s = ANY ($%d::pg_catalog.text::pg_catalog.text[]::%s[])"
						 "      OR (l.%s IS NULL AND pg_catalog.array_position($%d::pg_catalog.text::pg_catalog.text[], NULL) IS NOT NULL))",
						 col, n, (char *) lfirst(lt), col, n);
		n++;
	}
}

/*
 * A new source for the job, in cxt: the values of the parameters that
 * follow each query's own (changed_since, then each filter's values), and
 * the context of the payload's shape.
 */
static GsSource *
source_new(GsJob *job, MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	GsSource   *src = palloc0(sizeof(GsSource));
	ListCell   *lv;
	int			i;

	src->job = job;
	src->nextra = 1 + list_length(job->filter_values);
	src->extra_types = palloc(sizeof(Oid) * src->nextra);
	src->extra_values = palloc(sizeof(Datum) * src->nextra);
	src->extra_types[0] = TIMESTAMPTZOID;
	src->extra_values[0] = TimestampTzGetDatum(job->changed_since);
	i = 1;
	foreach(lv, job->filter_values)
	{
		src->extra_types[i] = TEXTOID;
		src->extra_values[i++] = CStringGetTextDatum(lfirst(lv));
	}
	src->shape_cxt = AllocSetContextCreate(cxt, "gs_export payload shape",
										   ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(oldcxt);
	return src;
}

/*
 * The select list of the mapped columns: each remote column gets its lead
 * column, under the remote's name (the names of the query's columns are
 * the keys of the JSON objects), "l.lead AS remote, " each.  src->columns
 * gets the keys each object has (in src's context): the remote columns,
 * then synced_at_column and source_column when the job has them.
 */
static char *
mapped_columns(GsSource *src, MemoryContext cxt)
{
	GsJob	   *job = src->job;
	StringInfoData list;
	MemoryContext oldcxt;
	ListCell   *lr;
	ListCell   *ll;

	initStringInfo(&list);
	oldcxt = MemoryContextSwitchTo(cxt);
	forboth(lr, job->remote_columns, ll, job->lead_columns)
	{
		appendStringInfo(&list, "l.%s AS %s, ", quote_identifier(lfirst(ll)),
						 quote_identifier(lfirst(lr)));
		src->columns = lappend(src->columns, lfirst(lr));
	}
	src->ncolumns = list_length(src->columns);
	if (job->synced_at_column)
		src->columns = lappend(src->columns, job->synced_at_column);
	if (job->source_column)
		src->columns = lappend(src->columns, job->source_column);
	MemoryContextSwitchTo(oldcxt);
	return list.data;
}

/*
 * Prepare (and keep) the batch query on leads (qualified).
 *
 * $1, $2: the last lead done (exclusive); $3: the oldest instant of the
 * pass (inclusive); $4: the job's time zone; $5: the batch size; then the
 * filter's (append_filter).  An infinite updated_at belongs to no day:
 * such leads are not exported.  The mapped columns come first, then the
 * key and the lead's day; every name is qualified, as a remote name may
 * be a lead column's name.
 */
static void
prepare_batch_query(GsSource *src, const char *qualified, const char *columns)
{
	StringInfoData sql;
	Oid		   *argtypes;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT %s"
					 "       l.updated_at AS gs_export_updated_at, l.id::pg_catalog.int8 AS gs_export_id,"
					 "       (l.updated_at AT TIME ZONE $4)::pg_catalog.date AS gs_export_day"
					 "  FROM %s l"
					 " WHERE (l.updated_at, l.id) < ($1, $2) AND l.updated_at >= $3"
					 "   AND l.updated_at > '-infinity'::pg_catalog.timestamptz",
					 columns, qualified);
	append_filter(&sql, src->job, 6);
	appendStringInfoString(&sql, " ORDER BY l.updated_at DESC, l.id DESC LIMIT $5");
	argtypes = palloc(sizeof(Oid) * (5 + src->nextra));
	argtypes[0] = TIMESTAMPTZOID;
	argtypes[1] = INT8OID;
	argtypes[2] = TIMESTAMPTZOID;
	argtypes[3] = TEXTOID;
	argtypes[4] = INT4OID;
	memcpy(argtypes + 5, src->extra_types, sizeof(Oid) * src->nextra);
	src->plan = prepare_kept(sql.data, 5 + src->nextra, argtypes);
	pfree(argtypes);
	pfree(sql.data);
}

/*
 * Prepare (and keep) a follower's two reads of leads, of its scope (the
 * filter's values from $3, or $2): its backfill, $1 the last id done, $2
 * the batch size, by id; and the leads of $1 (an int8[]), the changes it
 * takes.  The key and the day as the batch query has them (the day is not
 * used).
 */
static void
prepare_follow_queries(GsSource *src, const char *qualified, const char *columns)
{
	StringInfoData sql;
	Oid		   *argtypes = palloc(sizeof(Oid) * (2 + src->nextra));
	const char *keys = "       l.updated_at AS gs_export_updated_at, l.id::pg_catalog.int8 AS gs_export_id,"
		"       NULL::pg_catalog.date AS gs_export_day";

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s%s FROM %s l", columns, keys, qualified);
	appendStringInfoString(&sql, " WHERE l.id > $1");
	append_filter(&sql, src->job, 3);
	appendStringInfoString(&sql, " ORDER BY l.id LIMIT $2");
	argtypes[0] = INT8OID;
	argtypes[1] = INT4OID;
	memcpy(argtypes + 2, src->extra_types + 1, sizeof(Oid) * (src->nextra - 1));
	src->backfill_plan = prepare_kept(sql.data, 1 + src->nextra, argtypes);

	if (src->job->verify && !src->job->compare_content)
	{
		/* a verify by version reads updated_at and id alone (1 and 2) */
		resetStringInfo(&sql);
		appendStringInfo(&sql, "SELECT l.updated_at, l.id::pg_catalog.int8 FROM %s l", qualified);
		appendStringInfoString(&sql, " WHERE l.id > $1");
		append_filter(&sql, src->job, 3);
		appendStringInfoString(&sql, " ORDER BY l.id LIMIT $2");
		src->keys_plan = prepare_kept(sql.data, 1 + src->nextra, argtypes);
	}

	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s%s FROM %s l", columns, keys, qualified);
	appendStringInfoString(&sql, " WHERE l.id OPERATOR(pg_catalog.=) ANY ($1)");
	append_filter(&sql, src->job, 2);
	argtypes[0] = INT8ARRAYOID;
	memcpy(argtypes + 1, src->extra_types + 1, sizeof(Oid) * (src->nextra - 1));
	src->ids_plan = prepare_kept(sql.data, src->nextra, argtypes);
	pfree(argtypes);
	pfree(sql.data);
}

/*
 * Prepare (and keep) the two reads of failed leads by id ($1, an int8[]):
 * the whole row, and, for an owner who may read only some columns of
 * leads, the columns the job reads.
 */
static void
prepare_snapshot_queries(GsSource *src, const char *qualified, const char *columns)
{
	StringInfoData sql;
	Oid			snapshot_types[1] = {INT8ARRAYOID};

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT l.id::pg_catalog.int8, pg_catalog.to_jsonb(l)::pg_catalog.text"
					 "  FROM %s l WHERE l.id OPERATOR(pg_catalog.=) ANY ($1)",
					 qualified);
	src->snapshot_plan = prepare_kept(sql.data, 1, snapshot_types);

	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT s.gs_export_id,"
					 "       (pg_catalog.to_jsonb(s) OPERATOR(pg_catalog.-) 'gs_export_id'::pg_catalog.text)::pg_catalog.text"
					 "  FROM (SELECT %s l.id::pg_catalog.int8 AS gs_export_id FROM %s l"
					 "         WHERE l.id OPERATOR(pg_catalog.=) ANY ($1)) s",
					 columns, qualified);
	src->snapshot_columns_plan = prepare_kept(sql.data, 1, snapshot_types);
	pfree(sql.data);
}

/*
 * Count the leads of the job's day range, [count_from, count_to) with its
 * filter, as its owner reads them (an index-only scan on (updated_at, id)
 * where that index exists), and record the count on the job
 * (leads_in_range).
 */
static void
count_day_range(GsSource *src, const char *qualified)
{
	GsJob	   *job = src->job;
	StringInfoData sql;
	Oid		   *count_types = palloc(sizeof(Oid) * (2 + src->nextra));
	Datum	   *count_values = palloc(sizeof(Datum) * (2 + src->nextra));
	Datum		args[2];
	AsOwner		as;
	bool		isnull;
	int64		n;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT pg_catalog.count(*) FROM %s l"
					 " WHERE l.updated_at >= $1 AND l.updated_at < $2"
					 "   AND l.updated_at > '-infinity'::pg_catalog.timestamptz",
					 qualified);
	append_filter(&sql, job, 3);
	count_types[0] = TIMESTAMPTZOID;
	count_types[1] = TIMESTAMPTZOID;
	count_values[0] = TimestampTzGetDatum(job->count_from);
	count_values[1] = TimestampTzGetDatum(job->count_to);
	memcpy(count_types + 2, src->extra_types, sizeof(Oid) * src->nextra);
	memcpy(count_values + 2, src->extra_values, sizeof(Datum) * src->nextra);
	as_owner_begin(job, &as);
	if (SPI_execute_with_args(sql.data, 2 + src->nextra, count_types, count_values,
							  NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not count the leads of the day range");
	as_owner_end(&as);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	args[0] = UUIDPGetDatum(&job->id);
	args[1] = Int64GetDatum(n);
	(void) gs_store_call(GS_STORE_SET_LEADS_IN_RANGE, args, NULL);
}

/*
 * Find the lead columns to send and prepare the queries on leads, in a
 * transaction of its own that locks leads first; a job that starts (not
 * one that goes on) also counts the leads of its day range.  NULL when the
 * extension is gone (or not at this library's version).
 */
GsSource *
gs_source_open(GsJob *job, MemoryContext cxt)
{
	GsSource   *src;
	Oid			leads;
	const char *qualified;
	char	   *columns;

	if (!begin_leads_xact("gs_export: preparing the leads query", &leads))
		return NULL;

	src = source_new(job, cxt);
	src->leads = leads;
	columns = mapped_columns(src, cxt);
	qualified = quote_qualified_identifier(get_namespace_name(gs_xact_schema()), "leads");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (job->follow || job->verify)
		prepare_follow_queries(src, qualified, columns);
	else
		prepare_batch_query(src, qualified, columns);
	prepare_snapshot_queries(src, qualified, columns);
	if (job->count_range)
		count_day_range(src, qualified);
	SPI_finish();
	pfree(columns);

	gs_xact_end();
	return src;
}

/*
 * The keys each object carries, for the request's columns parameter.
 */
List *
gs_source_columns(GsSource *src)
{
	return src->columns;
}

/*
 * The payload's shape for the query's row type.  A column's type can change
 * under a running job (ALTER TABLE leads ALTER COLUMN ... TYPE): each fetch
 * is checked against the shape, which is made again when it differs.
 */
static void
ensure_shape(GsSource *src, TupleDesc tupdesc)
{
	MemoryContext oldcxt;

	if (src->shape != NULL && gs_payload_shape_matches(src->shape, tupdesc))
		return;
	if (src->shape != NULL)
		ereport(LOG,
				(errmsg("gs_export: job %s: the columns of leads changed type; values are now sent as the new types",
						src->job->id_text)));
	MemoryContextReset(src->shape_cxt);
	oldcxt = MemoryContextSwitchTo(src->shape_cxt);
	src->shape = gs_payload_shape(tupdesc, src->ncolumns, src->job->synced_at_column,
								  src->job->source_column, src->job->source_value);
	MemoryContextSwitchTo(oldcxt);
	src->att_updated_at = SPI_fnumber(tupdesc, "gs_export_updated_at");
	src->att_id = SPI_fnumber(tupdesc, "gs_export_id");
	src->att_day = SPI_fnumber(tupdesc, "gs_export_day");
	if (src->att_updated_at <= 0 || src->att_id <= 0 || src->att_day <= 0)
		elog(ERROR, "the leads query returned no key columns");
}

/*
 * For the read that follows, as the job's owner: the index paths only (a
 * batch read by a keyset, or a follower's leads by id, must not become a
 * scan of the whole table and a sort for each batch, whatever the filter
 * or the planner's estimates).  as_owner_end restores the settings.
 */
static void
index_paths_only(void)
{
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * Read the next batch: the leads after (after_ts, after_id), newest first,
 * at most batch_size of them and at most gs_export.max_request_size bytes
 * of JSON; a lead alone over that size is a batch of its own, marked
 * oversized.  Everything the batch needs later lives in batch_cxt (and in
 * only its leads' JSON texts).  An empty batch means the
 * pass is done; NULL that the extension was dropped.
 */
GsBatch *
gs_source_next(GsSource *src, MemoryContext batch_cxt,
			   TimestampTz after_ts, int64 after_id)
{
	GsJob	   *job = src->job;
	GsBatch    *batch;
	Datum	   *values = palloc(sizeof(Datum) * (5 + src->nextra));
	Oid			leads;
	AsOwner		as;
	Portal		portal;
	MemoryContext oldcxt;
	char	   *sync_at;
	size_t		body_bytes = 1;	/* "[" */
	size_t		cap = (size_t) gs_export_max_request_size;
	bool		full = false;

	if (!begin_leads_xact("gs_export: reading leads", &leads))
		return NULL;

	values[0] = TimestampTzGetDatum(after_ts);
	values[1] = Int64GetDatum(after_id);
	values[2] = TimestampTzGetDatum(job->pass_lower);
	values[3] = CStringGetTextDatum(job->time_zone);
	values[4] = Int32GetDatum(job->batch_size);
	memcpy(values + 5, src->extra_values, sizeof(Datum) * src->nextra);

	oldcxt = MemoryContextSwitchTo(batch_cxt);
	batch = palloc0(sizeof(GsBatch));
	batch->ids = palloc(sizeof(int64) * job->batch_size);
	batch->texts = palloc0(sizeof(char *) * job->batch_size);
	batch->lens = palloc0(sizeof(size_t) * job->batch_size);
	sync_at = JsonEncodeDateTime(NULL, TimestampTzGetDatum(GetCurrentTimestamp()),
								 TIMESTAMPTZOID, NULL);
	MemoryContextSwitchTo(oldcxt);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	as_owner_begin(job, &as);

	/*
	 * The keyset walk on (updated_at, id) stays the access path whatever
	 * the filter: a scan of the whole table and a sort for each batch would
	 * read every lead once per batch.
	 */
	index_paths_only();
	portal = SPI_cursor_open(NULL, src->plan, values, NULL, true);
	while (!full)
	{
		TupleDesc	tupdesc;
		uint64		i;

		SPI_cursor_fetch(portal, true, SOURCE_FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		tupdesc = SPI_tuptable->tupdesc;
		ensure_shape(src, tupdesc);

		oldcxt = MemoryContextSwitchTo(batch_cxt);
		for (i = 0; i < SPI_processed && !full; i++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[i];
			int			k = batch->nleads;
			struct json_object *obj;
			const char *text;
			size_t		len;
			bool		isnull;

			obj = gs_payload_lead(src->shape, tuple, tupdesc, sync_at);
			text = gs_payload_text(obj, &len);
			if (k > 0 && body_bytes + len + 1 > cap)
			{
				/* it goes first in the next batch */
				pfree(unconstify(char *, text));
				full = true;
				break;
			}
			batch->texts[k] = text;
			batch->lens[k] = len;
			batch->ids[k] = DatumGetInt64(heap_getattr(tuple, src->att_id, tupdesc, &isnull));
			batch->last_ts = DatumGetTimestampTz(heap_getattr(tuple, src->att_updated_at,
															  tupdesc, &isnull));
			batch->last_id = batch->ids[k];
			batch->last_day = DatumGetDateADT(heap_getattr(tuple, src->att_day, tupdesc, &isnull));
			batch->nleads++;
			body_bytes += len + 1;
			if (k == 0 && len + 2 > cap)
			{
				batch->oversized = true;	/* alone, and never sent */
				full = true;
			}
		}
		MemoryContextSwitchTo(oldcxt);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	as_owner_end(&as);
	SPI_finish();
	gs_xact_end();
	return batch;
}

/*
 * The failed leads as the job's owner reads them now, as JSON text (NULL
 * for a lead the owner may no longer read), in the order of ids: the whole
 * row, or where the owner may read only some columns, the columns the job
 * reads.  Called
 * inside the transaction that records them.
 */
char **
gs_source_snapshots(GsSource *src, const int64 *ids, int n)
{
	char	  **snapshots = palloc0(sizeof(char *) * n);
	Datum	   *elems = palloc(sizeof(Datum) * n);
	Datum		values[1];
	AsOwner		as;
	MemoryContext caller = CurrentMemoryContext;
	uint64		i;
	int			k;

	for (k = 0; k < n; k++)
		elems[k] = Int64GetDatum(ids[k]);
	values[0] = PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/*
	 * The whole lead when the owner may read all of it; else what the job
	 * reads of it (column privileges), under the remote's names.
	 */
	as_owner_begin(src->job, &as);
	if (SPI_execute_plan(pg_class_aclcheck(src->leads, src->job->owner, ACL_SELECT) == ACLCHECK_OK ?
						 src->snapshot_plan : src->snapshot_columns_plan,
						 values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the failed leads");
	as_owner_end(&as);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 1, &isnull));
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);

		for (k = 0; k < n; k++)
			if (ids[k] == id && !isnull)
			{
				MemoryContext oldcxt = MemoryContextSwitchTo(caller);

				snapshots[k] = TextDatumGetCString(d);
				MemoryContextSwitchTo(oldcxt);
			}
	}
	SPI_finish();
	return snapshots;
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * A verify's page of leads (verify.c): up to limit leads of its filter
 * after after_id, by id, as its owner reads them, each with its updated_at
 * and, with texts (by content), its JSON object as the export builds it
 * (gs_payload_lead, not serialized: the caller puts each); without (by
 * version), only the keys are read.
 * Read in a transaction of its own.  NULL when the extension is gone.
 */
GsBatch *
gs_source_verify_page(GsSource *src, MemoryContext batch_cxt, int64 after_id, int limit,
					  bool texts)
{
	GsJob	   *job = src->job;
	GsBatch    *batch;
	Datum	   *values = palloc(sizeof(Datum) * (2 + src->nextra));
	Oid			leads;
	AsOwner		as;
	MemoryContext oldcxt;
	int			ret;
	uint64		i;

	if (!begin_leads_xact("gs_export: verify: reading leads", &leads))
		return NULL;
	values[0] = Int64GetDatum(after_id);
	values[1] = Int32GetDatum(limit);
	memcpy(values + 2, src->extra_values + 1, sizeof(Datum) * (src->nextra - 1));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	as_owner_begin(job, &as);
	ret = SPI_execute_plan(texts ? src->backfill_plan : src->keys_plan, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the leads: %s", SPI_result_code_string(ret));
	as_owner_end(&as);

	oldcxt = MemoryContextSwitchTo(batch_cxt);
	batch = palloc0(sizeof(GsBatch));
	{
		int			cap = Max((int) SPI_processed, 1);

		batch->ids = palloc(sizeof(int64) * cap);
		batch->texts = palloc0(sizeof(char *) * cap);
		batch->lens = palloc0(sizeof(size_t) * cap);
		batch->updated = palloc(sizeof(TimestampTz) * cap);
		batch->updated_null = palloc(sizeof(bool) * cap);
		batch->objects = palloc0(sizeof(void *) * cap);
	}
	if (SPI_processed > 0 && texts)
		ensure_shape(src, SPI_tuptable->tupdesc);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	tupdesc = SPI_tuptable->tupdesc;
		int			k = batch->nleads;
		bool		isnull;
		Datum		ts;

		if (texts)
			batch->objects[k] = gs_payload_lead(src->shape, tuple, tupdesc, "");
		batch->ids[k] = DatumGetInt64(heap_getattr(tuple, texts ? src->att_id : 2, tupdesc, &isnull));
		ts = heap_getattr(tuple, texts ? src->att_updated_at : 1, tupdesc, &isnull);
		batch->updated_null[k] = isnull;
		batch->updated[k] = isnull ? 0 : DatumGetTimestampTz(ts);
		batch->last_id = batch->ids[k];
		batch->nleads++;
	}
	MemoryContextSwitchTo(oldcxt);
	SPI_finish();
	gs_xact_end();
	return batch;
}

/*
 * The leads a verify compares (its filter, and its days [pass_lower,
 * cursor_ts) when it has any), as its owner reads them, recorded on the
 * job as leads_in_range (its progress).  -1 when the extension is gone.
 */
int64
gs_source_verify_count(GsSource *src)
{
	GsJob	   *job = src->job;
	StringInfoData sql;
	Oid		   *types = palloc(sizeof(Oid) * (2 + src->nextra));
	Datum	   *values = palloc(sizeof(Datum) * (2 + src->nextra));
	bool		window = !(TIMESTAMP_IS_NOBEGIN(job->pass_lower) && TIMESTAMP_IS_NOEND(job->cursor_ts));
	Datum		args[2];
	Oid			leads;
	AsOwner		as;
	bool		isnull;
	int64		n;

	if (!begin_leads_xact("gs_export: verify: counting leads", &leads))
		return -1;
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT pg_catalog.count(*) FROM %s l WHERE ",
					 quote_qualified_identifier(get_namespace_name(gs_xact_schema()), "leads"));
	appendStringInfoString(&sql, window ?
						   "l.updated_at >= $1 AND l.updated_at < $2" :
						   "$1 IS NOT NULL AND $2 IS NOT NULL");
	append_filter(&sql, job, 3);
	types[0] = TIMESTAMPTZOID;
	types[1] = TIMESTAMPTZOID;
	values[0] = TimestampTzGetDatum(job->pass_lower);
	values[1] = TimestampTzGetDatum(job->cursor_ts);
	memcpy(types + 2, src->extra_types + 1, sizeof(Oid) * (src->nextra - 1));
	memcpy(values + 2, src->extra_values + 1, sizeof(Datum) * (src->nextra - 1));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	as_owner_begin(job, &as);
	if (SPI_execute_with_args(sql.data, 1 + src->nextra, types, values,
							  NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not count the leads a verify compares");
	as_owner_end(&as);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	args[0] = UUIDPGetDatum(&job->id);
	args[1] = Int64GetDatum(n);
	(void) gs_store_call(GS_STORE_SET_LEADS_IN_RANGE, args, NULL);
	SPI_finish();
	gs_xact_end();
	return n;
}

/*
 * Read a follower's next batch, in one transaction that locks leads first:
 * in its backfill (job->pass_kind "backfill"), the leads of its scope after
 * after_id, by id; else the changes it has yet to send
 * (_gs_follow_take: the rows of gs_export_changes but except_seqs, those
 * of the batches under way), and those leads as they are now: the ones of
 * the scope go first (nupserts, with their JSON), the ids gone or out of
 * the scope after them (to delete at the remote).  A TRUNCATE's row comes
 * alone (truncated), and only when marker_ok.  *running: false when the
 * job is no longer running (the batch is then empty).  NULL when the
 * extension is gone.
 */
GsBatch *
gs_source_follow_next(GsSource *src, MemoryContext batch_cxt, int64 after_id,
					  const int64 *except_seqs, int nexcept, bool marker_ok,
					  bool *running)
{
	GsJob	   *job = src->job;
	GsBatch    *batch;
	Datum	   *values = palloc(sizeof(Datum) * (2 + src->nextra));
	Oid			leads;
	AsOwner		as;
	MemoryContext oldcxt;
	char	   *sync_at;
	int64	   *taken = NULL;
	int			ntaken = 0;
	bool		backfill = strcmp(job->pass_kind, "backfill") == 0;
	int			ret;
	uint64		i;

	*running = true;
	if (!begin_leads_xact("gs_export: reading changes", &leads))
		return NULL;

	oldcxt = MemoryContextSwitchTo(batch_cxt);
	batch = palloc0(sizeof(GsBatch));
	sync_at = JsonEncodeDateTime(NULL, TimestampTzGetDatum(GetCurrentTimestamp()),
								 TIMESTAMPTZOID, NULL);
	MemoryContextSwitchTo(oldcxt);

	if (!backfill)
	{
		Datum		args[4];
		Datum	   *elems = palloc(sizeof(Datum) * Max(nexcept, 1));
		GsRows	   *rows;
		bool		isnull;
		ArrayType  *arr;
		Datum	   *d;
		int			n;
		int			k;

		for (k = 0; k < nexcept; k++)
			elems[k] = Int64GetDatum(except_seqs[k]);
		args[0] = UUIDPGetDatum(&job->id);
		args[1] = PointerGetDatum(construct_array(elems, nexcept, INT8OID, 8,
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[2] = Int32GetDatum(job->batch_size);
		args[3] = BoolGetDatum(marker_ok);
		rows = gs_store_call(GS_STORE_FOLLOW_TAKE, args, NULL);
		if (strcmp(gs_rows_text(rows, 0, "status"), "running") != 0)
		{
			*running = false;
			gs_xact_end();
			return batch;
		}
		arr = DatumGetArrayTypeP(gs_rows_value(rows, 0, "seqs", &isnull));
		deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, NULL, &n);
		batch->seqs = MemoryContextAlloc(batch_cxt, sizeof(int64) * Max(n, 1));
		for (k = 0; k < n; k++)
			batch->seqs[k] = DatumGetInt64(d[k]);
		batch->nseqs = n;
		batch->truncated = gs_rows_bool(rows, 0, "truncated");
		arr = DatumGetArrayTypeP(gs_rows_value(rows, 0, "ids", &isnull));
		deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, NULL, &n);
		taken = palloc(sizeof(int64) * Max(n, 1));
		for (k = 0; k < n; k++)
			taken[k] = DatumGetInt64(d[k]);
		ntaken = n;
		if (batch->truncated || ntaken == 0)
		{
			gs_xact_end();
			return batch;
		}
		values[0] = gs_rows_value(rows, 0, "ids", &isnull);
		memcpy(values + 1, src->extra_values + 1, sizeof(Datum) * (src->nextra - 1));

		/*
		 * Read the leads in a snapshot newer than the take's: the
		 * transaction's first snapshot may miss a change whose rows of
		 * gs_export_changes the take (a new snapshot) saw.
		 */
		PopActiveSnapshot();
		PushActiveSnapshot(GetTransactionSnapshot());
	}
	else
	{
		values[0] = Int64GetDatum(after_id);
		values[1] = Int32GetDatum(job->batch_size);
		memcpy(values + 2, src->extra_values + 1, sizeof(Datum) * (src->nextra - 1));
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	as_owner_begin(job, &as);
	index_paths_only();
	ret = SPI_execute_plan(backfill ? src->backfill_plan : src->ids_plan, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the leads: %s", SPI_result_code_string(ret));
	as_owner_end(&as);

	oldcxt = MemoryContextSwitchTo(batch_cxt);
	{
		int			cap = (int) SPI_processed + ntaken;

		batch->ids = palloc(sizeof(int64) * Max(cap, 1));
		batch->texts = palloc0(sizeof(char *) * Max(cap, 1));
		batch->lens = palloc0(sizeof(size_t) * Max(cap, 1));
	}
	if (SPI_processed > 0)
		ensure_shape(src, SPI_tuptable->tupdesc);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	tupdesc = SPI_tuptable->tupdesc;
		int			k = batch->nleads;
		bool		isnull;

		batch->texts[k] = gs_payload_text(gs_payload_lead(src->shape, tuple, tupdesc, sync_at),
										  &batch->lens[k]);
		batch->ids[k] = DatumGetInt64(heap_getattr(tuple, src->att_id, tupdesc, &isnull));
		batch->last_id = batch->ids[k];
		batch->nleads++;
	}
	batch->nupserts = batch->nleads;
	MemoryContextSwitchTo(oldcxt);
	SPI_finish();

	/* the ids taken that are not of the scope now: deleted */
	if (ntaken > 0)
	{
		int64	   *found = palloc(sizeof(int64) * Max(batch->nupserts, 1));
		int			k;
		int			f = 0;

		memcpy(found, batch->ids, sizeof(int64) * batch->nupserts);
		qsort(found, batch->nupserts, sizeof(int64), cmp_int64);
		for (k = 0; k < ntaken; k++)
		{
			while (f < batch->nupserts && found[f] < taken[k])
				f++;
			if (f < batch->nupserts && found[f] == taken[k])
				continue;
			batch->ids[batch->nleads++] = taken[k];
		}
	}
	gs_xact_end();
	return batch;
}
