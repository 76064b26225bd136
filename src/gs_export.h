/*-------------------------------------------------------------------------
 *
 * gs_export.h
 *	  Declarations shared by the files of gs_export: GUCs, shared memory,
 *	  and the interfaces between launcher, worker, source, payload, remote
 *	  and journal.
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

#define GS_EXPORT_VERSION "1.1"

/* Catch-up passes for leads changed while a job runs, at most. */
#define GS_MAX_CATCHUP_PASSES 10

/* GUCs (gs_export.c) */
extern char *gs_export_database;
extern int	gs_export_batch_size;
extern int	gs_export_batch_delay_ms;
extern int	gs_export_http_timeout_ms;
extern int	gs_export_connect_timeout_ms;
extern int	gs_export_max_workers;
extern int	gs_export_max_retries;
extern int	gs_export_retry_max_delay_ms;
extern char *gs_export_ca_file;

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

/* catalog.c: the extension's own entry in pg_extension */
extern bool gs_extension_lookup(Oid *nspoid, Oid *owner);
extern char *gs_extension_schema_quoted(void);

/* launcher.c and worker.c: bgworker entry points */
extern PGDLLEXPORT void gs_export_launcher_main(Datum main_arg);
extern PGDLLEXPORT void gs_export_worker_main(Datum main_arg);
extern void gs_export_register_launcher(void);

/*
 * A job as the worker sees it (job.c).
 */
typedef struct GsJob
{
	pg_uuid_t	id;
	char	   *id_text;
	char	   *schema;			/* the extension's schema, quoted */
	MemoryContext cxt;			/* lives as long as the job's worker */
	char	   *status;
	DateADT		start_date;
	DateADT		end_date;
	bool		end_date_null;
	int			batch_size;
	int			delay_ms;
	char	   *time_zone;
	Oid			owner;			/* role whose privileges read the leads */
	char	   *owner_claims;	/* under Supabase, the owner's JWT claims */
	TimestampTz lower_bound;	/* oldest instant of the current pass */
	int			pass;			/* 0: the range; then catch-up passes */
	TimestampTz changes_since;	/* leads changed from here on get a pass */
	TimestampTz cursor_ts;		/* last lead done: (updated_at, id) */
	int64		cursor_id;
	List	   *ignored_fields; /* list of char *, columns the remote lacks */
	char	   *project_url;
	char	   *api_key;
} GsJob;

typedef enum GsJobLoad
{
	GS_JOB_RUN,					/* job is ours to run */
	GS_JOB_NOT_RUNNABLE,		/* paused, completed, failed or gone */
	GS_JOB_FAILED				/* it cannot run: marked failed */
} GsJobLoad;

extern GsJobLoad gs_job_start(GsJob *job, const pg_uuid_t *id, MemoryContext cxt);
extern bool gs_job_is_running(const GsJob *job);
extern bool gs_job_next_pass(GsJob *job);
extern void gs_job_complete(GsJob *job);
extern void gs_job_fail(GsJob *job, const char *reason);
extern void gs_job_stop_by_id(const pg_uuid_t *id, const char *message, bool pause);
extern bool gs_job_extension_present(GsJob *job);
extern void gs_job_pause(GsJob *job, const char *reason);
extern void gs_job_remember_ignored(GsJob *job, const char *column);

/*
 * One batch of leads (source.c reads it, payload.c builds its JSON).
 */
typedef struct GsBatch
{
	int			nleads;
	int64	   *ids;
	struct json_object **objects;	/* one json-c object per lead */
	TimestampTz last_ts;		/* (updated_at, id) of the last lead */
	int64		last_id;
	DateADT		last_day;		/* its day in the job's time zone */
	bool		exhausted;		/* fewer leads than asked: range done */
} GsBatch;

/* source.c */
typedef struct GsSource GsSource;
extern GsSource *gs_source_open(GsJob *job, MemoryContext cxt);
extern List *gs_source_columns(GsSource *src);
extern GsBatch *gs_source_next(GsSource *src, MemoryContext batch_cxt,
							   TimestampTz after_ts, int64 after_id);

/* payload.c */
typedef struct GsPayloadShape GsPayloadShape;
extern GsPayloadShape *gs_payload_shape(TupleDesc tupdesc, int ncolumns);
extern struct json_object *gs_payload_lead(GsPayloadShape *shape, HeapTuple tuple,
										   TupleDesc tupdesc, const char *sync_at);
extern char *gs_payload_array(struct json_object **objects, int n);
extern void gs_payload_drop_key(struct json_object **objects, int n, const char *key);
extern char *gs_payload_text(struct json_object *obj);
extern bool gs_payload_is_json(const char *text);
extern void gs_payload_release_on_reset(MemoryContext cxt, struct json_object **objects, int n);

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
} GsRemoteResult;

extern void gs_remote_init(void);
extern char *gs_remote_check_url(const char *url);
extern void gs_remote_post(const char *project_url, const char *api_key,
						   List *columns, const char *body,
						   GsRemoteResult *result,
						   void (*while_waiting) (void *), void *arg);

/*
 * journal.c: record a batch's outcome in one transaction.
 */
typedef struct GsLeadOutcome
{
	bool		ok;
	char	   *error;			/* for failures */
	long		http_status;
	char	   *response_body;
} GsLeadOutcome;

/* Returns false when the job is no longer running (paused meanwhile). */
extern bool gs_journal_record(GsJob *job, GsBatch *batch, GsLeadOutcome *outcomes,
							  int duration_ms);

/* job.c: the transaction bracket every unit of work uses */
extern void gs_begin_xact(const char *activity);
extern void gs_end_xact(void);

#endif							/* GS_EXPORT_H */
