/*-------------------------------------------------------------------------
 *
 * gs_export.h
 *	  Declarations shared by the files of gs_export: GUCs, shared memory,
 *	  and the interfaces between launcher, worker, job, source, payload,
 *	  remote, pace, store, alert, scrub and check.  The limits of the options are in
 *	  gs_limits.h, what the libcurl users share in gs_curl.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef GS_EXPORT_H
#define GS_EXPORT_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "access/htup.h"
#include "access/tupdesc.h"
#include "nodes/pg_list.h"
#include "utils/date.h"
#include "utils/uuid.h"

#include "gs_limits.h"

#define GS_EXPORT_VERSION "1.2"

/* GUCs (gs_export.c) */
extern char *gs_export_database;
extern int	gs_export_batch_size;
extern int	gs_export_batch_delay_ms;
extern int	gs_export_http_timeout_ms;
extern int	gs_export_connect_timeout_ms;
extern int	gs_export_max_workers;
extern int	gs_export_max_retries;
extern int	gs_export_retry_max_delay_ms;
extern int	gs_export_late_request_ms;
extern char *gs_export_ca_file;
extern int	gs_export_max_request_size;
extern bool gs_export_notify;

/*
 * Shared memory (shmem.c).  One slot per job worker that may run at once.
 * A slot is claimed by the launcher for a job before it registers the
 * worker; the worker fills in its pid and latch and clears the slot when it
 * exits.
 */
typedef struct GsExportSlot
{
	bool		in_use;
	pg_uuid_t	job_id;
	pid_t		pid;			/* 0 until the worker has started */
	Latch	   *latch;			/* the worker's latch, once started */
	TimestampTz claimed_at;
	bool		follower;		/* its job is a follower: woken when a
								 * capture commits */
} GsExportSlot;

typedef struct GsExportShared
{
	LWLock	   *lock;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	int			nslots;
	GsExportSlot slots[FLEXIBLE_ARRAY_MEMBER];
} GsExportShared;

extern GsExportShared *GsExport;

extern void gs_export_shmem_init_hooks(void);
extern void gs_export_require_preload(void);
extern void gs_export_wake_all(void);
extern void gs_export_wake_followers(void);

/* api.c: for the capture (capture.c) */
extern void gs_export_wake_followers_at_commit(void);
/* api.c: an internal function run as the extension's owner, for check.c */
extern Datum gs_api_call_readonly(const char *function, int nargs, Oid *argtypes,
								  Datum *values, bool *isnull_args, bool *isnull);

/* catalog.c: the extension's own entry in pg_extension */
extern bool gs_extension_lookup(Oid *nspoid, Oid *owner);
extern char *gs_extension_version(void);

/*
 * store.c: the one way to the extension's tables.  For the launcher and
 * the workers, the transaction bracket and calls of the state machine's
 * functions with named results; for api.c, its statements.
 */
typedef enum GsStoreState
{
	GS_STORE_READY,				/* the extension is here, at our version */
	GS_STORE_ABSENT,			/* not installed in this database */
	GS_STORE_OTHER_VERSION		/* installed, but ALTER EXTENSION UPDATE is due */
} GsStoreState;

typedef enum GsStoreFunctionId
{
	GS_STORE_CLAIM,
	GS_STORE_RECORD,
	GS_STORE_NEXT_PASS,
	GS_STORE_STOP,
	GS_STORE_IGNORE_COLUMN,
	GS_STORE_IS_RUNNING,
	GS_STORE_SET_LEADS_IN_RANGE,
	GS_STORE_RUNNABLE_JOBS,
	GS_STORE_ALERT_INFO,
	GS_STORE_DOUBT,
	GS_STORE_RELEASE,
	GS_STORE_FOLLOW_TAKE,
	GS_STORE_FOLLOW_RECORD,
	GS_STORE_VERIFY_RECORD,
	GS_STORE_NFUNCTIONS
} GsStoreFunctionId;

/* A function's result rows, copied out of SPI into the caller's context. */
typedef struct GsRows
{
	const char *function;
	int			n;
	TupleDesc	tupdesc;
	HeapTuple  *tuples;
} GsRows;

extern GsStoreState gs_xact_begin(const char *activity, bool lock_leads, Oid *leads_oid);
extern void gs_xact_end(void);
extern Oid	gs_xact_schema(void);
extern GsRows *gs_store_call(GsStoreFunctionId fn, const Datum *args, const bool *nulls);
extern Datum gs_rows_value(GsRows *rows, int row, const char *column, bool *isnull);
extern char *gs_rows_text(GsRows *rows, int row, const char *column);
extern bool gs_rows_bool(GsRows *rows, int row, const char *column);
extern char *gs_rows_output(GsRows *rows, int row, const char *column);
extern void gs_store_whoami(Oid nspoid, Datum *uid, bool *uid_null, bool *is_app_admin);
extern Datum gs_store_call_internal(Oid nspoid, const char *function, int nargs,
									Oid *argtypes, Datum *args, const bool *argnulls,
									bool *isnull);
extern void gs_store_latest_active_job(Oid nspoid, Datum except, bool except_null,
									   Datum *values, bool *nulls);

/* launcher.c and worker.c: bgworker entry points */
extern PGDLLEXPORT void gs_export_launcher_main(Datum main_arg);
extern PGDLLEXPORT void gs_export_worker_main(Datum main_arg);
/* worker.c: the backoff before a request is tried again (verify.c too) */
extern long gs_retry_delay_ms(int attempt, int retry_after_ms);
extern void gs_export_register_launcher(void);

/*
 * A job as the worker sees it (job.c).
 */
typedef struct GsJob
{
	pg_uuid_t	id;
	char	   *id_text;
	MemoryContext cxt;			/* lives as long as the job's worker */
	int			batch_size;		/* what source.c reads with (pace.c sets it) */
	int			delay_ms;
	int			max_in_flight;	/* requests at the remote at once */
	bool		adaptive;		/* pace "adaptive" (else "fixed") */
	int			batch_size_max; /* the most an adaptive pace grows to */
	char	   *time_zone;
	Oid			owner;			/* role whose privileges read the leads */
	char	   *owner_claims;	/* under Supabase, the owner's JWT claims */
	char	   *pass_kind;		/* "range" (the day range), "catchup" or
								 * "rest" */
	TimestampTz pass_lower;		/* oldest instant of the current pass */
	TimestampTz cursor_ts;		/* last lead done: (updated_at, id) */
	int64		cursor_id;
	List	   *ignored_fields; /* list of char *, columns the remote lacks */
	char	   *project_url;
	char	   *api_key;
	/* what is sent: the job's effective options */
	char	   *target_table;	/* the remote table */
	List	   *remote_columns; /* each remote column ... */
	List	   *lead_columns;	/* ... gets this lead column */
	char	   *synced_at_column;	/* gets the time of export, or NULL */
	char	   *source_column;	/* gets source_value, or NULL */
	char	   *source_value;
	/* which leads besides the days: columns ANDed, each = one of values */
	List	   *filter_columns;
	List	   *filter_types;	/* each column's type, as format_type says */
	List	   *filter_values;	/* each a text[] literal; NULL matches NULL */
	TimestampTz changed_since;	/* -infinity: no bound */
	/* the day range's leads (leads_in_range) are to be counted, over
	 * [count_from, count_to) */
	bool		count_range;
	TimestampTz count_from;
	TimestampTz count_to;
	/* a request given up on, of this or another job, may still reach the
	 * remote until then (0: none): nothing is sent before */
	TimestampTz doubt_until;
	char	   *kind;			/* "export", "sync", "follow", "verify",
								 * "repair", "retry" */
	/* a follower (gs_export_follow): its pass_kind is "backfill" or
	 * "follow"; or a set job, which takes its path */
	bool		follow;
	/* a retry or a repair: the follower's path over the leads of its queue
	 * (written when it was created), no capture; it completes when the
	 * queue is empty */
	bool		set_job;
	/* a verify (verify.c): compares, sends nothing; it walks ids from
	 * cursor_id, and compares the leads of [pass_lower, cursor_ts) */
	bool		verify;
	bool		compare_content;	/* a verify's compare: "content" */
	char	   *on_delete;		/* "delete", "ignore", or a soft delete's
								 * JSON object */
} GsJob;

typedef enum GsJobLoad
{
	GS_JOB_RUN,					/* job is ours to run */
	GS_JOB_NOT_RUNNABLE,		/* paused, completed, failed, gone, or busy */
	GS_JOB_FAILED				/* it cannot run: marked failed */
} GsJobLoad;

/*
 * One batch of leads (source.c reads it, payload.c builds its JSON).  Each
 * lead's JSON is serialized once, when read; a request's body is the
 * concatenation of some of them.
 */
typedef struct GsBatch
{
	int			nleads;
	int64	   *ids;
	const char **texts;			/* each lead's JSON (palloc'd) */
	size_t	   *lens;
	bool		oversized;		/* one lead, alone over max_request_size */
	TimestampTz last_ts;		/* (updated_at, id) of the last lead */
	int64		last_id;
	DateADT		last_day;		/* its day in the job's time zone */
	/*
	 * A follower's: leads [0, nupserts) are sent as they are (texts), the
	 * rest are gone or out of the scope and deleted at the remote (no
	 * text); the rows of gs_export_changes it consumes (seqs); or, when
	 * truncated, the one row of a TRUNCATE of leads.
	 */
	int			nupserts;
	int64	   *seqs;
	int			nseqs;
	bool		truncated;
	/* a verify's page: each lead's updated_at (NULL: updated_null), and by
	 * content each lead's json-c object (gs_payload_lead's, not yet
	 * serialized: the caller puts them) */
	TimestampTz *updated;
	bool	   *updated_null;
	void	  **objects;
} GsBatch;

/* What happened to one lead of a batch. */
typedef struct GsLeadOutcome
{
	bool		ok;
	bool		deleted;		/* a delete the remote applied (a delete
								 * that found no row is ok, not deleted) */
	char	   *error;			/* for failures */
	long		http_status;	/* 0: never answered, or never sent */
	char	   *response_body;
} GsLeadOutcome;

/* source.c */
typedef struct GsSource GsSource;
extern GsSource *gs_source_open(GsJob *job, MemoryContext cxt);
extern List *gs_source_columns(GsSource *src);
extern GsBatch *gs_source_next(GsSource *src, MemoryContext batch_cxt,
							   TimestampTz after_ts, int64 after_id);
extern char **gs_source_snapshots(GsSource *src, const int64 *ids, int n);
extern GsBatch *gs_source_verify_page(GsSource *src, MemoryContext batch_cxt,
									   int64 after_id, int limit, bool texts);
extern int64 gs_source_verify_count(GsSource *src);

/* verify.c */
extern void gs_verify_run(GsJob *job, MemoryContext cxt);
extern GsBatch *gs_source_follow_next(GsSource *src, MemoryContext batch_cxt,
									  int64 after_id, const int64 *except_seqs,
									  int nexcept, bool marker_ok, bool *running);

/* job.c */
extern GsJobLoad gs_job_start(GsJob *job, const pg_uuid_t *id, MemoryContext cxt);
extern bool gs_job_is_running(const GsJob *job);
extern bool gs_job_record(GsJob *job, GsSource *src, GsBatch *batch,
						  GsLeadOutcome *outcomes, int duration_ms);
extern bool gs_job_next_pass(GsJob *job);
extern void gs_job_stop(GsJob *job, bool pause, const char *reason);
extern void gs_job_stop_by_id(const pg_uuid_t *id, const char *reason, bool pause);
extern void gs_job_ignore_column(GsJob *job, const char *column);
extern void gs_job_doubt(const pg_uuid_t *id, TimestampTz until);
extern void gs_job_release(const pg_uuid_t *id);
extern bool gs_follow_record(GsJob *job, GsSource *src, GsBatch *batch,
							 GsLeadOutcome *outcomes, int duration_ms);
extern bool gs_follow_record_wipe(GsJob *job, const int64 *ids, int n, int64 done_seq);

/* payload.c */
typedef struct GsPayloadShape GsPayloadShape;
extern GsPayloadShape *gs_payload_shape(TupleDesc tupdesc, int ncolumns,
										 const char *synced_at_column,
										 const char *source_column,
										 const char *source_value);
extern bool gs_payload_shape_matches(GsPayloadShape *shape, TupleDesc tupdesc);
extern struct json_object *gs_payload_lead(GsPayloadShape *shape, HeapTuple tuple,
										   TupleDesc tupdesc, const char *sync_at);
extern const char *gs_payload_text(struct json_object *obj, size_t *len);
extern void gs_payload_drop_key(GsBatch *batch, int from, int n, const char *key);
extern bool gs_payload_is_json(const char *text);
extern int	gs_payload_ids(const char *body, int64 **ids);
extern List *gs_payload_object_keys(const char *json);

/*
 * remote.c: one HTTP exchange, and what it means.
 */
typedef enum GsRemoteOutcome
{
	GS_REMOTE_OK,				/* 200/201 */
	GS_REMOTE_RETRY,			/* may pass: retry with backoff */
	GS_REMOTE_BAD_ROWS,			/* some row(s) refused, or too large: split */
	GS_REMOTE_MISSING_COLUMN,	/* PGRST204: drop the column */
	GS_REMOTE_FATAL				/* will not pass: job fails */
} GsRemoteOutcome;

typedef struct GsRemoteResult
{
	GsRemoteOutcome outcome;
	long		http_status;	/* 0 when no answer */
	char	   *body;			/* the answer's body, or NULL */
	char	   *error;			/* a sentence for humans */
	char	   *pg_code;		/* "code" of a PostgREST error body */
	char	   *missing_column; /* for GS_REMOTE_MISSING_COLUMN */
	int			retry_after_ms; /* from Retry-After, or -1 */
	int			elapsed_ms;
	bool		timed_out;		/* gs_export.http_timeout_ms passed */
	bool		statement_timeout;	/* 500 57014: the remote's statement
									 * timeout cancelled the upsert (outcome
									 * GS_REMOTE_RETRY) */
	const char *doubt;			/* NULL, or why its fate at the remote is
								 * unknown: the remote may still apply it (a
								 * timeout or a connection lost after the
								 * whole body was sent; a gateway's 502,
								 * 504, 544; an attempt libcurl repeated on
								 * its own) */
} GsRemoteResult;

/* Most requests at the remote at once (max_in_flight's upper bound). */
#define GS_MAX_REQUESTS GS_MAX_IN_FLIGHT_MAX

typedef enum GsRemoteWait
{
	GS_WAIT_ANSWER,				/* a request has its result */
	GS_WAIT_LATCH,				/* the latch was set */
	GS_WAIT_TIMEOUT				/* the time is up (or, upload_only, no body
								 * is still being sent) */
} GsRemoteWait;

extern void gs_remote_init(void);
extern char *gs_remote_check_url(const char *url);
extern char *gs_remote_check_alert_url(const char *url);
extern char *gs_remote_url_origin(const char *url);
/* easy is a CURL *; gs_remote_perform returns a CURLcode */
extern void gs_remote_set_transport(void *easy);
extern int	gs_remote_perform(void *easy);
extern void gs_remote_start(const char *project_url, const char *api_key,
							const char *table, List *columns, bool missing_default,
							const char **texts, const size_t *lens, int n,
							void *tag);
extern void gs_remote_start_get(const char *project_url, const char *api_key,
								const char *table, const char *query, void *tag);
extern void gs_remote_start_mutation(const char *project_url, const char *api_key,
									 const char *table, const char *query,
									 const char **body, const size_t *body_len,
									 void *tag);
extern char *gs_remote_escape(const char *value);
extern int	gs_remote_in_flight(void);
extern bool gs_remote_uploading(void);
extern GsRemoteWait gs_remote_wait(long timeout_ms, bool upload_only,
								   GsRemoteResult *result, void **tag);
extern bool gs_remote_abandon_all(void);

/*
 * pace.c: how many leads a request holds (batch) and how many requests
 * may be at the remote at once (window), fixed or adaptive.
 */
typedef enum GsPacePhase
{
	GS_PACE_GROW_BATCH,			/* at first: the batch doubles, 1 in flight */
	GS_PACE_GROW_WINDOW,		/* the window doubles while rounds are clean */
	GS_PACE_PROBE,				/* one more request (or a larger batch) on
								 * trial, judged by the rate */
	GS_PACE_STEADY
} GsPacePhase;

/* Answers the adaptive pace keeps to judge latency and faults by. */
#define GS_PACE_SAMPLES 16
#define GS_PACE_FAULT_WINDOW 20

typedef struct GsPace
{
	const char *job_id;			/* for the log */
	bool		adaptive;
	int			window_max;		/* max_in_flight */
	int			batch_cap;		/* batch_size_max (adaptive), batch_size
								 * (fixed); lowered for good by statement
								 * timeouts */
	int			window;			/* now */
	int			batch;			/* now */
	TimestampTz hold_until;		/* Retry-After: no request before */
	uint64		epoch;			/* changes of window or batch */
	TimestampTz changed_at;		/* the last change (adaptive) */
	/* adaptive */
	GsPacePhase phase;
	int			window_ceiling; /* 0, or more were refused (429) ... */
	TimestampTz window_ceiling_until;	/* ... until then */
	int			batch_ceiling;	/* 0, or larger were too much ... */
	TimestampTz batch_ceiling_until;	/* ... until then */
	TimestampTz backed_off_at;
	/* the round: answers to requests read and sent since the last change */
	int			round_answers;
	int			round_faults;
	int			round_nlat;
	double		round_lat[GS_MAX_REQUESTS]; /* its answers' times (ms) */
	int64		round_rows;
	double		round_weighted; /* leads times requests at the remote */
	double		round_ms;		/* the answers' elapsed times, summed */
	double		last_rate;		/* leads/s before the change on trial */
	bool		probing_batch;	/* the trial is of a larger batch */
	int			steady_rounds;
	/* latency: the last answers' times at this batch, and the reference */
	double		lat[GS_PACE_SAMPLES];
	int			nlat;			/* in lat (at most GS_PACE_SAMPLES) */
	int			lat_next;
	int			lat_since_settle;
	double		base_ms;		/* median time of a request when few were
								 * in flight (0: to be measured) */
	double		steady_ms;		/* median time of a request when it settled */
	double		prev_round_ms;	/* the last clean round's median */
	int			slow_rounds;	/* rounds in a row over the reference */
	int			clean_window;	/* growing: the last window found clean */
	/* faults: which of the last answers were transient faults */
	bool		fault[GS_PACE_FAULT_WINDOW];
	bool		slow[GS_PACE_FAULT_WINDOW];
	int			nfault_seen;	/* in the ring (at most its size) */
	int			fault_next;
	/* 429s by the requests at the remote when each was sent */
	int			sent_at[GS_MAX_REQUESTS + 1];
	int			refused_at[GS_MAX_REQUESTS + 1];
	int			good_window;	/* where it last settled */
	int			logged_window;	/* the last settled pace logged */
	int			logged_batch;
} GsPace;

extern void gs_pace_init(GsPace *pace, const GsJob *job);
extern bool gs_pace_reads_ahead(GsPace *pace);
extern void gs_pace_answer(GsPace *pace, const GsRemoteResult *res, int rows,
						   int window, uint64 epoch);
extern void gs_pace_lower_batch(GsPace *pace, int n);

/*
 * scrub.c: the config's keys out of every text gs_export stores, logs or
 * sends.  A job worker sets them once (the emit_log_hook that scrubs its
 * log lines comes with them); gs_scrub replaces each in a text,
 * gs_scrub_json in a text that may be JSON (strings as JSON means them).
 * Both return the text itself when it holds no key.
 */
#define GS_SCRUB_MARKER "[key]"

extern void gs_scrub_set_keys(List *keys);
extern char *gs_scrub(const char *text);
extern char *gs_scrub_json(const char *text);

/*
 * alert.c: a job completed, failed, or was paused by the remote's trouble:
 * tell the config's alert_url.  Called after the change committed.
 */
extern void gs_alert_job(const pg_uuid_t *job_id, const char *status, const char *reason);

#endif							/* GS_EXPORT_H */
