/*-------------------------------------------------------------------------
 *
 * pace.c
 *	  How many leads a request holds and how many requests may be at the
 *	  remote at once.  A fixed pace keeps the job's batch_size and
 *	  max_in_flight.  An adaptive pace finds them, and must tell a remote
 *	  that is overloaded from one that is only noisy or flaky (issue 17:
 *	  1.1's pace backed off on every fault and on single slow answers and
 *	  grew back one request at a time, and a healthy remote with a noisy
 *	  latency or 13 % transient faults got a trickle):
 *
 *	  - At first it doubles the batch after each answer while requests
 *		take less than PACE_BATCH_GROW_MS, one request at a time.
 *	  - Then it doubles the requests in flight (the window), from two,
 *		after each clean round, up to max_in_flight.  A round is a few
 *		answers (at least PACE_ROUND_ANSWERS, and half a window's worth;
 *		settled, a window's) to requests sent since the last change; it is clean when at most a
 *		quarter of them are faults and their median time is under
 *		PACE_FULL_RISE times the base (the median of the first round).  A
 *		remote that is full answers slower as more are sent (each waits
 *		for the others): its median rises with the window, and when two
 *		rounds in a row say so, the pace goes back to the last clean
 *		window and settles.  A noisy remote's median does not rise with
 *		the window, and a median is not moved by a few slow answers.  A
 *		round with too many faults is not judged: the next one is.
 *	  - Settled, every PACE_PROBE_ROUNDS rounds it tries one more request
 *		(or, at max_in_flight, a batch twice as large), kept only when the
 *		rate rises by PACE_GAIN.
 *	  - It backs off (halves the window) only on what says the remote is
 *		hurt, never on one answer: the median of the last GS_PACE_SAMPLES
 *		answers' times above PACE_LATENCY_RISE times the settled one, two
 *		rounds in a row; PACE_FAULT_OVERLOAD transient faults (429, 503,
 *		502, 504, 544, a timeout, a connection error) among the last
 *		GS_PACE_FAULT_WINDOW answers (at 13 % faults that happens about
 *		once in several hundred answers, to a remote that is down at once;
 *		timeouts among them halve the batch too; not below a quarter of
 *		the settled window, PACE_FAULT_FLOOR); and 429s that come with the
 *		window: PACE_LIMIT_REFUSED refusals, at least half of the requests
 *		sent with that many or more at the remote, mark a limit, and the
 *		window stays below it for PACE_CEILING_MS (a gateway that lets N
 *		through at once refuses the (N+1)th every time; a 429 at random
 *		falls anywhere).  413 and the remote's statement timeout halve the
 *		batch, as before.  Isolated faults are retried by the worker, and
 *		are noise here.
 *	  - After a back-off it grows the same way, doubling the window per
 *		clean round back to where it had settled: once the trouble passes
 *		it is back within a few round trips.
 *
 *	  In either pace a Retry-After holds every request back until it has
 *	  passed, and a statement timeout proven to come from the batch's size
 *	  lowers it for good.
 *
 *	  A round's rate (for a trial) is what its requests would give
 *	  together: each answer's leads times the requests at the remote when it
 *	  was sent, over its time; a fault counts its time and no leads.  When
 *	  the remote is full, more at once only makes each slower, and that
 *	  rate stays flat.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "gs_export.h"

/* A trial must raise the rate this much to be kept. */
#define PACE_GAIN 1.05

/*
 * The batch doubles at first while its requests take less than this: well
 * under the remote's statement timeout (8 s on Supabase) and the HTTP
 * timeout, and above a WAN's round trip (a request across the world takes
 * up to ~1 s), so that latency alone does not keep the batch small.
 */
#define PACE_BATCH_GROW_MS 2000

/* Answers of a round, at least (and at least the window's). */
#define PACE_ROUND_ANSWERS 4

/* Settled for this many rounds, the pace tries one more request. */
#define PACE_PROBE_ROUNDS 20

/* What was learned from a refusal holds this long. */
#define PACE_CEILING_MS 60000

/*
 * Settled, the median of the last GS_PACE_SAMPLES answers' times this many
 * times the settled one, two rounds in a row, means the remote is hurt.
 * Growing, a round's median this many times the base, two rounds in a
 * row, means it is full: past what it can take at once, its time doubles
 * each time the window doubles, so it is soon there, while a noisy
 * remote's median of a few answers hardly ever is, twice.
 */
#define PACE_LATENCY_RISE 2.0
#define PACE_FULL_RISE 3.0

/*
 * Many transient faults halve the window, but not below a quarter of
 * where it had settled: the worker's retries, which back off each on its
 * own, already spare a remote that is down, and a pace that fell to one
 * request would take many rounds to come back once it is up.
 */
#define PACE_FAULT_FLOOR 4

/* Faults among the last GS_PACE_FAULT_WINDOW answers that mean overload. */
#define PACE_FAULT_OVERLOAD 8

/*
 * 429s that mark a limit on requests at once (with half of those sent):
 * two, so that a gateway's limit is found in the first burst that meets it
 * (a window of 4 against a limit of 2 gets two refusals); a 429 at random
 * rarely makes half of the requests sent at a window twice.
 */
#define PACE_LIMIT_REFUSED 2

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

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

static double
median(const double *v, int n)
{
	double		s[Max(GS_PACE_SAMPLES, GS_MAX_REQUESTS)];

	if (n <= 0)
		return 0;
	memcpy(s, v, sizeof(double) * n);
	qsort(s, n, sizeof(double), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* The next round starts: its answers are judged together. */
static void
clear_round(GsPace *pace)
{
	pace->round_answers = 0;
	pace->round_faults = 0;
	pace->round_nlat = 0;
	pace->round_rows = 0;
	pace->round_weighted = 0;
	pace->round_ms = 0;
}

/*
 * A change of the pace: what is sent from now on is judged (and, after a
 * change of the batch, only what is read at the new size).
 */
static void
new_round(GsPace *pace)
{
	pace->epoch++;
	pace->changed_at = GetCurrentTimestamp();
	clear_round(pace);
}

/* The batch changed: the times measured at the old one no longer tell. */
static void
clear_latency(GsPace *pace)
{
	pace->nlat = 0;
	pace->lat_next = 0;
	pace->lat_since_settle = 0;
	pace->base_ms = 0;
	pace->prev_round_ms = 0;
}

static void
settle(GsPace *pace, double rate)
{
	if (pace->window != pace->logged_window || pace->batch != pace->logged_batch)
	{
		ereport(LOG,
				(errmsg("gs_export: job %s: adaptive pace: %d leads per request, %d in flight, about %.0f leads/s",
						pace->job_id, pace->batch, pace->window, rate)));
		pace->logged_window = pace->window;
		pace->logged_batch = pace->batch;
	}
	pace->phase = GS_PACE_STEADY;
	pace->steady_rounds = 0;
	pace->slow_rounds = 0;
	pace->good_window = pace->window;
	pace->steady_ms = pace->nlat > 0 ? median(pace->lat, pace->nlat) : pace->prev_round_ms;
	pace->lat_since_settle = 0;
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
	if (pace->batch > size)
	{
		pace->batch = size;
		clear_latency(pace);
	}
	ereport(LOG,
			(errmsg("gs_export: job %s: the remote's statement timeout cancelled a request of %d leads, and its halves went through: its requests now hold at most %d leads",
					pace->job_id, n, size)));
}

/*
 * Back off, once for a burst of trouble: a request sent before the last
 * back-off tells of the pace that was already left.  Then grow again,
 * doubling per clean round, back to where it was.
 */
static void
back_off(GsPace *pace, TimestampTz now, TimestampTz sent, bool window, bool batch,
		 int floor, const char *why)
{
	if (sent < pace->backed_off_at)
		return;
	if (pace->phase == GS_PACE_STEADY && pace->window > pace->good_window)
		pace->good_window = pace->window;
	if (window)
		pace->window = Max(Min(floor, pace->window), pace->window / 2);
	if (batch && pace->batch > 1)
	{
		pace->batch = Max(1, pace->batch / 2);
		pace->batch_ceiling = pace->batch;
		pace->batch_ceiling_until = TimestampTzPlusMilliseconds(now, PACE_CEILING_MS);
		clear_latency(pace);
	}
	pace->backed_off_at = now;
	/* the faults seen so far are of the pace just left */
	memset(pace->fault, 0, sizeof(pace->fault));
	memset(pace->slow, 0, sizeof(pace->slow));
	pace->nfault_seen = 0;
	pace->fault_next = 0;
	ereport(LOG,
			(errmsg("gs_export: job %s: adaptive pace backs off (%s): %d leads per request, %d in flight",
					pace->job_id, why, pace->batch, pace->window)));
	pace->phase = GS_PACE_GROW_WINDOW;
	pace->probing_batch = false;
	pace->slow_rounds = 0;
	pace->clean_window = 0;
	pace->last_rate = 0;
	new_round(pace);
}

/*
 * A transient fault or a success, into the last answers; true when the
 * faults among them mean overload.
 */
static bool
note_fault(GsPace *pace, bool fault, bool slow, int *nslow)
{
	int			i,
				n = 0;

	pace->fault[pace->fault_next] = fault;
	pace->slow[pace->fault_next] = fault && slow;
	pace->fault_next = (pace->fault_next + 1) % GS_PACE_FAULT_WINDOW;
	if (pace->nfault_seen < GS_PACE_FAULT_WINDOW)
		pace->nfault_seen++;
	*nslow = 0;
	for (i = 0; i < GS_PACE_FAULT_WINDOW; i++)
	{
		n += pace->fault[i];
		*nslow += pace->slow[i];
	}
	return fault && n >= PACE_FAULT_OVERLOAD;
}

/*
 * A request sent with `window` at the remote was answered, or refused
 * with 429.  Returns the limit the refusals mark (0 for none): w - 1 for
 * the lowest window w, with a refusal, such that at least
 * PACE_LIMIT_REFUSED of the requests sent with w or more at once, and at
 * least half of them, were refused.  A gateway that lets N through
 * at once refuses the requests above N, and only those; a 429 at random
 * falls anywhere and does not come to half of any window's requests.
 * Searching every window matters: the answers of one burst come back in
 * any order, and the refusal that tips the count may be one sent with many
 * at once, while the requests refused with fewer say where the limit is.
 */
static int
note_window(GsPace *pace, int window, bool refused)
{
	int			w,
				sent = 0,
				nrefused = 0,
				total = 0,
				limit = 0;

	window = Max(1, Min(window, GS_MAX_REQUESTS));
	pace->sent_at[window]++;
	if (refused)
		pace->refused_at[window]++;
	for (w = 1; w <= GS_MAX_REQUESTS; w++)
		total += pace->sent_at[w];
	if (total > 8 * GS_MAX_REQUESTS)
	{
		/* old evidence fades */
		for (w = 1; w <= GS_MAX_REQUESTS; w++)
		{
			pace->sent_at[w] /= 2;
			pace->refused_at[w] /= 2;
		}
	}
	if (!refused || window < 2)
		return 0;
	/* the lowest window the refusals mark, whatever order they came in */
	for (w = GS_MAX_REQUESTS; w >= 2; w--)
	{
		sent += pace->sent_at[w];
		nrefused += pace->refused_at[w];
		if (pace->refused_at[w] > 0 && nrefused >= PACE_LIMIT_REFUSED &&
			2 * nrefused >= sent)
			limit = w - 1;
	}
	return limit;
}

/* A success's time, at the current batch. */
static void
note_latency(GsPace *pace, double ms)
{
	pace->lat[pace->lat_next] = ms;
	pace->lat_next = (pace->lat_next + 1) % GS_PACE_SAMPLES;
	if (pace->nlat < GS_PACE_SAMPLES)
		pace->nlat++;
	pace->lat_since_settle++;
}

/*
 * A round is over: judge it, and make the next change.
 */
static void
end_round(GsPace *pace, TimestampTz now)
{
	double		rate = pace->round_weighted * 1000.0 / Max(pace->round_ms, 1);
	double		med = median(pace->round_lat, pace->round_nlat);
	int			wlimit = window_limit(pace, now);
	int			blimit = batch_limit(pace, now);
	bool		faulty = 4 * pace->round_faults > pace->round_answers ||
		pace->round_nlat == 0;

	if (pace->phase == GS_PACE_GROW_WINDOW)
	{
		if (faulty)
		{
			/* too many faults to judge by: the next round is */
			clear_round(pace);
			return;
		}
		if (pace->base_ms <= 0)
			pace->base_ms = med;
		if (med > PACE_FULL_RISE * pace->base_ms && pace->window > 1 &&
			++pace->slow_rounds < 2)
		{
			/* once may be noise (or a base measured low): judge again */
			clear_round(pace);
			return;
		}
		if (med > PACE_FULL_RISE * pace->base_ms && pace->window > 1)
		{
			/* twice: the remote is full; back to the last clean window */
			pace->slow_rounds = 0;
			pace->window = pace->clean_window > 0 && pace->clean_window < pace->window ?
				pace->clean_window : Max(1, pace->window / 2);
			settle(pace, pace->last_rate > 0 ? pace->last_rate : rate);
		}
		else if (pace->window < wlimit)
		{
			/* a clean round: the median follows the remote, not one answer */
			pace->slow_rounds = 0;
			pace->base_ms = Max(pace->base_ms, 0.75 * med);
			pace->prev_round_ms = med;
			pace->last_rate = rate;
			pace->clean_window = pace->window;
			pace->window = Min(pace->window * 2, wlimit);
			if (pace->good_window > pace->window && pace->window * 2 > pace->good_window)
				pace->window = Min(pace->good_window, wlimit);
		}
		else
		{
			pace->slow_rounds = 0;
			pace->prev_round_ms = med;
			pace->window = Min(pace->window, wlimit);
			settle(pace, rate);
		}
	}
	else if (pace->phase == GS_PACE_PROBE)
	{
		if (rate < pace->last_rate * PACE_GAIN)
		{
			/* the trial did not pay: the remote is full */
			if (pace->probing_batch)
			{
				pace->batch = Max(1, pace->batch / 2);
				clear_latency(pace);
			}
			else
				pace->window = Max(1, pace->window - 1);
			pace->probing_batch = false;
			settle(pace, pace->last_rate);
		}
		else if (!pace->probing_batch && pace->window < wlimit)
		{
			pace->window++;
			pace->last_rate = rate;
		}
		else
		{
			pace->probing_batch = false;
			settle(pace, rate);
		}
	}
	else
	{
		/* settled: has the remote become slower? */
		if (pace->steady_ms <= 0 && pace->nlat >= GS_PACE_SAMPLES / 2)
			pace->steady_ms = median(pace->lat, pace->nlat);	/* after a new batch */
		if (pace->steady_ms > 0 && pace->lat_since_settle >= GS_PACE_SAMPLES / 2 &&
			median(pace->lat, pace->nlat) > PACE_LATENCY_RISE * pace->steady_ms &&
			pace->window > 1 && ++pace->slow_rounds >= 2)
		{
			back_off(pace, now, now, true, false, 1, "latency rising");
			/* what the remote answers now is the new reference */
			pace->base_ms = 0;
			pace->good_window = pace->window;
			return;
		}
		if (pace->lat_since_settle >= GS_PACE_SAMPLES / 2 &&
			median(pace->lat, pace->nlat) <= PACE_LATENCY_RISE * pace->steady_ms)
			pace->slow_rounds = 0;
		if (++pace->steady_rounds < PACE_PROBE_ROUNDS)
		{
			/* no change: the next round is judged as this one */
			clear_round(pace);
			return;
		}
		pace->steady_rounds = 0;
		if (pace->window < wlimit)
		{
			pace->phase = GS_PACE_PROBE;
			pace->window++;
			pace->last_rate = rate;
		}
		else if (pace->batch < blimit)
		{
			pace->phase = GS_PACE_PROBE;
			pace->probing_batch = true;
			pace->batch = Min(pace->batch * 2, blimit);
			pace->last_rate = rate;
			clear_latency(pace);
		}
		else if (pace->window > wlimit)
			pace->window = wlimit;
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
	bool		transient;
	bool		slow;
	int			nslow;
	int			limit;

	/* Retry-After is the remote's word, in either pace: nobody sends before */
	if (res->outcome == GS_REMOTE_RETRY && res->retry_after_ms > 0)
	{
		TimestampTz until = TimestampTzPlusMilliseconds(now, res->retry_after_ms);

		if (until > pace->hold_until)
			pace->hold_until = until;
	}
	if (!pace->adaptive)
		return;

	if (status == 413 || res->statement_timeout)
	{
		/* the batch's size, not the remote's health */
		if (rows > 1 && pace->batch > rows / 2)
			back_off(pace, now, sent, false, true, 1,
					 status == 413 ? "413 Payload Too Large" : "the remote's statement timeout");
		return;
	}

	slow = res->timed_out || status == 504 || status == 544;
	transient = res->outcome == GS_REMOTE_RETRY;
	if (res->outcome != GS_REMOTE_OK && !transient)
		return;					/* the leads', not the pace's business */

	if ((limit = note_window(pace, window, status == 429)) > 0)
	{
		/* a limit on requests at once: stay below it for a while */
		int			ceiling = limit;

		if (pace->window_ceiling == 0 || ceiling < pace->window_ceiling)
			pace->window_ceiling = ceiling;
		pace->window_ceiling_until = TimestampTzPlusMilliseconds(now, PACE_CEILING_MS);
		memset(pace->sent_at, 0, sizeof(pace->sent_at));
		memset(pace->refused_at, 0, sizeof(pace->refused_at));
		if (pace->window > ceiling)
		{
			pace->window = ceiling;
			pace->good_window = Min(pace->good_window, ceiling);
			ereport(LOG,
					(errmsg("gs_export: job %s: adaptive pace backs off (429 Too Many Requests): %d leads per request, %d in flight (%d at once were refused; at most %d for %d s)",
							pace->job_id, pace->batch, pace->window, window, ceiling,
							PACE_CEILING_MS / 1000)));
			if (pace->phase != GS_PACE_GROW_BATCH)
			{
				pace->probing_batch = false;
				settle(pace, pace->last_rate);
				new_round(pace);
			}
		}
		return;
	}

	if (sent >= pace->backed_off_at &&
		note_fault(pace, transient, slow, &nslow))
	{
		back_off(pace, now, sent, true, 2 * nslow >= PACE_FAULT_OVERLOAD,
				 Max(1, pace->good_window / PACE_FAULT_FLOOR), "many transient faults");
		return;
	}

	if (pace->phase == GS_PACE_GROW_BATCH)
	{
		if (transient || epoch != pace->epoch)
			return;
		/* double while the requests stay short */
		if (pace->batch < batch_limit(pace, now) && res->elapsed_ms < PACE_BATCH_GROW_MS)
		{
			pace->batch = Min(pace->batch * 2, batch_limit(pace, now));
			clear_latency(pace);
		}
		if (pace->batch >= batch_limit(pace, now) || res->elapsed_ms >= PACE_BATCH_GROW_MS)
		{
			/*
			 * The window's turn; its first round, at two, measures the
			 * base (one at a time is what was just done).
			 */
			pace->phase = GS_PACE_GROW_WINDOW;
			pace->window = Min(2, window_limit(pace, now));
			pace->clean_window = 1;
			pace->last_rate = 0;
		}
		new_round(pace);
		return;
	}

	/* a success at this batch: its time (a split span's or a tail's not) */
	if (!transient && rows * 2 >= pace->batch)
		note_latency(pace, Max(res->elapsed_ms, 1));

	/*
	 * In the round: sent since the last change.  A flight read before a
	 * change of the window only, and sent after it, tells of the new window
	 * (its size is the same); after a change of the batch, only requests
	 * of the new size tell.
	 */
	if (sent < pace->changed_at ||
		(pace->probing_batch ? rows < pace->batch : epoch != pace->epoch && rows * 2 < pace->batch))
		return;
	pace->round_answers++;
	pace->round_ms += Max(res->elapsed_ms, 1);
	if (transient)
		pace->round_faults++;
	else
	{
		pace->round_rows += rows;
		pace->round_weighted += (double) rows * window;
		if (rows * 2 >= pace->batch && pace->round_nlat < GS_MAX_REQUESTS)
			pace->round_lat[pace->round_nlat++] = Max(res->elapsed_ms, 1);
	}
	/* growing, half a window's answers judge it (a median needs no more) */
	if (pace->round_answers >= Max(PACE_ROUND_ANSWERS,
								   pace->phase == GS_PACE_GROW_WINDOW ? pace->window / 2 : pace->window))
		end_round(pace, now);
}
