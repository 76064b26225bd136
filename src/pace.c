/*-------------------------------------------------------------------------
 *
 * pace.c
 *	  How many leads a request holds and how many requests may be at the
 *	  remote at once.  A fixed pace keeps the job's batch_size and
 *	  max_in_flight.  An adaptive pace finds them: it doubles the batch
 *	  after each answer while the requests stay short, then adds a request
 *	  in flight at a time while each one raises the rate, and goes back one
 *	  when it does not (the remote's latency then rises instead); every so
 *	  often it tries one more again.  It backs off multiplicatively when the
 *	  remote says it is hurt: 429 or 503 halve the requests in flight (a 429
 *	  also marks how many at once were too many), a timeout or a latency
 *	  twice the settled one halve both, 413 and the remote's statement
 *	  timeout the batch; once per burst of trouble.  In either pace a
 *	  Retry-After holds every request back until it has passed, and a
 *	  statement timeout proven to come from the batch's size lowers it for
 *	  good.
 *
 *	  The rate is judged in rounds of a few answers, counting only requests
 *	  read and sent since the last change, so that each change is judged by
 *	  its own effect.  A round's rate is what its requests would give
 *	  together: each answer's leads times the requests at the remote when it
 *	  was sent, over its time.  When the remote is full, more at once only
 *	  makes each slower, and that rate stays flat.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "gs_export.h"

/* A change must raise the rate this much to be kept. */
#define PACE_GAIN 1.05

/* The batch doubles only while its requests take less than this. */
#define PACE_BATCH_GROW_MS 500

/* Answers of a round. */
#define PACE_ROUND_ANSWERS 2

/* Settled for this many rounds, the pace tries one more request. */
#define PACE_PROBE_ROUNDS 20

/* What was learned from a refusal holds this long. */
#define PACE_CEILING_MS 60000

/* A settled round slower than this many times the settled latency. */
#define PACE_LATENCY_RISE 2.0

static int
window_limit(GsPace *pace, TimestampTz now)
{
	if (pace->window_ceiling > 0 && now >= pace->window_ceiling_until)
		pace->window_ceiling = 0;
	return pace->window_ceiling > 0 ? Min(pace->window_max, pace->window_ceiling)
		: pace->window_max;
}

static int
batch_limit(GsPace *pace, TimestampTz now)
{
	if (pace->batch_ceiling > 0 && now >= pace->batch_ceiling_until)
		pace->batch_ceiling = 0;
	return pace->batch_ceiling > 0 ? Min(pace->batch_cap, pace->batch_ceiling)
		: pace->batch_cap;
}

/* A change of the pace: what is read and sent from now on is judged. */
static void
new_round(GsPace *pace)
{
	pace->epoch++;
	pace->round_answers = 0;
	pace->round_rows = 0;
	pace->round_weighted = 0;
	pace->round_ms = 0;
}

static void
settle(GsPace *pace, double rate, double row_ms)
{
	if (!pace->settled_once)
		ereport(LOG,
				(errmsg("gs_export: job %s: adaptive pace: %d leads per request, %d in flight, about %.0f leads/s",
						pace->job_id, pace->batch, pace->window, rate)));
	pace->settled_once = true;
	pace->phase = GS_PACE_STEADY;
	pace->steady_rounds = 0;
	pace->steady_row_ms = row_ms;
}

void
gs_pace_init(GsPace *pace, const GsJob *job)
{
	memset(pace, 0, sizeof(GsPace));
	pace->job_id = job->id_text;
	pace->adaptive = job->adaptive;
	pace->window_max = Max(1, Min(job->max_in_flight, GS_MAX_REQUESTS));
	pace->batch_cap = job->adaptive ? Max(job->batch_size_max, job->batch_size)
		: job->batch_size;
	pace->batch = job->batch_size;
	pace->window = job->adaptive ? 1 : pace->window_max;
	pace->phase = pace->batch < pace->batch_cap ? GS_PACE_GROW_BATCH : GS_PACE_GROW_WINDOW;
	new_round(pace);
}

/*
 * Should the worker read a batch before it can send it?  Not while an
 * adaptive pace grows the batch: the next read is to be of the new size.
 */
bool
gs_pace_reads_ahead(GsPace *pace)
{
	return !(pace->adaptive && pace->phase == GS_PACE_GROW_BATCH);
}

/*
 * The remote's statement timeout cancelled a request of n leads and both
 * its halves then went through in time: no request holds more than the
 * larger half from now on, in either pace, for the worker's life.
 */
void
gs_pace_lower_batch(GsPace *pace, int n)
{
	int			size = n - n / 2;

	if (size >= pace->batch_cap)
		return;
	pace->batch_cap = size;
	pace->batch = Min(pace->batch, size);
	ereport(LOG,
			(errmsg("gs_export: job %s: the remote's statement timeout cancelled a request of %d leads, and its halves went through: its requests now hold at most %d leads",
					pace->job_id, n, size)));
}

/*
 * Back off, once for a burst of trouble: a request sent before the last
 * back-off tells of the pace that was already left.
 */
static void
back_off(GsPace *pace, TimestampTz now, TimestampTz sent, bool window, bool batch,
		 const char *why)
{
	if (sent < pace->backed_off_at)
		return;
	if (window)
		pace->window = Max(1, pace->window / 2);
	if (batch)
	{
		pace->batch = Max(1, pace->batch / 2);
		pace->batch_ceiling = pace->batch;
		pace->batch_ceiling_until = TimestampTzPlusMilliseconds(now, PACE_CEILING_MS);
	}
	pace->backed_off_at = now;
	ereport(LOG,
			(errmsg("gs_export: job %s: adaptive pace backs off (%s): %d leads per request, %d in flight",
					pace->job_id, why, pace->batch, pace->window)));
	/* grow again, up to what was learned: first, the rate as it is now */
	pace->phase = GS_PACE_GROW_WINDOW;
	pace->last_rate = 0;
	new_round(pace);
}

/*
 * A round is over: judge the last change by the rate, and make the next.
 */
static void
end_round(GsPace *pace, TimestampTz now)
{
	double		rate = pace->round_weighted * 1000.0 / Max(pace->round_ms, 1);
	double		row_ms = pace->round_ms / Max(pace->round_rows, 1);
	int			wlimit = window_limit(pace, now);
	int			blimit = batch_limit(pace, now);

	if (pace->phase == GS_PACE_GROW_WINDOW)
	{
		if (pace->last_rate > 0 && rate < pace->last_rate * PACE_GAIN)
		{
			/* one more in flight did not pay: the remote is full */
			pace->window = Max(1, pace->window - 1);
			settle(pace, pace->last_rate, pace->last_row_ms);
		}
		else if (pace->window < wlimit)
		{
			pace->window++;
			pace->last_rate = rate;
			pace->last_row_ms = row_ms;
		}
		else
			settle(pace, rate, row_ms);
	}
	else
	{
		if (pace->steady_row_ms > 0 && row_ms > PACE_LATENCY_RISE * pace->steady_row_ms &&
			(pace->window > 1 || pace->batch > 1))
		{
			back_off(pace, now, now, true, true, "latency rising");
			return;
		}
		if (++pace->steady_rounds < PACE_PROBE_ROUNDS)
		{
			/* no change: the next round is judged as this one */
			pace->round_answers = 0;
			pace->round_rows = 0;
			pace->round_weighted = 0;
			pace->round_ms = 0;
			return;
		}
		pace->steady_rounds = 0;
		if (pace->window < wlimit)
		{
			pace->phase = GS_PACE_GROW_WINDOW;
			pace->window++;
			pace->last_rate = rate;
			pace->last_row_ms = row_ms;
		}
		else if (pace->batch < blimit)
		{
			pace->phase = GS_PACE_GROW_BATCH;
			pace->batch = Min(pace->batch * 2, blimit);
		}
	}
	new_round(pace);
}

/*
 * A request's answer.  rows: the leads it held; window: how many requests
 * were at the remote when it was sent (itself included); epoch: the
 * pace's epoch when its leads were read and it was sent, or 0 when those
 * differ.
 */
void
gs_pace_answer(GsPace *pace, const GsRemoteResult *res, int rows, int window, uint64 epoch)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz sent = now - (TimestampTz) res->elapsed_ms * 1000;
	long		status = res->http_status;

	/* Retry-After is the remote's word, in either pace: nobody sends before */
	if (res->outcome == GS_REMOTE_RETRY && res->retry_after_ms > 0)
	{
		TimestampTz until = TimestampTzPlusMilliseconds(now, res->retry_after_ms);

		if (until > pace->hold_until)
			pace->hold_until = until;
	}
	if (!pace->adaptive)
		return;

	if (status == 429)
	{
		/* that many at once were too many */
		int			ceiling = Max(1, window - 1);

		if (pace->window_ceiling == 0 || ceiling < pace->window_ceiling)
			pace->window_ceiling = ceiling;
		pace->window_ceiling_until = TimestampTzPlusMilliseconds(now, PACE_CEILING_MS);
		back_off(pace, now, sent, true, false, "429 Too Many Requests");
		return;
	}
	if (status == 503)
	{
		back_off(pace, now, sent, true, false, "503 Service Unavailable");
		return;
	}
	if (status == 413 || res->statement_timeout)
	{
		if (rows > 1 && pace->batch > rows / 2)
			back_off(pace, now, sent, false, true,
					 status == 413 ? "413 Payload Too Large" : "the remote's statement timeout");
		return;
	}
	if (res->timed_out || status == 502 || status == 504 || status == 544)
	{
		back_off(pace, now, sent, true, true, res->timed_out ? "timeout" : "gateway timeout");
		return;
	}
	if (res->outcome != GS_REMOTE_OK || epoch != pace->epoch)
		return;

	if (pace->phase == GS_PACE_GROW_BATCH)
	{
		/* double while the requests stay short */
		if (pace->batch < batch_limit(pace, now) && res->elapsed_ms < PACE_BATCH_GROW_MS)
			pace->batch = Min(pace->batch * 2, batch_limit(pace, now));
		else
		{
			pace->phase = GS_PACE_GROW_WINDOW;
			pace->last_rate = 0;
		}
		new_round(pace);
		return;
	}

	pace->round_answers++;
	pace->round_rows += rows;
	pace->round_weighted += (double) rows * pace->window;
	pace->round_ms += Max(res->elapsed_ms, 1);
	if (pace->round_answers >= PACE_ROUND_ANSWERS)
		end_round(pace, now);
}
