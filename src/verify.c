/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  The worker of a verify job (gs_export_verify): it walks the remote
 *	  rows of the job's scope through the REST API, in keyset pages by id
 *	  (GET /rest/v1/{table}?select=<the columns compared>&<source
 *	  column>=eq.<value>&id=gt.<last>&order=id&limit=<page>), beside the
 *	  leads of its filter read in the same order (source.c, as the job's
 *	  owner), merge-joins the two, and records each difference in
 *	  gestao_scouter_export_diffs (_gs_verify_record), with its position,
 *	  so that a pause and a resume go on from there.  The walk goes in
 *	  segments: a page of leads, and the remote's rows of the same id range
 *	  (&id=gt.<lo>&id=lte.<hi>, more pages while one comes full); a few
 *	  segments are read ahead, their GETs at the remote at once (4, or
 *	  max_in_flight), and merged in order.  Memory is those few pages, flat
 *	  whatever the table's size.  It sends nothing.
 *
 *	  Kinds: missing (a lead compared, no remote row), stale (the remote
 *	  holds an older updated_at), different (same version, a column
 *	  differs; or the remote's version is newer than the lead's), extra (a
 *	  remote row of the scope whose lead is gone or out of the filter).
 *	  compare "version" looks at the remote column that receives
 *	  updated_at only; "content" at every column sent (the lead's JSON as
 *	  the export builds it, payload.c), but the synced-at and source
 *	  columns, with numbers compared as numbers (1.10 = 1.1), timestamps as
 *	  instants, and JSON values as jsonb compares them.  A lead outside the
 *	  job's days (start_date, end_date, changed_since) is not compared, and
 *	  neither is its remote row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/array.h"
/* PostgreSQL's json_object() would clash with json-c's type */
#define json_object pg_json_object
#include "utils/builtins.h"
#undef json_object
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include <json-c/json.h>

#include "gs_export.h"

/* Most remote rows asked for in one GET (PostgREST's usual max-rows). */
#define VERIFY_PAGE_MAX 1000

/* Differences held before they are recorded. */
#define VERIFY_FLUSH_DIFFS 1000

/* Segments read ahead, their GETs at the remote at once (by default). */
#define VERIFY_IN_FLIGHT 4

/* Longest wait between two looks at an answer. */
#define VERIFY_WAIT_MS 1000

typedef struct Verify
{
	GsJob	   *job;
	GsSource   *src;
	bool		content;		/* compare "content", else "version" */
	const char *version_column; /* the remote column of updated_at, or NULL */
	char	   *select;			/* the GET's select= */
	char	   *scope;			/* "&col=eq.value" or "" */
	int			page;			/* remote rows asked per GET */
	int			lead_page;		/* leads per segment: one fewer, so that
								 * a range whose rows are all in one answer
								 * is known whole from it (fewer than page
								 * rows) */
	bool		window;			/* only leads of [lower, upper) compared */
	TimestampTz lower;
	TimestampTz upper;

	/*
	 * The walk, in segments: each holds a page of leads, (lo, hi] the ids
	 * it covers (hi the last lead's id; PG_INT64_MAX for the last segment,
	 * whose lead page came short), and the GET of the remote's rows of
	 * that range.  Up to inflight segments are read ahead, their GETs at
	 * the remote at once; they are merged in order.
	 */
	List	   *segments;
	int			inflight;
	int64		llast;			/* the last lead id read */
	bool		ldone;			/* the last lead page has been read */
	GsBatch    *leads;			/* the segment being merged's */
	MemoryContext wcxt;			/* what merging one segment allocates */
	MemoryContext scxt;			/* the segments' contexts, one each */

	/* what is to be recorded */
	MemoryContext rcxt;
	int			ndiffs;
	int			maxdiffs;
	Datum	   *diff_ids;
	Datum	   *diff_kinds;
	Datum	   *diff_details;
	int64		compared;
	int64		position;		/* every id up to it is done, both sides */
	int64		recorded;		/* the position last recorded */

	/* where the time went, for the log (microseconds) */
	int64		us_merge;		/* merging and comparing */
	int64		us_remote;		/* waiting for the remote's pages */
	int64		us_leads;		/* reading leads */
	int64		us_record;		/* recording */
	int64		us_parse;		/* parsing the remote's pages */
	int			pages;
} Verify;

/* A string that looks like an ISO 8601 date and time. */
static bool
looks_like_timestamp(const char *s)
{
	int			i;

	for (i = 0; i < 16; i++)
	{
		char		c = s[i];

		if (c == '\0')
			return false;
		if (i == 4 || i == 7)
		{
			if (c != '-')
				return false;
		}
		else if (i == 10)
		{
			if (c != 'T' && c != ' ')
				return false;
		}
		else if (i == 13)
		{
			if (c != ':')
				return false;
		}
		else if (c < '0' || c > '9')
			return false;
	}
	return strspn(s, "0123456789-:.+TZ ") == strlen(s);
}

/* A timestamptz from its text; false when it is none. */
static bool
parse_timestamptz(const char *s, TimestampTz *ts)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		*ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
													  ObjectIdGetDatum(InvalidOid),
													  Int32GetDatum(-1)));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

static bool
is_null(struct json_object *v)
{
	return v == NULL || json_object_get_type(v) == json_type_null;
}

static bool
is_number(struct json_object *v)
{
	return json_object_get_type(v) == json_type_int || json_object_get_type(v) == json_type_double;
}

/*
 * Are two JSON values equal as sent?  Numbers as numbers, objects whatever
 * their keys' order, arrays element by element (jsonb's equality); at the
 * top (a column's value), two strings that are both timestamps as
 * instants.
 */
static bool
json_equal(struct json_object *a, struct json_object *b, bool top)
{
	if (is_null(a) || is_null(b))
		return is_null(a) && is_null(b);
	if (is_number(a) && is_number(b))
	{
		if (json_object_get_type(a) == json_type_int && json_object_get_type(b) == json_type_int)
			return json_object_get_int64(a) == json_object_get_int64(b);
		return json_object_get_double(a) == json_object_get_double(b);
	}
	if (json_object_get_type(a) != json_object_get_type(b))
		return false;
	switch (json_object_get_type(a))
	{
		case json_type_boolean:
			return json_object_get_boolean(a) == json_object_get_boolean(b);
		case json_type_string:
			{
				const char *x = json_object_get_string(a);
				const char *y = json_object_get_string(b);
				TimestampTz tx;
				TimestampTz ty;

				if (strcmp(x, y) == 0)
					return true;
				return top && looks_like_timestamp(x) && looks_like_timestamp(y) &&
					parse_timestamptz(x, &tx) && parse_timestamptz(y, &ty) && tx == ty;
			}
		case json_type_object:
			{
				struct json_object_iter it;

				if (json_object_object_length(a) != json_object_object_length(b))
					return false;
				json_object_object_foreachC(a, it)
				{
					struct json_object *vb;

					if (!json_object_object_get_ex(b, it.key, &vb) || !json_equal(it.val, vb, false))
						return false;
				}
				return true;
			}
		case json_type_array:
			{
				size_t		n = json_object_array_length(a);
				size_t		i;

				if (n != json_object_array_length(b))
					return false;
				for (i = 0; i < n; i++)
					if (!json_equal(json_object_array_get_idx(a, i),
									json_object_array_get_idx(b, i), false))
						return false;
				return true;
			}
		default:
			return false;
	}
}

/* A value for a detail: a copy (json-c's reference), or JSON null. */
static struct json_object *
detail_value(struct json_object *v)
{
	return is_null(v) ? NULL : json_object_get(v);
}

static struct json_object *
lead_version(Verify *v, int i)
{
	char	   *text;
	struct json_object *obj;

	if (v->leads->updated_null[i])
		return NULL;
	text = JsonEncodeDateTime(NULL, TimestampTzGetDatum(v->leads->updated[i]),
							  TIMESTAMPTZOID, NULL);
	obj = json_object_new_string(text);
	pfree(text);
	return obj;
}

/* Note a difference, its detail a json-c object (released here). */
static void
add_diff(Verify *v, int64 id, const char *kind, struct json_object *detail)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(v->rcxt);

	if (v->ndiffs == v->maxdiffs)
	{
		v->maxdiffs *= 2;
		v->diff_ids = repalloc(v->diff_ids, sizeof(Datum) * v->maxdiffs);
		v->diff_kinds = repalloc(v->diff_kinds, sizeof(Datum) * v->maxdiffs);
		v->diff_details = repalloc(v->diff_details, sizeof(Datum) * v->maxdiffs);
	}
	v->diff_ids[v->ndiffs] = Int64GetDatum(id);
	v->diff_kinds[v->ndiffs] = CStringGetTextDatum(kind);
	v->diff_details[v->ndiffs] =
		CStringGetTextDatum(gs_scrub_json(pstrdup(json_object_to_json_string_ext(detail, JSON_C_TO_STRING_PLAIN))));
	v->ndiffs++;
	MemoryContextSwitchTo(oldcxt);
	json_object_put(detail);
}

/*
 * Record what is noted and the position, in one transaction.  false when
 * the job is no longer running (a pause) or the extension is gone.
 */
static bool
flush(Verify *v)
{
	GsStoreState state;
	bool		running = false;
	TimestampTz t0 = GetCurrentTimestamp();

	if (v->ndiffs == 0 && v->compared == 0 && v->position == v->recorded)
	{
		running = gs_job_is_running(v->job);
		v->us_record += GetCurrentTimestamp() - t0;
		return running;
	}
	state = gs_xact_begin("gs_export: verify: recording", false, NULL);
	if (state == GS_STORE_READY)
	{
		Datum		args[6];

		args[0] = UUIDPGetDatum(&v->job->id);
		args[1] = PointerGetDatum(construct_array(v->diff_ids, v->ndiffs, INT8OID, 8,
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[2] = PointerGetDatum(construct_array(v->diff_kinds, v->ndiffs, TEXTOID, -1,
												  false, TYPALIGN_INT));
		args[3] = PointerGetDatum(construct_array(v->diff_details, v->ndiffs, TEXTOID, -1,
												  false, TYPALIGN_INT));
		args[4] = Int64GetDatum(v->compared);
		args[5] = Int64GetDatum(v->position);
		running = gs_rows_bool(gs_store_call(GS_STORE_VERIFY_RECORD, args, NULL), 0,
							   "_gs_verify_record");
	}
	gs_xact_end();
	MemoryContextReset(v->rcxt);
	v->maxdiffs = 64;
	v->diff_ids = MemoryContextAlloc(v->rcxt, sizeof(Datum) * v->maxdiffs);
	v->diff_kinds = MemoryContextAlloc(v->rcxt, sizeof(Datum) * v->maxdiffs);
	v->diff_details = MemoryContextAlloc(v->rcxt, sizeof(Datum) * v->maxdiffs);
	v->ndiffs = 0;
	v->compared = 0;
	v->recorded = v->position;
	v->us_record += GetCurrentTimestamp() - t0;
	return running;
}

static int64
remote_id(struct json_object *row)
{
	struct json_object *id;

	if (!json_object_object_get_ex(row, "id", &id) || !is_number(id))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("gs_export: a remote row without a numeric id")));
	return json_object_get_int64(id);
}

typedef struct Segment
{
	MemoryContext cxt;
	int64		lo;
	int64		hi;
	GsBatch    *leads;
	int			lpos;			/* the next lead to merge */
	int64		after;			/* the GET asks for rows after this id */
	bool		answered;
	GsRemoteResult res;			/* its answer, in cxt */
	int			attempt;
	TimestampTz asked_at;
} Segment;

/* Ask the remote for the rows of the segment after seg->after. */
static void
start_get(Verify *v, Segment *seg)
{
	char	   *query;

	if (seg->hi == PG_INT64_MAX)
		query = psprintf("select=%s&id=gt." INT64_FORMAT "%s&order=id&limit=%d",
						 v->select, seg->after, v->scope, v->page);
	else
		query = psprintf("select=%s&id=gt." INT64_FORMAT "&id=lte." INT64_FORMAT "%s&order=id&limit=%d",
						 v->select, seg->after, seg->hi, v->scope, v->page);
	gs_remote_start_get(v->job->project_url, v->job->api_key, v->job->target_table, query, seg);
	pfree(query);
	seg->answered = false;
	seg->asked_at = GetCurrentTimestamp();
}

/*
 * Read the next page of leads into a new segment, and ask the remote for
 * its rows.  false when the extension is gone.
 */
static bool
add_segment(Verify *v)
{
	MemoryContext cxt = AllocSetContextCreate(v->scxt, "gs_export verify segment",
											  ALLOCSET_DEFAULT_SIZES);
	Segment    *seg = MemoryContextAllocZero(cxt, sizeof(Segment));
	TimestampTz t0 = GetCurrentTimestamp();
	MemoryContext oldcxt;

	seg->cxt = cxt;
	seg->lo = seg->after = v->llast;
	pgstat_report_activity(STATE_RUNNING, "gs_export: verify: reading leads");
	seg->leads = gs_source_verify_page(v->src, cxt, v->llast, v->lead_page, v->content);
	v->us_leads += GetCurrentTimestamp() - t0;
	if (seg->leads == NULL)
	{
		MemoryContextDelete(cxt);
		return false;
	}
	if (seg->leads->nleads < v->lead_page)
	{
		v->ldone = true;
		seg->hi = PG_INT64_MAX;
	}
	else
		seg->hi = v->llast = seg->leads->last_id;
	start_get(v, seg);
	/* the list lives as long as the walk */
	oldcxt = MemoryContextSwitchTo(v->scxt);
	v->segments = lappend(v->segments, seg);
	MemoryContextSwitchTo(oldcxt);
	return true;
}

/* Keep an answer with its segment, in the segment's memory. */
static void
keep_answer(Segment *seg, GsRemoteResult *res)
{
	seg->res = *res;
	seg->res.body = res->body ? MemoryContextStrdup(seg->cxt, res->body) : NULL;
	seg->res.error = res->error ? MemoryContextStrdup(seg->cxt, res->error) : NULL;
	seg->answered = true;
}

/*
 * The remote's rows of the head segment (asked after seg->after), parsed:
 * a JSON array (json-c's), or NULL when the job must stop: the remote's
 * trouble went on past gs_export.max_retries (the job is paused) or
 * cannot pass (it fails), the reason saying so.
 */
static struct json_object *
segment_rows(Verify *v, Segment *seg)
{
	GsJob	   *job = v->job;

	for (;;)
	{
		GsRemoteResult res;
		void	   *tag = NULL;
		struct json_object *rows;
		TimestampTz t0 = GetCurrentTimestamp();

		pgstat_report_activity(STATE_RUNNING, "gs_export: verify: reading the remote");
		while (!seg->answered)
		{
			if (gs_remote_wait(VERIFY_WAIT_MS, false, &res, &tag) == GS_WAIT_ANSWER)
				keep_answer((Segment *) tag, &res);
			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
		}
		v->us_remote += GetCurrentTimestamp() - t0;
		res = seg->res;
		if (res.outcome == GS_REMOTE_OK)
		{
			t0 = GetCurrentTimestamp();
			rows = json_tokener_parse(res.body);
			v->us_parse += GetCurrentTimestamp() - t0;
			v->pages++;
			if (rows != NULL && json_object_get_type(rows) == json_type_array)
			{
				seg->attempt = 0;
				return rows;
			}
			if (rows != NULL)
				json_object_put(rows);
			res.outcome = GS_REMOTE_FATAL;
			res.error = psprintf("the answer to a GET was not a JSON array of rows: %.200s",
								 res.body ? gs_scrub_json(res.body) : "(none)");
		}
		if (res.outcome == GS_REMOTE_RETRY && ++seg->attempt < gs_export_max_retries)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 gs_retry_delay_ms(seg->attempt, res.retry_after_ms), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if (!gs_job_is_running(job))
				return NULL;
			start_get(v, seg);
			continue;
		}
		ereport(LOG,
				(errmsg("gs_export: verify %s: reading the remote failed: %s",
						job->id_text, gs_scrub(res.error ? res.error : "unknown error"))));
		gs_job_stop(job, res.outcome == GS_REMOTE_RETRY,
					psprintf("verify: reading the remote failed: %s%s",
							 res.error ? res.error : "unknown error",
							 res.outcome == GS_REMOTE_RETRY ? "; gs_export_resume() goes on from where it stopped" : ""));
		return NULL;
	}
}

/* The remote's version: its updated_at column, as an instant. */
static bool
remote_version(Verify *v, struct json_object *row, TimestampTz *ts, struct json_object **value)
{
	struct json_object *val = NULL;

	*value = NULL;
	if (v->version_column == NULL ||
		!json_object_object_get_ex(row, v->version_column, &val) || is_null(val))
		return false;
	*value = val;
	if (json_object_get_type(val) != json_type_string ||
		!parse_timestamptz(json_object_get_string(val), ts))
		return false;
	return true;
}

/*
 * Is lead i of the page one the job compares (its days)?
 */
static bool
in_window(Verify *v, int i)
{
	if (!v->window)
		return true;
	return !v->leads->updated_null[i] && v->leads->updated[i] >= v->lower &&
		v->leads->updated[i] < v->upper;
}

static bool
skipped_key(Verify *v, const char *key)
{
	GsJob	   *job = v->job;
	ListCell   *lc;

	if ((job->synced_at_column && strcmp(key, job->synced_at_column) == 0) ||
		(job->source_column && strcmp(key, job->source_column) == 0))
		return true;
	foreach(lc, job->ignored_fields)
		if (strcmp(key, lfirst(lc)) == 0)
			return true;
	return false;
}

/* Compare lead i of the page with its remote row. */
static void
compare(Verify *v, int i, struct json_object *row)
{
	int64		id = v->leads->ids[i];
	TimestampTz rts = 0;
	struct json_object *rval;
	bool		rknown = remote_version(v, row, &rts, &rval);
	bool		lnull = v->leads->updated_null[i];
	TimestampTz lts = v->leads->updated[i];
	bool		older;			/* the remote's version is older */
	struct json_object *detail;

	older = v->version_column != NULL &&
		((rval == NULL && !lnull) || (rknown && !lnull && rts < lts));

	if (!v->content)
	{
		bool		same;

		if (rval == NULL || lnull)
			same = (rval == NULL && lnull);
		else
			same = rknown && rts == lts;
		if (same)
			return;
		detail = json_object_new_object();
		json_object_object_add(detail, "remote_version", detail_value(rval));
		json_object_object_add(detail, "lead_version", lead_version(v, i));
		add_diff(v, id, older ? "stale" : "different", detail);
		return;
	}
	else
	{
		struct json_object *lead = (struct json_object *) v->leads->objects[i];
		struct json_object *columns = json_object_new_object();
		struct json_object_iter it;
		/* the row's columns come in the lead's order (plan_columns) */
		struct lh_entry *next = json_object_get_object(row)->head;

		json_object_object_foreachC(lead, it)
		{
			struct json_object *rv = NULL;
			bool		equal;

			if (skipped_key(v, it.key))
				continue;
			while (next != NULL && strcmp((const char *) next->k, "id") == 0 &&
				   strcmp(it.key, "id") != 0)
				next = next->next;
			if (next != NULL && strcmp((const char *) next->k, it.key) == 0)
			{
				rv = (struct json_object *) next->v;
				next = next->next;
			}
			else
				(void) json_object_object_get_ex(row, it.key, &rv);
			if (it.val != NULL && json_object_get_userdata(it.val) != NULL)
			{
				/* a number or a JSON value, its text verbatim (payload.c) */
				struct json_object *parsed =
					json_tokener_parse((const char *) json_object_get_userdata(it.val));

				equal = parsed != NULL && json_equal(parsed, rv, true);
				json_object_put(parsed);
			}
			else
				equal = json_equal(it.val, rv, true);
			if (!equal)
			{
				struct json_object *pair = json_object_new_object();

				json_object_object_add(pair, "remote", detail_value(rv));
				json_object_object_add(pair, "lead", detail_value(it.val));
				json_object_object_add(columns, it.key, pair);
			}
		}
		if (json_object_object_length(columns) == 0)
		{
			json_object_put(columns);
			return;
		}
		detail = json_object_new_object();
		json_object_object_add(detail, "columns", columns);
		if (v->version_column)
		{
			json_object_object_add(detail, "remote_version", detail_value(rval));
			json_object_object_add(detail, "lead_version", lead_version(v, i));
		}
		add_diff(v, id, older ? "stale" : "different", detail);
	}
}

/* Lead i of the page: the remote lacks it. */
static void
lead_missing(Verify *v, int i)
{
	struct json_object *detail;

	if (!in_window(v, i))
		return;
	detail = json_object_new_object();
	json_object_object_add(detail, "lead_version", lead_version(v, i));
	add_diff(v, v->leads->ids[i], "missing", detail);
	v->compared++;
}

/* A remote row of the scope with no lead of the filter. */
static void
row_extra(Verify *v, struct json_object *row, int64 rid)
{
	struct json_object *detail = json_object_new_object();
	TimestampTz ts;
	struct json_object *rval;

	(void) remote_version(v, row, &ts, &rval);
	json_object_object_add(detail, "remote_version", detail_value(rval));
	add_diff(v, rid, "extra", detail);
}

/*
 * The remote column that receives updated_at, and the select= of the
 * GET: id and the columns compared.
 */
static void
plan_columns(Verify *v)
{
	GsJob	   *job = v->job;
	StringInfoData sel;
	ListCell   *lr;
	ListCell   *ll;

	v->version_column = NULL;
	forboth(lr, job->remote_columns, ll, job->lead_columns)
		if (strcmp(lfirst(ll), "updated_at") == 0 && !skipped_key(v, lfirst(lr)))
			v->version_column = lfirst(lr);
	initStringInfo(&sel);
	appendStringInfoString(&sel, "id");
	foreach(lr, job->remote_columns)
	{
		const char *col = lfirst(lr);

		if (strcmp(col, "id") == 0 || skipped_key(v, col))
			continue;
		if (!v->content && (v->version_column == NULL || strcmp(col, v->version_column) != 0))
			continue;
		appendStringInfo(&sel, ",%s", gs_remote_escape(col));
	}
	v->select = sel.data;
}

/*
 * Run the verify job: walk both sides from the job's position to their
 * ends, then complete it.  Returns when it is completed, stopped (paused,
 * failed) or the extension is gone.
 */
void
gs_verify_run(GsJob *job, MemoryContext cxt)
{
	Verify	   *v = MemoryContextAllocZero(cxt, sizeof(Verify));
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	TimestampTz started = GetCurrentTimestamp();

#ifdef M_MXFAST

	/*
	 * json-c makes and frees many small objects, and its hash tables are
	 * larger allocations: with glibc's fast bins, each of those gathered
	 * every freed small chunk first (malloc_consolidate), a fifth of a
	 * verify by content's time.  This process only verifies.
	 */
	mallopt(M_MXFAST, 0);
#endif
	v->job = job;
	v->src = gs_source_open(job, cxt);
	if (v->src == NULL)
		return;
	v->content = job->compare_content;
	v->page = Max(2, Min(job->batch_size, VERIFY_PAGE_MAX));
	v->lead_page = v->page - 1;
	v->window = !(TIMESTAMP_IS_NOBEGIN(job->pass_lower) && TIMESTAMP_IS_NOEND(job->cursor_ts));
	v->lower = job->pass_lower;
	v->upper = job->cursor_ts;
	v->scope = (job->source_column && job->source_value) ?
		psprintf("&%s=eq.%s", gs_remote_escape(job->source_column),
				 gs_remote_escape(job->source_value)) : "";
	plan_columns(v);
	v->scxt = AllocSetContextCreate(cxt, "gs_export verify segments", ALLOCSET_DEFAULT_SIZES);
	v->inflight = job->max_in_flight > 1 ? Min(job->max_in_flight, GS_MAX_REQUESTS) : VERIFY_IN_FLIGHT;
	v->rcxt = AllocSetContextCreate(cxt, "gs_export verify diffs", ALLOCSET_DEFAULT_SIZES);
	v->wcxt = AllocSetContextCreate(cxt, "gs_export verify work", ALLOCSET_DEFAULT_SIZES);
	v->maxdiffs = 64;
	v->diff_ids = MemoryContextAlloc(v->rcxt, sizeof(Datum) * v->maxdiffs);
	v->diff_kinds = MemoryContextAlloc(v->rcxt, sizeof(Datum) * v->maxdiffs);
	v->diff_details = MemoryContextAlloc(v->rcxt, sizeof(Datum) * v->maxdiffs);
	v->position = v->recorded = v->llast = job->cursor_id;
	MemoryContextSwitchTo(oldcxt);

	if (gs_source_verify_count(v->src) < 0)
		return;
	MemoryContextSwitchTo(v->wcxt);
	ereport(LOG,
			(errmsg("gs_export: verify %s started: compare %s, pages of %d, %d at once, from id " INT64_FORMAT "%s",
					job->id_text, v->content ? "content" : "version", v->page, v->inflight, job->cursor_id,
					v->window ? ", the leads of its days" : "")));

	for (;;)
	{
		Segment    *seg;
		struct json_object *rows;
		int			nrows;
		int			r;
		bool		more;
		bool		gone = false;
		TimestampTz t0;

		CHECK_FOR_INTERRUPTS();
		/* a transaction's end may have left another context current */
		MemoryContextSwitchTo(v->wcxt);
		while (list_length(v->segments) < v->inflight && !v->ldone && !gone)
			gone = !add_segment(v);
		if (gone)
			break;
		if (v->segments == NIL)
		{
			/* both walked: done */
			ereport(LOG,
					(errmsg("gs_export: verify %s walked both sides in %.1f s: %d remote pages, %.1f s waiting for them, %.1f s parsing them, %.1f s reading leads, %.1f s comparing, %.1f s recording",
							job->id_text, (GetCurrentTimestamp() - started) / 1e6, v->pages,
							v->us_remote / 1e6, v->us_parse / 1e6, v->us_leads / 1e6,
							v->us_merge / 1e6, v->us_record / 1e6)));
			if (flush(v))
				(void) gs_job_next_pass(job);
			break;
		}
		seg = linitial(v->segments);
		rows = segment_rows(v, seg);
		if (rows == NULL)
			break;
		MemoryContextSwitchTo(v->wcxt);
		t0 = GetCurrentTimestamp();
		nrows = (int) json_object_array_length(rows);
		v->leads = seg->leads;
		for (r = 0; r < nrows; r++)
		{
			struct json_object *row = json_object_array_get_idx(rows, r);
			int64		rid = remote_id(row);

			while (seg->lpos < seg->leads->nleads && seg->leads->ids[seg->lpos] < rid)
				lead_missing(v, seg->lpos++);
			if (seg->lpos < seg->leads->nleads && seg->leads->ids[seg->lpos] == rid)
			{
				if (in_window(v, seg->lpos))
				{
					compare(v, seg->lpos, row);
					v->compared++;
				}
				seg->lpos++;
			}
			else
				row_extra(v, row, rid);
			v->position = rid;
		}
		/* a full page: the range may hold more rows */
		more = nrows >= v->page;
		if (more)
			seg->after = v->position;
		json_object_put(rows);
		if (more)
		{
			start_get(v, seg);
			v->us_merge += GetCurrentTimestamp() - t0;
			if (v->ndiffs >= VERIFY_FLUSH_DIFFS && !flush(v))
				break;
			continue;
		}
		/* the range's rows are all in: the rest of its leads are missing */
		while (seg->lpos < seg->leads->nleads)
		{
			v->position = seg->leads->ids[seg->lpos];
			lead_missing(v, seg->lpos++);
		}
		if (seg->hi != PG_INT64_MAX)
			v->position = seg->hi;
		MemoryContextSwitchTo(v->scxt);
		v->segments = list_delete_first(v->segments);
		MemoryContextSwitchTo(v->wcxt);
		v->leads = NULL;
		for (r = 0; r < seg->leads->nleads; r++)
			if (seg->leads->objects[r] != NULL)
				json_object_put((struct json_object *) seg->leads->objects[r]);
		MemoryContextDelete(seg->cxt);
		MemoryContextReset(v->wcxt);
		v->us_merge += GetCurrentTimestamp() - t0;
		if (!flush(v))
			break;
	}
	MemoryContextSwitchTo(oldcxt);
}
