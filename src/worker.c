/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The job worker: a dynamic background worker that runs one job.  Batch
 *	  by batch it reads leads (source.c), sends them (remote.c) with retries,
 *	  splitting a batch the remote refuses until each bad lead stands alone,
 *	  and a batch the remote's statement timeout cancels (from then on the
 *	  job's requests stay that small), records the outcome (job.c), and
 *	  waits delay_ms on its latch.  A pass
 *	  ends only on an empty read (a read that locks leads before its
 *	  snapshot), never on a short batch.
 *	  While a batch is at the remote, the next one is read, in its own short
 *	  transaction: no transaction spans a request.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
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
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "gs_export.h"

/* First wait before retrying a batch; it doubles with each attempt. */
#define RETRY_BASE_DELAY_MS 250

static int	my_slot = -1;

/*
 * The next batch, read while the current one is at the remote.
 */
typedef struct ReadAhead
{
	GsSource   *src;
	MemoryContext cxt;			/* where the next batch lives */
	TimestampTz after_ts;		/* the current batch's last lead */
	int64		after_id;
	GsBatch    *batch;			/* NULL until read */
} ReadAhead;

typedef enum SendResult
{
	SEND_DONE,					/* every lead has an outcome */
	SEND_STOP					/* the job was paused or failed: stop */
} SendResult;

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
 * Sleep up to ms on the latch.  False when the job stopped running meanwhile
 * (a pause): the caller stops at once instead of sleeping on.
 */
static bool
wait_while_running(GsJob *job, long ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left;
		int			rc;

		left = (long) ((end - GetCurrentTimestamp()) / 1000);
		if (left <= 0)
			return true;
		pgstat_report_activity(STATE_IDLE, "gs_export: waiting");
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		handle_reload();
		if ((rc & WL_LATCH_SET) && !gs_job_is_running(job))
			return false;
	}
}

static long
retry_delay_ms(int attempt, int retry_after_ms)
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
 * Called by remote.c once the current batch is sent.  An error here (say,
 * the owner just lost SELECT on leads) must not cost the batch at the
 * remote its outcome: it is set aside, and the worker meets it again when
 * it reads this batch the ordinary way, after recording the current one.
 */
static void
read_ahead(void *arg)
{
	ReadAhead  *ra = (ReadAhead *) arg;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		ra->batch = gs_source_next(ra->src, ra->cxt, ra->after_ts, ra->after_id);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();		/* an operator's cancel is for the job */
		/* logged with its SQLSTATE, detail and context; met again later */
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		ra->batch = NULL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_RUNNING, "gs_export: sending a batch");
}

/*
 * The remote's statement timeout cancelled a request of n leads, and then
 * both its halves went through, each in one request and in time: n leads
 * were too many at once for the remote.  From now on no request of this
 * worker holds more than the larger half.  job->batch_size is what
 * source.c reads with, so later batches are read that small; a batch read
 * before, or the rest of a split, goes in pieces of that size
 * (send_range).  It is kept in memory only: a resumed or restarted job
 * starts again from its batch_size, and finds the size again the same way.
 *
 * Only both halves prove it: when one of them timed out too, that half may
 * hold one lead the remote is slow to write whatever the company (a
 * trigger of its own, a lock), and the splits that isolate it say nothing
 * about the size; lowering at each of them would leave the rest of the job
 * one lead per request.
 */
static void
lower_batch_size(GsJob *job, int n)
{
	int			size = n - n / 2;

	if (size >= job->batch_size)
		return;
	job->batch_size = size;
	ereport(LOG,
			(errmsg("gs_export: job %s: the remote's statement timeout cancelled a request of %d leads, and its halves went through: its requests now hold at most %d leads",
					job->id_text, n, size)));
}

/*
 * Send leads [from, from + n) of the batch until each has an outcome.
 * Trouble that may pass is retried; a refusal caused by some rows splits
 * the range in two, and so does the remote's statement timeout (500 57014:
 * the upsert took too long, so fewer rows at a time; a lone lead that
 * still takes too long is retried as trouble that may pass, for it is the
 * remote's load and not the lead); a column the remote lacks is dropped
 * for good.  *whole, if given, says whether the range went through in one
 * request that no statement timeout cancelled.
 */
static SendResult
send_range(GsJob *job, GsSource *src, GsBatch *batch, int from, int n,
		   GsLeadOutcome *out, ReadAhead *ahead, bool *whole)
{
	int			attempt = 0;
	bool		timed_out = false;

	if (whole)
		*whole = false;

	/*
	 * More leads than a request may now hold (the batch was read before the
	 * size was lowered, or is the other half of a split): in pieces.
	 */
	if (n > job->batch_size)
	{
		int			done = 0;

		while (done < n)
		{
			int			piece = Min(job->batch_size, n - done);

			if (send_range(job, src, batch, from + done, piece, out, ahead, NULL) == SEND_STOP)
				return SEND_STOP;
			ahead = NULL;
			done += piece;
		}
		return SEND_DONE;
	}

	for (;;)
	{
		GsRemoteResult res;
		List	   *columns = NIL;
		ListCell   *lc;
		char	   *body;
		size_t		body_len;
		int			i;

		CHECK_FOR_INTERRUPTS();
		foreach(lc, gs_source_columns(src))
			if (!column_listed(job->ignored_fields, lfirst(lc)))
				columns = lappend(columns, lfirst(lc));
		foreach(lc, job->ignored_fields)
			gs_payload_drop_key(batch, from, n, lfirst(lc));

		body = gs_payload_body(batch->texts + from, batch->lens + from, n, &body_len);
		pgstat_report_activity(STATE_RUNNING, "gs_export: sending a batch");
		gs_remote_post(job->project_url, job->api_key, job->target_table, columns, body, &res,
					   ahead ? read_ahead : NULL, ahead);
		ahead = NULL;			/* read once, on the first attempt */
		pfree(body);
		attempt++;

		switch (res.outcome)
		{
			case GS_REMOTE_OK:
				for (i = from; i < from + n; i++)
					out[i].ok = true;
				if (whole)
					*whole = !timed_out;
				return SEND_DONE;

			case GS_REMOTE_BAD_ROWS:
				if (n == 1)
				{
					out[from].ok = false;
					out[from].error = res.error;
					out[from].http_status = res.http_status;
					out[from].response_body = res.body;
					return SEND_DONE;
				}
				if (send_range(job, src, batch, from, n / 2, out, NULL, NULL) == SEND_STOP)
					return SEND_STOP;
				return send_range(job, src, batch, from + n / 2, n - n / 2, out, NULL, NULL);

			case GS_REMOTE_MISSING_COLUMN:
				if (strcmp(res.missing_column, "id") == 0 ||
					!column_listed(columns, res.missing_column))
				{
					gs_job_stop(job, false, psprintf("the remote refused the batch: %s", res.error));
					return SEND_STOP;
				}
				gs_job_ignore_column(job, res.missing_column);
				attempt = 0;
				continue;

			case GS_REMOTE_FATAL:
				gs_job_stop(job, false, psprintf("the remote refused the export: %s", res.error));
				return SEND_STOP;

			case GS_REMOTE_RETRY:
				if (res.statement_timeout && n > 1)
				{
					bool		first_whole;
					bool		second_whole;

					/* the halves, each in time (or split again) */
					if (send_range(job, src, batch, from, n / 2, out, NULL,
								   &first_whole) == SEND_STOP ||
						send_range(job, src, batch, from + n / 2, n - n / 2, out, NULL,
								   &second_whole) == SEND_STOP)
						return SEND_STOP;
					if (first_whole && second_whole)
						lower_batch_size(job, n);
					return SEND_DONE;
				}
				if (res.statement_timeout)
					timed_out = true;
				if (attempt >= gs_export_max_retries)
				{
					if (res.statement_timeout)
						gs_job_stop(job, true,
									psprintf("the remote's statement timeout cancelled the upsert of lead %lld even alone (%s) after %d attempts: "
											 "the remote is overloaded, or slow to write that row; gs_export_resume() continues from here",
											 (long long) batch->ids[from], res.error, attempt));
					else
						gs_job_stop(job, true, psprintf("the remote is unavailable (%s) after %d attempts; "
												   "gs_export_resume() continues from here",
												   res.error, attempt));
					return SEND_STOP;
				}
				ereport(DEBUG1,
						(errmsg("gs_export: job %s: attempt %d failed: %s",
								job->id_text, attempt, res.error)));
				if (!wait_while_running(job, retry_delay_ms(attempt, res.retry_after_ms)))
					return SEND_STOP;
				continue;
		}
	}
}

/*
 * The job, batch after batch, pass after pass, until it is done or must
 * stop.
 */
static void
run_job(const pg_uuid_t *job_id)
{
	GsJob		job;
	GsSource   *src;
	MemoryContext job_cxt;
	MemoryContext batch_cxt[2];
	int			cur = 0;
	GsBatch    *next = NULL;

	job_cxt = AllocSetContextCreate(TopMemoryContext, "gs_export job",
									ALLOCSET_DEFAULT_SIZES);
	/* Two batches live at once: the one at the remote, the next one read. */
	batch_cxt[0] = AllocSetContextCreate(job_cxt, "gs_export batch",
										 ALLOCSET_DEFAULT_SIZES);
	batch_cxt[1] = AllocSetContextCreate(job_cxt, "gs_export batch",
										 ALLOCSET_DEFAULT_SIZES);

	if (gs_job_start(&job, job_id, job_cxt) != GS_JOB_RUN)
		return;

	src = gs_source_open(&job, job_cxt);
	if (src == NULL)
		return;					/* the extension was dropped */
	ereport(LOG,
			(errmsg("gs_export: job %s started: batches of %d, %d ms apart, time zone %s",
					job.id_text, job.batch_size, job.delay_ms, job.time_zone)));

	for (;;)
	{
		GsBatch    *batch;
		GsLeadOutcome *outcomes;
		TimestampTz started;
		ReadAhead	ahead;
		bool		use_ahead;
		int			i;

		CHECK_FOR_INTERRUPTS();
		handle_reload();

		if (next != NULL)
		{
			batch = next;		/* read while the last one was at the remote */
			next = NULL;
		}
		else
		{
			MemoryContextReset(batch_cxt[cur]);
			MemoryContextSwitchTo(batch_cxt[cur]);
			batch = gs_source_next(src, batch_cxt[cur], job.cursor_ts, job.cursor_id);
			if (batch == NULL)
				return;			/* the extension was dropped */
		}
		/* everything of this batch lives in batch_cxt[cur] */
		MemoryContextSwitchTo(batch_cxt[cur]);

		/*
		 * Only an empty read ends a pass: it was made in a transaction that
		 * began after the last batch was recorded, with leads locked before
		 * its snapshot was taken.
		 */
		if (batch->nleads == 0)
		{
			if (gs_job_next_pass(&job))
				continue;
			return;
		}

		outcomes = palloc0(sizeof(GsLeadOutcome) * batch->nleads);
		started = GetCurrentTimestamp();
		use_ahead = false;
		if (batch->oversized)
		{
			/* a lead alone larger than a request may be: never sent */
			for (i = 0; i < batch->nleads; i++)
				outcomes[i].error =
					psprintf("the lead's JSON is %zu bytes, more than gs_export.max_request_size (%d bytes) allows in one request",
							 batch->lens[i], gs_export_max_request_size);
		}
		else
		{
			/* While this batch is at the remote, read the next one. */
			use_ahead = true;
			MemoryContextReset(batch_cxt[1 - cur]);
			ahead.src = src;
			ahead.cxt = batch_cxt[1 - cur];
			ahead.after_ts = batch->last_ts;
			ahead.after_id = batch->last_id;
			ahead.batch = NULL;
			if (send_range(&job, src, batch, 0, batch->nleads, outcomes, &ahead, NULL) == SEND_STOP)
				return;
		}

		handle_reload();		/* a reload during the request counts now */
		if (!gs_job_record(&job, src, batch, outcomes,
						   (int) ((GetCurrentTimestamp() - started) / 1000)))
		{
			ereport(LOG,
					(errmsg("gs_export: job %s is no longer running; its worker stops",
							job.id_text)));
			return;
		}
		if (job.delay_ms > 0 && !wait_while_running(&job, job.delay_ms))
		{
			ereport(LOG,
					(errmsg("gs_export: job %s is no longer running; its worker stops",
							job.id_text)));
			return;
		}
		if (use_ahead && ahead.batch != NULL)
		{
			next = ahead.batch;
			cur = 1 - cur;
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
		gs_job_stop_by_id(&job_id, error_reason(edata),
						  edata->sqlerrcode == ERRCODE_QUERY_CANCELED);
	}
	PG_END_TRY();

	proc_exit(0);
}
