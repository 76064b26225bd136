"""bench/verify.py -- the proof profile of the benchmark (bench/run --verify;
issue 19, item 7): gs_export_verify over every lead, by version and by
content, against exporting the same leads, in one run.  Standard library +
psycopg2; bench/bench.py calls run_verify() and prints verify_summary().

The remote's fichas is emptied, then one export job sends every lead
({"batch_size": 1000, "delay_ms": 0, "max_in_flight": 4}); then a verify by
version and a verify by content (pages of 1000 rows: PostgREST's usual
max-rows) compare the remote with the leads.  Each time is the job row's
started_at to completed_at; the job worker's memory (/proc/<pid>/status)
is sampled every 100 ms, its RssAnon at the start and at the end of the
walk tell whether it stays flat.  The leads the export did not send (those
whose updated_at is NULL: an export takes days) are what the verifies find
missing; anything else found would be a fault.  Benchmarks print: nothing
here passes or fails on speed.
"""

import json
import time

import bench as B

EXPORT = {"batch_size": 1000, "delay_ms": 0, "max_in_flight": 4}
POLL_S = 0.1


def run_verify_job(local, options, timeout_s):
    job = B.one(local, "SELECT gs_export_verify(%s::jsonb)", (json.dumps(options),))[0]
    mem = {"pid": None, "rss_anon": [], "VmHWM": 0}
    t0 = time.monotonic()
    while True:
        r = B.one(local, """SELECT status, total_leads, pause_reason,
                                   EXTRACT(epoch FROM completed_at - started_at)::float8
                              FROM gestao_scouter_export_jobs WHERE id = %s""", (job,))
        if r[0] == "running":
            if mem["pid"] is None:
                p = B.one(local, """SELECT pid FROM pg_stat_activity
                                     WHERE backend_type = 'gs_export job worker'""")
                if p:
                    mem["pid"] = p[0]
            if mem["pid"] is not None:
                s = B.proc_status(mem["pid"])
                if s:
                    mem["rss_anon"].append(s.get("RssAnon", 0))
                    mem["VmHWM"] = max(mem["VmHWM"], s.get("VmHWM", 0))
        if r[0] in ("completed", "failed", "paused"):
            break
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError("verify %s still %s after %d s" % (job, r[0], timeout_s))
        time.sleep(POLL_S)
    if r[0] != "completed":
        raise RuntimeError("verify %s ended %s: %s" % (job, r[0], r[2]))
    kinds = dict(B.rows(local, """SELECT kind, count(*) FROM gestao_scouter_export_diffs
                                   WHERE job_id = %s GROUP BY kind""", (job,)))
    return {"job": job, "leads": r[1], "secs": r[3], "kinds": kinds, "mem": mem}


def run_verify(local, remote, si, a, newest, oldest):
    B.log("== verify profile: export every lead, then verify by version and by content")
    B.fresh_remote(remote, local)
    exp = B.run_job(local, newest, None, EXPORT, timeout_s=1800, sample_memory=True)
    B.log("   export: %d leads in %.2f s" % (exp["leads"], exp["secs"]))
    out = {"export": exp, "null_updated_at": B.one(
        local, "SELECT count(*) FROM leads WHERE updated_at IS NULL")[0]}
    for compare in ("version", "content"):
        B.run_sql(local, "CHECKPOINT")
        r = run_verify_job(local, {"compare": compare, "batch_size": 1000}, timeout_s=1800)
        B.log("   verify by %s: %d leads in %.2f s, found %s"
              % (compare, r["leads"], r["secs"], r["kinds"] or "nothing"))
        out[compare] = r
    return out


def verify_summary(out):
    lines = []
    w = lines.append
    exp = out["export"]
    w("%-22s %10s %10s %8s %14s %s" % ("run", "leads", "seconds", "/export", "RssAnon kB",
                                        "found"))
    w("%-22s %10s %10s %8s %14s %s" % ("-" * 22, "-" * 10, "-" * 10, "-" * 8, "-" * 14, "-" * 20))
    w("%-22s %10d %10.2f %8s %14s %s" % ("export", exp["leads"], exp["secs"], "1.00",
                                         "max %d" % exp["mem"]["RssAnon"], ""))
    for compare in ("version", "content"):
        r = out[compare]
        rss = r["mem"]["rss_anon"]
        w("%-22s %10d %10.2f %8.2f %14s %s"
          % ("verify by " + compare, r["leads"], r["secs"], r["secs"] / exp["secs"],
             "%d -> %d (max %d)" % (rss[0], rss[-1], max(rss)) if rss else "-",
             ", ".join("%s %d" % kv for kv in sorted(r["kinds"].items())) or "nothing"))
    w("(leads with updated_at NULL, which an export by days does not send and a verify"
      " finds missing: %d)" % out["null_updated_at"])
    w("goals (issue 19): verify by version <= 0.5 x the export; by content <= 1.5 x;"
      " the worker's memory flat")
    return lines
