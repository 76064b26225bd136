/*-------------------------------------------------------------------------
 *
 * pace.c
 *	  How many leads a request holds and how many requests may be at the
 *	  remote at once.  A fixed pace keeps the job's batch_size and
 *	  max_in_flight.  An adaptive pace finds them: it doubles the batch
 *	  while the requests stay short and the rate does not fall, then adds a
 *	  request in flight at a time while each one raises the rate, and goes
 *	  back one when it does not (the remote's latency then rises instead);
 *	  every so often it tries one more again.  It backs off
 *	  multiplicatively when the remote says it is hurt: 429 or 503 halve
 *	  the requests in flight (a 429 also marks how many were too many), a
 *	  timeout or a latency twice the settled one halve both, 413 and the
 *	  remote's statement timeout the batch.  In either pace a Retry-After
 *	  holds every request back until it has passed, and a statement timeout
 *	  proven to come from the batch's size lowers it for good.
 *
 *	  The rate is measured in rounds: as many answers as requests may be in
 *	  flight, counting only requests read and sent since the last change,
 *	  so that each change is judged by its own effect.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "gs_export.h"

/* A change must raise the rate this much to be kept. */
#define PACE_GAIN 1.10

/* The batch doubles only while its requests take less than this. */
#define PACE_BATCH_TARGET_MS 500

/* Shortest round: answers closer together say nothing of the rate. */
#define PACE_ROUND_MIN_MS 50

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

/* A change of the pace: the next round measures it alone. */
static void
new_round(GsPace *pace, TimestampTz now)
{
	pace->epoch++;
	pace->round_start = now;
	pace->round_answers = 0;
	pace->round_rows = 0;
	pace->round_ms = 0;
	pace->round_max_ms = 0;
}

static void
settle(GsPace *pace, double rate, double row_ms)
{
	if (pace->phase != GS_PACE_STEADY && !pace->settled_once)
		ereport(LOG,
				(errmsg("gs_export: job %s: adaptive pace: %d leads per request, %d in flight, %.0f leads/s",
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
	new_round(pace, GetCurrentTimestamp());
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

static void
back_off(GsPace *pace, TimestampTz now, bool window, bool batch, const char *why)
{
	int			old_window = pace->window;
	int			old_batch = pace->batch;

	if (window)
		pace->window = Max(1, pace->window / 2);
	if (batch)
	{
		pace->batch = Max(1, pace->batch / 2);
		pace->batch_ceiling = pace->batch;
		pace->batch_ceiling_until = TimestampTzPlusMilliseconds(now, PACE_CEILING_MS);
	}
	if (pace->window == old_window && pace->batch == old_batch)
		return;
	ereport(LOG,
			(errmsg("gs_export: job %s: adaptive pace backs off (%s): %d leads per request, %d in flight",
					pace->job_id, why, pace->batch, pace->window)));
	/* grow again, up to what was learned */
	pace->phase = GS_PACE_GROW_WINDOW;
	pace->last_rate = 0;
	new_round(pace, now);
}

/*
 * A round is over: judge the last change by the rate, and make the next.
 */
static void
end_round(GsPace *pace, TimestampTz now)
{
	double		secs = (double) (now - pace->round_start) / USECS_PER_SEC;
	double		rate = pace->round_rows / Max(secs, 0.001);
	double		row_ms = pace->round_ms / Max(pace->round_rows, 1);
	int			wlimit = window_limit(pace, now);
	int			blimit = batch_limit(pace, now);

	switch (pace->phase)
	{
		case GS_PACE_GROW_BATCH:
			if (pace->last_rate > 0 && rate < pace->last_rate / PACE_GAIN)
			{
				/* a larger batch made it slower: back to the last one */
				pace->batch = Max(1, pace->batch / 2);
				pace->phase = GS_PACE_GROW_WINDOW;
				pace->last_rate = 0;
				break;
			}
			if (pace->batch < blimit && pace->round_max_ms < PACE_BATCH_TARGET_MS)
			{
				pace->batch = Min(pace->batch * 2, blimit);
				pace->last_rate = rate;
				break;
			}
			pace->phase = GS_PACE_GROW_WINDOW;
			pace->last_rate = 0;
			/* FALLTHROUGH */
		case GS_PACE_GROW_WINDOW:
			if (pace->last_rate > 0 && rate < pace->last_rate * PACE_GAIN)
			{
				/* one more in flight did not pay: the remote is full */
				pace->window = Max(1, pace->window - 1);
				settle(pace, pace->last_rate, pace->last_row_ms);
				break;
			}
			if (pace->window < wlimit)
			{
				pace->window++;
				pace->last_rate = rate;
				pace->last_row_ms = row_ms;
				break;
			}
			settle(pace, rate, row_ms);
			break;
		case GS_PACE_STEADY:
			if (pace->steady_row_ms > 0 && row_ms > PACE_LATENCY_RISE * pace->steady_row_ms &&
				(pace->window > 1 || pace->batch > 1))
			{
				back_off(pace, now, true, true, "latency rising");
				return;
			}
			if (++pace->steady_rounds >= PACE_PROBE_ROUNDS)
			{
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
					pace->last_rate = rate;
				}
			}
			else
				return;			/* no change: the round goes on counting */
			break;
	}
	new_round(pace, now);
}

/*
 * A request's answer.  rows: the leads it held; window: how many requests
 * were at the remote when it was sent (itself included); epoch: the
 * pace's epoch when its leads were read and it was sent (the older of
 * the two).
 */
void
gs_pace_answer(GsPace *pace, const GsRemoteResult *res, int rows, int window, uint64 epoch)
{
	TimestampTz now = GetCurrentTimestamp();
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
		pace->window_ceiling = Max(1, window - 1);
		pace->window_ceiling_until = TimestampTzPlusMilliseconds(now, PACE_CEILING_MS);
		back_off(pace, now, true, false, "429 Too Many Requests");
		return;
	}
	if (status == 503)
	{
		back_off(pace, now, true, false, "503 Service Unavailable");
		return;
	}
	if (status == 413 || res->statement_timeout)
	{
		if (rows > 1)
		{
			pace->batch_ceiling = Max(1, rows / 2);
			pace->batch_ceiling_until = TimestampTzPlusMilliseconds(now, PACE_CEILING_MS);
			if (pace->batch > pace->batch_ceiling)
				back_off(pace, now, false, true,
						 status == 413 ? "413 Payload Too Large" : "the remote's statement timeout");
		}
		return;
	}
	if (res->timed_out || status == 502 || status == 504 || status == 544)
	{
		back_off(pace, now, true, true, res->timed_out ? "timeout" : "gateway timeout");
		return;
	}
	if (res->outcome != GS_REMOTE_OK || epoch != pace->epoch)
		return;

	pace->round_answers++;
	pace->round_rows += rows;
	pace->round_ms += res->elapsed_ms;
	pace->round_max_ms = Max(pace->round_max_ms, res->elapsed_ms);
	if (pace->round_answers >= pace->window &&
		now - pace->round_start >= PACE_ROUND_MIN_MS * 1000)
		end_round(pace, now);
}
