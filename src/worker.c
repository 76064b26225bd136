/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The job worker: a dynamic background worker that runs one job.  It
 *	  reads leads batch by batch (source.c) and keeps up to the pace's
 *	  window of requests at the remote at once (remote.c, pace.c), each
 *	  batch's leads disjoint from those of the others.  Trouble that may
 *	  pass is retried after a backoff; a batch the remote refuses is split
 *	  until each bad lead stands alone, and so is one the remote's
 *	  statement timeout cancels; a column the remote lacks is dropped.
 *	  Batches are recorded (job.c) in the order they were read, each once
 *	  every lead of it has an outcome, so that the job's position never
 *	  passes a lead without one: after a crash at any instant the leads
 *	  past it are sent again (upserts: the remote keeps one row each) and
 *	  counted once.  A batch holding a lead that an older batch not yet
 *	  recorded also holds (a lead that changed and was read again) waits
 *	  until the older ones have their outcomes, so that two versions of a
 *	  lead are never at the remote at once.  A request given up on without
 *	  knowing its fate (a timeout, a connection lost after its body was
 *	  sent) may still reach the remote later: its leads stay in doubt for
 *	  gs_export.late_request_ms, during which no newer version of them is
 *	  sent (its own retries, the same texts, may go) and the job does not
 *	  complete; the job's row keeps the end of that quarantine for the next
 *	  worker, which waits it out before it sends anything.  A pause stops
 *	  the sending at once and waits for the requests under way.  A pass
 *	  ends only on an empty read made after every batch was recorded (a
 *	  read that locks leads before its snapshot), never on a short batch.
 *	  Each read is its own short transaction: none is open while a
 *	  request is at the remote.
 *
 *	  Words (doc/architecture.md has the glossary): a batch is the leads
 *	  one read returns; a flight is a batch from its read until it is
 *	  recorded; a span is the leads [from, from + n) of a flight's batch
 *	  that go in one request, and are retried, split or decided as one;
 *	  the day range is the job's days, walked in passes (job.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "gs_export.h"

/* First wait before retrying a request; it doubles with each attempt. */
#define RETRY_BASE_DELAY_MS 250

/* Longest sleep of the main loop: a reload or a pause is seen this soon. */
#define MAX_SLEEP_MS 1000

/*
 * A follower with nothing to send sleeps until a capture's commit wakes it
 * (or a pause, a reload); it looks anyway this often, for a change whose
 * wake-up it could not get (a prepared transaction committed elsewhere).
 */
#define FOLLOW_POLL_MS 5000

/*
 * A follower woken by a commit, or that has just taken every change there
 * was, gathers what comes this long before it reads again: a stream of
 * small transactions goes out in batches, not a request and two
 * transactions of the follower's per commit (whose CPU the application's
 * writes would pay for on a small machine).
 */
#define FOLLOW_GATHER_MS 30

/* A woken follower looks at its status at most this often. */
#define FOLLOW_STATUS_MS 250

/* The longest query string of a delete (URLs stay under 8 KB). */
#define DELETE_QUERY_MAX 7000

/* A TRUNCATE's wipe at the remote goes this many rows a request. */
#define WIPE_ROWS 500

static int	my_slot = -1;

typedef struct Flight Flight;

/*
 * A request of n leads that the remote's statement timeout cancelled, cut
 * in two: if both halves go through, each in one request in time, n was
 * too many at once (gs_pace_lower_batch).
 */
typedef struct SplitWatch
{
	int			n;
	int			halves_left;
	bool		all_whole;
} SplitWatch;

/*
 * A span: leads [from, from + n) of a flight's batch, to send in one
 * request or at the remote; retried, split in halves, or decided as one.
 */
typedef struct Span
{
	Flight	   *flight;
	int			from;
	int			n;
	int			attempt;		/* requests that failed in a way that may
								 * pass */
	TimestampTz not_before;		/* the backoff */
	bool		timed_out;		/* a statement timeout cancelled it once */
	SplitWatch *watch;			/* the split it is a half of, or NULL */
	/* while at the remote */
	List	   *columns;
	int			window;			/* requests at the remote when sent */
	uint64		epoch;
} Span;

/* A batch, from its read until it is recorded. */
struct Flight
{
	MemoryContext cxt;			/* everything of it */
	GsBatch    *batch;
	GsLeadOutcome *outcomes;
	int			undecided;		/* leads without an outcome */
	int			requests;		/* its requests at the remote */
	List	   *pending;		/* Spans to send, by from */
	bool		waits_for_older;	/* holds a lead an older flight holds */
	uint64		seq;			/* its place in the order read, from 1 */
	TimestampTz doubt_until;	/* a lead of it is in doubt from another
								 * flight's request given up on: it waits
								 * until then (0: it need not) ... */
	uint64		doubt_seen;		/* ... as of that Run.doubt_changes */
	bool		sent;			/* its first request went */
	int			lane;			/* fixed pace: the lane it took, or -1 */
	uint64		epoch;			/* the pace's when it was read */
	TimestampTz first_sent;
};

/* A lead id held by flights not yet recorded, and how many hold it. */
typedef struct HeldLead
{
	int64		id;
	int			count;
} HeldLead;

/*
 * A lead of a request given up on without knowing its fate: the remote may
 * still apply that request, with the version of the lead it holds, until
 * `until`.  Only the flight that sent it (its retries carry the same texts)
 * may send the lead before then.
 */
typedef struct DoubtLead
{
	int64		id;
	TimestampTz until;
	uint64		flight;			/* that flight's seq */
} DoubtLead;

/* The job being run. */
typedef struct Run
{
	GsJob		job;
	GsSource   *src;
	GsPace		pace;
	MemoryContext cxt;
	List	   *flights;		/* not yet recorded, in the order read */
	HTAB	   *held;			/* HeldLead by id */
	HTAB	   *doubt;			/* DoubtLead by id, until the quarantine
								 * of the latest request given up on ends */
	TimestampTz doubt_until;	/* that end: the job completes only after */
	uint64		doubt_changes;	/* leads put in doubt, times */
	uint64		flights_read;
	bool		exhausted;		/* a read after the last flight was empty */
	bool		read_failed;	/* a read ahead failed: read again once the
								 * flights are recorded, the ordinary way */
	bool		stopping;		/* paused or failed: nothing more is sent */
	List	   *undelete_columns;	/* a follower's on_delete object's keys */
	TimestampTz gather_until;	/* a follower that took every change there
								 * was reads again no sooner */
	TimestampTz status_checked; /* a follower: when its status was last
								 * looked at on a wake-up ... */
	bool		status_due;		/* ... and a look put off since */
	/* fixed pace with delay_ms: each lane waits delay_ms between batches */
	TimestampTz lane_free[GS_MAX_REQUESTS];
	bool		lane_busy[GS_MAX_REQUESTS];
} Run;

static bool span_deletes(Run *run, Span *r);

static void
worker_detach(int code, Datum arg)
{
	GsExportSlot *slot;

	if (my_slot < 0)
		return;
	slot = &GsExport->slots[my_slot];
	LWLockAcquire(GsExport->lock, LW_EXCLUSIVE);
	if (slot->pid == MyProcPid)
	{
		slot->in_use = false;
		slot->pid = 0;
		slot->latch = NULL;
	}
	if (GsExport->launcher_latch)
		SetLatch(GsExport->launcher_latch);
	LWLockRelease(GsExport->lock);
}

/*
 * Take the slot the launcher claimed for this job.  False if it is not ours
 * (the launcher restarted and gave it away).
 */
static bool
worker_attach(int slotno, const pg_uuid_t *job_id)
{
	GsExportSlot *slot;
	bool		ok = false;

	if (slotno < 0 || slotno >= GsExport->nslots)
		return false;
	slot = &GsExport->slots[slotno];
	LWLockAcquire(GsExport->lock, LW_EXCLUSIVE);
	if (slot->in_use && slot->pid == 0 &&
		memcmp(&slot->job_id, job_id, sizeof(pg_uuid_t)) == 0)
	{
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
		my_slot = slotno;
		ok = true;
	}
	LWLockRelease(GsExport->lock);
	return ok;
}

static void
handle_reload(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * How long to wait before a request is tried again after attempt failures
 * that may pass: doubling from RETRY_BASE_DELAY_MS, with jitter, at least
 * the remote's Retry-After, at most gs_export.retry_max_delay_ms.  (The
 * verify's GETs too: verify.c.)
 */
long
gs_retry_delay_ms(int attempt, int retry_after_ms)
{
	double		backoff = RETRY_BASE_DELAY_MS;
	long		delay;

	while (attempt-- > 1 && backoff < gs_export_retry_max_delay_ms)
		backoff *= 2;
	/* jitter: somewhere between half and all of it */
	backoff *= 0.5 + 0.5 * pg_prng_double(&pg_global_prng_state);
	delay = (long) backoff;
	if (retry_after_ms > delay)
		delay = retry_after_ms;
	return Min(delay, (long) gs_export_retry_max_delay_ms);
}

/*
 * Is name one of the columns (a List of C strings)?
 */
static bool
column_listed(List *columns, const char *name)
{
	ListCell   *lc;

	foreach(lc, columns)
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	return false;
}

/*
 * The leads of a new flight are held; true if an older flight not yet
 * recorded holds one of them too.
 */
static bool
hold_leads(Run *run, Flight *f)
{
	bool		shared = false;
	int			i;

	for (i = 0; i < f->batch->nleads; i++)
	{
		bool		found;
		HeldLead   *h = hash_search(run->held, &f->batch->ids[i], HASH_ENTER, &found);

		if (found)
		{
			shared = true;
			h->count++;
		}
		else
			h->count = 1;
	}
	return shared;
}

static void
release_leads(Run *run, Flight *f)
{
	int			i;

	for (i = 0; i < f->batch->nleads; i++)
	{
		HeldLead   *h = hash_search(run->held, &f->batch->ids[i], HASH_FIND, NULL);

		if (h != NULL && --h->count == 0)
			hash_search(run->held, &f->batch->ids[i], HASH_REMOVE, NULL);
	}
}

/*
 * A request of span r was given up on, and its fate at the remote is
 * unknown: the remote may still apply it until gs_export.late_request_ms
 * from now (the remote's statement timeout and its gateways' hold bound
 * that).  Its leads are in doubt until then: no newer version of them is
 * sent (send_ready) and the job does not complete (run_job).  The job's row
 * says so first, for a worker that claims a job later.  The same
 * version, sent again by the span's retries, is harmless and may go at
 * once.  why: why its fate is unknown (GsRemoteResult.doubt), for the
 * log.
 */
static void
doubt_span(Run *run, Span *r, const char *why)
{
	Flight	   *f = r->flight;
	TimestampTz until;
	int			i;

	if (gs_export_late_request_ms <= 0)
		return;
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), gs_export_late_request_ms);
	if (until > run->doubt_until)
	{
		gs_job_doubt(&run->job.id, until);
		run->doubt_until = until;
	}
	for (i = r->from; i < r->from + r->n; i++)
	{
		bool		found;
		DoubtLead  *d = hash_search(run->doubt, &f->batch->ids[i], HASH_ENTER, &found);

		d->until = found ? Max(d->until, until) : until;
		d->flight = f->seq;
	}
	run->doubt_changes++;
	ereport(LOG,
			(errmsg("gs_export: job %s: the fate of a request of %d leads is unknown (%s); the remote may still apply it until %s: no newer version of its leads is sent, and the job does not complete, before then (gs_export.late_request_ms)",
					run->job.id_text, r->n, why, timestamptz_to_str(until))));
}

/*
 * Until when flight f must wait, because one of its leads is in doubt from
 * another flight's request given up on (0: it need not).  Worked out again
 * only when leads were put in doubt since.
 */
static TimestampTz
flight_doubt(Run *run, Flight *f)
{
	int			i;

	if (f->doubt_seen == run->doubt_changes)
		return f->doubt_until;
	f->doubt_until = 0;
	if (hash_get_num_entries(run->doubt) > 0)
		for (i = 0; i < f->batch->nleads; i++)
		{
			DoubtLead  *d = hash_search(run->doubt, &f->batch->ids[i], HASH_FIND, NULL);

			if (d != NULL && d->flight != f->seq && d->until > f->doubt_until)
				f->doubt_until = d->until;
		}
	f->doubt_seen = run->doubt_changes;
	return f->doubt_until;
}

/* Once the latest quarantine is over, no lead is in doubt any more. */
static void
forget_doubts(Run *run, TimestampTz now)
{
	HASH_SEQ_STATUS status;
	DoubtLead  *d;

	if (run->doubt_until > now || hash_get_num_entries(run->doubt) == 0)
		return;
	hash_seq_init(&status, run->doubt);
	while ((d = hash_seq_search(&status)) != NULL)
		hash_search(run->doubt, &d->id, HASH_REMOVE, NULL);
	run->doubt_changes++;
}

static Span *
new_span(Flight *f, int from, int n, SplitWatch *watch)
{
	Span	   *r = MemoryContextAllocZero(f->cxt, sizeof(Span));

	r->flight = f;
	r->from = from;
	r->n = n;
	r->watch = watch;
	return r;
}

/* Put a span back among its flight's spans to send, in lead order. */
static void
queue_span(Span *r)
{
	Flight	   *f = r->flight;
	MemoryContext oldcxt = MemoryContextSwitchTo(f->cxt);
	ListCell   *lc;
	int			pos = 0;

	foreach(lc, f->pending)
	{
		if (((Span *) lfirst(lc))->from > r->from)
			break;
		pos++;
	}
	f->pending = list_insert_nth(f->pending, pos, r);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * The span will not go through in one request: the split it is a half
 * of proves nothing about the size.
 */
static void
span_not_whole(Span *r)
{
	if (r->watch != NULL)
	{
		r->watch->all_whole = false;
		r->watch->halves_left--;
		r->watch = NULL;
	}
}

/* Split a span in two halves, to be sent each on its own. */
static void
split_span(Span *r, SplitWatch *watch)
{
	Flight	   *f = r->flight;

	span_not_whole(r);
	if (watch != NULL)
	{
		watch->n = r->n;
		watch->halves_left = 2;
		watch->all_whole = true;
	}
	queue_span(new_span(f, r->from, r->n / 2, watch));
	queue_span(new_span(f, r->from + r->n / 2, r->n - r->n / 2, watch));
}

/* Leads of a span have their outcome. */
static void
decide(Run *run, Span *r, bool ok, GsRemoteResult *res)
{
	Flight	   *f = r->flight;
	int			i;

	for (i = r->from; i < r->from + r->n; i++)
	{
		f->outcomes[i].ok = ok;
		if (!ok)
		{
			f->outcomes[i].error = MemoryContextStrdup(f->cxt, res->error);
			f->outcomes[i].http_status = res->http_status;
			f->outcomes[i].response_body = res->body ? MemoryContextStrdup(f->cxt, res->body) : NULL;
		}
	}
	f->undecided -= r->n;
	if (f->undecided == 0 && f->lane >= 0)
	{
		/* the lane rests delay_ms before its next batch */
		run->lane_busy[f->lane] = false;
		run->lane_free[f->lane] =
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), run->job.delay_ms);
		f->lane = -1;
	}
}

static void
stop_job(Run *run, bool pause, char *reason)
{
	gs_job_stop(&run->job, pause, reason);
	run->stopping = true;
}

/*
 * What a request's answer means for its leads, the job and the pace.
 */
static void
handle_answer(Run *run, Span *r, GsRemoteResult *res)
{
	Flight	   *f = r->flight;
	GsJob	   *job = &run->job;

	f->requests--;
	gs_pace_answer(&run->pace, res, r->n, r->window, r->epoch);
	/* first, whatever comes next: stopping, retrying, splitting */
	if (res->doubt != NULL)
		doubt_span(run, r, res->doubt);

	switch (res->outcome)
	{
		case GS_REMOTE_OK:
			if (span_deletes(run, r))
			{
				int64	   *gone;
				int			ngone = gs_payload_ids(res->body, &gone);
				int			i;
				int			k;

				/* the rows the remote says it deleted (or soft-deleted) */
				for (k = 0; k < ngone; k++)
					for (i = r->from; i < r->from + r->n; i++)
						if (f->batch->ids[i] == gone[k])
							f->outcomes[i].deleted = true;
			}
			if (r->watch != NULL)
			{
				SplitWatch *watch = r->watch;

				if (r->timed_out)
					watch->all_whole = false;
				if (--watch->halves_left == 0 && watch->all_whole)
					gs_pace_lower_batch(&run->pace, watch->n);
			}
			decide(run, r, true, res);
			break;

		case GS_REMOTE_BAD_ROWS:
			if (r->n == 1)
				decide(run, r, false, res);
			else if (!run->stopping)
				split_span(r, NULL);
			break;

		case GS_REMOTE_MISSING_COLUMN:
			if (run->stopping)
				break;
			if (strcmp(res->missing_column, "id") == 0 ||
				!column_listed(r->columns, res->missing_column))
			{
				stop_job(run, false, psprintf("the remote refused the batch: %s", res->error));
				break;
			}
			/* other requests in flight may have met it already */
			if (!column_listed(job->ignored_fields, res->missing_column))
				gs_job_ignore_column(job, res->missing_column);
			r->attempt = 0;
			queue_span(r);
			break;

		case GS_REMOTE_FATAL:
			if (!run->stopping)
				stop_job(run, false, psprintf("the remote refused the export: %s", res->error));
			break;

		case GS_REMOTE_RETRY:
			if (run->stopping)
				break;
			if (res->statement_timeout && r->n > 1)
			{
				/* the halves, each in time (or split again) */
				split_span(r, MemoryContextAllocZero(f->cxt, sizeof(SplitWatch)));
				break;
			}
			if (res->statement_timeout)
				r->timed_out = true;
			r->attempt++;
			if (r->attempt >= gs_export_max_retries)
			{
				if (res->statement_timeout)
					stop_job(run, true,
							 psprintf("the remote's statement timeout cancelled the upsert of lead %lld even alone (%s) after %d attempts: "
									  "the remote is overloaded, or slow to write that row; gs_export_resume() continues from here",
									  (long long) f->batch->ids[r->from], res->error, r->attempt));
				else
					stop_job(run, true, psprintf("the remote is unavailable (%s) after %d attempts; "
												 "gs_export_resume() continues from here",
												 res->error, r->attempt));
				break;
			}
			ereport(DEBUG1,
					(errmsg("gs_export: job %s: attempt %d failed: %s",
							job->id_text, r->attempt, res->error)));
			r->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														gs_retry_delay_ms(r->attempt, res->retry_after_ms));
			queue_span(r);
			break;
	}
}

/*
 * A lane for a flight's first request (fixed pace with delay_ms: each of
 * max_in_flight lanes sends a batch, and rests delay_ms once it has its
 * outcomes).  False when every lane is busy or resting.
 */
static bool
take_lane(Run *run, Flight *f, TimestampTz now)
{
	int			i;

	if (run->pace.adaptive || run->job.delay_ms == 0)
		return true;
	for (i = 0; i < run->pace.window; i++)
		if (!run->lane_busy[i] && run->lane_free[i] <= now)
		{
			run->lane_busy[i] = true;
			f->lane = i;
			return true;
		}
	return false;
}

/* Is the span a follower's delete (leads past the batch's upserts)? */
static bool
span_deletes(Run *run, Span *r)
{
	return run->job.follow && r->from >= r->flight->batch->nupserts;
}

/*
 * The filter that scopes a follower's deletes at the remote: with a source
 * column, only the rows that carry its value ("&col=eq.value", escaped),
 * else none ("").
 */
static char *
delete_scope(GsJob *job)
{
	if (job->source_column == NULL || job->source_value == NULL)
		return pstrdup("");
	return psprintf("&%s=eq.%s", gs_remote_escape(job->source_column),
					gs_remote_escape(job->source_value));
}

/*
 * A follower's span, cut to what one request may hold: for a delete, the
 * ids that keep the URL under DELETE_QUERY_MAX; for an upsert, the leads
 * whose JSON fits gs_export.max_request_size (the backfill's and the
 * changes' reads take leads by number).  The rest waits its turn.  A lead
 * alone over that size is never sent: it fails (false).
 */
static bool
cut_follow_span(Run *run, Span *r, const char *scope)
{
	GsBatch    *b = r->flight->batch;
	int			n = 0;

	if (span_deletes(run, r))
	{
		size_t		len = strlen(run->job.project_url) + strlen(run->job.target_table) +
			strlen(scope) + 40;

		while (n < r->n)
		{
			len += 21;			/* an int8 and a comma, at most */
			if (n > 0 && len > DELETE_QUERY_MAX)
				break;
			n++;
		}
	}
	else
	{
		size_t		bytes = 2;

		while (n < r->n)
		{
			bytes += b->lens[r->from + n] + 1;
			if (bytes > (size_t) gs_export_max_request_size)
				break;
			n++;
		}
		if (n == 0)
		{
			GsRemoteResult res;
			Span	   *rest = r->n > 1 ? new_span(r->flight, r->from + 1, r->n - 1, NULL) : NULL;

			memset(&res, 0, sizeof(res));
			res.error = psprintf("the lead's JSON is %zu bytes, more than gs_export.max_request_size (%d bytes) allows in one request",
								 b->lens[r->from], gs_export_max_request_size);
			span_not_whole(r);
			r->n = 1;
			decide(run, r, false, &res);
			if (rest)
				queue_span(rest);
			return false;
		}
	}
	if (n < r->n)
	{
		span_not_whole(r);
		queue_span(new_span(r->flight, r->from + n, r->n - n, NULL));
		r->n = n;
	}
	return true;
}

/*
 * Start a follower's delete: DELETE, or PATCH with on_delete's object (a
 * soft delete), of the span's ids, scoped by the source column; the
 * answer says which rows it touched.
 */
static void
start_delete(Run *run, Span *r, const char *scope)
{
	Flight	   *f = r->flight;
	StringInfoData q;
	int			i;

	initStringInfo(&q);
	appendStringInfoString(&q, "id=in.(");
	for (i = r->from; i < r->from + r->n; i++)
		appendStringInfo(&q, "%s" INT64_FORMAT, i > r->from ? "," : "", f->batch->ids[i]);
	appendStringInfo(&q, ")%s", scope);
	r->columns = NIL;
	if (strcmp(run->job.on_delete, "delete") == 0)
		gs_remote_start_mutation(run->job.project_url, run->job.api_key, run->job.target_table,
								 q.data, NULL, NULL, r);
	else
	{
		const char **body = MemoryContextAlloc(f->cxt, sizeof(char *));
		size_t	   *len = MemoryContextAlloc(f->cxt, sizeof(size_t));

		*body = run->job.on_delete;
		*len = strlen(run->job.on_delete);
		gs_remote_start_mutation(run->job.project_url, run->job.api_key, run->job.target_table,
								 q.data, body, len, r);
	}
}

/* Send a span: at most the pace's batch of it (the rest waits its turn). */
static void
start_span(Run *run, Span *r)
{
	Flight	   *f = r->flight;
	GsJob	   *job = &run->job;
	MemoryContext oldcxt = MemoryContextSwitchTo(f->cxt);
	ListCell   *lc;
	char	   *scope = NULL;

	f->pending = list_delete_ptr(f->pending, r);
	if (r->n > run->pace.batch)
	{
		/* read before the batch was lowered, or the rest of a split */
		Span	   *rest = new_span(f, r->from + run->pace.batch, r->n - run->pace.batch, NULL);

		span_not_whole(r);
		r->n = run->pace.batch;
		queue_span(rest);
	}
	if (job->follow)
	{
		scope = delete_scope(job);
		if (!cut_follow_span(run, r, scope))
		{
			MemoryContextSwitchTo(oldcxt);
			return;
		}
	}
	if (job->follow && span_deletes(run, r))
	{
		r->window = gs_remote_in_flight() + 1;
		r->epoch = f->epoch == run->pace.epoch ? f->epoch : 0;
		if (!f->sent)
			f->first_sent = GetCurrentTimestamp();
		f->sent = true;
		f->requests++;
		start_delete(run, r, scope);
		MemoryContextSwitchTo(oldcxt);
		return;
	}

	r->columns = NIL;
	foreach(lc, gs_source_columns(run->src))
		if (!column_listed(job->ignored_fields, lfirst(lc)))
			r->columns = lappend(r->columns, lfirst(lc));

	/*
	 * A follower that soft-deletes: the columns its on_delete sets, when
	 * not sent, are named too, so that the upsert gives them their remote
	 * default (missing=default): a lead inserted again, or back in the
	 * scope, is no longer marked deleted at the remote.
	 */
	foreach(lc, run->undelete_columns)
		if (!column_listed(r->columns, lfirst(lc)) &&
			!column_listed(job->ignored_fields, lfirst(lc)))
			r->columns = lappend(r->columns, lfirst(lc));
	foreach(lc, job->ignored_fields)
		gs_payload_drop_key(f->batch, r->from, r->n, lfirst(lc));
	r->window = gs_remote_in_flight() + 1;
	r->epoch = f->epoch == run->pace.epoch ? f->epoch : 0;
	if (!f->sent)
		f->first_sent = GetCurrentTimestamp();
	f->sent = true;
	f->requests++;
	MemoryContextSwitchTo(oldcxt);
	gs_remote_start(job->project_url, job->api_key, job->target_table, r->columns,
					run->undelete_columns != NIL,
					f->batch->texts + r->from, f->batch->lens + r->from, r->n, r);
}

/* Spans waiting for their next attempt (each keeps its place). */
static int
count_retrying(Run *run)
{
	ListCell   *lc;
	int			n = 0;

	foreach(lc, run->flights)
	{
		ListCell   *rc;

		foreach(rc, ((Flight *) lfirst(lc))->pending)
			if (((Span *) lfirst(rc))->attempt > 0)
				n++;
	}
	return n;
}

/*
 * Send what may go now: the spans of the flights in order, each when its
 * backoff has passed, as long as the pace's window has room and no
 * Retry-After holds.  A span waiting to be tried again keeps its place
 * in the window: while the remote has trouble no new batch goes in its
 * stead.  A flight holding a lead an older one holds waits until every
 * older flight has its outcomes; one holding a lead in doubt from another
 * flight's request given up on waits until the quarantine ends.
 */
static void
send_ready(Run *run)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		older_undecided = false;
	int			retrying = count_retrying(run);
	ListCell   *lc;

	forget_doubts(run, now);
	if (now < run->pace.hold_until)
		return;
	foreach(lc, run->flights)
	{
		Flight	   *f = lfirst(lc);
		bool		blocked = (f->waits_for_older && older_undecided) ||
			flight_doubt(run, f) > now;

		if (f->undecided > 0)
			older_undecided = true;
		if (blocked)
			continue;
		for (;;)
		{
			Span	   *ready = NULL;
			ListCell   *rc;

			foreach(rc, f->pending)
				if (((Span *) lfirst(rc))->not_before <= now)
				{
					ready = lfirst(rc);
					break;
				}
			if (ready == NULL)
				break;
			/*
			 * A new span waits for a place beside the requests in flight
			 * and the spans waiting for their retry; a retry only for a
			 * place beside the requests in flight (when the window shrank
			 * below the spans retrying, they go one by one).
			 */
			if (gs_remote_in_flight() + (ready->attempt > 0 ? 0 : retrying) >=
				run->pace.window)
				return;
			if (!f->sent && !take_lane(run, f, now))
				return;
			if (ready->attempt > 0)
				retrying--;
			start_span(run, ready);
		}
	}
}

/*
 * How long the main loop may sleep: until a backoff, a Retry-After, a
 * lane's rest or a flight's wait for a lead in doubt ends, MAX_SLEEP_MS at
 * most (an answer or the latch wakes it sooner).
 */
static long
sleep_ms(Run *run)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz wake = TimestampTzPlusMilliseconds(now, MAX_SLEEP_MS);
	ListCell   *lc;
	int			i;

	if (run->pace.hold_until > now)
		wake = Min(wake, run->pace.hold_until);
	foreach(lc, run->flights)
	{
		Flight	   *f = lfirst(lc);
		ListCell   *rc;

		if (f->doubt_until > now)
			wake = Min(wake, f->doubt_until);
		foreach(rc, f->pending)
		{
			Span	   *r = lfirst(rc);

			if (r->not_before > now)
				wake = Min(wake, r->not_before);
		}
	}
	for (i = 0; i < GS_MAX_REQUESTS; i++)
		if (run->lane_free[i] > now)
			wake = Min(wake, run->lane_free[i]);
	return Max(1, TimestampDifferenceMilliseconds(now, wake));
}

typedef enum ReadResult
{
	READ_FLIGHT,				/* a new flight (or a TRUNCATE's wipe done) */
	READ_EMPTY,					/* no lead after the position read from */
	READ_FAILED,				/* a read ahead failed (logged) */
	READ_STOPPED,				/* a follower's job is no longer running */
	READ_GONE					/* the extension was dropped */
} ReadResult;

static void follow_wipe(Run *run, int64 seq);

/*
 * gs_source_next for a read ahead: NULL, with the error logged, when it
 * fails (but for a cancel, which is for the job).
 */
/*
 * The seqs of gs_export_changes the flights not yet recorded consumed (a
 * follower's), in cxt.
 */
static int64 *
flight_seqs(Run *run, int *n, MemoryContext cxt)
{
	ListCell   *lc;
	int			total = 0;
	int64	   *seqs;

	foreach(lc, run->flights)
		total += ((Flight *) lfirst(lc))->batch->nseqs;
	seqs = MemoryContextAlloc(cxt, sizeof(int64) * Max(total, 1));
	*n = 0;
	foreach(lc, run->flights)
	{
		GsBatch    *b = ((Flight *) lfirst(lc))->batch;

		memcpy(seqs + *n, b->seqs, sizeof(int64) * b->nseqs);
		*n += b->nseqs;
	}
	return seqs;
}

/*
 * The next batch from the source: after the job's position when every
 * flight is recorded, else after the last flight (a read ahead).  A
 * follower's: in its backfill, after an id; else the changes the flights
 * have not taken (a TRUNCATE's only when none is under way).  *running:
 * false when a follower's read found the job no longer running.
 */
static GsBatch *
source_read(Run *run, MemoryContext cxt, bool *running)
{
	GsBatch    *last = run->flights == NIL ? NULL : ((Flight *) llast(run->flights))->batch;

	*running = true;
	if (run->job.follow)
	{
		int			nexcept;
		int64	   *except = flight_seqs(run, &nexcept, cxt);

		return gs_source_follow_next(run->src, cxt, last ? last->last_id : run->job.cursor_id,
									 except, nexcept, last == NULL, running);
	}
	if (last == NULL)
		return gs_source_next(run->src, cxt, run->job.cursor_ts, run->job.cursor_id);
	return gs_source_next(run->src, cxt, last->last_ts, last->last_id);
}

static GsBatch *
read_ahead(Run *run, MemoryContext cxt, bool *running)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	GsBatch    *batch = NULL;

	PG_TRY();
	{
		batch = source_read(run, cxt, running);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		/* logged with its SQLSTATE, detail and context; met again later */
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		batch = NULL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	return batch;
}

/*
 * Read the next batch into a new flight: after the job's position when
 * every flight is recorded, else after the last flight (a read ahead).
 * An error in a read ahead must not cost the flights at the remote their
 * outcomes: it is set aside (logged), and the worker meets it again when
 * it reads the ordinary way, once they are recorded.
 */
static ReadResult
read_flight(Run *run)
{
	MemoryContext cxt = AllocSetContextCreate(run->cxt, "gs_export batch",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt = CurrentMemoryContext;
	GsBatch    *batch = NULL;
	Flight	   *f;
	int			i;

	bool		running = true;

	run->job.batch_size = run->pace.batch;
	pgstat_report_activity(STATE_RUNNING, "gs_export: reading leads");
	if (run->flights == NIL)
		batch = source_read(run, cxt, &running);
	else
	{
		batch = read_ahead(run, cxt, &running);
		if (batch == NULL)
		{
			MemoryContextDelete(cxt);
			run->read_failed = true;
			return READ_FAILED;
		}
	}
	MemoryContextSwitchTo(oldcxt);
	if (!running)
	{
		MemoryContextDelete(cxt);
		return READ_STOPPED;
	}
	if (batch != NULL && batch->truncated)
	{
		/* read alone, with nothing under way */
		follow_wipe(run, batch->seqs[0]);
		MemoryContextDelete(cxt);
		return READ_FLIGHT;
	}
	if (batch == NULL || batch->nleads == 0)
	{
		MemoryContextDelete(cxt);
		return batch == NULL ? READ_GONE : READ_EMPTY;
	}

	f = MemoryContextAllocZero(cxt, sizeof(Flight));
	f->cxt = cxt;
	f->batch = batch;
	f->outcomes = MemoryContextAllocZero(cxt, sizeof(GsLeadOutcome) * batch->nleads);
	f->undecided = batch->nleads;
	f->lane = -1;
	f->epoch = run->pace.epoch;
	f->seq = ++run->flights_read;
	if (batch->oversized)
	{
		/* a lead alone larger than a request may be: never sent */
		MemoryContextSwitchTo(cxt);
		for (i = 0; i < batch->nleads; i++)
			f->outcomes[i].error =
				psprintf("the lead's JSON is %zu bytes, more than gs_export.max_request_size (%d bytes) allows in one request",
						 batch->lens[i], gs_export_max_request_size);
		MemoryContextSwitchTo(oldcxt);
		f->undecided = 0;
	}
	else if (run->job.follow)
	{
		/* a follower's: the leads to send, then those to delete */
		int			ndel = batch->nleads - batch->nupserts;

		MemoryContextSwitchTo(cxt);
		if (batch->nupserts > 0)
			f->pending = lappend(f->pending, new_span(f, 0, batch->nupserts, NULL));
		if (ndel > 0 && strcmp(run->job.on_delete, "ignore") == 0)
		{
			/* left at the remote: done, and no event */
			for (i = batch->nupserts; i < batch->nleads; i++)
				f->outcomes[i].ok = true;
			f->undecided -= ndel;
		}
		else if (ndel > 0)
			f->pending = lappend(f->pending, new_span(f, batch->nupserts, ndel, NULL));
		MemoryContextSwitchTo(oldcxt);
	}
	else
	{
		MemoryContextSwitchTo(cxt);
		f->pending = list_make1(new_span(f, 0, batch->nleads, NULL));
		MemoryContextSwitchTo(oldcxt);
	}
	f->waits_for_older = hold_leads(run, f);
	MemoryContextSwitchTo(run->cxt);
	run->flights = lappend(run->flights, f);
	MemoryContextSwitchTo(oldcxt);

	/*
	 * A follower that took less than a batch took every change there was:
	 * it reads again when its flights are recorded, not ahead on each
	 * commit's wake-up, so that a trickle of commits goes out in batches of
	 * what came meanwhile rather than one request and one record each.  A
	 * backlog still fills batches and keeps max_in_flight of them going.
	 */
	if (run->job.follow && strcmp(run->job.pass_kind, "follow") == 0 &&
		batch->nleads < run->job.batch_size)
	{
		run->exhausted = true;
		run->gather_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), FOLLOW_GATHER_MS);
	}
	return READ_FLIGHT;
}

/*
 * Record the flights at the head that have every outcome, in order.
 */
static void
record_done(Run *run)
{
	while (run->flights != NIL)
	{
		Flight	   *f = linitial(run->flights);
		int			duration_ms;
		bool		running;

		if (f->undecided > 0 || f->requests > 0)
			return;
		handle_reload();		/* a reload during the requests counts now */
		duration_ms = f->sent ? (int) ((GetCurrentTimestamp() - f->first_sent) / 1000) : 0;
		running = gs_job_record(&run->job, run->src, f->batch, f->outcomes, duration_ms);
		release_leads(run, f);
		run->flights = list_delete_first(run->flights);
		MemoryContextDelete(f->cxt);
		if (!running && !run->stopping)
		{
			ereport(LOG,
					(errmsg("gs_export: job %s is no longer running; its worker stops",
							run->job.id_text)));
			run->stopping = true;
		}
	}
}

/* Has every flight sent its first request? */
static bool
all_sent(Run *run)
{
	ListCell   *lc;

	foreach(lc, run->flights)
		if (!((Flight *) lfirst(lc))->sent && ((Flight *) lfirst(lc))->undecided > 0)
			return false;
	return true;
}

/* What the worker does while it waits, for pg_stat_activity. */
static void
report_activity(void)
{
	int			n = gs_remote_in_flight();

	if (n == 0)
		pgstat_report_activity(STATE_IDLE, "gs_export: waiting");
	else if (n == 1)
		pgstat_report_activity(STATE_RUNNING, "gs_export: sending a batch");
	else
		pgstat_report_activity(STATE_RUNNING, psprintf("gs_export: sending %d batches", n));
}

/*
 * Wait until no request given up on can reach the remote any more
 * (run->doubt_until): before a worker sends anything (the job's row, or
 * another job's, says until when), and before a pass that may be the last
 * ends.  No request is in flight.  A pause or any other change of the job
 * (its latch) is looked at at once, a shutdown ends the wait.  False when
 * the job is no longer running.
 */
static bool
wait_out_doubt(Run *run)
{
	TimestampTz now = GetCurrentTimestamp();

	if (run->doubt_until <= now)
		return true;
	ereport(LOG,
			(errmsg("gs_export: job %s: a request given up on may still reach the remote until %s; the job waits until then (gs_export.late_request_ms)",
					run->job.id_text, timestamptz_to_str(run->doubt_until))));
	pgstat_report_activity(STATE_IDLE, "gs_export: waiting until a request given up on can no longer reach the remote");
	while ((now = GetCurrentTimestamp()) < run->doubt_until)
	{
		int			rc;

		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   TimestampDifferenceMilliseconds(now, run->doubt_until),
					   PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		handle_reload();
		if ((rc & WL_LATCH_SET) && !gs_job_is_running(&run->job))
		{
			ereport(LOG,
					(errmsg("gs_export: job %s is no longer running; its worker stops",
							run->job.id_text)));
			run->stopping = true;
			return false;
		}
	}
	return true;
}

/*
 * A follower lets the changes gather until then (FOLLOW_GATHER_MS): the
 * commits meanwhile set the latch, which is not waited on.  A shutdown or a
 * cancel ends the wait.
 */
static void
follow_gather(TimestampTz until)
{
	TimestampTz now;

	pgstat_report_activity(STATE_IDLE, "gs_export: following leads, gathering changes");
	while ((now = GetCurrentTimestamp()) < until)
	{
		(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(1, TimestampDifferenceMilliseconds(now, until)), PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * A follower with nothing to send: sleep until a capture's commit, a pause
 * or a reload sets the latch (FOLLOW_POLL_MS at most).  The next read
 * looks at the job's status.
 */
static void
follow_idle(void)
{
	int			rc;

	pgstat_report_activity(STATE_IDLE, "gs_export: following leads, waiting for changes");
	rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
				   FOLLOW_POLL_MS, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
		follow_gather(TimestampTzPlusMilliseconds(GetCurrentTimestamp(), FOLLOW_GATHER_MS));
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	handle_reload();
}

/*
 * A TRUNCATE of leads, resumed by a person: on_delete applies to every row
 * of the follower's scope at the remote (the rows carrying its source
 * value, or every row without a source column), WIPE_ROWS at a time by id
 * (each request a DELETE or PATCH of "id > the last one done", ordered and
 * limited), each row deleted a 'delete' event; then the TRUNCATE's row of
 * gs_export_changes goes and the follower goes on with the changes after
 * it.  Nothing else is under way meanwhile.  Trouble that may pass is
 * retried; after gs_export.max_retries the follower is paused, and a
 * resume starts the wipe again.
 */
static void
follow_wipe(Run *run, int64 seq)
{
	GsJob	   *job = &run->job;
	char	   *scope = delete_scope(job);
	int64		last = PG_INT64_MIN;
	int			attempt = 0;
	const char *body = job->on_delete;
	size_t		body_len = strlen(job->on_delete);
	bool		soft = strcmp(job->on_delete, "delete") != 0;

	ereport(LOG,
			(errmsg("gs_export: follower %s: leads was truncated; on_delete (%s) applies to every row of the scope at the remote",
					job->id_text, job->on_delete)));
	if (strcmp(job->on_delete, "ignore") == 0)
	{
		if (!gs_follow_record_wipe(job, NULL, 0, seq))
			run->stopping = true;
		return;
	}
	for (;;)
	{
		char	   *q = psprintf("id=gt." INT64_FORMAT "%s&order=id&limit=%d", last, scope, WIPE_ROWS);
		GsRemoteResult res;
		void	   *tag = NULL;
		int64	   *ids = NULL;
		int			n;

		CHECK_FOR_INTERRUPTS();
		pgstat_report_activity(STATE_RUNNING, "gs_export: applying on_delete to the remote after a TRUNCATE");
		gs_remote_start_mutation(job->project_url, job->api_key, job->target_table, q,
								 soft ? &body : NULL, soft ? &body_len : NULL, NULL);
		while (gs_remote_wait(MAX_SLEEP_MS, false, &res, &tag) != GS_WAIT_ANSWER)
		{
			CHECK_FOR_INTERRUPTS();
			handle_reload();
		}

		/*
		 * A wipe's request whose fate is unknown may still delete rows
		 * later: nothing is sent before its quarantine is over (below).
		 */
		if (res.doubt != NULL && gs_export_late_request_ms > 0)
		{
			TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															gs_export_late_request_ms);

			gs_job_doubt(&job->id, until);
			run->doubt_until = Max(run->doubt_until, until);
		}
		if (res.outcome == GS_REMOTE_OK && (n = gs_payload_ids(res.body, &ids)) >= 0)
		{
			int64		done = (n < WIPE_ROWS) ? seq : 0;
			int			k;

			attempt = 0;
			for (k = 0; k < n; k++)
				last = Max(last, ids[k]);
			if (!gs_follow_record_wipe(job, ids, n, done))
			{
				run->stopping = true;
				return;
			}
			if (done)
			{
				(void) wait_out_doubt(run);
				return;
			}
			continue;
		}
		if (res.outcome == GS_REMOTE_RETRY && ++attempt < gs_export_max_retries)
		{
			(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 gs_retry_delay_ms(attempt, res.retry_after_ms), PG_WAIT_EXTENSION);
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		stop_job(run, res.outcome == GS_REMOTE_RETRY,
				 psprintf("applying on_delete at the remote after a TRUNCATE of leads failed: %s%s",
						  res.error ? res.error : "the answer was not a list of ids",
						  res.outcome == GS_REMOTE_RETRY ? "; gs_export_resume() starts it again" : ""));
		return;
	}
}

/* Is the job still running?  If not, what is at the remote is let finish. */
static void
stop_unless_running(Run *run)
{
	if (gs_job_is_running(&run->job))
		return;
	ereport(LOG,
			(errmsg("gs_export: job %s is no longer running; its worker stops",
					run->job.id_text)));
	run->stopping = true;
}

/* This worker claimed its job (and so must release it when it leaves). */
static bool job_claimed = false;

/*
 * The job, batch after batch, pass after pass, until it is done or must
 * stop.
 */
static void
run_job(const pg_uuid_t *job_id)
{
	Run		   *run;
	MemoryContext job_cxt;
	MemoryContext loop_cxt;
	HASHCTL		hctl;

	job_cxt = AllocSetContextCreate(TopMemoryContext, "gs_export job",
									ALLOCSET_DEFAULT_SIZES);
	run = MemoryContextAllocZero(job_cxt, sizeof(Run));
	run->cxt = job_cxt;
	if (gs_job_start(&run->job, job_id, job_cxt) != GS_JOB_RUN)
		return;
	job_claimed = true;
	if (run->job.verify)
	{
		/* a verify compares, and sends nothing (verify.c) */
		gs_verify_run(&run->job, job_cxt);
		return;
	}

	if (run->job.follow && !run->job.set_job && my_slot >= 0)
	{
		/* woken when a capture commits (api.c) */
		LWLockAcquire(GsExport->lock, LW_EXCLUSIVE);
		GsExport->slots[my_slot].follower = true;
		LWLockRelease(GsExport->lock);
	}
	if (run->job.follow && run->job.on_delete[0] == '{')
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(job_cxt);

		run->undelete_columns = gs_payload_object_keys(run->job.on_delete);
		MemoryContextSwitchTo(oldcxt);
	}
	run->src = gs_source_open(&run->job, job_cxt);
	if (run->src == NULL)
		return;					/* the extension was dropped */
	gs_pace_init(&run->pace, &run->job);
	hctl.keysize = sizeof(int64);
	hctl.entrysize = sizeof(HeldLead);
	hctl.hcxt = job_cxt;
	run->held = hash_create("gs_export leads in flight", 1024, &hctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	hctl.entrysize = sizeof(DoubtLead);
	run->doubt = hash_create("gs_export leads in doubt", 1024, &hctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	/* what one turn of the loop allocates (answers, records) lives here */
	loop_cxt = AllocSetContextCreate(job_cxt, "gs_export loop",
									 ALLOCSET_DEFAULT_SIZES);
	if (run->pace.adaptive)
		ereport(LOG,
				(errmsg("gs_export: job %s started: adaptive pace from batches of %d up to %d, up to %d in flight, time zone %s",
						run->job.id_text, run->job.batch_size, run->pace.batch_cap,
						run->pace.window_max, run->job.time_zone)));
	else
		ereport(LOG,
				(errmsg("gs_export: job %s started: batches of %d, %d ms apart, %d in flight, time zone %s",
						run->job.id_text, run->job.batch_size, run->job.delay_ms,
						run->pace.window, run->job.time_zone)));

	/*
	 * A request given up on before (by an earlier worker of this job, or of
	 * another) may still reach the remote: which leads it holds is not
	 * known here, so nothing is sent before its quarantine is over.
	 */
	run->doubt_until = run->job.doubt_until;
	if (!wait_out_doubt(run))
		return;

	for (;;)
	{
		GsRemoteResult res;
		GsRemoteWait w;
		void	   *tag = NULL;

		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);
		CHECK_FOR_INTERRUPTS();
		handle_reload();
		record_done(run);

		if (run->stopping)
		{
			/* what is in flight gets its answer; the rest is sent again */
			if (gs_remote_in_flight() == 0)
				return;
			report_activity();
			w = gs_remote_wait(MAX_SLEEP_MS, false, &res, &tag);
		}
		else if (run->flights == NIL)
		{
			/*
			 * Every batch is recorded: read after the job's position, in a
			 * transaction that begins now.  Only an empty read here ends
			 * the pass.
			 */
			run->exhausted = false;
			run->read_failed = false;
			if (run->job.follow && run->gather_until > GetCurrentTimestamp())
				follow_gather(run->gather_until);
			switch (read_flight(run))
			{
				case READ_GONE:
					return;
				case READ_STOPPED:
					ereport(LOG,
							(errmsg("gs_export: job %s is no longer running; its worker stops",
									run->job.id_text)));
					return;
				case READ_EMPTY:
					if (run->job.follow && !run->job.set_job)
					{
						/* the backfill is over; or nothing to send yet */
						if (strcmp(run->job.pass_kind, "backfill") == 0)
						{
							if (!gs_job_next_pass(&run->job))
								return;
							ereport(LOG,
									(errmsg("gs_export: follower %s: backfill done; following the changes of leads",
											run->job.id_text)));
						}
						else
							follow_idle();
						break;
					}

					/*
					 * The job must not complete while a request given up
					 * on may still overwrite a newer version of its leads.
					 * Only the range pass surely goes on to another.
					 */
					if (strcmp(run->job.pass_kind, "range") != 0 &&
						!wait_out_doubt(run))
						return;
					if (!gs_job_next_pass(&run->job))
						return;
					break;
				default:
					break;
			}
			continue;
		}
		else
		{
			send_ready(run);
			if (!run->exhausted && !run->read_failed &&
				list_length(run->flights) <= run->pace.window &&
				(gs_pace_reads_ahead(&run->pace) ||
				 (gs_remote_in_flight() == 0 && all_sent(run))))
			{
				/*
				 * Read the next batch, once every body is handed over: the
				 * remote is then at work.
				 */
				if (!gs_remote_uploading())
				{
					if (read_flight(run) == READ_EMPTY)
						run->exhausted = true;
					continue;
				}
				report_activity();
				w = gs_remote_wait(MAX_SLEEP_MS, true, &res, &tag);
			}
			else
			{
				report_activity();
				w = gs_remote_wait(sleep_ms(run), false, &res, &tag);
			}
		}

		/* a follower's look at its status put off above, now due */
		if (run->status_due && !run->stopping &&
			GetCurrentTimestamp() >= TimestampTzPlusMilliseconds(run->status_checked, FOLLOW_STATUS_MS))
		{
			run->status_due = false;
			run->status_checked = GetCurrentTimestamp();
			stop_unless_running(run);
		}
		if (w == GS_WAIT_ANSWER)
			handle_answer(run, (Span *) tag, &res);
		else if (w == GS_WAIT_LATCH && !run->stopping)
		{
			TimestampTz now = GetCurrentTimestamp();

			handle_reload();

			/*
			 * A follower is woken by every capturing commit: the changes
			 * are read when its flights are recorded (read_flight), and
			 * whether it was paused is looked at no more often than
			 * FOLLOW_STATUS_MS (its reads and records see a pause too).
			 */
			if (run->job.follow)
			{
				if (now < TimestampTzPlusMilliseconds(run->status_checked, FOLLOW_STATUS_MS))
				{
					run->status_due = true;
					continue;
				}
				run->status_checked = now;
				run->status_due = false;
			}
			stop_unless_running(run);
		}
	}
}

/*
 * Why a job stopped on an error, for pause_reason: the SQLSTATE and the
 * message (the log has the whole report).
 */
static char *
error_reason(ErrorData *edata)
{
	return psprintf("%s: %s (SQLSTATE %s)",
					edata->sqlerrcode == ERRCODE_QUERY_CANCELED ? "cancelled" : "error",
					edata->message ? edata->message : "unknown error",
					unpack_sql_state(edata->sqlerrcode));
}

/*
 * Entry point of a job worker.  main_arg is the slot; bgw_extra holds the
 * job id and the database oid.
 */
void
gs_export_worker_main(Datum main_arg)
{
	pg_uuid_t	job_id;
	Oid			dboid;
	MemoryContext oldcxt = CurrentMemoryContext;

	memcpy(&job_id, MyBgworkerEntry->bgw_extra, sizeof(pg_uuid_t));
	memcpy(&dboid, MyBgworkerEntry->bgw_extra + sizeof(pg_uuid_t), sizeof(Oid));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (!worker_attach(DatumGetInt32(main_arg), &job_id))
		proc_exit(0);
	before_shmem_exit(worker_detach, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("gs_export job worker");
	gs_remote_init();

	/*
	 * An error the job cannot get past (the owner may not read leads, a
	 * table is gone, ...) fails the job with its message, instead of a
	 * relaunch that would meet it again.  A cancel (pg_cancel_backend)
	 * pauses it.
	 */
	PG_TRY();
	{
		run_job(&job_id);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		/* the whole report (SQLSTATE, detail, context) goes to the log */
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		/* a request abandoned here may reach the remote all the same */
		if (gs_remote_abandon_all() && gs_export_late_request_ms > 0)
			gs_job_doubt(&job_id, TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															  gs_export_late_request_ms));
		gs_job_stop_by_id(&job_id, error_reason(edata),
						  edata->sqlerrcode == ERRCODE_QUERY_CANCELED);
	}
	PG_END_TRY();

	/*
	 * Leaving in order: whatever was at the remote was answered, or given
	 * up on and put in doubt.  (A worker that dies -- a crash, a kill, a
	 * shutdown -- does not get here: the next claim puts the job in doubt
	 * instead, see _gs_job_claim.)
	 */
	if (job_claimed)
		gs_job_release(&job_id);
	proc_exit(0);
}
