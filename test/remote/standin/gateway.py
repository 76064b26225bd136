"""Supabase's gateway in front of PostgREST, and what tests switch on in
it: the api key check, the faults (fail, drop, pause, down, timeouts),
the WAN's delay, a concurrency-limiting gateway (429), the chaos profile
(a noisy latency, transient faults at random, a burst of faults), CORS,
and the request log and statistics of every /rest/v1 request.

Semantics worth knowing:
  * Per /rest/v1 request the faults are taken in this order: delay
    (delay_next first, else delay_ms), then max_concurrent, then drop_next,
    paused_project, fail_next (only one of the four applies), then the
    gateway key check and PostgREST; drop_after_commit_next applies to a
    request that got that far, whatever its answer.  fail_next sends
    `Retry-After` when "retry_after" is given, none when it is null, and "0"
    for a 503 when the key is absent (PostgREST 12.2 puts `Retry-After: 0`
    on every 503).
    gateway_timeout_over_ms measures from the end of the request body to the
    end of processing, delay included; the database work stands (as behind a
    real gateway).  `down` closes the main listening socket (connections are
    refused) and shuts its open connections; the control port stays up.
  * The delay is a WAN's round trip: each request waits on its own thread,
    before its processing, holding no lock and no database connection, so
    16 concurrent requests at 100 ms are answered after ~100 ms, not 1.6 s
    (connections are accepted with a listen backlog of 128, so a client
    opening 16 at once is not held back either).  Every answer waits,
    faults' and the gateway's 429 included; a CORS preflight does not.
  * max_concurrent is a gateway in front of everything (Kong's
    rate-limiting plugin's answer, for a limit on concurrency rather than
    on requests per period): a /rest/v1 request (CORS preflights aside) is
    counted from its receipt to its answer, the delay included.  One that
    arrives while N counted requests are being processed is refused: 429,
    body {"message": "API rate limit exceeded"}, `Retry-After: 1` (or
    max_concurrent_retry_after), after the delay like any answer, without
    going further (no key check, no other fault taken, no database);
    "fault": "rate_limited" in the log.  A refused request does not count
    towards N.  A request's place is given back before its answer is
    written, so a client that sends its next request once it has its
    previous answer never meets its own previous request in the count.
    "max_concurrent_seen" counts every /rest/v1 request between receipt
    and answer, refused ones included: what the client had in flight.
  * The chaos profile (a healthy remote across a bad network, or with a
    flaky gateway): delay_max_ms makes each request's delay uniform in
    [delay_ms, delay_max_ms] instead of delay_ms (a noisy latency; a
    delay_next still waits exactly delay_next_ms).  fault_rate (0..1)
    fails each /rest/v1 request (that max_concurrent let through and no
    one-shot fault took) with that probability, with a transient fault
    drawn from fault_mix, evenly: "429" (Kong's body, Retry-After
    fault_retry_after, default "1"), "503" (PGRST001, Retry-After: 0, as
    PostgREST), "reset" (the request is read, then the connection is
    closed with a TCP RST, no answer).  A burst: every such request in
    the burst_for_ms after burst_after_ms (from when it was set: the
    control call, or the stand-in's start / a reset for the command line)
    fails with burst_fault (one of fault_mix's kinds, default "503"); the
    burst is taken before the random faults.  chaos_seed seeds the
    draws (delay and faults; null: unseeded).  These faults are after the
    delay like any answer and go no further (no key check, no database);
    the log says "fault": "chaos_429" / "chaos_503" / "chaos_reset" or
    "burst_429" / ...; stats count them in "chaos_faults" and
    "burst_faults".

CORS (PostgREST's Cors.hs, wai-cors, any origin), for a request with an
Origin: a preflight (OPTIONS with Access-Control-Request-Method among GET,
POST, PATCH, PUT, DELETE, OPTIONS, HEAD) answers 200 with
Access-Control-Allow-Origin: *, -Allow-Methods, -Allow-Headers
(Authorization, the headers asked for, Accept, Accept-Language,
Content-Language) when some were asked for, -Max-Age: 86400 -- before the
gateway's key check, which a browser's preflight could not pass, and
taking no fault; any other answer (gateway's and faults' included) gets
Access-Control-Allow-Origin: * and Access-Control-Expose-Headers.  An
OPTIONS that is no such preflight is PostgREST's own (Allow header).
"""

import random
import time
import urllib.parse

from .common import Reply, pgrst_body
from .request import RequestContext


# ---------------------------------------------------------------------------
# Faults, statistics and the request log
# ---------------------------------------------------------------------------

FAULT_KEYS = {"fail_next", "status", "body", "retry_after", "headers", "method",
              "delay_ms", "delay_next", "drop_next", "drop_after_commit_next",
              "drop_with_reset", "down_for_ms", "down",
              "gateway_timeout_over_ms", "paused_project",
              "statement_timeout_ms", "keep_bodies",
              "max_concurrent", "max_concurrent_retry_after",
              "delay_max_ms", "fault_rate", "fault_mix", "fault_retry_after",
              "burst_after_ms", "burst_for_ms", "burst_fault", "chaos_seed"}

# The chaos profile's transient faults.
CHAOS_KINDS = ("429", "503", "reset")

GATEWAY_BODIES = {
    401: {"message": "Invalid API key",
          "hint": "Double check your Supabase `anon` or `service_role` API key."},
    408: {"message": "Request Timeout"},
    429: {"message": "API rate limit exceeded"},
    502: {"message": "An invalid response was received from the upstream server"},
    540: {"message": "Project paused",
          "hint": "The project is paused; restore it from the Supabase dashboard."},
    544: {"message": "Gateway timeout",
          "hint": "The upstream took longer than the gateway allows."},
}


def default_fault_body(status):
    """A body fitting `status`, in the style of whoever sends it for real."""
    if status in GATEWAY_BODIES:
        return GATEWAY_BODIES[status]
    table = {
        400: pgrst_body("22P02", 'invalid input syntax for type bigint: "x"'),
        403: pgrst_body("42501", "permission denied for table fichas"),
        404: {},
        409: pgrst_body("23505", 'duplicate key value violates unique constraint "fichas_pkey"',
                        "Key (id)=(1) already exists."),
        500: pgrst_body("57014", "canceling statement due to statement timeout"),
        503: pgrst_body("PGRST001", "Database client error. Retrying the connection."),
        504: pgrst_body("PGRST003", "Timed out acquiring connection from connection pool."),
    }
    return table.get(status, {"message": "stand_in injected status %d" % status})


class FaultState:
    def __init__(self):
        self.clear()

    def clear(self):
        self.fail_next = 0
        self.fail_status = 503
        self.fail_body = None           # None: default_fault_body
        self.fail_body_set = False
        self.fail_retry_after = None
        self.fail_retry_after_set = False
        self.fail_headers = {}
        self.fail_method = None         # fail_next's method (None: any)
        self.delay_ms = 0
        self.delay_next = 0
        self.delay_next_ms = 0
        self.drop_next = 0
        self.drop_after_commit_next = 0
        self.drop_with_reset = False
        self.gateway_timeout_over_ms = None
        self.paused_project = False
        self.statement_timeout_ms = None
        self.keep_bodies = False
        self.max_concurrent = None      # None: no limit
        self.max_concurrent_retry_after = "1"
        # the chaos profile
        self.delay_max_ms = None        # None: delay_ms exactly
        self.fault_rate = 0.0
        self.fault_mix = list(CHAOS_KINDS)
        self.fault_retry_after = "1"
        self.burst_start = None         # monotonic seconds, or None
        self.burst_end = None
        self.burst_after_ms = None
        self.burst_for_ms = None
        self.burst_fault = "503"
        self.chaos_seed = None
        self.rng = random.Random()

    def set_burst(self, after_ms, for_ms, now=None):
        """A burst of faults for_ms long, after_ms from now (None: none)."""
        self.burst_after_ms, self.burst_for_ms = after_ms, for_ms
        if after_ms is None or not for_ms:
            self.burst_start = self.burst_end = None
            return
        now = time.monotonic() if now is None else now
        self.burst_start = now + after_ms / 1000.0
        self.burst_end = self.burst_start + for_ms / 1000.0

    def take_delay(self):
        """This request's delay (ms): delay_ms, or uniform up to delay_max_ms."""
        if self.delay_max_ms is not None and self.delay_max_ms > self.delay_ms:
            return self.rng.uniform(self.delay_ms, self.delay_max_ms)
        return self.delay_ms

    def take_chaos(self, now):
        """The chaos fault this request meets: ("burst" | "chaos", kind) or None."""
        if self.burst_start is not None and self.burst_start <= now < self.burst_end:
            return ("burst", self.burst_fault)
        if self.fault_rate > 0 and self.fault_mix and self.rng.random() < self.fault_rate:
            return ("chaos", self.rng.choice(self.fault_mix))
        return None

    def as_json(self, down, down_until):
        return {
            "fail_next": self.fail_next, "status": self.fail_status,
            "body": self.fail_body, "retry_after": self.fail_retry_after,
            "headers": self.fail_headers, "method": self.fail_method,
            "delay_ms": self.delay_ms, "delay_next": self.delay_next,
            "delay_next_ms": self.delay_next_ms,
            "drop_next": self.drop_next,
            "drop_after_commit_next": self.drop_after_commit_next,
            "drop_with_reset": self.drop_with_reset,
            "down": down,
            "down_remaining_ms": (max(0, int((down_until - time.monotonic()) * 1000))
                                  if down and down_until else None),
            "gateway_timeout_over_ms": self.gateway_timeout_over_ms,
            "paused_project": self.paused_project,
            "statement_timeout_ms": self.statement_timeout_ms,
            "keep_bodies": self.keep_bodies,
            "max_concurrent": self.max_concurrent,
            "max_concurrent_retry_after": self.max_concurrent_retry_after,
            "delay_max_ms": self.delay_max_ms,
            "fault_rate": self.fault_rate, "fault_mix": list(self.fault_mix),
            "fault_retry_after": self.fault_retry_after,
            "burst_after_ms": self.burst_after_ms, "burst_for_ms": self.burst_for_ms,
            "burst_fault": self.burst_fault,
            "burst_remaining_ms": (max(0, int((self.burst_end - time.monotonic()) * 1000))
                                   if self.burst_end is not None else None),
            "chaos_seed": self.chaos_seed,
        }


# ---------------------------------------------------------------------------
# CORS, as PostgREST 12.2 answers it (PostgREST.Cors: wai-cors 0.2.7 with
# any origin, the methods below, the Authorization header plus whatever
# the preflight asks for, these exposed headers, a day's max age; failures
# ignored, i.e. left to the application)
# ---------------------------------------------------------------------------

CORS_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "HEAD"]
CORS_SIMPLE_HEADERS = ["Accept", "Accept-Language", "Content-Language"]
CORS_EXPOSED = ("Content-Encoding, Content-Location, Content-Range, Content-Type, "
                "Date, Location, Server, Transfer-Encoding, Range-Unit")
_HEADER_NAME_CHARS = set(chr(c) for c in range(33, 127)) - set('()<>@,;:\\"/[]?={}')


def cors_preflight(headers):
    """The headers of wai-cors' 200 answer to a preflight, or None when it
    is no preflight wai-cors accepts (then PostgREST answers the OPTIONS
    itself).  `headers`: (lowercased name, value) pairs."""
    def get(name):
        for k, v in headers:
            if k == name:
                return v
        return None
    method = get("access-control-request-method")
    if method is None or method not in CORS_METHODS:
        return None
    out = [("Access-Control-Allow-Origin", "*"),
           ("Access-Control-Allow-Methods", ", ".join(CORS_METHODS))]
    requested = get("access-control-request-headers")
    if requested is not None:
        # PostgREST's policy allows Authorization and every name asked for
        # (split on commas, stripped); wai-cors adds the simple headers the
        # list lacks, compared case-insensitively, and answers the list.
        asked = [h.strip(" \t") for h in requested.split(",")] if requested else []
        allowed = ["Authorization"] + asked
        lower = {a.lower() for a in allowed}
        allowed += [h for h in CORS_SIMPLE_HEADERS if h.lower() not in lower]
        # wai-cors parses the request's list (names of visible ASCII but
        # separators, blanks around them) and refuses names not allowed:
        # with this policy every parsed name is allowed.
        out.append(("Access-Control-Allow-Headers", ", ".join(allowed)))
    out.append(("Access-Control-Max-Age", "86400"))
    return out


def cors_actual_headers():
    """What wai-cors adds to the answer of a request with an Origin."""
    return [("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Expose-Headers", CORS_EXPOSED)]


# ---------------------------------------------------------------------------
# The gateway (a part of App)
# ---------------------------------------------------------------------------

class Gateway:
    """App's /rest/v1 front.  Uses App's opts, lock, faults, the log and
    statistics, the gateway's counts and postgrest."""

    def rest(self, handler, path, query, body, t0, started_at):
        method = handler.command
        headers = [(k.lower(), v) for k, v in handler.headers.items()]
        params = urllib.parse.parse_qsl(query, keep_blank_values=True)
        # Gateway: the api key comes from the header or the url parameter;
        # the gateway hides it from PostgREST.
        key = None
        for k, v in headers:
            if k == "apikey":
                key = v
                break
        if key is None:
            for k, v in params:
                if k == "apikey":
                    key = v
                    break
        all_params = params
        params = [(k, v) for k, v in params if k != "apikey"]
        rest_path = path[len("/rest/v1"):] or "/"
        segments = [urllib.parse.unquote(s) for s in rest_path.split("/")[1:]]
        if segments == [""]:
            segments = []
        ctx = RequestContext(method, rest_path, segments, params, headers, body)
        # The table the request targets, as its path names it (PostgREST's
        # ResourceRelation: one segment after /rest/v1/); None for the root,
        # /rpc/... and other paths.
        table = segments[0] if len(segments) == 1 else None
        ctx.log_table = table
        # CORS (PostgREST's, outermost): a preflight that wai-cors accepts
        # is answered before anything else -- before the gateway's key
        # check too, as a browser sends no key with it -- and takes no
        # fault; every other answer to a request with an Origin gets the
        # CORS headers, whoever gives it.
        origin = ctx.header("origin")
        preflight = (cors_preflight(headers)
                     if origin is not None and method == "OPTIONS" else None)

        with self.lock:
            self.seq += 1
            f = self.faults
            entry = {
                "seq": self.seq, "method": method, "path": path, "table": table,
                "query": {k: v for k, v in reversed(all_params)},
                "headers": {k: v for k, v in reversed(headers)},
                "n_rows": None, "ids": None, "status": None,
                "started_at": started_at, "duration_ms": None,
                "fault": None, "error_code": None,
            }
            if f.keep_bodies:
                entry["body"] = body.decode("utf-8", "replace")
            self.log.append(entry)
            self.stats_requests += 1
            tstats = None
            if table is not None:
                tstats = self.table_stats.setdefault(
                    table, {"requests": 0, "rows": 0, "by_status": {}})
                tstats["requests"] += 1
            # Take this request's faults, in a fixed order.
            delay = f.take_delay()
            if preflight is not None:
                delay = 0
            elif f.delay_next > 0:
                f.delay_next -= 1
                delay = f.delay_next_ms
            action = None
            counted = admitted = False
            if preflight is None:
                # The gateway's concurrency limit, outermost: counted from
                # here (receipt) to the answer, the delay included.
                counted = True
                self.concurrent += 1
                self.max_concurrent_seen = max(self.max_concurrent_seen, self.concurrent)
                if f.max_concurrent is not None and self.admitted >= f.max_concurrent:
                    action = "rate_limited"
                    limit_retry_after = f.max_concurrent_retry_after
                    self.rate_limited += 1
                else:
                    admitted = True
                    self.admitted += 1
            if preflight is not None or action is not None:
                pass
            elif f.drop_next > 0:
                f.drop_next -= 1
                action = "drop"
            elif f.paused_project:
                action = "paused"
            elif f.fail_next > 0 and f.fail_method in (None, method):
                f.fail_next -= 1
                action = "fail"
                fail = (f.fail_status, f.fail_body, f.fail_body_set,
                        f.fail_retry_after, f.fail_retry_after_set, dict(f.fail_headers))
            else:
                chaos = f.take_chaos(time.monotonic())
                if chaos is not None:
                    action = "%s_%s" % chaos
                    if chaos[0] == "burst":
                        self.burst_faults += 1
                    else:
                        self.chaos_faults += 1
                    chaos_retry_after = f.fault_retry_after
            drop_after = False
            if action is None and preflight is None and f.drop_after_commit_next > 0:
                f.drop_after_commit_next -= 1
                drop_after = True
            gw_limit = f.gateway_timeout_over_ms

        # This request's place in the gateway's count, given back when its
        # answer is noted (or if answering raises).
        slot = {"held": counted, "admitted": admitted}
        try:
            return self._rest_answer(ctx, key, entry, tstats, t0, delay, preflight,
                                     origin, method, action,
                                     fail if action == "fail" else None,
                                     (limit_retry_after if action == "rate_limited" else
                                      chaos_retry_after if action and action.endswith("_429")
                                      else None),
                                     drop_after, gw_limit, slot)
        finally:
            if slot["held"]:
                with self.lock:
                    self._give_back(slot)

    def _give_back(self, slot):
        """Under self.lock: a request leaves the gateway's count."""
        if slot["held"]:
            slot["held"] = False
            self.concurrent -= 1
            if slot["admitted"]:
                self.admitted -= 1

    def _rest_answer(self, ctx, key, entry, tstats, t0, delay, preflight, origin,
                     method, action, fail, limit_retry_after, drop_after, gw_limit,
                     slot):
        """The rest of rest(): wait, answer, note the answer.  The request's
        place in the gateway's count is given back under the lock that notes
        the answer: before the answer leaves, so that a client that sends
        its next request once it has an answer never finds the request that
        answer was for still counted."""
        # The WAN: the whole round trip's latency, waited here holding no
        # lock and no database connection, each request on its own thread.
        if delay:
            time.sleep(delay / 1000.0)

        if preflight is not None:
            reply = Reply(200, b"", preflight)
        elif action == "rate_limited":
            # Kong's rate-limiting plugin: 429, its body, Retry-After in
            # seconds.  The request goes no further: no fault, no key
            # check, no database.
            reply = Reply(429, GATEWAY_BODIES[429])
            if limit_retry_after is not None:
                reply.headers.append(("Retry-After", limit_retry_after))
        elif action == "drop":
            reply = Reply(0)
            reply.drop = True
        elif action is not None and action.startswith(("chaos_", "burst_")):
            # the chaos profile's transient faults
            kind = action.split("_", 1)[1]
            if kind == "reset":
                reply = Reply(0)
                reply.drop = True
                reply.drop_reset = True
            elif kind == "429":
                reply = Reply(429, GATEWAY_BODIES[429])
                if limit_retry_after is not None:
                    reply.headers.append(("Retry-After", limit_retry_after))
            else:
                reply = Reply(503, default_fault_body(503))
                reply.error_code = "PGRST001"
                reply.headers.append(("Retry-After", "0"))
        elif action == "paused":
            reply = Reply(540, GATEWAY_BODIES[540])
        elif action == "fail":
            status, fbody, fbody_set, ra, ra_set, extra = fail
            if fbody is None:
                fbody = default_fault_body(status)
            reply = Reply(status, fbody if isinstance(fbody, (dict, list)) else str(fbody))
            if isinstance(fbody, dict):
                reply.error_code = fbody.get("code")
            if ra_set:
                if ra is not None:
                    reply.headers.append(("Retry-After", str(ra)))
            elif status == 503:
                reply.headers.append(("Retry-After", "0"))
            for k, v in extra.items():
                reply.set_header(k, str(v))
        else:
            reply = self._gateway_check(key)
            if reply is None:
                reply = self.postgrest.handle(ctx)
            if drop_after:
                reply.drop = True

        elapsed_ms = (time.monotonic() - t0) * 1000.0
        fault = action
        if drop_after:
            fault = "drop_after_commit"
        if not reply.drop and gw_limit and elapsed_ms > gw_limit and preflight is None \
                and action != "rate_limited" and not (action or "").startswith(("chaos_", "burst_")):
            reply = Reply(544, GATEWAY_BODIES[544])
            fault = "gateway_timeout"
        if origin is not None and method != "OPTIONS" and not reply.drop:
            reply.headers += cors_actual_headers()
        # The log's rows and ids of a request that processing did not note
        # (a fault, a refusal, an error): parse its body now.
        ctx.body_rows()

        with self.lock:
            entry["n_rows"] = ctx.n_rows
            entry["ids"] = ctx.ids
            entry["status"] = None if reply.drop else reply.status
            entry["duration_ms"] = round(elapsed_ms, 3)
            entry["fault"] = fault
            entry["error_code"] = reply.error_code
            k = "dropped" if reply.drop else str(reply.status)
            self.by_status[k] = self.by_status.get(k, 0) + 1
            if tstats is not None:
                tstats["by_status"][k] = tstats["by_status"].get(k, 0) + 1
            if drop_after:
                # What the client would have been told, had it been told.
                entry["would_status"] = reply.status
            self._give_back(slot)
        return reply

    def count_rows(self, ctx):
        """Called when an upsert succeeded: count its rows."""
        with self.lock:
            self.stats_rows += ctx.n_rows or 0
            t = self.table_stats.get(ctx.log_table)
            if t is not None:
                t["rows"] += ctx.n_rows or 0

    def _gateway_check(self, key):
        if key is None or key == "":
            return Reply(401, {"message": "No API key found in request",
                               "hint": "No `apikey` request header or url param was found."})
        if key != self.opts.api_key and key != self.opts.service_role_key:
            return Reply(401, GATEWAY_BODIES[401])
        return None
