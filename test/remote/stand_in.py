#!/usr/bin/python3
"""stand_in.py -- a PostgREST-12.2-compatible stand-in for gs_export's remote.

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
  (src/PostgREST/Error.hs); a modest `GET` (plain select/filters/order/limit).
  Errors that come from the data (bad values, CHECK, NOT NULL, duplicate id
  in one batch...) are produced by the real database, never pre-validated
  here.  What this server does not implement answers 501 with a body whose
  code is "STANDIN501", so that a test never passes by accident.

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

It prints `stand_in listening on 127.0.0.1:PORT` (and `stand_in control on
127.0.0.1:CPORT`) on stdout once it accepts connections, and writes PORT to
--port-file (atomically).  SIGTERM / SIGINT stop it cleanly; SIGUSR1 reloads
the schema cache, as it does for PostgREST.

CONTROL API (all JSON):
  POST /_control/reset          clear faults, statistics and the request log
  POST /_control/faults         set any of:
     {"fail_next": N, "status": 503, "body": {...}|"raw text"|null,
      "retry_after": "2"|null, "headers": {"X": "y"}}
     {"delay_ms": X}                       every /rest/v1 answer waits X ms
     {"delay_next": N, "delay_ms": X}      only the next N requests wait
     {"drop_next": N}                      read the request, close, no answer
     {"drop_after_commit_next": N}         process (commit) then close
     {"drop_with_reset": true}             drops send a TCP RST, not a FIN
     {"down_for_ms": X} / {"down": true|false}   main port closed (refused)
     {"gateway_timeout_over_ms": X|null}   answers 544 past X ms
     {"paused_project": true|false}        every /rest/v1 request answers 540
     {"statement_timeout_ms": X|null}      SET LOCAL statement_timeout
     {"keep_bodies": true|false}           keep request bodies in the log
  GET  /_control/faults         the current fault state
  POST /_control/reload_schema  re-read the schema cache (every relation):
                                {"ok", "table", "columns", "pk" (of fichas),
                                 "tables": {name: {"schema", "kind",
                                                   "columns", "pk"}}}
  GET  /_control/stats[?table=NAME]     {"requests", "rows", "by_status"},
                                of every request or of those whose path
                                named table NAME
  GET  /_control/requests[?since=SEQ][&table=NAME]   the request log
  GET  /_control/health         {"ok": true, "port", "control_port", "down"}

Semantics worth knowing:
  * Per /rest/v1 request the faults are taken in this order: delay
    (delay_next first, else delay_ms), then drop_next, paused_project,
    fail_next (only one of the three applies), then the gateway key check
    and PostgREST; drop_after_commit_next applies to a request that got that
    far, whatever its answer.  fail_next sends `Retry-After` when
    "retry_after" is given, none when it is null, and "0" for a 503 when the
    key is absent (PostgREST 12.2 puts `Retry-After: 0` on every 503).
    gateway_timeout_over_ms measures from the end of the request body to the
    end of processing, delay included; the database work stands (as behind a
    real gateway).  `down` closes the main listening socket (connections are
    refused) and shuts its open connections; the control port stays up.
  * "rows" in stats counts the rows of 2xx upserts (a drop_after_commit
    counts: it was committed); dropped requests are "dropped" in by_status
    and have "status": null and "would_status" in the log.  reset also
    clears the log and restarts seq at 1; settings given on the command line
    (delay, pause, gateway timeout, statement timeout) survive a reset.
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

Known differences from PostgREST 12.2 (all on paths gs_export does not use):
  * PGRST100 (query-string parse errors): the message is PostgREST's, the
    `details` wording of parsec is approximated.  CSV parse errors: message
    approximated.  JWT errors: any bearer token other than the configured
    key(s) is treated as a badly signed JWT (PGRST301), message approximated.
  * Views: their primary key, which PostgREST infers from the view's
    definition, is not inferred; a POST whose answer depends on it (a
    resolution without on_conflict, return=headers-only) answers 501.
  * /rpc/* answers 404 PGRST202 without looking for functions; the OpenAPI
    root, PUT/PATCH/DELETE/OPTIONS, POST with filters/order/limit or a
    select list, Accept of CSV / vnd.pgrst.object / nulls=stripped, the
    Range header and count= on GET answer 501 STANDIN501.
  * `Prefer: tx=` is accepted and ignored (as with Supabase's settings);
    `max-affected` is ignored for inserts, as in 12.2.
  * Response headers: no Content-Location on GET; Server says postgrest.
"""

import argparse
import base64
import collections
import csv
import decimal
import io
import json
import os
import re
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

    __slots__ = ("schema", "name", "kind", "columns", "pk_cols", "rows_as_sent")

    def __init__(self, schema, name, kind, columns, pk_cols, rows_as_sent):
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


class SchemaCache:
    """What PostgREST's schema cache knows: the relations of the exposed
    schemas (EXPOSED_SCHEMAS), the timezones, the impersonated role's
    settings."""

    # At most this many upsert statements are kept (see insert_sql).
    MAX_STATEMENTS = 64

    def __init__(self, relations, timezones, role_settings):
        # relations: dict (schema, name) -> Relation
        self.relations = relations
        self.timezones = timezones
        self.role_settings = role_settings
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
    def load(cls, conn, db_role):
        schemas = list(EXPOSED_SCHEMAS)
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
                                          AND t.tgtype & 20 <> 0)
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
        for schema, rel, kind, rows_as_sent in rels:
            qi = (schema, rel)
            relations[qi] = Relation(schema, rel, kind, columns.get(qi, {}),
                                     pks.get(qi, []), bool(rows_as_sent))
        return cls(relations, tzs, role_settings)


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
            if method in ("GET", "HEAD"):
                return not_implemented("the OpenAPI root (GET /rest/v1/)")
            if method == "OPTIONS":
                return not_implemented("OPTIONS")
            return error_reply(405, "PGRST117", "Unsupported HTTP method: " + method)
        if len(segs) == 2 and segs[0] == "rpc":
            if method not in ("GET", "HEAD", "POST", "OPTIONS"):
                return error_reply(405, "PGRST101",
                                   "Cannot use the %s method on RPC" % method)
            return error_reply(
                404, "PGRST202",
                "Could not find the function public.%s in the schema cache" % segs[1],
                "Searched for the function public.%s, but no matches were found "
                "in the schema cache." % segs[1])
        if len(segs) != 1:
            return Reply(404, {})
        table = segs[0]
        # getSchema: Content-Profile for writes, Accept-Profile for reads.
        prof_hdr = "content-profile" if method in ("POST", "PUT", "PATCH", "DELETE") \
            else "accept-profile"
        profile = ctx.header(prof_hdr)
        if profile is not None and profile not in EXPOSED_SCHEMAS:
            return error_reply(406, "PGRST106",
                               "The schema must be one of the following: "
                               + ", ".join(EXPOSED_SCHEMAS))
        schema = profile or EXPOSED_SCHEMAS[0]
        # The relation of the schema cache, or None: PostgREST looks it up
        # by its qualified name, exactly as spelled in the path.
        rel = cache.relation(schema, table)
        ctx.relation = (schema, table)
        if method == "POST":
            return self.post(ctx, cache, rel)
        if method in ("GET", "HEAD"):
            return self.get(ctx, cache, rel)
        if method in ("PUT", "PATCH", "DELETE", "OPTIONS"):
            return not_implemented(method + " on tables")
        return error_reply(405, "PGRST117", "Unsupported HTTP method: " + method)

    # -- auth (PostgREST.Auth with the gateway's key as the only JWT) ------

    def _authenticate(self, ctx):
        auth = ctx.header("authorization")
        token = ""
        if auth:
            scheme, _, rest = auth.strip().partition(" ")
            if scheme.lower() == "bearer":
                token = rest.strip()
        if token == "":
            ctx.role, ctx.authed, ctx.claims = "anon", False, {"role": "anon"}
            return
        opts = self.app.opts
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
            raise StandInError(error_reply(
                401, "PGRST301", msg, headers=[(
                    "WWW-Authenticate",
                    'Bearer error="invalid_token", error_description=%s'
                    % json.dumps(msg))]))
        claims = _jwt_claims(token) or {}
        claims["role"] = role
        ctx.role, ctx.authed, ctx.claims = role, role != "anon", claims

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

    # -- GET / HEAD: a plain read ------------------------------------------

    def get(self, ctx, cache, rel):
        select = "*"
        filters = []
        order = []
        limit = offset = None
        for k, v in ctx.params:
            if k == "select":
                select = v
            elif k == "order":
                order.append(v)
            elif k == "limit":
                limit = v
            elif k == "offset":
                offset = v
            else:
                filters.append((k, v))
        if ctx.header("range") is not None:
            return not_implemented("the Range header")
        prefs = Preferences(ctx.header_all("prefer"), cache.timezones)
        if prefs.count:
            return not_implemented("Prefer: count= on GET")
        neg = self._negotiate(ctx)
        if neg is not None:
            return neg
        # 12.2 does not check reads against its schema cache (v13's
        # PGRST205 does): the query goes to the database, which refuses a
        # relation it does not have (42P01) and reads one that the cache
        # does not know yet.
        schema, name = ctx.relation
        tbl = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        ident_re = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
        # select: plain column names or *
        items = []
        for s in (select.split(",") if select.strip() else ["*"]):
            s = s.strip()
            if s == "*":
                items.append(sql.SQL("{}.*").format(tbl))
            elif ident_re.match(s):
                items.append(sql.SQL("{}.{}").format(tbl, sql.Identifier(s)))
            else:
                return not_implemented("select=%s (only plain columns)" % select)
        where, params = [], []
        ops = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<",
               "lte": "<=", "like": "LIKE", "ilike": "ILIKE"}
        for col, expr in filters:
            if not ident_re.match(col):
                return not_implemented("the filter %s=%s" % (col, expr))
            op, _, val = expr.partition(".")
            colsql = sql.SQL("{}.{}").format(tbl, sql.Identifier(col))
            if op in ops:
                if op in ("like", "ilike"):
                    val = val.replace("*", "%")
                where.append(sql.SQL("{} %s %%s" % ops[op]).format(colsql))
                params.append(val)
            elif op == "is" and val in ("null", "true", "false"):
                where.append(sql.SQL("{} IS %s" % val.upper()).format(colsql))
            elif op == "in" and val.startswith("(") and val.endswith(")"):
                # An untyped array literal, which the database types from
                # the column (PostgREST sends it the same way).
                elems = _parse_in_list(val[1:-1])
                where.append(sql.SQL("{} = ANY (%s)").format(colsql))
                params.append("{%s}" % ",".join(
                    '"%s"' % e.replace("\\", "\\\\").replace('"', '\\"')
                    for e in elems))
            else:
                return not_implemented("the filter %s=%s" % (col, expr))
        order_sql = []
        for o in order:
            for term in o.split(","):
                parts = term.strip().split(".")
                if not parts or not ident_re.match(parts[0]):
                    return not_implemented("order=%s" % o)
                piece = sql.SQL("{}.{}").format(tbl, sql.Identifier(parts[0]))
                for mod in parts[1:]:
                    m = {"asc": "ASC", "desc": "DESC", "nullsfirst": "NULLS FIRST",
                         "nullslast": "NULLS LAST"}.get(mod)
                    if m is None:
                        return not_implemented("order=%s" % o)
                    piece = sql.SQL("{} %s" % m).format(piece)
                order_sql.append(piece)
        q = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(items), tbl)
        if where:
            q = q + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
        if order_sql:
            q = q + sql.SQL(" ORDER BY ") + sql.SQL(", ").join(order_sql)
        for word, val in (("LIMIT", limit), ("OFFSET", offset)):
            if val is not None:
                if not re.match(r"^\d+$", val):
                    return error_reply(400, "PGRST100",
                                       '"failed to parse %s parameter (%s)" (line 1, column 1)'
                                       % (word.lower(), val),
                                       "unexpected %r expecting digit" % val[:1])
                q = q + sql.SQL(" %s %d" % (word, int(val)))
        full = sql.SQL(
            "WITH pgrst_source AS ( {} ) SELECT pg_catalog.count(_postgrest_t), "
            "coalesce(json_agg(_postgrest_t), '[]')::text, "
            "nullif(current_setting('response.headers', true), ''), "
            "nullif(current_setting('response.status', true), '') "
            "FROM ( SELECT * FROM pgrst_source ) _postgrest_t").format(q)

        def run(cur):
            cur.execute(full, params)
            return cur.fetchone()

        row = self.app.run_transaction(ctx, run, prefs=prefs, read_only=True)
        if isinstance(row, Reply):
            return row
        n, body_text, guc_headers, guc_status = row
        lower = int(offset) if offset else 0
        rng = "%d-%d/*" % (lower, lower + n - 1) if n > 0 else "*/*"
        headers = [("Content-Range", rng), ("Content-Type", JSON_CT),
                   ("Content-Profile", schema)]
        reply = Reply(200, body_text.encode("utf-8"), headers)
        return override_status_headers(reply, guc_status, guc_headers)


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
              "statement_timeout_ms", "keep_bodies"}

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
    allow_reuse_address = True

    def __init__(self, addr, app, control_only):
        self.app = app
        self.control_only = control_only
        self.conns = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, Handler)

    def track(self, conn, add):
        with self.conns_lock:
            if add:
                self.conns.add(conn)
            else:
                self.conns.discard(conn)

    def close_connections(self, except_conn=None):
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            if c is except_conn:
                continue
            try:
                c.shutdown(socket.SHUT_RDWR)
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
                target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                name="listener-%d" % self.port, daemon=True)
            self.thread.start()

    def stop(self, except_conn=None):
        """Close the listening socket (new connections are refused) and
        the connections it accepted."""
        with self.lock:
            srv, self.server = self.server, None
        if srv is None:
            return
        srv.shutdown()
        srv.server_close()
        srv.close_connections(except_conn)

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
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


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
        self.down = False
        self.down_until = None
        self.down_timer = None
        self.down_lock = threading.Lock()
        self.pool = Pool(opts.dsn, opts.pool_size, opts.pool_timeout)
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

    # -- schema cache ------------------------------------------------------

    def reload_schema(self):
        conn = psycopg2.connect(self.opts.dsn)
        try:
            cache = SchemaCache.load(conn, self.opts.db_role)
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

    def run_transaction(self, ctx, fn, prefs, read_only):
        """Run fn(cursor) in one transaction, with PostgREST's per-request
        settings first.  Returns fn's result or an error Reply."""
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
        try:
            with conn.cursor() as cur:
                if read_only:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED READ ONLY")
                self._set_locals(cur, ctx, prefs)
                result = fn(cur)
            conn.commit()
            return result
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

    def _set_locals(self, cur, ctx, prefs):
        """Query.setPgLocals: search_path, role settings, role, claims,
        request.method/path/headers/cookies, timezone, in one statement."""
        # The request's schema first (iSchema: the default one, or the
        # profile's), then db-extra-search-path.
        schema = ctx.relation[0] if ctx.relation else EXPOSED_SCHEMAS[0]
        settings = [("search_path",
                     ", ".join('"%s"' % s for s in [schema] + EXTRA_SEARCH_PATH))]
        cache = self.cache
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
            if f.delay_next > 0:
                f.delay_next -= 1
                delay = f.delay_next_ms
            action = None
            if f.drop_next > 0:
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
            if action is None and f.drop_after_commit_next > 0:
                f.drop_after_commit_next -= 1
                drop_after = True
            gw_limit = f.gateway_timeout_over_ms

        if delay:
            time.sleep(delay / 1000.0)

        if action == "drop":
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
        if not reply.drop and gw_limit and elapsed_ms > gw_limit:
            reply = Reply(544, GATEWAY_BODIES[544])
            fault = "gateway_timeout"
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
                                   "by_status": dict(self.by_status)})
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
        # one-shot fault (delay, pause, gateway timeout, statement timeout).
        o, f = self.opts, self.faults
        f.delay_ms = o.delay_ms or 0
        f.paused_project = bool(o.paused_project)
        f.gateway_timeout_over_ms = o.gateway_timeout_over_ms
        f.statement_timeout_ms = o.statement_timeout_ms
        f.keep_bodies = bool(o.keep_bodies)

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
            if not self.main.up:
                self.main.start()
            self.down = False
            self.down_until = None

    # -- lifecycle ---------------------------------------------------------

    def shutdown(self):
        self.cancel_down()
        self.main.stop()
        if self.control_listener:
            self.control_listener.stop()
        self.pool.close_all()


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
    p.add_argument("--db-role", default=None,
                   help="role to SET LOCAL for anon requests (as PostgREST does); "
                        "default: stay the DSN's user")
    p.add_argument("--pool-size", type=int, default=10)
    p.add_argument("--pool-timeout", type=float, default=10.0,
                   help="seconds to wait for a pool connection (then 504 PGRST003)")
    p.add_argument("--statement-timeout-ms", type=int, default=None)
    p.add_argument("--delay-ms", type=int, default=0)
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

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def on_usr1(signum, frame):
        threading.Thread(target=_safe_reload, args=(app,), daemon=True).start()

    signal.signal(signal.SIGUSR1, on_usr1)

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
    while not stop.wait(0.1):
        pass
    app.shutdown()
    return 0


def _safe_reload(app):
    try:
        app.reload_schema()
    except psycopg2.Error as e:
        sys.stderr.write("stand_in: schema reload failed: %s\n" % e)


if __name__ == "__main__":
    sys.exit(main())
