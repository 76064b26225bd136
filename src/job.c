/*-------------------------------------------------------------------------
 *
 * job.c
 *	  The job row as a job worker sees it: claim and load it, and the state
 *	  changes the worker makes (running, completed, paused, failed), each in
 *	  its own short transaction.  Also the transaction bracket used by every
 *	  unit of database work of the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "gs_export.h"

/*
 * The instant from which a lead may have been changed after we looked: now,
 * or the start of the oldest transaction still open here, since a lead it
 * changes gets that start as its updated_at (default now()) but becomes
 * visible only when it commits.
 */
#define CHANGES_HORIZON_SQL \
	"(SELECT LEAST(pg_catalog.now(), pg_catalog.min(a.xact_start))" \
	"   FROM pg_catalog.pg_stat_activity a" \
	"  WHERE a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"

/* First key of the advisory lock a job worker holds on its job. */
#define GS_EXPORT_LOCK_CLASS 0x67734578 /* "gsEx" */

/*
 * Start a transaction with a snapshot and an SPI connection, and say what
 * we are doing in pg_stat_activity.  Not nested.
 */
/* The caller's memory context, which a commit would otherwise leave. */
static MemoryContext xact_caller_cxt = NULL;

void
gs_begin_xact(const char *activity)
{
	xact_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

void
gs_end_xact(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	/* A commit leaves us in TopMemoryContext: go back where we were. */
	MemoryContextSwitchTo(xact_caller_cxt);
}

/*
 * Run a statement about this job; $1 is always the job id.
 */
static int
job_exec(GsJob *job, const char *sql, int nargs, Oid *types, Datum *values,
		 const char *nulls, bool read_only)
{
	Oid			t[8];
	Datum		v[8];
	char		n[8];
	int			i;
	int			ret;

	t[0] = UUIDOID;
	v[0] = UUIDPGetDatum(&job->id);
	n[0] = ' ';
	for (i = 0; i < nargs; i++)
	{
		t[i + 1] = types[i];
		v[i + 1] = values[i];
		n[i + 1] = nulls ? nulls[i] : ' ';
	}
	ret = SPI_execute_with_args(sql, nargs + 1, t, v, n, read_only, 0);
	if (ret < 0)
		elog(ERROR, "gs_export: statement failed (%s): %s",
			 SPI_result_code_string(ret), sql);
	return ret;
}

static char *
getvalue(int col)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);
}

static Datum
getbinval(int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);
}

/*
 * Stop the job, in the current transaction: failed (whatever it was), or
 * paused (if it is running), with the reason in pause_reason.
 */
static void
job_set_stopped(GsJob *job, bool pause, const char *reason)
{
	StringInfoData sql;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "UPDATE %s.gestao_scouter_export_jobs"
					 "   SET status = $2, pause_reason = $3,"
					 "       paused_at = CASE WHEN $2 = 'paused' THEN pg_catalog.now() ELSE paused_at END,"
					 "       updated_at = pg_catalog.now()"
					 " WHERE id = $1%s",
					 job->schema, pause ? " AND status = 'running'" : "");
	values[0] = CStringGetTextDatum(pause ? "paused" : "failed");
	values[1] = CStringGetTextDatum(reason);
	job_exec(job, sql.data, 2, types, values, NULL, false);
	ereport(LOG,
			(errmsg("gs_export: job %s %s: %s", job->id_text,
					pause ? "paused" : "failed", reason)));
}

/*
 * A key goes into HTTP headers: a line break in it would add headers.
 */
static bool
key_has_control_chars(const char *key)
{
	const unsigned char *p;

	for (p = (const unsigned char *) key; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

/*
 * Claim the job for this worker and load what running it needs.  The claim
 * is a session advisory lock on the job id, so that a second worker for the
 * same job, however it came to be started, goes away at once.
 */
GsJobLoad
gs_job_start(GsJob *job, const pg_uuid_t *id, MemoryContext cxt)
{
	StringInfoData sql;
	MemoryContext oldcxt;
	bool		isnull;
	char	   *owner_role;
	char	   *reason = NULL;
	GsJobLoad	result = GS_JOB_RUN;
	Oid			lock_types[2] = {INT4OID, INT4OID};
	Datum		lock_values[2];

	memset(job, 0, sizeof(GsJob));
	memcpy(&job->id, id, sizeof(pg_uuid_t));
	job->cxt = cxt;

	gs_begin_xact("gs_export: starting job");
	oldcxt = MemoryContextSwitchTo(cxt);
	job->id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&job->id)));

	job->schema = gs_extension_schema_quoted();
	if (job->schema == NULL)
	{
		MemoryContextSwitchTo(oldcxt);
		gs_end_xact();
		return GS_JOB_NOT_RUNNABLE;
	}

	lock_values[0] = Int32GetDatum(GS_EXPORT_LOCK_CLASS);
	lock_values[1] = Int32GetDatum((int32) hash_bytes(job->id.data, UUID_LEN));
	if (SPI_execute_with_args("SELECT pg_catalog.pg_try_advisory_lock($1, $2)",
							  2, lock_types, lock_values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "gs_export: could not take the job lock");
	if (!DatumGetBool(getbinval(1, &isnull)))
	{
		ereport(LOG,
				(errmsg("gs_export: job %s already has a worker; this one exits",
						job->id_text)));
		MemoryContextSwitchTo(oldcxt);
		gs_end_xact();
		return GS_JOB_NOT_RUNNABLE;
	}

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT j.status, j.start_date, j.end_date,"
					 "       COALESCE(j.batch_size, pg_catalog.current_setting('gs_export.batch_size')::int),"
					 "       COALESCE(j.delay_ms, (SELECT s.setting::int FROM pg_catalog.pg_settings s"
					 "                             WHERE s.name = 'gs_export.batch_delay_ms')),"
					 "       COALESCE(j.time_zone, pg_catalog.current_setting('TimeZone')),"
					 "       COALESCE(j.owner_role, (SELECT r.rolname FROM pg_catalog.pg_extension e"
					 "                                 JOIN pg_catalog.pg_roles r ON r.oid = e.extowner"
					 "                                WHERE e.extname = 'gs_export')),"
					 "       j.cursor_updated_at, j.cursor_id, j.processing_date,"
					 "       ((COALESCE(j.processing_date, j.start_date) + 1)::timestamp"
					 "           AT TIME ZONE COALESCE(j.time_zone, pg_catalog.current_setting('TimeZone'))),"
					 "       COALESCE(j.end_date::timestamp"
					 "           AT TIME ZONE COALESCE(j.time_zone, pg_catalog.current_setting('TimeZone')),"
					 "           '-infinity'::timestamptz),"
					 "       j.ignored_fields, j.catchup_pass, j.catchup_lower,"
					 "       CASE WHEN j.created_by IS NOT NULL THEN"
					 "            pg_catalog.jsonb_build_object('sub', j.created_by, 'role', j.owner_role)::text"
					 "       END"
					 "  FROM %s.gestao_scouter_export_jobs j"
					 " WHERE j.id = $1 FOR UPDATE",
					 job->schema);
	job_exec(job, sql.data, 0, NULL, NULL, NULL, false);
	MemoryContextSwitchTo(cxt);	/* SPI calls leave us in SPI's context */
	if (SPI_processed != 1)
	{
		MemoryContextSwitchTo(oldcxt);
		gs_end_xact();
		return GS_JOB_NOT_RUNNABLE;
	}
	job->status = getvalue(1);
	if (strcmp(job->status, "pending") != 0 && strcmp(job->status, "running") != 0)
	{
		MemoryContextSwitchTo(oldcxt);
		gs_end_xact();
		return GS_JOB_NOT_RUNNABLE;
	}
	job->start_date = DatumGetDateADT(getbinval(2, &isnull));
	job->end_date = DatumGetDateADT(getbinval(3, &job->end_date_null));
	job->batch_size = DatumGetInt32(getbinval(4, &isnull));
	job->delay_ms = DatumGetInt32(getbinval(5, &isnull));
	job->time_zone = getvalue(6);
	owner_role = getvalue(7);
	job->cursor_ts = DatumGetTimestampTz(getbinval(8, &isnull));
	if (isnull)
	{
		/* Never ran: start just above the newest day. */
		job->cursor_ts = DatumGetTimestampTz(getbinval(11, &isnull));
		job->cursor_id = PG_INT64_MIN;
	}
	else
		job->cursor_id = DatumGetInt64(getbinval(9, &isnull));
	job->lower_bound = DatumGetTimestampTz(getbinval(12, &isnull));
	job->owner_claims = getvalue(16);
	job->pass = DatumGetInt32(getbinval(14, &isnull));
	if (job->pass > 0)
		job->lower_bound = DatumGetTimestampTz(getbinval(15, &isnull));
	{
		Datum		arr = getbinval(13, &isnull);

		job->ignored_fields = NIL;
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *enulls;
			int			nelems;
			int			i;

			deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false,
							  TYPALIGN_INT, &elems, &enulls, &nelems);
			for (i = 0; i < nelems; i++)
				if (!enulls[i])
					job->ignored_fields = lappend(job->ignored_fields,
												  TextDatumGetCString(elems[i]));
		}
	}

	job->owner = owner_role ? get_role_oid(owner_role, true) : InvalidOid;
	if (!OidIsValid(job->owner))
		reason = psprintf("the job's owner role \"%s\" does not exist",
						  owner_role ? owner_role : "");

	/* The remote. */
	if (reason == NULL)
	{
		resetStringInfo(&sql);
		appendStringInfo(&sql,
						 "SELECT project_url, anon_key FROM %s.gestao_scouter_config"
						 " WHERE active AND sync_enabled"
						 " ORDER BY updated_at DESC NULLS LAST LIMIT 1",
						 job->schema);
		if (SPI_execute(sql.data, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "gs_export: could not read gestao_scouter_config");
		MemoryContextSwitchTo(cxt);
		if (SPI_processed != 1)
			reason = pstrdup("no active gestao_scouter_config row (active and sync_enabled)");
		else
		{
			job->project_url = getvalue(1);
			job->api_key = getvalue(2);
			if (job->project_url == NULL || job->api_key == NULL)
				reason = pstrdup("gestao_scouter_config has no project_url or no anon_key");
			else if (key_has_control_chars(job->api_key))
				reason = pstrdup("gestao_scouter_config.anon_key contains control characters");
			else
				reason = gs_remote_check_url(job->project_url);
		}
	}

	/* The source. */
	if (reason == NULL)
	{
		resetStringInfo(&sql);
		appendStringInfo(&sql, "%s.leads", job->schema);
		if (!OidIsValid(DatumGetObjectId(DirectFunctionCall1(to_regclass,
															 CStringGetTextDatum(sql.data)))))
			reason = psprintf("table %s does not exist", sql.data);
	}

	MemoryContextSwitchTo(oldcxt);

	if (reason != NULL)
	{
		job_set_stopped(job, false, reason);
		result = GS_JOB_FAILED;
	}
	else
	{
		resetStringInfo(&sql);
		appendStringInfo(&sql,
						 "UPDATE %s.gestao_scouter_export_jobs"
						 "   SET status = 'running',"
						 "       started_at = COALESCE(started_at, pg_catalog.now()),"
						 "       changes_since = COALESCE(changes_since, %s),"
						 "       updated_at = pg_catalog.now()"
						 " WHERE id = $1"
						 " RETURNING changes_since",
						 job->schema, CHANGES_HORIZON_SQL);
		job_exec(job, sql.data, 0, NULL, NULL, NULL, false);
		job->changes_since = DatumGetTimestampTz(getbinval(1, &isnull));
	}
	gs_end_xact();
	return result;
}

/*
 * Is the job still running?  (A pause, or anything else, says stop.)
 */
bool
gs_job_is_running(const GsJob *job)
{
	StringInfoData sql;
	bool		running = false;

	gs_begin_xact("gs_export: checking job");
	if (!gs_job_extension_present((GsJob *) job))
	{
		gs_end_xact();
		return false;
	}
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT status = 'running' FROM %s.gestao_scouter_export_jobs WHERE id = $1",
					 job->schema);
	job_exec((GsJob *) job, sql.data, 0, NULL, NULL, NULL, true);
	if (SPI_processed == 1)
	{
		bool		isnull;

		running = DatumGetBool(getbinval(1, &isnull));
	}
	gs_end_xact();
	return running;
}

/*
 * Every lead of the range is done.  last_completed_date becomes the oldest
 * day walked: end_date, or without one the day of the oldest lead.
 */
void
gs_job_complete(GsJob *job)
{
	StringInfoData sql;

	gs_begin_xact("gs_export: completing job");
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "UPDATE %s.gestao_scouter_export_jobs"
					 "   SET status = 'completed', completed_at = pg_catalog.now(),"
					 "       last_completed_date = COALESCE(end_date, processing_date, start_date),"
					 "       processing_date = COALESCE(end_date, processing_date, start_date),"
					 "       updated_at = pg_catalog.now()"
					 " WHERE id = $1 AND status = 'running'"
					 " RETURNING total_leads, exported_leads, error_leads,"
					 "           pg_catalog.round(EXTRACT(epoch FROM completed_at - started_at), 1)",
					 job->schema);
	job_exec(job, sql.data, 0, NULL, NULL, NULL, false);
	if (SPI_processed == 1)
		ereport(LOG,
				(errmsg("gs_export: job %s completed: %s leads, %s exported, %s errors, in %s s",
						job->id_text, getvalue(1), getvalue(2), getvalue(3), getvalue(4))));
	gs_end_xact();
}

void
gs_job_fail(GsJob *job, const char *reason)
{
	gs_begin_xact("gs_export: failing job");
	job_set_stopped(job, false, reason);
	gs_end_xact();
}

/*
 * Pause the job on the worker's own account (the remote's trouble outlasted
 * the retries).  Resumable.
 */
void
gs_job_pause(GsJob *job, const char *reason)
{
	gs_begin_xact("gs_export: pausing job");
	job_set_stopped(job, true, reason);
	gs_end_xact();
}

/*
 * The remote lacks a column: remember it on the job for the rest of its
 * life (and for a resume).
 */
void
gs_job_remember_ignored(GsJob *job, const char *column)
{
	StringInfoData sql;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	MemoryContext oldcxt;

	gs_begin_xact("gs_export: recording an ignored column");
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "UPDATE %s.gestao_scouter_export_jobs"
					 "   SET ignored_fields = pg_catalog.array_append(ignored_fields, $2),"
					 "       updated_at = pg_catalog.now()"
					 " WHERE id = $1 AND NOT ($2 = ANY (ignored_fields))",
					 job->schema);
	values[0] = CStringGetTextDatum(column);
	job_exec(job, sql.data, 1, types, values, NULL, false);
	gs_end_xact();

	oldcxt = MemoryContextSwitchTo(job->cxt);
	job->ignored_fields = lappend(job->ignored_fields, pstrdup(column));
	MemoryContextSwitchTo(oldcxt);
	ereport(LOG,
			(errmsg("gs_export: job %s: the remote has no column \"%s\"; it is no longer sent",
					job->id_text, column)));
}

/*
 * Stop the job after an error the worker cannot get past, with only its id
 * at hand (the error may have come before the job was loaded): failed, or
 * paused when an operator cancelled the worker (pg_cancel_backend).
 */
void
gs_job_stop_by_id(const pg_uuid_t *id, const char *message, bool pause)
{
	GsJob		job;

	memset(&job, 0, sizeof(job));
	memcpy(&job.id, id, sizeof(pg_uuid_t));
	job.id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&job.id)));
	gs_begin_xact("gs_export: failing job");
	job.schema = gs_extension_schema_quoted();
	if (job.schema != NULL)
		job_set_stopped(&job, pause, psprintf("%s: %s", pause ? "cancelled" : "error",
											  message ? message : "unknown"));
	else
		ereport(LOG,
				(errmsg("gs_export: job %s stopped: %s", job.id_text, message),
				 errdetail("The extension gs_export is no longer installed.")));
	gs_end_xact();
}

/*
 * Is the extension still there?  DROP EXTENSION keeps the tables that were
 * there before it, so a worker must not go on writing into them.  Called
 * inside a transaction.
 */
bool
gs_job_extension_present(GsJob *job)
{
	if (gs_extension_lookup(NULL, NULL))
		return true;
	ereport(LOG,
			(errmsg("gs_export: job %s: the extension was dropped; its worker stops",
					job->id_text)));
	return false;
}

/*
 * The walk of a pass is over.  Leads changed since the previous pass began
 * may have moved above the cursor, to days already walked: walk them again,
 * newest first, from the top down to that instant.  Returns false when
 * there is nothing more to do (a catch-up pass found no lead, or the passes
 * ran out while leads kept changing).
 */
bool
gs_job_next_pass(GsJob *job)
{
	StringInfoData sql;
	bool		isnull;
	bool		found = (job->cursor_ts != DT_NOEND);

	if (job->pass > 0 && !found)
		return false;
	if (job->pass >= GS_MAX_CATCHUP_PASSES)
	{
		ereport(LOG,
				(errmsg("gs_export: job %s: leads kept changing during %d catch-up passes; the job ends",
						job->id_text, job->pass),
				 errdetail("Leads changed after the last pass began are exported by the next job.")));
		return false;
	}

	gs_begin_xact("gs_export: starting a catch-up pass");
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "UPDATE %s.gestao_scouter_export_jobs"
					 "   SET catchup_pass = catchup_pass + 1,"
					 "       catchup_lower = changes_since,"
					 "       changes_since = %s,"
					 "       cursor_updated_at = 'infinity', cursor_id = $2,"
					 "       updated_at = pg_catalog.now()"
					 " WHERE id = $1 AND status = 'running'"
					 " RETURNING catchup_lower, changes_since",
					 job->schema, CHANGES_HORIZON_SQL);
	{
		Oid			types[1] = {INT8OID};
		Datum		values[1] = {Int64GetDatum(PG_INT64_MIN)};

		job_exec(job, sql.data, 1, types, values, NULL, false);
	}
	if (SPI_processed != 1)
	{
		gs_end_xact();
		return false;			/* paused meanwhile */
	}
	job->lower_bound = DatumGetTimestampTz(getbinval(1, &isnull));
	job->changes_since = DatumGetTimestampTz(getbinval(2, &isnull));
	job->cursor_ts = DT_NOEND;
	job->cursor_id = PG_INT64_MIN;
	job->pass++;
	gs_end_xact();
	ereport(DEBUG1,
			(errmsg("gs_export: job %s: catch-up pass %d", job->id_text, job->pass)));
	return true;
}
