"""Realtime (standin/websocket.py, standin/realtime.py): RFC 6455 framing
against the RFC's own examples, and the Phoenix flow realtime-js uses --
handshake, heartbeat, phx_join and its reply, postgres_changes from
NOTIFY gs_export filtered by the subscriber's row level security, filters,
access_token, phx_leave, the control switch -- with a websocket client
written here (masked frames, as a browser sends)."""

import base64
import json
import os
import socket
import struct
import subprocess
import time
import unittest

from standin import websocket as ws
from standin.realtime import binding_id, filter_matches, parse_filter

from .fixture import PYTHON, STAND_IN, StandInCase
from .test_api_mode import JWT_SECRET, USER_A, USER_B, make_jwt, user_jwt

ANON_KEY = make_jwt({"role": "anon", "iss": "supabase"})
JOBS = "gestao_scouter_export_jobs"
ERRORS = "gestao_scouter_export_errors"

# The jobs and errors tables as TabuladorMax has them (the columns that
# matter here), the original's policy on jobs, and gs_export_job_notify's
# NOTIFY (src/sql/functions/gs_export_job_notify.sql, the same payload).
FIXTURE = r"""
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated TO authenticator;
GRANT USAGE ON SCHEMA public TO anon, authenticated;
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('request.jwt.claims', true)::jsonb ->> 'sub', '')::uuid $$;
CREATE TABLE public.gestao_scouter_export_jobs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), created_by uuid, status text NOT NULL,
  exported_leads int NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE public.gestao_scouter_export_errors (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  job_id uuid REFERENCES public.gestao_scouter_export_jobs (id) ON DELETE CASCADE,
  lead_id bigint, error_message text, created_at timestamptz DEFAULT now());
ALTER TABLE public.gestao_scouter_export_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON public.gestao_scouter_export_jobs FOR SELECT
  USING (created_by = auth.uid());
ALTER TABLE public.gestao_scouter_export_errors ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON public.gestao_scouter_export_errors FOR SELECT
  USING (EXISTS (SELECT 1 FROM public.gestao_scouter_export_jobs j
                  WHERE j.id = job_id AND j.created_by = auth.uid()));
GRANT SELECT ON public.gestao_scouter_export_jobs, public.gestao_scouter_export_errors
  TO authenticated;
CREATE FUNCTION public.job_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  PERFORM pg_notify('gs_export', json_build_object(
    'job_id', r.id, 'status', CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE r.status END,
    'exported_leads', r.exported_leads)::text);
  RETURN NULL;
END $$;
CREATE TRIGGER job_notify AFTER INSERT OR DELETE OR UPDATE
  ON public.gestao_scouter_export_jobs FOR EACH ROW EXECUTE FUNCTION public.job_notify();
"""


# ---------------------------------------------------------------------------
# Framing (RFC 6455), no database
# ---------------------------------------------------------------------------

def reader_of(data):
    buf = [data]

    def read(n):
        chunk, buf[0] = buf[0][:n], buf[0][n:]
        return chunk
    return read


class FramingTest(unittest.TestCase):

    def test_accept_key_rfc_example(self):
        # RFC 6455 section 1.3
        self.assertEqual(ws.accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
                         "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertTrue(ws.valid_key("dGhlIHNhbXBsZSBub25jZQ=="))
        self.assertFalse(ws.valid_key("c2hvcnQ="))

    def test_rfc_examples(self):
        # RFC 6455 section 5.7: "Hello", unmasked and masked; a ping.
        self.assertEqual(ws.encode_frame(ws.OP_TEXT, "Hello"),
                         bytes.fromhex("810548656c6c6f"))
        masked = bytes.fromhex("818537fa213d7f9f4d5158")
        self.assertEqual(ws.encode_frame(ws.OP_TEXT, "Hello", mask=bytes.fromhex("37fa213d")),
                         masked)
        self.assertEqual(ws.read_frame(reader_of(masked)), (True, ws.OP_TEXT, b"Hello"))
        # fragmented unmasked text: "Hel" + "lo"
        frag = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
        r = ws.MessageReader(reader_of(frag), require_mask=False)
        self.assertEqual(r.next(), (ws.OP_TEXT, "Hello"))
        self.assertEqual(ws.encode_frame(ws.OP_PING, "Hello"), bytes.fromhex("890548656c6c6f"))

    def test_lengths(self):
        mask = b"\x01\x02\x03\x04"
        for n, head in ((0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)):
            data = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
            frame = ws.encode_frame(ws.OP_BINARY, data, mask=mask)
            self.assertEqual(len(frame), head + 4 + n)
            self.assertEqual(ws.read_frame(reader_of(frame)), (True, ws.OP_BINARY, data))
        self.assertEqual(ws.encode_frame(ws.OP_TEXT, b"x" * 126)[1:4], b"\x7e\x00\x7e")
        self.assertEqual(ws.encode_frame(ws.OP_TEXT, b"x" * 65536)[1:10],
                         b"\x7f" + struct.pack("!Q", 65536))

    def test_control_between_fragments(self):
        m = b"\xaa\xbb\xcc\xdd"
        data = (ws.encode_frame(ws.OP_TEXT, "ab", fin=False, mask=m)
                + ws.encode_frame(ws.OP_PING, "p", mask=m)
                + ws.encode_frame(ws.OP_CONT, "cd", fin=False, mask=m)
                + ws.encode_frame(ws.OP_CONT, "é", mask=m))
        r = ws.MessageReader(reader_of(data))
        self.assertEqual(r.next(), (ws.OP_PING, b"p"))
        self.assertEqual(r.next(), (ws.OP_TEXT, "abcdé"))
        with self.assertRaises(EOFError):
            r.next()

    def test_protocol_errors(self):
        m = b"\x00\x00\x00\x01"
        cases = [
            (ws.encode_frame(ws.OP_TEXT, "x"), 1002),                      # not masked
            (bytes([0xC1]) + ws.encode_frame(ws.OP_TEXT, "x", mask=m)[1:], 1002),  # RSV1
            (ws.encode_frame(0x3, "x", mask=m), 1002),                     # reserved opcode
            (ws.encode_frame(ws.OP_PING, b"x" * 126, mask=m), 1002),       # long control
            (ws.encode_frame(ws.OP_PING, "x", fin=False, mask=m), 1002),   # fragmented control
            (ws.encode_frame(ws.OP_CONT, "x", mask=m), 1002),              # lone continuation
            (ws.encode_frame(ws.OP_TEXT, "a", fin=False, mask=m)
             + ws.encode_frame(ws.OP_TEXT, "b", mask=m), 1002),            # new message inside
            (ws.encode_frame(ws.OP_TEXT, b"\xff\xfe", mask=m), 1007),      # not UTF-8
        ]
        for data, code in cases:
            with self.assertRaises(ws.ProtocolError) as cm:
                ws.MessageReader(reader_of(data)).next()
            self.assertEqual(cm.exception.code, code, data)
        with self.assertRaises(EOFError):
            ws.read_frame(reader_of(ws.encode_frame(ws.OP_TEXT, "abc", mask=m)[:-1]))

    def test_filters(self):
        self.assertIsNone(parse_filter(None))
        self.assertEqual(parse_filter("id=eq.7"), ("id", "eq", "7"))
        self.assertEqual(parse_filter("s=in.(a, b)"), ("s", "in", ["a", "b"]))
        for bad in ("id", "id=7", "id=like.x", "=eq.1", "s=in.a,b"):
            with self.assertRaises(ValueError):
                parse_filter(bad)
        rec = {"id": "u1", "n": 5, "ok": True, "z": None}
        self.assertTrue(filter_matches(parse_filter("id=eq.u1"), rec))
        self.assertFalse(filter_matches(parse_filter("id=neq.u1"), rec))
        self.assertTrue(filter_matches(parse_filter("n=gt.4"), rec))
        self.assertFalse(filter_matches(parse_filter("n=gt.10"), rec))   # numeric, not text
        self.assertTrue(filter_matches(parse_filter("n=lte.5"), rec))
        self.assertTrue(filter_matches(parse_filter("ok=eq.true"), rec))
        self.assertTrue(filter_matches(parse_filter("id=in.(u0,u1)"), rec))
        self.assertFalse(filter_matches(parse_filter("z=eq.x"), rec))
        self.assertEqual(binding_id({"a": 1, "b": 2}), binding_id({"b": 2, "a": 1}))


# ---------------------------------------------------------------------------
# A websocket client, as a browser behaves (masked frames)
# ---------------------------------------------------------------------------

class Client:
    def __init__(self, port, query):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /realtime/v1/websocket?%s HTTP/1.1\r\nHost: x\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           % (query, key)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in
                        (line.partition(":") for line in lines[1:])}
        self.key = key
        self.ref = 0

    def read(self, n):
        if not self.buf:
            self.buf = self.sock.recv(65536)
        chunk, self.buf = self.buf[:n], self.buf[n:]
        return chunk

    def frame(self, opcode, payload, fin=True):
        self.sock.sendall(ws.encode_frame(opcode, payload, fin=fin, mask=os.urandom(4)))

    def push(self, topic, event, payload, join_ref=None):
        self.ref += 1
        ref = str(self.ref)
        self.frame(ws.OP_TEXT, json.dumps([join_ref, ref, topic, event, payload]))
        return ref

    def next_frame(self, timeout=10):
        self.sock.settimeout(timeout)
        return ws.read_frame(self.read, require_mask=False)

    def next_msg(self, timeout=10):
        fin, op, data = self.next_frame(timeout)
        assert op == ws.OP_TEXT, (op, data)
        return json.loads(data)

    def until(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            m = self.next_msg(max(0.01, deadline - time.monotonic()))
            if pred(m):
                return m

    def close(self):
        self.sock.close()


class RealtimeTest(StandInCase):
    DBNAME = "app"
    API_KEY = ANON_KEY
    SCHEMA_FILES = []

    @classmethod
    def setUpClass(cls):
        cls.start_cluster()
        cls.db.cursor().execute(FIXTURE)
        cls.app_dsn = cls.dsn.replace("user=postgres", "user=authenticator")
        cls.start_stand_in()

    @classmethod
    def stand_in_args(cls):
        return ["--dsn", cls.app_dsn, "--api-key", ANON_KEY, "--jwt-secret", JWT_SECRET,
                "--anon-role", "anon"]

    def setUp(self):
        self.control("realtime", {"enabled": True})
        self.sql("DELETE FROM public.gestao_scouter_export_jobs")
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def connect(self, key=ANON_KEY, vsn="1.0.0"):
        c = Client(self.port, "apikey=%s&vsn=%s" % (key, vsn))
        self.clients.append(c)
        return c

    def join(self, c, token, bindings, topic="realtime:jobs"):
        ref = c.push(topic, "phx_join", {"config": {"broadcast": {"self": False},
                                                    "presence": {"enabled": False},
                                                    "postgres_changes": bindings,
                                                    "private": False},
                                         "access_token": token}, join_ref="1")
        reply = c.until(lambda m: m[3] == "phx_reply" and m[1] == ref)
        return reply

    def subscribed(self, c, token, bindings, topic="realtime:jobs"):
        reply = self.join(c, token, bindings, topic)
        self.assertEqual(reply[4]["status"], "ok", reply)
        system = c.until(lambda m: m[3] == "system")
        self.assertEqual(system, ["1", None, topic, "system",
                                  {"extension": "postgres_changes", "status": "ok",
                                   "message": "Subscribed to PostgreSQL",
                                   "channel": topic[len("realtime:"):]}])
        return reply[4]["response"]["postgres_changes"]

    def change(self, c):
        m = c.until(lambda m: m[3] == "postgres_changes")
        return m

    def job(self, owner, status="pending"):
        return self.sql("INSERT INTO public.gestao_scouter_export_jobs (created_by, status) "
                        "VALUES (%s, %s) RETURNING id::text", (owner, status))[0][0]

    # -- the HTTP side -----------------------------------------------------

    def test_handshake_and_gateway(self):
        c = self.connect(vsn="2.0.0")
        self.assertEqual(c.status, 101)
        self.assertEqual(c.headers["upgrade"].lower(), "websocket")
        self.assertEqual(c.headers["sec-websocket-accept"], ws.accept_key(c.key))
        bad = self.connect(key="nope")
        self.assertEqual(bad.status, 401)
        a = self.request("GET", "/realtime/v1/websocket?apikey=" + ANON_KEY)
        self.assertEqual(a.status, 400)        # no upgrade asked for
        self.control("realtime", {"enabled": False})
        off = self.connect()
        self.assertEqual(off.status, 404)
        # the open socket was closed with 1001
        fin, op, data = c.next_frame()
        self.assertEqual((op, data[:2]), (ws.OP_CLOSE, struct.pack("!H", 1001)))
        self.assertEqual(self.control("realtime", method="GET")["enabled"], False)

    def test_heartbeat_ping_close_unmatched(self):
        c = self.connect()
        ref = c.push("phoenix", "heartbeat", {})
        self.assertEqual(c.next_msg(), [None, ref, "phoenix", "phx_reply",
                                        {"status": "ok", "response": {}}])
        c.frame(ws.OP_PING, b"hi")
        self.assertEqual(c.next_frame(), (True, ws.OP_PONG, b"hi"))
        ref = c.push("realtime:nothing", "broadcast", {})
        self.assertEqual(c.next_msg(), [None, ref, "realtime:nothing", "phx_reply",
                                        {"status": "error",
                                         "response": {"reason": "unmatched topic"}}])
        # a message in two fragments is one message
        c.ref += 1
        text = json.dumps([None, str(c.ref), "phoenix", "heartbeat", {}])
        c.frame(ws.OP_TEXT, text[:10], fin=False)
        c.frame(ws.OP_CONT, text[10:])
        self.assertEqual(c.next_msg()[1], str(c.ref))
        c.frame(ws.OP_CLOSE, struct.pack("!H", 1000))
        self.assertEqual(c.next_frame(), (True, ws.OP_CLOSE, struct.pack("!H", 1000)))

    def test_protocol_error_closes_1002(self):
        c = self.connect()
        c.sock.sendall(ws.encode_frame(ws.OP_TEXT, "x"))     # unmasked
        fin, op, data = c.next_frame()
        self.assertEqual((op, data[:2]), (ws.OP_CLOSE, struct.pack("!H", 1002)))

    def test_join_reply_and_bad_token(self):
        c = self.connect()
        bindings = [{"event": "*", "schema": "public", "table": JOBS},
                    {"event": "INSERT", "schema": "public", "table": ERRORS,
                     "filter": "lead_id=eq.3"}]
        got = self.subscribed(c, user_jwt(USER_A), bindings)
        self.assertEqual([{k: v for k, v in g.items() if k != "id"} for g in got], bindings)
        self.assertTrue(all(isinstance(g["id"], int) for g in got))
        self.assertNotEqual(got[0]["id"], got[1]["id"])
        reply = self.join(c, make_jwt({"role": "authenticated"}, secret="wrong"), bindings,
                          topic="realtime:other")
        self.assertEqual(reply[4]["status"], "error")
        self.assertIn("JWSInvalidSignature", reply[4]["response"]["reason"])
        # a table with no changes here: joined, then a system error
        self.join(c, user_jwt(USER_A), [{"event": "*", "schema": "public", "table": "x"}],
                  topic="realtime:x")
        system = c.until(lambda m: m[3] == "system")
        self.assertEqual(system[4]["status"], "error")

    def test_changes_follow_row_level_security(self):
        a, b = self.connect(), self.connect(vsn="2.0.0")
        bind = [{"event": "*", "schema": "public", "table": JOBS}]
        ida = self.subscribed(a, user_jwt(USER_A), bind)[0]["id"]
        idb = self.subscribed(b, user_jwt(USER_B), bind)[0]["id"]
        job_a = self.job(USER_A)
        m = self.change(a)
        self.assertEqual(m[:4], ["1", None, "realtime:jobs", "postgres_changes"])
        self.assertEqual(m[4]["ids"], [ida])
        data = m[4]["data"]
        self.assertEqual((data["type"], data["schema"], data["table"], data["errors"]),
                         ("INSERT", "public", JOBS, None))
        self.assertEqual(data["record"]["id"], job_a)
        self.assertEqual(data["record"]["created_by"], USER_A)
        self.assertNotIn("old_record", data)
        self.assertIn({"name": "id", "type": "uuid"}, data["columns"])
        self.assertRegex(data["commit_timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")
        self.sql("UPDATE public.gestao_scouter_export_jobs SET status = 'running', "
                 "exported_leads = 10 WHERE id = %s", (job_a,))
        data = self.change(a)[4]["data"]
        self.assertEqual((data["type"], data["record"]["status"],
                          data["record"]["exported_leads"], data["old_record"]),
                         ("UPDATE", "running", 10, {"id": job_a}))
        # B saw none of A's job; its own job comes to B only
        job_b = self.job(USER_B)
        m = self.change(b)
        self.assertEqual((m[4]["ids"], m[4]["data"]["record"]["id"]), ([idb], job_b))
        # a delete: the id only, to both (Realtime applies no RLS to deletes)
        self.sql("DELETE FROM public.gestao_scouter_export_jobs WHERE id = %s", (job_a,))
        for c in (a, b):
            data = self.change(c)[4]["data"]
            self.assertEqual((data["type"], data["old_record"]), ("DELETE", {"id": job_a}))
            self.assertNotIn("record", data)

    def test_filter_event_errors_leave(self):
        c = self.connect()
        job1, job2 = self.job(USER_A), self.job(USER_A)
        bind = [{"event": "UPDATE", "schema": "public", "table": JOBS,
                 "filter": "id=eq." + job2},
                {"event": "INSERT", "schema": "public", "table": ERRORS}]
        ids = [g["id"] for g in self.subscribed(c, user_jwt(USER_A), bind)]
        self.sql("INSERT INTO public.gestao_scouter_export_errors (job_id, lead_id) "
                 "VALUES (%s, 1)", (job1,))
        self.sql("UPDATE public.gestao_scouter_export_jobs SET status = 'running' "
                 "WHERE id = %s", (job1,))
        m = self.change(c)            # the error's INSERT, not job1's UPDATE
        self.assertEqual((m[4]["ids"], m[4]["data"]["table"], m[4]["data"]["type"],
                          m[4]["data"]["record"]["lead_id"]), ([ids[1]], ERRORS, "INSERT", 1))
        self.sql("UPDATE public.gestao_scouter_export_jobs SET status = 'running' "
                 "WHERE id = %s", (job2,))
        m = self.change(c)
        self.assertEqual((m[4]["ids"], m[4]["data"]["record"]["id"]), ([ids[0]], job2))
        # a token refresh (access_token) keeps the channel; a bad one closes it
        c.push("realtime:jobs", "access_token", {"access_token": user_jwt(USER_A)},
               join_ref="1")
        self.sql("UPDATE public.gestao_scouter_export_jobs SET status = 'paused' "
                 "WHERE id = %s", (job2,))
        self.assertEqual(self.change(c)[4]["data"]["record"]["status"], "paused")
        ref = c.push("realtime:jobs", "phx_leave", {}, join_ref="1")
        self.assertEqual(c.until(lambda m: m[1] == ref)[4], {"status": "ok", "response": {}})
        self.sql("UPDATE public.gestao_scouter_export_jobs SET status = 'running' "
                 "WHERE id = %s", (job2,))
        self.assertEqual(self.control("realtime", method="GET")["channels"], 0)

    def test_bad_access_token_closes_channel(self):
        c = self.connect()
        self.subscribed(c, user_jwt(USER_A), [{"event": "*", "schema": "public",
                                                "table": JOBS}])
        c.push("realtime:jobs", "access_token", {"access_token": "x.y.z"}, join_ref="1")
        m = c.until(lambda m: m[3] == "phx_close")
        self.assertEqual(m[:3], ["1", "1", "realtime:jobs"])

    # --no-realtime: the route answers 404 (a project without Realtime)
    # until the control switch turns it on.
    def test_no_realtime_option(self):
        port_file = os.path.join(self.tmp, "port_no_rt")
        proc = subprocess.Popen([PYTHON, STAND_IN, "--port", "0", "--port-file", port_file,
                                 "--control-port", "-1", "--no-realtime"] + self.stand_in_args(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(port_file):
                self.assertIsNone(proc.poll())
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            with open(port_file) as fh:
                port = int(fh.read())
            c = Client(port, "apikey=%s&vsn=1.0.0" % ANON_KEY)
            c.close()
            self.assertEqual(c.status, 404)
            a = self.request("POST", "/_control/realtime", {"enabled": True},
                             {"Content-Type": "application/json"}, port=port)
            self.assertEqual((a.status, a.json()["enabled"]), (200, True))
            c = Client(port, "apikey=%s&vsn=1.0.0" % ANON_KEY)
            c.close()
            self.assertEqual(c.status, 101)
        finally:
            proc.terminate()
            proc.wait(10)
