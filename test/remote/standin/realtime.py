"""Supabase Realtime's `postgres_changes`, as much of it as the export
screen uses: the websocket at /realtime/v1/websocket on the API's port,
Phoenix channels, and the changes of the jobs and errors tables, fanned
out from the database's own NOTIFY gs_export (API mode only).

Checked against realtime-js 2.99.3, in
test/node/node_modules/@supabase/realtime-js/dist/main/RealtimeClient.js,
test/node/node_modules/@supabase/realtime-js/dist/main/RealtimeChannel.js
and its lib/ (serializer, constants, transformers); supabase-js 2.99.3's
test/node/node_modules/@supabase/supabase-js/dist/index.mjs (the URL is
the project URL + "realtime/v1" with ws(s), the socket adds "/websocket",
params apikey and vsn); and Supabase
Realtime's server (github supabase/realtime at 833cf36:
lib/realtime_web/channels/realtime_channel.ex,
lib/extensions/postgres_cdc_rls/message_dispatcher.ex and
replication_poller.ex):
  * The gateway: GET /realtime/v1/websocket?apikey=KEY&vsn=1.0.0|2.0.0
    with Upgrade: websocket; a key that is not the anon / service key:
    401 (Kong's body), no upgrade; --no-realtime or the control switch
    off: 404 as for any unknown route (the page's fallback).
  * Messages are JSON arrays [join_ref, ref, topic, event, payload] in
    text frames (vsn 1.0.0, and 2.0.0 for everything but user broadcasts,
    which are binary and not served: a binary frame is ignored).
  * "phoenix" "heartbeat" -> phx_reply {status: ok, response: {}}.
  * phx_join on "realtime:<name>" with {config: {postgres_changes:
    [{event, schema, table, filter?}, ...]}, access_token}: the token (else
    the socket's apikey) is verified as API mode verifies a bearer token
    (auth.verify_jwt, the same secret; a bad one: phx_reply status error,
    {reason: ...}); the reply is {status: ok, response: {postgres_changes:
    [each binding as sent, plus "id"]}} (realtime_channel.ex's
    add_id_to_postgres_changes: an integer hash of the params), then a
    "system" push {extension: "postgres_changes", status: "ok", message:
    "Subscribed to PostgreSQL", channel: <name>}; a binding on a table
    this stand-in has no changes for gets status "error" there.
  * "access_token" {access_token}: the channel's token is replaced (no
    reply, as the server's handle_in); an invalid one closes the channel
    (phx_close).  phx_leave: phx_reply ok.  An event on a topic not joined:
    phx_reply error {reason: "unmatched topic"} (Phoenix).
  * A change: [join_ref, null, topic, "postgres_changes", {ids: [ids of
    the channel's matching bindings], data: {type, schema, table,
    commit_timestamp, columns: [{name, type}], errors: null, record,
    old_record (UPDATE, DELETE)}}] (message_dispatcher.ex, "new API";
    replication_poller.ex's generate_record: no record on DELETE).

Where the changes come from, and what is checked (a stand-in, not
Realtime's WAL reader):
  * One connection of the DSN's login role LISTENs to gs_export; each
    notification names a job (gs_export_job_notify: after INSERT, DELETE
    and UPDATE of status / counts).  Status "deleted" is a DELETE
    (old_record {id}, to every matching binding: Realtime does not apply
    row level security to deletes either).  Otherwise the job's row is
    read for each subscribed channel as that channel's user: in one
    transaction of the API mode's pool with the same SET LOCAL ROLE and
    request.jwt.claims a request with that token gets (database.py's
    run_transaction), so the table's policies decide; a row the user may
    not read is not sent.  INSERT when the stand-in has not seen the job
    before and it was created after the stand-in started listening, else
    UPDATE (old_record {id}: replica identity default).  The record is the
    row as read then (two quick changes may carry the same record).
  * The errors table has no notification of its own: on each job
    notification, the errors of that job the channel's user may read and
    had not been sent (nor existed at its join) are sent as INSERTs.
    Updates of error rows (resolved_at) are not sent.
  * A binding's filter: column=eq|neq|lt|lte|gt|gte.value and
    column=in.(a,b) against the record (as text, numbers as numbers);
    DELETEs are not filtered (as Realtime).  event "*" or the type.
  * Not served: broadcast, presence, private channels, token expiry
    while joined (Realtime closes the channel then), the old protocol's
    topics "realtime:schema:table".
"""

import datetime
import json
import select
import socket
import sys
import threading
import time
import traceback
import urllib.parse
import zlib

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from . import websocket as ws
from .auth import JwtError, verify_jwt
from .common import Reply, json_default
from .gateway import GATEWAY_BODIES
from .request import Preferences, RequestContext

WS_PATH = "/realtime/v1/websocket"
CHANNEL = "gs_export"
JOBS = "gestao_scouter_export_jobs"
ERRORS = "gestao_scouter_export_errors"
TABLES = (JOBS, ERRORS)
FILTER_OPS = ("eq", "neq", "lt", "lte", "gt", "gte", "in")


def binding_id(params):
    """An integer that names a binding (Realtime uses :erlang.phash2 of
    the params; any stable integer will do for realtime-js, which only
    compares them)."""
    return zlib.crc32(json.dumps(params, sort_keys=True).encode("utf-8")) & 0x7FFFFFF


def parse_filter(text):
    """'col=op.value' -> (col, op, value), None for no filter; ValueError."""
    if text is None or text == "":
        return None
    col, sep, rest = text.partition("=")
    op, dot, value = rest.partition(".")
    if not sep or not dot or not col or op not in FILTER_OPS:
        raise ValueError("invalid filter %r" % text)
    if op == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise ValueError("invalid filter %r" % text)
        value = [v.strip().strip('"') for v in value[1:-1].split(",")]
    return col, op, value


def _as_text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def filter_matches(flt, record):
    """The filter (parse_filter's) against a record (a dict)."""
    if flt is None:
        return True
    col, op, value = flt
    if col not in record or record[col] is None:
        return False
    have = record[col]
    if op == "in":
        return _as_text(have) in value
    if op in ("eq", "neq"):
        same = _as_text(have) == value
        return same if op == "eq" else not same
    if isinstance(have, (int, float)) and not isinstance(have, bool):
        try:
            want = float(value)
        except ValueError:
            return False
    else:
        have, want = _as_text(have), value
    return {"lt": have < want, "lte": have <= want,
            "gt": have > want, "gte": have >= want}[op]


def utc_now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Binding:
    def __init__(self, params):
        self.params = params
        self.event = params.get("event", "*")
        self.schema = params.get("schema", "public")
        self.table = params.get("table")
        self.filter = parse_filter(params.get("filter"))
        self.id = binding_id(params)

    def wants(self, schema, table, kind):
        return (self.schema == schema and self.table == table
                and (self.event == "*" or str(self.event).upper() == kind))


class Channel:
    def __init__(self, session, topic, join_ref, bindings, token, claims):
        self.session = session
        self.topic = topic
        self.join_ref = join_ref
        self.bindings = bindings
        self.token = token
        self.claims = claims
        self.seen_errors = set()      # ids of error rows sent or there at the join

    def send(self, event, payload, ref=None):
        self.session.send([self.join_ref, ref, self.topic, event, payload])


class Session:
    """One websocket: its reader runs on the HTTP handler's thread; sends
    come from it and from the hub's notification thread."""

    def __init__(self, hub, conn, rfile, apikey):
        self.hub = hub
        self.conn = conn
        self.rfile = rfile
        self.apikey = apikey
        self.lock = threading.Lock()
        self.channels = {}            # topic -> Channel
        self.closed = False

    def send_frame(self, opcode, payload):
        with self.lock:
            if self.closed and opcode != ws.OP_CLOSE:
                return
            try:
                self.conn.sendall(ws.encode_frame(opcode, payload))
            except OSError:
                self.closed = True

    def send(self, msg):
        self.send_frame(ws.OP_TEXT, json.dumps(msg, default=json_default,
                                               ensure_ascii=False))

    def reply(self, msg, status, response):
        join_ref, ref, topic = msg[0], msg[1], msg[2]
        self.send([join_ref, ref, topic, "phx_reply",
                   {"status": status, "response": response}])

    def close(self, code=1000, reason=""):
        self.send_frame(ws.OP_CLOSE, ws.close_payload(code, reason))
        with self.lock:
            self.closed = True
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def run(self):
        reader = ws.MessageReader(self.rfile.read1 if hasattr(self.rfile, "read1")
                                  else self.rfile.read)
        try:
            while not self.closed:
                opcode, data = reader.next()
                if opcode == ws.OP_PING:
                    self.send_frame(ws.OP_PONG, data)
                elif opcode == ws.OP_PONG:
                    pass
                elif opcode == ws.OP_CLOSE:
                    code = data[:2] if len(data) >= 2 else b""
                    self.send_frame(ws.OP_CLOSE, code)
                    with self.lock:
                        self.closed = True
                    break
                elif opcode == ws.OP_TEXT:
                    self.handle(data)
                # binary: user broadcasts (vsn 2.0.0), not served
        except ws.ProtocolError as e:
            self.close(e.code, str(e))
        except (EOFError, OSError, ValueError):
            pass
        finally:
            with self.lock:
                self.closed = True
            self.hub.forget(self)

    def handle(self, text):
        try:
            msg = json.loads(text)
        except ValueError:
            return
        if not (isinstance(msg, list) and len(msg) == 5 and isinstance(msg[2], str)
                and isinstance(msg[3], str)):
            return
        _join_ref, _ref, topic, event, payload = msg
        if not isinstance(payload, dict):
            payload = {}
        if topic == "phoenix":
            if event == "heartbeat":
                self.reply(msg, "ok", {})
            return
        if event == "phx_join":
            self.join(msg, payload)
            return
        chan = self.channels.get(topic)
        if chan is None:
            self.reply(msg, "error", {"reason": "unmatched topic"})
            return
        if event == "phx_leave":
            self.hub.leave(chan)
            self.channels.pop(topic, None)
            self.reply(msg, "ok", {})
        elif event == "access_token":
            token = payload.get("access_token")
            if isinstance(token, str) and token and token != chan.token:
                try:
                    claims = self.hub.verify(token)
                except JwtError:
                    self.hub.leave(chan)
                    self.channels.pop(topic, None)
                    chan.send("phx_close", {}, ref=chan.join_ref)
                    return
                chan.token, chan.claims = token, claims
        # anything else (broadcast, presence): not served, no reply

    def join(self, msg, payload):
        join_ref, topic = msg[0], msg[2]
        if not topic.startswith("realtime:"):
            self.reply(msg, "error", {"reason": "unmatched topic"})
            return
        token = payload.get("access_token") or self.apikey
        try:
            claims = self.hub.verify(token)
        except JwtError as e:
            self.reply(msg, "error", {"reason": "Invalid token: " + str(e)})
            return
        config = payload.get("config") if isinstance(payload.get("config"), dict) else {}
        changes = config.get("postgres_changes") or []
        bindings, response = [], []
        try:
            for p in changes:
                if not isinstance(p, dict):
                    raise ValueError("a binding is an object")
                b = Binding(p)
                bindings.append(b)
                response.append(dict(p, id=b.id))
        except ValueError as e:
            self.reply(msg, "error", {"reason": str(e)})
            return
        old = self.channels.get(topic)
        if old is not None:
            self.hub.leave(old)
        chan = Channel(self, topic, join_ref, bindings, token, claims)
        self.channels[topic] = chan
        self.reply(msg, "ok", {"postgres_changes": response})
        if bindings:
            problem = self.hub.subscribe(chan)
            name = topic[len("realtime:"):]
            chan.send("system", {"extension": "postgres_changes",
                                 "status": "error" if problem else "ok",
                                 "message": problem or "Subscribed to PostgreSQL",
                                 "channel": name})


class Realtime:
    """The hub: sessions, subscribed channels, the LISTEN thread."""

    def __init__(self, app):
        self.app = app
        opts = app.opts
        self.enabled = bool(getattr(opts, "realtime", True)) and opts.jwt_secret is not None
        self.lock = threading.Lock()
        self.sessions = set()
        self.channels = []            # joined channels with bindings
        self.known_jobs = set()       # jobs a notification named (INSERT once)
        self.listen_thread = None
        self.listen_started = None    # the database's now() when LISTEN began
        self.listen_ready = threading.Event()
        self.stopping = False
        self.columns = {}             # (schema, table) -> [{name, type}]

    # -- the HTTP side -------------------------------------------------------

    def upgrade(self, handler, query):
        """Handle GET /realtime/v1/websocket: an error Reply, or None once
        the websocket has run to its end (the connection is then closed)."""
        if not self.enabled:
            return Reply(404, {"message": "no Route matched with those values"})
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        key = params.get("apikey") or handler.headers.get("apikey")
        opts = self.app.opts
        if key is None:
            return Reply(401, {"message": "No API key found in request",
                               "hint": "No `apikey` request header or url param was found."})
        if key != opts.api_key and key != (opts.service_role_key or object()):
            return Reply(401, GATEWAY_BODIES[401])
        if params.get("vsn", "1.0.0") not in ("1.0.0", "2.0.0"):
            return Reply(400, {"message": "unsupported vsn"})
        h = handler.headers
        wskey = h.get("Sec-WebSocket-Key") or ""
        if (handler.command != "GET" or (h.get("Upgrade") or "").lower() != "websocket"
                or "upgrade" not in (h.get("Connection") or "").lower()
                or not ws.valid_key(wskey)):
            return Reply(400, {"message": "a websocket upgrade is expected here"})
        if (h.get("Sec-WebSocket-Version") or "") != "13":
            return Reply(426, {"message": "Sec-WebSocket-Version 13 only"},
                         [("Sec-WebSocket-Version", "13")])
        handler.close_connection = True
        handler.send_response(101, "Switching Protocols")
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Connection", "Upgrade")
        handler.send_header("Sec-WebSocket-Accept", ws.accept_key(wskey))
        handler.end_headers()
        handler.wfile.flush()
        self._ensure_listening()
        session = Session(self, handler.connection, handler.rfile, key)
        with self.lock:
            self.sessions.add(session)
        session.run()
        return None

    def set_enabled(self, on):
        """The control switch: off closes every websocket, and new ones
        are answered 404 (no Realtime in this project)."""
        with self.lock:
            self.enabled = bool(on)
            sessions = list(self.sessions) if not on else []
        for s in sessions:
            s.close(1001, "realtime switched off")

    def stop(self):
        self.stopping = True
        with self.lock:
            sessions = list(self.sessions)
        for s in sessions:
            s.close(1001, "going away")

    def status(self):
        with self.lock:
            return {"enabled": self.enabled, "sockets": len(self.sessions),
                    "channels": len(self.channels),
                    "listening": self.listen_ready.is_set()}

    # -- channels --------------------------------------------------------------

    def verify(self, token):
        return verify_jwt(token, self.app.opts.jwt_secret.encode("utf-8"))

    def forget(self, session):
        with self.lock:
            self.sessions.discard(session)
            self.channels = [c for c in self.channels if c.session is not session]

    def leave(self, chan):
        with self.lock:
            self.channels = [c for c in self.channels if c is not chan]

    def subscribe(self, chan):
        """Register chan's bindings; a message for the "system" push if one
        of them cannot be served, else None."""
        for b in chan.bindings:
            if b.table not in TABLES:
                return ("Unable to subscribe to changes with given parameters: "
                        "this stand-in sends changes of %s only" % ", ".join(TABLES))
            if b.event not in ("*", "INSERT", "UPDATE", "DELETE",
                               "insert", "update", "delete"):
                return "invalid event %r" % b.event
        if any(b.table == ERRORS for b in chan.bindings):
            schema = next(b.schema for b in chan.bindings if b.table == ERRORS)
            rows = self._read_as(chan, "SELECT id::text FROM {} ", schema, ERRORS, ())
            if isinstance(rows, Reply):
                return "reading %s.%s as the user failed: %s" % (
                    schema, ERRORS, rows.body.decode("utf-8", "replace"))
            chan.seen_errors = {r[0] for r in rows}
        with self.lock:
            self.channels.append(chan)
        return None

    # -- the database's notifications ---------------------------------------

    def _ensure_listening(self):
        with self.lock:
            if self.listen_thread is not None:
                return
            self.listen_thread = threading.Thread(target=self._listen_loop,
                                                  name="realtime-listen", daemon=True)
            self.listen_thread.start()
        self.listen_ready.wait(5.0)

    def _listen_loop(self):
        while not self.stopping:
            conn = None
            try:
                conn = psycopg2.connect(self.app.opts.dsn)
                conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
                with conn.cursor() as cur:
                    cur.execute("LISTEN " + CHANNEL)
                    cur.execute("SELECT now()")
                    if self.listen_started is None:
                        self.listen_started = cur.fetchone()[0]
                self.listen_ready.set()
                while not self.stopping:
                    if select.select([conn], [], [], 0.5)[0]:
                        conn.poll()
                        while conn.notifies:
                            n = conn.notifies.pop(0)
                            try:
                                self.dispatch(n.payload)
                            except Exception:
                                traceback.print_exc(file=sys.stderr)
            except psycopg2.Error as e:
                sys.stderr.write("stand_in: realtime LISTEN: %s\n" % e)
                time.sleep(0.5)
            finally:
                if conn is not None:
                    conn.close()

    def dispatch(self, payload):
        """One NOTIFY gs_export: the job's change, and new errors, to every
        channel that wants them."""
        try:
            note = json.loads(payload)
            job_id = note["job_id"]
        except (ValueError, KeyError, TypeError):
            return
        with self.lock:
            channels = list(self.channels)
            first = job_id not in self.known_jobs
            self.known_jobs.add(job_id)
        stamp = utc_now_iso()
        deleted = note.get("status") == "deleted"
        if deleted:
            with self.lock:
                self.known_jobs.discard(job_id)
        for chan in channels:
            if chan.session.closed:
                continue
            for schema in sorted({b.schema for b in chan.bindings if b.table == JOBS}):
                self._job_change(chan, schema, job_id, first, deleted, stamp)
            if not deleted:
                for schema in sorted({b.schema for b in chan.bindings if b.table == ERRORS}):
                    self._new_errors(chan, schema, job_id, stamp)

    def _send_change(self, chan, schema, table, kind, record, old, stamp):
        ids = [b.id for b in chan.bindings if b.wants(schema, table, kind)
               and (kind == "DELETE" or filter_matches(b.filter, record))]
        if not ids:
            return
        data = {"schema": schema, "table": table, "commit_timestamp": stamp,
                "type": kind, "columns": self._columns(chan, schema, table),
                "errors": None}
        if kind != "DELETE":
            data["record"] = record
        if kind != "INSERT":
            data["old_record"] = old
        chan.send("postgres_changes", {"ids": ids, "data": data})

    def _job_change(self, chan, schema, job_id, first, deleted, stamp):
        if deleted:
            self._send_change(chan, schema, JOBS, "DELETE", None, {"id": job_id}, stamp)
            return
        rows = self._read_as(chan, "SELECT to_jsonb(t), t.created_at >= %s FROM {} t "
                             "WHERE t.id = %s", schema, JOBS,
                             (self.listen_started, job_id))
        if isinstance(rows, Reply) or not rows:
            return          # not the user's, or gone already
        record, created_since = rows[0]
        kind = "INSERT" if first and created_since else "UPDATE"
        self._send_change(chan, schema, JOBS, kind, record, {"id": job_id}, stamp)

    def _new_errors(self, chan, schema, job_id, stamp):
        rows = self._read_as(chan, "SELECT t.id::text, to_jsonb(t) FROM {} t "
                             "WHERE t.job_id = %s ORDER BY t.created_at, t.id",
                             schema, ERRORS, (job_id,))
        if isinstance(rows, Reply):
            return
        for eid, record in rows:
            if eid in chan.seen_errors:
                continue
            chan.seen_errors.add(eid)
            self._send_change(chan, schema, ERRORS, "INSERT", record, None, stamp)

    def _columns(self, chan, schema, table):
        key = (schema, table)
        if key not in self.columns:
            rows = self._read_as(
                chan, "SELECT a.attname::text, t.typname::text FROM pg_attribute a "
                "JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = %s::regclass "
                "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                schema, table, (None,), columns_of=True)
            if isinstance(rows, Reply):
                return []
            self.columns[key] = [{"name": n, "type": t} for n, t in rows]
        return self.columns[key]

    def _read_as(self, chan, query, schema, table, params, columns_of=False):
        """Rows of query (its {} is schema.table) as chan's user: one
        read-only transaction with API mode's role and claims."""
        ident = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        if columns_of:
            stmt = sql.SQL(query)
            params = ('"%s"."%s"' % (schema.replace('"', '""'), table.replace('"', '""')),)
        else:
            stmt = sql.SQL(query).format(ident)
        ctx = RequestContext("GET", "/realtime", [], [], [], b"")
        role = chan.claims.get("role") or self.app.opts.db_role
        ctx.role = role if isinstance(role, str) else json.dumps(role)
        ctx.claims = dict(chan.claims, role=ctx.role)
        ctx.authed = ctx.role != self.app.opts.db_role
        ctx.schema = schema
        cache = self.app.get_schema_cache()
        prefs = Preferences([], cache.timezones if cache is not None else set())

        def run(cur):
            cur.execute(stmt, params)
            return cur.fetchall()
        return self.app.run_transaction(ctx, run, prefs=prefs, read_only=True)
