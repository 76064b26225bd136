/*-------------------------------------------------------------------------
 *
 * gs_export.c
 *	  Module entry point: defines the gs_export.* settings and, when loaded
 *	  through shared_preload_libraries, sets up shared memory and registers
 *	  the launcher background worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "gs_export.h"

PG_MODULE_MAGIC;

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

char	   *gs_export_database = NULL;
int			gs_export_batch_size = 100;
int			gs_export_batch_delay_ms = 500;
int			gs_export_http_timeout_ms = 30000;
int			gs_export_connect_timeout_ms = 10000;
int			gs_export_max_workers = 4;
int			gs_export_max_retries = 8;
int			gs_export_retry_max_delay_ms = 30000;
char	   *gs_export_ca_file = NULL;
int			gs_export_max_request_size = 4 * 1024 * 1024;
bool		gs_export_notify = true;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("gs_export.batch_size",
							"Leads per request for jobs created without a batch_size option.",
							NULL,
							&gs_export_batch_size,
							100, 1, 10000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("gs_export.batch_delay_ms",
							"Pause between two batches for jobs created without a delay_ms option.",
							NULL,
							&gs_export_batch_delay_ms,
							500, 0, 60000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("gs_export.http_timeout_ms",
							"Longest time one request to the remote may take.",
							NULL,
							&gs_export_http_timeout_ms,
							30000, 100, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("gs_export.connect_timeout_ms",
							"Longest time connecting to the remote may take.",
							NULL,
							&gs_export_connect_timeout_ms,
							10000, 100, 600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("gs_export.max_retries",
							"Attempts per batch when the remote has trouble that may pass.",
							"When they run out the job is paused, and can be resumed.",
							&gs_export_max_retries,
							8, 1, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("gs_export.retry_max_delay_ms",
							"Longest wait between two attempts of a batch.",
							NULL,
							&gs_export_retry_max_delay_ms,
							30000, 10, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("gs_export.max_request_size",
							"Largest body of one request to the remote.",
							"A batch holds fewer leads than its batch_size when their JSON would "
							"be larger; a lead larger alone is recorded as an error.",
							&gs_export_max_request_size,
							4 * 1024 * 1024, 1024, 512 * 1024 * 1024,
							PGC_SIGHUP,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("gs_export.notify",
							 "Sends NOTIFY gs_export when a job's state or progress changes.",
							 "The payload holds the job's id, status, processing_date and counts.",
							 &gs_export_notify,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("gs_export.ca_file",
							   "File of CA certificates to check the remote's certificate against.",
							   "Empty: the system's default CA store.",
							   &gs_export_ca_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	/*
	 * The rest exists only when preloaded: PostgreSQL refuses
	 * PGC_POSTMASTER settings from a library loaded later, and without the
	 * preload there are no workers (every SQL function says so).
	 */
	if (!process_shared_preload_libraries_in_progress)
	{
		MarkGUCPrefixReserved("gs_export");
		return;
	}

	DefineCustomStringVariable("gs_export.database",
							   "Database in which the gs_export launcher runs export jobs.",
							   NULL,
							   &gs_export_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("gs_export.max_workers",
							"Most export job workers running at once.",
							NULL,
							&gs_export_max_workers,
							4, 1, 64,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("gs_export");


	gs_export_shmem_init_hooks();
	gs_export_register_launcher();
}
