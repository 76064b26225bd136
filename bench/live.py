"""bench/live.py -- the live profile of the benchmark (bench/run --live;
issue 18, item 7): gs_export_follow measured on the throwaway cluster of
bench/run, in one run.  Standard library + psycopg2; bench/bench.py calls
run_live() and prints what live_summary() returns.

In this order, on the same N leads (OPTIONS below, printed):
  A. capture cost, interleaved (the load of this shared machine drifts):
     an UPDATE of every lead without a follower (no capture trigger), then
     with one (created with backfill false, its backlog 0; it then sends
     them, and is deleted), VACUUM and CHECKPOINT before each, timed by the
     client; then single-row UPDATEs in autocommit, each timed by the
     client, without a follower, with one running and with it paused (its
     triggers capture while it is paused: the capture's own cost);
  B. batch export: gs_export_create over all the leads with OPTIONS (and
     delay_ms 0) into an emptied fichas, right after the burst's UPDATE
     (uncaptured: no follower then), so that it reads leads as the burst
     leaves them: its rate (once here, once at the end);
  C. the follower: gs_export_follow(OPTIONS) into an emptied fichas, its
     backfill waited for (backlog 0, the remote equal to the leads);
  D. latency: a driver commits single-lead UPDATEs at a steady rate (each
     sets name to a unique token and notes the client's clock when its
     COMMIT returned); a row trigger on the remote's fichas (created here,
     in the bench's remote database only) notes clock_timestamp() when a
     row carrying a token is upserted; same machine, same clock;
  E. burst (twice): fichas emptied, one UPDATE of every lead committed; the time
     from that COMMIT until the backlog is 0 (the job row's updated_at of
     the last record), then the remote checked equal to the leads;
  F. backlog in a table: the follower paused, UPDATEs of every lead until
     --live-changes changes wait, then resumed: the worker's memory
     (/proc/<pid>/status RssAnon and smaps_rollup's Private_Clean +
     Private_Dirty) every 100 ms during the drain;
then the follower is paused and deleted (its triggers must be gone), and
B runs again.
Benchmarks print figures: nothing here passes or fails on speed; a phase
that cannot run is reported and the next one runs.
"""

import json
import os
import random
import statistics
import threading
import time

import bench as B

# The options of the follower and of the batch export (plus delay_ms 0,
# which a follower refuses: it never waits between batches).
OPTIONS = {"batch_size": 1000, "max_in_flight": 4}
UPDATE_REPS = 5
SINGLE_UPDATES = 2000
SINGLE_REPS = 3
DRIVER_THREADS = 2
TOKEN = "live-"
SAMPLE_S = 0.1
# The burst (twice), and before each batch export (at the start and at the
# end) the same UPDATE uncaptured: both read leads as one UPDATE of every
# lead leaves it.
BURST_UPDATE = "UPDATE leads SET date_modify = date_modify + interval '1 second'"
BURSTS = 2


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def pct(xs, p):
    """The p-th percentile (nearest rank) of xs."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def private_kb(pid):
    """(RssAnon, Private_Clean + Private_Dirty) of a process in kB, or None."""
    st = B.proc_status(pid)
    if not st:
        return None
    priv = 0
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Private_Clean", "Private_Dirty"):
                    priv += int(v.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return st.get("RssAnon", 0), priv


def cpu_ms(pid):
    """User + system CPU time of a process so far, in ms (None if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


class Live:
    def __init__(self, local, remote, si, a, newest, oldest, n):
        self.local, self.remote, self.si, self.a = local, remote, si, a
        self.newest, self.oldest, self.n = newest, oldest, n
        self.job = None
        self.ids = [r[0] for r in B.rows(local, "SELECT id FROM leads ORDER BY id")]

    # -- the follower -------------------------------------------------------

    def state(self):
        return B.one(self.local, """SELECT j.status, j.pass_kind, j.pause_reason,
                                           (SELECT COALESCE(sum(cardinality(c.ids)), 0)
                                              FROM gs_export_changes c WHERE c.job_id = j.id),
                                           EXTRACT(epoch FROM j.updated_at)::float8
                                      FROM gestao_scouter_export_jobs j WHERE j.id = %s""",
                     (self.job,))

    def wait_drained(self, timeout_s, poll_s=0.05, sample=None):
        """Until the follower's backlog is 0 (and its backfill done); returns
        the job's updated_at then (the last record's), as epoch seconds."""
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.state()
            if st[0] not in ("pending", "running"):
                raise RuntimeError("follower is %s: %s" % (st[0], st[2]))
            if st[1] == "follow" and st[3] == 0:
                return st[4]
            if time.monotonic() > deadline:
                raise RuntimeError("follower still has %d changes waiting (%s) after %d s"
                                   % (st[3], st[1], timeout_s))
            if sample:
                sample()
            time.sleep(poll_s)

    def worker_pid(self, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            p = B.one(self.local, "SELECT pid FROM pg_stat_activity"
                                  " WHERE backend_type = 'gs_export job worker'")
            if p:
                return p[0]
            time.sleep(0.02)
        return None

    def pause(self):
        B.run_sql(self.local, "SELECT gs_export_pause(%s::uuid, 'bench: live profile')", (self.job,))
        deadline = time.monotonic() + 60
        while B.one(self.local, "SELECT count(*) FROM pg_stat_activity"
                                " WHERE backend_type = 'gs_export job worker'")[0]:
            if time.monotonic() > deadline:
                raise RuntimeError("the follower's worker did not stop in 60 s")
            time.sleep(0.05)

    def resume(self):
        B.run_sql(self.local, "SELECT gs_export_resume(%s::uuid)", (self.job,))

    def work_since(self, since, pid, cpu0):
        """The follower's record since the epoch `since`: (batches recorded,
        leads in them), and its worker's CPU ms since cpu0."""
        b, n = B.one(self.local, """SELECT count(DISTINCT created_at), count(*) FROM sync_events
                                     WHERE job_id = %s AND created_at >= to_timestamp(%s)""",
                     (self.job, since))
        c = cpu_ms(pid) if pid else None
        return {"batches": b, "leads": n,
                "cpu_ms": (c - cpu0) if c is not None and cpu0 is not None else None}

    def equal(self):
        src, dst = B.checksum(self.local), B.checksum(self.remote)
        return src == dst, src, dst

    # -- capture cost -------------------------------------------------------

    def update_all(self, sql="UPDATE leads SET etapa = etapa"):
        B.run_sql(self.local, "VACUUM leads")
        B.run_sql(self.local, "CHECKPOINT")
        t = time.monotonic()
        B.run_sql(self.local, sql)
        return time.monotonic() - t

    def singles(self, seed):
        """SINGLE_UPDATES single-row UPDATEs in autocommit, each timed (ms)."""
        rnd = random.Random(seed)
        ids = rnd.sample(self.ids, min(SINGLE_UPDATES, len(self.ids)))
        out = []
        with self.local.cursor() as cur:
            for i, lid in enumerate(ids):
                t = time.perf_counter()
                cur.execute("UPDATE leads SET name = %s WHERE id = %s",
                            ("single-%d-%d" % (seed, i), lid))
                out.append((time.perf_counter() - t) * 1000.0)
        return out

    def follow(self, backfill, timeout_s=600):
        """A follower with OPTIONS (and backfill); back when its worker runs
        (and, with a backfill, when that is done and the backlog 0)."""
        self.job = B.one(self.local, "SELECT gs_export_follow(%s::jsonb)",
                         (json.dumps(dict(OPTIONS, backfill=backfill)),))[0]
        self.wait_drained(timeout_s)
        return self.worker_pid()

    def unfollow(self):
        """Pause and delete the follower; its capture triggers must be gone."""
        st = self.state()
        if st is not None and st[0] in ("pending", "running"):
            self.pause()
        B.run_sql(self.local, "SELECT gs_export_delete(%s::uuid)", (self.job,))
        left = B.one(self.local, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'leads'::regclass"
                                 " AND tgname LIKE 'gs_export_follow_%'")[0]
        if left:
            raise RuntimeError("%d capture triggers left after gs_export_delete" % left)
        self.job = None

    def capture(self):
        """The capture's cost, without and with a follower, interleaved (the
        load of this shared machine drifts): UPDATE_REPS times an UPDATE of
        every lead without a follower, then with one (created with backfill
        false, its backlog 0), which then sends them and is deleted; then
        SINGLE_REPS times SINGLE_UPDATES single-row UPDATEs without, with a
        follower running, and with it paused (its triggers capture while it
        is paused: the capture's own cost)."""
        res = {"without": [], "with": [], "singles": {"": [], "running": [], "paused": []},
               "work": []}
        self.update_all()           # not counted: the first one extends the table
        for rep in range(UPDATE_REPS):
            res["without"].append(self.update_all())
            self.follow(False)
            res["with"].append(self.update_all())
            self.wait_drained(600)
            self.unfollow()
            B.log("   UPDATE of %d leads, run %d: without %.2f s, with a follower %.2f s (load %s)"
                  % (self.n, rep + 1, res["without"][-1], res["with"][-1], loadavg()))
        for rep in range(SINGLE_REPS):
            B.run_sql(self.local, "VACUUM leads")
            ms = self.singles(seed=10 * rep)
            res["singles"][""].append((statistics.median(ms), pct(ms, 90), pct(ms, 99)))
            pid = self.follow(False)
            t_since, cpu0 = time.time(), (cpu_ms(pid) if pid else None)
            ms = self.singles(seed=10 * rep + 1)
            res["singles"]["running"].append((statistics.median(ms), pct(ms, 90), pct(ms, 99)))
            self.wait_drained(600)
            wk = self.work_since(t_since, pid, cpu0)
            res["work"].append(wk)
            self.pause()
            ms = self.singles(seed=10 * rep + 2)
            res["singles"]["paused"].append((statistics.median(ms), pct(ms, 90), pct(ms, 99)))
            self.unfollow()
            B.log("   %d single-row UPDATEs, run %d, median (p90) ms: without %.3f (%.3f), follower"
                  " running %.3f (%.3f), paused %.3f (%.3f); running, the follower sent them in"
                  " %d batches, its worker used %s ms of CPU (load %s)"
                  % (SINGLE_UPDATES, rep + 1, res["singles"][""][-1][0], res["singles"][""][-1][1],
                     res["singles"]["running"][-1][0], res["singles"]["running"][-1][1],
                     res["singles"]["paused"][-1][0], res["singles"]["paused"][-1][1],
                     wk["batches"], "%.0f" % wk["cpu_ms"] if wk["cpu_ms"] is not None else "?",
                     loadavg()))
        return res

    # -- latency ------------------------------------------------------------

    def latency(self, seconds, rate):
        run = B.run_sql
        run(self.remote, "DROP TABLE IF EXISTS bench_arrivals")
        run(self.remote, "CREATE TABLE bench_arrivals (name text, at timestamptz)")
        run(self.remote, """CREATE OR REPLACE FUNCTION bench_arrival() RETURNS trigger
                            LANGUAGE plpgsql AS $$
                            BEGIN
                                INSERT INTO bench_arrivals VALUES (NEW.name, clock_timestamp());
                                RETURN NULL;
                            END $$""")
        run(self.remote, "CREATE TRIGGER bench_arrival AFTER INSERT OR UPDATE ON fichas"
                         " FOR EACH ROW WHEN (NEW.name LIKE '" + TOKEN + "%')"
                         " EXECUTE FUNCTION bench_arrival()")
        total = int(seconds * rate)
        ids = random.Random(18).sample(self.ids, min(total, len(self.ids)))
        total = len(ids)
        commits = [None] * total
        late = [0.0] * total
        errors = []
        t0 = time.time() + 0.5

        def driver(k):
            conn = B.connect(self.a.local_dsn)
            try:
                with conn.cursor() as cur:
                    for i in range(k, total, DRIVER_THREADS):
                        at = t0 + i / float(rate)
                        d = at - time.time()
                        if d > 0:
                            time.sleep(d)
                        late[i] = max(0.0, time.time() - at)
                        cur.execute("UPDATE leads SET name = %s WHERE id = %s",
                                    (TOKEN + str(i), ids[i]))
                        commits[i] = time.time()
            except Exception as e:
                errors.append(B.error_text(e))
            finally:
                conn.close()

        pid = self.worker_pid()
        t_since, cpu0 = time.time(), (cpu_ms(pid) if pid else None)
        mem = []
        backlog_max = 0
        threads = [threading.Thread(target=driver, args=(k,), daemon=True)
                   for k in range(DRIVER_THREADS)]
        load0 = loadavg()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            st = self.state()
            backlog_max = max(backlog_max, st[3])
            if pid:
                m = private_kb(pid)
                if m:
                    mem.append(m)
            time.sleep(0.2)
        for t in threads:
            t.join()
        t_end = time.time()
        load1 = loadavg()
        # the last ones: until all arrived, 10 s at most
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = B.one(self.remote, "SELECT count(DISTINCT name) FROM bench_arrivals")[0]
            if got >= sum(1 for c in commits if c is not None):
                break
            time.sleep(0.05)
        arrived = dict(B.rows(self.remote, "SELECT name, EXTRACT(epoch FROM min(at))::float8"
                                           " FROM bench_arrivals GROUP BY name"))
        lat = []
        missing = []
        for i, c in enumerate(commits):
            if c is None:
                continue
            at = arrived.get(TOKEN + str(i))
            if at is None:
                missing.append(i)
            else:
                lat.append((at - c) * 1000.0)
        # what became of the tokens that did not arrive: the remote's row,
        # the lead, the follower's events of it
        why = []
        for i in missing[:5]:
            lid = ids[i]
            rem = B.one(self.remote, "SELECT name FROM fichas WHERE id = %s", (lid,))
            loc = B.one(self.local, "SELECT name FROM leads WHERE id = %s", (lid,))
            ev = B.rows(self.local, "SELECT event_type, status, to_char(created_at, 'HH24:MI:SS.MS')"
                                    " FROM sync_events WHERE job_id = %s AND lead_id = %s"
                                    " ORDER BY created_at", (self.job, lid))
            why.append("token %d, lead %d: committed %s, remote name %r, lead name %r, events %s"
                       % (i, lid, time.strftime("%H:%M:%S", time.gmtime(commits[i]))
                          + ".%03d" % int(commits[i] % 1 * 1000),
                          rem[0] if rem else None, loc[0] if loc else None, ev))
        for line in why:
            B.log("   not arrived: " + line)
        work = self.work_since(t_since, pid, cpu0)
        run(self.remote, "DROP TRIGGER bench_arrival ON fichas")
        run(self.remote, "DROP FUNCTION bench_arrival()")
        run(self.remote, "DROP TABLE bench_arrivals")
        missing = len(missing)
        done = sum(1 for c in commits if c is not None)
        span = (max(c for c in commits if c) - t0) if done else float("nan")
        r = {"wanted_rate": rate, "seconds": seconds, "commits": done,
             "achieved_rate": done / span if span and span > 0 else float("nan"),
             "late_max_ms": 1000.0 * max(late), "late_p99_ms": 1000.0 * pct(late, 99),
             "missing": missing, "errors": errors[:3], "backlog_max": backlog_max,
             "n": len(lat), "load_before": load0, "load_after": load1,
             "mem": mem, "driver_s": t_end - t0, "work": work}
        if lat:
            r.update({"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
                      "max": max(lat), "min": min(lat), "mean": statistics.mean(lat)})
        return r

    # -- the 1M backlog ------------------------------------------------------

    def backlog_memory(self, changes, drain_max_s):
        self.wait_drained(600)
        self.pause()
        reps = max(1, -(-changes // self.n))
        stmt_s = []
        for k in range(reps):
            t = time.monotonic()
            B.run_sql(self.local, "UPDATE leads SET date_modify = date_modify"
                                  " + interval '1 second'")
            stmt_s.append(time.monotonic() - t)
            B.run_sql(self.local, "VACUUM leads")
        waiting, rows_, size = B.one(self.local, """
            SELECT COALESCE(sum(cardinality(ids)), 0), count(*),
                   pg_size_pretty(pg_total_relation_size('gs_export_changes'))
              FROM gs_export_changes WHERE job_id = %s""", (self.job,))
        B.log("   %d UPDATEs of every lead with the follower paused (%s s each): %d changes wait"
              " in %d rows of gs_export_changes (%s)"
              % (reps, ", ".join("%.2f" % x for x in stmt_s), waiting, rows_, size))
        load0 = loadavg()
        t0 = time.monotonic()
        self.resume()
        pid = self.worker_pid()
        series = []         # (s, RssAnon, private, backlog)
        last_backlog = [waiting]
        last_poll = [0.0]

        def sample():
            now = time.monotonic() - t0
            if now - last_poll[0] >= 1.0:
                last_poll[0] = now
                last_backlog[0] = self.state()[3]
            m = private_kb(pid) if pid else None
            if m:
                series.append((now, m[0], m[1], last_backlog[0]))

        err = None
        try:
            self.wait_drained(drain_max_s, poll_s=SAMPLE_S, sample=sample)
        except RuntimeError as e:
            err = str(e)
        secs = time.monotonic() - t0
        eq = self.equal()[0] if err is None else None
        return {"changes": waiting, "rows": rows_, "size": size, "stmt_s": stmt_s,
                "secs": secs, "rate": waiting / secs if err is None else None,
                "series": series, "pid": pid, "error": err, "equal": eq,
                "load_before": load0, "load_after": loadavg()}


def run_live(local, remote, si, a, newest, oldest, n):
    """Every phase of the live profile; returns what live_summary prints."""
    L = Live(local, remote, si, a, newest, oldest, n)
    out = {"n": n, "options": OPTIONS, "load_start": loadavg()}

    def phase(name, fn):
        try:
            out[name] = fn()
        except Exception as e:          # the bench's own trouble: say it, go on
            out[name] = {"error": B.error_text(e)}
            B.log("   FAILED: %s" % out[name]["error"])

    B.log("== live A. capture cost: UPDATEs without a follower and with one, interleaved (load %s)"
          % loadavg())

    def capture():
        try:
            return L.capture()
        finally:
            if L.job is not None:       # a run that failed: leave no follower behind
                try:
                    L.unfollow()
                except Exception as e:
                    B.log("   (could not delete follower %s: %s)" % (L.job, B.error_text(e)))
    phase("capture", capture)

    batch_opts = dict(OPTIONS, delay_ms=0)
    B.log("== live B. batch export: gs_export_create('%s', '%s', '%s') (load %s)"
          % (newest, oldest, json.dumps(batch_opts), loadavg()))

    def batch():
        # the table as the burst leaves it: one UPDATE of every lead just
        # committed (its old versions not yet vacuumed), here uncaptured
        B.fresh_remote(remote, local)
        B.run_sql(local, "VACUUM leads")
        B.run_sql(local, BURST_UPDATE)
        r = B.run_job(local, newest, oldest, batch_opts, timeout_s=max(900, n / 20))
        r["equal"] = L.equal()[0]
        B.log("   %d leads in %.2f s (started to completed): %.0f leads/s; created to completed"
              " %.2f s; remote equal: %s" % (r["leads"], r["secs"], r["rate"],
                                            r["create_to_completed"], r["equal"]))
        return r
    phase("batch", batch)
    out["batches"] = [out["batch"]]

    B.log("== live C. gs_export_follow('%s'): backfill (load %s)" % (json.dumps(OPTIONS), loadavg()))

    def follow():
        B.fresh_remote(remote, local)
        t = time.monotonic()
        L.follow(True, max(900, n / 20))
        secs = time.monotonic() - t
        eq = L.equal()[0]
        B.log("   follower %s: backfill of %d leads in %.2f s (%.0f leads/s, call to backlog 0);"
              " remote equal: %s" % (L.job, n, secs, n / secs, eq))
        return {"job": L.job, "secs": secs, "rate": n / secs, "equal": eq}
    phase("follow", follow)
    if L.job is None:
        out["load_end"] = loadavg()
        return out

    B.log("== live D. latency: %d single-lead UPDATEs a second for %d s (%d driver threads),"
          " the follower running (load %s)" % (a.live_rate, a.live_seconds, DRIVER_THREADS,
                                               loadavg()))

    def latency():
        L.wait_drained(600)
        r = L.latency(a.live_seconds, a.live_rate)
        if "p50" in r:
            B.log("   %d commits at %.1f/s: COMMIT to remote p50 %.1f ms, p90 %.1f, p99 %.1f,"
                  " max %.1f (min %.1f); %d never arrived; backlog at most %d; load %s -> %s"
                  % (r["commits"], r["achieved_rate"], r["p50"], r["p90"], r["p99"], r["max"],
                     r["min"], r["missing"], r["backlog_max"], r["load_before"],
                     r["load_after"]))
            wk = r["work"]
            B.log("   the follower sent them in %d batches (%.1f leads each); its worker used %s ms"
                  " of CPU" % (wk["batches"], wk["leads"] / max(wk["batches"], 1),
                               "%.0f" % wk["cpu_ms"] if wk["cpu_ms"] is not None else "?"))
        else:
            B.log("   no figure: %d commits, %d arrived; errors %s"
                  % (r["commits"], r["n"], r["errors"]))
        return r
    phase("latency", latency)

    B.log("== live E. burst: one UPDATE of %d leads committed, drained by the follower into an"
          " emptied fichas (load %s)" % (n, loadavg()))

    def burst():
        L.wait_drained(600)
        B.fresh_remote(remote, local)
        B.run_sql(local, "VACUUM leads")
        t = time.monotonic()
        B.run_sql(local, BURST_UPDATE)
        t_commit = time.time()
        stmt = time.monotonic() - t
        last = L.wait_drained(max(900, n / 20))
        seen = time.time()
        secs = last - t_commit
        eq = L.equal()[0]
        B.log("   UPDATE %.2f s; COMMIT to backlog 0: %.2f s (the last record), %.2f s (seen by"
              " polling): %.0f leads/s; remote equal: %s"
              % (stmt, secs, seen - t_commit, n / secs, eq))
        return {"stmt_s": stmt, "secs": secs, "polled_s": seen - t_commit, "rate": n / secs,
                "equal": eq}
    out["bursts"] = []
    for k in range(BURSTS):
        phase("burst", burst)
        out["bursts"].append(out["burst"])

    B.log("== live F. backlog: %d changes waiting, then drained; the worker's memory (load %s)"
          % (a.live_changes, loadavg()))

    def memory():
        r = L.backlog_memory(a.live_changes, a.live_drain_max)
        s = r["series"]
        if s:
            B.log("   drained in %.1f s (%s leads/s); worker pid %s, %d samples: private"
                  " (smaps_rollup) start %d kB, peak %d kB, end %d kB; RssAnon start %d, peak %d,"
                  " end %d kB; remote equal: %s%s"
                  % (r["secs"], "%.0f" % r["rate"] if r["rate"] else "-", r["pid"], len(s),
                     s[0][2], max(x[2] for x in s), s[-1][2], s[0][1], max(x[1] for x in s),
                     s[-1][1], r["equal"], "" if not r["error"] else "; " + r["error"]))
        else:
            B.log("   no memory samples (pid %s)%s" % (r["pid"], "; " + r["error"] if r["error"] else ""))
        return r
    phase("memory", memory)

    B.log("== live: the follower paused and deleted (load %s)" % loadavg())
    phase("cleanup", L.unfollow)
    B.log("== live B again. the batch export once more, the follower gone (load %s)" % loadavg())
    phase("batch", batch)
    out["batches"].append(out["batch"])
    out["load_end"] = loadavg()
    return out


def _med(xs):
    return statistics.median(xs) if xs else float("nan")


def live_summary(out):
    lines = []
    w = lines.append
    w("LIVE profile: gs_export_follow with %s; the batch export with the same plus delay_ms 0;"
      " N = %d leads" % (json.dumps(out["options"]), out["n"]))
    w("load average: at the start %s, at the end %s (2 cores, shared)"
      % (out["load_start"], out.get("load_end", "?")))
    w("")
    lt = out.get("latency") or {}
    if "p50" in lt:
        w("1. COMMIT -> row at the remote, %d single-lead UPDATEs at %.1f/s (asked %d/s) for %d s,"
          " follower running:" % (lt["commits"], lt["achieved_rate"], lt["wanted_rate"],
                                  lt["seconds"]))
        w("   p50 %.1f ms   p90 %.1f ms   p99 %.1f ms   max %.1f ms   (mean %.1f; %d measured,"
          " %d never arrived)" % (lt["p50"], lt["p90"], lt["p99"], lt["max"], lt["mean"],
                                   lt["n"], lt["missing"]))
        w("   goal: p50 <= 100 ms, p99 <= 500 ms; the driver was late on its schedule by at most"
          " %.1f ms (p99 %.1f); backlog at most %d; load %s -> %s"
          % (lt["late_max_ms"], lt["late_p99_ms"], lt["backlog_max"], lt["load_before"],
             lt["load_after"]))
        wk = lt["work"]
        w("   the follower recorded %d batches (%.1f leads each); its worker used %s ms of CPU"
          " (%s a second)" % (wk["batches"], wk["leads"] / max(wk["batches"], 1),
                              "%.0f" % wk["cpu_ms"] if wk["cpu_ms"] is not None else "?",
                              "%.0f ms" % (wk["cpu_ms"] / lt["driver_s"])
                              if wk["cpu_ms"] is not None else "?"))
    else:
        w("1. latency: no figure (%s)" % (lt.get("error") or lt.get("errors")))
    bs = [x for x in out.get("batches", []) if x and "rate" in x]
    us = [x for x in out.get("bursts", []) if x and "rate" in x]
    if bs and us:
        fr, br = _med([x["rate"] for x in us]), _med([x["rate"] for x in bs])
        w("2. %d changed leads (one UPDATE of every lead), into an emptied fichas: the follower,"
          " COMMIT -> backlog 0: %s s = %s leads/s (remote equal: %s)"
          % (out["n"], " ".join("%.2f" % x["secs"] for x in us),
             " ".join("%.0f" % x["rate"] for x in us), " ".join(str(x["equal"]) for x in us)))
        w("   the batch export (after the same UPDATE, uncaptured), started -> completed: %s s = %s"
          " leads/s (created -> completed %s s; at the start and at the end of the run)"
          % (" ".join("%.2f" % x["secs"] for x in bs), " ".join("%.0f" % x["rate"] for x in bs),
             " ".join("%.2f" % x["create_to_completed"] for x in bs)))
        w("   follower / batch (medians): %.0f / %.0f = %.2f (goal >= 0.9); the burst's UPDATE took"
          " %s s with capture" % (fr, br, fr / br, " ".join("%.2f" % x["stmt_s"] for x in us)))
    else:
        w("2. burst against batch: no figure (%s)"
          % ([x.get("error") for x in out.get("bursts", []) + out.get("batches", []) if x]))
    f = out.get("follow") or {}
    if "rate" in f:
        w("   (the follower's backfill: %d leads in %.2f s, %.0f leads/s)"
          % (out["n"], f["secs"], f["rate"]))
    c = out.get("capture") or {}
    if "with" in c and c["with"]:
        w("3. UPDATE of %d leads (autocommit, after VACUUM and CHECKPOINT), %d runs interleaved:"
          " without a follower %.2f s (median of %s), with one %.2f s (median of %s): %.2f x"
          " (goal <= 1.5)" % (out["n"], len(c["with"]), _med(c["without"]),
                              " ".join("%.2f" % x for x in c["without"]), _med(c["with"]),
                              " ".join("%.2f" % x for x in c["with"]),
                              _med(c["with"]) / _med(c["without"])))
        sb = [m_[0] for m_ in c["singles"][""]]
        w("   single-row UPDATE (%d a run, autocommit, client-timed), median of %d runs' medians:"
          " without %.3f ms" % (SINGLE_UPDATES, len(sb), _med(sb)))
        for k in ("paused", "running"):
            sw = [m_[0] for m_ in c["singles"][k]]
            if sw:
                w("   with the follower %-8s %.3f ms: %+.3f ms (goal <= +0.2; p90 by run: %s)"
                  % (k, _med(sw), _med(sw) - _med(sb),
                     " ".join("%.2f" % m_[1] for m_ in c["singles"][k])))
        wk = c.get("work") or []
        if wk:
            nl = sum(x["leads"] for x in wk)
            nb = sum(x["batches"] for x in wk)
            cpu = [x["cpu_ms"] for x in wk if x["cpu_ms"] is not None]
            w("   (running, the follower sent the %d changes in %d batches, %.1f leads each, its"
              " worker using %s ms of CPU a lead; the stand-in and the remote database work on"
              " the same 2 cores)" % (nl, nb, nl / max(nb, 1),
                                      "%.2f" % (sum(cpu) / max(nl, 1)) if cpu else "?"))
    else:
        w("3. capture cost: no figure (%s)" % c.get("error"))
    m = out.get("memory") or {}
    s = m.get("series") or []
    if s:
        half = max(1, len(s) // 2)
        w("4. %d changes waiting (%d rows of gs_export_changes, %s), drained in %.1f s (%s"
          " leads/s); remote equal: %s" % (m["changes"], m["rows"], m["size"], m["secs"],
                                           "%.0f" % m["rate"] if m["rate"] else "-", m["equal"]))
        w("   worker memory during the drain (%d samples, every 100 ms): private (smaps_rollup"
          " Private_Clean+Private_Dirty) start %d kB, peak %d kB, end %d kB; first half peak %d,"
          " second half peak %d" % (len(s), s[0][2], max(x[2] for x in s), s[-1][2],
                                     max(x[2] for x in s[:half]), max(x[2] for x in s[half:])))
        w("   RssAnon start %d kB, peak %d kB, end %d kB (goal: flat)"
          % (s[0][1], max(x[1] for x in s), s[-1][1]))
        if m.get("error"):
            w("   " + m["error"])
    else:
        w("4. backlog memory: no figure (%s)" % (m.get("error")))
    return lines
