/*-------------------------------------------------------------------------
 *
 * remote.c
 *	  The HTTP client of gs_export: one libcurl handle per worker process,
 *	  reused across batches (keep-alive), that POSTs a batch to the remote's
 *	  fichas as PostgREST expects it, and says what the answer means
 *	  (success, retry, bad rows, missing column, fatal).  While a transfer
 *	  runs the process sleeps on its latch and curl's sockets together (one
 *	  WaitEventSet), so that it stops at once on shutdown, cancel or
 *	  postmaster death, and uses no CPU while the remote works.  The same
 *	  machinery drives the transfers of other easy handles (alert.c's), and
 *	  the same transport rules (http/https only, certificates checked, no
 *	  redirects) apply to them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "gs_curl.h"
#include "gs_export.h"

/* Most of an answer's body that is kept (error bodies are small). */
#define GS_MAX_BODY (64 * 1024)

/* Most of a body quoted in a message about an answer. */
#define GS_BODY_EXCERPT 200

/*
 * Longest single wait for curl's sockets.  curl's own timer (which covers
 * its timeouts) normally ends a wait sooner; this only bounds a wait in
 * which curl watches nothing we can see.
 */
#define GS_MAX_WAIT_MS 1000

/* Most sockets curl watches at once for our one transfer. */
#define GS_MAX_SOCKETS 16

static CURL *curl_handle = NULL;
static CURLM *multi_handle = NULL;

/*
 * What curl asked us to watch: filled in by its socket and timer callbacks,
 * which must not throw, and turned into a WaitEventSet before each wait.
 * PostgreSQL 15 cannot take an event out of a set, so the set is built
 * again, in wait_cxt, whenever curl's sockets change.
 */
typedef struct GsSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN, _OUT or _INOUT */
} GsSocket;

static GsSocket sockets[GS_MAX_SOCKETS];
static int	nsockets = 0;
static bool sockets_changed = true;
static bool sockets_overflow = false;
static bool timer_armed = false;
static TimestampTz timer_deadline = 0;
static MemoryContext wait_cxt = NULL;
static WaitEventSet *wait_set = NULL;

/* The latch was set during a transfer: set it again for the caller. */
static bool latch_seen = false;

/* The easy handle is in the multi handle (a transfer is under way). */
static bool transfer_added = false;

typedef struct GsResponse
{
	StringInfoData body;
	int			retry_after_ms;
} GsResponse;

#define gs_curl_multi_setopt(handle, opt, value) \
	do { \
		CURLMcode mc_ = curl_multi_setopt((handle), (opt), (value)); \
		if (mc_ != CURLM_OK) \
			elog(ERROR, "gs_export: curl_multi_setopt(%s) failed: %s", \
				 #opt, curl_multi_strerror(mc_)); \
	} while (0)

/*
 * curl's socket callback: note which sockets it wants watched, and for
 * what.  Called from inside curl: it must not throw.
 */
static int
note_socket(CURL *easy, curl_socket_t fd, int what, void *clientp,
			void *socketp)
{
	int			i;

	for (i = 0; i < nsockets; i++)
		if (sockets[i].fd == fd)
			break;

	if (what == CURL_POLL_REMOVE)
	{
		if (i < nsockets)
		{
			sockets[i] = sockets[--nsockets];
			sockets_changed = true;
		}
		return 0;
	}
	if (i == nsockets)
	{
		if (nsockets == GS_MAX_SOCKETS)
		{
			/* can't happen with one transfer; fails the transfer */
			sockets_overflow = true;
			return -1;
		}
		sockets[nsockets].fd = fd;
		sockets[nsockets].what = 0;
		nsockets++;
	}
	if (sockets[i].what != what)
	{
		sockets[i].what = what;
		sockets_changed = true;
	}
	return 0;
}

/*
 * curl's timer callback: when curl wants to be called again with
 * CURL_SOCKET_TIMEOUT (-1: not at all).  Called from inside curl: it must
 * not throw.
 */
static int
note_timer(CURLM *multi, long timeout_ms, void *clientp)
{
	if (timeout_ms < 0)
		timer_armed = false;
	else
	{
		timer_armed = true;
		timer_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 timeout_ms);
	}
	return 0;
}

/*
 * Set up this process's libcurl handles, once, before the first request.
 */
void
gs_remote_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		elog(ERROR, "gs_export: curl_global_init failed");
	curl_handle = curl_easy_init();
	multi_handle = curl_multi_init();
	if (curl_handle == NULL || multi_handle == NULL)
		elog(ERROR, "gs_export: curl_easy_init failed");
	gs_curl_multi_setopt(multi_handle, CURLMOPT_SOCKETFUNCTION, note_socket);
	gs_curl_multi_setopt(multi_handle, CURLMOPT_TIMERFUNCTION, note_timer);
	wait_cxt = AllocSetContextCreate(TopMemoryContext, "gs_export remote wait",
									 ALLOCSET_SMALL_SIZES);
}

/*
 * Build the WaitEventSet again from curl's sockets: the latch, postmaster
 * death, and each socket for what curl wants of it.
 */
static void
rebuild_wait_set(void)
{
	int			i;

	if (wait_set != NULL)
	{
		FreeWaitEventSet(wait_set);
		wait_set = NULL;
	}
	MemoryContextReset(wait_cxt);
	wait_set = CreateWaitEventSet(wait_cxt, GS_MAX_SOCKETS + 2);
	AddWaitEventToSet(wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (i = 0; i < nsockets; i++)
	{
		uint32		events = 0;

		if (sockets[i].what & CURL_POLL_IN)
			events |= WL_SOCKET_READABLE;
		if (sockets[i].what & CURL_POLL_OUT)
			events |= WL_SOCKET_WRITEABLE;
		AddWaitEventToSet(wait_set, events, sockets[i].fd, NULL, NULL);
	}
	sockets_changed = false;
}

/*
 * Let curl act on a socket that is ready (or, with CURL_SOCKET_TIMEOUT, on
 * its timer).  Returns the number of transfers still running.
 */
static int
socket_action(curl_socket_t fd, int ev_bitmask)
{
	int			running = 0;
	CURLMcode	mc;

	mc = curl_multi_socket_action(multi_handle, fd, ev_bitmask, &running);
	if (mc != CURLM_OK)
		elog(ERROR, "gs_export: curl_multi_socket_action failed: %s",
			 curl_multi_strerror(mc));
	return running;
}

/*
 * Drive the transfer.  With upload_only, return as soon as the whole body
 * is handed over (the remote is then at work, and we are free until it
 * answers); otherwise, when the transfer is over.  Returns true when it is
 * over.
 *
 * The process sleeps until one of curl's sockets is ready, curl's timer is
 * due, or the latch is set, GS_MAX_WAIT_MS at most.  A set latch is reset
 * and interrupts looked at at once: shutdown and cancel stop the transfer
 * here.  Anything else that set it (a pause) is for the caller after the
 * request (see gs_remote_post).  Postmaster death ends the process.
 */
static bool
drive_transfer(CURL *easy, curl_off_t body_len, bool upload_only)
{
	int			running = 1;

	for (;;)
	{
		WaitEvent	events[GS_MAX_SOCKETS + 2];
		long		timeout = GS_MAX_WAIT_MS;
		int			nevents;
		int			i;

		CHECK_FOR_INTERRUPTS();
		if (sockets_overflow)
			elog(ERROR, "gs_export: curl asked to watch more than %d sockets",
				 GS_MAX_SOCKETS);
		if (running == 0)
			return true;
		if (upload_only)
		{
			curl_off_t	sent = 0;

			curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &sent);
			if (sent >= body_len)
				return false;
		}

		if (timer_armed)
		{
			TimestampTz now = GetCurrentTimestamp();

			if (now >= timer_deadline)
			{
				timer_armed = false;	/* curl arms it again if it wants */
				running = socket_action(CURL_SOCKET_TIMEOUT, 0);
				continue;
			}
			timeout = Min(timeout, TimestampDifferenceMilliseconds(now, timer_deadline));
		}

		if (sockets_changed || wait_set == NULL)
			rebuild_wait_set();
		nevents = WaitEventSetWait(wait_set, timeout, events, lengthof(events),
								   PG_WAIT_EXTENSION);
		if (nevents == 0)
		{
			/*
			 * Time is up: curl's timer is due (acted on above), or the safety
			 * cap passed while curl had no timer: let it look all the same.
			 */
			if (!timer_armed)
				running = socket_action(CURL_SOCKET_TIMEOUT, 0);
			continue;
		}
		for (i = 0; i < nevents; i++)
		{
			WaitEvent  *ev = &events[i];

			if (ev->events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				latch_seen = true;
				CHECK_FOR_INTERRUPTS();
			}
			else if (ev->events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
			{
				int			mask = 0;

				if (ev->events & WL_SOCKET_READABLE)
					mask |= CURL_CSELECT_IN;
				if (ev->events & WL_SOCKET_WRITEABLE)
					mask |= CURL_CSELECT_OUT;
				running = socket_action(ev->fd, mask);
			}
		}
	}
}

/*
 * The result code of the transfer of easy that just ended; easy leaves the
 * multi handle.
 */
static CURLcode
transfer_result(CURL *easy)
{
	CURLMsg    *msg;
	int			left;
	CURLcode	rc = CURLE_ABORTED_BY_CALLBACK;

	while ((msg = curl_multi_info_read(multi_handle, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy)
			rc = msg->data.result;
	curl_multi_remove_handle(multi_handle, easy);
	if (easy == curl_handle)
		transfer_added = false;
	return rc;
}

/*
 * The characters a URL of gs_export's may hold: RFC 3986's unreserved and
 * reserved ones but '#', and '%' (for escapes).  No space, no control
 * character, none of "<>\^`{|}.  The config guard's regular expressions
 * (gs_export--1.0--1.1.sql) allow the same.
 */
static bool
url_chars_allowed(const char *url)
{
	const char *p;

	for (p = url; *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || strchr("-._~!$&'()*+,;=:@%/?[]", c) != NULL)
			continue;
		return false;
	}
	return true;
}

/*
 * NULL when url, the config's column what, is one gs_export may use: http
 * or https, a host, an optional port, no user name or password, no
 * fragment; and either nothing more (a project's address: gs_export adds
 * the path) or, with path_allowed, a path and a query (a webhook's
 * address).  Otherwise, why not (palloc'd).
 */
static char *
check_url(const char *url, const char *what, bool path_allowed)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *user = NULL;
	char	   *path = NULL;
	char	   *query = NULL;
	char	   *fragment = NULL;
	char	   *reason = NULL;
	char	   *alone = path_allowed ?
		psprintf("%s must not carry a fragment", what) :
		psprintf("%s must be the project's address alone, with no path, query or fragment", what);

	if (u == NULL)
		elog(ERROR, "gs_export: out of memory");
	if (path_allowed && !url_chars_allowed(url))
		reason = psprintf("%s holds a character a URL may not hold (a space, a control character, or one of \"<>\\^`{|})", what);
	else if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		reason = psprintf("%s is not a valid URL", what);
	else if (strpbrk(url, path_allowed ? "#" : "?#") != NULL)
		reason = alone;
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
			 (pg_strcasecmp(scheme, "http") != 0 && pg_strcasecmp(scheme, "https") != 0))
		reason = psprintf("%s must be an http or https URL", what);
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
		reason = psprintf("%s has no host", what);
	else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		reason = psprintf("%s must not carry a user name or password", what);
	else if (curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK ||
			 (!path_allowed &&
			  ((curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
				strcmp(path, "") != 0 && strcmp(path, "/") != 0) ||
			   curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK)))
		reason = alone;
	curl_free(path);
	curl_free(query);
	curl_free(fragment);
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_url_cleanup(u);
	return reason;
}

/*
 * NULL when the URL is one gs_export may use as project_url: http or
 * https, a host, an optional port, nothing else.  Otherwise, why not
 * (palloc'd).
 */
char *
gs_remote_check_url(const char *url)
{
	return check_url(url, "project_url", false);
}

/*
 * The same for alert_url, a webhook's address: a path and a query may
 * follow the host (Slack's and Teams' incoming webhooks have them).
 */
char *
gs_remote_check_alert_url(const char *url)
{
	return check_url(url, "alert_url", true);
}

/*
 * The scheme, host and port of a URL, for the log: a webhook's path often
 * is its secret (Slack's are), so that is all of it the log shows.
 */
char *
gs_remote_url_origin(const char *url)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *port = NULL;
	char	   *origin;

	if (u == NULL)
		elog(ERROR, "gs_export: out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
	{
		if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
			origin = psprintf("%s://%s:%s", scheme, host, port);
		else
			origin = psprintf("%s://%s", scheme, host);
	}
	else
		origin = pstrdup("(not a URL)");
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return origin;
}

/*
 * curl's write callback: keep the first GS_MAX_BODY bytes of the body.
 */
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

/*
 * curl's header callback: note Retry-After.
 */
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
 * The transport rules of every request gs_export makes, on an easy handle
 * (a CURL *): http and https only, certificates and host names checked
 * (against gs_export.ca_file when set), no redirects followed, no signals,
 * and the transfer stopped when the worker must stop.
 */
void
gs_remote_set_transport(void *easy)
{
	gs_curl_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	gs_curl_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	gs_curl_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	gs_curl_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (gs_export_ca_file && gs_export_ca_file[0])
		gs_curl_setopt(easy, CURLOPT_CAINFO, gs_export_ca_file);
	gs_curl_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	gs_curl_setopt(easy, CURLOPT_NOPROGRESS, 0L);
	gs_curl_setopt(easy, CURLOPT_XFERINFOFUNCTION, check_interrupts);
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

/*
 * The start of an answer's body, fit to quote in a message: at most
 * GS_BODY_EXCERPT bytes, control characters (runs of them with spaces) as
 * one space, bytes that are not a character of the database's encoding as
 * '?', and "..." when cut short.
 */
static char *
body_excerpt(const char *body, int len)
{
	StringInfoData buf;
	int			encoding = GetDatabaseEncoding();
	int			i = 0;
	bool		space = false;

	initStringInfo(&buf);
	while (i < len && buf.len < GS_BODY_EXCERPT)
	{
		unsigned char c = (unsigned char) body[i];

		if (c < 0x20 || c == 0x7f || c == ' ')
		{
			if (!space && buf.len > 0)
				appendStringInfoChar(&buf, ' ');
			space = true;
			i++;
			continue;
		}
		space = false;
		if (c < 0x80)
		{
			appendStringInfoChar(&buf, (char) c);
			i++;
		}
		else
		{
			int			l = pg_encoding_verifymbchar(encoding, body + i, len - i);

			if (l > 0)
			{
				appendBinaryStringInfo(&buf, body + i, l);
				i += l;
			}
			else
			{
				appendStringInfoChar(&buf, '?');
				i++;
			}
		}
	}
	while (i < len && (body[i] == ' ' || (unsigned char) body[i] < 0x20 ||
					   body[i] == 0x7f))
		i++;
	if (i < len)
		appendStringInfoString(&buf, "...");
	else if (buf.len > 0 && buf.data[buf.len - 1] == ' ')
		buf.data[--buf.len] = '\0';
	return buf.data;
}

/*
 * What an HTTP answer means.  body_len is the length of result->body,
 * which may hold NUL bytes.
 *
 * Asked for return=minimal, PostgREST answers a success with 200 or 201
 * and no body.  Any other 2xx, or one with a body, comes from something
 * else (a proxy's login page, a captive portal, a wrong URL): the rows
 * were surely not stored, and waiting will not help, so the job fails
 * with the answer in its reason.
 */
static void
classify_http(GsRemoteResult *result, int body_len)
{
	long		status = result->http_status;
	char	   *message;
	const char *code;

	if (status >= 200 && status < 300)
	{
		if ((status == 200 || status == 201) && body_len == 0)
		{
			result->outcome = GS_REMOTE_OK;
			return;
		}
		if (body_len == 0)
			result->error = psprintf("HTTP %ld is not PostgREST's answer: to return=minimal "
									 "PostgREST answers 200 or 201 with no body, so something "
									 "else answered (a proxy at project_url?)",
									 status);
		else
			result->error = psprintf("HTTP %ld with a body is not PostgREST's answer: to "
									 "return=minimal PostgREST answers 200 or 201 with no body, "
									 "so something else answered (a proxy or a login page at "
									 "project_url?); the body began: \"%s\"",
									 status, body_excerpt(result->body, body_len));
		result->outcome = GS_REMOTE_FATAL;
		return;
	}

	parse_error_body(result->body, result, &message);
	code = result->pg_code ? result->pg_code : "";

	result->error = psprintf("HTTP %ld%s%s%s%s", status,
							 code[0] ? " " : "", code,
							 message ? ": " : "", message ? message : "");

	if (status == 400 && strcmp(code, "PGRST204") == 0)
	{
		result->missing_column = missing_column_name(message);
		result->outcome = result->missing_column ? GS_REMOTE_MISSING_COLUMN : GS_REMOTE_FATAL;
	}
	else if (status == 500 && strcmp(code, "57014") == 0)
	{
		/*
		 * The remote's statement timeout cancelled the upsert: it may pass,
		 * but the worker first splits the batch (send_range).
		 */
		result->outcome = GS_REMOTE_RETRY;
		result->statement_timeout = true;
	}
	else if (status == 408 || status == 429 || status == 502 || status == 503 ||
			 status == 504 || status == 544)
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
 * Take the request's headers (they hold the key) off the handle and free
 * them.
 */
static void
forget_headers(struct curl_slist *headers)
{
	gs_curl_setopt(curl_handle, CURLOPT_HTTPHEADER, NULL);
	gs_curl_setopt(curl_handle, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(headers);
}

/*
 * POST one batch to {project_url}/rest/v1/{table} and fill in *result.
 * Never throws for the remote's trouble: that is data for the caller.
 * while_waiting(arg), if given, is called once the body is sent, while the
 * remote works on it: the worker reads its next batch meanwhile.
 */
void
gs_remote_post(const char *project_url, const char *api_key, const char *table, List *columns,
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
	{
		char	   *escaped = curl_easy_escape(curl_handle, table, 0);

		appendStringInfo(&url, "/rest/v1/%s?on_conflict=id&columns=", escaped);
		curl_free(escaped);
	}
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
	gs_remote_set_transport(curl_handle);
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
	gs_curl_setopt(curl_handle, CURLOPT_ERRORBUFFER, errbuf);

	/* A transfer an error cut short is taken out before a new one. */
	if (transfer_added)
	{
		curl_multi_remove_handle(multi_handle, curl_handle);
		transfer_added = false;
	}
	latch_seen = false;

	PG_TRY();
	{
		curl_off_t	body_len = (curl_off_t) strlen(body);
		CURLMcode	mc = curl_multi_add_handle(multi_handle, curl_handle);

		if (mc != CURLM_OK)
			elog(ERROR, "gs_export: curl_multi_add_handle failed: %s", curl_multi_strerror(mc));
		transfer_added = true;
		if (!drive_transfer(curl_handle, body_len, while_waiting != NULL) && while_waiting)
		{
			while_waiting(arg);
			drive_transfer(curl_handle, body_len, false);
		}
		rc = transfer_result(curl_handle);
	}
	PG_CATCH();
	{
		/* a cancel, or trouble of our own: the transfer ends here */
		if (transfer_added)
		{
			curl_multi_remove_handle(multi_handle, curl_handle);
			transfer_added = false;
		}
		forget_headers(headers);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* Drop the headers (they hold the key) before anything can throw. */
	forget_headers(headers);

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
		classify_curl(rc, errbuf, result);
	else
	{
		curl_easy_getinfo(curl_handle, CURLINFO_RESPONSE_CODE, &result->http_status);
		classify_http(result, resp.body.len);
	}

	/*
	 * Whoever set the latch during the transfer (a pause, say) is for the
	 * caller.  After a success it records the batch and sees a pause there;
	 * otherwise it may wait before trying again, and that wait must end at
	 * once: set the latch again for it.
	 */
	if (latch_seen && result->outcome != GS_REMOTE_OK)
		SetLatch(MyLatch);
}

/*
 * Run the transfer set up on another easy handle (a CURL *, not the batch
 * handle: alert.c's) through the same multi handle and WaitEventSet as the
 * batches, so that it too ends at once on shutdown, cancel or postmaster
 * death.  Returns its CURLcode.  Not while a batch is at the remote.
 */
int
gs_remote_perform(void *easy)
{
	CURLcode	rc;
	CURLMcode	mc;
	volatile bool added = false;

	if (multi_handle == NULL)
		elog(ERROR, "gs_export: gs_remote_init was not called");
	/* A batch transfer an error cut short is taken out first. */
	if (transfer_added)
	{
		curl_multi_remove_handle(multi_handle, curl_handle);
		transfer_added = false;
	}
	latch_seen = false;

	PG_TRY();
	{
		mc = curl_multi_add_handle(multi_handle, easy);
		if (mc != CURLM_OK)
			elog(ERROR, "gs_export: curl_multi_add_handle failed: %s", curl_multi_strerror(mc));
		added = true;
		drive_transfer(easy, 0, false);
		rc = transfer_result(easy);
	}
	PG_CATCH();
	{
		if (added)
			curl_multi_remove_handle(multi_handle, easy);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (rc == CURLE_ABORTED_BY_CALLBACK)
	{
		if (!PostmasterIsAlive())
			proc_exit(1);
		CHECK_FOR_INTERRUPTS();
	}
	/* whoever set the latch meanwhile is for the caller */
	if (latch_seen)
		SetLatch(MyLatch);
	return (int) rc;
}
