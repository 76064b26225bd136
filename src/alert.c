/*-------------------------------------------------------------------------
 *
 * alert.c
 *	  Alerts: when a job completes, fails, or is paused by the remote's
 *	  trouble, its worker POSTs a small JSON document to the config's
 *	  alert_url (a Slack- or Teams-style incoming webhook, or anything that
 *	  takes JSON): the job's id, status, reason, counts and days, and a
 *	  one-line "text".  Sent after the change committed, outside any
 *	  transaction, once, with its own curl easy handle (the batches' rules:
 *	  http/https, certificates checked, no redirects), a short timeout and a
 *	  few retries.  It never throws: the job's row is final already, and a
 *	  webhook that is down costs the alert, never the job.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "gs_curl.h"
#include "gs_export.h"

/* Attempts at most, and the first wait between two (it doubles). */
#define GS_ALERT_ATTEMPTS 3
#define GS_ALERT_RETRY_DELAY_MS 500

/* Longest time one attempt may take, and its connection. */
#define GS_ALERT_TIMEOUT_MS 5000
#define GS_ALERT_CONNECT_TIMEOUT_MS 3000

/* Most of the reason in "text", and of an answer quoted in the log. */
#define GS_ALERT_TEXT_REASON 300
#define GS_ALERT_BODY_EXCERPT 200

/*
 * What the alert says, from _gs_export_alert_info (store.c calls it).
 */
typedef struct AlertInfo
{
	bool		is_current;		/* the change is still the job's state */
	char	   *status;
	char	   *reason;			/* keys blanked out, or NULL */
	int64		total_leads;
	int64		exported_leads;
	int64		error_leads;
	char	   *start_date;		/* YYYY-MM-DD */
	char	   *end_date;		/* or NULL: down to the oldest lead */
	char	   *alert_url;		/* NULL: no alerts */
} AlertInfo;

/* This process's handle for alerts (never the batches'). */
static CURL *alert_handle = NULL;

/* A bigint column of the result; NULL reads as 0. */
static int64
info_int8(GsRows *rows, const char *column)
{
	bool		isnull;
	Datum		d = gs_rows_value(rows, 0, column, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * Read what the alert says, in a short read-only transaction of its own,
 * after the change committed.  False when there is nothing to say (the
 * extension is gone or at another version, the job is gone).
 */
static bool
read_info(const pg_uuid_t *job_id, const char *status, const char *reason,
		  AlertInfo *info)
{
	bool		found = false;

	memset(info, 0, sizeof(AlertInfo));
	if (gs_xact_begin("gs_export: reading a job for its alert", false, NULL) == GS_STORE_READY)
	{
		Datum		args[3];
		bool		nulls[3] = {false, false, reason == NULL};
		GsRows	   *rows;

		args[0] = UUIDPGetDatum(job_id);
		args[1] = CStringGetTextDatum(status);
		args[2] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
		rows = gs_store_call(GS_STORE_ALERT_INFO, args, nulls);
		if (rows->n == 1)
		{
			info->is_current = gs_rows_bool(rows, 0, "is_current");
			info->status = gs_rows_text(rows, 0, "status");
			info->reason = gs_rows_text(rows, 0, "reason");
			info->total_leads = info_int8(rows, "total_leads");
			info->exported_leads = info_int8(rows, "exported_leads");
			info->error_leads = info_int8(rows, "error_leads");
			info->start_date = gs_rows_text(rows, 0, "start_date");
			info->end_date = gs_rows_text(rows, 0, "end_date");
			info->alert_url = gs_rows_text(rows, 0, "alert_url");
			found = info->status != NULL;
		}
	}
	gs_xact_end();
	return found;
}

/*
 * s (UTF-8) on one line, for "text" and the log: control characters (runs
 * of them with spaces) as one space, at most max bytes (whole characters), "..."
 * when cut short.  With ascii_only (a webhook's answer, in no known
 * encoding), other bytes as '?'.
 */
static char *
one_line(const char *s, int max, bool ascii_only)
{
	StringInfoData buf;
	bool		space = false;
	int			len;

	initStringInfo(&buf);
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c < 0x20 || c == 0x7f || c == ' ')
		{
			if (!space && buf.len > 0)
				appendStringInfoChar(&buf, ' ');
			space = true;
			continue;
		}
		space = false;
		appendStringInfoChar(&buf, (ascii_only && c >= 0x80) ? '?' : (char) c);
	}
	while (buf.len > 0 && buf.data[buf.len - 1] == ' ')
		buf.data[--buf.len] = '\0';
	if (buf.len <= max)
		return buf.data;
	len = pg_encoding_mbcliplen(PG_UTF8, buf.data, buf.len, max);
	return psprintf("%.*s...", len, buf.data);
}

/* "key": the string, or null */
static void
json_string_field(StringInfo buf, const char *key, const char *value)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	if (value)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, "null");
}

/* "key": the number */
static void
json_int8_field(StringInfo buf, const char *key, int64 value)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfo(buf, ": " INT64_FORMAT, value);
}

/*
 * The alert's JSON document (one object, UTF-8).  Nothing of the config
 * goes in it (and the caller scrubs it of the keys).
 */
static char *
alert_document(const char *job_id, const AlertInfo *info, const char *status)
{
	StringInfoData doc;
	StringInfoData text;
	const char *days_to = info->end_date ? info->end_date : "the oldest lead";
	char	   *reason = NULL;

	/* JSON is UTF-8, whatever the database's encoding */
	if (info->reason)
		reason = pg_server_to_any(info->reason, strlen(info->reason), PG_UTF8);

	initStringInfo(&text);
	if (strcmp(status, "completed") == 0)
		appendStringInfo(&text, "gs_export: job %s completed: " INT64_FORMAT " leads, "
						 INT64_FORMAT " exported, " INT64_FORMAT " errors (days %s down to %s)",
						 job_id, info->total_leads, info->exported_leads, info->error_leads,
						 info->start_date, days_to);
	else
		appendStringInfo(&text, "gs_export: job %s %s: %s (" INT64_FORMAT " leads so far, "
						 INT64_FORMAT " exported, " INT64_FORMAT " errors; days %s down to %s)",
						 job_id, status,
						 reason ? one_line(reason, GS_ALERT_TEXT_REASON, false) : "no reason given",
						 info->total_leads, info->exported_leads, info->error_leads,
						 info->start_date, days_to);

	initStringInfo(&doc);
	appendStringInfoChar(&doc, '{');
	json_string_field(&doc, "job_id", job_id);
	json_string_field(&doc, "status", status);
	json_string_field(&doc, "reason", reason);
	json_int8_field(&doc, "total_leads", info->total_leads);
	json_int8_field(&doc, "exported_leads", info->exported_leads);
	json_int8_field(&doc, "error_leads", info->error_leads);
	json_string_field(&doc, "start_date", info->start_date);
	json_string_field(&doc, "end_date", info->end_date);
	json_string_field(&doc, "text", one_line(text.data, 1000, false));
	appendStringInfoChar(&doc, '}');
	return doc.data;
}

/*
 * Sleep ms between two attempts (a shutdown ends it, and the process).
 *
 * The latch wakes this sleep for a shutdown or a cancel, which
 * CHECK_FOR_INTERRUPTS acts on; but a set latch may also be meant for
 * whoever called gs_alert_job (a pause or a resume, gs_export_wake_all),
 * which knows nothing of this sleep.  So the sleep resets the latch only
 * to go on sleeping, and sets it again before it returns if it consumed a
 * set: the caller's next WaitLatch sees the wake-up at once, as
 * gs_remote_perform does for the alert's transfer.  (Not resetting it at
 * all would make the remaining WaitLatch calls return at once: a busy
 * loop until the time is up.)
 */
static void
alert_sleep(long ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	bool		woken = false;

	for (;;)
	{
		long		left = (long) ((end - GetCurrentTimestamp()) / 1000);
		int			rc;

		if (left <= 0)
			break;
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   left, PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			woken = true;
		}
		CHECK_FOR_INTERRUPTS();
	}
	if (woken)
		SetLatch(MyLatch);
}

/*
 * POST the document to the webhook: up to GS_ALERT_ATTEMPTS attempts, again
 * only when it surely did not take it (no connection, 429, 5xx), never
 * after a timeout once connected (it may have it: a second one would be a
 * duplicate).  Returns a sentence for the log: what became of it.
 */
static char *
post_alert(const char *url, const char *document)
{
	struct curl_slist *volatile headers = NULL;
	char	   *volatile outcome = NULL;
	char		errbuf[CURL_ERROR_SIZE];
	GsCurlBody	answer;
	int			attempt;

	if (alert_handle == NULL)
		alert_handle = gs_curl_easy_init();
	curl_easy_reset(alert_handle);
	gs_curl_body_init(&answer, GS_ALERT_BODY_EXCERPT);

	PG_TRY();
	{
		struct curl_slist *h = NULL;

		h = curl_slist_append(h, "Content-Type: application/json");
		if (h)
			h = curl_slist_append(h, "User-Agent: gs_export/" GS_EXPORT_VERSION);
		if (h)
			h = curl_slist_append(h, "Expect:");
		if (h == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("gs_export could not make an alert's headers.")));
		headers = h;

		gs_curl_setopt(alert_handle, CURLOPT_URL, url);
		gs_remote_set_transport(alert_handle);
		gs_curl_setopt(alert_handle, CURLOPT_CONNECTTIMEOUT_MS, (long) GS_ALERT_CONNECT_TIMEOUT_MS);
		gs_curl_setopt(alert_handle, CURLOPT_TIMEOUT_MS, (long) GS_ALERT_TIMEOUT_MS);
		gs_curl_setopt(alert_handle, CURLOPT_HTTPHEADER, headers);
		gs_curl_setopt(alert_handle, CURLOPT_POST, 1L);
		gs_curl_setopt(alert_handle, CURLOPT_POSTFIELDS, document);
		gs_curl_setopt(alert_handle, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(document));
		gs_curl_setopt(alert_handle, CURLOPT_WRITEFUNCTION, gs_curl_keep_body);
		gs_curl_setopt(alert_handle, CURLOPT_WRITEDATA, &answer);
		gs_curl_setopt(alert_handle, CURLOPT_ERRORBUFFER, errbuf);
		/* one alert, one connection: none is kept for later */
		gs_curl_setopt(alert_handle, CURLOPT_FORBID_REUSE, 1L);

		for (attempt = 1; attempt <= GS_ALERT_ATTEMPTS; attempt++)
		{
			CURLcode	rc;
			long		status = 0;
			bool		again;

			resetStringInfo(&answer.buf);
			errbuf[0] = '\0';
			rc = (CURLcode) gs_remote_perform(alert_handle);
			if (rc == CURLE_OK)
			{
				curl_easy_getinfo(alert_handle, CURLINFO_RESPONSE_CODE, &status);
				if (status >= 200 && status < 300)
				{
					outcome = psprintf("sent (HTTP %ld)", status);
					break;
				}
				again = (status == 429 || status >= 500);
				outcome = psprintf("HTTP %ld%s%s%s", status,
								   answer.buf.len > 0 ? ": \"" : "",
								   answer.buf.len > 0 ?
								   one_line(answer.buf.data, GS_ALERT_BODY_EXCERPT, true) : "",
								   answer.buf.len > 0 ? "\"" : "");
			}
			else
			{
				curl_off_t	connected = 0;

				curl_easy_getinfo(alert_handle, CURLINFO_CONNECT_TIME_T, &connected);
				outcome = psprintf("%s%s%s", curl_easy_strerror(rc),
								   errbuf[0] ? ": " : "", errbuf);
				switch (rc)
				{
					case CURLE_COULDNT_RESOLVE_HOST:
					case CURLE_COULDNT_CONNECT:
					case CURLE_SEND_ERROR:
					case CURLE_RECV_ERROR:
					case CURLE_GOT_NOTHING:
					case CURLE_SSL_CONNECT_ERROR:
						again = true;
						break;
					case CURLE_OPERATION_TIMEDOUT:
						/* sent, maybe taken: not again */
						again = (connected == 0);
						break;
					default:
						/* certificates, protocol, out of memory: for good */
						again = false;
						break;
				}
			}
			if (!again)
				break;
			if (attempt < GS_ALERT_ATTEMPTS)
			{
				long		delay = (long) GS_ALERT_RETRY_DELAY_MS << (attempt - 1);

				/* jitter: somewhere between half and all of it */
				delay = (long) (delay * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state)));
				ereport(DEBUG1,
						(errmsg("gs_export: alert attempt %d failed: %s", attempt, outcome)));
				alert_sleep(delay);
			}
			else
				outcome = psprintf("%s, after %d attempts", outcome, attempt);
		}
	}
	PG_FINALLY();
	{
		/* nothing of this alert stays on the handle */
		(void) curl_easy_setopt(alert_handle, CURLOPT_HTTPHEADER, NULL);
		(void) curl_easy_setopt(alert_handle, CURLOPT_ERRORBUFFER, NULL);
		(void) curl_easy_setopt(alert_handle, CURLOPT_POSTFIELDS, NULL);
		(void) curl_easy_setopt(alert_handle, CURLOPT_WRITEDATA, NULL);
		curl_slist_free_all(headers);
	}
	PG_END_TRY();
	return outcome;
}

/*
 * Send the alert for one change of the job, if the config has an
 * alert_url.
 */
static void
send_alert(const pg_uuid_t *job_id, const char *status, const char *reason)
{
	AlertInfo	info;
	char	   *id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(job_id)));
	char	   *bad_url;
	char	   *document;
	char	   *outcome;

	if (!read_info(job_id, status, reason, &info) || info.alert_url == NULL)
		return;
	if (!info.is_current)
	{
		/* changed again since (or not by this worker): not this alert's to say */
		ereport(DEBUG1,
				(errmsg("gs_export: job %s is no longer %s; no alert", id_text, status)));
		return;
	}
	bad_url = gs_remote_check_alert_url(info.alert_url);
	if (bad_url != NULL)
	{
		ereport(LOG,
				(errmsg("gs_export: job %s %s, but no alert was sent: %s", id_text, status, bad_url),
				 errhint("Correct gestao_scouter_config.alert_url.")));
		return;
	}

	/* no key in what is sent, nor in what the webhook said (scrub.c) */
	document = gs_scrub_json(alert_document(id_text, &info, status));
	pgstat_report_activity(STATE_RUNNING, "gs_export: sending an alert");
	outcome = gs_scrub(post_alert(info.alert_url, document));
	pgstat_report_activity(STATE_IDLE, NULL);
	ereport(LOG,
			(errmsg("gs_export: job %s %s: alert to %s: %s", id_text, status,
					gs_remote_url_origin(info.alert_url), outcome)));
}

/*
 * The job changed to status (completed, failed, or paused by the remote's
 * trouble), with reason, and that committed: tell alert_url, if the config
 * has one.  Never throws (but a shutdown ends the process as anywhere):
 * whatever goes wrong costs the alert only, and is logged.
 */
void
gs_alert_job(const pg_uuid_t *job_id, const char *status, const char *reason)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	MemoryContext cxt;

	cxt = AllocSetContextCreate(TopMemoryContext, "gs_export alert", ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		send_alert(job_id, status, reason);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		/* the whole report (SQLSTATE, detail, context) goes to the log */
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		ereport(LOG,
				(errmsg("gs_export: job %s: no alert was sent",
						DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(job_id))))));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
}
