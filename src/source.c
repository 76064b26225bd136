/*-------------------------------------------------------------------------
 *
 * source.c
 *	  Reads the leads of a job, batch by batch, with SPI: a prepared keyset
 *	  query on (updated_at, id), newest first, never OFFSET, each lead once.
 *	  The query runs with the job owner's privileges, so row level security
 *	  and grants on leads apply to what a job can export.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "gs_export.h"

/*
 * The columns of the remote fichas (reference-schema.md) that are copied
 * from a lead column of the same name.  last_sync_at and sync_source are
 * set by gs_export itself, sync_status is the remote's.
 */
static const char *const fichas_columns[] = {
	"id", "name", "responsible", "age", "address", "scouter", "photo_url",
	"date_modify", "raw", "updated_at", "bitrix_telemarketing_id",
	"commercial_project_id", "responsible_user_id", "celular",
	"telefone_trabalho", "telefone_casa", "etapa", "fonte", "criado",
	"nome_modelo", "local_abordagem", "ficha_confirmada",
	"data_criacao_ficha", "data_confirmacao_ficha", "presenca_confirmada",
	"compareceu", "valor_ficha", "data_criacao_agendamento",
	"horario_agendamento", "data_agendamento", "gerenciamento_funil",
	"status_fluxo", "etapa_funil", "etapa_fluxo", "funil_fichas",
	"status_tabulacao", "maxsystem_id_ficha", "gestao_scouter",
	"op_telemarketing", "data_retorno_ligacao", "cadastro_existe_foto",
};

struct GsSource
{
	GsJob	   *job;
	SPIPlanPtr	plan;
	List	   *columns;		/* names of the keys each object has */
	int			ncolumns;		/* lead columns selected (before the extras) */
	GsPayloadShape *shape;
};

/*
 * Find the lead columns to send and prepare the batch query.
 */
GsSource *
gs_source_open(GsJob *job, MemoryContext cxt)
{
	GsSource   *src;
	MemoryContext oldcxt;
	StringInfoData sql;
	StringInfoData list;
	Datum	   *names;
	ArrayType  *namearr;
	Oid			argtypes[5] = {TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID, TEXTOID, INT4OID};
	Oid			types[1] = {TEXTARRAYOID};
	Datum		values[1];
	uint64		i;
	int			n = lengthof(fichas_columns);

	oldcxt = MemoryContextSwitchTo(cxt);
	src = palloc0(sizeof(GsSource));
	src->job = job;
	MemoryContextSwitchTo(oldcxt);

	gs_begin_xact("gs_export: preparing the leads query");

	names = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		names[i] = CStringGetTextDatum(fichas_columns[i]);
	namearr = construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT);
	values[0] = PointerGetDatum(namearr);

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT a.attname FROM pg_catalog.pg_attribute a"
					 " WHERE a.attrelid = '%s.leads'::pg_catalog.regclass"
					 "   AND a.attnum > 0 AND NOT a.attisdropped"
					 "   AND a.attname::text = ANY ($1)"
					 " ORDER BY a.attnum",
					 job->schema);
	if (SPI_execute_with_args(sql.data, 1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "gs_export: could not read the columns of leads");

	initStringInfo(&list);
	oldcxt = MemoryContextSwitchTo(cxt);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		src->columns = lappend(src->columns, name);
		appendStringInfo(&list, "%s, ", quote_identifier(name));
	}
	src->ncolumns = list_length(src->columns);
	src->columns = lappend(src->columns, pstrdup("last_sync_at"));
	src->columns = lappend(src->columns, pstrdup("sync_source"));
	MemoryContextSwitchTo(oldcxt);

	/*
	 * $1, $2: the last lead done (exclusive); $3: the oldest instant of the
	 * range (inclusive); $4: the job's time zone; $5: the batch size.  The
	 * lead columns come first, then the key and the lead's day.
	 */
	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT %s"
					 "       updated_at AS gs_export_updated_at, id::bigint AS gs_export_id,"
					 "       (updated_at AT TIME ZONE $4)::date AS gs_export_day"
					 "  FROM %s.leads"
					 " WHERE (updated_at, id) < ($1, $2) AND updated_at >= $3"
					 " ORDER BY updated_at DESC, id DESC"
					 " LIMIT $5",
					 list.data, job->schema);
	src->plan = SPI_prepare(sql.data, 5, argtypes);
	if (src->plan == NULL)
		elog(ERROR, "gs_export: could not prepare the leads query: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(src->plan) != 0)
		elog(ERROR, "gs_export: SPI_keepplan failed");

	gs_end_xact();
	return src;
}

/*
 * The keys each object carries, for the request's columns parameter.
 */
List *
gs_source_columns(GsSource *src)
{
	return src->columns;
}

/*
 * Read the next batch: the leads after (after_ts, after_id), newest first.  Everything the batch
 * needs later lives in batch_cxt (and in json-c objects released when it is
 * reset).  An empty batch means the range is done; NULL that the
 * extension was dropped.
 */
GsBatch *
gs_source_next(GsSource *src, MemoryContext batch_cxt,
			   TimestampTz after_ts, int64 after_id)
{
	GsJob	   *job = src->job;
	GsBatch    *batch;
	Datum		values[5];
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	int			ret;
	uint64		i;
	MemoryContext oldcxt;
	char	   *sync_at;
	TupleDesc	tupdesc;

	gs_begin_xact("gs_export: reading leads");
	if (!gs_job_extension_present(job))
	{
		gs_end_xact();
		return NULL;
	}

	values[0] = TimestampTzGetDatum(after_ts);
	values[1] = Int64GetDatum(after_id);
	values[2] = TimestampTzGetDatum(job->lower_bound);
	values[3] = CStringGetTextDatum(job->time_zone);
	values[4] = Int32GetDatum(job->batch_size);

	/*
	 * Read as the job's owner: a lead the owner may not read is not sent.
	 * Under Supabase the owner is a user of the role authenticated, whom
	 * row level security on leads knows by auth.uid(): the JWT claims.
	 */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(job->owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	save_nestlevel = NewGUCNestLevel();
	if (job->owner_claims)
		(void) set_config_option("request.jwt.claims", job->owner_claims,
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	ret = SPI_execute_plan(src->plan, values, NULL, true, 0);
	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "gs_export: reading leads failed: %s", SPI_result_code_string(ret));

	tupdesc = SPI_tuptable->tupdesc;
	if (src->shape == NULL)
	{
		oldcxt = MemoryContextSwitchTo(job->cxt);
		src->shape = gs_payload_shape(tupdesc, src->ncolumns);
		MemoryContextSwitchTo(oldcxt);
	}

	oldcxt = MemoryContextSwitchTo(batch_cxt);
	batch = palloc0(sizeof(GsBatch));
	batch->nleads = (int) SPI_processed;
	batch->exhausted = (SPI_processed < (uint64) job->batch_size);
	batch->ids = palloc(sizeof(int64) * Max(batch->nleads, 1));
	batch->objects = palloc0(sizeof(struct json_object *) * Max(batch->nleads, 1));
	gs_payload_release_on_reset(batch_cxt, batch->objects, batch->nleads);
	sync_at = JsonEncodeDateTime(NULL, TimestampTzGetDatum(GetCurrentTimestamp()),
								 TIMESTAMPTZOID, NULL);

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		bool		isnull;

		batch->objects[i] = gs_payload_lead(src->shape, tuple, tupdesc, sync_at);
		batch->ids[i] = DatumGetInt64(SPI_getbinval(tuple, tupdesc, src->ncolumns + 2, &isnull));
		if (i == SPI_processed - 1)
		{
			batch->last_ts = DatumGetTimestampTz(SPI_getbinval(tuple, tupdesc,
															   src->ncolumns + 1, &isnull));
			batch->last_id = batch->ids[i];
			batch->last_day = DatumGetDateADT(SPI_getbinval(tuple, tupdesc,
															src->ncolumns + 3, &isnull));
		}
	}
	MemoryContextSwitchTo(oldcxt);

	gs_end_xact();
	return batch;
}
