/*
 * 1.2: a request given up on keeps its leads in doubt (issue 17).  The jobs
 * table gets doubt_until (as its file under tables/ adds it to a fresh
 * install), and _gs_job_claim returns it: a new OUT column, which CREATE
 * OR REPLACE cannot add, so the old function goes first.
 */
ALTER TABLE @extschema@.gestao_scouter_export_jobs
    ADD COLUMN IF NOT EXISTS doubt_until timestamptz;

DROP FUNCTION IF EXISTS @extschema@._gs_job_claim(uuid);
