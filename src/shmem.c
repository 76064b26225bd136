/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  gs_export's shared memory: the launcher's latch and one slot per job
 *	  worker, so that any backend can wake them when a job changes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

#include "gs_export.h"

GsExportShared *GsExport = NULL;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

static Size
gs_export_shmem_size(void)
{
	return add_size(offsetof(GsExportShared, slots),
					mul_size(sizeof(GsExportSlot), gs_export_max_workers));
}

static void
gs_export_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(gs_export_shmem_size());
	RequestNamedLWLockTranche("gs_export", 1);
}

static void
gs_export_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	GsExport = ShmemInitStruct("gs_export", gs_export_shmem_size(), &found);
	if (!found)
	{
		memset(GsExport, 0, gs_export_shmem_size());
		GsExport->lock = &(GetNamedLWLockTranche("gs_export"))->lock;
		GsExport->nslots = gs_export_max_workers;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Install the hooks; called from _PG_init during shared_preload_libraries.
 */
void
gs_export_shmem_init_hooks(void)
{
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = gs_export_shmem_request;
#else
	gs_export_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = gs_export_shmem_startup;
}

/*
 * Every SQL entry point starts here: without the preload there is no
 * launcher, and a job would wait forever.
 */
void
gs_export_require_preload(void)
{
	if (GsExport == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("gs_export is not loaded"),
				 errdetail("Export jobs are run by background workers, which exist only when the library is preloaded."),
				 errhint("Add gs_export to shared_preload_libraries in postgresql.conf (shared_preload_libraries = 'gs_export') and restart the server.")));
}

/*
 * Wake the launcher and every job worker: something about the jobs changed.
 * Each of them looks at the jobs table and decides for itself.
 */
void
gs_export_wake_all(void)
{
	int			i;

	if (GsExport == NULL)
		return;

	LWLockAcquire(GsExport->lock, LW_SHARED);
	if (GsExport->launcher_latch)
		SetLatch(GsExport->launcher_latch);
	for (i = 0; i < GsExport->nslots; i++)
	{
		GsExportSlot *slot = &GsExport->slots[i];

		if (slot->in_use && slot->latch)
			SetLatch(slot->latch);
	}
	LWLockRelease(GsExport->lock);
}

/*
 * Wake the workers of followers: a transaction that captured changes of
 * leads committed (api.c).  Only theirs: other workers have nothing to do
 * with it.
 */
void
gs_export_wake_followers(void)
{
	int			i;

	if (GsExport == NULL)
		return;

	LWLockAcquire(GsExport->lock, LW_SHARED);
	for (i = 0; i < GsExport->nslots; i++)
	{
		GsExportSlot *slot = &GsExport->slots[i];

		if (slot->in_use && slot->follower && slot->latch)
			SetLatch(slot->latch);
	}
	LWLockRelease(GsExport->lock);
}
