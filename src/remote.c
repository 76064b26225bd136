/*-------------------------------------------------------------------------
 *
 * remote.c
 *	  The HTTP client of gs_export: one libcurl handle per worker process,
 *	  reused across batches (keep-alive), that POSTs a batch to the remote's
 *	  fichas as PostgREST expects it, and says what the answer means
 *	  (success, retry, bad rows, missing column, fatal).  Transfers stop at
 *	  once on shutdown, cancel or postmaster death.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <json-c/json.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "utils/timestamp.h"

#include "gs_export.h"

#if LIBCURL_VERSION_NUM < 0x075500
#error "gs_export needs libcurl 7.85.0 or newer (CURLOPT_PROTOCOLS_STR)"
#endif

/* Most of an answer's body that is kept (error bodies are small). */
#define GS_MAX_BODY (64 * 1024)

static CURL *curl_handle = NULL;
static CURLM *multi_handle = NULL;

/* How long one wait for the socket lasts before interrupts are looked at. */
#define GS_POLL_MS 100

typedef struct GsResponse
{
	StringInfoData body;
	int			retry_after_ms;
} GsResponse;

#define gs_curl_setopt(handle, opt, value) \
	do { \
		CURLcode rc_ = curl_easy_setopt((handle), (opt), (value)); \
		if (rc_ != CURLE_OK) \
			elog(ERROR, "gs_export: curl_easy_setopt(%s) failed: %s", \
				 #opt, curl_easy_strerror(rc_)); \
	} while (0)

void
gs_remote_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		elog(ERROR, "gs_export: curl_global_init failed");
	curl_handle = curl_easy_init();
	multi_handle = curl_multi_init();
	if (curl_handle == NULL || multi_handle == NULL)
		elog(ERROR, "gs_export: curl_easy_init failed");
}

/*
 * Drive the transfer.  With upload_only, return as soon as the whole body
 * is handed over (the remote is then at work, and we are free until it
 * answers); otherwise, when the transfer is over.  Returns true when it is
 * over.  Interrupts (shutdown, cancel) stop it at once.
 */
static bool
drive_transfer(curl_off_t body_len, bool upload_only)
{
	for (;;)
	{
		int			running = 0;
		CURLMcode	mc;

		mc = curl_multi_perform(multi_handle, &running);
		if (mc != CURLM_OK)
			elog(ERROR, "gs_export: curl_multi_perform failed: %s", curl_multi_strerror(mc));
		if (running == 0)
			return true;
		if (upload_only)
		{
			curl_off_t	sent = 0;

			curl_easy_getinfo(curl_handle, CURLINFO_SIZE_UPLOAD_T, &sent);
			if (sent >= body_len)
				return false;
		}
		mc = curl_multi_poll(multi_handle, NULL, 0, GS_POLL_MS, NULL);
		if (mc != CURLM_OK)
			elog(ERROR, "gs_export: curl_multi_poll failed: %s", curl_multi_strerror(mc));
		CHECK_FOR_INTERRUPTS();
		if (!PostmasterIsAlive())
			proc_exit(1);
	}
}

/*
 * The result code of the transfer that just ended.
 */
static CURLcode
transfer_result(void)
{
	CURLMsg    *msg;
	int			left;
	CURLcode	rc = CURLE_ABORTED_BY_CALLBACK;

	while ((msg = curl_multi_info_read(multi_handle, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == curl_handle)
			rc = msg->data.result;
	curl_multi_remove_handle(multi_handle, curl_handle);
	return rc;
}

/*
 * NULL when the URL is one gs_export may use: http or https, a host, an
 * optional port, nothing else.  Otherwise, why not (palloc'd).
 */
char *
gs_remote_check_url(const char *url)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *user = NULL;
	char	   *path = NULL;
	char	   *query = NULL;
	char	   *fragment = NULL;
	char	   *reason = NULL;

	if (u == NULL)
		elog(ERROR, "gs_export: out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		reason = pstrdup("project_url is not a valid URL");
	else if (strpbrk(url, "?#") != NULL)
		reason = pstrdup("project_url must be the project's address alone, with no path, query or fragment");
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
			 (pg_strcasecmp(scheme, "http") != 0 && pg_strcasecmp(scheme, "https") != 0))
		reason = pstrdup("project_url must be an http or https URL");
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
		reason = pstrdup("project_url has no host");
	else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		reason = pstrdup("project_url must not carry a user name or password");
	else if ((curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
			  strcmp(path, "") != 0 && strcmp(path, "/") != 0) ||
			 curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
			 curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK)
		reason = pstrdup("project_url must be the project's address alone, with no path, query or fragment");
	curl_free(path);
	curl_free(query);
	curl_free(fragment);
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_url_cleanup(u);
	return reason;
}

static size_t
write_body(char *data, size_t size, size_t nmemb, void *arg)
{
	GsResponse *resp = (GsResponse *) arg;
	size_t		len = size * nmemb;

	if (resp->body.len < GS_MAX_BODY)
		appendBinaryStringInfo(&resp->body, data,
							   Min(len, (size_t) (GS_MAX_BODY - resp->body.len)));
	return len;
}

static size_t
read_header(char *data, size_t size, size_t nitems, void *arg)
{
	GsResponse *resp = (GsResponse *) arg;
	size_t		len = size * nitems;

	if (len > 12 && pg_strncasecmp(data, "Retry-After:", 12) == 0)
	{
		char	   *p = data + 12;
		char	   *end;
		long		secs;

		while (p < data + len && (*p == ' ' || *p == '\t'))
			p++;
		secs = strtol(p, &end, 10);
		/* Delay in seconds; an HTTP date is taken as "soon". */
		if (end != p && secs >= 0)
			resp->retry_after_ms = (int) Min(secs, 3600) * 1000;
		else
			resp->retry_after_ms = 1000;
	}
	return len;
}

/*
 * Called by libcurl while a transfer runs: stop it when the worker must
 * stop, so that a slow remote never holds up a shutdown.
 */
static int
check_interrupts(void *arg, curl_off_t dltotal, curl_off_t dlnow,
				 curl_off_t ultotal, curl_off_t ulnow)
{
	if (InterruptPending && (ProcDiePending || QueryCancelPending))
		return 1;
	if (!PostmasterIsAlive())
		return 1;
	return 0;
}

/*
 * The "code" and "message" of a PostgREST error body, if it is one.
 */
static void
parse_error_body(const char *body, GsRemoteResult *result, char **message)
{
	struct json_object *obj;
	struct json_object *field;

	*message = NULL;
	if (body == NULL || body[0] == '\0')
		return;
	obj = json_tokener_parse(body);
	if (obj == NULL)
		return;
	if (json_object_is_type(obj, json_type_object))
	{
		if (json_object_object_get_ex(obj, "code", &field) && field != NULL)
			result->pg_code = pstrdup(json_object_get_string(field));
		if (json_object_object_get_ex(obj, "message", &field) && field != NULL)
			*message = pstrdup(json_object_get_string(field));
	}
	json_object_put(obj);
}

/*
 * The column named in PostgREST's "Could not find the 'X' column of ...".
 */
static char *
missing_column_name(const char *message)
{
	const char *start;
	const char *end;

	if (message == NULL || (start = strstr(message, "the '")) == NULL)
		return NULL;
	start += 5;
	end = strstr(start, "' column");
	if (end == NULL || end == start)
		return NULL;
	return pnstrdup(start, end - start);
}

static void
classify_http(GsRemoteResult *result)
{
	long		status = result->http_status;
	char	   *message;
	const char *code;

	parse_error_body(result->body, result, &message);
	code = result->pg_code ? result->pg_code : "";

	if (status == 200 || status == 201 || status == 204)
	{
		result->outcome = GS_REMOTE_OK;
		return;
	}

	result->error = psprintf("HTTP %ld%s%s%s%s", status,
							 code[0] ? " " : "", code,
							 message ? ": " : "", message ? message : "");

	if (status == 400 && strcmp(code, "PGRST204") == 0)
	{
		result->missing_column = missing_column_name(message);
		result->outcome = result->missing_column ? GS_REMOTE_MISSING_COLUMN : GS_REMOTE_FATAL;
	}
	else if (status == 408 || status == 429 || status == 502 || status == 503 ||
			 status == 504 || status == 544 ||
			 (status == 500 && strcmp(code, "57014") == 0))
		result->outcome = GS_REMOTE_RETRY;
	else if (status == 401 || status == 403 || status == 404 || status == 540)
		result->outcome = GS_REMOTE_FATAL;
	else if ((status == 400 && strlen(code) == 5 && strncmp(code, "PGRST", 5) != 0) ||
			 status == 409 || status == 413 ||
			 (status == 500 && strcmp(code, "21000") == 0))
		result->outcome = GS_REMOTE_BAD_ROWS;
	else if (status >= 500)
		result->outcome = GS_REMOTE_RETRY;
	else
		result->outcome = GS_REMOTE_FATAL;
}

static void
classify_curl(CURLcode rc, const char *errbuf, GsRemoteResult *result)
{
	long		os_errno = 0;

	curl_easy_getinfo(curl_handle, CURLINFO_OS_ERRNO, &os_errno);
	result->error = psprintf("%s%s%s%s%s", curl_easy_strerror(rc),
							 errbuf[0] ? ": " : "", errbuf,
							 os_errno ? " - " : "", os_errno ? strerror((int) os_errno) : "");
	switch (rc)
	{
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_TOO_MANY_REDIRECTS:
		case CURLE_OUT_OF_MEMORY:
			result->outcome = GS_REMOTE_FATAL;
			break;
		default:
			/* refused, reset, timed out, name not resolved: may pass */
			result->outcome = GS_REMOTE_RETRY;
			break;
	}
}

/*
 * POST one batch to {project_url}/rest/v1/fichas and fill in *result.
 * Never throws for the remote's trouble: that is data for the caller.
 * while_waiting(arg), if given, is called once the body is sent, while the
 * remote works on it: the worker reads its next batch meanwhile.
 */
void
gs_remote_post(const char *project_url, const char *api_key, List *columns,
			   const char *body, GsRemoteResult *result,
			   void (*while_waiting) (void *), void *arg)
{
	StringInfoData url;
	StringInfoData header;
	struct curl_slist *headers = NULL;
	GsResponse	resp;
	char		errbuf[CURL_ERROR_SIZE];
	CURLcode	rc;
	ListCell   *lc;
	bool		first = true;
	size_t		urllen = strlen(project_url);
	TimestampTz started = GetCurrentTimestamp();

	memset(result, 0, sizeof(GsRemoteResult));
	result->retry_after_ms = -1;

	while (urllen > 0 && project_url[urllen - 1] == '/')
		urllen--;
	initStringInfo(&url);
	appendBinaryStringInfo(&url, project_url, (int) urllen);
	appendStringInfoString(&url, "/rest/v1/fichas?on_conflict=id&columns=");
	foreach(lc, columns)
	{
		char	   *escaped = curl_easy_escape(curl_handle, lfirst(lc), 0);

		appendStringInfo(&url, "%s%s", first ? "" : ",", escaped);
		curl_free(escaped);
		first = false;
	}

	initStringInfo(&header);
	appendStringInfo(&header, "apikey: %s", api_key);
	headers = curl_slist_append(headers, header.data);
	resetStringInfo(&header);
	appendStringInfo(&header, "Authorization: Bearer %s", api_key);
	headers = curl_slist_append(headers, header.data);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Accept: application/json");
	headers = curl_slist_append(headers, "Prefer: resolution=merge-duplicates,return=minimal");
	headers = curl_slist_append(headers, "User-Agent: gs_export/" GS_EXPORT_VERSION);
	headers = curl_slist_append(headers, "Expect:");
	/* the key is not needed any more in our memory */
	memset(header.data, 0, header.maxlen);

	initStringInfo(&resp.body);
	resp.retry_after_ms = -1;
	errbuf[0] = '\0';

	gs_curl_setopt(curl_handle, CURLOPT_URL, url.data);
	gs_curl_setopt(curl_handle, CURLOPT_PROTOCOLS_STR, "http,https");
	gs_curl_setopt(curl_handle, CURLOPT_FOLLOWLOCATION, 0L);
	gs_curl_setopt(curl_handle, CURLOPT_SSL_VERIFYPEER, 1L);
	gs_curl_setopt(curl_handle, CURLOPT_SSL_VERIFYHOST, 2L);
	if (gs_export_ca_file && gs_export_ca_file[0])
		gs_curl_setopt(curl_handle, CURLOPT_CAINFO, gs_export_ca_file);
	gs_curl_setopt(curl_handle, CURLOPT_NOSIGNAL, 1L);
	gs_curl_setopt(curl_handle, CURLOPT_TCP_KEEPALIVE, 1L);
	gs_curl_setopt(curl_handle, CURLOPT_CONNECTTIMEOUT_MS, (long) gs_export_connect_timeout_ms);
	gs_curl_setopt(curl_handle, CURLOPT_TIMEOUT_MS, (long) gs_export_http_timeout_ms);
	gs_curl_setopt(curl_handle, CURLOPT_HTTPHEADER, headers);
	gs_curl_setopt(curl_handle, CURLOPT_POST, 1L);
	gs_curl_setopt(curl_handle, CURLOPT_POSTFIELDS, body);
	gs_curl_setopt(curl_handle, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(body));
	gs_curl_setopt(curl_handle, CURLOPT_WRITEFUNCTION, write_body);
	gs_curl_setopt(curl_handle, CURLOPT_WRITEDATA, &resp);
	gs_curl_setopt(curl_handle, CURLOPT_HEADERFUNCTION, read_header);
	gs_curl_setopt(curl_handle, CURLOPT_HEADERDATA, &resp);
	gs_curl_setopt(curl_handle, CURLOPT_NOPROGRESS, 0L);
	gs_curl_setopt(curl_handle, CURLOPT_XFERINFOFUNCTION, check_interrupts);
	gs_curl_setopt(curl_handle, CURLOPT_ERRORBUFFER, errbuf);

	{
		curl_off_t	body_len = (curl_off_t) strlen(body);
		CURLMcode	mc = curl_multi_add_handle(multi_handle, curl_handle);

		if (mc != CURLM_OK)
			elog(ERROR, "gs_export: curl_multi_add_handle failed: %s", curl_multi_strerror(mc));
		if (!drive_transfer(body_len, while_waiting != NULL) && while_waiting)
		{
			while_waiting(arg);
			drive_transfer(body_len, false);
		}
		rc = transfer_result();
	}

	/* Drop the headers (they hold the key) before anything can throw. */
	gs_curl_setopt(curl_handle, CURLOPT_HTTPHEADER, NULL);
	gs_curl_setopt(curl_handle, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(headers);

	if (rc == CURLE_ABORTED_BY_CALLBACK)
	{
		if (!PostmasterIsAlive())
			proc_exit(1);
		CHECK_FOR_INTERRUPTS();
	}

	result->elapsed_ms = (int) ((GetCurrentTimestamp() - started) / 1000);
	result->retry_after_ms = resp.retry_after_ms;
	if (resp.body.len > 0)
		result->body = resp.body.data;

	if (rc != CURLE_OK)
	{
		classify_curl(rc, errbuf, result);
		return;
	}
	curl_easy_getinfo(curl_handle, CURLINFO_RESPONSE_CODE, &result->http_status);
	classify_http(result);
}
