#!/usr/bin/python3
"""stand_in.py -- a PostgREST-12.2-compatible stand-in for gs_export's remote,
and for the API of gs_export's own database (TabuladorMax's, on Supabase).

gs_export sends batches of leads to gestao-scouter's `public.fichas` table
(or, with a job's target_table, to another table such as gestao-scouter's
own `leads`: test/remote/gestao_leads.sql) over Supabase's REST API: an API
gateway in front of PostgREST 12.2.  The project's tests cannot reach a
real Supabase project, so this server plays both parts, backed by a real
PostgreSQL database that holds the real tables (test/remote/fichas.sql):

* the gateway: the `apikey` check (401 bodies of Supabase's gateway), the
  544 "gateway timeout" and 540 "project paused" answers;
* PostgREST 12.2: `POST /rest/v1/<table>` for every table and view of the
  exposed schemas, as its schema cache knows them (JSON array / object /
  CSV / form bodies, `columns`, `on_conflict`, the `Prefer` header), the upsert
  sent to the database in the same SQL shape PostgREST 12.2.12 builds
  (src/PostgREST/Query/QueryBuilder.hs, SqlFragment.hs, Statements.hs), its
  201/200 rule, its error bodies and its SQLSTATE -> HTTP status mapping
  (src/PostgREST/Error.hs); `GET` / `HEAD` on tables (see READS below).
  Errors that come from the data (bad values, CHECK, NOT NULL, duplicate id
  in one batch...) are produced by the real database, never pre-validated
  here.  What this server does not implement answers 501 with a body whose
  code is "STANDIN501", so that a test never passes by accident.

The same server is the other half of PostgREST 12.2, the one an application
talks to through supabase-js, in API MODE (--jwt-secret, below): in front of
gs_export's own database it serves `POST /rest/v1/rpc/gs_export_create` and
the other functions, and reads of the jobs, errors and events tables, as a
signed-in user of the app.

On top, fault switches and a request log for tests, under /_control/
(no api key; JSON in, JSON out), also reachable on a separate control port
that stays up while the main port is "down".  See CONTROL API below.

It is a test tool that must stay honest: if it accepts what PostgREST would
reject, the project's tests lie.  Run it with Debian's /usr/bin/python3
(standard library + psycopg2 only):

    /usr/bin/python3 test/remote/stand_in.py --port 0 \
        --dsn 'host=/tmp/sock port=5433 dbname=remote user=postgres' \
        --api-key KEY --port-file /tmp/stand_in.port \
        [--schema-file test/remote/fichas.sql [--schema-file ...] --init-schema]
        [--delay-ms 100] [--max-concurrent 2 [--max-concurrent-retry-after 1]]

or, in API mode, in front of an application's database:

    /usr/bin/python3 test/remote/stand_in.py --port 0 --port-file /tmp/api.port \
        --dsn 'host=/tmp/sock port=5432 dbname=postgres user=authenticator' \
        --api-key "$ANON_KEY" --jwt-secret "$JWT_SECRET" --anon-role anon \
        [--schemas public,graphql_public] [--extra-search-path public,extensions]

It prints `stand_in listening on 127.0.0.1:PORT` (and `stand_in control on
127.0.0.1:CPORT`) on stdout once it accepts connections, and writes PORT to
--port-file (atomically).  SIGTERM / SIGINT stop it cleanly (status 0), at
once whatever its connections are doing (idle keep-alive connections,
requests in a delay or in the database are cut; a second signal kills it
outright, and one still there 5 s later dumps its threads' stacks on stderr
and exits with status 1); SIGUSR1 reloads the schema cache, as it does for
PostgREST.

CONTROL API (all JSON):
  POST /_control/reset          clear faults, statistics and the request log
  POST /_control/faults         set any of:
     {"fail_next": N, "status": 503, "body": {...}|"raw text"|null,
      "retry_after": "2"|null, "headers": {"X": "y"}}
     {"delay_ms": X}                       every /rest/v1 answer waits X ms
                                           (a WAN's round trip; see below)
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
  GET  /_control/faults         the current fault state
  POST /_control/reload_schema  re-read the schema cache (every relation):
                                {"ok", "table", "columns", "pk" (of fichas),
                                 "tables": {name: {"schema", "kind",
                                                   "columns", "pk"}}}
  GET  /_control/stats[?table=NAME]     {"requests", "rows", "by_status"},
                                of every request or of those whose path
                                named table NAME; without table=, also
                                "rate_limited" (the max_concurrent gateway's
                                429s) and "max_concurrent_seen" (the most
                                /rest/v1 requests at once, refused ones
                                included)
  GET  /_control/requests[?since=SEQ][&table=NAME]   the request log
  GET  /_control/health         {"ok": true, "port", "control_port", "down"}

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
    one more column.
  * psycopg2 binds parameters on the client: the body reaches the database
    inside the upsert's text (an E'' literal of its very bytes, JsonBody),
    not as PostgREST's binary parameter; PostgreSQL refuses invalid UTF-8
    with the same 22021 error all the same.
  * Each logged request has "table": the table its path names
    (/rest/v1/<table>, whatever the answer, faults included), null for
    other paths.  The name only: a Content-Profile schema is not in it.
  * The schema cache holds every table, view, materialized view and
    foreign table (partitions aside) of the exposed schemas, as of the
    last load (start, reload_schema, SIGUSR1): columns with their types
    and defaults, primary keys, rules and row triggers (for the log).  A
    table missing from it (unknown, or created since the last load): 404
    `{}` when PostgREST has columns to resolve (as for every batch
    gs_export sends); with no column at all ([] or [{}]) and on GET,
    PostgREST 12.2 sends the query and the database answers (404 42P01
    for a table it lacks).  A key or `columns` entry the table lacks:
    400 PGRST204 naming the column and the table.  `on_conflict` is not
    checked against the cache (nor by PostgREST): a column with no
    unique constraint is the database's 400 42P10, an unknown one its
    400 42703.

API MODE (--jwt-secret SECRET, checked against src/PostgREST/Auth.hs,
App.hs, Query.hs, Plan.hs, Plan/CallPlan.hs, Query/QueryBuilder.hs,
Query/SqlFragment.hs, Query/Statements.hs, Response.hs, Error.hs, Cors.hs,
SchemaCache.hs, Config/Database.hs of v12.2.12, and the jose, fuzzyset and
wai-cors versions it is built with):
  * Every bearer token ("Bearer" in any case) is a JWT, verified as
    PostgREST verifies it with the secret as its one key: HS256 / HS384 /
    HS512; exp, iat and nbf with 30 s of skew.  401 PGRST301 with jose's
    message ("JWT expired", "JWSError JWSInvalidSignature", "JWSError
    (CompactDecodeError Invalid number of parts: Expected 3 parts; got N)",
    "JWSError JWSNoSignatures" for alg none, "JWTIssuedAtFuture",
    "JWTNotYetValid") and WWW-Authenticate: Bearer error="invalid_token", ....
    The role is the `role` claim, else --anon-role, else 401 PGRST302
    "Anonymous access is disabled".  No token: --anon-role, claims {}.
  * Each request is one transaction of the DSN's login role (connect as a
    role that is no superuser, e.g. Supabase's `authenticator`, NOINHERIT,
    granted anon and authenticated) with, in one statement: search_path
    (the request's schema, then --extra-search-path), the role's own ALTER
    ROLE settings (as PostgREST's queryRoleSettings reads them), role =
    the request's role (SET LOCAL ROLE), request.jwt.claims (the token's
    claims, role included: auth.uid() works), request.method, request.path,
    request.headers, request.cookies, timezone, and the function's hoisted
    settings (statement_timeout, plan_filter.statement_cost_limit,
    default_transaction_isolation SET on it).  "Authenticated" (42501 ->
    403 rather than 401) means: the role is not --anon-role.
  * RPC: POST /rpc/<function> with a JSON object of named arguments (an
    empty body is {}), form bodies, text/plain / xml / octet-stream bodies
    for a function of one unnamed text / xml / bytea parameter, a JSON body
    for one of one unnamed json / jsonb parameter, `Prefer:
    params=single-object`; GET / HEAD /rpc/<function>?name=value (values that
    are no operator expression are arguments; a variadic one repeated makes
    an array; always a read-only transaction); OPTIONS (Allow:
    OPTIONS,POST for a volatile function, else OPTIONS,GET,HEAD,POST).
    The function is found as Plan.findProc finds it among every function of
    the exposed schemas (the schema cache: SchemaCache.allFunctions, loaded
    at start, reload_schema and SIGUSR1; EXECUTE is checked by the database
    when it is called, 42501): by name, and by the argument names against
    its required and optional parameters.  None: 404 PGRST202 with
    PostgREST's message, details and fuzzy "Perhaps you meant..." hint;
    several: 300 PGRST203.  It is called with named arguments taken from
    json_to_record of the body (only those given: the others keep their
    defaults), in a read-only transaction unless POST and VOLATILE.  A
    scalar result is the bare JSON value (200), void is 204 with no body, a
    composite (a table's row type, or OUT / TABLE parameters) an object,
    SETOF an array; select (plain columns), filters, order, limit, offset
    and Prefer: count=exact apply to the result (12.2 returns only the
    selected columns from the call, so a filter on another one fails with
    42703, as in 12.2).  Content-Range as PostgREST sets it (0-0/* for a
    single row); Content-Profile with more than one exposed schema.
  * Errors of the database: Error.pgErrorStatus, e.g. 22023 / 22004 /
    42704 / P0001 -> 400, 55000 -> 500, 42501 -> 401 (anon, with
    WWW-Authenticate: Bearer) or 403, 23505 -> 409, 42883 -> 404, 25006 ->
    405, PTnnn -> nnn; the body {code: SQLSTATE, message, details, hint}.
  * The gateway's apikey check stays (the anon key is a JWT of role anon);
    without --jwt-secret none of the above applies: the remote's mode.

READS (GET / HEAD on a table or view, and the result of a call): select of
plain columns or *; filters eq, neq, gt, gte, lt, lte, like, ilike (* for
%), in.(...), is.null/true/false/unknown, each with not.; order (asc, desc,
nullsfirst, nullslast); limit, offset; Prefer: count=exact (Content-Range
with the total, 206 for part of it); Accept application/json or
application/vnd.pgrst.object+json (supabase-js .single(): 406 PGRST116
unless exactly one row, the transaction rolled back); Content-Location.

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

Known differences from PostgREST 12.2 (all on paths gs_export does not use):
  * PGRST100 (query-string parse errors): the message is PostgREST's, the
    `details` wording of parsec is approximated.  CSV parse errors: message
    approximated.  JWT errors without --jwt-secret: any bearer token other
    than the configured key(s) is treated as a badly signed JWT
    (PGRST301).  With it: jose's messages for a malformed header or claims
    set (bad base64, bad JSON, a claim of the wrong type) are approximated;
    the secret is always a plain string (no JWK, no base64 secret, no
    jwt-aud, role claim key .role); tokens are not cached.
  * Views: their primary key, which PostgREST infers from the view's
    definition, is not inferred; a POST whose answer depends on it (a
    resolution without on_conflict, return=headers-only) answers 501.
  * RPC: no embedding, no aggregates, no and= / or=, no casts or aliases
    in select, no operators but those of READS, no count=planned /
    estimated, no Range header (all 501 STANDIN501); the schema cache's
    order of overloaded functions in PGRST203 and ties in the fuzzy hint
    may differ.  The OpenAPI root, PUT/PATCH/DELETE on tables, POST with
    filters/order/limit or a select list, Accept of CSV / nulls=stripped /
    plan, the Range header and count=planned/estimated answer 501
    STANDIN501.
  * `Prefer: tx=` is accepted and ignored (as with Supabase's settings);
    `max-affected` is ignored for inserts, as in 12.2.
  * Response headers: Server says postgrest.
"""

import argparse
import base64
import collections
import csv
import decimal
import faulthandler
import hashlib
import hmac
import io
import json
import math
import os
import re
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

POSTGREST_VERSION = "12.2.12"
SCHEMA = "public"
# The table gs_export writes to unless a job names another (target_table).
TABLE = "fichas"
# Supabase exposes these schemas through PostgREST (db-schemas); the first is
# the default.  Every table and view of theirs is in the schema cache.
EXPOSED_SCHEMAS = ["public", "graphql_public"]
# Supabase's db-extra-search-path.
EXTRA_SEARCH_PATH = ["public", "extensions"]

JSON_CT = "application/json; charset=utf-8"

# SIGTERM / SIGINT: the listeners and the pool are given this long to stop
# (App.shutdown); a process still there EXIT_DEADLINE_S after the signal
# dumps its threads' stacks on stderr and exits with status 1 (a second
# SIGTERM / SIGINT ends it at once).
SHUTDOWN_TIMEOUT_S = 2.0
EXIT_DEADLINE_S = 5.0

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def jdump(obj):
    """Compact JSON, UTF-8, like aeson's encode."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"),
                      default=_json_default).encode("utf-8")


def _json_default(o):
    if isinstance(o, decimal.Decimal):
        return float(o) if o != o.to_integral_value() else int(o)
    raise TypeError(repr(o))


def pgrst_body(code, message, details=None, hint=None):
    """A PostgREST error body; aeson orders the keys alphabetically."""
    return {"code": code, "details": details, "hint": hint, "message": message}


class Reply:
    """One HTTP answer, or an instruction to drop the connection."""

    def __init__(self, status, body=b"", headers=None, reason=None):
        self.status = status
        if isinstance(body, (dict, list)):
            body = jdump(body)
            headers = [("Content-Type", JSON_CT)] + list(headers or [])
        elif isinstance(body, str):
            body = body.encode("utf-8")
        self.body = body
        self.headers = list(headers or [])
        self.reason = reason
        self.drop = False          # close without answering
        self.error_code = None     # the "code" of an error body, for the log

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def set_header(self, name, value):
        self.headers = [(k, v) for k, v in self.headers
                        if k.lower() != name.lower()]
        self.headers.append((name, value))


def error_reply(status, code, message, details=None, hint=None, headers=None):
    r = Reply(status, pgrst_body(code, message, details, hint), headers)
    r.error_code = code
    return r


def not_implemented(what):
    """Loud refusal of a PostgREST feature this stand-in does not emulate."""
    return error_reply(501, "STANDIN501",
                       "stand_in does not implement " + what,
                       None, "Extend test/remote/stand_in.py if a test needs it.")


class StandInError(Exception):
    """Raised inside request processing to answer with `reply`."""

    def __init__(self, reply):
        super().__init__(reply.status)
        self.reply = reply


# ---------------------------------------------------------------------------
# JSON and media types, as PostgREST parses them
# ---------------------------------------------------------------------------

def _reject_constant(name):
    # aeson refuses NaN / Infinity / -Infinity, Python's json accepts them.
    raise ValueError("invalid JSON constant " + name)


def parse_json_strict(raw):
    """Parse like aeson's `decode`: UTF-8, RFC 8259, no NaN/Infinity.
    Numbers are kept exact (int / Decimal).  Raises ValueError."""
    text = raw.decode("utf-8")        # UnicodeDecodeError is a ValueError
    return json.loads(text, parse_constant=_reject_constant,
                      parse_float=decimal.Decimal)


def decode_media_type(value):
    """PostgREST.MediaType.decodeMediaType, reduced to what matters here:
    returns (kind, mime) where kind is one of json, csv, urlencoded, plain,
    xml, octet, geojson, openapi, any, object, array_strip, plan, other."""
    v = value.strip()
    m = re.match(r"^([A-Za-z0-9.*]+)/([A-Za-z0-9.*+\-]+)(.*)$", v)
    if not m:
        return ("other", value)
    main, sub, rest = m.group(1).lower(), m.group(2).lower(), m.group(3)
    params = {}
    for p in rest.split(";"):
        if "=" in p:
            k, _, pv = p.partition("=")
            params[k.strip().lower()] = pv.strip()
    table = {
        ("application", "json"): ("json", "application/json"),
        ("application", "geo+json"): ("geojson", "application/geo+json"),
        ("text", "csv"): ("csv", "text/csv"),
        ("text", "plain"): ("plain", "text/plain"),
        ("text", "xml"): ("xml", "text/xml"),
        ("application", "openapi+json"): ("openapi", "application/openapi+json"),
        ("application", "x-www-form-urlencoded"):
            ("urlencoded", "application/x-www-form-urlencoded"),
        ("application", "octet-stream"): ("octet", "application/octet-stream"),
        ("*", "*"): ("any", "*/*"),
    }
    if (main, sub) in table:
        return table[(main, sub)]
    if main == "application" and sub in ("vnd.pgrst.plan", "vnd.pgrst.plan+text",
                                         "vnd.pgrst.plan+json"):
        return ("plan", "application/" + sub)
    if main == "application" and sub in ("vnd.pgrst.object+json", "vnd.pgrst.object"):
        return ("object", "application/vnd.pgrst.object+json")
    if main == "application" and sub in ("vnd.pgrst.array+json", "vnd.pgrst.array"):
        if params.get("nulls") == "stripped":
            return ("array_strip", "application/vnd.pgrst.array+json;nulls=stripped")
        return ("json", "application/json")
    return ("other", value)


def parse_accept(value):
    """Wai's parseHttpAccept, simplified: split, order by q (stable)."""
    items = []
    for i, part in enumerate(value.split(",")):
        part = part.strip()
        if not part:
            continue
        q = 1.0
        pieces = part.split(";")
        keep = [pieces[0].strip()]
        for p in pieces[1:]:
            k, _, v = p.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
            else:
                keep.append(p.strip())
        items.append((-q, i, ";".join(keep)))
    items.sort()
    return [decode_media_type(x[2]) for x in items if -x[0] > 0]


# ---------------------------------------------------------------------------
# Query-string grammar (PostgREST.ApiRequest.QueryParams, the parts we need)
# ---------------------------------------------------------------------------

def _is_ident_char(ch):
    # pIdentifierChar = letter <|> digit <|> oneOf "_ $"
    return ch.isalpha() or ch in "0123456789_ $"


def parse_columns(text, what):
    """pColumns = pFieldName `sepBy1` lexeme (char ','), without eof (so
    trailing junk after a complete list is ignored, as in PostgREST).
    Returns a list of names or raises StandInError (PGRST100)."""
    n = len(text)

    def fail(pos, expecting):
        msg = '"failed to parse %s parameter (%s)" (line 1, column %d)' % (
            what, text, pos + 1)
        unexpected = ("end of input" if pos >= n else '"%s"' % text[pos])
        raise StandInError(error_reply(
            400, "PGRST100", msg,
            "unexpected %s expecting %s" % (unexpected, expecting)))

    def field(i):
        if i < n and text[i] == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                else:
                    buf.append(text[j])
                    j += 1
            if j >= n:
                fail(j, '"\\"" or "\\\\"')
            return "".join(buf), j + 1
        parts = []
        while True:
            j = i
            while j < n and _is_ident_char(text[j]):
                j += 1
            if j == i:
                fail(i, "field name (* or [a..z0..9_$])")
            parts.append(text[i:j].strip())
            if j < n and text[j] == "-" and not (j + 1 < n and text[j + 1] == ">"):
                i = j + 1
                continue
            return "-".join(parts), j

    names = []
    name, i = field(0)
    names.append(name)
    while True:
        j = i
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == ",":
            j += 1
            while j < n and text[j] in " \t":
                j += 1
            name, i = field(j)
            names.append(name)
            continue
        if j != i:
            # `lexeme` consumed blanks and no ',' follows: a parsec error.
            fail(j, '","')
        return names


# ---------------------------------------------------------------------------
# Schema cache: the relations of the exposed schemas, read from the catalog
# ---------------------------------------------------------------------------

class Relation:
    """One table, view, materialized view or foreign table of an exposed
    schema, as PostgREST 12.2's schema cache holds it (SchemaCache.hs,
    tablesSqlQuery): its columns and primary key."""

    __slots__ = ("schema", "name", "kind", "columns", "pk_cols", "rows_as_sent",
                 "insertable", "updatable", "deletable")

    def __init__(self, schema, name, kind, columns, pk_cols, rows_as_sent,
                 insertable=True, updatable=True, deletable=True):
        self.schema = schema
        self.name = name
        self.kind = kind            # pg_class.relkind: r p v m f
        # columns: dict name -> (nominal_type, default_expr or None), in
        # attnum order; empty for a relation without a column (PostgREST
        # keeps those too).
        self.columns = columns
        self.pk_cols = pk_cols
        # Not PostgREST's: True when an INSERT or an upsert on the relation
        # writes every row it is given, as given (no rule, no BEFORE or
        # INSTEAD OF row trigger on INSERT / UPDATE that could skip a row or
        # change its id), so that RETURNING id lists the body's ids (the
        # request log relies on it).  Like the rest, known as of the last
        # load: a trigger created since is seen after a reload.  Never true
        # of a view (its _RETURN rule).
        self.rows_as_sent = rows_as_sent
        # tableInsertable / tableUpdatable / tableDeletable: what OPTIONS
        # answers in its Allow header.
        self.insertable = insertable
        self.updatable = updatable
        self.deletable = deletable

    @property
    def is_view(self):
        """PostgREST's tableIsView.  A view's primary key is inferred from
        its definition (allViewsKeyDependencies, a parse of pg_rewrite's
        node trees), which this stand-in does not do: pk_cols is empty and
        requests whose answer depends on it are refused (STANDIN501)."""
        return self.kind in ("v", "m")

    @property
    def qi(self):
        return (self.schema, self.name)

    def describe(self):
        return {"schema": self.schema, "kind": KIND_NAMES.get(self.kind, self.kind),
                "columns": list(self.columns), "pk": list(self.pk_cols)}


KIND_NAMES = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
              "f": "foreign table"}


RoutineParam = collections.namedtuple("RoutineParam", [
    "name",             # "" for an unnamed parameter
    "type",             # its regtype, as text
    "type_max_length",  # the same, character -> character varying, bit -> bit varying
    "required",         # no default
    "variadic",
])


class Routine:
    """A function of an exposed schema, as PostgREST 12.2's schema cache
    holds it (SchemaCache.allFunctions / SchemaCache/Routine.hs): every
    function (prokind f) of the exposed schemas whatever the privileges
    (EXECUTE is the database's business when it is called), but trigger
    functions and those with unnamed parameters it cannot call."""

    __slots__ = ("schema", "name", "params", "ret_schema", "ret_name", "setof",
                 "composite", "composite_alias", "volatility", "has_variadic",
                 "iso_level", "settings")

    def __init__(self, schema, name, params, ret_schema, ret_name, setof, composite,
                 composite_alias, volatility, has_variadic, iso_level, settings):
        self.schema = schema
        self.name = name
        self.params = params                # [RoutineParam]
        self.ret_schema = ret_schema
        self.ret_name = ret_name            # the composite's table, or the type
        self.setof = setof
        self.composite = composite          # a composite type, or OUT/INOUT/TABLE params
        self.composite_alias = composite_alias  # a domain over the return type
        self.volatility = volatility        # "i", "s" or "v"
        self.has_variadic = has_variadic
        self.iso_level = iso_level          # default_transaction_isolation SET on it
        self.settings = settings            # [(name, value)] hoisted settings SET on it

    @property
    def returns_scalar(self):
        return not self.setof and not self.composite

    @property
    def returns_setof_scalar(self):
        return self.setof and not self.composite

    @property
    def returns_single(self):
        return not self.setof

    @property
    def returns_single_composite(self):
        return not self.setof and self.composite

    @property
    def returns_void(self):
        return (self.returns_scalar and self.ret_schema == "pg_catalog"
                and self.ret_name == "void")

    @property
    def table_name(self):
        """Routine.funcTableName: the composite's name, else None."""
        return self.ret_name if self.composite else None

    def sort_key(self):
        # Routine's Ord instance: fewer parameters first.
        return (len(self.params), [tuple(p) for p in self.params])

    def signature(self):
        """As AmbiguousRpc lists it: schema.name(a => type, ...)."""
        return "%s.%s(%s)" % (self.schema, self.name,
                              ", ".join("%s => %s" % (p.name, p.type) for p in self.params))


# PostgREST's db-hoisted-tx-settings default: a function's SET of one of
# these (a regular expression match on "name=value") is applied with the
# request's settings.
HOISTED_TX_SETTINGS = ["statement_timeout", "plan_filter.statement_cost_limit",
                       "default_transaction_isolation"]

ISOLATION_LEVELS = {"read committed": "READ COMMITTED",
                    "repeatable read": "REPEATABLE READ",
                    "serializable": "SERIALIZABLE"}


class SchemaCache:
    """What PostgREST's schema cache knows: the relations of the exposed
    schemas (EXPOSED_SCHEMAS), the timezones, the impersonated role's
    settings."""

    # At most this many upsert statements are kept (see insert_sql).
    MAX_STATEMENTS = 64

    def __init__(self, relations, timezones, role_settings, routines=None,
                 api_role_settings=None, api_role_iso=None):
        # relations: dict (schema, name) -> Relation
        self.relations = relations
        self.timezones = timezones
        # --db-role's ALTER ROLE settings (the remote's mode)
        self.role_settings = role_settings
        # routines: dict (schema, name) -> [Routine], fewest parameters first
        self.routines = routines or {}
        # API mode (--jwt-secret): every role's settings and isolation
        # level, as PostgREST's queryRoleSettings reads them.
        self.api_role_settings = api_role_settings or {}
        self.api_role_iso = api_role_iso or {}
        # The SQL text of the upserts built so far: (InsertSpec, as_bytea)
        # -> str.  Bound to this cache: a reload starts afresh.
        self.statements = {}

    def relation(self, schema, name):
        """The relation, or None when the schema cache does not have it."""
        return self.relations.get((schema, name))

    # public.fichas, as before there were other relations (bench/bench.py
    # and the control endpoint's reload_schema answer use these).
    @property
    def _fichas(self):
        return self.relations.get((SCHEMA, TABLE))

    @property
    def has_table(self):
        return self._fichas is not None

    @property
    def columns(self):
        r = self._fichas
        return r.columns if r is not None else None

    @property
    def pk_cols(self):
        r = self._fichas
        return r.pk_cols if r is not None else []

    def insert_sql(self, context, spec, as_bytea):
        """The SQL text of insert_statement(spec, as_bytea), built once
        (composing ~45 columns costs ~5 ms a request).  `context`: a
        connection or cursor, for quoting identifiers."""
        key = (spec, as_bytea)
        text = self.statements.get(key)
        if text is None:
            text = insert_statement(spec, as_bytea).as_string(context)
            if len(self.statements) >= self.MAX_STATEMENTS:
                self.statements.clear()     # tests that try many shapes
            self.statements[key] = text
        return text

    @classmethod
    def load(cls, conn, db_role, schemas=None, api_mode=False):
        schemas = list(schemas or EXPOSED_SCHEMAS)
        with conn.cursor() as cur:
            # The relations: relkind r v m f p, partitions left out (as in
            # tablesSqlQuery); with rows_as_sent.
            # tgtype bits: ROW 1, BEFORE 2, INSERT 4, UPDATE 16, INSTEAD 64.
            cur.execute("""
                SELECT n.nspname::text, c.relname::text, c.relkind::text,
                       NOT c.relhasrules
                       AND NOT EXISTS (SELECT FROM pg_trigger t
                                        WHERE t.tgrelid = c.oid AND t.tgenabled <> 'D'
                                          AND t.tgtype & 1 = 1 AND t.tgtype & 66 <> 0
                                          AND t.tgtype & 20 <> 0),
                       c.relkind IN ('r', 'p') OR pg_relation_is_updatable(c.oid, true) & 8 = 8,
                       c.relkind IN ('r', 'p') OR pg_relation_is_updatable(c.oid, true) & 4 = 4,
                       c.relkind IN ('r', 'p') OR pg_relation_is_updatable(c.oid, true) & 16 = 16
                  FROM pg_class c
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = ANY (%s)
                   AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
                   AND NOT c.relispartition""", (schemas,))
            rels = cur.fetchall()
            # Their columns, with the default PostgREST records (a domain's
            # default, an identity's nextval, none for a generated column).
            cur.execute("""
                SELECT n.nspname::text, c.relname::text, a.attname::text,
                       format_type(a.atttypid, a.atttypmod),
                       CASE
                         WHEN t.typbasetype <> 0 AND ad.adbin IS NULL
                           THEN pg_get_expr(t.typdefaultbin, 0)
                         WHEN a.attidentity = 'd'
                           THEN (SELECT format('nextval(%%s)',
                                               quote_literal(sn.nspname || '.' || s.relname))
                                   FROM pg_depend dep
                                   JOIN pg_class s ON s.oid = dep.objid
                                   JOIN pg_namespace sn ON sn.oid = s.relnamespace
                                  WHERE dep.refobjid = a.attrelid
                                    AND dep.refobjsubid = a.attnum
                                    AND dep.deptype = 'i' AND s.relkind = 'S'
                                  LIMIT 1)
                         WHEN a.attgenerated = 's' THEN NULL
                         ELSE pg_get_expr(ad.adbin, ad.adrelid)::text
                       END
                  FROM pg_attribute a
                  JOIN pg_class c ON c.oid = a.attrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  JOIN pg_type t ON t.oid = a.atttypid
                  LEFT JOIN pg_attrdef ad
                         ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                 WHERE n.nspname = ANY (%s)
                   AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
                   AND NOT c.relispartition
                   AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY 1, 2, a.attnum""", (schemas,))
            cols = cur.fetchall()
            # Primary keys of tables (contype 'p' on relkind r / p).
            cur.execute("""
                SELECT n.nspname::text, c.relname::text,
                       array_agg(a.attname::text ORDER BY k.ord)
                  FROM pg_constraint con
                  JOIN pg_class c ON c.oid = con.conrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                 CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                 WHERE con.contype = 'p' AND c.relkind IN ('r', 'p')
                   AND n.nspname = ANY (%s)
                 GROUP BY 1, 2""", (schemas,))
            pks = {(s, r): list(p) for s, r, p in cur.fetchall()}
            cur.execute("SELECT name FROM pg_timezone_names")
            tzs = {r[0] for r in cur.fetchall()}
            routines = load_routines(cur, schemas)
            api_settings, api_iso = ({}, {})
            if api_mode:
                api_settings, api_iso = load_api_role_settings(cur)
            role_settings = []
            if db_role:
                # PostgREST applies the impersonated role's settings
                # (ALTER ROLE ... SET) itself, e.g. Supabase's statement_timeout.
                cur.execute("""
                    SELECT unnest(s.setconfig)
                      FROM pg_db_role_setting s
                      JOIN pg_roles r ON r.oid = s.setrole
                     WHERE r.rolname = %s
                       AND s.setdatabase IN (0, (SELECT oid FROM pg_database
                                                  WHERE datname = current_database()))
                     ORDER BY s.setdatabase""", (db_role,))
                for (kv,) in cur.fetchall():
                    k, _, v = kv.partition("=")
                    role_settings.append((k, v))
        conn.rollback()
        columns = collections.defaultdict(dict)
        for schema, rel, name, typ, default in cols:
            columns[(schema, rel)][name] = (typ, default)
        relations = {}
        for schema, rel, kind, rows_as_sent, ins, upd, dele in rels:
            qi = (schema, rel)
            relations[qi] = Relation(schema, rel, kind, columns.get(qi, {}),
                                     pks.get(qi, []), bool(rows_as_sent),
                                     bool(ins), bool(upd), bool(dele))
        return cls(relations, tzs, role_settings, routines, api_settings, api_iso)


def load_routines(cur, schemas):
    """The functions of the exposed schemas, as SchemaCache.funcsSqlQuery
    describes them: parameters from proargnames / proargtypes / proargmodes
    taken position by position (input parameters only), required when
    before the first default; the return type through domains to its base;
    composite when it is a composite type or there are OUT / INOUT / TABLE
    parameters; callable unless it has several unnamed parameters, or one
    whose first parameter is not bytea, json, jsonb, text or xml."""
    cur.execute("""
        WITH RECURSIVE to_base(oid, base) AS (
            SELECT t.oid, t.oid FROM pg_type t WHERE t.typbasetype = 0
          UNION ALL
            SELECT d.oid, b.base FROM pg_type d JOIN to_base b ON d.typbasetype = b.oid
        ),
        params AS (
            SELECT p.oid,
                   json_agg(json_build_array(
                       coalesce(a.name, ''),
                       a.type::regtype::text,
                       CASE a.type
                         WHEN 'bit'::regtype THEN 'bit varying'
                         WHEN 'bit[]'::regtype THEN 'bit varying[]'
                         WHEN 'character'::regtype THEN 'character varying'
                         WHEN 'character[]'::regtype THEN 'character varying[]'
                         ELSE a.type::regtype::text END,
                       a.pos <= p.pronargs - p.pronargdefaults,
                       coalesce(a.mode = 'v', false)) ORDER BY a.pos) AS list,
                   count(*) - count(a.name) AS unnamed,
                   (array_agg(a.type ORDER BY a.pos))[1] AS first_type
              FROM pg_proc p,
                   unnest(p.proargnames, p.proargtypes, p.proargmodes)
                     WITH ORDINALITY AS a(name, type, mode, pos)
             WHERE a.type IS NOT NULL
             GROUP BY p.oid
        )
        SELECT n.nspname::text, p.proname::text, coalesce(pa.list, '[]'::json),
               rn.nspname::text, coalesce(rc.relname, rt.typname)::text,
               p.proretset,
               rt.typtype = 'c' OR coalesce(p.proargmodes::text[] && '{t,b,o}', false),
               b.oid <> b.base,
               p.provolatile::text,
               p.provariadic <> 0,
               (SELECT lower(split_part(split_part(c, '=', 2), ',', 1))
                  FROM unnest(p.proconfig) c
                 WHERE c LIKE 'default_transaction_isolation%%' LIMIT 1),
               (SELECT coalesce(json_agg(json_build_array(
                          substr(c, 1, strpos(c, '=') - 1), substr(c, strpos(c, '=') + 1))), '[]')
                  FROM unnest(p.proconfig) c WHERE c ~ ANY (%s))
          FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
          LEFT JOIN params pa ON pa.oid = p.oid
          JOIN to_base b ON b.oid = p.prorettype
          JOIN pg_type rt ON rt.oid = b.base
          JOIN pg_namespace rn ON rn.oid = rt.typnamespace
          LEFT JOIN pg_class rc ON rc.oid = rt.typrelid
         WHERE n.nspname = ANY (%s)
           AND p.prokind = 'f'
           AND rt.oid <> 'trigger'::regtype
           AND (pa.oid IS NULL OR pa.unnamed = 0
                OR (pa.unnamed = 1 AND pa.first_type IN ('bytea'::regtype, 'json'::regtype,
                                                         'jsonb'::regtype, 'text'::regtype,
                                                         'xml'::regtype)))""",
                (HOISTED_TX_SETTINGS, schemas))
    routines = collections.defaultdict(list)
    for (schema, name, params, rschema, rname, setof, composite, alias, vol, variadic,
         iso, settings) in cur.fetchall():
        routines[(schema, name)].append(Routine(
            schema, name, [RoutineParam(*p) for p in params], rschema, rname, setof,
            composite, alias, vol, variadic, iso, [tuple(kv) for kv in settings]))
    for procs in routines.values():
        procs.sort(key=Routine.sort_key)
    return dict(routines)


def load_api_role_settings(cur):
    """PostgREST's queryRoleSettings: the settings (ALTER ROLE ... SET, for
    every database) of the roles the login role is a direct member of, of
    parameters a user may set (context user, or SET granted), values
    lowercased; default_transaction_isolation apart, as the role's
    transaction isolation level."""
    cur.execute("SELECT current_setting('server_version_num')::int >= 150000")
    granted = ("OR has_parameter_privilege(current_user::regrole::oid, ps.name, 'set')"
               if cur.fetchone()[0] else "")
    cur.execute("""
        SELECT r.rolname::text,
               substr(c, 1, strpos(c, '=') - 1),
               lower(substr(c, strpos(c, '=') + 1))
          FROM pg_auth_members m
          JOIN pg_roles r ON r.oid = m.roleid
          CROSS JOIN LATERAL unnest(r.rolconfig) c
          JOIN pg_settings ps ON ps.name = substr(c, 1, strpos(c, '=') - 1)
         WHERE m.member = current_user::regrole::oid
           AND (ps.context = 'user' %s)""" % granted)
    settings, iso = collections.defaultdict(list), {}
    for role, key, value in cur.fetchall():
        if key == "default_transaction_isolation":
            iso[role] = value
        else:
            settings[role].append((key, value))
    return dict(settings), iso


# ---------------------------------------------------------------------------
# A small connection pool (hasql-pool's role in PostgREST)
# ---------------------------------------------------------------------------

class PoolTimeout(Exception):
    pass


class Pool:
    def __init__(self, dsn, size, timeout_s):
        self.dsn = dsn
        self.sem = threading.BoundedSemaphore(size)
        self.timeout_s = timeout_s
        self.idle = []
        self.lock = threading.Lock()

    def acquire(self):
        """A connection, or PoolTimeout, or psycopg2.OperationalError."""
        if not self.sem.acquire(timeout=self.timeout_s):
            raise PoolTimeout()
        with self.lock:
            conn = self.idle.pop() if self.idle else None
        if conn is None or conn.closed:
            try:
                # UTF8 whatever the database's encoding: a JSON body is
                # UTF-8, and goes to the server in its own bytes (JsonBody).
                conn = psycopg2.connect(self.dsn, client_encoding="UTF8")
            except Exception:
                self.sem.release()
                raise
        return conn

    def release(self, conn, discard=False):
        try:
            if discard or conn.closed or (
                    conn.get_transaction_status()
                    != psycopg2.extensions.TRANSACTION_STATUS_IDLE):
                try:
                    conn.close()
                except Exception:
                    pass
            else:
                with self.lock:
                    self.idle.append(conn)
        finally:
            self.sem.release()

    def close_all(self):
        with self.lock:
            idle, self.idle = self.idle, []
        for c in idle:
            try:
                c.close()
            except Exception:
                pass


# ---------------------------------------------------------------------------
# PostgreSQL errors -> PostgREST answers (PostgREST.Error, v12.2.12)
# ---------------------------------------------------------------------------

def pg_error_status(code, message, authed):
    """pgErrorStatus, case by case and in the same order."""
    c = code or ""
    if c.startswith("08"):
        return 503
    if c.startswith("09"):
        return 500
    if c.startswith("0L") or c.startswith("0P"):
        return 403
    if c in ("23503", "23505"):
        return 409
    if c == "25006":
        return 405
    if c == "21000":
        return 400 if message.endswith("requires a WHERE clause") else 500
    for prefix, st in (("25", 500), ("28", 403), ("2D", 500), ("38", 500),
                       ("39", 500), ("3B", 500), ("40", 500)):
        if c.startswith(prefix):
            return st
    if c == "53400":
        return 500
    if c.startswith("53"):
        return 503
    if c.startswith("54") or c.startswith("55"):
        return 500
    if c == "57P01":
        return 503
    if c.startswith("57") or c.startswith("58") or c.startswith("F0") \
            or c.startswith("HV"):
        return 500
    if c == "P0001":
        return 400
    if c.startswith("P0") or c.startswith("XX"):
        return 500
    if c == "42883":
        return 406 if message.startswith("function xmlagg(") else 404
    if c == "42P01":
        return 404
    if c == "42P17":
        return 500
    if c == "42501":
        return 403 if authed else 401
    if c.startswith("PT"):
        try:
            return int(c[2:])
        except ValueError:
            return 500
    return 400


def db_error_reply(exc, authed):
    """The answer PostgREST gives for a psycopg2 error."""
    code = exc.pgcode
    if code is None:
        # No SQLSTATE: the connection broke (hasql's ClientError).
        return error_reply(503, "PGRST001",
                           "Database client error. Retrying the connection.",
                           str(exc) or None)
    diag = exc.diag
    message = diag.message_primary or ""
    details = diag.message_detail
    hint = diag.message_hint
    if code == "PGRST":
        return raise_pgrst_reply(message, details)
    status = pg_error_status(code, message, authed)
    reason = message if code.startswith("PT") else None
    r = Reply(status, pgrst_body(code, message, details, hint), reason=reason)
    r.error_code = code
    if status == 401:
        r.headers.append(("WWW-Authenticate", "Bearer"))
    return r


def raise_pgrst_reply(message, details):
    """RAISE SQLSTATE 'PGRST' with JSON MESSAGE/DETAIL (full response control)."""
    try:
        m = json.loads(message)
        if not isinstance(m, dict) or "code" not in m or "message" not in m:
            raise ValueError
    except ValueError:
        return error_reply(
            500, "PGRST121",
            "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
            "Invalid JSON value for MESSAGE: '%s'" % message,
            "MESSAGE must be a JSON object with obligatory keys: 'code', "
            "'message' and optional keys: 'details', 'hint'.")
    detail_hint = ("DETAIL must be a JSON object with obligatory keys: 'status', "
                   "'headers' and optional key: 'status_text'.")
    if details is None:
        return error_reply(500, "PGRST121",
                           "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
                           "DETAIL is missing in the RAISE statement", detail_hint)
    try:
        d = json.loads(details)
        if not isinstance(d, dict) or not isinstance(d.get("status"), int) \
                or not isinstance(d.get("headers"), dict):
            raise ValueError
    except ValueError:
        return error_reply(500, "PGRST121",
                           "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
                           "Invalid JSON value for DETAIL: '%s'" % details, detail_hint)
    r = Reply(d["status"], pgrst_body(m["code"], m["message"], m.get("details"),
                                      m.get("hint")),
              headers=[(k, str(v)) for k, v in d["headers"].items()],
              reason=d.get("status_text"))
    r.error_code = m["code"]
    return r


# ---------------------------------------------------------------------------
# JWTs, as PostgREST 12.2 checks them (PostgREST.Auth with the jose library)
# ---------------------------------------------------------------------------

# jose's default validation settings: the algorithms a signature may use.
# "none" is not among them: a token that uses it has no signature to check.
JWT_ALGS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
JWT_OTHER_ALGS = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
                  "PS256", "PS384", "PS512", "EdDSA", "ES256K"}
# PostgREST sets jose's allowed clock skew to 30 seconds.
JWT_SKEW_S = 30


class JwtError(Exception):
    """A token PostgREST refuses: 401 PGRST301 with this message."""


def _b64url(part):
    """Unpadded base64url, as JOSE's compact serialisation uses."""
    if "=" in part or re.search(r"[^A-Za-z0-9_-]", part) or len(part) % 4 == 1:
        raise ValueError("invalid base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _numeric_date(claims, key):
    v = claims.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, decimal.Decimal)):
        raise JwtError('JWTClaimsSetDecodeError "Error in $[\'%s\']: expected '
                       'NumericDate, encountered %s"' % (key, type(v).__name__))
    return float(v)


def verify_jwt(token, secret, now=None):
    """The claims of `token` (a dict), verified as PostgREST 12.2 verifies
    them (Auth.parseToken: jose's verifyClaimsAt with a 30 s skew, the
    secret as one symmetric key), or JwtError with PostgREST's message.
    The order is jose's: decode the compact form, decode the claims set,
    check the signature, then exp, iat, nbf.  Messages for malformed
    headers and claims sets are approximations of jose's."""
    if now is None:
        now = time.time()
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("JWSError (CompactDecodeError Invalid number of parts: "
                       "Expected 3 parts; got %d)" % len(parts))
    try:
        header = json.loads(_b64url(parts[0]))
        payload = _b64url(parts[1])
        signature = _b64url(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise JwtError("JWSError (CompactDecodeError Base64Error)")
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise JwtError('JWSError (JSONDecodeError "Error in $: key \\"alg\\" not found")')
    alg = header["alg"]
    if alg not in JWT_ALGS and alg not in JWT_OTHER_ALGS and alg != "none":
        raise JwtError('JWSError (JSONDecodeError "Error in $.alg: unknown algorithm")')
    try:
        claims = json.loads(payload, parse_float=decimal.Decimal,
                            parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise JwtError('JWTClaimsSetDecodeError "Error in $: not valid JSON"')
    if not isinstance(claims, dict):
        raise JwtError('JWTClaimsSetDecodeError "Error in $: expected Object"')
    for key in ("iss", "sub", "jti"):
        if key in claims and claims[key] is not None and not isinstance(claims[key], str):
            raise JwtError('JWTClaimsSetDecodeError "Error in $[\'%s\']: expected '
                           'StringOrURI"' % key)
    aud = claims.get("aud")
    if aud is not None and not isinstance(aud, str) and not (
            isinstance(aud, list) and all(isinstance(a, str) for a in aud)):
        raise JwtError('JWTClaimsSetDecodeError "Error in $[\'aud\']: expected Audience"')
    exp = _numeric_date(claims, "exp")
    iat = _numeric_date(claims, "iat")
    nbf = _numeric_date(claims, "nbf")
    if alg == "none":
        # Not an allowed algorithm: jose checks no signature, and with the
        # AllValidated policy no signature at all is an error.
        raise JwtError("JWSError JWSNoSignatures")
    if alg not in JWT_ALGS:
        # An asymmetric algorithm with a symmetric key never verifies.
        raise JwtError("JWSError JWSInvalidSignature")
    mac = hmac.new(secret, (parts[0] + "." + parts[1]).encode("ascii"), JWT_ALGS[alg])
    if not hmac.compare_digest(mac.digest(), signature):
        raise JwtError("JWSError JWSInvalidSignature")
    if exp is not None and not now < exp + JWT_SKEW_S:
        raise JwtError("JWT expired")          # PostgREST's own wording
    if iat is not None and iat > now + JWT_SKEW_S:
        raise JwtError("JWTIssuedAtFuture")
    if nbf is not None and not now >= nbf - JWT_SKEW_S:
        raise JwtError("JWTNotYetValid")
    return claims


def sign_jwt(claims, secret, alg="HS256"):
    """An HS256/384/512 token (for tests and tools/: the stand-in itself
    only verifies)."""
    def enc(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")
    head = enc(jdump({"alg": alg, "typ": "JWT"}))
    body = enc(jdump(claims))
    sig = hmac.new(secret, (head + "." + body).encode("ascii"), JWT_ALGS[alg]).digest()
    return head + "." + body + "." + enc(sig)


# ---------------------------------------------------------------------------
# The hint of PGRST202: PostgREST's fuzzy search (Error.noRpcHint, with the
# fuzzyset 0.2.4 package: cosine similarity of 3-grams, else 2-grams, of the
# names lowercased and stripped of all but letters, digits, spaces and
# commas; the 50 best rescored by normalised Levenshtein similarity of the
# lowercased names; 0.33 at least)
# ---------------------------------------------------------------------------

def _fuzzy_grams(value, size):
    s = "-" + "".join(c for c in value.lower() if c.isalnum() or c.isspace() or c == ",") + "-"
    counts = {}
    for i in range(len(s) - size + 1):
        g = s[i:i + size]
        counts[g] = counts.get(g, 0) + 1
    return counts


def _levenshtein_similarity(a, b):
    """text-metrics' levenshteinNorm: 1 - distance / the longer length."""
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))


def fuzzy_get_one(candidates, query, min_score=0.33):
    """Data.FuzzySet.getOne (fromList candidates) query, or None."""
    exact = {}
    for c in candidates:
        exact.setdefault(c.lower(), c)
    key = query.lower()
    if key in exact:
        return exact[key]
    entries = list(exact)
    for size in (3, 2):
        qv = _fuzzy_grams(key, size)
        qn = math.sqrt(sum(v * v for v in qv.values()))
        scored = []
        for e in entries:
            ev = _fuzzy_grams(e, size)
            dot = sum(n * ev[g] for g, n in qv.items() if g in ev)
            if dot:
                en = math.sqrt(sum(v * v for v in ev.values()))
                scored.append((dot / (qn * en), e))
        scored.sort(key=lambda x: -x[0])
        rescored = sorted(((_levenshtein_similarity(key, e), e) for _, e in scored[:50]),
                          key=lambda x: -x[0])
        found = [e for s, e in rescored if s >= min_score]
        if found:
            return exact[found[0]]
    return None


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
# The PostgREST part: one request in, one Reply out
# ---------------------------------------------------------------------------

class RequestContext:
    """What the handler hands to the PostgREST emulation."""

    def __init__(self, method, raw_path, segments, params, headers, body):
        self.method = method
        self.raw_path = raw_path      # path as PostgREST sees it (prefix stripped)
        self.segments = segments      # decoded path segments after /rest/v1
        self.params = params          # list of (name, value), apikey removed
        self.headers = headers        # list of (lowercased name, value)
        self.body = body
        self.relation = None          # (schema, name) of the target table
        self.schema = None            # the request's schema (iSchema)
        self.negotiated = True        # iNegotiatedByProfile
        self.log_table = None         # the table of the path, for the log
        self.role = "anon"
        self.authed = False
        self.claims = {}
        # Filled for the request log: the body's rows and their "id"s.
        # They are noted as cheaply as the request allows (note_rows): from
        # a body PostgREST parses anyway, from the upsert's RETURNING, or
        # else, once the answer is known, by parsing the body (body_rows).
        self.n_rows = None
        self.ids = None
        self.rows_noted = False

    def body_rows(self):
        """Note the body's rows and ids by parsing it, unless already
        noted.  Only for requests the fast ways do not cover (refused,
        failed or dropped ones, rare shapes); not counted in duration_ms
        unless the request succeeded."""
        if self.rows_noted:
            return
        self.rows_noted = True
        try:
            parsed = parse_json_strict(self.body)
        except (ValueError, RecursionError):
            return
        note_rows(self, parsed)

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k == name]

    def param(self, name):
        for k, v in self.params:
            if k == name:
                return v
        return None


class Preferences:
    """PostgREST.ApiRequest.Preferences.fromHeaders."""

    ACCEPTED = {
        "resolution=merge-duplicates", "resolution=ignore-duplicates",
        "return=representation", "return=minimal", "return=headers-only",
        "params=single-object", "count=exact", "count=planned",
        "count=estimated", "tx=commit", "tx=rollback", "missing=default",
        "missing=null", "handling=strict", "handling=lenient",
    }

    def __init__(self, header_values, timezones):
        prefs = []
        for hv in header_values:
            prefs.extend(p.strip() for p in hv.split(","))
        self.raw = prefs

        def first(options):
            for p in prefs:
                if p in options:
                    return p.split("=", 1)[1]
            return None

        self.resolution = first({"resolution=merge-duplicates",
                                 "resolution=ignore-duplicates"})
        self.representation = first({"return=representation", "return=minimal",
                                     "return=headers-only"})
        self.count = first({"count=exact", "count=planned", "count=estimated"})
        # db-tx-end override is off on Supabase: tx=... is accepted, ignored.
        self.missing = first({"missing=default", "missing=null"})
        self.handling = first({"handling=strict", "handling=lenient"})
        self.parameters = first({"params=single-object"})
        tz = None
        for p in prefs:
            if p.startswith("timezone="):
                tz = p[len("timezone="):]
                break
        self.timezone = tz if tz is not None and tz in timezones else None
        max_aff = None
        for p in prefs:
            if p.startswith("max-affected="):
                max_aff = p
                break
        self.invalid = [p for p in prefs
                        if p not in self.ACCEPTED
                        and not (p.startswith("timezone=") and self.timezone is not None)
                        and not p.startswith("max-affected=")]
        self.max_affected = max_aff
        m = re.match(r"^max-affected=(\d+)$", max_aff or "")
        self.max_affected_n = int(m.group(1)) if m else None

    def applied(self, parameters=False, count=False, handling=False, timezone=False,
                max_affected=False):
        """prefAppliedHeader for reads and calls: the preferences given
        among those named, in PostgREST's order."""
        vals = []
        if parameters and self.parameters:
            vals.append("params=" + self.parameters)
        if count and self.count:
            vals.append("count=" + self.count)
        if handling and self.handling:
            vals.append("handling=" + self.handling)
        if timezone and self.timezone:
            vals.append("timezone=" + self.timezone)
        if max_affected and self.handling == "strict" and self.max_affected_n is not None:
            vals.append("max-affected=%d" % self.max_affected_n)
        return ", ".join(vals) if vals else None

    def applied_for_create(self, resolution_applies):
        vals = []
        if self.resolution and resolution_applies:
            vals.append("resolution=" + self.resolution)
        if self.missing:
            vals.append("missing=" + self.missing)
        if self.representation:
            vals.append("return=" + self.representation)
        if self.count:
            vals.append("count=" + self.count)
        if self.handling:
            vals.append("handling=" + self.handling)
        if self.timezone:
            vals.append("timezone=" + self.timezone)
        return ", ".join(vals) if vals else None


class PostgREST:
    """The emulation of PostgREST 12.2 for the table public.fichas."""

    def __init__(self, app):
        self.app = app

    # -- entry point -------------------------------------------------------

    def handle(self, ctx):
        try:
            reply = self._handle(ctx)
        except StandInError as e:
            reply = e.reply
        # App.addRetryHint: every 503 from PostgREST carries Retry-After with
        # the reconnection delay, which is always 0 in 12.2.
        if reply.status == 503 and reply.header("Retry-After") is None:
            reply.headers.append(("Retry-After", "0"))
        return reply

    def _handle(self, ctx):
        self._authenticate(ctx)
        cache = self.app.get_schema_cache()
        if cache is None:
            return error_reply(503, "PGRST002",
                               "Could not query the database for the schema cache. Retrying.")
        segs = ctx.segments
        method = ctx.method
        # getResource
        if segs == []:
            kind, name = "schema", None
        elif len(segs) == 1:
            kind, name = "relation", segs[0]
        elif len(segs) == 2 and segs[0] == "rpc":
            kind, name = "routine", segs[1]
        else:
            return Reply(404, {})
        # getSchema: Content-Profile for writes, Accept-Profile for reads.
        schemas = self.app.schemas
        prof_hdr = "content-profile" if method in ("POST", "PUT", "PATCH", "DELETE") \
            else "accept-profile"
        profile = ctx.header(prof_hdr)
        if profile is not None and profile not in schemas:
            return error_reply(406, "PGRST106",
                               "The schema must be one of the following: "
                               + ", ".join(schemas))
        schema = profile or schemas[0]
        ctx.schema = schema
        # With more than one exposed schema the schema counts as negotiated
        # (and the answer names it in Content-Profile).
        ctx.negotiated = profile is not None or len(schemas) != 1
        # getAction
        if kind == "routine":
            if method not in ("GET", "HEAD", "POST", "OPTIONS"):
                return error_reply(405, "PGRST101",
                                   "Cannot use the %s method on RPC" % method)
            return self.rpc(ctx, cache, schema, name)
        if kind == "schema":
            if method == "OPTIONS":
                parse_read_query(ctx.params, False)
                return respond_info("OPTIONS,GET,HEAD")
            if method in ("GET", "HEAD"):
                return not_implemented("the OpenAPI root (GET /rest/v1/)")
            return error_reply(405, "PGRST117", "Unsupported HTTP method: " + method)
        table = name
        # The relation of the schema cache, or None: PostgREST looks it up
        # by its qualified name, exactly as spelled in the path.
        rel = cache.relation(schema, table)
        ctx.relation = (schema, table)
        if method == "POST":
            return self.post(ctx, cache, rel)
        if method in ("GET", "HEAD"):
            return self.get(ctx, cache, rel)
        if method == "OPTIONS":
            parse_read_query(ctx.params, False)
            if rel is None:
                return Reply(404, {})
            allow = ["OPTIONS,GET,HEAD"]
            if rel.insertable:
                allow.append("POST")
            if rel.insertable and rel.updatable and rel.pk_cols:
                allow.append("PUT")
            if rel.updatable:
                allow.append("PATCH")
            if rel.deletable:
                allow.append("DELETE")
            return respond_info(",".join(allow))
        if method in ("PUT", "PATCH", "DELETE"):
            return not_implemented(method + " on tables")
        return error_reply(405, "PGRST117", "Unsupported HTTP method: " + method)

    # -- auth --------------------------------------------------------------

    def _authenticate(self, ctx):
        """Auth.middleware: the bearer token's claims and role, or a 401.
        With --jwt-secret (API mode) every token is a JWT checked with the
        secret, and its role claim is the request's role (--anon-role
        without a token or a role claim).  Without it (the remote's mode),
        the gateway's keys are the only tokens: the anon key is anon, the
        service role key service_role, anything else a badly signed JWT."""
        auth = ctx.header("authorization")
        token = ""
        if auth:
            # Wai.extractBearerAuth: "bearer" in any case, then the rest.
            m = re.match(r"^(\S*)\s*(.*)$", auth, re.S)
            if m and m.group(1).lower() == "bearer":
                token = m.group(2)
        opts = self.app.opts
        if opts.jwt_secret is not None:
            self._authenticate_jwt(ctx, token)
            return
        if token == "":
            ctx.role, ctx.authed, ctx.claims = "anon", False, {"role": "anon"}
            return
        if token == opts.api_key:
            role = "anon"
        elif opts.service_role_key and token == opts.service_role_key:
            role = "service_role"
        else:
            # Any other token is a JWT the project's secret did not sign.
            parts = token.split(".")
            if len(parts) != 3:
                msg = ("JWSError (CompactDecodeError Invalid number of parts: "
                       "Expected 3 parts; got %d)" % len(parts))
            else:
                msg = "JWSError JWSInvalidSignature"
            raise StandInError(jwt_error_reply(msg))
        claims = _jwt_claims(token) or {}
        claims["role"] = role
        ctx.role, ctx.authed, ctx.claims = role, role != "anon", claims

    def _authenticate_jwt(self, ctx, token):
        opts = self.app.opts
        if token == "":
            claims = {}
        else:
            try:
                claims = verify_jwt(token, opts.jwt_secret.encode("utf-8"))
            except JwtError as e:
                raise StandInError(jwt_error_reply(str(e)))
        role = claims.get("role")
        if role is not None:
            role = role if isinstance(role, str) else jdump(role).decode("utf-8")
        elif opts.anon_role:
            role = opts.anon_role
        else:
            raise StandInError(error_reply(401, "PGRST302", "Anonymous access is disabled",
                                           headers=[("WWW-Authenticate", "Bearer")]))
        claims = dict(claims)
        claims["role"] = role
        ctx.role, ctx.claims = role, claims
        # App.postgrestResponse: authenticated = the role is not the anon role
        ctx.authed = role != opts.anon_role

    # -- POST /rpc/<function>, GET / HEAD / OPTIONS /rpc/<function> ------------

    def rpc(self, ctx, cache, schema, name):
        method = ctx.method
        inv_post = method == "POST"
        rq = parse_read_query(ctx.params, not inv_post)
        prefs = Preferences(ctx.header_all("prefer"), cache.timezones)
        ct = ctx.header("content-type")
        ckind, cmime = decode_media_type(ct) if ct is not None else ("json", "application/json")
        # getPayload: only a POST has one.
        raw, form = None, None
        if inv_post:
            body = ctx.body
            if ckind == "json":
                if rq.columns is not None:
                    keys, raw = set(rq.columns), body      # RawJSON: not parsed
                elif body == b"":
                    keys, raw = set(), body
                else:
                    try:
                        parsed = parse_json_strict(body)
                    except ValueError:
                        return error_reply(400, "PGRST102", "Empty or invalid json")
                    except RecursionError:
                        return not_implemented("JSON nested this deep")
                    keys, raw = self._payload_attributes(parsed, body)
            elif ckind == "urlencoded":
                form = urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                              keep_blank_values=True)
                keys = {k for k, _ in form}
            elif ckind in ("plain", "xml", "octet"):
                keys, raw = set(), body
            elif ckind == "csv":
                keys, raw = self._csv_payload(body)
            else:
                return error_reply(400, "PGRST102", "Content-Type not acceptable: " + cmime)
        else:
            keys = {k for k, _ in rq.rpc_args}
        single_object = prefs.parameters == "single-object"
        proc = find_proc(cache, schema, name, keys, single_object, ckind, inv_post)
        if method == "OPTIONS":
            # RoutineInfoPlan: no query, an Allow header.
            return respond_info("OPTIONS,POST" if proc.volatility == "v"
                                else "OPTIONS,GET,HEAD,POST")
        # The arguments (CallPlan.callParams, and callReadPlan's args).
        if single_object or (len(proc.params) == 1 and proc.params[0].name == ""):
            call_params = ("one", proc.params[0])
        else:
            call_params = ("keys", [p for p in proc.params if p.name in keys])
        if not inv_post:
            args = jdump(json_rpc_params(proc, rq.rpc_args))
        elif form is not None:
            args = jdump(json_rpc_params(proc, form))
        else:
            args = raw
        handler, media = self._negotiate_handler(ctx, head=method == "HEAD")
        if isinstance(handler, Reply):
            return handler
        if prefs.invalid and prefs.handling == "strict":
            return invalid_prefs_reply(prefs)
        if prefs.count not in (None, "exact"):
            return not_implemented("Prefer: count=%s" % prefs.count)
        read_only = not inv_post or proc.volatility != "v"
        alias = proc.table_name or proc.name
        stmt, params = call_statement(proc, call_params, args, rq, alias, handler,
                                      prefs.count == "exact")
        max_aff = prefs.max_affected_n if prefs.handling == "strict" else None

        def run(cur):
            cur.execute(stmt, params)
            row = cur.fetchone()
            page_total = row[1]
            if media == "object" and page_total != 1:
                raise Rollback(singular_error(page_total))
            if max_aff is not None and page_total > max_aff:
                raise Rollback(error_reply(
                    400, "PGRST124", "Query result exceeds max-affected preference constraint",
                    "The query affects %d rows" % page_total))
            return row

        iso = proc.iso_level
        row = self.app.run_transaction(ctx, run, prefs=prefs, read_only=read_only,
                                       iso_level=ISOLATION_LEVELS.get(iso) if iso else None,
                                       func_settings=proc.settings)
        if isinstance(row, Reply):
            return row
        total, page_total, body_text, guc_headers, guc_status = row[:5]
        status, content_range = range_status(rq.offset or 0, page_total, total)
        headers = [("Content-Range", content_range)]
        applied = prefs.applied(parameters=True, count=True, handling=True,
                                timezone=True, max_affected=True)
        if applied:
            headers.append(("Preference-Applied", applied))
        if proc.returns_void:
            status, out = 204, b""
        else:
            headers += self._content_type_headers(ctx, media)
            out = b"" if method == "HEAD" else (body_text or "").encode("utf-8")
            if status == 416:
                out = range_error_body(rq.offset or 0, total)
        reply = Reply(status, out, headers)
        return override_status_headers(reply, guc_status, guc_headers)

    def _content_type_headers(self, ctx, media):
        """Response.contentTypeHeaders: the media type, and the schema when
        it was negotiated."""
        mime = ("application/vnd.pgrst.object+json; charset=utf-8" if media == "object"
                else JSON_CT)
        out = [("Content-Type", mime)]
        if ctx.negotiated:
            out.append(("Content-Profile", ctx.schema))
        return out

    def _negotiate_handler(self, ctx, head=False):
        """Plan.negotiateContent for reads and calls: (handler, media) with
        handler "json" (json_agg), "single" (the first element, for
        application/vnd.pgrst.object+json) or "none" (HEAD), or a Reply."""
        accept = ctx.header("accept")
        mts = parse_accept(accept) if accept is not None else [("any", "*/*")]
        for kind, mime in mts:
            if kind in ("json", "any"):
                return ("none" if head else "json"), "json"
            if kind == "object":
                return ("none" if head else "single"), "object"
            if kind in ("csv", "array_strip", "geojson", "plain", "xml", "octet",
                        "plan", "openapi"):
                return not_implemented("Accept: " + mime), None
        return error_reply(406, "PGRST107",
                           "None of these media types are available: "
                           + ", ".join(m for _, m in mts)), None

    # -- POST: insert / upsert ---------------------------------------------

    def post(self, ctx, cache, rel):
        # QueryParams.parse comes before the payload.
        columns = None
        on_conflict = None
        select = None
        for k, v in ctx.params:
            if k == "columns":
                if columns is None:
                    columns = parse_columns(v, "columns")
            elif k == "on_conflict":
                if on_conflict is None:
                    on_conflict = parse_columns(v, "on_conflict")
            elif k == "select":
                if select is None:
                    select = v
            else:
                return not_implemented(
                    "the query parameter %r on POST (filters, order, limit)" % k)
        ct = ctx.header("content-type")
        kind, mime = decode_media_type(ct) if ct is not None else ("json", "application/json")
        body = ctx.body
        payload_is_object = False
        # ApiRequest.getPayload
        if kind == "json":
            if columns is not None:
                # RawJSON: PostgREST does not parse the body at all; the
                # database does (and refuses it if it is not JSON).  Nor
                # does this stand-in: the log's rows come from the upsert.
                keys = set(columns)
                raw = body
            else:
                try:
                    parsed = parse_json_strict(body)
                except ValueError:
                    raise StandInError(error_reply(400, "PGRST102", "Empty or invalid json"))
                except RecursionError:
                    return not_implemented("JSON nested this deep")
                note_rows(ctx, parsed)
                keys, raw = self._payload_attributes(parsed, body)
        elif kind == "csv":
            keys, raw = self._csv_payload(body)
            note_rows(ctx, json.loads(raw))
        elif kind == "urlencoded":
            pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                           keep_blank_values=True)
            obj = dict(pairs)
            keys, raw = set(obj), jdump(obj)
            note_rows(ctx, obj)
        else:
            raise StandInError(error_reply(400, "PGRST102",
                                           "Content-Type not acceptable: " + mime))
        stripped = raw.lstrip(b" \t\n\r")
        payload_is_object = stripped[:1] == b"{"

        prefs = Preferences(ctx.header_all("prefer"), cache.timezones)
        # Plan (mutatePlan): resolving the columns of a relation missing
        # from the schema cache fails with NotFound, a 404 with an empty
        # body.  With no column to resolve ([] / [{}] / a scalar), 12.2
        # plans fine and sends the INSERT: the database answers (42P01,
        # or it inserts if the relation exists but the cache is stale).
        if rel is None and keys:
            return Reply(404, {})
        if select is not None and select.strip() not in ("", "*"):
            return not_implemented("select=%s on POST" % select)
        # mutatePlan (resolveOrError): every column must be known; the
        # first unknown one in sorted order is named, with the relation's
        # name (not its schema).
        cols = []
        for name in sorted(keys):
            if name not in rel.columns:
                return error_reply(
                    400, "PGRST204",
                    "Could not find the '%s' column of '%s' in the schema cache"
                    % (name, rel.name))
            cols.append((name,) + rel.columns[name])
        if prefs.invalid and prefs.handling == "strict":
            return error_reply(400, "PGRST122",
                               "Invalid preferences given with handling=strict",
                               "Invalid preferences: " + ", ".join(prefs.invalid))
        neg = self._negotiate(ctx)
        if neg is not None:
            return neg
        # pkCols = maybe mempty tablePKCols tbl: none for a relation the
        # cache lacks.
        pk_cols = rel.pk_cols if rel is not None else []
        rep = prefs.representation
        if rel is not None and rel.is_view and (
                (prefs.resolution is not None and on_conflict is None)
                or rep == "headers-only"):
            # The ON CONFLICT target, Preference-Applied and Location would
            # come from the view's inferred primary key.
            return not_implemented(
                "the primary key of a view (%s.%s): send on_conflict, and no "
                "return=headers-only" % ctx.relation)
        conflict_cols = on_conflict if on_conflict is not None else pk_cols
        returning_rows = rep in ("representation", "headers-only")
        # The log's rows and ids of an unparsed body (`columns`) come from
        # the upsert itself (RETURNING id) when they are surely the body's:
        # every object is written and returned with its own id unless
        # ignore-duplicates skips conflicts or a trigger or rule of the
        # table skips or rewrites rows.  Otherwise: body_rows, below.
        log_ids = (not ctx.rows_noted and "id" in keys
                   and prefs.resolution != "ignore-duplicates"
                   and rel is not None and rel.rows_as_sent)
        spec = InsertSpec(ctx.relation, tuple(cols), payload_is_object,
                          prefs.resolution,
                          tuple(conflict_cols), prefs.missing == "default",
                          returning_rows,
                          tuple(pk_cols) if rep == "headers-only" else (),
                          log_ids)
        # libpq sends a query as a C string: a body with a NUL goes as bytea.
        as_bytea = b"\x00" in raw
        row = self._run_insert(ctx, prefs, cache, spec, raw, as_bytea)
        if isinstance(row, Reply) and row.error_code == "22021" \
                and not as_bytea and not is_utf8(raw):
            # Invalid UTF-8 in a body sent inline: PostgreSQL refused the
            # whole query string before running any of it.  Run it again
            # with the body alone as bytea, so that the error reports the
            # bad bytes of the body exactly as for PostgREST's parameter.
            row = self._run_insert(ctx, prefs, cache, spec, raw, True)
        if isinstance(row, Reply):
            return row
        page_total, location, body_text, guc_headers, guc_status, inserted = row[:6]
        if log_ids:
            ctx.n_rows = page_total
            ctx.ids = json.loads(row[6])
            ctx.rows_noted = True
        if prefs.resolution == "merge-duplicates":
            status = 201 if (inserted is not None and inserted > 0) else 200
        else:
            status = 201
        headers = []
        if location:
            headers.append(("Location", "/" + ctx.relation[1] + "?" + urllib.parse.urlencode(
                [tuple(kv.split("=", 1)) for kv in location])))
        total = "*" if prefs.count is None else str(page_total)
        headers.append(("Content-Range", "*/" + total))
        resolution_applies = bool(pk_cols) or on_conflict is not None
        applied = prefs.applied_for_create(resolution_applies)
        if applied:
            headers.append(("Preference-Applied", applied))
        out = b""
        if rep == "representation":
            # contentTypeHeaders: with more than one exposed schema the
            # schema counts as negotiated, and is named.
            headers.append(("Content-Type", JSON_CT))
            if ctx.negotiated:
                headers.append(("Content-Profile", ctx.relation[0]))
            out = (body_text or "[]").encode("utf-8")
        reply = Reply(status, out, headers)
        reply = override_status_headers(reply, guc_status, guc_headers)
        if 200 <= reply.status < 300:
            ctx.body_rows()
            self.app.count_rows(ctx)
        return reply

    def _run_insert(self, ctx, prefs, cache, spec, raw, as_bytea):
        """Run the upsert of `spec` with the body `raw` as its parameter;
        its result row or an error Reply."""
        def run(cur):
            cur.execute(cache.insert_sql(cur, spec, as_bytea),
                        (body_param(raw, as_bytea),))
            return cur.fetchone()

        return self.app.run_transaction(ctx, run, prefs=prefs, read_only=False)

    @staticmethod
    def _payload_attributes(parsed, raw):
        """ApiRequest.payloadAttributes: the key set, and the body to send."""
        if isinstance(parsed, list):
            if not parsed:
                return set(), b"[]"
            first = parsed[0]
            if not isinstance(first, dict):
                raise StandInError(error_reply(400, "PGRST102", "All object keys must match"))
            canonical = set(first)
            for o in parsed:
                if not isinstance(o, dict) or set(o) != canonical:
                    raise StandInError(error_reply(400, "PGRST102",
                                                   "All object keys must match"))
            return canonical, raw
        if isinstance(parsed, dict):
            return set(parsed), raw
        # Any other JSON value is truncated to an empty array.
        return set(), b"[]"

    @staticmethod
    def _csv_payload(body):
        """text/csv bodies: a header line, then rows; "NULL" is null.
        (cassava's exact parse-error messages are not reproduced.)"""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise StandInError(error_reply(400, "PGRST102", "parse error: invalid UTF-8"))
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows:
            raise StandInError(error_reply(
                400, "PGRST102", "parse error (not enough input) at \"\""))
        header = rows[0]
        out = []
        for i, r in enumerate(rows[1:], start=2):
            if r == []:
                continue
            if len(r) != len(header):
                raise StandInError(error_reply(
                    400, "PGRST102",
                    "parse error: line %d has %d fields, the header %d"
                    % (i, len(r), len(header))))
            out.append({h: (None if v == "NULL" else v) for h, v in zip(header, r)})
        return set(header), jdump(out)

    def _negotiate(self, ctx):
        """Plan.negotiateContent for tables: which Accept we can answer."""
        accept = ctx.header("accept")
        if accept is None:
            return None
        mts = parse_accept(accept)
        for kind, mime in mts:
            if kind in ("json", "any"):
                return None
            if kind in ("csv", "object", "array_strip", "geojson"):
                return not_implemented("Accept: " + mime)
        return error_reply(406, "PGRST107",
                           "None of these media types are available: "
                           + ", ".join(m for _, m in mts))

    # -- GET / HEAD: a read ------------------------------------------------

    def get(self, ctx, cache, rel):
        rq = parse_read_query(ctx.params, False)
        if ctx.header("range") is not None:
            return not_implemented("the Range header")
        prefs = Preferences(ctx.header_all("prefer"), cache.timezones)
        if prefs.count not in (None, "exact"):
            return not_implemented("Prefer: count=%s" % prefs.count)
        handler, media = self._negotiate_handler(ctx, head=ctx.method == "HEAD")
        if isinstance(handler, Reply):
            return handler
        if prefs.invalid and prefs.handling == "strict":
            return invalid_prefs_reply(prefs)
        # 12.2 does not check reads against its schema cache (v13's
        # PGRST205 does): the query goes to the database, which refuses a
        # relation it does not have (42P01) and reads one that the cache
        # does not know yet.
        schema, name = ctx.relation
        tbl = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        select_q, select_p = read_query_sql(tbl, tbl, rq)
        count_q = count_p = None
        if prefs.count == "exact":
            count_q, count_p = count_query_sql(tbl, tbl, rq)
        full, params = result_statement(select_q, select_p, count_q, count_p,
                                        body_sql(handler, None), single=False)

        def run(cur):
            cur.execute(full, params)
            row = cur.fetchone()
            if media == "object" and row[1] != 1:
                raise Rollback(singular_error(row[1]))
            return row

        row = self.app.run_transaction(ctx, run, prefs=prefs, read_only=True)
        if isinstance(row, Reply):
            return row
        total, n, body_text, guc_headers, guc_status = row[:5]
        status, content_range = range_status(rq.offset or 0, n, total)
        headers = [("Content-Range", content_range),
                   ("Content-Location", "/" + name + (("?" + rq.canonical)
                                                      if rq.canonical else ""))]
        headers += self._content_type_headers(ctx, media)
        applied = prefs.applied(count=True, handling=True, timezone=True)
        if applied:
            headers.append(("Preference-Applied", applied))
        out = (body_text or "").encode("utf-8")
        if status == 416:
            out = range_error_body(rq.offset or 0, total)
        elif ctx.method == "HEAD":
            out = b""
        reply = Reply(status, out, headers)
        return override_status_headers(reply, guc_status, guc_headers)


# ---------------------------------------------------------------------------
# Reads and calls: the query string, the function, the statements
# ---------------------------------------------------------------------------

class Rollback(Exception):
    """Raised inside a transaction: roll it back and answer `reply`
    (PostgREST's SQL.condemn, e.g. for PGRST116)."""

    def __init__(self, reply):
        super().__init__(reply.status)
        self.reply = reply


def respond_info(allow):
    """Response.respondInfo: the answer to OPTIONS without CORS preflight."""
    return Reply(200, b"", [("Access-Control-Allow-Origin", "*"), ("Allow", allow)])


def jwt_error_reply(msg):
    return error_reply(401, "PGRST301", msg, headers=[(
        "WWW-Authenticate",
        'Bearer error="invalid_token", error_description=%s' % json.dumps(msg))])


def invalid_prefs_reply(prefs):
    return error_reply(400, "PGRST122", "Invalid preferences given with handling=strict",
                       "Invalid preferences: " + ", ".join(prefs.invalid))


def singular_error(n):
    return error_reply(406, "PGRST116",
                       "JSON object requested, multiple (or no) rows returned",
                       "The result contains %d rows" % n)


def range_status(lower, page_total, total):
    """RangeQuery.rangeStatusHeader: the status and the Content-Range."""
    upper = lower + page_total - 1
    rng = "%d-%d" % (lower, upper) if (total != 0 and lower <= upper) else "*"
    head = "%s/%s" % (rng, "*" if total is None else total)
    if total is None:
        return 200, head
    if lower > total:
        return 416, head
    if 1 + upper - lower < total:
        return 206, head
    return 200, head


def range_error_body(lower, total):
    return jdump(pgrst_body("PGRST103", "Requested range not satisfiable",
                            "An offset of %d was requested, but there are only %d rows."
                            % (lower, total or 0)))


ReadQuery = collections.namedtuple("ReadQuery", [
    "select",       # [column name or "*"]
    "filters",      # [(column, negated, op, value)]
    "order",        # [(column, "ASC"/"DESC"/None, "NULLS FIRST"/"NULLS LAST"/None)]
    "limit",        # int or None
    "offset",       # int or None
    "rpc_args",     # [(name, value)]: GET /rpc/f?name=value
    "columns",      # columns= (names) or None
    "canonical",    # QueryParams.qsCanonical
])

# Every operator PostgREST 12.2 knows; the stand-in runs the first group.
READ_OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
            "like": "LIKE", "ilike": "ILIKE"}
OTHER_OPS = {"match", "imatch", "isdistinct", "fts", "plfts", "phfts", "wfts", "cs", "cd",
             "ov", "sl", "sr", "nxr", "nxl", "adj"}
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def _qp_error(what, value, pos=0, expecting='"not" or operator (eq, gt, ...)'):
    unexpected = '"%s"' % value[pos] if pos < len(value) else "end of input"
    return StandInError(error_reply(
        400, "PGRST100",
        '"failed to parse %s (%s)" (line 1, column %d)' % (what, value, pos + 1),
        "unexpected %s expecting %s" % (unexpected, expecting)))


def _url_encode(text):
    """Network.HTTP.Base.urlEncode: UTF-8, all but [A-Za-z0-9-_.~] escaped."""
    return urllib.parse.quote(text, safe="-_.~")


def canonical_query(params):
    """QueryParams.qsCanonical: the parameters sorted by name (stably), as
    urlEncodeVars renders them (values of one name joined by commas)."""
    ordered = sorted(params, key=lambda kv: kv[0])
    out, done = [], set()
    for k, _ in ordered:
        if k in done:
            continue
        done.add(k)
        vals = [_url_encode(v) for kk, v in ordered if kk == k]
        out.append(_url_encode(k) + "=" + ",".join(vals))
    return "&".join(out)


def parse_read_query(params, is_rpc_read):
    """QueryParams.parse, for the features the stand-in implements: select
    of plain columns, filters eq/neq/gt/gte/lt/lte/like/ilike/in/is (with
    not.), order, limit, offset, columns; on GET /rpc/ a parameter whose
    value is no operator expression is an argument.  Anything else PostgREST
    would accept answers 501; what it would refuse, PGRST100."""
    select = None
    filters, order, rpc_args = [], [], []
    limit = offset = columns = None
    for k, v in params:
        last = k.split(".")[-1]
        if k == "select":
            if select is None:
                select = v
            continue
        if k == "columns":
            if columns is None:
                columns = parse_columns(v, "columns")
            continue
        if k == "on_conflict":
            continue
        if last in ("order", "limit", "offset", "and", "or"):
            if k != last:
                raise StandInError(not_implemented("%s on an embedded resource" % last))
            if last in ("and", "or"):
                raise StandInError(not_implemented("the %s= filter" % last))
            if last == "order":
                order += _parse_order(v)
            else:
                # readMaybe: a value that is no integer is ignored.
                if re.match(r"^-?\d+$", v.strip()):
                    n = int(v)
                    if n < 0:
                        raise StandInError(not_implemented("a negative %s" % last))
                    if last == "limit":
                        limit = n
                    else:
                        offset = n
            continue
        f = _parse_filter(k, v, is_rpc_read)
        if f is None:
            rpc_args.append((k, v))
        else:
            filters.append(f)
    items = []
    for s in (select.split(",") if select is not None and select.strip() else ["*"]):
        s = s.strip()
        if s != "*" and not _IDENT_RE.match(s):
            raise StandInError(not_implemented("select=%s (only plain columns)" % select))
        items.append(s)
    return ReadQuery(items, filters, order, limit, offset, rpc_args, columns,
                     canonical_query(params))


def _parse_filter(key, value, is_rpc_read):
    """(column, negated, op, value), or None for an RPC argument."""
    rest, negated = value, False
    if rest.startswith("not."):
        negated, rest = True, rest[4:]
    op, dot, val = rest.partition(".")
    base = op.split("(")[0]
    known = base in READ_OPS or base in OTHER_OPS or base in ("in", "is")
    if not dot or not known:
        if is_rpc_read:
            return None
        pos = 0
        if negated:
            pos = 4
        raise _qp_error("filter", value, pos)
    if base == "is" and val not in ("null", "true", "false", "unknown"):
        if is_rpc_read:
            return None
        raise _qp_error("filter", value, len(value) - len(val),
                        'null or trilean value (unknown, true, false)')
    if op != base or base in OTHER_OPS:
        raise StandInError(not_implemented("the filter %s=%s" % (key, value)))
    if not _IDENT_RE.match(key):
        raise StandInError(not_implemented("the filter %s=%s (embedded or JSON paths)"
                                           % (key, value)))
    if base == "in":
        if not (val.startswith("(") and val.endswith(")")):
            if is_rpc_read:
                return None
            raise _qp_error("filter", value, len(value) - len(val), '"("')
        val = _parse_in_list(val[1:-1]) if len(val) > 2 else []
    return (key, negated, base, val)


def _parse_order(text):
    out = []
    for term in text.split(","):
        parts = term.strip().split(".")
        if not parts or not _IDENT_RE.match(parts[0]):
            raise StandInError(not_implemented("order=%s" % text))
        direction = nulls = None
        for mod in parts[1:]:
            if mod in ("asc", "desc") and direction is None and nulls is None:
                direction = mod.upper()
            elif mod in ("nullsfirst", "nullslast") and nulls is None:
                nulls = "NULLS FIRST" if mod == "nullsfirst" else "NULLS LAST"
            else:
                raise _qp_error("order", text, 0, '"asc", "desc", "nullsfirst" or "nullslast"')
        out.append((parts[0], direction, nulls))
    return out


def _where_sql(qi, rq):
    where, params = [], []
    for col, negated, op, val in rq.filters:
        colsql = sql.SQL("{}.{}").format(qi, sql.Identifier(col))
        if op in READ_OPS:
            if op in ("like", "ilike"):
                val = val.replace("*", "%")
            piece = sql.SQL("{} %s %%s" % READ_OPS[op]).format(colsql)
            params.append(val)
        elif op == "is":
            piece = sql.SQL("{} IS %s" % val.upper()).format(colsql)
        else:
            # in: an untyped array literal, which the database types from
            # the column (PostgREST sends it the same way).
            piece = sql.SQL("{} = ANY (%s)").format(colsql)
            params.append("{%s}" % ",".join(
                '"%s"' % e.replace("\\", "\\\\").replace('"', '\\"') for e in val))
        if negated:
            piece = sql.SQL("NOT {}").format(piece)
        where.append(piece)
    return where, params


def read_query_sql(src, qi, rq):
    """QueryBuilder.readPlanToQuery for one relation without embedding:
    SELECT <qi>.<columns> FROM <src> WHERE ... ORDER BY ... LIMIT ... OFFSET."""
    items = [sql.SQL("{}.*").format(qi) if s == "*"
             else sql.SQL("{}.{}").format(qi, sql.Identifier(s)) for s in rq.select]
    q = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(items), src)
    where, params = _where_sql(qi, rq)
    if where:
        q = q + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
    if rq.order:
        terms = []
        for col, direction, nulls in rq.order:
            t = sql.SQL("{}.{}").format(qi, sql.Identifier(col))
            if direction:
                t = t + sql.SQL(" " + direction)
            if nulls:
                t = t + sql.SQL(" " + nulls)
            terms.append(t)
        q = q + sql.SQL(" ORDER BY ") + sql.SQL(", ").join(terms)
    if rq.limit is not None or rq.offset is not None:
        q = q + sql.SQL(" LIMIT %s OFFSET %d" % (
            "ALL" if rq.limit is None else str(rq.limit), rq.offset or 0))
    return q, params


def count_query_sql(src, qi, rq):
    """QueryBuilder.readPlanToCountQuery: SELECT 1 FROM <src> WHERE ..."""
    q = sql.SQL("SELECT 1 FROM {}").format(src)
    where, params = _where_sql(qi, rq)
    if where:
        q = q + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
    return q, params


def body_sql(handler, proc):
    """SqlFragment.handlerF for the JSON handlers (asJsonF, asJsonSingleF)."""
    if handler == "none":
        return sql.SQL("''::text")
    scalar = proc is not None and proc.returns_scalar
    if handler == "single":
        col = "_postgrest_t.pgrst_scalar" if scalar else "_postgrest_t"
        return sql.SQL("coalesce(json_agg(%s)->0, 'null')" % col)
    if proc is not None and proc.returns_single_composite:
        return sql.SQL("coalesce(json_agg(_postgrest_t)->0, 'null')")
    if scalar:
        return sql.SQL("coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null')")
    if proc is not None and proc.returns_setof_scalar:
        return sql.SQL("coalesce(json_agg(_postgrest_t.pgrst_scalar), '[]')")
    return sql.SQL("coalesce(json_agg(_postgrest_t), '[]')")


def result_statement(select_q, select_p, count_q, count_p, body, single):
    """Statements.prepareRead: the read in the pgrst_source CTE, then one
    row: total_result_set, page_total, body, response.headers,
    response.status."""
    parts = [sql.SQL("WITH pgrst_source AS ( "), select_q, sql.SQL(" ) ")]
    params = list(select_p)
    if count_q is not None:
        parts += [sql.SQL(", pgrst_source_count AS ("), count_q, sql.SQL(") ")]
        params += count_p
        total = sql.SQL("(SELECT pg_catalog.count(*) FROM pgrst_source_count)")
    else:
        total = sql.SQL("null::bigint")
    parts += [sql.SQL("SELECT "), total, sql.SQL(" AS total_result_set, "),
              sql.SQL("1" if single else "pg_catalog.count(_postgrest_t)"),
              sql.SQL(" AS page_total, ("), body, sql.SQL(")::text AS body, "),
              sql.SQL("nullif(current_setting('response.headers', true), '') AS response_headers, "
                      "nullif(current_setting('response.status', true), '') AS response_status, "
                      "'' AS response_inserted "
                      "FROM ( SELECT * FROM pgrst_source ) _postgrest_t")]
    return sql.Composed(parts), params


def find_proc(cache, schema, name, keys, single_object, content_kind, inv_post):
    """Plan.findProc: the function called, by name and argument names, or a
    StandInError (PGRST202, PGRST203)."""
    procs = cache.routines.get((schema, name), [])
    matched, fallback = [], []
    for p in procs:
        if _matches_params(p, keys, single_object, content_kind, inv_post):
            matched.append(p)
        elif len(p.params) == 1 and inv_post and (content_kind, p.params[0].type) in (
                ("json", "json"), ("json", "jsonb"), ("plain", "text"), ("xml", "xml"),
                ("octet", "bytea")):
            fallback.append(p)
    if len(matched) == 1:
        return matched[0]
    if matched or len(fallback) > 1:
        ambiguous = matched or fallback
        raise StandInError(error_reply(
            300, "PGRST203",
            "Could not choose the best candidate function between: "
            + ", ".join(p.signature() for p in ambiguous),
            None, "Try renaming the parameters or the function itself in the database "
                  "so function overloading can be resolved"))
    if len(fallback) == 1:
        return fallback[0]
    raise StandInError(no_rpc_reply(cache, schema, name, keys, single_object,
                                    content_kind, inv_post, procs))


def _matches_params(p, keys, single_object, content_kind, inv_post):
    params = p.params
    if single_object:
        return len(params) == 1 and params[0].type in ("json", "jsonb")
    if not params:
        return not keys and not (inv_post and content_kind in ("octet", "plain", "xml"))
    req = {q.name for q in params if q.required}
    opt = {q.name for q in params if not q.required}
    if not opt:
        return keys == req
    if not req:
        return keys <= opt
    return keys - opt == req


def no_rpc_reply(cache, schema, name, keys, single_object, content_kind, inv_post,
                 overloads):
    """Error.hs, NoRpc: 404 PGRST202 with PostgREST's message, details and
    hint."""
    func = schema + "." + name
    arg_keys = sorted(keys)
    prms = ", ".join(arg_keys)

    def fmt(p):
        return " without parameters" if not arg_keys else p

    only_single = single_object or (inv_post and content_kind in ("plain", "xml", "octet"))
    message = ("Could not find the function " + func
               + ("" if only_single else fmt("(" + prms + ")")) + " in the schema cache")
    prms_det = " with parameter" + ("s " if len(arg_keys) > 1 else " ") + prms
    if single_object:
        det = " with a single json/jsonb parameter"
    elif inv_post and content_kind == "plain":
        det = " with a single unnamed text parameter"
    elif inv_post and content_kind == "xml":
        det = " with a single unnamed xml parameter"
    elif inv_post and content_kind == "octet":
        det = " with a single unnamed bytea parameter"
    elif inv_post and content_kind == "json":
        det = fmt(prms_det) + " or with a single unnamed json/jsonb parameter"
    else:
        det = fmt(prms_det)
    details = "Searched for the function " + func + det + \
        ", but no matches were found in the schema cache."
    hint = None
    if not only_single:
        def list_text(names):
            return "(" + ", ".join(sorted(names)) + ")"
        if not overloads:
            best = fuzzy_get_one([n for (s, n) in cache.routines if s == schema], name)
        else:
            best = fuzzy_get_one([list_text(q.name for q in ov.params) for ov in overloads],
                                 list_text(arg_keys))
            best = None if best is None else name + best
        if best is not None:
            hint = "Perhaps you meant to call the function " + schema + "." + best
    return error_reply(404, "PGRST202", message, details, hint)


def json_rpc_params(proc, pairs):
    """CallPlan.jsonRpcParams: query-string (or form) arguments as a JSON
    object of strings; a variadic parameter given several times becomes an
    array; otherwise the last value of a name wins."""
    variadic = {p.name for p in proc.params if p.variadic}
    out = {}
    for k, v in pairs:
        if k in variadic:
            out.setdefault(k, []).append(v)
        else:
            out[k] = v
    return out


def call_statement(proc, call_params, args, rq, alias, handler, count):
    """QueryBuilder.callPlanToQuery inside Statements.prepareCall: the call
    in the pgrst_source CTE, its arguments from json_to_record of the body
    (named notation), the read of its result, one row out."""
    fn = sql.SQL("{}.{}").format(sql.Identifier(proc.schema), sql.Identifier(proc.name))
    scalar = proc.returns_scalar or proc.returns_setof_scalar

    def call_it(arg):
        if scalar:
            return sql.SQL("(SELECT {}({}) pgrst_scalar) pgrst_call").format(fn, arg)
        return sql.SQL("{}({}) pgrst_call").format(fn, arg)

    params = []
    mode, what = call_params
    if mode == "one":
        if what.type == "bytea":
            arg = sql.SQL("%s")
            params.append(psycopg2.Binary(args or b""))
        else:
            arg = sql.SQL("%s::" + what.type.replace("%", "%%"))
            params.append(body_param(args or b"", b"\x00" in (args or b"")))
        from_call = sql.SQL("FROM ") + call_it(arg)
    elif not what:
        from_call = sql.SQL("FROM ") + call_it(sql.SQL(""))
    else:
        payload = args or b""
        is_object = payload.lstrip(b" \t\n\r")[:1] == b"{"
        to_rec = "json_to_record" if is_object else "json_to_recordset"
        names = sql.SQL(", ").join(sql.Identifier(p.name) for p in what)
        typed = sql.SQL(", ").join(
            sql.SQL("{} " + p.type_max_length.replace("{", "{{").replace("}", "}}")
                    .replace("%", "%%")).format(sql.Identifier(p.name)) for p in what)
        named = sql.SQL(", ").join(
            sql.SQL("{}{} := pgrst_body.{}").format(
                sql.SQL("VARIADIC " if p.variadic else ""),
                sql.Identifier(p.name), sql.Identifier(p.name)) for p in what)
        as_bytea = b"\x00" in payload or not is_utf8(payload)
        placeholder = sql.SQL("convert_from(%s::bytea, 'UTF8')::json" if as_bytea
                              else "%s::json")
        params.append(body_param(payload, as_bytea))
        from_call = sql.Composed([
            sql.SQL("FROM (SELECT "), placeholder, sql.SQL(" AS json_data) pgrst_payload, "),
            sql.SQL("LATERAL (SELECT "), names,
            sql.SQL(" FROM %s(pgrst_payload.json_data) AS _(" % to_rec), typed,
            sql.SQL(") LIMIT 1) pgrst_body , LATERAL "), call_it(named)])
    if scalar:
        returned = sql.SQL("pgrst_call.pgrst_scalar")
    elif rq.select == ["*"] or "*" in rq.select:
        returned = sql.SQL("{}.*").format(sql.Identifier("pgrst_call"))
    else:
        returned = sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier("pgrst_call"), sql.Identifier(c))
            for c in sorted(set(rq.select)))
    call_q = sql.SQL("SELECT {} ").format(returned) + from_call
    qi = sql.Identifier(alias)
    src = sql.SQL("{} AS {}").format(sql.Identifier("pgrst_source"), qi)
    select_q, select_p = read_query_sql(src, qi, rq)
    parts = [sql.SQL("WITH pgrst_source AS ("), call_q, sql.SQL(") ")]
    if count:
        count_q, count_p = count_query_sql(src, qi, rq)
        parts += [sql.SQL(", pgrst_source_count AS ("), count_q, sql.SQL(") ")]
        params += count_p
        total = sql.SQL("(SELECT pg_catalog.count(*) FROM pgrst_source_count)")
    else:
        total = sql.SQL("null::bigint")
    parts += [sql.SQL("SELECT "), total, sql.SQL(" AS total_result_set, "),
              sql.SQL("1" if proc.returns_single else "pg_catalog.count(_postgrest_t)"),
              sql.SQL(" AS page_total, ("), body_sql(handler, proc), sql.SQL(")::text AS body, "),
              sql.SQL("nullif(current_setting('response.headers', true), '') AS response_headers, "
                      "nullif(current_setting('response.status', true), '') AS response_status, "
                      "'' AS response_inserted FROM ("), select_q,
              sql.SQL(") _postgrest_t")]
    params += select_p
    return sql.Composed(parts), params


def _parse_in_list(text):
    """The elements of in.(a,b,"c,d")."""
    out, i, n = [], 0, len(text)
    while i <= n:
        if i < n and text[i] == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            out.append("".join(buf))
            i = j + 1
            while i < n and text[i] != ",":
                i += 1
            i += 1
        else:
            j = text.find(",", i)
            if j < 0:
                j = n
            out.append(text[i:j])
            i = j + 1
    return out


def note_rows(ctx, parsed):
    """Rows and ids of a body, for the request log and statistics only."""
    ctx.rows_noted = True
    if isinstance(parsed, list):
        ctx.n_rows = len(parsed)
        ctx.ids = [_log_id(o.get("id")) for o in parsed
                   if isinstance(o, dict) and "id" in o]
    elif isinstance(parsed, dict):
        ctx.n_rows = 1
        ctx.ids = [_log_id(parsed["id"])] if "id" in parsed else []
    else:
        ctx.n_rows = 0
        ctx.ids = []


def _jwt_claims(token):
    """The payload of a JWT, unverified, or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        pad = "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + pad))
        return claims if isinstance(claims, dict) else None
    except (ValueError, TypeError):
        return None


def _log_id(v):
    if isinstance(v, decimal.Decimal):
        return str(v)
    return v


def override_status_headers(reply, guc_status, guc_headers):
    """Response.overrideStatusHeaders: response.status / response.headers
    GUCs set by the database (e.g. by a trigger) override the answer."""
    if guc_status is not None:
        m = re.match(r"^\d+", guc_status)
        if not m:
            return error_reply(500, "PGRST112",
                               "response.status guc must be a valid status code")
        reply.status = int(m.group(0))
    if guc_headers is not None:
        try:
            hs = json.loads(guc_headers)
            if not isinstance(hs, list):
                raise ValueError
            pairs = []
            for h in hs:
                if not isinstance(h, dict) or len(h) != 1:
                    raise ValueError
                (k, v), = h.items()
                if not isinstance(v, str):
                    raise ValueError
                pairs.append((k, v))
        except ValueError:
            return error_reply(500, "PGRST111",
                               "response.headers guc must be a JSON array composed "
                               "of objects with a single key and a string value")
        for k, v in pairs:
            if reply.header(k) is None:
                reply.headers.append((k, v))
    return reply


InsertSpec = collections.namedtuple("InsertSpec", [
    "relation",         # (schema, name) of the target
    "cols",             # sorted (name, nominal_type, default) of the keys
    "is_object",        # the body is one object, not an array
    "resolution",       # Prefer: resolution= (None, merge-/ignore-duplicates)
    "conflict_cols",    # on_conflict, else the primary key
    "apply_defaults",   # Prefer: missing=default
    "returning_rows",   # return=representation / headers-only
    "location_pk",      # primary key columns for Location (headers-only)
    "log_ids",          # stand-in only: also return the ids, for the log
])


def build_insert(cols, raw, is_object, resolution, conflict_cols,
                 apply_defaults, returning_rows, location_pk,
                 relation=(SCHEMA, TABLE)):
    """The statement PostgREST 12.2.12 sends for POST on a table (by
    default public.fichas), with the body as ONE json parameter (see
    insert_statement).  `cols` is a sorted list of (name, nominal_type,
    default).  Returns (Composed, params).  The stand-in itself caches the
    statement (SchemaCache.insert_sql)."""
    spec = InsertSpec(tuple(relation), tuple(cols), is_object, resolution,
                      tuple(conflict_cols), apply_defaults, returning_rows,
                      tuple(location_pk), False)
    as_bytea = not is_utf8(raw) or b"\x00" in raw
    return insert_statement(spec, as_bytea), [body_param(raw, as_bytea)]


def is_utf8(raw):
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class JsonBody:
    """The body, as the json parameter of the upsert, in the bytes it came
    in.  psycopg2 binds parameters on the client: it would want a str,
    i.e. decoding the body, then encoding it again and escaping it (~6 ms
    for a batch of 1,000 leads).  The body goes as an E'' literal with its
    backslashes and quotes doubled, which is injection-safe for any bytes
    but NUL, which a query string (a C string for libpq) cannot hold: a
    body with a NUL goes as bytea instead.  Invalid UTF-8 never reaches the
    parser:
    PostgreSQL checks the encoding of the whole query string first (the
    pool's connections are client_encoding UTF8) and refuses it with 22021,
    as it refuses PostgREST's binary parameter."""

    __slots__ = ("raw",)

    def __init__(self, raw):
        self.raw = raw

    def __conform__(self, protocol):
        if protocol is psycopg2.extensions.ISQLQuote:
            return self
        return None

    def getquoted(self):
        return b"E'" + self.raw.replace(b"\\", b"\\\\").replace(b"'", b"''") + b"'"


def body_param(raw, as_bytea):
    """The parameter of insert_statement(spec, as_bytea) for the body."""
    return psycopg2.Binary(raw) if as_bytea else JsonBody(raw)


def insert_statement(spec, as_bytea):
    """The statement PostgREST 12.2.12 sends for POST on spec.relation
    (mutatePlanToQuery Insert + fromJsonBodyF + Statements.prepareWrite),
    with the body as its one json parameter (%s): clean UTF-8 goes as text
    cast to json; anything else (invalid UTF-8, NUL bytes) as bytea through
    convert_from, so that the database, not this script, refuses it, as it
    would refuse PostgREST's binary json parameter.  With spec.log_ids the
    statement also returns the ids of the rows written, for the request log
    (RETURNING <table>.id instead of RETURNING 1, and one more column)."""
    (relation, cols, is_object, resolution, conflict_cols, apply_defaults,
     returning_rows, location_pk, log_ids) = spec
    tbl = sql.SQL("{}.{}").format(sql.Identifier(relation[0]),
                                  sql.Identifier(relation[1]))
    idents = [sql.Identifier(c[0]) for c in cols]
    body_idents = [sql.SQL("{}.{}").format(sql.Identifier("pgrst_body"), i)
                   for i in idents]
    typed = [sql.SQL("{} " + c[1].replace("{", "{{").replace("}", "}}"))
             .format(sql.Identifier(c[0])) for c in cols]
    comma = sql.SQL(", ")

    json_type = "jsonb" if apply_defaults else "json"
    if as_bytea:
        placeholder = sql.SQL("convert_from(%s::bytea, 'UTF8')::" + json_type)
    else:
        placeholder = sql.SQL("%s::" + json_type)

    # fromJsonBodyF body cols includeSelect=True includeLimitOne=False
    parts = [sql.SQL("SELECT "), comma.join(body_idents),
             sql.SQL(" FROM (SELECT "), placeholder, sql.SQL(" AS json_data) pgrst_payload, ")]
    if apply_defaults:
        defs = [sql.SQL("{}, " + c[2].replace("{", "{{").replace("}", "}}")
                        .replace("%", "%%"))
                .format(sql.Literal(c[0])) for c in cols if c[2] is not None]
        defs_jsonb = sql.SQL("jsonb_build_object(") + sql.SQL(",").join(defs) + sql.SQL(")")
        if is_object:
            parts += [sql.SQL("LATERAL (SELECT "), defs_jsonb,
                      sql.SQL(" || pgrst_payload.json_data AS val) pgrst_json_defs, ")]
        else:
            parts += [sql.SQL("LATERAL (SELECT jsonb_agg("), defs_jsonb,
                      sql.SQL(" || elem) AS val from jsonb_array_elements("
                              "pgrst_payload.json_data) elem) pgrst_json_defs, ")]
        final_body = "pgrst_json_defs.val"
        arr_elems = "jsonb_array_elements"
        to_rec = "jsonb_to_record" if is_object else "jsonb_to_recordset"
    else:
        final_body = "pgrst_payload.json_data"
        arr_elems = "json_array_elements"
        to_rec = "json_to_record" if is_object else "json_to_recordset"
    parts += [sql.SQL("LATERAL (SELECT "), comma.join(idents), sql.SQL(" FROM ")]
    if not cols:
        if is_object:
            parts.append(sql.SQL("(values(1)) _ "))
        else:
            parts.append(sql.SQL("%s(%s) _ " % (arr_elems, final_body)))
    else:
        parts += [sql.SQL("%s(%s) AS _(" % (to_rec, final_body)), comma.join(typed),
                  sql.SQL(") ")]
    parts.append(sql.SQL(") pgrst_body "))
    from_body = sql.Composed(parts)

    def inserted_cfg(add):
        sym, num = ("+", "0") if add else ("-", "-1")
        return sql.SQL(
            "set_config('pgrst.inserted', (coalesce(nullif(current_setting("
            "'pgrst.inserted', true), '')::int, 0) %s 1)::text, true) <> '%s'"
            % (sym, num))

    merge = resolution == "merge-duplicates"
    ins = [sql.SQL("INSERT INTO "), tbl]
    ins.append(sql.SQL("(") + comma.join(idents) + sql.SQL(") ") if cols else sql.SQL(" "))
    ins.append(from_body)
    if merge:
        ins += [sql.SQL("WHERE "), inserted_cfg(True)]
    if resolution is not None and conflict_cols:
        ins += [sql.SQL(" ON CONFLICT("),
                comma.join(sql.Identifier(c) for c in conflict_cols),
                sql.SQL(") ")]
        if resolution == "ignore-duplicates" or not cols:
            ins.append(sql.SQL("DO NOTHING"))
        else:
            ins.append(sql.SQL("DO UPDATE SET "))
            ins.append(comma.join(sql.SQL("{} = EXCLUDED.{}").format(i, i) for i in idents))
            ins += [sql.SQL(" WHERE "), inserted_cfg(False)]
    ins.append(sql.SQL(" RETURNING "))
    if returning_rows:
        ins.append(sql.SQL("{}.*").format(tbl))
    elif log_ids:
        ins.append(sql.SQL("{}.{}").format(tbl, sql.Identifier("id")))
    else:
        ins.append(sql.SQL("1"))
    mutate = sql.Composed(ins)

    if location_pk:
        loc = sql.SQL(
            "CASE WHEN pg_catalog.count(_postgrest_t) = 1 THEN coalesce(("
            "WITH data AS (SELECT row_to_json(_) AS row FROM pgrst_source AS _ LIMIT 1) "
            "SELECT array_agg(json_data.key || '=' || coalesce('eq.' || json_data.value, 'is.null')) "
            "FROM data CROSS JOIN json_each_text(data.row) AS json_data "
            "WHERE json_data.key IN ({})), array[]::text[]) ELSE array[]::text[] END"
        ).format(comma.join(sql.Literal(c) for c in location_pk))
    else:
        loc = sql.SQL("array[]::text[]")
    body_f = sql.SQL("coalesce(json_agg(_postgrest_t), '[]')::text") if returning_rows \
        else sql.SQL("''::text")
    inserted_f = sql.SQL("nullif(current_setting('pgrst.inserted', true),'')::int") if merge \
        else sql.SQL("NULL::int")
    stmt = sql.Composed([
        sql.SQL("WITH pgrst_source AS ("), mutate, sql.SQL(") SELECT "),
        sql.SQL("pg_catalog.count(_postgrest_t) AS page_total, "),
        loc, sql.SQL(" AS header, "), body_f, sql.SQL(" AS body, "),
        sql.SQL("nullif(current_setting('response.headers', true), '') AS response_headers, "),
        sql.SQL("nullif(current_setting('response.status', true), '') AS response_status, "),
        inserted_f, sql.SQL(" AS response_inserted "),
    ] + ([sql.SQL(", coalesce(json_agg(_postgrest_t.{}), '[]')::text AS stand_in_ids ")
          .format(sql.Identifier("id"))] if log_ids else []) + [
        sql.SQL("FROM (SELECT * FROM pgrst_source) _postgrest_t"),
    ])
    return stmt


# ---------------------------------------------------------------------------
# Faults, statistics and the request log
# ---------------------------------------------------------------------------

FAULT_KEYS = {"fail_next", "status", "body", "retry_after", "headers",
              "delay_ms", "delay_next", "drop_next", "drop_after_commit_next",
              "drop_with_reset", "down_for_ms", "down",
              "gateway_timeout_over_ms", "paused_project",
              "statement_timeout_ms", "keep_bodies",
              "max_concurrent", "max_concurrent_retry_after"}

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

    def as_json(self, down, down_until):
        return {
            "fail_next": self.fail_next, "status": self.fail_status,
            "body": self.fail_body, "retry_after": self.fail_retry_after,
            "headers": self.fail_headers,
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
        }


def _nonneg_int(d, key):
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ValueError("%s must be a non-negative number" % key)
    return int(v)


# ---------------------------------------------------------------------------
# HTTP listeners
# ---------------------------------------------------------------------------

class StandInServer(ThreadingHTTPServer):
    daemon_threads = True
    # server_close() never waits for a handler thread: one may sit in a
    # client's idle keep-alive connection (the test harness keeps one open
    # to the control port), in a delay or in a query.  Handler threads are
    # daemons, so they never hold up the process's exit either.
    block_on_close = False
    allow_reuse_address = True
    # listen()'s backlog (socketserver's default is 5): a client opening 16
    # connections at once (gs_export with max_in_flight 16) must not see
    # SYNs dropped and retried a second later.
    request_queue_size = 128

    def __init__(self, addr, app, control_only):
        self.app = app
        self.control_only = control_only
        self.conns = set()
        self.conns_lock = threading.Lock()
        # Set once the listener is being stopped: a connection accepted
        # from then on is shut as soon as its handler starts.
        self.closing = False
        self.stopping = False           # serve() returns
        super().__init__(addr, Handler)

    def serve(self, poll_interval=0.05):
        """BaseServer.serve_forever, stopped by setting self.stopping
        (BaseServer.shutdown() waits for serve_forever with no timeout)."""
        with selectors.PollSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            while not self.stopping:
                ready = selector.select(poll_interval)
                if self.stopping:
                    break
                if ready:
                    self._handle_request_noblock()
                self.service_actions()

    def track(self, conn, add):
        with self.conns_lock:
            if add:
                self.conns.add(conn)
                late = self.closing
            else:
                self.conns.discard(conn)
                late = False
        if late:
            _shut(conn)

    def close_connections(self, except_conn=None):
        """Shut every connection this listener accepted (but except_conn),
        so that handler threads reading a request (or an idle keep-alive
        connection) see its end at once, and writers see an error."""
        with self.conns_lock:
            self.closing = True
            conns = list(self.conns)
        for c in conns:
            if c is not except_conn:
                _shut(c)


def _shut(conn):
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Listener:
    """One listening port, which can be closed and reopened (for "down")."""

    def __init__(self, app, host, port, control_only):
        self.app = app
        self.host = host
        self.port = port
        self.control_only = control_only
        self.server = None
        self.thread = None
        self.lock = threading.Lock()

    def start(self):
        with self.lock:
            if self.server is not None:
                return
            last = None
            for _ in range(50):
                try:
                    self.server = StandInServer((self.host, self.port), self.app,
                                                self.control_only)
                    break
                except OSError as e:       # e.g. the port is briefly busy
                    last = e
                    time.sleep(0.05)
            else:
                raise last
            self.port = self.server.server_address[1]
            self.thread = threading.Thread(
                target=self.server.serve, name="listener-%d" % self.port, daemon=True)
            self.thread.start()

    def begin_stop(self, except_conn=None):
        """Stop accepting and shut the accepted connections (but
        except_conn), waiting for nothing; finish_stop() completes it.
        Returns what finish_stop() needs, or None if it was not up."""
        with self.lock:
            srv, self.server = self.server, None
            thread, self.thread = self.thread, None
        if srv is None:
            return None
        srv.stopping = True
        srv.close_connections(except_conn)
        return srv, thread, except_conn

    @staticmethod
    def finish_stop(stopping, deadline):
        """Wait (until deadline, time.monotonic()) for serve() to return,
        close the listening socket (new connections are refused) and shut
        any connection accepted meanwhile.  True if serve() returned in
        time."""
        if stopping is None:
            return True
        srv, thread, except_conn = stopping
        thread.join(max(0.0, deadline - time.monotonic()))
        srv.server_close()
        srv.close_connections(except_conn)
        return not thread.is_alive()

    def stop(self, except_conn=None, timeout=2.0):
        """Close the listening socket (new connections are refused) and
        the connections it accepted; waits at most timeout seconds."""
        return self.finish_stop(self.begin_stop(except_conn),
                                time.monotonic() + timeout)

    @property
    def up(self):
        return self.server is not None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "postgrest/" + POSTGREST_VERSION

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.app.opts.verbose:
            sys.stderr.write("stand_in: %s - %s\n" % (self.address_string(), fmt % args))

    def setup(self):
        super().setup()
        self._reset_on_close = False
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)
            if self._reset_on_close:
                # SO_LINGER 0 + close = RST.  Close the file objects first so
                # that the close reaches the socket now.
                try:
                    self.rfile.close()
                    self.wfile.close()
                    self.connection.close()
                except OSError:
                    pass

    # Every method goes through handle_request (PostgREST answers unknown
    # methods itself, with 405 PGRST117).
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.handle_request
        raise AttributeError(name)

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            data = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ValueError("truncated chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return bytes(data)
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise ValueError("truncated chunk")
                data += chunk
                self.rfile.readline(3)
        n = self.headers.get("Content-Length")
        if n is None:
            return b""
        n = int(n)
        body = self.rfile.read(n)
        if len(body) != n:
            raise ValueError("truncated body")
        return body

    def handle_request(self):
        t0 = time.monotonic()
        started_at = time.time()
        try:
            body = self.read_body()
        except ValueError:
            self.close_connection = True
            self.send_reply(Reply(400, {"message": "Bad request body"}))
            return
        app = self.server.app
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        try:
            if path.startswith("/_control/") or path == "/_control":
                reply = app.control(self, self.command, path, split.query, body)
            elif self.server.control_only:
                reply = Reply(404, {"message": "control port: only /_control/ here"})
            elif path == "/rest/v1" or path.startswith("/rest/v1/"):
                reply = app.rest(self, path, split.query, body, t0, started_at)
            else:
                reply = Reply(404, {"message": "no Route matched with those values"})
        except Exception as e:              # a bug here, not a remote's answer
            traceback.print_exc(file=sys.stderr)
            reply = error_reply(500, "STANDIN500", "stand_in internal error: %r" % (e,))
        if reply.drop:
            self.drop()
            return
        self.send_reply(reply)

    def send_reply(self, reply):
        try:
            self.send_response(reply.status, reply.reason)
            for k, v in reply.headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def drop(self, reset=None):
        """Close the connection without a byte of answer."""
        self.close_connection = True
        if reset is None:
            reset = self.server.app.faults.drop_with_reset
        if reset:
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self._reset_on_close = True
            except OSError:
                pass
        else:
            _shut(self.connection)


# ---------------------------------------------------------------------------
# The application: gateway, faults, stats, control endpoint, transactions
# ---------------------------------------------------------------------------

class App:
    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.Lock()           # faults, stats, log
        self.faults = FaultState()
        self.seq = 0
        self.log = []
        self.stats_requests = 0
        self.stats_rows = 0
        self.by_status = {}
        self.table_stats = {}                  # table -> its stats
        # /rest/v1 requests between receipt and answer: all of them, and
        # those the max_concurrent gateway let through (its count).
        self.concurrent = 0
        self.admitted = 0
        self.max_concurrent_seen = 0
        self.rate_limited = 0
        self.down = False
        self.down_until = None
        self.down_timer = None
        self.down_lock = threading.Lock()
        self.closing = False                   # shutdown() has begun
        self.pool = Pool(opts.dsn, opts.pool_size, opts.pool_timeout)
        # PostgREST's db-schemas (the first is the default) and
        # db-extra-search-path.
        self.schemas = list(opts.schemas)
        self.extra_search_path = list(opts.extra_search_path)
        self.cache = None
        self.cache_lock = threading.Lock()
        self.postgrest = PostgREST(self)
        self.main = Listener(self, opts.host, opts.port, control_only=False)
        self.control_listener = None
        if opts.control_port is not None and opts.control_port >= 0:
            self.control_listener = Listener(self, opts.host, opts.control_port,
                                             control_only=True)
        self._apply_cli_faults()

    def _apply_cli_faults(self):
        o, f = self.opts, self.faults
        f.delay_ms = o.delay_ms or 0
        if o.fail_next:
            f.fail_next = o.fail_next
            f.fail_status = o.fail_status
            if o.fail_retry_after is not None:
                f.fail_retry_after, f.fail_retry_after_set = o.fail_retry_after, True
        f.paused_project = bool(o.paused_project)
        f.gateway_timeout_over_ms = o.gateway_timeout_over_ms
        f.statement_timeout_ms = o.statement_timeout_ms
        f.keep_bodies = bool(o.keep_bodies)
        f.max_concurrent = o.max_concurrent
        f.max_concurrent_retry_after = o.max_concurrent_retry_after

    # -- schema cache ------------------------------------------------------

    def reload_schema(self):
        conn = psycopg2.connect(self.opts.dsn)
        try:
            cache = SchemaCache.load(conn, self.opts.db_role, self.schemas,
                                     api_mode=self.opts.jwt_secret is not None)
        finally:
            conn.close()
        with self.cache_lock:
            self.cache = cache
        return cache

    def get_schema_cache(self):
        with self.cache_lock:
            cache = self.cache
        if cache is None:
            try:
                cache = self.reload_schema()
            except psycopg2.Error:
                return None
        return cache

    # -- database ----------------------------------------------------------

    def run_transaction(self, ctx, fn, prefs, read_only, iso_level=None,
                        func_settings=()):
        """Run fn(cursor) in one transaction, with PostgREST's per-request
        settings first.  Returns fn's result or an error Reply.  The
        isolation level: iso_level (a function's), else in API mode the
        role's, else READ COMMITTED."""
        try:
            conn = self.pool.acquire()
        except PoolTimeout:
            return error_reply(504, "PGRST003",
                               "Timed out acquiring connection from connection pool.")
        except psycopg2.Error as e:
            return error_reply(503, "PGRST000",
                               "Database connection error. Retrying the connection.",
                               str(e))
        discard = False
        if iso_level is None and self.opts.jwt_secret is not None and self.cache is not None:
            iso_level = ISOLATION_LEVELS.get(self.cache.api_role_iso.get(ctx.role, ""))
        try:
            with conn.cursor() as cur:
                if read_only or iso_level:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL %s %s" % (
                        iso_level or "READ COMMITTED",
                        "READ ONLY" if read_only else "READ WRITE"))
                self._set_locals(cur, ctx, prefs, func_settings)
                result = fn(cur)
            conn.commit()
            return result
        except Rollback as r:
            try:
                conn.rollback()
            except psycopg2.Error:
                discard = True
            return r.reply
        except psycopg2.Error as e:
            try:
                conn.rollback()
            except psycopg2.Error:
                discard = True
            if e.pgcode is None or conn.closed:
                discard = True
            return db_error_reply(e, ctx.authed)
        except ValueError as e:
            # psycopg2 refuses to send some strings (it should not happen:
            # build_insert routes NULs through bytea).
            discard = True
            return error_reply(400, "22021", str(e))
        finally:
            self.pool.release(conn, discard)

    def _set_locals(self, cur, ctx, prefs, func_settings=()):
        """Query.setPgLocals: search_path, role settings, role, claims,
        request.method/path/headers/cookies, timezone, the function's
        hoisted settings, in one statement."""
        # The request's schema first (iSchema: the default one, or the
        # profile's), then db-extra-search-path.
        schema = ctx.schema or (ctx.relation[0] if ctx.relation else self.schemas[0])
        settings = [("search_path",
                     ", ".join('"%s"' % s.replace('"', '""')
                               for s in [schema] + self.extra_search_path))]
        cache = self.cache
        if self.opts.jwt_secret is not None:
            # API mode: every request switches to its role, after that
            # role's settings (so that GRANT SET ON PARAMETER to the login
            # role works), as PostgREST 12.2 does.
            if cache is not None:
                settings += cache.api_role_settings.get(ctx.role, [])
            settings.append(("role", ctx.role))
            settings.append(("request.jwt.claims",
                             json.dumps(ctx.claims, sort_keys=True, separators=(",", ":"),
                                        ensure_ascii=False, default=_json_default)))
        else:
            if self.opts.db_role and ctx.role == "anon":
                if cache is not None:
                    settings += cache.role_settings
                settings.append(("role", self.opts.db_role))
            settings.append(("request.jwt.claims", json.dumps(ctx.claims)))
        settings.append(("request.method", ctx.method))
        settings.append(("request.path", ctx.raw_path))
        hdrs = {}
        for k, v in ctx.headers:
            if k != "cookie":
                hdrs[k] = v
        settings.append(("request.headers", json.dumps(hdrs)))
        settings.append(("request.cookies", "{}"))
        if prefs is not None and prefs.timezone:
            settings.append(("timezone", prefs.timezone))
        settings += list(func_settings)
        with self.lock:
            st = self.faults.statement_timeout_ms
        if st is not None:
            settings.append(("statement_timeout", str(int(st))))
        q = "select " + ", ".join(["set_config(%s, %s, true)"] * len(settings))
        params = []
        for k, v in settings:
            params += [k, v]
        cur.execute(q, params)

    # -- /rest/v1/* --------------------------------------------------------

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
            delay = f.delay_ms
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
            elif f.fail_next > 0:
                f.fail_next -= 1
                action = "fail"
                fail = (f.fail_status, f.fail_body, f.fail_body_set,
                        f.fail_retry_after, f.fail_retry_after_set, dict(f.fail_headers))
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
                                     limit_retry_after if action == "rate_limited" else None,
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
                and action != "rate_limited":
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

    # -- /_control/* -------------------------------------------------------

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
                                   "max_concurrent_seen": self.max_concurrent_seen})
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
        if method == "GET" and name == "health":
            return Reply(200, {"ok": True, "port": self.main.port,
                               "control_port": (self.control_listener.port
                                                if self.control_listener else None),
                               "down": self.down})
        return Reply(404, {"error": "unknown control call %s %s" % (method, path)})

    def _apply_cli_faults_reset(self):
        # reset keeps what the command line asked for that is not a
        # one-shot fault (delay, pause, gateway timeout, statement timeout,
        # the concurrency limit).
        o, f = self.opts, self.faults
        f.delay_ms = o.delay_ms or 0
        f.paused_project = bool(o.paused_project)
        f.gateway_timeout_over_ms = o.gateway_timeout_over_ms
        f.statement_timeout_ms = o.statement_timeout_ms
        f.keep_bodies = bool(o.keep_bodies)
        f.max_concurrent = o.max_concurrent
        f.max_concurrent_retry_after = o.max_concurrent_retry_after

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

    # -- lifecycle ---------------------------------------------------------

    def shutdown(self, timeout=SHUTDOWN_TIMEOUT_S):
        """Stop both listeners and close the pool, waiting for nothing
        longer than timeout seconds in all: no handler thread is waited
        for (they are daemons: one may sit in an idle keep-alive
        connection, in a delay or in a query), and every connection either
        listener accepted is shut first.  True if all stopped in time."""
        deadline = time.monotonic() + timeout
        # From here on, no down timer or control call brings the main
        # listener back up.  The lock is only waited for so long (a
        # control call taking the main listener down holds it).
        got = self.down_lock.acquire(timeout=timeout / 2)
        try:
            self.closing = True
            if self.down_timer is not None:
                self.down_timer.cancel()
                self.down_timer = None
        finally:
            if got:
                self.down_lock.release()
        listeners = [self.main] + ([self.control_listener] if self.control_listener else [])
        stopping = [lst.begin_stop() for lst in listeners]
        ok = all([Listener.finish_stop(st, deadline) for st in stopping])
        self.pool.close_all()
        return ok


# ---------------------------------------------------------------------------
# Schema initialisation and the command line
# ---------------------------------------------------------------------------

CREATE_RE = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:UNLOGGED\s+)?"
    r"(TABLE|VIEW|MATERIALIZED\s+VIEW|FUNCTION|PROCEDURE|SEQUENCE|TYPE)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?((?:\"[^\"]+\"|[\w$]+)(?:\.(?:\"[^\"]+\"|[\w$]+))?)",
    re.IGNORECASE)


def init_schema(dsn, schema_file):
    """Drop what the schema file creates (tables, views, functions,
    sequences, types: found by a scan of its CREATE statements, dropped IF
    EXISTS ... CASCADE in reverse order), then run the file.  Only those
    objects are touched, so the database may hold other tables."""
    with open(schema_file, encoding="utf-8") as fh:
        text = fh.read()
    no_comments = re.sub(r"--[^\n]*", "", text)
    objs = [(re.sub(r"\s+", " ", m.group(1).upper()), m.group(2))
            for m in CREATE_RE.finditer(no_comments)]
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            for kind, name in reversed(objs):
                cur.execute("DROP %s IF EXISTS %s CASCADE" % (kind, name))
            cur.execute(text)
        conn.commit()
    finally:
        conn.close()


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        fh.write("%d\n" % port)
    os.replace(tmp, path)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True, help="0 picks a free port")
    p.add_argument("--host", default="127.0.0.1", help="a loopback address")
    p.add_argument("--dsn", required=True, help="libpq DSN of the remote database")
    p.add_argument("--api-key", required=True, help="the anon key the gateway accepts")
    p.add_argument("--service-role-key", default=None,
                   help="a second accepted key, treated as service_role (authenticated)")
    p.add_argument("--port-file", default=None)
    p.add_argument("--control-port", type=int, default=0,
                   help="control-only port that stays up while 'down' (0: any free "
                        "port, -1: none)")
    p.add_argument("--control-port-file", default=None)
    p.add_argument("--schema-file", action="append", default=None,
                   help="SQL file for --init-schema (repeatable, run in order; "
                        "default: fichas.sql)")
    p.add_argument("--init-schema", action="store_true",
                   help="drop and create the schema files' objects before serving")
    p.add_argument("--db-role", "--anon-role", dest="db_role", default=None,
                   help="PostgREST's db-anon-role: the role of requests without a "
                        "token (or whose JWT has no role claim).  Without --jwt-secret: "
                        "SET LOCAL for requests with the anon key or no token, other "
                        "requests stay the DSN's user")
    p.add_argument("--jwt-secret", default=None,
                   help="API mode: every bearer token is a JWT that must be signed "
                        "with this secret (HS256/384/512, at least 32 characters), and "
                        "each request runs SET LOCAL ROLE to its role claim, with "
                        "request.jwt.claims set; connect with a login role that is no "
                        "superuser (authenticator, NOINHERIT)")
    p.add_argument("--schemas", default=",".join(EXPOSED_SCHEMAS),
                   help="PostgREST's db-schemas, comma-separated; the first is the "
                        "default (default: %(default)s, as on Supabase)")
    p.add_argument("--extra-search-path", default=",".join(EXTRA_SEARCH_PATH),
                   help="PostgREST's db-extra-search-path (default: %(default)s)")
    p.add_argument("--pool-size", type=int, default=10)
    p.add_argument("--pool-timeout", type=float, default=10.0,
                   help="seconds to wait for a pool connection (then 504 PGRST003)")
    p.add_argument("--statement-timeout-ms", type=int, default=None)
    p.add_argument("--delay-ms", type=int, default=0,
                   help="every /rest/v1 answer waits this long: a WAN's round trip "
                        "(fault delay_ms)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="a rate-limiting gateway: a /rest/v1 request arriving while "
                        "this many are being processed is answered 429 (fault "
                        "max_concurrent)")
    p.add_argument("--max-concurrent-retry-after", default="1",
                   help="the Retry-After of those 429s, in seconds (default: 1; "
                        "'none': no header)")
    p.add_argument("--fail-next", type=int, default=0)
    p.add_argument("--fail-status", type=int, default=503)
    p.add_argument("--fail-retry-after", default=None)
    p.add_argument("--paused-project", action="store_true")
    p.add_argument("--gateway-timeout-over-ms", type=int, default=None)
    p.add_argument("--keep-bodies", action="store_true")
    p.add_argument("--verbose", action="store_true", help="access log on stderr")
    opts = p.parse_args(argv)
    if opts.host not in ("127.0.0.1", "localhost", "::1") \
            and not opts.host.startswith("127."):
        p.error("--host must be a loopback address")
    if opts.control_port is not None and opts.control_port < 0:
        opts.control_port = None
    if opts.delay_ms < 0:
        p.error("--delay-ms must be >= 0")
    if opts.max_concurrent is not None and opts.max_concurrent < 1:
        p.error("--max-concurrent must be >= 1")
    if opts.max_concurrent_retry_after.lower() == "none":
        opts.max_concurrent_retry_after = None
    opts.schemas = [x.strip() for x in opts.schemas.split(",") if x.strip()]
    if not opts.schemas:
        p.error("--schemas needs at least one schema")
    opts.extra_search_path = [x.strip() for x in opts.extra_search_path.split(",")
                              if x.strip()]
    if opts.jwt_secret is not None and len(opts.jwt_secret) < 32:
        p.error("--jwt-secret must be at least 32 characters (as Supabase's are)")
    opts.anon_role = opts.db_role
    if not opts.schema_file:
        opts.schema_file = [os.path.join(HERE, "fichas.sql")]
    return opts


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if opts.init_schema:
        for schema_file in opts.schema_file:
            init_schema(opts.dsn, schema_file)
    app = App(opts)
    try:
        app.reload_schema()
    except psycopg2.Error as e:
        # PostgREST starts anyway and answers 503 PGRST002 until it can load.
        sys.stderr.write("stand_in: schema cache not loaded: %s\n" % e)

    # SIGTERM, SIGINT and SIGUSR1 are taken by the main thread with
    # sigtimedwait, not by Python-level handlers: a handler runs in the main
    # thread between two bytecodes, wherever that thread is, and one that
    # sets a threading.Event while the main thread is inside that Event's
    # wait() (holding its Condition's lock, which is not reentrant)
    # deadlocks in the lock.  Blocked here, before the first thread is
    # started, they stay blocked in every thread (threads inherit the
    # mask), so each is left pending for sigtimedwait.
    wanted = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, wanted)

    app.main.start()
    if app.control_listener:
        app.control_listener.start()
    if opts.port_file:
        write_port_file(opts.port_file, app.main.port)
    if opts.control_port_file and app.control_listener:
        write_port_file(opts.control_port_file, app.control_listener.port)
    print("stand_in listening on %s:%d" % (opts.host, app.main.port), flush=True)
    if app.control_listener:
        print("stand_in control on %s:%d" % (opts.host, app.control_listener.port),
              flush=True)
    while True:
        info = signal.sigtimedwait(wanted, 1.0)
        if info is None:
            continue
        if info.si_signo == signal.SIGUSR1:
            threading.Thread(target=_safe_reload, args=(app,), daemon=True).start()
            continue
        break
    # Stopping.  A second SIGTERM / SIGINT kills the process at once (the
    # default action, taken by the main thread, which no longer blocks
    # them); past EXIT_DEADLINE_S, faulthandler dumps every thread's stack
    # and exits, and past that SIGALRM's default action ends it whatever
    # state the interpreter is in.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    faulthandler.dump_traceback_later(EXIT_DEADLINE_S, exit=True)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(int(EXIT_DEADLINE_S) + 2)
    if not app.shutdown():
        sys.stderr.write("stand_in: a listener did not stop within %.0f s\n"
                         % SHUTDOWN_TIMEOUT_S)
    return 0


def _safe_reload(app):
    try:
        app.reload_schema()
    except psycopg2.Error as e:
        sys.stderr.write("stand_in: schema reload failed: %s\n" % e)


if __name__ == "__main__":
    sys.exit(main())
