/*-------------------------------------------------------------------------
 *
 * gs_curl.h
 *	  What the two files that use libcurl (remote.c for batches, alert.c
 *	  for alerts) share: the libcurl version gs_export needs, and a
 *	  curl_easy_setopt that names the option when it fails.
 *
 *-------------------------------------------------------------------------
 */
#ifndef GS_CURL_H
#define GS_CURL_H

#include <curl/curl.h>

#if LIBCURL_VERSION_NUM < 0x075500
#error "gs_export needs libcurl 7.85.0 or newer (CURLOPT_PROTOCOLS_STR)"
#endif

#define gs_curl_setopt(handle, opt, value) \
	do { \
		CURLcode rc_ = curl_easy_setopt((handle), (opt), (value)); \
		if (rc_ != CURLE_OK) \
			elog(ERROR, "gs_export: curl_easy_setopt(%s) failed: %s", \
				 #opt, curl_easy_strerror(rc_)); \
	} while (0)

#endif							/* GS_CURL_H */
