/*-------------------------------------------------------------------------
 *
 * payload.c
 *	  Builds the JSON that goes to the remote with json-c: one object per
 *	  lead, typed as doc/remote-protocol.md says (numbers digit for digit, ISO
 *	  8601 timestamps with offset, jsonb as nested JSON), serialized once
 *	  into a palloc'd text (the object is released at once); a request's
 *	  body is those texts in a JSON array (remote.c streams it).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "access/htup_details.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "gs_export.h"

#define GS_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

typedef enum GsValueKind
{
	GS_VALUE_BOOL,
	GS_VALUE_INT,
	GS_VALUE_NUMBER,			/* numeric, float: their text is the JSON */
	GS_VALUE_DATETIME,
	GS_VALUE_JSON,				/* json, jsonb: nested as they are */
	GS_VALUE_STRING
} GsValueKind;

typedef struct GsPayloadColumn
{
	const char *name;
	Oid			atttypid;		/* the column's type, as declared */
	int32		atttypmod;
	Oid			typid;			/* its base type */
	GsValueKind kind;
	FmgrInfo	output;
} GsPayloadColumn;

struct GsPayloadShape
{
	int			natts;			/* of the row type it was made for */
	const char *synced_at_column;	/* set by gs_export, or NULL */
	const char *source_column;
	const char *source_value;
	int			ncolumns;
	Datum	   *values;			/* one deformed tuple, reused */
	bool	   *nulls;
	GsPayloadColumn columns[FLEXIBLE_ARRAY_MEMBER];
};

/*
 * How each of the first ncolumns columns of tupdesc becomes JSON; made once
 * per job, in the current memory context.
 */
GsPayloadShape *
gs_payload_shape(TupleDesc tupdesc, int ncolumns, const char *synced_at_column,
				 const char *source_column, const char *source_value)
{
	GsPayloadShape *shape;
	int			i;

	shape = palloc0(offsetof(GsPayloadShape, columns) +
					sizeof(GsPayloadColumn) * ncolumns);
	shape->natts = tupdesc->natts;
	shape->synced_at_column = synced_at_column ? pstrdup(synced_at_column) : NULL;
	shape->source_column = source_column ? pstrdup(source_column) : NULL;
	shape->source_value = source_value ? pstrdup(source_value) : "";
	shape->ncolumns = ncolumns;
	shape->values = palloc(sizeof(Datum) * tupdesc->natts);
	shape->nulls = palloc(sizeof(bool) * tupdesc->natts);
	for (i = 0; i < ncolumns; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(tupdesc, i);
		GsPayloadColumn *col = &shape->columns[i];
		Oid			outfn;
		bool		varlena;
		Oid			basetype = getBaseType(attr->atttypid);

		col->name = pstrdup(NameStr(attr->attname));
		col->atttypid = attr->atttypid;
		col->atttypmod = attr->atttypmod;
		col->typid = basetype;
		switch (basetype)
		{
			case BOOLOID:
				col->kind = GS_VALUE_BOOL;
				break;
			case INT2OID:
			case INT4OID:
			case INT8OID:
				col->kind = GS_VALUE_INT;
				break;
			case NUMERICOID:
			case FLOAT4OID:
			case FLOAT8OID:
				col->kind = GS_VALUE_NUMBER;
				break;
			case DATEOID:
			case TIMESTAMPOID:
			case TIMESTAMPTZOID:
				col->kind = GS_VALUE_DATETIME;
				break;
			case JSONOID:
			case JSONBOID:
				col->kind = GS_VALUE_JSON;
				break;
			default:
				col->kind = GS_VALUE_STRING;
				break;
		}
		getTypeOutputInfo(attr->atttypid, &outfn, &varlena);
		fmgr_info(outfn, &col->output);
	}
	return shape;
}

/*
 * Was the shape made for this row type?  The query's row type changes when
 * a column of leads changes type under a running job (its plan is made
 * again); values must then be read as the new types.
 */
bool
gs_payload_shape_matches(GsPayloadShape *shape, TupleDesc tupdesc)
{
	int			i;

	if (tupdesc->natts != shape->natts)
		return false;
	for (i = 0; i < shape->ncolumns; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(tupdesc, i);

		if (attr->atttypid != shape->columns[i].atttypid ||
			attr->atttypmod != shape->columns[i].atttypmod ||
			strcmp(NameStr(attr->attname), shape->columns[i].name) != 0)
			return false;
	}
	return true;
}

/*
 * A JSON value whose text is given verbatim: numbers as PostgreSQL prints
 * them, and json/jsonb values, which PostgreSQL prints as valid JSON.
 */
static struct json_object *
json_verbatim(const char *text)
{
	struct json_object *obj = json_object_new_object();

	json_object_set_serializer(obj, json_object_userdata_to_json_string,
							   strdup(text), json_object_free_userdata);
	return obj;
}

static struct json_object *
column_value(GsPayloadColumn *col, Datum value)
{
	char	   *text;
	struct json_object *obj;

	switch (col->kind)
	{
		case GS_VALUE_BOOL:
			return json_object_new_boolean(DatumGetBool(value));
		case GS_VALUE_INT:
			switch (col->typid)
			{
				case INT2OID:
					return json_object_new_int64(DatumGetInt16(value));
				case INT4OID:
					return json_object_new_int64(DatumGetInt32(value));
				default:
					return json_object_new_int64(DatumGetInt64(value));
			}
		case GS_VALUE_NUMBER:
			text = OutputFunctionCall(&col->output, value);
			/* NaN and infinities are no JSON numbers: send them as text */
			if (strspn(text, "+-0123456789.eE") != strlen(text))
				obj = json_object_new_string(text);
			else
				obj = json_verbatim(text);
			pfree(text);
			return obj;
		case GS_VALUE_DATETIME:
			text = JsonEncodeDateTime(NULL, value, col->typid, NULL);
			obj = json_object_new_string(text);
			pfree(text);
			return obj;
		case GS_VALUE_JSON:
			text = OutputFunctionCall(&col->output, value);
			obj = json_verbatim(text);
			pfree(text);
			return obj;
		case GS_VALUE_STRING:
			break;
	}
	text = OutputFunctionCall(&col->output, value);
	obj = json_object_new_string(text);
	pfree(text);
	return obj;
}

/*
 * One lead as the remote's row: every mapped column of the shape, then the
 * time of export and the source (last_sync_at and sync_source by default).
 */
struct json_object *
gs_payload_lead(GsPayloadShape *shape, HeapTuple tuple, TupleDesc tupdesc,
				const char *sync_at)
{
	struct json_object *obj = json_object_new_object();
	int			i;

	/* one pass over the tuple, not one per column */
	heap_deform_tuple(tuple, tupdesc, shape->values, shape->nulls);
	for (i = 0; i < shape->ncolumns; i++)
		json_object_object_add(obj, shape->columns[i].name,
							   shape->nulls[i] ? NULL :
							   column_value(&shape->columns[i], shape->values[i]));
	if (shape->synced_at_column)
		json_object_object_add(obj, shape->synced_at_column, json_object_new_string(sync_at));
	if (shape->source_column)
		json_object_object_add(obj, shape->source_column,
							   json_object_new_string(shape->source_value));
	return obj;
}

/*
 * A lead's JSON text, serialized once, palloc'd in the current memory
 * context; the json-c object (malloc'd) is released at once, so that a
 * batch holds its texts only.
 */
const char *
gs_payload_text(struct json_object *obj, size_t *len)
{
	const char *json = json_object_to_json_string_length(obj, GS_JSON_FLAGS, len);
	char	   *text = palloc(*len + 1);

	memcpy(text, json, *len + 1);
	json_object_put(obj);
	return text;
}

/*
 * Where a top-level field of a lead's text is: the state of
 * gs_payload_drop_key's parse.
 */
typedef struct GsKeySpan
{
	JsonLexContext *lex;
	const char *key;
	const char *last_end;		/* after '{', or after the last value */
	bool		first;			/* no field before this one */
	bool		inside;			/* in the key's value */
	const char *start;			/* the field to cut: [start, end) */
	const char *end;
	bool		first_field;
} GsKeySpan;

static void
span_object_start(void *state)
{
	GsKeySpan  *ks = (GsKeySpan *) state;

	if (ks->lex->lex_level == 0)
	{
		ks->last_end = ks->lex->token_start + 1;
		ks->first = true;
	}
}

static void
span_field_start(void *state, char *fname, bool isnull)
{
	GsKeySpan  *ks = (GsKeySpan *) state;

	if (ks->lex->lex_level == 1 && ks->start == NULL && strcmp(fname, ks->key) == 0)
	{
		ks->inside = true;
		ks->start = ks->last_end;
		ks->first_field = ks->first;
	}
}

static void
span_field_end(void *state, char *fname, bool isnull)
{
	GsKeySpan  *ks = (GsKeySpan *) state;

	if (ks->lex->lex_level != 1)
		return;
	if (ks->inside)
	{
		ks->end = ks->lex->prev_token_terminator;
		ks->inside = false;
	}
	ks->last_end = ks->lex->prev_token_terminator;
	ks->first = false;
}

/*
 * Take a key out of leads [from, from + n) of the batch (a column the remote
 * does not have).  The texts are json-c's compact output: the field is cut
 * out of the text, found by PostgreSQL's JSON parser; the new texts are
 * palloc'd in the current memory context.
 */
void
gs_payload_drop_key(GsBatch *batch, int from, int n, const char *key)
{
	JsonSemAction sem = {0};
	int			i;

	sem.object_start = span_object_start;
	sem.object_field_start = span_field_start;
	sem.object_field_end = span_field_end;
	for (i = from; i < from + n; i++)
	{
		GsKeySpan	ks = {0};
		const char *text = batch->texts[i];
		size_t		len = batch->lens[i];
		StringInfoData buf;

		ks.lex = makeJsonLexContextCstringLen(unconstify(char *, text), (int) len,
											  GetDatabaseEncoding(), true);
		ks.key = key;
		sem.semstate = &ks;
		if (pg_parse_json(ks.lex, &sem) != JSON_SUCCESS)
			elog(ERROR, "gs_export: a lead's JSON does not parse");
		if (ks.start == NULL || ks.end == NULL)
			continue;
		/* the first field takes the comma after it, the others the one before */
		if (ks.first_field && ks.end < text + len && *ks.end == ',')
			ks.end++;
		initStringInfo(&buf);
		appendBinaryStringInfo(&buf, text, (int) (ks.start - text));
		appendBinaryStringInfo(&buf, ks.end, (int) (text + len - ks.end));
		batch->texts[i] = buf.data;
		batch->lens[i] = (size_t) buf.len;
	}
}

/*
 * Deepest nesting of arrays and objects gs_payload_is_json lets the parser
 * see (an error body nests one or two levels): far below what the smallest
 * max_stack_depth allows.
 */
#define GS_JSON_MAX_DEPTH 100

/*
 * Is text valid JSON that jsonb takes?  (An answer's body goes into jsonb
 * columns only then.)  PostgreSQL's own parser decides, with escapes
 * de-escaped as jsonb does them, so that \u0000 and escapes the database's
 * encoding cannot hold are refused; the bytes must be valid in that
 * encoding too.  Never throws: nesting deeper than the parser may go
 * without hitting the stack depth limit is refused before it parses.
 */
bool
gs_payload_is_json(const char *text)
{
	JsonLexContext *lex;
	JsonParseErrorType rc;
	int			len;
	int			depth = 0;
	bool		in_string = false;
	int			i;

	if (text == NULL)
		return false;
	len = strlen(text);
	if (!pg_verifymbstr(text, len, true))
		return false;

	/*
	 * The parser recurses once per open array or object: count them as it
	 * will see them (outside strings).  A close with none open is invalid.
	 */
	for (i = 0; i < len; i++)
	{
		char		c = text[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '[' || c == '{')
		{
			if (++depth > GS_JSON_MAX_DEPTH)
				return false;
		}
		else if (c == ']' || c == '}')
		{
			if (--depth < 0)
				return false;
		}
	}

	lex = makeJsonLexContextCstringLen(unconstify(char *, text), len,
									   GetDatabaseEncoding(), true);
	rc = pg_parse_json(lex, &nullSemAction);
	if (lex->strval != NULL)
	{
		pfree(lex->strval->data);
		pfree(lex->strval);
	}
	pfree(lex);
	return rc == JSON_SUCCESS;
}

/*
 * The ids of PostgREST's answer to a DELETE or PATCH with select=id and
 * return=representation, a JSON array of {"id": n} (the rows it touched),
 * into ids (palloc'd); their number, or -1 when the answer is not that.
 */
int
gs_payload_ids(const char *body, int64 **ids)
{
	struct json_object *arr;
	size_t		n;
	size_t		i;
	int			count = 0;

	*ids = NULL;
	if (body == NULL)
		return -1;
	arr = json_tokener_parse(body);
	if (arr == NULL || !json_object_is_type(arr, json_type_array))
	{
		if (arr)
			json_object_put(arr);
		return -1;
	}
	n = json_object_array_length(arr);
	*ids = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		struct json_object *row = json_object_array_get_idx(arr, i);
		struct json_object *id;

		if (row == NULL || !json_object_object_get_ex(row, "id", &id) ||
			!json_object_is_type(id, json_type_int))
		{
			json_object_put(arr);
			return -1;
		}
		(*ids)[count++] = json_object_get_int64(id);
	}
	json_object_put(arr);
	return count;
}

/*
 * The keys of a JSON object (a follower's on_delete), as a List of C
 * strings in the current memory context; NIL when it is no object.
 */
List *
gs_payload_object_keys(const char *json)
{
	struct json_object *obj = json_tokener_parse(json);
	List	   *keys = NIL;

	if (obj == NULL)
		return NIL;
	if (json_object_is_type(obj, json_type_object))
	{
		json_object_object_foreach(obj, key, val)
		{
			(void) val;
			keys = lappend(keys, pstrdup(key));
		}
	}
	json_object_put(obj);
	return keys;
}
