/*-------------------------------------------------------------------------
 *
 * remote.c
 *	  The HTTP client of gs_export: requests that POST a batch to the
 *	  remote's table as PostgREST expects it, up to GS_MAX_REQUESTS of them
 *	  at once on one libcurl multi handle (whose connection cache keeps
 *	  their connections alive from one request to the next), and what each
 *	  answer means (success, retry, bad rows, missing column, fatal).
 *	  While transfers run the process sleeps on its latch and curl's
 *	  sockets together (one WaitEventSet), so that it stops at once on
 *	  shutdown, cancel or postmaster death, and uses no CPU while the
 *	  remote works.  The same machinery drives the transfers of other easy
 *	  handles (alert.c's), and the same transport rules (http/https only,
 *	  certificates checked, no redirects) apply to them.  A verify's GETs
 *	  (verify.c) read pages of rows the same way.
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

/*
 * Most of a GET's answer (a verify's page of remote rows, verify.c): a
 * page of 1000 rows of some 40 columns is a few hundred kilobytes; an
 * answer that reaches this is refused, not cut.
 */
#define GS_MAX_GET_BODY (32 * 1024 * 1024)

/* Most of a body quoted in a message about an answer. */
#define GS_BODY_EXCERPT 200

/*
 * Longest single wait for curl's sockets.  curl's own timer (which covers
 * its timeouts) normally ends a wait sooner; this only bounds a wait in
 * which curl watches nothing we can see.
 */
#define GS_MAX_WAIT_MS 1000

/*
 * Most sockets curl watches at once: one per transfer, and a few for name
 * resolution and the alert.
 */
#define GS_MAX_SOCKETS (4 * GS_MAX_REQUESTS)

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

typedef struct GsResponse
{
	GsCurlBody	body;			/* its first GS_MAX_BODY bytes */
	int			retry_after_ms;
} GsResponse;

/*
 * A request to the remote, from gs_remote_start until gs_remote_wait hands
 * its result over.  The slots and their easy handles are kept for the
 * life of the process; what one request needs lives in its slot's cxt.
 */
typedef struct GsRequest
{
	bool		in_use;
	bool		added;			/* in the multi handle */
	bool		done;			/* curl is through with it: rc says how */
	CURLcode	rc;
	CURL	   *easy;
	MemoryContext cxt;
	struct curl_slist *headers; /* they hold the key: freed when done */
	GsResponse	resp;
	char		errbuf[CURL_ERROR_SIZE];
	/*
	 * the body: "[", each text, "," between them, "]" (read_body); a
	 * mutation's (a PATCH's object) is its one text alone
	 */
	bool		mutation;		/* a DELETE or PATCH, return=representation,
								 * or a GET: a JSON array answers */
	bool		get;			/* a GET: reads, changes nothing */
	const char **texts;
	const size_t *lens;
	int			ntexts;
	int			part;			/* of the 2 * ntexts + 1 parts */
	size_t		part_off;		/* bytes of it already handed over */
	bool		resent_whole;	/* curl sent the body again after it had
								 * handed all of it over once */
	curl_off_t	body_len;
	TimestampTz started;
	void	   *tag;			/* the caller's */
} GsRequest;

static GsRequest requests[GS_MAX_REQUESTS];
static int	nrequests = 0;		/* slots in use */

/* gs_remote_perform's transfer (an alert's) */
static CURL *other_easy = NULL;
static bool other_done = false;
static CURLcode other_rc = CURLE_OK;

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
			/* can't happen with our few transfers; fails the transfer */
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
 * Set up this process's libcurl multi handle, once, before the first
 * request (again: nothing).
 */
void
gs_remote_init(void)
{
	CURLcode	rc;

	if (multi_handle != NULL)
		return;					/* done already (a backend's second check) */
	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK)
		gs_curl_failed("curl_global_init", rc);
	multi_handle = curl_multi_init();
	if (multi_handle == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("gs_export could not create a libcurl multi handle.")));
	gs_curl_multi_setopt(multi_handle, CURLMOPT_SOCKETFUNCTION, note_socket);
	gs_curl_multi_setopt(multi_handle, CURLMOPT_TIMERFUNCTION, note_timer);
	/* keep a connection for each request that may be in flight, and more */
	gs_curl_multi_setopt(multi_handle, CURLMOPT_MAXCONNECTS, (long) (2 * GS_MAX_REQUESTS));
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
 * Note the transfers curl is through with: a request's slot gets done and
 * its result code, and leaves the multi handle.
 */
static void
collect_done(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi_handle, &left)) != NULL)
	{
		int			i;

		if (msg->msg != CURLMSG_DONE)
			continue;
		if (msg->easy_handle == other_easy)
		{
			other_done = true;
			other_rc = msg->data.result;
			continue;
		}
		for (i = 0; i < GS_MAX_REQUESTS; i++)
		{
			GsRequest  *req = &requests[i];

			if (req->in_use && req->added && req->easy == msg->easy_handle)
			{
				req->done = true;
				req->rc = msg->data.result;
				break;
			}
		}
	}
}

/*
 * Let curl act on a socket that is ready (or, with CURL_SOCKET_TIMEOUT, on
 * its timer), and note what it finished.
 */
static void
socket_action(curl_socket_t fd, int ev_bitmask)
{
	int			running = 0;
	CURLMcode	mc;

	mc = curl_multi_socket_action(multi_handle, fd, ev_bitmask, &running);
	if (mc != CURLM_OK)
		gs_curl_multi_failed("curl_multi_socket_action", mc);
	collect_done();
}

/*
 * Sleep until one of curl's sockets is ready, curl's timer is due, or the
 * latch is set, at most timeout_ms (and GS_MAX_WAIT_MS), and let curl act
 * on what is ready.  Returns true when the latch was set: it is reset,
 * and interrupts are looked at at once (shutdown and cancel stop the
 * transfers here); anything else that set it (a pause) is for the caller.
 * Postmaster death ends the process.
 */
static bool
pump(long timeout_ms)
{
	WaitEvent	events[GS_MAX_SOCKETS + 2];
	long		timeout = Min(Max(timeout_ms, 0), GS_MAX_WAIT_MS);
	bool		latch = false;
	int			nevents;
	int			i;

	CHECK_FOR_INTERRUPTS();
	if (sockets_overflow)
		elog(ERROR, "gs_export: curl asked to watch more than %d sockets",
			 GS_MAX_SOCKETS);

	if (timer_armed)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (now >= timer_deadline)
		{
			timer_armed = false;	/* curl arms it again if it wants */
			socket_action(CURL_SOCKET_TIMEOUT, 0);
			return false;
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
		 * Time is up: curl's timer is due (acted on next time), or the
		 * safety cap passed while curl had no timer: let it look all the
		 * same.
		 */
		if (!timer_armed && (nrequests > 0 || other_easy != NULL))
			socket_action(CURL_SOCKET_TIMEOUT, 0);
		return false;
	}
	for (i = 0; i < nevents; i++)
	{
		WaitEvent  *ev = &events[i];

		if (ev->events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch = true;
			CHECK_FOR_INTERRUPTS();
		}
		else if (ev->events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
		{
			int			mask = 0;

			if (ev->events & WL_SOCKET_READABLE)
				mask |= CURL_CSELECT_IN;
			if (ev->events & WL_SOCKET_WRITEABLE)
				mask |= CURL_CSELECT_OUT;
			socket_action(ev->fd, mask);
		}
	}
	return latch;
}

/*
 * The characters a URL of gs_export's may hold: RFC 3986's unreserved and
 * reserved ones but '#', and '%' (for escapes).  No space, no control
 * character, none of "<>\^`{|}.  The config guard's regular expressions
 * (src/sql/functions/gs_export_config_guard.sql) allow the same.
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
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
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
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
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
 * curl's read callback: the body, streamed from the leads' texts (no copy
 * of the whole body is made).
 */
static size_t
read_body(char *buf, size_t size, size_t nitems, void *arg)
{
	GsRequest  *req = (GsRequest *) arg;
	size_t		room = size * nitems;
	size_t		out = 0;

	while (room > 0 && req->part <= 2 * req->ntexts)
	{
		const char *src;
		size_t		len;
		size_t		take;

		if (req->part == 0)
			src = "[", len = req->mutation ? 0 : 1;
		else if (req->part % 2 == 1)
			src = req->texts[req->part / 2], len = req->lens[req->part / 2];
		else if (req->part == 2 * req->ntexts)
			src = "]", len = req->mutation ? 0 : 1;
		else
			src = ",", len = 1;
		if (len == 0)
		{
			req->part++;
			continue;
		}
		take = Min(room, len - req->part_off);
		memcpy(buf + out, src + req->part_off, take);
		out += take;
		room -= take;
		req->part_off += take;
		if (req->part_off == len)
		{
			req->part++;
			req->part_off = 0;
		}
	}
	return out;
}

/*
 * curl's seek callback: a body sent again (say, on a reused connection that
 * turned out closed) starts over.  If the whole of it had been handed over
 * before, that first attempt may have reached the remote, which may still
 * apply it: the request is in doubt, whatever its answer.
 */
static int
seek_body(void *arg, curl_off_t offset, int origin)
{
	GsRequest  *req = (GsRequest *) arg;

	if (origin != SEEK_SET || offset != 0)
		return CURL_SEEKFUNC_CANTSEEK;
	if (req->part > 2 * req->ntexts)
		req->resent_whole = true;
	req->part = 0;
	req->part_off = 0;
	return CURL_SEEKFUNC_OK;
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
 * What an HTTP answer means.  body_len is the length of the body as it
 * came (it may hold NUL bytes); result->body is the body as a C string,
 * scrubbed of the keys.
 *
 * Asked for return=minimal, PostgREST answers a success with 200 or 201
 * and no body.  Any other 2xx, or one with a body, comes from something
 * else (a proxy's login page, a captive portal, a wrong URL): the rows
 * were surely not stored, and waiting will not help, so the job fails
 * with the answer in its reason.
 */
static void
classify_http(GsRemoteResult *result, int body_len, bool mutation, bool get)
{
	long		status = result->http_status;
	char	   *message;
	const char *code;

	/*
	 * A DELETE or PATCH asked for return=representation (the ids it
	 * touched): PostgREST answers 200 and a JSON array.
	 */
	if (mutation && status == 200 && result->body != NULL && result->body[0] == '[' &&
		(get || gs_payload_is_json(result->body)))
	{
		/* (a GET's page is parsed whole by its reader, verify.c) */
		result->outcome = GS_REMOTE_OK;
		return;
	}
	if (mutation && status >= 200 && status < 300)
	{
		result->error = psprintf("HTTP %ld%s%s%s is not PostgREST's answer to a %s with return=representation "
								 "(200 and a JSON array): something else answered (a proxy at project_url?)",
								 status, result->body ? " with the body \"" : "",
								 result->body ? body_excerpt(result->body, strlen(result->body)) : "",
								 result->body ? "\"" : "", get ? "GET" : "DELETE or PATCH");
		result->outcome = GS_REMOTE_FATAL;
		return;
	}
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
									 status, body_excerpt(result->body, strlen(result->body)));
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
		 * but the worker first splits the span (worker.c, handle_answer).
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
classify_curl(CURL *easy, CURLcode rc, const char *errbuf, GsRemoteResult *result)
{
	long		os_errno = 0;

	curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno);
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
		case CURLE_OPERATION_TIMEDOUT:
			result->timed_out = true;
			result->outcome = GS_REMOTE_RETRY;
			break;
		default:
			/* refused, reset, name not resolved: may pass */
			result->outcome = GS_REMOTE_RETRY;
			break;
	}
}

/*
 * Take a request out of the multi handle, and its headers (they hold the
 * key) off its handle; the slot is free again.
 */
static void
release_request(GsRequest *req)
{
	if (req->added)
		curl_multi_remove_handle(multi_handle, req->easy);
	req->added = false;
	curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(req->easy, CURLOPT_ERRORBUFFER, NULL);
	req->texts = NULL;
	req->lens = NULL;
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	MemoryContextReset(req->cxt);
	req->in_use = false;
	req->done = false;
	req->tag = NULL;
	nrequests--;
}

/*
 * Start a request: method (POST, PATCH, DELETE or GET) to
 * {project_url}/rest/v1/{table}?{query} with the Prefer header given and a
 * body streamed from n texts (read_body: a JSON array of them for a POST,
 * the one text of a PATCH, none for a DELETE).  The texts must stay as
 * they are until the request's result is taken.  tag is the caller's,
 * handed back with the result.  At most GS_MAX_REQUESTS at once.
 */
static void
start_request(const char *project_url, const char *api_key, const char *table,
			  const char *method, const char *query, const char *prefer,
			  const char **texts, const size_t *lens, int n, void *tag)
{
	GsRequest  *req = NULL;
	StringInfoData url;
	StringInfoData header;
	MemoryContext oldcxt;
	size_t		urllen = strlen(project_url);
	bool		post = strcmp(method, "POST") == 0;
	CURLMcode	mc;
	int			i;

	if (multi_handle == NULL)
		elog(ERROR, "gs_export: gs_remote_init was not called");
	for (i = 0; i < GS_MAX_REQUESTS; i++)
		if (!requests[i].in_use)
		{
			req = &requests[i];
			break;
		}
	if (req == NULL)
		elog(ERROR, "gs_export: more than %d requests at once", GS_MAX_REQUESTS);
	if (req->easy == NULL)
	{
		req->easy = gs_curl_easy_init();
		req->cxt = AllocSetContextCreate(TopMemoryContext, "gs_export request",
										 ALLOCSET_SMALL_SIZES);
	}
	oldcxt = MemoryContextSwitchTo(req->cxt);

	while (urllen > 0 && project_url[urllen - 1] == '/')
		urllen--;
	initStringInfo(&url);
	appendBinaryStringInfo(&url, project_url, (int) urllen);
	{
		char	   *escaped = curl_easy_escape(req->easy, table, 0);

		appendStringInfo(&url, "/rest/v1/%s?%s", escaped, query);
		curl_free(escaped);
	}

	initStringInfo(&header);
	appendStringInfo(&header, "apikey: %s", api_key);
	req->headers = curl_slist_append(NULL, header.data);
	resetStringInfo(&header);
	appendStringInfo(&header, "Authorization: Bearer %s", api_key);
	req->headers = curl_slist_append(req->headers, header.data);
	if (n > 0)
		req->headers = curl_slist_append(req->headers, "Content-Type: application/json");
	req->headers = curl_slist_append(req->headers, "Accept: application/json");
	if (prefer != NULL)
	{
		resetStringInfo(&header);
		appendStringInfo(&header, "Prefer: %s", prefer);
		req->headers = curl_slist_append(req->headers, header.data);
	}
	req->headers = curl_slist_append(req->headers, "User-Agent: gs_export/" GS_EXPORT_VERSION);
	req->headers = curl_slist_append(req->headers, "Expect:");
	/* the key is not needed any more in our memory */
	memset(header.data, 0, header.maxlen);

	req->get = strcmp(method, "GET") == 0;
	gs_curl_body_init(&req->resp.body, req->get ? GS_MAX_GET_BODY : GS_MAX_BODY);
	req->resp.retry_after_ms = -1;
	req->errbuf[0] = '\0';
	req->mutation = !post;
	req->texts = texts;
	req->lens = lens;
	req->ntexts = n;
	req->part = 0;
	req->part_off = 0;
	req->resent_whole = false;
	req->body_len = post ? 2 + (n > 0 ? n - 1 : 0) : (n > 0 ? n - 1 : 0);
	for (i = 0; i < n; i++)
		req->body_len += (curl_off_t) lens[i];
	req->tag = tag;
	req->done = false;
	req->in_use = true;
	nrequests++;
	MemoryContextSwitchTo(oldcxt);

	PG_TRY();
	{
		gs_curl_setopt(req->easy, CURLOPT_URL, url.data);
		gs_remote_set_transport(req->easy);
		gs_curl_setopt(req->easy, CURLOPT_TCP_KEEPALIVE, 1L);
		gs_curl_setopt(req->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) gs_export_connect_timeout_ms);
		gs_curl_setopt(req->easy, CURLOPT_TIMEOUT_MS, (long) gs_export_http_timeout_ms);
		gs_curl_setopt(req->easy, CURLOPT_HTTPHEADER, req->headers);
		if (n > 0 || post)
		{
			gs_curl_setopt(req->easy, CURLOPT_POST, 1L);
			gs_curl_setopt(req->easy, CURLOPT_POSTFIELDS, NULL);
			gs_curl_setopt(req->easy, CURLOPT_POSTFIELDSIZE_LARGE, req->body_len);
		}
		else
			gs_curl_setopt(req->easy, CURLOPT_HTTPGET, 1L);
		/* after POST or HTTPGET, which reset it */
		gs_curl_setopt(req->easy, CURLOPT_CUSTOMREQUEST, post ? NULL : method);
		gs_curl_setopt(req->easy, CURLOPT_READFUNCTION, read_body);
		gs_curl_setopt(req->easy, CURLOPT_READDATA, req);
		gs_curl_setopt(req->easy, CURLOPT_SEEKFUNCTION, seek_body);
		gs_curl_setopt(req->easy, CURLOPT_SEEKDATA, req);
		gs_curl_setopt(req->easy, CURLOPT_WRITEFUNCTION, gs_curl_keep_body);
		gs_curl_setopt(req->easy, CURLOPT_WRITEDATA, &req->resp.body);
		gs_curl_setopt(req->easy, CURLOPT_HEADERFUNCTION, read_header);
		gs_curl_setopt(req->easy, CURLOPT_HEADERDATA, &req->resp);
		gs_curl_setopt(req->easy, CURLOPT_ERRORBUFFER, req->errbuf);
		req->started = GetCurrentTimestamp();
		mc = curl_multi_add_handle(multi_handle, req->easy);
		if (mc != CURLM_OK)
			gs_curl_multi_failed("curl_multi_add_handle", mc);
		req->added = true;
	}
	PG_CATCH();
	{
		release_request(req);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Start POSTing n leads' JSON texts, as one JSON array, to
 * {project_url}/rest/v1/{table}, with the columns in the URL as
 * PostgREST's bulk upsert takes them.  With missing_default, a column
 * named but absent from an object gets its default (Prefer:
 * missing=default), else NULL.  The texts must stay as they are until the
 * request's result is taken (they are streamed, not copied).
 */
void
gs_remote_start(const char *project_url, const char *api_key, const char *table,
				List *columns, bool missing_default,
				const char **texts, const size_t *lens, int n, void *tag)
{
	StringInfoData query;
	ListCell   *lc;
	bool		first = true;

	initStringInfo(&query);
	appendStringInfoString(&query, "on_conflict=id&columns=");
	foreach(lc, columns)
	{
		appendStringInfo(&query, "%s%s", first ? "" : ",", gs_remote_escape(lfirst(lc)));
		first = false;
	}
	start_request(project_url, api_key, table, "POST", query.data,
				  missing_default ? "resolution=merge-duplicates,missing=default,return=minimal" :
				  "resolution=merge-duplicates,return=minimal", texts, lens, n, tag);
	pfree(query.data);
}

/*
 * Start a DELETE (body NULL) or a PATCH of the one JSON object body (a soft
 * delete: it must stay as it is until the result is taken) of the rows
 * that query (filters, already escaped) selects, asking for the ids of the
 * rows it touched (return=representation, select=id).
 */
void
gs_remote_start_mutation(const char *project_url, const char *api_key, const char *table,
						 const char *query, const char **body, const size_t *body_len,
						 void *tag)
{
	char	   *q = psprintf("select=id&%s", query);

	start_request(project_url, api_key, table, body ? "PATCH" : "DELETE", q,
				  "return=representation", body, body_len, body ? 1 : 0, tag);
	pfree(q);
}

/*
 * Start a GET of {project_url}/rest/v1/{table}?{query} (select, filters,
 * order, limit: already escaped): a read, whose answer is PostgREST's JSON
 * array of rows (up to GS_MAX_GET_BODY bytes), classified as a mutation's
 * (200 and a JSON array, else the rules of an error answer).
 */
void
gs_remote_start_get(const char *project_url, const char *api_key, const char *table,
					const char *query, void *tag)
{
	start_request(project_url, api_key, table, "GET", query, NULL, NULL, NULL, 0, tag);
}

/*
 * A value as it goes in a URL's query string (palloc'd).
 */
char *
gs_remote_escape(const char *value)
{
	char	   *escaped = curl_easy_escape(NULL, value, 0);
	char	   *result;

	if (escaped == NULL)
		elog(ERROR, "gs_export: out of memory escaping a URL value");
	result = pstrdup(escaped);
	curl_free(escaped);
	return result;
}

/* Requests started and not yet handed back by gs_remote_wait. */
int
gs_remote_in_flight(void)
{
	return nrequests;
}

/*
 * Is a request still sending its body?  (The worker reads its next batch
 * once every body is handed over: the remote is then at work, and the
 * process is free until it answers.)
 */
bool
gs_remote_uploading(void)
{
	int			i;

	for (i = 0; i < GS_MAX_REQUESTS; i++)
	{
		GsRequest  *req = &requests[i];
		curl_off_t	sent = 0;

		if (!req->in_use || req->done)
			continue;
		curl_easy_getinfo(req->easy, CURLINFO_SIZE_UPLOAD_T, &sent);
		if (sent < req->body_len)
			return true;
	}
	return false;
}

/*
 * Was the request's whole body handed over to the network?  Then the
 * remote may have it, and may apply it even though no answer came: a
 * remote cannot apply a JSON array it did not get whole.  When curl cannot
 * tell, it may have.
 */
static bool
body_handed_over(GsRequest *req)
{
	curl_off_t	sent = 0;

	if (curl_easy_getinfo(req->easy, CURLINFO_SIZE_UPLOAD_T, &sent) != CURLE_OK)
		return true;
	return sent >= req->body_len;
}

/*
 * The result of a request curl is through with, in the caller's memory
 * context; the slot is freed.  The answer (but a GET's page of rows) is
 * scrubbed of the config's keys
 * (scrub.c) as it comes in, before anything reads or quotes it: a remote or
 * a proxy may echo our headers, and a quote cut short could not be
 * scrubbed later.  (Only the first GS_MAX_BODY bytes are kept: a key cut
 * at that end is in a body that is no JSON any more, which is stored
 * nowhere and quoted only by its first GS_BODY_EXCERPT bytes.)
 */
static void
finish_request(GsRequest *req, GsRemoteResult *result)
{
	CURLcode	rc = req->rc;

	memset(result, 0, sizeof(GsRemoteResult));
	result->retry_after_ms = req->resp.retry_after_ms;
	result->elapsed_ms = (int) ((GetCurrentTimestamp() - req->started) / 1000);
	if (req->resp.body.buf.len > 0)
	{
		char	   *raw = pnstrdup(req->resp.body.buf.data, req->resp.body.buf.len);
		long		status = 0;

		/*
		 * A GET's page of rows, as PostgREST answers it, is not scrubbed
		 * here (it is large, and most of a verify's time went into it):
		 * verify.c scrubs what it stores or quotes of it.
		 */
		if (req->get && rc == CURLE_OK)
			curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200 && raw[0] == '[')
			result->body = raw;
		else
			result->body = gs_scrub_json(raw);
	}

	if (rc == CURLE_ABORTED_BY_CALLBACK)
	{
		if (!PostmasterIsAlive())
			proc_exit(1);
		CHECK_FOR_INTERRUPTS();
	}
	if (rc != CURLE_OK)
	{
		classify_curl(req->easy, rc, req->errbuf, result);
		/* no answer: a timeout, a connection lost or reset */
		if (body_handed_over(req))
			result->doubt = result->error;
	}
	else
	{
		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &result->http_status);
		classify_http(result, req->resp.body.buf.len, req->mutation, req->get);
		if (req->get && req->resp.body.buf.len >= req->resp.body.max)
		{
			result->outcome = GS_REMOTE_FATAL;
			result->error = psprintf("the answer to a GET is larger than %d bytes: ask fewer rows at once (batch_size)",
									 req->resp.body.max);
		}

		/*
		 * A gateway that gave up on its upstream (502, 504, Supabase's
		 * 544) speaks for a PostgREST that may still be at work on the
		 * request.  Any other answer is the remote's own: the upsert was
		 * applied, or refused, or never began.
		 */
		if (result->http_status == 502 || result->http_status == 504 ||
			result->http_status == 544)
			result->doubt = psprintf("HTTP %ld, a gateway's", result->http_status);
	}
	result->error = gs_scrub(result->error);
	/* an earlier attempt curl made of it on its own, unanswered */
	if (req->resent_whole && result->doubt == NULL)
		result->doubt = "libcurl sent it again on its own after an attempt went unanswered";
	/* a GET changes nothing: never in doubt */
	if (req->get)
		result->doubt = NULL;
	release_request(req);
}

/*
 * Drive the requests under way until one has its answer, the latch is set,
 * or timeout_ms passes (0: only what is ready now; the process sleeps no
 * longer).  With upload_only it also returns once no request is still
 * sending its body.  Never throws for the remote's trouble: that is data
 * for the caller.  Without requests under way it only waits on the latch.
 */
GsRemoteWait
gs_remote_wait(long timeout_ms, bool upload_only, GsRemoteResult *result, void **tag)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);

	for (;;)
	{
		long		left;
		int			i;

		for (i = 0; i < GS_MAX_REQUESTS; i++)
			if (requests[i].in_use && requests[i].done)
			{
				*tag = requests[i].tag;
				finish_request(&requests[i], result);
				return GS_WAIT_ANSWER;
			}
		if (upload_only && !gs_remote_uploading())
			return GS_WAIT_TIMEOUT;
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (left <= 0 && timeout_ms > 0)
			return GS_WAIT_TIMEOUT;
		if (pump(left))
			return GS_WAIT_LATCH;
		if (timeout_ms <= 0)
		{
			/* one look only */
			for (i = 0; i < GS_MAX_REQUESTS; i++)
				if (requests[i].in_use && requests[i].done)
					break;
			if (i == GS_MAX_REQUESTS)
				return GS_WAIT_TIMEOUT;
		}
	}
}

/*
 * Give up every request under way (the worker stops on an error): they
 * leave the multi handle, their headers are freed.  Returns whether one of
 * them may still reach the remote and be applied: its whole body was
 * handed over, and no answer of the remote's own came.
 */
bool
gs_remote_abandon_all(void)
{
	bool		in_doubt = false;
	int			i;

	for (i = 0; i < GS_MAX_REQUESTS; i++)
		if (requests[i].in_use)
		{
			/* a GET changes nothing */
			if (!requests[i].get &&
				(requests[i].resent_whole ||
				 (!(requests[i].done && requests[i].rc == CURLE_OK) &&
				  body_handed_over(&requests[i]))))
				in_doubt = true;
			release_request(&requests[i]);
		}
	return in_doubt;
}

/*
 * Run the transfer set up on another easy handle (a CURL *: alert.c's)
 * through the same multi handle and WaitEventSet as the batches, so that
 * it too ends at once on shutdown, cancel or postmaster death; requests
 * under way go on meanwhile.  Returns its CURLcode.
 */
int
gs_remote_perform(void *easy)
{
	CURLcode	rc;
	CURLMcode	mc;
	volatile bool latch = false;

	if (multi_handle == NULL)
		elog(ERROR, "gs_export: gs_remote_init was not called");
	if (other_easy != NULL)
		elog(ERROR, "gs_export: gs_remote_perform is already under way");

	PG_TRY();
	{
		mc = curl_multi_add_handle(multi_handle, easy);
		if (mc != CURLM_OK)
			gs_curl_multi_failed("curl_multi_add_handle", mc);
		other_easy = easy;
		other_done = false;
		while (!other_done)
			latch |= pump(GS_MAX_WAIT_MS);
		rc = other_rc;
		curl_multi_remove_handle(multi_handle, easy);
		other_easy = NULL;
	}
	PG_CATCH();
	{
		if (other_easy != NULL)
			curl_multi_remove_handle(multi_handle, easy);
		other_easy = NULL;
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
	if (latch)
		SetLatch(MyLatch);
	return (int) rc;
}
