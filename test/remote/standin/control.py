"""The control interface tests and the TAP harness use: /_control/ on
the main port and on a control port that stays up while the main one is
"down"; it sets faults, reads statistics and the request log, reloads the
schema cache, takes the main port down and up.

CONTROL API (all JSON):
  POST /_control/reset          clear faults, statistics and the request log
  POST /_control/faults         set any of:
     {"fail_next": N, "status": 503, "body": {...}|"raw text"|null,
      "retry_after": "2"|null, "headers": {"X": "y"},
      "method": "DELETE"|null}            only requests of that method take
                                           it (and count down); null: any
     {"delay_ms": X}                       every /rest/v1 answer waits X ms
                                           (a WAN's round trip; gateway.py)
     {"delay_next": N, "delay_ms": X}      only the next N requests wait
     {"drop_next": N}                      read the request, close, no answer
     {"drop_after_commit_next": N}         process (commit) then close
     {"drop_with_reset": true}             drops send a TCP RST, not a FIN
     {"down_for_ms": X} / {"down": true|false}   main port closed (refused)
     {"gateway_timeout_over_ms": X|null}   answers 544 past X ms
     {"paused_project": true|false}        every /rest/v1 request answers 540
     {"statement_timeout_ms": X|null}      SET LOCAL statement_timeout
     {"keep_bodies": true|false}           keep request bodies in the log
     {"max_concurrent": N|null}            a rate-limiting gateway: a request
                                           arriving while N are being
                                           processed is answered 429
     {"max_concurrent_retry_after": "1"|null}   its Retry-After (seconds;
                                           default "1", null: no header)
     the chaos profile (gateway.py):
     {"delay_max_ms": X|null}              each delay uniform in
                                           [delay_ms, X] (a noisy latency)
     {"fault_rate": 0.13}                  that share of requests fails with
                                           a transient fault drawn from
     {"fault_mix": ["429","503","reset"]}  these kinds (default: all three)
     {"fault_retry_after": "1"|null}       the Retry-After of those 429s
     {"burst_after_ms": T, "burst_for_ms": N}   every request fails for N ms
                                           from T ms after this call
                                           (N 0 or T null: no burst)
     {"burst_fault": "503"}                what a burst's requests meet
                                           (a fault_mix kind; default 503)
     {"chaos_seed": S|null}                seed the chaos draws (null: not)
  GET  /_control/faults         the current fault state
  POST /_control/reload_schema  re-read the schema cache (every relation):
                                {"ok", "table", "columns", "pk" (of fichas),
                                 "tables": {name: {"schema", "kind",
                                                   "columns", "pk"}}}
  GET  /_control/stats[?table=NAME]     {"requests", "rows", "by_status"},
                                of every request or of those whose path
                                named table NAME; without table=, also
                                "rate_limited" (the max_concurrent gateway's
                                429s), "max_concurrent_seen" (the most
                                /rest/v1 requests at once, refused ones
                                included), "chaos_faults" and
                                "burst_faults" (the chaos profile's)
  GET  /_control/requests[?since=SEQ][&table=NAME]   the request log
  POST /_control/realtime       {"enabled": true|false}: API mode's Realtime
                                (realtime.py) on or off (off: the websocket
                                route answers 404, open sockets are closed)
  GET  /_control/realtime       {"enabled", "sockets", "channels", "listening"}
  GET  /_control/health         {"ok": true, "port", "control_port", "down"}

What the log and statistics hold:
  * "rows" in stats counts the rows of 2xx upserts (a drop_after_commit
    counts: it was committed); dropped requests are "dropped" in by_status
    and have "status": null and "would_status" in the log.  reset also
    clears the log and restarts seq at 1, and rate_limited and
    max_concurrent_seen (to the requests in process at that instant); settings
    given on the command line (delay, pause, gateway timeout, statement
    timeout, max_concurrent and its Retry-After) survive a reset.
  * "n_rows" and "ids" in the log are the body's objects and their "id"
    values (null, null for a body that is not JSON).  A body sent with
    `columns` (as gs_export sends every batch) is not parsed, as PostgREST
    does not parse it: when its upsert succeeds they are the RETURNING id of
    that upsert, which lists the body's rows as long as the schema cache
    knows of no rule and no BEFORE / INSTEAD OF row trigger on the table
    and resolution is not ignore-duplicates.  Otherwise the body is parsed for
    them: before answering a success, and for a request that is refused,
    fails or is dropped once its answer is known (outside duration_ms).
    For those ids, the upsert returns `id` instead of PostgREST's `1`, and
    one more column.  A PATCH's or DELETE's are the rows it changed or
    deleted and their ids (null, null when it did not run; mutate_path.py).
  * Each logged request has "table": the table its path names
    (/rest/v1/<table>, whatever the answer, faults included), null for
    other paths.  The name only: a Content-Profile schema is not in it.
"""

import json
import random
import threading
import time
import urllib.parse

import psycopg2

from .common import SCHEMA, Reply
from .gateway import CHAOS_KINDS, FAULT_KEYS


def _nonneg_int(d, key):
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ValueError("%s must be a non-negative number" % key)
    return int(v)


def parse_fault_mix(v):
    """fault_mix: a list of CHAOS_KINDS (or a comma-separated string)."""
    if isinstance(v, str):
        v = [x.strip() for x in v.split(",") if x.strip()]
    if not isinstance(v, list) or not v or any(str(x) not in CHAOS_KINDS for x in v):
        raise ValueError("fault_mix must be a non-empty list of " + ", ".join(CHAOS_KINDS))
    return [str(x) for x in v]


class Control:
    """App's /_control/ calls and its down / up switch.  Uses App's opts,
    lock, faults, log and statistics, listeners, reload_schema and
    _apply_cli_faults_reset."""

    def control(self, handler, method, path, query, body):
        name = path[len("/_control/"):] if path.startswith("/_control/") else ""
        try:
            data = json.loads(body.decode("utf-8")) if body.strip() else {}
        except ValueError:
            return Reply(400, {"error": "body is not JSON"})
        if method == "POST" and name == "reset":
            self.cancel_down()
            with self.lock:
                self.faults.clear()
                self._apply_cli_faults_reset()
                self.seq = 0
                self.log = []
                self.stats_requests = 0
                self.stats_rows = 0
                self.by_status = {}
                self.table_stats = {}
                self.max_concurrent_seen = self.concurrent
                self.rate_limited = 0
                self.chaos_faults = 0
                self.burst_faults = 0
            self.bring_up()
            return Reply(200, {"ok": True})
        if method == "POST" and name == "faults":
            return self._set_faults(handler, data)
        if method == "GET" and name == "faults":
            with self.lock:
                return Reply(200, self.faults.as_json(self.down, self.down_until))
        if method == "POST" and name == "reload_schema":
            try:
                cache = self.reload_schema()
            except psycopg2.Error as e:
                return Reply(503, {"error": str(e)})
            # public.fichas at the top (as before), every relation under
            # "tables" (keyed by name; schema.name outside public).
            tables = {}
            for (schema, rname), rel in sorted(cache.relations.items()):
                tables[rname if schema == SCHEMA else schema + "." + rname] = rel.describe()
            return Reply(200, {"ok": True, "table": cache.has_table,
                               "columns": list(cache.columns or []),
                               "pk": cache.pk_cols, "tables": tables})
        qs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        want_table = None
        for k, v in qs:
            if k == "table":
                want_table = v
        if method == "GET" and name == "stats":
            with self.lock:
                if want_table is not None:
                    t = self.table_stats.get(want_table, {})
                    return Reply(200, {"requests": t.get("requests", 0),
                                       "rows": t.get("rows", 0),
                                       "by_status": dict(t.get("by_status", {}))})
                return Reply(200, {"requests": self.stats_requests,
                                   "rows": self.stats_rows,
                                   "by_status": dict(self.by_status),
                                   "rate_limited": self.rate_limited,
                                   "max_concurrent_seen": self.max_concurrent_seen,
                                   "chaos_faults": self.chaos_faults,
                                   "burst_faults": self.burst_faults})
        if method == "GET" and name == "requests":
            since = 0
            for k, v in qs:
                if k == "since":
                    try:
                        since = int(v)
                    except ValueError:
                        return Reply(400, {"error": "since must be an integer"})
            with self.lock:
                out = [dict(e) for e in self.log if e["seq"] > since
                       and (want_table is None or e["table"] == want_table)]
            return Reply(200, out)
        if name == "realtime" and method in ("GET", "POST"):
            # API mode's Realtime (realtime.py): {"enabled": false} answers
            # /realtime/v1/websocket 404 and closes the open websockets.
            if method == "POST":
                if not isinstance(data, dict) or not isinstance(data.get("enabled"), bool):
                    return Reply(400, {"error": 'expected {"enabled": true|false}'})
                if data["enabled"] and self.opts.jwt_secret is None:
                    return Reply(400, {"error": "Realtime needs API mode (--jwt-secret)"})
                self.realtime.set_enabled(data["enabled"])
            return Reply(200, self.realtime.status())
        if method == "GET" and name == "health":
            return Reply(200, {"ok": True, "port": self.main.port,
                               "control_port": (self.control_listener.port
                                                if self.control_listener else None),
                               "down": self.down})
        return Reply(404, {"error": "unknown control call %s %s" % (method, path)})

    def _set_faults(self, handler, d):
        if not isinstance(d, dict):
            return Reply(400, {"error": "expected a JSON object"})
        unknown = sorted(set(d) - FAULT_KEYS)
        if unknown:
            return Reply(400, {"error": "unknown keys: " + ", ".join(unknown)})
        go_down = None
        try:
            with self.lock:
                f = self.faults
                if "fail_next" in d:
                    f.fail_next = _nonneg_int(d, "fail_next")
                    f.fail_status = int(d.get("status", 503))
                    if not 100 <= f.fail_status <= 999:
                        raise ValueError("status must be an HTTP status")
                    f.fail_body = d.get("body")
                    f.fail_body_set = "body" in d
                    f.fail_retry_after = d.get("retry_after")
                    f.fail_retry_after_set = "retry_after" in d
                    f.fail_headers = dict(d.get("headers") or {})
                    m = d.get("method")
                    if m is not None and (not isinstance(m, str) or not m.isalpha()):
                        raise ValueError("method must be an HTTP method or null")
                    f.fail_method = m.upper() if m else None
                if "delay_next" in d:
                    f.delay_next = _nonneg_int(d, "delay_next")
                    f.delay_next_ms = _nonneg_int(d, "delay_ms") if "delay_ms" in d else 0
                elif "delay_ms" in d:
                    f.delay_ms = _nonneg_int(d, "delay_ms")
                if "drop_next" in d:
                    f.drop_next = _nonneg_int(d, "drop_next")
                if "drop_after_commit_next" in d:
                    f.drop_after_commit_next = _nonneg_int(d, "drop_after_commit_next")
                if "drop_with_reset" in d:
                    f.drop_with_reset = bool(d["drop_with_reset"])
                if "gateway_timeout_over_ms" in d:
                    v = d["gateway_timeout_over_ms"]
                    f.gateway_timeout_over_ms = (_nonneg_int(d, "gateway_timeout_over_ms")
                                                 if v else None)
                if "paused_project" in d:
                    f.paused_project = bool(d["paused_project"])
                if "statement_timeout_ms" in d:
                    v = d["statement_timeout_ms"]
                    f.statement_timeout_ms = (_nonneg_int(d, "statement_timeout_ms")
                                              if v is not None else None)
                if "keep_bodies" in d:
                    f.keep_bodies = bool(d["keep_bodies"])
                if "max_concurrent" in d:
                    v = d["max_concurrent"]
                    if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                                          or v < 1):
                        raise ValueError("max_concurrent must be a positive integer or null")
                    f.max_concurrent = v
                if "max_concurrent_retry_after" in d:
                    v = d["max_concurrent_retry_after"]
                    if v is not None and (isinstance(v, bool)
                                          or not isinstance(v, (str, int))):
                        raise ValueError("max_concurrent_retry_after must be a string,"
                                         " an integer or null")
                    f.max_concurrent_retry_after = None if v is None else str(v)
                self._set_chaos(f, d)
                if "down_for_ms" in d:
                    go_down = ("timer", _nonneg_int(d, "down_for_ms"))
                elif "down" in d:
                    go_down = ("toggle", bool(d["down"]))
        except (ValueError, TypeError) as e:
            return Reply(400, {"error": str(e)})
        if go_down is not None:
            on_main = handler.server is self.main.server
            kind, v = go_down
            if kind == "timer":
                self.go_down(v / 1000.0, handler.connection if on_main else None)
            elif v:
                self.go_down(None, handler.connection if on_main else None)
            else:
                self.cancel_down()
                self.bring_up()
            if on_main and self.down:
                # This connection's listener is gone; answer, then close.
                handler.close_connection = True
        with self.lock:
            return Reply(200, self.faults.as_json(self.down, self.down_until))

    @staticmethod
    def _set_chaos(f, d):
        """The chaos profile's keys (under the lock; ValueError when bad)."""
        if "delay_max_ms" in d:
            f.delay_max_ms = (_nonneg_int(d, "delay_max_ms")
                              if d["delay_max_ms"] is not None else None)
        if "fault_rate" in d:
            v = d["fault_rate"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError("fault_rate must be a number from 0 to 1")
            f.fault_rate = float(v)
        if "fault_mix" in d:
            f.fault_mix = parse_fault_mix(d["fault_mix"])
        if "fault_retry_after" in d:
            v = d["fault_retry_after"]
            if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int))):
                raise ValueError("fault_retry_after must be a string, an integer or null")
            f.fault_retry_after = None if v is None else str(v)
        if "burst_fault" in d:
            v = str(d["burst_fault"])
            if v not in CHAOS_KINDS:
                raise ValueError("burst_fault must be one of " + ", ".join(CHAOS_KINDS))
            f.burst_fault = v
        if "burst_after_ms" in d or "burst_for_ms" in d:
            if "burst_after_ms" not in d:
                after = 0
            elif d["burst_after_ms"] is None:
                after = None
            else:
                after = _nonneg_int(d, "burst_after_ms")
            length = _nonneg_int(d, "burst_for_ms") if "burst_for_ms" in d else 0
            f.set_burst(after, length)
        if "chaos_seed" in d:
            v = d["chaos_seed"]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ValueError("chaos_seed must be an integer or null")
            f.chaos_seed = v
            f.rng = random.Random(v)

    # -- down / up ---------------------------------------------------------

    def go_down(self, seconds, except_conn=None):
        """Close the main listening socket: connections are refused (the
        kernel answers RST to a SYN on a closed port), as if the server
        were not running; open connections are shut as well."""
        with self.down_lock:
            if self.closing:
                return
            if self.down_timer is not None:
                self.down_timer.cancel()
                self.down_timer = None
            self.down = True
            self.down_until = (time.monotonic() + seconds) if seconds is not None else None
            self.main.stop(except_conn)
            if seconds is not None:
                self.down_timer = threading.Timer(seconds, self.bring_up)
                self.down_timer.daemon = True
                self.down_timer.start()

    def cancel_down(self):
        with self.down_lock:
            if self.down_timer is not None:
                self.down_timer.cancel()
                self.down_timer = None

    def bring_up(self):
        with self.down_lock:
            self.down_timer = None
            if self.closing:            # shutting down: stay down
                return
            if not self.main.up:
                self.main.start()
            self.down = False
            self.down_until = None
