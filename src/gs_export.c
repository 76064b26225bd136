/*-------------------------------------------------------------------------
 *
 * gs_export.c
 *	  Module entry point: defines the gs_export.* settings and, when loaded
 *	  through shared_preload_libraries, sets up shared memory and registers
 *	  the launcher background worker.  Also gs_export_limit, through which
 *	  the extension's SQL reads the limits of gs_limits.h.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
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
int			gs_export_late_request_ms = 60000;
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
							100, GS_BATCH_SIZE_MIN, GS_BATCH_SIZE_MAX,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("gs_export.batch_delay_ms",
							"Pause between two batches for jobs created without a delay_ms option.",
							NULL,
							&gs_export_batch_delay_ms,
							500, GS_DELAY_MS_MIN, GS_DELAY_MS_MAX,
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

	DefineCustomIntVariable("gs_export.late_request_ms",
							"How long a request given up on may still reach the remote and be applied.",
							"Counted from the moment gs_export gives up on a request whose fate is "
							"unknown (a timeout, a connection lost after its body was sent, a gateway's "
							"502, 504 or 544): until then no newer version of its leads is sent, and the "
							"job does not complete.  Set it above the remote's statement timeout plus "
							"the time its gateways may hold a request; 0 turns the quarantine off.",
							&gs_export_late_request_ms,
							60000, 0, 3600000,
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

/*
 * The limits SQL may ask for, by name: each is a constant of gs_limits.h.
 */
typedef struct GsLimit
{
	const char *name;
	int64		value;
} GsLimit;

static const GsLimit gs_limits[] = {
	{"batch_size.min", GS_BATCH_SIZE_MIN},
	{"batch_size.max", GS_BATCH_SIZE_MAX},
	{"delay_ms.min", GS_DELAY_MS_MIN},
	{"delay_ms.max", GS_DELAY_MS_MAX},
	{"max_in_flight.min", GS_MAX_IN_FLIGHT_MIN},
	{"max_in_flight.max", GS_MAX_IN_FLIGHT_MAX},
	{"batch_size_max.min", GS_BATCH_SIZE_MAX_MIN},
	{"batch_size_max.max", GS_BATCH_SIZE_MAX_MAX},
	{"batch_size_max.default", GS_BATCH_SIZE_MAX_DEFAULT},
	{"job_lock_key", GS_JOB_LOCK_KEY},
};

PG_FUNCTION_INFO_V1(gs_export_limit);

/*
 * _gs_export_limit(p_name text) → bigint (IMMUTABLE STRICT)
 *
 * One of the limits of gs_limits.h, by the name its comment there gives,
 * so that the extension's SQL and its C share one definition.  An unknown
 * name is an error (22023).
 */
Datum
gs_export_limit(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	StringInfoData known;
	int			i;

	for (i = 0; i < lengthof(gs_limits); i++)
		if (strcmp(gs_limits[i].name, name) == 0)
			PG_RETURN_INT64(gs_limits[i].value);

	initStringInfo(&known);
	for (i = 0; i < lengthof(gs_limits); i++)
		appendStringInfo(&known, "%s%s", i > 0 ? ", " : "", gs_limits[i].name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("gs_export has no limit named \"%s\"", name),
			 errhint("The limits are %s.", known.data)));
	PG_RETURN_NULL();			/* keep the compiler quiet */
}
