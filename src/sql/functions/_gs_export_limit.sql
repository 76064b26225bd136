/*
 * Internal: a limit or constant of gs_export's, by name, as the C code
 * defines it (src/gs_limits.h): the ranges of the whole-number options
 * ('batch_size.min', 'batch_size.max', 'delay_ms.min', 'delay_ms.max',
 * 'max_in_flight.min', 'max_in_flight.max', 'batch_size_max.min',
 * 'batch_size_max.max'), the default of batch_size_max
 * ('batch_size_max.default'), and the first key of the job's advisory lock
 * ('job_lock_key').  So that the SQL and the C agree: each is written once.
 */
CREATE OR REPLACE FUNCTION @extschema@._gs_export_limit(p_name text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'gs_export_limit'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
