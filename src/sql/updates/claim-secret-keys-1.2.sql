/*
 * _gs_job_claim returns one more column in 1.2 (secret_keys: the keys the
 * worker scrubs from what it stores, logs and sends), which CREATE OR
 * REPLACE cannot add: the 1.1 function goes first.
 */
DROP FUNCTION @extschema@._gs_job_claim(uuid);
