/*-------------------------------------------------------------------------
 *
 * gs_curl.h
 *	  What the two files that use libcurl (remote.c for batches, alert.c
 *	  for alerts) share, defined in curl_util.c: the libcurl version
 *	  gs_export needs, curl_easy_setopt and curl_multi_setopt checked (the
 *	  option named when one fails), a handle made or out of memory, and
 *	  the write callback that keeps the first bytes of an answer.
 *
 *-------------------------------------------------------------------------
 */
#ifndef GS_CURL_H
#define GS_CURL_H

#include <curl/curl.h>

#include "lib/stringinfo.h"

#if LIBCURL_VERSION_NUM < 0x075500
#error "gs_export needs libcurl 7.85.0 or newer (CURLOPT_PROTOCOLS_STR)"
#endif

/* curl_easy_setopt, or an error that names the option. */
#define gs_curl_setopt(handle, opt, value) \
	do { \
		CURLcode rc_ = curl_easy_setopt((handle), (opt), (value)); \
		if (rc_ != CURLE_OK) \
			gs_curl_failed("curl_easy_setopt(" #opt ")", rc_); \
	} while (0)

/* curl_multi_setopt, or an error that names the option. */
#define gs_curl_multi_setopt(handle, opt, value) \
	do { \
		CURLMcode mc_ = curl_multi_setopt((handle), (opt), (value)); \
		if (mc_ != CURLM_OK) \
			gs_curl_multi_failed("curl_multi_setopt(" #opt ")", mc_); \
	} while (0)

/*
 * The start of an answer's body, for a message or the log: its first max
 * bytes are kept (they may hold NUL bytes: len says how many), the rest is
 * read and dropped.  gs_curl_keep_body is the CURLOPT_WRITEFUNCTION, with
 * the GsCurlBody as its CURLOPT_WRITEDATA.
 */
typedef struct GsCurlBody
{
	StringInfoData buf;
	int			max;
} GsCurlBody;

extern void gs_curl_body_init(GsCurlBody *body, int max);
extern size_t gs_curl_keep_body(char *data, size_t size, size_t nmemb, void *arg);

extern CURL *gs_curl_easy_init(void);
extern void gs_curl_failed(const char *what, CURLcode rc) pg_attribute_noreturn();
extern void gs_curl_multi_failed(const char *what, CURLMcode mc) pg_attribute_noreturn();

#endif							/* GS_CURL_H */
