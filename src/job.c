/*-------------------------------------------------------------------------
 *
 * job.c
 *	  The job as a job worker sees it: each step of the worker (claim the
 *	  job, record a batch, start the next pass or complete, stop, ignore a
 *	  column) is one call of the state machine's function in the extension
 *	  script, in its own short transaction (store.c).  The states and their
 *	  changes live in SQL, in one place; this file only carries values
 *	  between them and the worker, and writes the server log's lines.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "gs_export.h"

static void
log_other_version(const GsJob *job, GsStoreState state)
{
	if (state == GS_STORE_OTHER_VERSION)
		ereport(LOG,
				(errmsg("gs_export: job %s waits: the extension gs_export is not at version %s",
						job->id_text, GS_EXPORT_VERSION),
				 errhint("Run ALTER EXTENSION gs_export UPDATE in the database of the job.")));
	else
		ereport(LOG,
				(errmsg("gs_export: job %s: the extension gs_export was dropped; its worker stops",
						job->id_text)));
}

/*
 * A text[] column of the first row as a List of C strings (NULL elements
 * left out), in the current memory context.
 */
static List *
text_list(GsRows *rows, const char *column)
{
	bool		isnull;
	Datum		arr = gs_rows_value(rows, 0, column, &isnull);
	List	   *list = NIL;
	Datum	   *elems;
	bool	   *enulls;
	int			nelems;
	int			i;

	if (isnull)
		return NIL;
	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false,
					  TYPALIGN_INT, &elems, &enulls, &nelems);
	for (i = 0; i < nelems; i++)
		if (!enulls[i])
			list = lappend(list, TextDatumGetCString(elems[i]));
	return list;
}

/*
 * Claim the job for this worker and load what running it needs.
 */
GsJobLoad
gs_job_start(GsJob *job, const pg_uuid_t *id, MemoryContext cxt)
{
	GsStoreState state;
	GsRows	   *rows;
	MemoryContext oldcxt;
	char	   *outcome;
	char	   *reason = NULL;
	bool		isnull;
	Datum		args[1];

	memset(job, 0, sizeof(GsJob));
	memcpy(&job->id, id, sizeof(pg_uuid_t));
	job->cxt = cxt;
	oldcxt = MemoryContextSwitchTo(cxt);
	job->id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&job->id)));

	state = gs_xact_begin("gs_export: claiming a job", false, NULL);
	if (state != GS_STORE_READY)
	{
		gs_xact_end();
		log_other_version(job, state);
		MemoryContextSwitchTo(oldcxt);
		return GS_JOB_NOT_RUNNABLE;
	}

	args[0] = UUIDPGetDatum(&job->id);
	rows = gs_store_call(GS_STORE_CLAIM, args, NULL);
	outcome = gs_rows_text(rows, 0, "outcome");
	if (strcmp(outcome, "wait") == 0)
		ereport(LOG,
				(errmsg("gs_export: follower %s %s; it starts once that job has ended",
						job->id_text, gs_rows_text(rows, 0, "reason"))));
	else if (strcmp(outcome, "busy") == 0)
		ereport(LOG,
				(errmsg("gs_export: job %s already has a worker; this one exits", job->id_text)));
	else if (strcmp(outcome, "failed") == 0)
		ereport(LOG,
				(errmsg("gs_export: job %s failed: %s", job->id_text,
						gs_rows_text(rows, 0, "reason"))));
	if (strcmp(outcome, "run") != 0)
	{
		gs_xact_end();
		MemoryContextSwitchTo(oldcxt);
		if (strcmp(outcome, "failed") == 0)
			gs_alert_job(&job->id, "failed", gs_rows_text(rows, 0, "reason"));
		return strcmp(outcome, "failed") == 0 ? GS_JOB_FAILED : GS_JOB_NOT_RUNNABLE;
	}

	job->batch_size = DatumGetInt32(gs_rows_value(rows, 0, "batch_size", &isnull));
	job->delay_ms = DatumGetInt32(gs_rows_value(rows, 0, "delay_ms", &isnull));
	job->max_in_flight = DatumGetInt32(gs_rows_value(rows, 0, "max_in_flight", &isnull));
	job->adaptive = strcmp(gs_rows_text(rows, 0, "pace"), "adaptive") == 0;
	job->batch_size_max = DatumGetInt32(gs_rows_value(rows, 0, "batch_size_max", &isnull));
	job->time_zone = gs_rows_text(rows, 0, "time_zone");
	job->owner = DatumGetObjectId(gs_rows_value(rows, 0, "owner_oid", &isnull));
	job->owner_claims = gs_rows_text(rows, 0, "owner_claims");
	job->pass_kind = gs_rows_text(rows, 0, "pass_kind");
	job->pass_lower = DatumGetTimestampTz(gs_rows_value(rows, 0, "pass_lower", &isnull));
	job->cursor_ts = DatumGetTimestampTz(gs_rows_value(rows, 0, "cursor_updated_at", &isnull));
	job->cursor_id = DatumGetInt64(gs_rows_value(rows, 0, "cursor_id", &isnull));
	job->project_url = gs_rows_text(rows, 0, "project_url");
	job->api_key = gs_rows_text(rows, 0, "api_key");
	job->ignored_fields = text_list(rows, "ignored_fields");
	job->target_table = gs_rows_text(rows, 0, "target_table");
	job->remote_columns = text_list(rows, "remote_columns");
	job->lead_columns = text_list(rows, "lead_columns");
	job->synced_at_column = gs_rows_text(rows, 0, "synced_at_column");
	job->source_column = gs_rows_text(rows, 0, "source_column");
	job->source_value = gs_rows_text(rows, 0, "source_value");
	job->filter_columns = text_list(rows, "filter_columns");
	job->filter_types = text_list(rows, "filter_types");
	job->filter_values = text_list(rows, "filter_values");
	job->changed_since = DatumGetTimestampTz(gs_rows_value(rows, 0, "changed_since", &isnull));
	if (list_length(job->filter_types) != list_length(job->filter_columns))
		reason = pstrdup("a column of the job's filter is no longer a column of leads");
	job->count_from = DatumGetTimestampTz(gs_rows_value(rows, 0, "count_from", &isnull));
	job->count_range = !isnull;
	job->count_to = DatumGetTimestampTz(gs_rows_value(rows, 0, "count_to", &isnull));
	job->kind = gs_rows_text(rows, 0, "kind");
	/* a retry or a repair (a set job) takes the follower's path */
	job->set_job = strcmp(job->kind, "retry") == 0 || strcmp(job->kind, "repair") == 0;
	job->follow = strcmp(job->kind, "follow") == 0 || job->set_job;
	job->verify = strcmp(job->kind, "verify") == 0;
	if (job->verify)
		job->compare_content = strcmp(gs_rows_text(rows, 0, "compare"), "content") == 0;
	job->on_delete = gs_rows_text(rows, 0, "on_delete");
	job->doubt_until = DatumGetTimestampTz(gs_rows_value(rows, 0, "doubt_until", &isnull));
	if (isnull)
		job->doubt_until = 0;
	/* from now on no text of this process holds the config's keys */
	gs_scrub_set_keys(lappend(text_list(rows, "secret_keys"), job->api_key));

	/* The URL is checked as libcurl will read it. */
	if (reason == NULL)
		reason = gs_remote_check_url(job->project_url);
	if (reason != NULL)
	{
		Datum		stop_args[3];

		reason = gs_scrub(reason);
		stop_args[0] = UUIDPGetDatum(&job->id);
		stop_args[1] = CStringGetTextDatum("failed");
		stop_args[2] = CStringGetTextDatum(reason);
		(void) gs_store_call(GS_STORE_STOP, stop_args, NULL);
	}
	gs_xact_end();
	MemoryContextSwitchTo(oldcxt);

	if (reason != NULL)
	{
		ereport(LOG,
				(errmsg("gs_export: job %s failed: %s", job->id_text, reason)));
		gs_alert_job(&job->id, "failed", reason);
		return GS_JOB_FAILED;
	}
	return GS_JOB_RUN;
}

/*
 * Is the job still running?  (A pause, or anything else, says stop.)
 */
bool
gs_job_is_running(const GsJob *job)
{
	GsStoreState state;
	bool		running = false;

	state = gs_xact_begin("gs_export: checking the job", false, NULL);
	if (state == GS_STORE_READY)
	{
		Datum		args[1];

		args[0] = UUIDPGetDatum(&job->id);
		running = gs_rows_bool(gs_store_call(GS_STORE_IS_RUNNING, args, NULL), 0,
							   "_gs_job_is_running");
	}
	gs_xact_end();
	if (state != GS_STORE_READY)
		log_other_version(job, state);
	return running;
}

/* A one-dimensional array of n Datums of a type, some maybe NULL. */
static Datum
make_array(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval, typalign));
}

/*
 * Record what happened to a batch, in one transaction.  The failed leads
 * are recorded with the lead as the job's owner may read it.  Every text
 * recorded is scrubbed of the config's keys (scrub.c): the answers were
 * already when they came in (remote.c), and this is where they are stored.
 * A follower's batch (gs_follow_record) records, besides the leads sent,
 * the leads deleted at the remote (a delete that found no row there is no
 * event), its backfill position and the changes it consumed.  Returns
 * false when the job is no longer running (paused meanwhile) or the
 * extension is gone.
 */
static bool
record_batch(GsJob *job, GsSource *src, GsBatch *batch, GsLeadOutcome *outcomes,
			 int duration_ms)
{
	int			n = batch->nleads;
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *events = palloc(sizeof(Datum) * n);
	Datum	   *messages = palloc(sizeof(Datum) * n);
	bool	   *msgnulls = palloc(sizeof(bool) * n);
	int64	   *err_ids = palloc(sizeof(int64) * n);
	Datum	   *err_id_datums = palloc(sizeof(Datum) * n);
	Datum	   *err_snapshots = palloc(sizeof(Datum) * n);
	bool	   *err_snapnulls = palloc(sizeof(bool) * n);
	Datum	   *err_fields = palloc(sizeof(Datum) * n);
	bool	   *err_fieldnulls = palloc(sizeof(bool) * n);
	Datum	   *err_statuses = palloc(sizeof(Datum) * n);
	bool	   *err_statnulls = palloc(sizeof(bool) * n);
	Datum	   *err_bodies = palloc(sizeof(Datum) * n);
	bool	   *err_bodynulls = palloc(sizeof(bool) * n);
	int			nrec = 0;
	int			nerr = 0;
	int			i;
	GsStoreState state;
	bool		running = false;
	/* a follower's backfill moves its position (by id) */
	bool		backfill_pos = job->follow && strcmp(job->pass_kind, "backfill") == 0 &&
		batch->nseqs == 0 && batch->nleads > 0;

	for (i = 0; i < n; i++)
	{
		bool		is_delete = job->follow && i >= batch->nupserts;
		char	   *body;

		/* a delete that found no row at the remote changed nothing */
		if (is_delete && outcomes[i].ok && !outcomes[i].deleted)
			continue;
		ids[nrec] = Int64GetDatum(batch->ids[i]);
		events[nrec] = CStringGetTextDatum(is_delete ? "delete" : "update");
		msgnulls[nrec] = outcomes[i].ok;
		messages[nrec] = outcomes[i].ok ? (Datum) 0 :
			CStringGetTextDatum(gs_scrub(outcomes[i].error ? outcomes[i].error : "unknown error"));
		nrec++;
		if (outcomes[i].ok)
			continue;
		err_ids[nerr] = batch->ids[i];
		err_id_datums[nerr] = Int64GetDatum(batch->ids[i]);
		err_fieldnulls[nerr] = (batch->texts[i] == NULL);
		err_fields[nerr] = batch->texts[i] == NULL ? (Datum) 0 :
			CStringGetTextDatum(gs_scrub_json(pnstrdup(batch->texts[i], batch->lens[i])));
		err_statnulls[nerr] = (outcomes[i].http_status == 0);
		err_statuses[nerr] = Int32GetDatum((int32) outcomes[i].http_status);
		/* the answer goes into jsonb columns only if jsonb can hold it */
		body = gs_scrub_json(outcomes[i].response_body);
		err_bodynulls[nerr] = !gs_payload_is_json(body);
		err_bodies[nerr] = err_bodynulls[nerr] ? (Datum) 0 : CStringGetTextDatum(body);
		nerr++;
	}

	state = gs_xact_begin("gs_export: recording a batch", false, NULL);
	if (state == GS_STORE_READY)
	{
		Datum		args[12];
		bool		nulls[12] = {false};
		char	  **snapshots = NULL;

		if (nerr > 0)
			snapshots = gs_source_snapshots(src, err_ids, nerr);
		for (i = 0; i < nerr; i++)
		{
			err_snapnulls[i] = (snapshots[i] == NULL);
			err_snapshots[i] = snapshots[i] ?
				CStringGetTextDatum(gs_scrub_json(snapshots[i])) : (Datum) 0;
		}

		args[0] = UUIDPGetDatum(&job->id);
		if (job->follow)
		{
			Datum	   *seqs = palloc(sizeof(Datum) * Max(batch->nseqs, 1));

			for (i = 0; i < batch->nseqs; i++)
				seqs[i] = Int64GetDatum(batch->seqs[i]);
			args[1] = make_array(seqs, NULL, batch->nseqs, INT8OID);
			args[2] = make_array(ids, NULL, nrec, INT8OID);
			args[3] = make_array(events, NULL, nrec, TEXTOID);
			args[4] = make_array(messages, msgnulls, nrec, TEXTOID);
			args[5] = Int32GetDatum(duration_ms);
			/* the backfill's position */
			nulls[6] = !backfill_pos;
			args[6] = Int64GetDatum(batch->last_id);
		}
		else
		{
			args[1] = make_array(ids, NULL, nrec, INT8OID);
			args[2] = make_array(messages, msgnulls, nrec, TEXTOID);
			args[3] = Int32GetDatum(duration_ms);
			args[4] = TimestampTzGetDatum(batch->last_ts);
			args[5] = Int64GetDatum(batch->last_id);
			args[6] = DateADTGetDatum(batch->last_day);
		}
		args[7] = make_array(err_id_datums, NULL, nerr, INT8OID);
		args[8] = make_array(err_snapshots, err_snapnulls, nerr, TEXTOID);
		args[9] = make_array(err_fields, err_fieldnulls, nerr, TEXTOID);
		args[10] = make_array(err_statuses, err_statnulls, nerr, INT4OID);
		args[11] = make_array(err_bodies, err_bodynulls, nerr, TEXTOID);
		if (job->follow)
			running = gs_rows_bool(gs_store_call(GS_STORE_FOLLOW_RECORD, args, nulls), 0,
								   "_gs_follow_record");
		else
			running = gs_rows_bool(gs_store_call(GS_STORE_RECORD, args, nulls), 0,
								   "_gs_job_record");
	}
	gs_xact_end();
	if (state != GS_STORE_READY)
	{
		log_other_version(job, state);
		return false;
	}

	if (!job->follow)
		job->cursor_ts = batch->last_ts;
	if (!job->follow || backfill_pos)
		job->cursor_id = batch->last_id;
	return running;
}

bool
gs_job_record(GsJob *job, GsSource *src, GsBatch *batch, GsLeadOutcome *outcomes,
			  int duration_ms)
{
	return record_batch(job, src, batch, outcomes, duration_ms);
}

bool
gs_follow_record(GsJob *job, GsSource *src, GsBatch *batch, GsLeadOutcome *outcomes,
				 int duration_ms)
{
	return record_batch(job, src, batch, outcomes, duration_ms);
}

/*
 * Record the rows a TRUNCATE's wipe deleted (or soft-deleted) at the
 * remote, a 'delete' event each; done_seq (else 0): the wipe is over, its
 * TRUNCATE's row of gs_export_changes goes.
 */
bool
gs_follow_record_wipe(GsJob *job, const int64 *ids, int n, int64 done_seq)
{
	GsBatch		batch;
	GsLeadOutcome *outcomes = palloc0(sizeof(GsLeadOutcome) * Max(n, 1));
	int64		seq = done_seq;
	int			i;

	memset(&batch, 0, sizeof(GsBatch));
	batch.nleads = n;
	batch.ids = unconstify(int64 *, ids);
	batch.texts = palloc0(sizeof(char *) * Max(n, 1));
	batch.lens = palloc0(sizeof(size_t) * Max(n, 1));
	batch.nupserts = 0;
	batch.seqs = &seq;
	batch.nseqs = done_seq != 0 ? 1 : 0;
	batch.last_id = job->cursor_id;
	for (i = 0; i < n; i++)
	{
		outcomes[i].ok = true;
		outcomes[i].deleted = true;
	}
	return record_batch(job, NULL, &batch, outcomes, 0);
}

/*
 * The pass being walked has no more leads: start the next one (true), or
 * the job is completed or no longer running (false).
 */
bool
gs_job_next_pass(GsJob *job)
{
	GsStoreState state;
	GsRows	   *rows = NULL;
	Datum		args[1];
	char	   *outcome = NULL;
	bool		isnull;

	char	   *counts = NULL;

	state = gs_xact_begin("gs_export: ending a pass", false, NULL);
	if (state == GS_STORE_READY)
	{
		args[0] = UUIDPGetDatum(&job->id);
		rows = gs_store_call(GS_STORE_NEXT_PASS, args, NULL);
		/* (output functions need the transaction) */
		if (strcmp(gs_rows_text(rows, 0, "outcome"), "completed") == 0)
			counts = psprintf("%s leads, %s exported, %s errors, in %s s",
							  gs_rows_output(rows, 0, "total_leads"),
							  gs_rows_output(rows, 0, "exported_leads"),
							  gs_rows_output(rows, 0, "error_leads"),
							  gs_rows_output(rows, 0, "seconds"));
	}
	gs_xact_end();
	if (state != GS_STORE_READY)
	{
		log_other_version(job, state);
		return false;
	}

	outcome = gs_rows_text(rows, 0, "outcome");
	if (gs_rows_bool(rows, 0, "kept_changing"))
		ereport(LOG,
				(errmsg("gs_export: job %s: leads kept changing during its catch-up passes",
						job->id_text),
				 errdetail("Leads changed after the last pass began are exported by the next job.")));
	if (strcmp(outcome, "walk") == 0)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(job->cxt);

		job->pass_kind = gs_rows_text(rows, 0, "pass_kind");
		job->pass_lower = DatumGetTimestampTz(gs_rows_value(rows, 0, "pass_lower", &isnull));
		job->cursor_ts = DatumGetTimestampTz(gs_rows_value(rows, 0, "cursor_updated_at", &isnull));
		job->cursor_id = DatumGetInt64(gs_rows_value(rows, 0, "cursor_id", &isnull));
		MemoryContextSwitchTo(oldcxt);
		ereport(DEBUG1,
				(errmsg("gs_export: job %s: %s pass %d", job->id_text, job->pass_kind,
						DatumGetInt32(gs_rows_value(rows, 0, "pass_number", &isnull)))));
		return true;
	}
	if (strcmp(outcome, "completed") == 0)
	{
		ereport(LOG,
				(errmsg("gs_export: job %s completed: %s", job->id_text, counts)));
		gs_alert_job(&job->id, "completed", NULL);
	}
	return false;
}

/*
 * Stop the job: paused (if it is running) or failed, with the reason.
 */
void
gs_job_stop(GsJob *job, bool pause, const char *reason)
{
	reason = gs_scrub(reason);
	gs_job_stop_by_id(&job->id, reason, pause);
	/* the worker pauses a job this way only for the remote's trouble */
	if (pause)
		gs_alert_job(&job->id, "paused", reason);
}

/*
 * The same with only the job's id at hand (the error that stops it may have
 * come before the job was loaded).  The reason, which may quote the
 * remote's answer, is scrubbed of the config's keys (scrub.c) before it is
 * stored, logged or alerted.
 */
void
gs_job_stop_by_id(const pg_uuid_t *id, const char *reason, bool pause)
{
	GsStoreState state;
	char	   *id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)));

	reason = gs_scrub(reason);

	state = gs_xact_begin(pause ? "gs_export: pausing a job" : "gs_export: failing a job",
						  false, NULL);
	if (state == GS_STORE_READY)
	{
		Datum		args[3];

		args[0] = UUIDPGetDatum(id);
		args[1] = CStringGetTextDatum(pause ? "paused" : "failed");
		args[2] = CStringGetTextDatum(reason);
		(void) gs_store_call(GS_STORE_STOP, args, NULL);
	}
	gs_xact_end();
	if (state == GS_STORE_READY)
		ereport(LOG,
				(errmsg("gs_export: job %s %s: %s", id_text, pause ? "paused" : "failed", reason)));
	else
		ereport(LOG,
				(errmsg("gs_export: job %s stopped: %s", id_text, reason),
				 errdetail(state == GS_STORE_ABSENT ?
						   "The extension gs_export is no longer installed." :
						   "The extension gs_export is not at the library's version.")));
	/* a pause here is a cancel's, an operator's: no alert */
	if (!pause)
		gs_alert_job(id, "failed", reason);
}

/*
 * The remote lacks a column: remember it on the job for the rest of its
 * life (and for a resume).
 */
void
gs_job_ignore_column(GsJob *job, const char *column)
{
	GsStoreState state;
	MemoryContext oldcxt;

	state = gs_xact_begin("gs_export: recording an ignored column", false, NULL);
	if (state == GS_STORE_READY)
	{
		Datum		args[2];

		args[0] = UUIDPGetDatum(&job->id);
		args[1] = CStringGetTextDatum(column);
		(void) gs_store_call(GS_STORE_IGNORE_COLUMN, args, NULL);
	}
	gs_xact_end();

	oldcxt = MemoryContextSwitchTo(job->cxt);
	job->ignored_fields = lappend(job->ignored_fields, pstrdup(column));
	MemoryContextSwitchTo(oldcxt);
	ereport(LOG,
			(errmsg("gs_export: job %s: the remote has no column \"%s\"; it is no longer sent",
					job->id_text, column)));
}

/*
 * A request of the job was given up on, and the remote may still apply it
 * until then: say so on the job's row, before any newer version of its
 * leads goes (a worker that claims a job later waits until then).
 */
void
gs_job_doubt(const pg_uuid_t *id, TimestampTz until)
{
	GsStoreState state;

	state = gs_xact_begin("gs_export: noting a request given up on", false, NULL);
	if (state == GS_STORE_READY)
	{
		Datum		args[2];

		args[0] = UUIDPGetDatum(id);
		args[1] = TimestampTzGetDatum(until);
		(void) gs_store_call(GS_STORE_DOUBT, args, NULL);
	}
	gs_xact_end();
}

/*
 * The worker leaves in order, nothing of its at the remote any more: the
 * next claim of the job need not put it in doubt (_gs_job_release).
 */
void
gs_job_release(const pg_uuid_t *id)
{
	GsStoreState state;

	state = gs_xact_begin("gs_export: leaving the job", false, NULL);
	if (state == GS_STORE_READY)
	{
		Datum		args[1];

		args[0] = UUIDPGetDatum(id);
		(void) gs_store_call(GS_STORE_RELEASE, args, NULL);
	}
	gs_xact_end();
}
