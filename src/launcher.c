/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: a static background worker connected to
 *	  gs_export.database that starts one job worker per runnable job
 *	  (pending, or running with no worker, as after a crash).  It sleeps on
 *	  its latch, which API calls set when their transaction commits and the
 *	  postmaster sets when a job worker starts or stops.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "gs_export.h"

/* With nothing to do, look at the jobs table this often anyway. */
#define LAUNCHER_NAPTIME_MS 10000
/* When no worker could be registered, try again after this long. */
#define LAUNCHER_RETRY_MS 5000
/* A slot claimed but never taken by its worker is freed after this long. */
#define SLOT_CLAIM_TIMEOUT_MS 60000

/* The launcher's handle on the worker of each slot (this process only). */
static BackgroundWorkerHandle **handles = NULL;

/*
 * A job whose worker stopped while the job was still runnable is started
 * again only after a pause that grows while it keeps stopping soon.
 */
typedef struct JobBackoff
{
	pg_uuid_t	job_id;
	TimestampTz started_at;
	TimestampTz not_before;
	int			delay_ms;
} JobBackoff;

static List *backoffs = NIL;
static bool no_slot_logged = false;
static bool no_bgworker_logged = false;

void
gs_export_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "gs_export");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "gs_export_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "gs_export launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "gs_export launcher");
	RegisterBackgroundWorker(&worker);
}

static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(GsExport->lock, LW_EXCLUSIVE);
	if (GsExport->launcher_pid == MyProcPid)
	{
		GsExport->launcher_pid = 0;
		GsExport->launcher_latch = NULL;
	}
	LWLockRelease(GsExport->lock);
}

static JobBackoff *
find_backoff(const pg_uuid_t *job_id)
{
	ListCell   *lc;

	foreach(lc, backoffs)
	{
		JobBackoff *b = lfirst(lc);

		if (memcmp(&b->job_id, job_id, sizeof(pg_uuid_t)) == 0)
			return b;
	}
	return NULL;
}

/*
 * Free the slots whose worker has stopped, as its bgworker handle says.  A
 * slot without a handle here (its worker was started by an earlier
 * launcher) is freed by its worker when it exits, or, when no worker ever
 * took it, after SLOT_CLAIM_TIMEOUT_MS.
 */
static void
reap_workers(void)
{
	int			i;
	TimestampTz now = GetCurrentTimestamp();

	for (i = 0; i < GsExport->nslots; i++)
	{
		GsExportSlot *slot = &GsExport->slots[i];
		bool		free_it = false;

		if (handles[i] != NULL)
		{
			pid_t		pid;
			BgwHandleStatus status = GetBackgroundWorkerPid(handles[i], &pid);

			if (status == BGWH_POSTMASTER_DIED)
				proc_exit(1);
			if (status == BGWH_STOPPED)
			{
				pfree(handles[i]);
				handles[i] = NULL;
				free_it = true;
			}
		}
		else
		{
			LWLockAcquire(GsExport->lock, LW_SHARED);
			free_it = slot->in_use && slot->pid == 0 &&
				TimestampDifferenceExceeds(slot->claimed_at, now, SLOT_CLAIM_TIMEOUT_MS);
			LWLockRelease(GsExport->lock);
		}

		if (free_it)
		{
			LWLockAcquire(GsExport->lock, LW_EXCLUSIVE);
			slot->in_use = false;
			slot->pid = 0;
			slot->latch = NULL;
			LWLockRelease(GsExport->lock);
		}
	}
}

/*
 * The ids of the jobs that want a worker, oldest first, in cxt.  None while
 * the extension is not installed, or not at this library's version (then
 * the jobs wait for ALTER EXTENSION gs_export UPDATE, said once in the log).
 */
static List *
runnable_jobs(MemoryContext cxt)
{
	static bool other_version_logged = false;
	List	   *jobs = NIL;
	GsStoreState state;
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

	state = gs_xact_begin("gs_export: looking for jobs", false, NULL);
	if (state == GS_STORE_READY)
	{
		GsRows	   *rows = gs_store_call(GS_STORE_RUNNABLE_JOBS, NULL, NULL);
		int			i;

		for (i = 0; i < rows->n; i++)
		{
			bool		isnull;
			pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

			memcpy(id, DatumGetUUIDP(gs_rows_value(rows, i, "_gs_runnable_jobs", &isnull)),
				   sizeof(pg_uuid_t));
			jobs = lappend(jobs, id);
		}
	}
	else if (state == GS_STORE_OTHER_VERSION && !other_version_logged)
		ereport(LOG,
				(errmsg("gs_export: the extension in database \"%s\" is not at version %s; export jobs wait",
						gs_export_database, GS_EXPORT_VERSION),
				 errdetail("The gs_export library was updated, but not the extension's SQL objects."),
				 errhint("Run ALTER EXTENSION gs_export UPDATE in database \"%s\".",
						 gs_export_database)));
	other_version_logged = (state == GS_STORE_OTHER_VERSION);
	gs_xact_end();
	MemoryContextSwitchTo(oldcxt);
	return jobs;
}

/*
 * Start a worker for the job.  Returns how long until the launcher should
 * look again for this job's sake (-1: no need).
 */
static long
launch_job(const pg_uuid_t *job_id)
{
	int			i;
	int			free_slot = -1;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	JobBackoff *backoff = find_backoff(job_id);
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext oldcxt;

	LWLockAcquire(GsExport->lock, LW_EXCLUSIVE);
	for (i = 0; i < GsExport->nslots; i++)
	{
		GsExportSlot *slot = &GsExport->slots[i];

		if (slot->in_use && memcmp(&slot->job_id, job_id, sizeof(pg_uuid_t)) == 0)
		{
			LWLockRelease(GsExport->lock);
			return -1;			/* it has a worker */
		}
		if (!slot->in_use && free_slot < 0)
			free_slot = i;
	}

	if (backoff && now < backoff->not_before)
	{
		LWLockRelease(GsExport->lock);
		return (long) ((backoff->not_before - now) / 1000) + 1;
	}

	if (free_slot < 0)
	{
		LWLockRelease(GsExport->lock);
		if (!no_slot_logged)
			ereport(LOG,
					(errmsg("gs_export: all %d job worker slots are busy; jobs wait in pending",
							GsExport->nslots),
					 errhint("Raise gs_export.max_workers (needs a restart).")));
		no_slot_logged = true;
		return -1;				/* a stopping worker will wake us */
	}
	no_slot_logged = false;

	GsExport->slots[free_slot].in_use = true;
	memcpy(&GsExport->slots[free_slot].job_id, job_id, sizeof(pg_uuid_t));
	GsExport->slots[free_slot].pid = 0;
	GsExport->slots[free_slot].latch = NULL;
	GsExport->slots[free_slot].claimed_at = now;
	GsExport->slots[free_slot].follower = false;	/* its worker says */
	LWLockRelease(GsExport->lock);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "gs_export");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "gs_export_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "gs_export job worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "gs_export job worker");
	worker.bgw_main_arg = Int32GetDatum(free_slot);
	memcpy(worker.bgw_extra, job_id, sizeof(pg_uuid_t));
	memcpy(worker.bgw_extra + sizeof(pg_uuid_t), &MyDatabaseId, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		MemoryContextSwitchTo(oldcxt);
		LWLockAcquire(GsExport->lock, LW_EXCLUSIVE);
		GsExport->slots[free_slot].in_use = false;
		LWLockRelease(GsExport->lock);
		if (!no_bgworker_logged)
			ereport(LOG,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("gs_export: could not start a job worker: no background worker slot is free"),
					 errdetail("The job waits in pending; it starts when a slot frees."),
					 errhint("Raise max_worker_processes (needs a restart).")));
		no_bgworker_logged = true;
		return LAUNCHER_RETRY_MS;
	}
	no_bgworker_logged = false;
	handles[free_slot] = handle;

	if (backoff == NULL)
	{
		backoff = palloc0(sizeof(JobBackoff));
		memcpy(&backoff->job_id, job_id, sizeof(pg_uuid_t));
		backoff->delay_ms = 0;
		backoffs = lappend(backoffs, backoff);
	}
	else if (TimestampDifferenceExceeds(backoff->started_at, now, 60000))
		backoff->delay_ms = 0;	/* the last run lasted: no penalty */
	backoff->started_at = now;
	/* The next start of this job, if it stops soon, waits 1 s, 2 s, ... 60 s. */
	backoff->delay_ms = Min(Max(backoff->delay_ms * 2, 1000), 60000);
	backoff->not_before = TimestampTzPlusMilliseconds(now, backoff->delay_ms);
	MemoryContextSwitchTo(oldcxt);
	return -1;
}

/*
 * Forget the restart pauses of jobs that no longer want a worker.
 */
static void
forget_finished_jobs(List *jobs)
{
	ListCell   *lc;

	foreach(lc, backoffs)
	{
		JobBackoff *b = lfirst(lc);
		ListCell   *lc2;
		bool		runnable = false;

		foreach(lc2, jobs)
			if (memcmp(&b->job_id, lfirst(lc2), sizeof(pg_uuid_t)) == 0)
				runnable = true;
		if (!runnable)
		{
			backoffs = foreach_delete_current(backoffs, lc);
			pfree(b);
		}
	}
}

void
gs_export_launcher_main(Datum main_arg)
{
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	handles = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(BackgroundWorkerHandle *) * GsExport->nslots);

	LWLockAcquire(GsExport->lock, LW_EXCLUSIVE);
	GsExport->launcher_pid = MyProcPid;
	GsExport->launcher_latch = MyLatch;
	LWLockRelease(GsExport->lock);
	before_shmem_exit(launcher_detach, (Datum) 0);

	BackgroundWorkerInitializeConnection(gs_export_database, NULL, 0);
	pgstat_report_appname("gs_export launcher");
	ereport(LOG,
			(errmsg("gs_export launcher started in database \"%s\"", gs_export_database)));

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "gs_export launcher loop",
									 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		naptime = LAUNCHER_NAPTIME_MS;
		List	   *jobs;
		ListCell   *lc;
		MemoryContext oldcxt;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(loop_cxt);
		reap_workers();
		jobs = runnable_jobs(loop_cxt);
		oldcxt = MemoryContextSwitchTo(loop_cxt);
		foreach(lc, jobs)
		{
			long		again = launch_job(lfirst(lc));

			if (again >= 0 && again < naptime)
				naptime = again;
		}
		MemoryContextSwitchTo(oldcxt);
		forget_finished_jobs(jobs);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
