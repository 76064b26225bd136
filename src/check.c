/*-------------------------------------------------------------------------
 *
 * check.c
 *	  Knowing the remote before sending: gs_export_remote_columns, the
 *	  remote table's columns as the remote's PostgREST describes them (its
 *	  OpenAPI document, GET {project_url}/rest/v1/), and gs_export_check,
 *	  what a job with some options would meet, as rows (severity, key,
 *	  message), without creating one.
 *
 *	  The SQL part runs as the extension's owner through api.c
 *	  (gs_api_call_readonly: _gs_export_remote_target, _gs_export_check);
 *	  the HTTP requests run here, in the calling backend, through
 *	  remote.c's machinery (gs_remote_perform sleeps on the latch and
 *	  curl's sockets together, so a cancel or a statement timeout stops it
 *	  at once, with 57014), all of a call's within GS_CHECK_TIMEOUT_MS:
 *	  the description, and for gs_export_check, when the remote refuses the
 *	  key its description only, the table itself (probe_table).  The
 *	  config's keys are set in scrub.c for the call (the log's lines are
 *	  scrubbed while it runs), and every text that comes from the remote
 *	  is scrubbed here before it is cut, returned or raised.
 *
 *	  What PostgREST 12.2's document says of a column, and what it does not
 *	  (Response/OpenAPI.hs makeTableDef, makeProperty, parseDefault;
 *	  SchemaCache.hs tablesSqlQuery): "format" is the column's type as
 *	  format_type names it ("bigint", "timestamp with time zone", "text[]"),
 *	  "type" the JSON type; "required" lists EVERY NOT NULL column, with a
 *	  default or not; a property has "default" only when the default's
 *	  text reads as JSON after parseDefault, which wraps the expression of a
 *	  column of a string type in quotes (so now(), gen_random_uuid(),
 *	  'x'::text all show) but leaves the others as they are (so nextval(...)
 *	  on a bigint, an identity, '{}'::jsonb, '-1'::integer, an array's
 *	  default do not show).  "NOT NULL without a default" is therefore
 *	  read as: in "required" and no "default".  It is wrong, the safe way,
 *	  for a NOT NULL column of a non-string type whose default does not
 *	  read as JSON: reported required although an insert may leave it out.
 *	  gs_export_check knows this: a required column left unmapped is an
 *	  error when its type shows its defaults (a string type), a warning
 *	  otherwise.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
/*
 * json-c's type json_object and PostgreSQL's SQL function json_object
 * (declared through PostgreSQL's builtins header) share a name: the latter is renamed
 * here, unused.
 */
#define json_object gs_unused_pg_json_object
#include "utils/builtins.h"
#undef json_object
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "gs_curl.h"
#include "gs_export.h"

PG_FUNCTION_INFO_V1(gs_export_remote_columns);
PG_FUNCTION_INFO_V1(gs_export_check);

/* The longest the request may take (and the connection, within it). */
#define GS_CHECK_TIMEOUT_MS 10000

/* The largest OpenAPI document read (a project with many tables). */
#define GS_CHECK_MAX_DOCUMENT (32 * 1024 * 1024)

/* Most of an answer's body quoted in a message, and most table names. */
#define GS_CHECK_EXCERPT 200
#define GS_CHECK_MAX_NAMES 40

/* One column of the remote table, as the document describes it. */
typedef struct RemoteColumn
{
	char	   *name;
	char	   *format;			/* the PostgreSQL type's name, or NULL */
	char	   *type;			/* the JSON type, or NULL (json, jsonb) */
	bool		not_null;		/* in "required" */
	bool		has_default;	/* "default" shown */
	int			max_len;		/* "maxLength", or -1 */
	char	   *enum_values;	/* "enum", as "a, b, c", or NULL */
} RemoteColumn;

typedef enum FetchOutcome
{
	FETCH_OK,
	FETCH_BAD_URL,				/* project_url is not one gs_export uses */
	FETCH_NO_CONNECTION,		/* no connection, or it broke */
	FETCH_TIMEOUT,				/* no whole answer in time */
	FETCH_KEY_REFUSED,			/* 401, 403 */
	FETCH_BAD_ANSWER,			/* another status, or not the document */
	FETCH_NO_TABLE				/* the document has no such table */
} FetchOutcome;

typedef struct FetchResult
{
	FetchOutcome outcome;
	char	   *message;		/* scrubbed */
	char	   *hint;			/* or NULL */
	bool		root_refused;	/* 401 or 403 to GET /rest/v1/ */
	int			ncolumns;
	RemoteColumn *columns;
	/* the call: where, and until when */
	char	   *base_url;		/* {project_url}/rest/v1/ */
	char	   *origin;			/* for messages */
	long		timeout_ms;
	TimestampTz deadline;
} FetchResult;

/* What the SQL side says of the config and the table. */
typedef struct RemoteTarget
{
	char	   *project_url;
	char	   *api_key;
	List	   *secret_keys;
	char	   *target_table;
} RemoteTarget;

/* ---------------------------------------------------------------------
 * jsonb from the SQL side
 * ---------------------------------------------------------------------
 */

/* The value of key in an object, or NULL when absent or JSON null. */
static JsonbValue *
jb_get(JsonbContainer *obj, const char *key)
{
	JsonbValue *v;

	if (obj == NULL)
		return NULL;
	v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
	if (v == NULL || v->type == jbvNull)
		return NULL;
	return v;
}

/* A string member as a C string, or NULL. */
static char *
jb_text(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = jb_get(obj, key);

	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* An object or array member, or NULL. */
static JsonbContainer *
jb_container(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = jb_get(obj, key);

	if (v == NULL || v->type != jbvBinary)
		return NULL;
	return v->val.binary.data;
}

static bool
jb_bool(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = jb_get(obj, key);

	return v != NULL && v->type == jbvBool && v->val.boolean;
}

static int
jb_int(JsonbContainer *obj, const char *key, int missing)
{
	JsonbValue *v = jb_get(obj, key);

	if (v == NULL || v->type != jbvNumeric)
		return missing;
	return DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(v->val.numeric)));
}

/* The i-th element of an array, if an object or array. */
static JsonbContainer *
jb_element(JsonbContainer *arr, int i)
{
	JsonbValue *v = getIthJsonbValueFromContainer(arr, i);

	if (v == NULL || v->type != jbvBinary)
		return NULL;
	return v->val.binary.data;
}

/* The config's address and keys, and the table, from the SQL side. */
static void
read_target(JsonbContainer *obj, RemoteTarget *target)
{
	JsonbContainer *keys = jb_container(obj, "secret_keys");
	int			i;

	target->project_url = jb_text(obj, "project_url");
	target->api_key = jb_text(obj, "api_key");
	target->target_table = jb_text(obj, "target_table");
	target->secret_keys = NIL;
	if (keys != NULL)
		for (i = 0; i < JsonContainerSize(keys); i++)
		{
			JsonbValue *v = getIthJsonbValueFromContainer(keys, i);

			if (v != NULL && v->type == jbvString)
				target->secret_keys = lappend(target->secret_keys,
											  pnstrdup(v->val.string.val, v->val.string.len));
		}
	if (target->project_url == NULL || target->api_key == NULL || target->target_table == NULL)
		elog(ERROR, "gs_export: the internal function returned no project_url, key or table");
}

/* ---------------------------------------------------------------------
 * The request and the document
 * ---------------------------------------------------------------------
 */

/*
 * The start of an answer's body, on one line, for a message: at most
 * GS_CHECK_EXCERPT bytes of printable ASCII (anything else as '?').
 */
static char *
excerpt(const char *body, int len)
{
	StringInfoData buf;
	int			i;
	bool		space = false;

	initStringInfo(&buf);
	for (i = 0; i < len && buf.len < GS_CHECK_EXCERPT; i++)
	{
		unsigned char c = (unsigned char) body[i];

		if (c <= ' ' || c == 0x7f)
		{
			if (!space && buf.len > 0)
				appendStringInfoChar(&buf, ' ');
			space = true;
			continue;
		}
		space = false;
		appendStringInfoChar(&buf, c < 0x80 ? (char) c : '?');
	}
	if (i < len)
		appendStringInfoString(&buf, "...");
	return buf.data;
}

/*
 * The "message" (scrubbed of the keys, which are set while an answer is
 * read, then on one ASCII line, bounded) and the "code" of a PostgREST or
 * gateway error body; NULL for what it does not have.
 */
static void
error_fields(const char *body, char **message, char **code)
{
	struct json_object *obj = json_tokener_parse(body);
	struct json_object *field;

	*message = NULL;
	if (code)
		*code = NULL;
	if (obj == NULL)
		return;
	if (json_object_is_type(obj, json_type_object))
	{
		if (json_object_object_get_ex(obj, "message", &field) &&
			json_object_is_type(field, json_type_string))
			*message = pstrdup(json_object_get_string(field));
		if (code && json_object_object_get_ex(obj, "code", &field) &&
			json_object_is_type(field, json_type_string))
			*code = excerpt(json_object_get_string(field),
							strlen(json_object_get_string(field)));
	}
	json_object_put(obj);
	if (*message != NULL)
	{
		/* the keys out before it is cut: a key cut short cannot be scrubbed */
		*message = gs_scrub(*message);
		*message = excerpt(*message, strlen(*message));
	}
}

/* error_fields' message alone */
static char *
error_message(const char *body)
{
	char	   *message;

	error_fields(body, &message, NULL);
	return message;
}

/* qsort's comparison of C strings */
static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * A UTF-8 text of the document in the database's encoding (22021 if it is
 * no UTF-8), or NULL.
 */
static char *
from_utf8(char *text)
{
	char	   *converted;

	if (text == NULL)
		return NULL;
	converted = pg_any_to_server(text, strlen(text), PG_UTF8);
	return converted;
}

/*
 * Read the table's columns out of the document (a JSON text), into res.
 * Nothing here throws while json-c's objects are held (but palloc's out
 * of memory, which costs their memory only).
 */
static void
read_document(const char *body, int len, const char *table, FetchResult *res)
{
	struct json_tokener *tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
	struct json_object *doc;
	struct json_object *defs;
	struct json_object *def;
	struct json_object *props;
	struct json_object *required;
	struct json_object_iter it;
	int			n;

	if (tok == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	doc = json_tokener_parse_ex(tok, body, len);
	if (doc != NULL && json_tokener_get_error(tok) != json_tokener_success)
	{
		json_object_put(doc);
		doc = NULL;
	}
	json_tokener_free(tok);

	if (doc == NULL || !json_object_is_type(doc, json_type_object) ||
		!json_object_object_get_ex(doc, "definitions", &defs) ||
		!json_object_is_type(defs, json_type_object))
	{
		/* the keys out before it is cut */
		const char *clean = gs_scrub(body);

		res->outcome = FETCH_BAD_ANSWER;
		res->message = psprintf("the answer to GET /rest/v1/ is not an OpenAPI document with \"definitions\"; it began: \"%s\"",
								excerpt(clean, strlen(clean)));
		res->hint = pstrdup("project_url must be the Supabase project's (or PostgREST's) address, with its OpenAPI document on (openapi-mode not \"disabled\").");
		if (doc != NULL)
			json_object_put(doc);
		return;
	}

	if (!json_object_object_get_ex(defs, table, &def) ||
		!json_object_is_type(def, json_type_object))
	{
		char	  **names = palloc(sizeof(char *) * (json_object_object_length(defs) + 1));
		StringInfoData hint;
		int			i;

		n = 0;
		json_object_object_foreachC(defs, it)
			names[n++] = pstrdup(it.key);
		json_object_put(doc);
		qsort(names, n, sizeof(char *), compare_names);
		initStringInfo(&hint);
		if (n == 0)
			appendStringInfoString(&hint, "The remote's API shows no table to this key.");
		else
		{
			appendStringInfoString(&hint, "The remote's API shows these tables to this key: ");
			for (i = 0; i < n && i < GS_CHECK_MAX_NAMES; i++)
				appendStringInfo(&hint, "%s%s", i > 0 ? ", " : "", names[i]);
			if (n > GS_CHECK_MAX_NAMES)
				appendStringInfo(&hint, " and %d more", n - GS_CHECK_MAX_NAMES);
			appendStringInfoChar(&hint, '.');
		}
		res->outcome = FETCH_NO_TABLE;
		res->message = psprintf("remote table \"%s\" does not exist", table);
		res->hint = hint.data;
		return;
	}

	if (!json_object_object_get_ex(def, "properties", &props) ||
		!json_object_is_type(props, json_type_object))
		props = NULL;
	if (!json_object_object_get_ex(def, "required", &required) ||
		!json_object_is_type(required, json_type_array))
		required = NULL;

	n = props ? json_object_object_length(props) : 0;
	res->columns = palloc0(sizeof(RemoteColumn) * (n + 1));
	res->ncolumns = 0;
	if (props)
		json_object_object_foreachC(props, it)
		{
			RemoteColumn *col = &res->columns[res->ncolumns++];
			struct json_object *field;
			size_t		i;

			col->name = pstrdup(it.key);
			col->max_len = -1;
			if (json_object_is_type(it.val, json_type_object))
			{
				if (json_object_object_get_ex(it.val, "format", &field) &&
					json_object_is_type(field, json_type_string))
					col->format = pstrdup(json_object_get_string(field));
				if (json_object_object_get_ex(it.val, "type", &field) &&
					json_object_is_type(field, json_type_string))
					col->type = pstrdup(json_object_get_string(field));
				col->has_default = json_object_object_get_ex(it.val, "default", NULL);
				if (json_object_object_get_ex(it.val, "maxLength", &field) &&
					json_object_is_type(field, json_type_int))
					col->max_len = json_object_get_int(field);
				if (json_object_object_get_ex(it.val, "enum", &field) &&
					json_object_is_type(field, json_type_array))
				{
					StringInfoData values;

					initStringInfo(&values);
					for (i = 0; i < json_object_array_length(field); i++)
						appendStringInfo(&values, "%s%s", i > 0 ? ", " : "",
										 json_object_get_string(json_object_array_get_idx(field, i)));
					col->enum_values = values.data;
				}
			}
			if (required)
				for (i = 0; i < json_object_array_length(required); i++)
				{
					struct json_object *r = json_object_array_get_idx(required, i);

					if (json_object_is_type(r, json_type_string) &&
						strcmp(json_object_get_string(r), col->name) == 0)
						col->not_null = true;
				}
		}
	json_object_put(doc);
	res->outcome = FETCH_OK;
}

/* One GET's answer. */
typedef struct HttpAnswer
{
	CURLcode	rc;				/* CURLE_OK: status and body are the answer */
	long		status;
	GsCurlBody	body;
	char		errbuf[CURL_ERROR_SIZE];
} HttpAnswer;

/*
 * GET {project_url}/rest/v1/<path> with the config's key, within what is
 * left of the call's time (res->deadline).  The keys are set (scrub.c)
 * while it runs; on an error (a cancel, a statement timeout: 57014, from
 * gs_remote_perform) they are cleared and nothing of the request stays.
 */
static void
http_get(const RemoteTarget *target, FetchResult *res, const char *path,
		 const char *accept, int max_body, HttpAnswer *ans)
{
	CURL	   *volatile easy = NULL;
	struct curl_slist *volatile headers = NULL;
	long		left = (long) TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
															  res->deadline);
	long		connect_ms = Min((long) gs_export_connect_timeout_ms, res->timeout_ms);

	ans->rc = CURLE_OK;
	ans->status = 0;
	ans->errbuf[0] = '\0';
	gs_curl_body_init(&ans->body, max_body);
	if (left <= 0)
	{
		ans->rc = CURLE_OPERATION_TIMEDOUT;
		return;
	}

	PG_TRY();
	{
		struct curl_slist *h = NULL;
		char	   *apikey = psprintf("apikey: %s", target->api_key);
		char	   *bearer = psprintf("Authorization: Bearer %s", target->api_key);
		char	   *accept_h = psprintf("Accept: %s", accept);

		h = curl_slist_append(h, apikey);
		if (h)
			h = curl_slist_append(h, bearer);
		if (h)
			h = curl_slist_append(h, accept_h);
		if (h)
			h = curl_slist_append(h, "User-Agent: gs_export/" GS_EXPORT_VERSION);
		memset(apikey, 0, strlen(apikey));
		memset(bearer, 0, strlen(bearer));
		if (h == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("gs_export could not make a request's headers.")));
		headers = h;

		easy = gs_curl_easy_init();
		gs_curl_setopt(easy, CURLOPT_URL, psprintf("%s%s", res->base_url, path));
		gs_remote_set_transport(easy);
		gs_curl_setopt(easy, CURLOPT_HTTPGET, 1L);
		gs_curl_setopt(easy, CURLOPT_HTTPHEADER, headers);
		gs_curl_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, Min(connect_ms, left));
		gs_curl_setopt(easy, CURLOPT_TIMEOUT_MS, left);
		gs_curl_setopt(easy, CURLOPT_WRITEFUNCTION, gs_curl_keep_body);
		gs_curl_setopt(easy, CURLOPT_WRITEDATA, &ans->body);
		gs_curl_setopt(easy, CURLOPT_ERRORBUFFER, ans->errbuf);
		/* one request: no connection is kept for later */
		gs_curl_setopt(easy, CURLOPT_FORBID_REUSE, 1L);

		ans->rc = (CURLcode) gs_remote_perform(easy);
		if (ans->rc == CURLE_OK)
			curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &ans->status);
	}
	PG_CATCH();
	{
		/* a cancel, a statement timeout: nothing of it stays */
		if (easy != NULL)
			curl_easy_cleanup(easy);
		curl_slist_free_all(headers);
		gs_scrub_set_keys(NIL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	curl_easy_cleanup(easy);
	curl_slist_free_all(headers);
}

/* A request that got no answer: res says why (the remote row's text). */
static void
no_answer(FetchResult *res, const HttpAnswer *ans)
{
	if (ans->rc == CURLE_OPERATION_TIMEDOUT)
	{
		res->outcome = FETCH_TIMEOUT;
		res->message = psprintf("the remote at %s did not answer within %ld ms", res->origin,
								res->timeout_ms);
		res->hint = pstrdup("Is the remote up? The check waits at most 10 s (gs_export.http_timeout_ms, if lower).");
	}
	else
	{
		res->outcome = FETCH_NO_CONNECTION;
		res->message = psprintf("the remote at %s could not be reached: %s%s%s", res->origin,
								curl_easy_strerror(ans->rc), ans->errbuf[0] ? ": " : "",
								ans->errbuf);
		res->hint = pstrdup("Check project_url in gestao_scouter_config, and that this server can reach it.");
	}
}

/*
 * Start a call to the remote: its address, its time (at most
 * GS_CHECK_TIMEOUT_MS for all its requests) and the keys to keep out of
 * every text (cleared by end_call, or by an error in http_get).  False
 * (res says why) when project_url is not one gs_export uses.
 */
static bool
begin_call(const RemoteTarget *target, FetchResult *res)
{
	char	   *bad_url;
	size_t		base_len;

	memset(res, 0, sizeof(FetchResult));
	bad_url = gs_remote_check_url(target->project_url);
	if (bad_url != NULL)
	{
		res->outcome = FETCH_BAD_URL;
		res->message = bad_url;
		res->hint = pstrdup("An administrator must correct project_url in the active row of gestao_scouter_config.");
		return false;
	}
	base_len = strlen(target->project_url);
	while (base_len > 0 && target->project_url[base_len - 1] == '/')
		base_len--;
	res->base_url = psprintf("%.*s/rest/v1/", (int) base_len, target->project_url);
	res->origin = gs_remote_url_origin(target->project_url);
	res->timeout_ms = Min((long) gs_export_http_timeout_ms, (long) GS_CHECK_TIMEOUT_MS);
	res->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), res->timeout_ms);
	gs_remote_init();
	/* the keys out of every line logged meanwhile, and of what follows */
	gs_scrub_set_keys(target->secret_keys);
	return true;
}

/* The call is over: the texts made, the keys are forgotten. */
static void
end_call(void)
{
	gs_scrub_set_keys(NIL);
}

/*
 * GET {project_url}/rest/v1/ (the OpenAPI document), and the table's
 * columns out of the answer, after begin_call.  Never throws for what the
 * remote does (res says); a cancel or a statement timeout throws 57014.
 * A 401 or 403 is FETCH_KEY_REFUSED, with root_refused: the key may be
 * wrong, or the remote may show its description only to a privileged key
 * (Supabase's platform shows /rest/v1/ only to a service_role or secret
 * key; its self-hosted gateways too since supabase/supabase pull request
 * 45462, May 2026): gs_export_check asks the table itself to tell which
 * (probe_table).
 */
static void
fetch_table(const RemoteTarget *target, FetchResult *res)
{
	HttpAnswer	ans;

	http_get(target, res, "", "application/openapi+json", GS_CHECK_MAX_DOCUMENT, &ans);

	/* keys still set: every text below is scrubbed */
	if (ans.rc != CURLE_OK)
		no_answer(res, &ans);
	else if (ans.status == 401 || ans.status == 403)
	{
		char	   *message = error_message(ans.body.buf.data);

		res->outcome = FETCH_KEY_REFUSED;
		res->root_refused = true;
		res->message = psprintf("the remote refused this key its description (GET /rest/v1/): HTTP %ld%s%s",
								ans.status, message ? ": " : "", message ? message : "");
		res->hint = pstrdup("Either anon_key in gestao_scouter_config is not the project's key, or the remote shows its OpenAPI description only to a privileged key (as Supabase does for the anon key).");
	}
	else if (ans.status != 200)
	{
		char	   *message = error_message(ans.body.buf.data);
		char	   *body = gs_scrub_json(ans.body.buf.data);

		res->outcome = FETCH_BAD_ANSWER;
		res->message = psprintf("GET %s/rest/v1/ answered HTTP %ld%s%s", res->origin, ans.status,
								message || body[0] ? ": " : "",
								message ? message : excerpt(body, strlen(body)));
		res->hint = pstrdup(ans.status == 404 ?
							"project_url must be the Supabase project's address, whose PostgREST serves its OpenAPI document at /rest/v1/ (openapi-mode not \"disabled\")." :
							"The remote may be in trouble; try again later.");
	}
	else if (ans.body.buf.len >= GS_CHECK_MAX_DOCUMENT)
	{
		res->outcome = FETCH_BAD_ANSWER;
		res->message = psprintf("the remote's OpenAPI document is larger than %d MB",
								GS_CHECK_MAX_DOCUMENT / (1024 * 1024));
		res->hint = NULL;
	}
	else
	{
		int			i;

		read_document(ans.body.buf.data, ans.body.buf.len, target->target_table, res);
		/* names in the database's encoding (json-c's objects are freed) */
		if (res->outcome == FETCH_NO_TABLE)
			res->hint = from_utf8(res->hint);
		for (i = 0; i < res->ncolumns; i++)
		{
			RemoteColumn *col = &res->columns[i];

			col->name = from_utf8(col->name);
			col->format = from_utf8(col->format);
			col->type = from_utf8(col->type);
			col->enum_values = from_utf8(col->enum_values);
		}
	}

	res->message = gs_scrub(res->message);
	if (res->hint)
		res->hint = gs_scrub(res->hint);
}

/* ---------------------------------------------------------------------
 * gs_export_remote_columns
 * ---------------------------------------------------------------------
 */

/*
 * gs_export_remote_columns(target_table text DEFAULT NULL)
 *	 → SETOF (column_name text, data_type text, required boolean)
 *
 * Errors: 42501 (caller), 22023 (not a plain table name), 55000 (no
 * usable config, or project_url not one gs_export uses), 08001 (the remote
 * could not be reached), 08006 (no whole answer in time), 28000 (the
 * remote refused the key: 401, 403), 58000 (another answer: an HTTP error,
 * or no OpenAPI document), 42P01 (no such table in the document; the hint
 * lists those it has), 57014 (cancelled, statement timeout).
 */
Datum
gs_export_remote_columns(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	bool		nulls[1];
	bool		isnull;
	Datum		result;
	RemoteTarget target;
	FetchResult res;
	int			errcode_ = 0;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	nulls[0] = PG_ARGISNULL(0);
	args[0] = nulls[0] ? (Datum) 0 : PG_GETARG_DATUM(0);
	result = gs_api_call_readonly("_gs_export_remote_target", 1, types, args, nulls, &isnull);
	if (isnull)
		elog(ERROR, "gs_export: _gs_export_remote_target returned null");
	read_target(&DatumGetJsonbP(result)->root, &target);

	if (begin_call(&target, &res))
		fetch_table(&target, &res);
	end_call();
	switch (res.outcome)
	{
		case FETCH_OK:
			break;
		case FETCH_BAD_URL:
			errcode_ = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
			break;
		case FETCH_NO_CONNECTION:
			errcode_ = ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
			break;
		case FETCH_TIMEOUT:
			errcode_ = ERRCODE_CONNECTION_FAILURE;
			break;
		case FETCH_KEY_REFUSED:
			errcode_ = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
			break;
		case FETCH_BAD_ANSWER:
			errcode_ = ERRCODE_SYSTEM_ERROR;
			break;
		case FETCH_NO_TABLE:
			errcode_ = ERRCODE_UNDEFINED_TABLE;
			break;
	}
	if (errcode_ != 0)
		ereport(ERROR,
				(errcode(errcode_),
				 errmsg("%s", res.message),
				 res.hint ? errhint("%s", res.hint) : 0));

	for (i = 0; i < res.ncolumns; i++)
	{
		RemoteColumn *col = &res.columns[i];
		Datum		values[3];
		bool		vnulls[3] = {false, false, false};
		const char *data_type = col->format ? col->format : col->type;

		values[0] = CStringGetTextDatum(col->name);
		if (data_type)
			values[1] = CStringGetTextDatum(data_type);
		else
			vnulls[1] = true;
		values[2] = BoolGetDatum(col->not_null && !col->has_default);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, vnulls);
	}
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * gs_export_check
 * ---------------------------------------------------------------------
 */

/* What a column's type is, for the rules of check_types. */
typedef enum TypeKind
{
	K_BOOL,
	K_INT,
	K_NUM,
	K_TEXT,
	K_UUID,
	K_DATE,
	K_TSTZ,
	K_TS,
	K_TIME,
	K_JSON,
	K_ARRAY,
	K_OTHER
} TypeKind;

/* A type's kind from its name as format_type gives it. */
static TypeKind
kind_of(const char *format)
{
	size_t		len;

	if (format == NULL)
		return K_OTHER;
	len = strlen(format);
	if (len > 2 && strcmp(format + len - 2, "[]") == 0)
		return K_ARRAY;
	if (strcmp(format, "boolean") == 0)
		return K_BOOL;
	if (strcmp(format, "smallint") == 0 || strcmp(format, "integer") == 0 ||
		strcmp(format, "bigint") == 0)
		return K_INT;
	if (strcmp(format, "numeric") == 0 || strcmp(format, "real") == 0 ||
		strcmp(format, "double precision") == 0)
		return K_NUM;
	if (strcmp(format, "text") == 0 || strcmp(format, "character varying") == 0 ||
		strcmp(format, "character") == 0)
		return K_TEXT;
	if (strcmp(format, "uuid") == 0)
		return K_UUID;
	if (strcmp(format, "date") == 0)
		return K_DATE;
	if (strcmp(format, "timestamp with time zone") == 0)
		return K_TSTZ;
	if (strcmp(format, "timestamp without time zone") == 0)
		return K_TS;
	if (strcmp(format, "time without time zone") == 0 ||
		strcmp(format, "time with time zone") == 0)
		return K_TIME;
	if (strcmp(format, "json") == 0 || strcmp(format, "jsonb") == 0)
		return K_JSON;
	return K_OTHER;
}

/* The bytes of an integer type (smallint, integer, bigint). */
static int
int_width(const char *format)
{
	if (strcmp(format, "smallint") == 0)
		return 2;
	if (strcmp(format, "integer") == 0)
		return 4;
	return 8;
}

/* One lead column sent, as the SQL side describes it. */
typedef struct SentColumn
{
	const char *remote;
	const char *lead;			/* NULL: the synced-at or source column */
	const char *what;			/* what it gets, for messages */
	const char *option;			/* the option that maps it */
	const char *lead_type;		/* format_type of its base type */
	char		lead_category;	/* pg_type.typcategory */
	bool		lead_not_null;
	int			lead_max_len;	/* -1: none */
} SentColumn;

/*
 * A column the job fills with a value of its own (the synced-at and source
 * columns): never NULL, of that type.
 */
static SentColumn *
own_column(const char *remote, const char *what, const char *option,
		   const char *type, char category)
{
	SentColumn *s = palloc0(sizeof(SentColumn));

	s->remote = remote;
	s->what = what;
	s->option = option;
	s->lead_type = type;
	s->lead_category = category;
	s->lead_not_null = true;
	s->lead_max_len = -1;
	return s;
}

typedef struct CheckRows
{
	ReturnSetInfo *rsinfo;
	int			n;
} CheckRows;

static void
add_row(CheckRows *rows, const char *severity, const char *key, const char *message)
{
	Datum		values[3];
	bool		nulls[3] = {false, key == NULL, false};

	values[0] = CStringGetTextDatum(severity);
	values[1] = key ? CStringGetTextDatum(key) : (Datum) 0;
	values[2] = CStringGetTextDatum(message);
	tuplestore_putvalues(rows->rsinfo->setResult, rows->rsinfo->setDesc, values, nulls);
	rows->n++;
}

/*
 * Can the remote column take the lead column's values?  The values go as
 * payload.c writes them (booleans and numbers as JSON's, date and time
 * types as ISO 8601 strings, timestamptz with its offset, json and jsonb
 * nested, everything else, arrays and enums included, as its text), and
 * PostgREST reads each JSON value into the column's type (a JSON string
 * through the type's input function, a JSON number or boolean through its
 * text).  The rules are conservative:
 *  - error only when no value of the lead's type can go in (a boolean
 *    into an integer, a date into a uuid, a number into a date, a scalar
 *    into an array);
 *  - warning when some values may be refused or changed: text, json and
 *    other types sent as text into a typed column (only values that read
 *    as that type), a numeric into an integer (fractions are refused), a
 *    wider integer into a narrower one (22003), an integer into a
 *    boolean (only 0 and 1), a timestamp into a date (the time is
 *    dropped), timestamptz into timestamp without time zone (the offset
 *    is dropped), a date or a timestamp without time zone into
 *    timestamptz (read in the remote's time zone), a character column
 *    longer than the remote's maxLength (22001), an enum's values;
 *  - nothing said of a remote type gs_export does not know (a domain
 *    over another schema's type, an enum is only said to have values).
 * Returns NULL (fine) or the row's severity, with *why set.
 */
static const char *
check_types(const SentColumn *s, const RemoteColumn *col, char **why)
{
	TypeKind	lk = kind_of(s->lead_type);
	TypeKind	rk = kind_of(col->format);
	bool		as_text;

	*why = NULL;
	/* enums, domains over text, and the types payload.c sends as text */
	if (lk == K_OTHER || s->lead_category == 'E')
		lk = K_TEXT;
	as_text = (lk == K_TEXT || lk == K_JSON);

	if (rk == K_TEXT)
	{
		if (col->max_len > 0 &&
			!(lk == K_TEXT && s->lead_max_len > 0 && s->lead_max_len <= col->max_len))
		{
			*why = psprintf("values longer than %d characters are refused (22001)", col->max_len);
			return "warning";
		}
		return NULL;
	}
	if (rk == K_JSON)
		return NULL;
	if (col->enum_values != NULL)
	{
		*why = psprintf("it takes only the values %s", col->enum_values);
		return "warning";
	}
	if (rk == K_OTHER)
		return NULL;
	if (as_text)
	{
		*why = psprintf("only values that read as %s are taken (22P02 for the others)", col->format);
		return "warning";
	}
	if (lk == rk)
	{
		if (lk == K_INT && int_width(s->lead_type) > int_width(col->format))
		{
			*why = pstrdup("values out of its range are refused (22003)");
			return "warning";
		}
		return NULL;
	}

	switch (rk)
	{
		case K_BOOL:
			if (lk == K_INT)
			{
				*why = pstrdup("only 0 and 1 are taken");
				return "warning";
			}
			break;
		case K_INT:
			if (lk == K_NUM)
			{
				*why = pstrdup("a number with a fraction (even 2.00) is refused (22P02)");
				return "warning";
			}
			break;
		case K_NUM:
			if (lk == K_INT)
				return NULL;
			break;
		case K_DATE:
			if (lk == K_TSTZ || lk == K_TS)
			{
				*why = pstrdup("the time of day (and the offset) is dropped: the remote keeps the day as written");
				return "warning";
			}
			break;
		case K_TSTZ:
			if (lk == K_TS || lk == K_DATE)
			{
				*why = pstrdup("a value without an offset is read in the remote's time zone");
				return "warning";
			}
			break;
		case K_TS:
			if (lk == K_DATE)
				return NULL;
			if (lk == K_TSTZ)
			{
				*why = pstrdup("the offset is dropped: the remote keeps the time of day as written, in the offset it was sent with");
				return "warning";
			}
			break;
		case K_TIME:
			*why = pstrdup("gs_export cannot tell which values are taken");
			return "warning";
		default:
			break;
	}
	*why = pstrdup("no value of the lead's type can go in");
	return "error";
}

/* The remote's column of that name, or NULL. */
static RemoteColumn *
find_column(FetchResult *res, const char *name)
{
	int			i;

	for (i = 0; i < res->ncolumns; i++)
		if (strcmp(res->columns[i].name, name) == 0)
			return &res->columns[i];
	return NULL;
}

/* The row of a column sent that the remote table lacks. */
static void
missing_row(CheckRows *rows, const char *table, const SentColumn *s)
{
	if (s->lead != NULL)
		add_row(rows, "error", s->option,
				psprintf("remote column \"%s\" (for lead column \"%s\") does not exist in table \"%s\": its values would not arrive (the job drops a column the remote lacks)",
						 s->remote, s->lead, table));
	else
		add_row(rows, "warning", s->option,
				psprintf("remote column \"%s\" (%s) does not exist in table \"%s\": the job would send it and then drop it; set option \"%s\" to null to send none",
						 s->remote, s->what, table, s->option));
}

/* Compare one column sent with the remote's. */
static void
check_sent(CheckRows *rows, FetchResult *res, const char *table, const SentColumn *s)
{
	RemoteColumn *col = find_column(res, s->remote);
	const char *severity;
	char	   *why;

	if (col == NULL)
	{
		missing_row(rows, table, s);
		return;
	}
	severity = check_types(s, col, &why);
	if (severity != NULL)
		add_row(rows, severity, s->option,
				psprintf("remote column \"%s\" is %s and %s is %s: %s",
						 s->remote, col->format ? col->format : "of an unknown type",
						 s->what, s->lead_type, why));
	if (col->not_null && !s->lead_not_null)
		add_row(rows, "warning", s->option,
				psprintf("remote column \"%s\" is NOT NULL and %s may be null: a lead with null there would be refused (23502)",
						 s->remote, s->what));
}

/*
 * The column a 42703 names ("column fichas.nome does not exist"), or NULL.
 */
static char *
undefined_column(const char *message, const char *table)
{
	const char *start;
	const char *end;
	size_t		tlen = strlen(table);

	if (message == NULL || strncmp(message, "column ", 7) != 0)
		return NULL;
	start = message + 7;
	if (strncmp(start, table, tlen) == 0 && start[tlen] == '.')
		start += tlen + 1;
	end = strstr(start, " does not exist");
	if (end == NULL || end == start)
		return NULL;
	return pnstrdup(start, end - start);
}

/*
 * The remote refused the key its description (GET /rest/v1/: 401, 403):
 * ask the table itself, with the same key, for the columns sent and no
 * row (GET /rest/v1/<table>?limit=0&select=...).  PostgREST 12.2 answers
 * 200 when the table and every column exist, 400 42703 naming the first
 * column that does not (asked again without it, each one a row), 404
 * 42P01 without the table, 401/403 42501 when the key's role may not read
 * it, and the gateway its own 401 when the key is wrong.  Types and the
 * remote's required columns cannot be checked this way: a warning says so.
 */
static void
probe_table(const RemoteTarget *target, FetchResult *res, List *sent, CheckRows *rows)
{
	List	   *asked = list_copy(sent);
	const char *table = target->target_table;
	int			attempts = list_length(sent) + 1;

	while (attempts-- > 0)
	{
		StringInfoData path;
		HttpAnswer	ans;
		ListCell   *lc;
		char	   *message;
		char	   *code;
		char	   *column;
		SentColumn *missing = NULL;

		initStringInfo(&path);
		appendStringInfo(&path, "%s?limit=0", table);
		foreach(lc, asked)
		{
			const char *name = ((SentColumn *) lfirst(lc))->remote;

			/* a name that is no plain identifier in PostgREST's quotes */
			appendStringInfo(&path, "%s%s", foreach_current_index(lc) == 0 ? "&select=" : ",",
							 gs_remote_escape(strspn(name, "abcdefghijklmnopqrstuvwxyz"
													 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
											  strlen(name) ? name : psprintf("\"%s\"", name)));
		}
		http_get(target, res, path.data, "application/json", 64 * 1024, &ans);
		if (ans.rc != CURLE_OK)
		{
			no_answer(res, &ans);
			add_row(rows, "error", "remote", psprintf("%s (%s)", res->message, res->hint));
			return;
		}
		error_fields(ans.body.buf.data, &message, &code);
		if (ans.status == 200)
		{
			add_row(rows, "warning", "remote",
					psprintf("the remote does not show its description (GET /rest/v1/) to this key, but the key works: table \"%s\"%s exists; the columns' types and the remote's required columns were not checked (%s)",
							 table, asked != NIL ? " and every column sent to it" : "",
							 "Supabase shows /rest/v1/ only to a service_role or secret key"));
			return;
		}
		if (ans.status == 400 && code != NULL && strcmp(code, "42703") == 0 &&
			(column = undefined_column(message, table)) != NULL)
		{
			foreach(lc, asked)
				if (strcmp(((SentColumn *) lfirst(lc))->remote, column) == 0)
					missing = (SentColumn *) lfirst(lc);
		}
		if (missing != NULL)
		{
			missing_row(rows, table, missing);
			asked = list_delete_ptr(asked, missing);
			continue;
		}
		if (ans.status == 404 || (code != NULL && strcmp(code, "42P01") == 0))
			add_row(rows, "error", "target_table",
					psprintf("remote table \"%s\" does not exist (GET /rest/v1/%s: HTTP %ld%s%s)",
							 table, table, ans.status, message ? ": " : "", message ? message : ""));
		else if ((ans.status == 401 || ans.status == 403) && code != NULL &&
				 strcmp(code, "42501") == 0)
			add_row(rows, "warning", "remote",
					psprintf("the remote does not show its description (GET /rest/v1/) to this key, and the key's role may not read table \"%s\" (HTTP %ld: %s): neither the table nor its columns were checked",
							 table, ans.status, message ? message : "42501"));
		else if (ans.status == 401 || ans.status == 403)
			add_row(rows, "error", "key",
					psprintf("the remote refused the key: HTTP %ld%s%s (An administrator must set the project's anon key in gestao_scouter_config.anon_key.)",
							 ans.status, message ? ": " : "", message ? message : ""));
		else
			add_row(rows, "error", "remote",
					psprintf("GET %s/rest/v1/%s answered HTTP %ld%s%s", res->origin, table,
							 ans.status, message ? ": " : "", message ? message : ""));
		return;
	}
}

/*
 * gs_export_check(options jsonb DEFAULT '{}')
 *	 → SETOF (severity text, key text, message text)
 *
 * The rows of the SQL side (options, lead columns, config), then, when
 * those leave something to ask, the remote's: a key refused (key "key"),
 * a remote that does not answer or answers something else ("remote"), no
 * such table ("target_table"), and for the table's columns: a mapped
 * column missing (error), the synced-at or source column missing
 * (warning), types (check_types), a NOT NULL remote column that may get
 * null, a required column left unmapped (error when its type shows its
 * defaults, warning otherwise: see the top of the file).  42501 when the
 * caller may not use gs_export; 57014 when cancelled.
 */
Datum
gs_export_check(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {JSONBOID};
	Datum		args[1];
	bool		nulls[1];
	bool		isnull;
	Datum		result;
	JsonbContainer *root;
	JsonbContainer *list;
	JsonbContainer *remote;
	CheckRows	rows;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	rows.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	rows.n = 0;

	nulls[0] = PG_ARGISNULL(0);
	args[0] = nulls[0] ? (Datum) 0 : PG_GETARG_DATUM(0);
	result = gs_api_call_readonly("_gs_export_check", 1, types, args, nulls, &isnull);
	if (isnull)
		elog(ERROR, "gs_export: _gs_export_check returned null");
	root = &DatumGetJsonbP(result)->root;

	list = jb_container(root, "rows");
	if (list != NULL)
		for (i = 0; i < JsonContainerSize(list); i++)
		{
			JsonbContainer *row = jb_element(list, i);

			add_row(&rows, jb_text(row, "severity"), jb_text(row, "key"),
					jb_text(row, "message"));
		}

	remote = jb_container(root, "remote");
	if (remote != NULL)
	{
		RemoteTarget target;
		FetchResult res;
		JsonbContainer *cols = jb_container(remote, "columns");
		List	   *sent = NIL;
		ListCell   *lc;
		SentColumn *s;
		char	   *synced_at = jb_text(remote, "synced_at_column");
		char	   *source = jb_text(remote, "source_column");

		read_target(remote, &target);

		/* the columns sent: the mapping's, then the two gs_export fills */
		if (cols != NULL)
			for (i = 0; i < JsonContainerSize(cols); i++)
			{
				JsonbContainer *c = jb_element(cols, i);
				char	   *category = jb_text(c, "lead_category");

				s = palloc0(sizeof(SentColumn));
				s->remote = jb_text(c, "remote");
				s->lead = jb_text(c, "lead");
				s->what = psprintf("lead column \"%s\"", s->lead);
				s->option = jb_text(c, "option");
				s->lead_type = jb_text(c, "lead_type");
				s->lead_category = category ? category[0] : 'X';
				s->lead_not_null = jb_bool(c, "lead_not_null");
				s->lead_max_len = jb_int(c, "lead_max_len", -1);
				sent = lappend(sent, s);
			}
		if (synced_at != NULL)
			sent = lappend(sent, own_column(synced_at, "the time of export", "synced_at_column",
											"timestamp with time zone", 'D'));
		if (source != NULL)
			sent = lappend(sent, own_column(source, "source_value", "source_column", "text", 'S'));

		if (begin_call(&target, &res))
		{
			fetch_table(&target, &res);
			if (res.outcome == FETCH_KEY_REFUSED && res.root_refused)
				probe_table(&target, &res, sent, &rows);
		}
		end_call();

		switch (res.outcome)
		{
			case FETCH_OK:
				break;
			case FETCH_BAD_URL:
				add_row(&rows, "error", "config", psprintf("%s (%s)", res.message, res.hint));
				break;
			case FETCH_KEY_REFUSED:
				/* probe_table said what it is */
				break;
			case FETCH_NO_TABLE:
				add_row(&rows, "error", "target_table", psprintf("%s (%s)", res.message, res.hint));
				break;
			case FETCH_NO_CONNECTION:
			case FETCH_TIMEOUT:
			case FETCH_BAD_ANSWER:
				add_row(&rows, "error", "remote",
						res.hint ? psprintf("%s (%s)", res.message, res.hint) : res.message);
				break;
		}

		if (res.outcome == FETCH_OK)
		{
			foreach(lc, sent)
				check_sent(&rows, &res, target.target_table, (SentColumn *) lfirst(lc));

			/* required columns nothing is sent to */
			for (i = 0; i < res.ncolumns; i++)
			{
				RemoteColumn *col = &res.columns[i];
				bool		is_sent = false;

				if (!col->not_null || col->has_default)
					continue;
				foreach(lc, sent)
					if (strcmp(((SentColumn *) lfirst(lc))->remote, col->name) == 0)
						is_sent = true;
				if (is_sent)
					continue;
				if (col->type != NULL && strcmp(col->type, "string") == 0)
					add_row(&rows, "error", "field_mappings",
							psprintf("remote column \"%s\" (%s) is NOT NULL without a default, and nothing is mapped to it: every insert would be refused (23502)",
									 col->name, col->format ? col->format : "string"));
				else
					add_row(&rows, "warning", "field_mappings",
							psprintf("remote column \"%s\" (%s) is NOT NULL and nothing is mapped to it; PostgREST shows no default for it, but it shows a default of this type only when it reads as JSON (not nextval(), an identity, an expression): if it has none, every insert would be refused (23502)",
									 col->name, col->format ? col->format : "of an unknown type"));
			}
		}
	}
	return (Datum) 0;
}
