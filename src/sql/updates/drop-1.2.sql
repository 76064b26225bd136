/*
 * Functions whose result type changes in 1.2, which CREATE OR REPLACE
 * cannot do: the 1.1 function goes first, and its file below creates it
 * again.  _gs_job_claim returns the config's keys (secret_keys: the worker
 * keeps them out of every text it stores, logs or sends, src/scrub.c) and
 * doubt_until (the end of the latest quarantine of a request given up on,
 * _gs_job_doubt), and kind, on_delete and compare (1.2's job kinds).
 */
DROP FUNCTION IF EXISTS @extschema@._gs_job_claim(uuid);
-- gs_export_status gains kind, backlog, lag and deleted_leads (live sync)
DROP FUNCTION IF EXISTS @extschema@.gs_export_status(uuid);
DROP FUNCTION IF EXISTS @extschema@._gs_export_status(oid, uuid, boolean, uuid);
