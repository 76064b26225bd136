/*-------------------------------------------------------------------------
 *
 * scrub.c
 *	  The config's keys out of every text gs_export stores, logs or sends.
 *	  A remote, or a proxy in front of it, may echo the request's headers
 *	  (apikey: <key>, Authorization: Bearer <key>) in its answer, and
 *	  answers end up in rows users read (error rows, sync_events,
 *	  pause_reason), in alerts and in the server log.  This file is the one
 *	  place that takes them out: a job worker sets the keys it must keep
 *	  secret once, when it claims its job (gs_scrub_set_keys: the config's
 *	  anon_key and service_role_key_encrypted), and then
 *	  - remote.c scrubs every answer (body and error) as it comes in,
 *		before anything quotes it: a quote cut short cannot be scrubbed;
 *	  - job.c scrubs what it records (messages, bodies, a lead's JSON) and
 *		every stop's reason; alert.c the alert and what its webhook said;
 *	  - an emit_log_hook scrubs every line this process logs (message,
 *		detail, hint, context, ...), whatever path it came from.
 *	  Each occurrence becomes GS_SCRUB_MARKER.  Forms: the key as is (so
 *	  "Bearer <key>" too), as JSON escapes it in a string ("\/", "\""),
 *	  and in a JSON text every string and member name as JSON means it
 *	  (\uXXXX escapes included), rebuilt when one held a key.
 *
 *	  Short keys.  A key shorter than GS_SCRUB_MIN_KEY_LEN is not replaced
 *	  wherever its characters happen to occur: "abc" as a key would turn
 *	  every word holding "abc" into "[key]" and make messages unreadable
 *	  (and a real key, a JWT, is hundreds of characters long).  It is
 *	  replaced where it stands as the key: on its own (not inside a run of
 *	  the characters keys are made of: letters, digits, "-._~+/="), and
 *	  either the whole text (a JSON string or name of its own), or after
 *	  "Bearer" and blanks, or after "apikey" and separators (blanks, ":",
 *	  "=", quotes, backslashes): the forms in which an echo of our headers
 *	  shows it.  Elsewhere such a key is left as it is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "gs_export.h"

/* Shorter keys are replaced only where they stand as the key (above). */
#define GS_SCRUB_MIN_KEY_LEN 8

/* What a non-JSON answer that held a key in a form we cannot rebuild
 * becomes (only an answer jsonb cannot read although it parses). */
#define GS_SCRUB_UNREADABLE "(an answer that held a key in a form gs_export could not remove: not kept)"

/* One form of a key to look for. */
typedef struct ScrubForm
{
	char	   *text;
	int			len;
	bool		short_key;		/* only where it stands as the key */
} ScrubForm;

static ScrubForm *forms = NULL;
static int	nforms = 0;
static MemoryContext scrub_cxt = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;
static bool hook_installed = false;

static void scrub_emit_log(ErrorData *edata);

/* A character keys are made of (JWTs, base64, base64url, hex). */
static inline bool
key_char(char c)
{
	return isalnum((unsigned char) c) || (c != '\0' && strchr("-._~+/=", c) != NULL);
}

/*
 * Add a form of a key: the key as is, or as a JSON string holds it.
 */
static void
add_form(const char *text, bool short_key)
{
	int			i;

	for (i = 0; i < nforms; i++)
		if (strcmp(forms[i].text, text) == 0)
			return;
	forms = forms ? repalloc(forms, sizeof(ScrubForm) * (nforms + 1)) :
		palloc(sizeof(ScrubForm));
	forms[nforms].text = pstrdup(text);
	forms[nforms].len = strlen(text);
	forms[nforms].short_key = short_key;
	nforms++;
}

/*
 * The key as a JSON string holds it: '"' and '\' escaped, and, with
 * slashes, '/' as "\/" (as json-c and others write it).  (Control
 * characters are refused in keys by the config's guard.)
 */
static char *
json_form(const char *key, bool slashes)
{
	StringInfoData buf;
	const char *p;

	initStringInfo(&buf);
	for (p = key; *p; p++)
	{
		if (*p == '"' || *p == '\\' || (slashes && *p == '/'))
			appendStringInfoChar(&buf, '\\');
		appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

/*
 * The keys this process keeps out of every text (NULL and empty ones are
 * ignored), from now on; the log's lines too.  A job worker calls it once
 * it has claimed its job.
 */
void
gs_scrub_set_keys(List *keys)
{
	MemoryContext oldcxt;
	ListCell   *lc;

	if (scrub_cxt == NULL)
		scrub_cxt = AllocSetContextCreate(TopMemoryContext, "gs_export keys",
										  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(scrub_cxt);
	forms = NULL;
	nforms = 0;
	oldcxt = MemoryContextSwitchTo(scrub_cxt);
	foreach(lc, keys)
	{
		const char *key = lfirst(lc);
		bool		short_key;

		if (key == NULL || key[0] == '\0')
			continue;
		short_key = strlen(key) < GS_SCRUB_MIN_KEY_LEN;
		add_form(key, short_key);
		add_form(json_form(key, false), short_key);
		add_form(json_form(key, true), short_key);
	}
	MemoryContextSwitchTo(oldcxt);

	if (nforms > 0 && !hook_installed)
	{
		prev_emit_log_hook = emit_log_hook;
		emit_log_hook = scrub_emit_log;
		hook_installed = true;
	}
}

/*
 * Does the word (ASCII, any case) end just before end, with text before?
 */
static bool
word_before(const char *text, const char *end, const char *word)
{
	int			n = strlen(word);

	return end - text >= n && pg_strncasecmp(end - n, word, n) == 0;
}

/*
 * A short key's occurrence at hit: does it stand as the key?  (The rule
 * at the top of the file.)
 */
static bool
stands_as_key(const char *text, const char *hit, int len)
{
	const char *end = hit + len;
	const char *p;

	if ((hit > text && key_char(hit[-1])) || key_char(*end))
		return false;
	if (hit == text && *end == '\0')
		return true;
	/* "Bearer <key>" */
	for (p = hit; p > text && (p[-1] == ' ' || p[-1] == '\t'); p--)
		;
	if (p < hit && word_before(text, p, "bearer"))
		return true;
	/* "apikey: <key>", "apikey=<key>", "\"apikey\": \"<key>\"" */
	for (p = hit; p > text && strchr(" \t:=\"'\\", p[-1]) != NULL; p--)
		;
	if (p < hit && word_before(text, p, "apikey"))
		return true;
	return false;
}

/* text with each occurrence of one form replaced; text itself if none */
static char *
scrub_form(char *text, const ScrubForm *form)
{
	StringInfoData buf;
	bool		changed = false;
	const char *from = text;	/* copied up to here */
	const char *p = text;
	const char *hit;

	while ((hit = strstr(p, form->text)) != NULL)
	{
		if (form->short_key && !stands_as_key(text, hit, form->len))
		{
			p = hit + 1;
			continue;
		}
		if (!changed)
			initStringInfo(&buf);
		changed = true;
		appendBinaryStringInfo(&buf, from, (int) (hit - from));
		appendStringInfoString(&buf, GS_SCRUB_MARKER);
		from = p = hit + form->len;
	}
	if (!changed)
		return text;
	appendStringInfoString(&buf, from);
	return buf.data;
}

/*
 * text with every key replaced by GS_SCRUB_MARKER, in the current memory
 * context; text itself when it holds none (or is NULL).
 */
char *
gs_scrub(const char *text)
{
	char	   *result = unconstify(char *, text);
	int			i;

	if (text == NULL)
		return NULL;
	for (i = 0; i < nforms; i++)
		result = scrub_form(result, &forms[i]);
	return result;
}

/* Parsing a JSON text: does a string or a member name hold a key? */
static void
find_key_in_name(void *state, char *fname, bool isnull)
{
	if (fname != NULL && gs_scrub(fname) != fname)
		*(bool *) state = true;
}

static void
find_key_in_scalar(void *state, char *token, JsonTokenType tokentype)
{
	if (tokentype == JSON_TOKEN_STRING && token != NULL && gs_scrub(token) != token)
		*(bool *) state = true;
}

/*
 * The JSON text rebuilt with every string and member name scrubbed (as
 * jsonb, where it goes: the same value), or NULL when jsonb cannot read
 * it after all.
 */
static char *
rebuild_json(const char *text)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	char	   *volatile result = NULL;

	PG_TRY();
	{
		Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
		JsonbIterator *it = JsonbIteratorInit(&jb->root);
		JsonbParseState *state = NULL;
		JsonbValue	v;
		JsonbValue *res = NULL;
		JsonbIteratorToken r;

		while ((r = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
		{
			if ((r == WJB_KEY || r == WJB_VALUE || r == WJB_ELEM) && v.type == jbvString)
			{
				char	   *s = pnstrdup(v.val.string.val, v.val.string.len);
				char	   *t = gs_scrub(s);

				v.val.string.val = t;
				v.val.string.len = strlen(t);
			}
			/* a raw scalar's pseudo-array keeps its flag */
			res = pushJsonbValue(&state, r,
								 r < WJB_BEGIN_ARRAY ||
								 (r == WJB_BEGIN_ARRAY && v.val.array.rawScalar) ? &v : NULL);
		}
		jb = JsonbValueToJsonb(res);
		result = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}
	PG_CATCH();
	{
		/* jsonb_in refused what the parser took (a number out of range) */
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		result = NULL;
	}
	PG_END_TRY();
	return result;
}

/*
 * gs_scrub for a text that may be JSON (an answer's body, a lead's JSON):
 * when jsonb can hold it, every string and member name is scrubbed as
 * JSON means it (escapes de-escaped), and the text rebuilt if one held a
 * key; then the text as gs_scrub does it.
 */
char *
gs_scrub_json(const char *text)
{
	char	   *result = unconstify(char *, text);

	if (text == NULL || nforms == 0)
		return result;
	if (gs_payload_is_json(text))
	{
		JsonLexContext *lex;
		JsonSemAction sem;
		bool		found = false;

		memset(&sem, 0, sizeof(sem));
		sem.semstate = &found;
		sem.object_field_start = find_key_in_name;
		sem.scalar = find_key_in_scalar;
		lex = makeJsonLexContextCstringLen(result, strlen(result),
										   GetDatabaseEncoding(), true);
		if (pg_parse_json(lex, &sem) == JSON_SUCCESS && found)
		{
			result = rebuild_json(text);
			if (result == NULL)
				return pstrdup(GS_SCRUB_UNREADABLE);
		}
	}
	return gs_scrub(result);
}

/*
 * Every line the process logs, scrubbed: a field that held a key is
 * replaced (its old text freed; errfinish frees the new one).
 */
static void
scrub_field(char **field)
{
	char	   *scrubbed;

	if (*field == NULL)
		return;
	scrubbed = gs_scrub(*field);
	if (scrubbed != *field)
	{
		pfree(*field);
		*field = scrubbed;
	}
}

static void
scrub_emit_log(ErrorData *edata)
{
	scrub_field(&edata->message);
	scrub_field(&edata->detail);
	scrub_field(&edata->detail_log);
	scrub_field(&edata->hint);
	scrub_field(&edata->context);
	scrub_field(&edata->internalquery);
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}
