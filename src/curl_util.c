/*-------------------------------------------------------------------------
 *
 * curl_util.c
 *	  The libcurl pieces that remote.c (batches) and alert.c (alerts) both
 *	  use, in one place: the write callback that keeps the first bytes of
 *	  an answer, a handle made or out of memory, and the errors of a
 *	  libcurl call that failed (53200 when libcurl ran out of memory, an
 *	  internal error otherwise).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "gs_curl.h"

/*
 * Start an empty body that keeps at most max bytes, in the current memory
 * context.
 */
void
gs_curl_body_init(GsCurlBody *body, int max)
{
	initStringInfo(&body->buf);
	body->max = max;
}

/*
 * curl's write callback: keep the first body->max bytes of the answer.
 * Everything is taken (a shorter count would make curl fail the
 * transfer); what is past the first bytes is dropped.
 */
size_t
gs_curl_keep_body(char *data, size_t size, size_t nmemb, void *arg)
{
	GsCurlBody *body = (GsCurlBody *) arg;
	size_t		len = size * nmemb;

	if (body->buf.len < body->max)
		appendBinaryStringInfo(&body->buf, data,
							   (int) Min(len, (size_t) (body->max - body->buf.len)));
	return len;
}

/*
 * A new easy handle.  curl_easy_init fails only when it cannot allocate.
 */
CURL *
gs_curl_easy_init(void)
{
	CURL	   *easy = curl_easy_init();

	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("gs_export could not create a libcurl handle.")));
	return easy;
}

/*
 * A call of libcurl's easy interface (what) failed with rc.
 */
void
gs_curl_failed(const char *what, CURLcode rc)
{
	if (rc == CURLE_OUT_OF_MEMORY)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("gs_export: %s failed: %s", what, curl_easy_strerror(rc))));
	/* an option this libcurl does not know, or a bad value: our bug */
	elog(ERROR, "gs_export: %s failed: %s", what, curl_easy_strerror(rc));
}

/*
 * A call of libcurl's multi interface (what) failed with mc.
 */
void
gs_curl_multi_failed(const char *what, CURLMcode mc)
{
	if (mc == CURLM_OUT_OF_MEMORY)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("gs_export: %s failed: %s", what, curl_multi_strerror(mc))));
	elog(ERROR, "gs_export: %s failed: %s", what, curl_multi_strerror(mc));
}
