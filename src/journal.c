/*-------------------------------------------------------------------------
 *
 * journal.c
 *	  Records what happened to a batch, in one short transaction: a
 *	  sync_events row per lead, a gestao_scouter_export_errors row per
 *	  failed lead, and the job's counters and position.  Either all of it is
 *	  recorded or none, so a batch is counted once however the worker stops.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "gs_export.h"

static void
record_error(GsJob *job, GsBatch *batch, int i, GsLeadOutcome *out)
{
	StringInfoData sql;
	char	   *body = gs_payload_is_json(out->response_body) ? out->response_body : NULL;
	Oid			types[6] = {UUIDOID, INT8OID, TEXTOID, TEXTOID, INT4OID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	/* $1 job, $2 lead, $3 object sent, $4 message, $5 HTTP status, $6 body */
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "INSERT INTO %s.gestao_scouter_export_errors"
					 "  (job_id, lead_id, lead_snapshot, fields_sent, error_message,"
					 "   error_details, response_status, response_body, ignored_fields)"
					 " SELECT $1, $2, (SELECT pg_catalog.to_jsonb(l) FROM %s.leads l WHERE l.id = $2),"
					 "        $3::jsonb, $4, $6::jsonb, $5, $6::jsonb, j.ignored_fields"
					 "   FROM %s.gestao_scouter_export_jobs j WHERE j.id = $1",
					 job->schema, job->schema, job->schema);
	values[0] = UUIDPGetDatum(&job->id);
	values[1] = Int64GetDatum(batch->ids[i]);
	values[2] = CStringGetTextDatum(gs_payload_text(batch->objects[i]));
	values[3] = CStringGetTextDatum(out->error ? out->error : "unknown error");
	values[4] = Int32GetDatum((int32) out->http_status);
	if (out->http_status == 0)
		nulls[4] = 'n';
	if (body)
		values[5] = CStringGetTextDatum(body);
	else
		nulls[5] = 'n';
	if (SPI_execute_with_args(sql.data, 6, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "gs_export: could not record the error of lead " INT64_FORMAT,
			 batch->ids[i]);
}

bool
gs_journal_record(GsJob *job, GsBatch *batch, GsLeadOutcome *outcomes,
				  int duration_ms)
{
	StringInfoData sql;
	Datum	   *ids = palloc(sizeof(Datum) * batch->nleads);
	Datum	   *statuses = palloc(sizeof(Datum) * batch->nleads);
	Datum	   *messages = palloc(sizeof(Datum) * batch->nleads);
	bool	   *msgnulls = palloc(sizeof(bool) * batch->nleads);
	int			dims[1] = {batch->nleads};
	int			lbs[1] = {1};
	int64		ok = 0;
	int64		errors = 0;
	bool		running = false;
	int			i;
	Datum		text_ok = CStringGetTextDatum("success");
	Datum		text_error = CStringGetTextDatum("error");

	for (i = 0; i < batch->nleads; i++)
	{
		ids[i] = Int64GetDatum(batch->ids[i]);
		statuses[i] = outcomes[i].ok ? text_ok : text_error;
		msgnulls[i] = outcomes[i].ok || outcomes[i].error == NULL;
		messages[i] = msgnulls[i] ? (Datum) 0 : CStringGetTextDatum(outcomes[i].error);
		if (outcomes[i].ok)
			ok++;
		else
			errors++;
	}

	gs_begin_xact("gs_export: recording a batch");
	if (!gs_job_extension_present(job))
	{
		gs_end_xact();
		return false;
	}

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "INSERT INTO %s.sync_events"
					 "  (event_type, direction, lead_id, status, error_message, sync_duration_ms, job_id)"
					 " SELECT 'update', 'supabase_to_gestao_scouter', u.lead_id, u.status, u.message, $4, $5"
					 "   FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::text[]),"
					 "                   pg_catalog.unnest($3::text[])) AS u(lead_id, status, message)",
					 job->schema);
	{
		Oid			types[5] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4OID, UUIDOID};
		Datum		values[5];

		values[0] = PointerGetDatum(construct_array(ids, batch->nleads, INT8OID,
													8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(statuses, batch->nleads, TEXTOID,
													-1, false, TYPALIGN_INT));
		values[2] = PointerGetDatum(construct_md_array(messages, msgnulls, 1, dims, lbs,
													   TEXTOID, -1, false, TYPALIGN_INT));
		values[3] = Int32GetDatum(duration_ms);
		values[4] = UUIDPGetDatum(&job->id);
		if (SPI_execute_with_args(sql.data, 5, types, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "gs_export: could not record sync_events");
	}

	for (i = 0; i < batch->nleads; i++)
		if (!outcomes[i].ok)
			record_error(job, batch, i, &outcomes[i]);

	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "UPDATE %s.gestao_scouter_export_jobs"
					 "   SET total_leads = total_leads + $2,"
					 "       exported_leads = exported_leads + $3,"
					 "       error_leads = error_leads + $4,"
					 "       cursor_updated_at = $5, cursor_id = $6,"
					 "       processing_date = CASE WHEN catchup_pass = 0 THEN $7"
					 "                              ELSE processing_date END,"
					 "       last_completed_date = CASE WHEN catchup_pass = 0 AND $7 < start_date"
					 "                                  THEN $7 + 1 ELSE last_completed_date END,"
					 "       updated_at = pg_catalog.now()"
					 " WHERE id = $1"
					 " RETURNING status = 'running'",
					 job->schema);
	{
		Oid			types[7] = {UUIDOID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID, DATEOID};
		Datum		values[7];
		bool		isnull;

		values[0] = UUIDPGetDatum(&job->id);
		values[1] = Int64GetDatum((int64) batch->nleads);
		values[2] = Int64GetDatum(ok);
		values[3] = Int64GetDatum(errors);
		values[4] = TimestampTzGetDatum(batch->last_ts);
		values[5] = Int64GetDatum(batch->last_id);
		values[6] = DateADTGetDatum(batch->last_day);
		if (SPI_execute_with_args(sql.data, 7, types, values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "gs_export: could not record the job's progress");
		if (SPI_processed == 1)
			running = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));
	}

	gs_end_xact();

	job->cursor_ts = batch->last_ts;
	job->cursor_id = batch->last_id;
	return running;
}
