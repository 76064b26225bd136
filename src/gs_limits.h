/*-------------------------------------------------------------------------
 *
 * gs_limits.h
 *	  The limits of a job's options and the extension's other fixed
 *	  numbers, defined once: the GUC bounds (gs_export.c) and the C that
 *	  sizes itself by them (GS_MAX_REQUESTS) use these names, and the SQL
 *	  side reads them through @extschema@._gs_export_limit(name)
 *	  (gs_export_limit, gs_export.c), which knows each by the name in the
 *	  comment beside it.  Changing one here changes it everywhere.
 *
 *-------------------------------------------------------------------------
 */
#ifndef GS_LIMITS_H
#define GS_LIMITS_H

/* Leads per request: option batch_size, GUC gs_export.batch_size. */
#define GS_BATCH_SIZE_MIN 1		/* 'batch_size.min' */
#define GS_BATCH_SIZE_MAX 10000	/* 'batch_size.max' */

/* Rest between two batches: option delay_ms, GUC gs_export.batch_delay_ms. */
#define GS_DELAY_MS_MIN 0		/* 'delay_ms.min' */
#define GS_DELAY_MS_MAX 60000	/* 'delay_ms.max' */

/* Requests at the remote at once: option max_in_flight. */
#define GS_MAX_IN_FLIGHT_MIN 1	/* 'max_in_flight.min' */
#define GS_MAX_IN_FLIGHT_MAX 16 /* 'max_in_flight.max' */

/* The most an adaptive pace grows a batch to: option batch_size_max. */
#define GS_BATCH_SIZE_MAX_MIN 1 /* 'batch_size_max.min' */
#define GS_BATCH_SIZE_MAX_MAX 10000 /* 'batch_size_max.max' */
#define GS_BATCH_SIZE_MAX_DEFAULT 5000	/* 'batch_size_max.default' (or
										 * batch_size, when larger) */

/*
 * The first key of the advisory locks on a job (the second is the hash of
 * its id): the worker's claim holds it for its session, a reset or a
 * delete waits for it.  'job_lock_key'.
 */
#define GS_JOB_LOCK_KEY 1735617912

#endif							/* GS_LIMITS_H */
