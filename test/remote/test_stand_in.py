#!/usr/bin/python3
"""Tests for test/remote/stand_in.py, the PostgREST 12.2 stand-in.

Starts a throwaway PostgreSQL 15 cluster (initdb into a temporary
directory, a Unix socket only), loads fichas.sql through the stand-in's
--init-schema, starts the stand-in on port 0 and checks, over HTTP, the
PostgREST / gateway answers the project's tests rely on and every fault
switch of the control endpoint.

Run:   /usr/bin/python3 -m unittest -v test_stand_in     (from this folder)

PostgreSQL refuses to run as root.  Run this as `postgres`; when run as
root it starts the cluster through `runuser -u postgres` by itself.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from decimal import Decimal

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
STAND_IN = os.path.join(HERE, "stand_in.py")
SCHEMA_FILE = os.path.join(HERE, "fichas.sql")
LEADS_FILE = os.path.join(HERE, "gestao_leads.sql")
PGBIN = "/usr/lib/postgresql/15/bin"
PYTHON = "/usr/bin/python3"
KEY = "test-anon-key"
COLS = "id,name,age,sync_source"
UPSERT_HEADERS = {
    "apikey": KEY,
    "Authorization": "Bearer " + KEY,
    "Content-Type": "application/json",
    "Prefer": "resolution=merge-duplicates,return=minimal",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_pg_user(cmd):
    """Run PostgreSQL's tools as `postgres` when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # lowercased names
        self.body = body

    def json(self):
        return json.loads(self.body)


class StandInCase(unittest.TestCase):
    """One cluster and one stand-in for the whole class, and helpers."""

    # Loaded through the stand-in's --init-schema, in order.
    SCHEMA_FILES = [SCHEMA_FILE]
    # Emptied before each test.
    TRUNCATE = ["public.fichas", "public.fichas_sync_back"]
    # The database the stand-in serves, and its gateway key.
    DBNAME = "remote"
    API_KEY = KEY

    # -- fixture: one cluster and one stand-in for the whole class ---------

    @classmethod
    def setUpClass(cls):
        cls.start_cluster()
        cls.start_stand_in()

    @classmethod
    def start_cluster(cls):
        """A cluster, the database DBNAME, cls.dsn (its superuser) and
        cls.db (a connection, autocommit)."""
        cls.tmp = tempfile.mkdtemp(prefix="stand_in_test_")
        if os.geteuid() == 0:
            shutil.chown(cls.tmp, "postgres")
        cls.pgdata = os.path.join(cls.tmp, "data")
        cls.pgport = free_port()
        subprocess.run(as_pg_user([PGBIN + "/initdb", "-D", cls.pgdata, "-U", "postgres",
                                   "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(as_pg_user([
            PGBIN + "/pg_ctl", "-D", cls.pgdata, "-l", os.path.join(cls.tmp, "pg.log"),
            "-o", "-p %d -k %s -c listen_addresses='' -c fsync=off "
                  "-c full_page_writes=off" % (cls.pgport, cls.tmp),
            "-w", "start"]), check=True, stdout=subprocess.DEVNULL)
        admin = psycopg2.connect(host=cls.tmp, port=cls.pgport, dbname="postgres",
                                 user="postgres")
        admin.autocommit = True
        admin.cursor().execute("CREATE DATABASE " + cls.DBNAME)
        admin.close()
        cls.dsn = "host=%s port=%d dbname=%s user=postgres" % (cls.tmp, cls.pgport,
                                                               cls.DBNAME)
        cls.db = psycopg2.connect(cls.dsn)
        cls.db.autocommit = True

    @classmethod
    def stand_in_args(cls):
        """The command line's options besides ports and files."""
        args = ["--dsn", cls.dsn, "--api-key", cls.API_KEY]
        for f in cls.SCHEMA_FILES:
            args += ["--schema-file", f]
        return args + ["--init-schema"]

    @classmethod
    def start_stand_in(cls):
        port_file = os.path.join(cls.tmp, "port")
        cport_file = os.path.join(cls.tmp, "cport")
        cls.out = open(os.path.join(cls.tmp, "stand_in.out"), "w+")
        cls.err = open(os.path.join(cls.tmp, "stand_in.err"), "w+")
        cls.proc = subprocess.Popen(
            [PYTHON, STAND_IN, "--port", "0",
             "--port-file", port_file, "--control-port-file", cport_file]
            + cls.stand_in_args(),
            stdout=cls.out, stderr=cls.err)
        deadline = time.monotonic() + 20
        while not (os.path.exists(port_file) and os.path.exists(cport_file)):
            if cls.proc.poll() is not None or time.monotonic() > deadline:
                cls.err.seek(0)
                raise RuntimeError("stand_in did not start: " + cls.err.read())
            time.sleep(0.05)
        with open(port_file) as fh:
            cls.port = int(fh.read())
        with open(cport_file) as fh:
            cls.cport = int(fh.read())

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.proc.poll() is None:
                cls.proc.send_signal(signal.SIGTERM)
                try:
                    cls.proc.wait(10)
                except subprocess.TimeoutExpired:
                    cls.proc.kill()
                    cls.proc.wait()
            cls.db.close()
        finally:
            subprocess.run(as_pg_user([PGBIN + "/pg_ctl", "-D", cls.pgdata, "-m", "fast",
                                       "-w", "stop"]), stdout=subprocess.DEVNULL)
            cls.out.close()
            cls.err.close()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.control("reset")
        self.sql("TRUNCATE " + ", ".join(self.TRUNCATE))

    # -- helpers -----------------------------------------------------------

    def sql(self, query, params=None):
        with self.db.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else None

    def request(self, method, path, body=None, headers=None, port=None, conn=None):
        own = conn is None
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=10)
        try:
            if isinstance(body, (list, dict)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            if own:
                conn.close()

    def upsert(self, rows, query="on_conflict=id&columns=" + COLS, headers=None,
               **kw):
        h = dict(UPSERT_HEADERS)
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        path = "/rest/v1/fichas" + ("?" + query if query else "")
        return self.request("POST", path, rows, h, **kw)

    def control(self, name, data=None, method=None, port=None):
        method = method or ("GET" if data is None and name in
                            ("stats", "requests", "faults", "health") else "POST")
        body = json.dumps(data) if data is not None else ("" if method == "POST" else None)
        a = self.request(method, "/_control/" + name, body,
                         {"Content-Type": "application/json"}, port=port or self.cport)
        self.assertEqual(a.status, 200, a.body)
        return a.json()

    def ids(self):
        return [r[0] for r in self.sql("SELECT id FROM public.fichas ORDER BY id")]

    def row(self, i):
        return self.sql("SELECT id, name, age, sync_source FROM public.fichas WHERE id = %s",
                        (i,))

    def assertPgrstError(self, a, status, code, message=None):
        self.assertEqual(a.status, status, a.body)
        self.assertEqual(a.headers.get("content-type"), "application/json; charset=utf-8")
        body = a.json()
        self.assertEqual(sorted(body), ["code", "details", "hint", "message"])
        self.assertEqual(body["code"], code, body)
        if message is not None:
            self.assertEqual(body["message"], message)
        return body


class StandInTest(StandInCase):
    """public.fichas (fichas.sql only: `leads` is an unknown table here)."""

    # -- success -----------------------------------------------------------

    def test_insert_201_then_update_200(self):
        rows = [{"id": 1, "name": "Ana", "age": 20, "sync_source": "tabuladormax"},
                {"id": 2, "name": "Bia", "age": 30, "sync_source": "tabuladormax"}]
        a = self.upsert(rows)
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(a.body, b"")
        self.assertEqual(a.headers["content-range"], "*/*")
        self.assertEqual(a.headers["preference-applied"],
                         "resolution=merge-duplicates, return=minimal")
        self.assertEqual(a.headers["content-length"], "0")
        rows[0]["name"] = "Ana Maria"
        a = self.upsert(rows)
        self.assertEqual(a.status, 200, a.body)
        self.assertEqual(self.row(1), [(1, "Ana Maria", 20, "tabuladormax")])
        # One new row among updates: 201.
        a = self.upsert(rows + [{"id": 3, "name": "C", "age": 1,
                                 "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201)
        self.assertEqual(self.ids(), [1, 2, 3])
        # The sync-back trigger saw sync_source = 'tabuladormax': nothing queued.
        self.assertEqual(self.sql("SELECT count(*) FROM public.fichas_sync_back"), [(0,)])

    def test_single_object_and_empty_array(self):
        a = self.upsert({"id": 7, "name": "x", "age": None, "sync_source": "tabuladormax"})
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(self.ids(), [7])
        a = self.upsert([])
        self.assertEqual(a.status, 200, a.body)
        a = self.upsert([], query="")
        self.assertEqual(a.status, 200, a.body)

    def test_columns_extra_and_missing_keys(self):
        self.upsert([{"id": 1, "name": "old", "age": 5, "sync_source": "tabuladormax"}])
        # With ?columns: extra keys are ignored, missing keys are NULL (and
        # an upsert sets every listed column, so age becomes NULL).
        a = self.upsert([{"id": 1, "name": "new", "sync_source": "tabuladormax",
                          "not_a_column": 1},
                         {"id": 2, "age": 9}])
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(self.row(1), [(1, "new", None, "tabuladormax")])
        self.assertEqual(self.row(2), [(2, None, 9, None)])
        # Without ?columns, the keys of the objects are the columns.
        a = self.upsert([{"id": 3, "name": "k"}], query="on_conflict=id")
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(self.row(3), [(3, "k", None, None)])

    def test_keep_alive_connection_reused(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for i in range(3):
                a = self.upsert([{"id": i, "name": "n", "age": i,
                                  "sync_source": "tabuladormax"}], conn=conn)
                self.assertEqual(a.status, 201, a.body)
            # An error answer keeps the connection too.
            a = self.upsert("not json", query="", conn=conn)
            self.assertEqual(a.status, 400)
            a = self.upsert([{"id": 9, "name": "n", "age": 1,
                              "sync_source": "tabuladormax"}], conn=conn)
            self.assertEqual(a.status, 201)
        finally:
            conn.close()

    def test_values_kept_exactly(self):
        raw = {"a": [1, {"b": None, "c": "ç"}], "n": 1.5}
        a = self.upsert([{"id": 1, "valor_ficha": 0.1, "raw": raw,
                          "date_modify": "2024-02-29T23:59:59.999999-03:00",
                          "data_agendamento": "2024-03-01",
                          "commercial_project_id": "6f1c7a1e-0000-4000-8000-000000000001",
                          "ficha_confirmada": True}],
                        query="on_conflict=id")
        self.assertEqual(a.status, 201, a.body)
        (valor, eq, typ, rawv, dm) = self.sql(
            "SELECT valor_ficha, valor_ficha = 0.1, jsonb_typeof(raw), raw, "
            "to_char(date_modify AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') "
            "FROM public.fichas WHERE id = 1")[0]
        self.assertEqual(valor, Decimal("0.10"))
        self.assertTrue(eq)
        self.assertEqual(typ, "object")
        self.assertEqual(rawv, raw)
        self.assertEqual(dm, "2024-03-01 02:59:59.999999")

    def test_return_representation_and_get(self):
        a = self.upsert([{"id": 4, "name": "r", "age": 1, "sync_source": "tabuladormax"}],
                        headers={"Prefer": "resolution=merge-duplicates,return=representation"})
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(a.headers["preference-applied"],
                         "resolution=merge-duplicates, return=representation")
        body = a.json()
        self.assertEqual(len(body), 1)
        self.assertEqual(body[0]["name"], "r")
        self.assertIn("last_sync_at", body[0])
        a = self.request("GET", "/rest/v1/fichas?select=id,name&id=eq.4",
                         headers={"apikey": KEY})
        self.assertEqual(a.status, 200, a.body)
        self.assertEqual(a.json(), [{"id": 4, "name": "r"}])

    # -- PostgREST request errors -------------------------------------------

    def test_pgrst204_first_unknown_alphabetically(self):
        a = self.upsert([{"id": 1}], query="on_conflict=id&columns=zeta,id,beta,alpha")
        b = self.assertPgrstError(
            a, 400, "PGRST204",
            "Could not find the 'alpha' column of 'fichas' in the schema cache")
        self.assertIsNone(b["details"])
        self.assertIsNone(b["hint"])
        a = self.upsert([{"id": 1, "zz": 1, "bb": 2, "name": "x"}], query="on_conflict=id")
        self.assertPgrstError(
            a, 400, "PGRST204",
            "Could not find the 'bb' column of 'fichas' in the schema cache")
        self.assertEqual(self.ids(), [])

    def test_schema_drift_and_reload(self):
        self.sql("ALTER TABLE public.fichas DROP COLUMN op_telemarketing")
        try:
            # The schema cache is stale until reloaded: the database refuses.
            a = self.upsert([{"id": 1, "op_telemarketing": "x"}], query="on_conflict=id")
            self.assertPgrstError(a, 400, "42703")
            info = self.control("reload_schema")
            self.assertNotIn("op_telemarketing", info["columns"])
            a = self.upsert([{"id": 1, "op_telemarketing": "x"}], query="on_conflict=id")
            self.assertPgrstError(
                a, 400, "PGRST204",
                "Could not find the 'op_telemarketing' column of 'fichas' in the schema cache")
        finally:
            self.sql("ALTER TABLE public.fichas ADD COLUMN op_telemarketing text")
            self.control("reload_schema")
        a = self.upsert([{"id": 1, "op_telemarketing": "x"}], query="on_conflict=id")
        self.assertEqual(a.status, 201, a.body)

    def test_pgrst102_invalid_json_and_mismatched_keys(self):
        for body in ("[{\"id\": 1", "", "[NaN]", "{'id': 1}"):
            a = self.upsert(body, query="on_conflict=id")
            self.assertPgrstError(a, 400, "PGRST102", "Empty or invalid json")
        a = self.upsert([{"id": 1, "name": "a"}, {"id": 2}], query="on_conflict=id")
        self.assertPgrstError(a, 400, "PGRST102", "All object keys must match")
        a = self.upsert([{"id": 1}, 5], query="on_conflict=id")
        self.assertPgrstError(a, 400, "PGRST102", "All object keys must match")
        # With ?columns PostgREST does not parse the body: the database does.
        a = self.upsert("[{\"id\": 1", query="on_conflict=id&columns=id")
        self.assertPgrstError(a, 400, "22P02", "invalid input syntax for type json")
        self.assertEqual(self.ids(), [])

    def test_content_type(self):
        a = self.upsert([{"id": 1}], query="on_conflict=id",
                        headers={"Content-Type": "text/plain"})
        self.assertPgrstError(a, 400, "PGRST102", "Content-Type not acceptable: text/plain")
        # No Content-Type at all: PostgREST takes the body as JSON.
        a = self.upsert([{"id": 1}], query="on_conflict=id", headers={"Content-Type": None})
        self.assertEqual(a.status, 201, a.body)
        a = self.upsert([{"id": 2}], query="on_conflict=id",
                        headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(a.status, 201, a.body)

    def test_unknown_table_404_empty_object(self):
        a = self.request("POST", "/rest/v1/leads?on_conflict=id&columns=id", [{"id": 1}],
                         UPSERT_HEADERS)
        self.assertEqual(a.status, 404)
        self.assertEqual(a.json(), {})
        a = self.request("POST", "/rest/v1/leads", [{"id": 1}], UPSERT_HEADERS)
        self.assertEqual((a.status, a.json()), (404, {}))
        # No column to resolve: PostgREST 12.2 lets the database answer.
        a = self.request("POST", "/rest/v1/leads", [], UPSERT_HEADERS)
        self.assertPgrstError(a, 404, "42P01", 'relation "public.leads" does not exist')
        a = self.request("GET", "/rest/v1/leads", headers={"apikey": KEY})
        self.assertPgrstError(a, 404, "42P01", 'relation "public.leads" does not exist')
        # Not a table path at all.
        a = self.request("POST", "/rest/v1/fichas/1", [{"id": 1}], UPSERT_HEADERS)
        self.assertEqual((a.status, a.json()), (404, {}))

    # -- database errors ---------------------------------------------------

    def test_bad_value_22P02(self):
        a = self.upsert([{"id": 1, "name": "a", "age": "abc", "sync_source": "tabuladormax"}])
        self.assertPgrstError(a, 400, "22P02", 'invalid input syntax for type integer: "abc"')

    def test_check_violation_23514(self):
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"},
                         {"id": 2, "name": "b", "age": 1, "sync_source": "bogus"}])
        b = self.assertPgrstError(a, 400, "23514")
        self.assertIn("fichas_sync_source_check", b["message"])
        self.assertTrue(b["details"].startswith("Failing row contains"), b)
        self.assertEqual(self.ids(), [])        # all or nothing

    def test_duplicate_id_in_batch_21000(self):
        a = self.upsert([{"id": 5, "name": "a", "age": 1, "sync_source": "tabuladormax"},
                         {"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"},
                         {"id": 1, "name": "b", "age": 1, "sync_source": "tabuladormax"}])
        self.assertPgrstError(a, 500, "21000",
                              "ON CONFLICT DO UPDATE command cannot affect row a second time")
        self.assertEqual(self.ids(), [])

    def test_not_null_and_unique(self):
        a = self.upsert([{"id": None, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertPgrstError(a, 400, "23502")
        self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        # No resolution preference: a plain INSERT, so a duplicate is 409.
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}],
                        headers={"Prefer": "return=minimal"})
        self.assertPgrstError(a, 409, "23505")

    def spawn(self, *extra):
        """Another stand-in on the same database; returns (proc, port, stdout)."""
        n = len(os.listdir(self.tmp))
        port_file = os.path.join(self.tmp, "port_%d" % n)
        proc = subprocess.Popen([PYTHON, STAND_IN, "--port", "0", "--dsn", self.dsn,
                                 "--api-key", KEY, "--port-file", port_file,
                                 "--control-port", "-1"] + list(extra),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        line = proc.stdout.readline()
        with open(port_file) as fh:
            port = int(fh.read())
        return proc, port, line

    def test_stdout_line_and_clean_exit(self):
        with open(os.path.join(self.tmp, "stand_in.out")) as fh:
            self.assertIn("stand_in listening on 127.0.0.1:%d\n" % self.port, fh.read())
        for sig in (signal.SIGTERM, signal.SIGINT):
            proc, port, line = self.spawn()
            try:
                self.assertEqual(line, "stand_in listening on 127.0.0.1:%d\n" % port)
                self.assertEqual(self.upsert([], port=port).status, 200)
                t0 = time.monotonic()
                proc.send_signal(sig)
                self.assertEqual(proc.wait(5), 0)
                self.assertLess(time.monotonic() - t0, 2)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stdout.close()

    def spawn_with_control(self, *extra):
        """Another stand-in on the same database, with a control port, its
        stderr in a file; returns (proc, port, cport, stderr's path)."""
        base = os.path.join(self.tmp, "spawn_%d" % len(os.listdir(self.tmp)))
        with open(base + ".err", "w") as err:
            proc = subprocess.Popen([PYTHON, STAND_IN, "--port", "0", "--dsn", self.dsn,
                                     "--api-key", KEY, "--port-file", base + ".port",
                                     "--control-port", "0",
                                     "--control-port-file", base + ".cport"] + list(extra),
                                    stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 20
        while not (os.path.exists(base + ".port") and os.path.exists(base + ".cport")):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                with open(base + ".err") as fh:
                    raise RuntimeError("stand_in did not start: " + fh.read())
            time.sleep(0.02)
        with open(base + ".port") as fh:
            port = int(fh.read())
        with open(base + ".cport") as fh:
            cport = int(fh.read())
        return proc, port, cport, base + ".err"

    def test_sigterm_exits_with_connections_open(self):
        """SIGTERM ends the stand-in within 2 s, status 0, whatever its
        connections are doing: idle keep-alive connections on the main and
        the control port (the TAP harness's HTTP::Tiny keeps one open to the
        control port until the end), a connection that never sent a
        request, a request waiting out its delay, one whose body has not
        all arrived, one in the database."""
        self.sql("CREATE FUNCTION public.stall() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN IF NEW.id = 999 THEN PERFORM pg_sleep(5); END IF; "
                 "RETURN NEW; END $$; "
                 "CREATE TRIGGER stall BEFORE INSERT ON public.fichas "
                 "FOR EACH ROW EXECUTE FUNCTION public.stall()")
        proc, port, cport, err = self.spawn_with_control()
        conns = []
        try:
            def conn(p):
                c = http.client.HTTPConnection("127.0.0.1", p, timeout=10)
                conns.append(c)
                return c

            ka_main, ka_control = conn(port), conn(cport)
            self.assertEqual(self.upsert([], conn=ka_main).status, 200)
            a = self.request("POST", "/_control/faults",
                             {"delay_next": 1, "delay_ms": 30000, "keep_bodies": True},
                             {"Content-Type": "application/json"}, conn=ka_control)
            self.assertEqual(a.status, 200, a.body)
            def wait_until(what, cond):
                deadline = time.monotonic() + 10
                while not cond():
                    self.assertLess(time.monotonic(), deadline, what)
                    time.sleep(0.02)

            def log():
                return self.request("GET", "/_control/requests", conn=ka_control).json()

            # A request in its 30 s delay (its answer never read).
            delayed = conn(port)
            delayed.request("POST", "/rest/v1/fichas?on_conflict=id&columns=id",
                            body=json.dumps([{"id": 1}]), headers=UPSERT_HEADERS)
            wait_until("the delayed request", lambda: len(log()) == 2)
            # A request in the database (pg_sleep in a trigger).
            in_db = conn(port)
            in_db.request("POST", "/rest/v1/fichas?on_conflict=id&columns=id",
                          body=json.dumps([{"id": 999}]), headers=UPSERT_HEADERS)
            wait_until("the request in the database", lambda: self.sql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
                " AND query LIKE '%fichas%'")[0][0] == 1)
            self.assertEqual([e["status"] is None for e in log()], [False, True, True])
            # A connection that sent nothing, and a body still on its way.
            idle = socket.create_connection(("127.0.0.1", port))
            partial = socket.create_connection(("127.0.0.1", port))
            partial.sendall(b"POST /rest/v1/fichas?columns=id HTTP/1.1\r\n"
                            b"Host: x\r\napikey: " + KEY.encode() + b"\r\n"
                            b"Content-Type: application/json\r\n"
                            b"Content-Length: 100\r\n\r\n[{\"id\"")
            time.sleep(0.2)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(5)
            except subprocess.TimeoutExpired:
                rc = None
            elapsed = time.monotonic() - t0
            with open(err) as fh:
                stderr = fh.read()
            self.assertEqual(rc, 0, stderr)
            self.assertLess(elapsed, 2, stderr)
            # Every connection was closed: the keep-alive ones see the end.
            for c in (ka_main, ka_control):
                c.sock.settimeout(2)
                self.assertEqual(c.sock.recv(1), b"")
            idle.close()
            partial.close()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for c in conns:
                c.close()
            self.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE wait_event = 'PgSleep'")
            self.sql("DROP TRIGGER stall ON public.fichas; DROP FUNCTION public.stall()")

    # Runs stand_in.py with threading.Condition._acquire_restore slowed
    # down in the main thread: it takes the Condition's lock back, then
    # holds it for a second (a marker file exists meanwhile), as the main
    # thread does when it is preempted, or waits for the GIL, at the end of
    # a timed Condition/Event wait.
    HOLDER = """
import os, runpy, sys, threading, time
marker, script = sys.argv[1], sys.argv[2]
restore = threading.Condition._acquire_restore
def held(self, state):
    restore(self, state)
    if threading.current_thread() is threading.main_thread():
        open(marker, "w").close()
        time.sleep(1.0)
        os.unlink(marker)
threading.Condition._acquire_restore = held
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""

    def test_sigterm_while_the_main_thread_holds_a_lock(self):
        """SIGTERM ends the stand-in whatever its main thread is doing when
        the signal comes.  The stand-in used to set a threading.Event from a
        Python-level handler while its main thread looped on that Event's
        wait(0.1): a signal handled while the main thread held the Event's
        (non-reentrant) lock, at the end of a wait, deadlocked it in the
        handler, the listeners still up: the TAP test hung in Remote->stop,
        now and then.  Here the main thread holds such a lock for a second
        at a time, and the signal is sent while it does (if it ever does)."""
        base = os.path.join(self.tmp, "holder_%d" % len(os.listdir(self.tmp)))
        with open(base + ".py", "w") as fh:
            fh.write(self.HOLDER)
        marker = base + ".held"
        with open(base + ".err", "w") as err:
            proc = subprocess.Popen([PYTHON, base + ".py", marker, STAND_IN, "--port", "0",
                                     "--dsn", self.dsn, "--api-key", KEY,
                                     "--port-file", base + ".port", "--control-port", "0",
                                     "--control-port-file", base + ".cport"],
                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 30
            while not (os.path.exists(base + ".port") and os.path.exists(base + ".cport")):
                self.assertIsNone(proc.poll())
                self.assertLess(time.monotonic(), deadline, "the stand-in did not start")
                time.sleep(0.02)
            with open(base + ".cport") as fh:
                cport = int(fh.read())
            conn = http.client.HTTPConnection("127.0.0.1", cport, timeout=10)
            self.assertEqual(self.request("GET", "/_control/health", conn=conn).status, 200)
            # Wait for the main thread to be holding a lock (the stand-in as
            # it was: within 0.1 s), or for 1.5 s (as it is: never).
            deadline = time.monotonic() + 1.5
            while not os.path.exists(marker) and time.monotonic() < deadline:
                time.sleep(0.005)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(4)
            except subprocess.TimeoutExpired:
                rc = None
            elapsed = time.monotonic() - t0
            conn.close()
            with open(base + ".err") as fh:
                stderr = fh.read()
            self.assertEqual(rc, 0, "still running %.1f s after SIGTERM\n%s" % (elapsed, stderr))
            self.assertLess(elapsed, 2, stderr)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def test_rls_refusal_is_401_for_anon(self):
        self.sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') "
                 "THEN CREATE ROLE anon NOLOGIN; END IF; END $$")
        self.sql("GRANT USAGE ON SCHEMA public TO anon; "
                 "GRANT SELECT, INSERT, UPDATE ON public.fichas TO anon; "
                 "ALTER TABLE public.fichas ENABLE ROW LEVEL SECURITY")
        proc, port, _ = self.spawn("--db-role", "anon")
        try:
            a = self.upsert([{"id": 1, "name": "a", "age": 1,
                              "sync_source": "tabuladormax"}], port=port)
            self.assertPgrstError(a, 401, "42501")
            self.assertEqual(a.headers.get("www-authenticate"), "Bearer")
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(10), 0)
            proc.stdout.close()
            self.sql("ALTER TABLE public.fichas DISABLE ROW LEVEL SECURITY")

    def test_statement_timeout_57014(self):
        self.sql("CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$; "
                 "CREATE TRIGGER slow BEFORE INSERT ON public.fichas "
                 "FOR EACH ROW EXECUTE FUNCTION public.slow()")
        try:
            self.control("faults", {"statement_timeout_ms": 50})
            a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
            self.assertPgrstError(a, 500, "57014",
                                  "canceling statement due to statement timeout")
        finally:
            self.sql("DROP TRIGGER slow ON public.fichas; DROP FUNCTION public.slow()")

    def test_broken_pooled_connection_503(self):
        self.assertEqual(self.upsert([]).status, 200)    # leaves a pooled connection
        self.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = 'remote' AND pid <> pg_backend_pid() "
                 "AND backend_type = 'client backend'")
        time.sleep(0.2)
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 503, a.body)
        self.assertEqual(a.headers.get("retry-after"), "0")
        self.assertIn(a.json()["code"], ("PGRST001", "57P01"))
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201, a.body)

    # -- gateway -----------------------------------------------------------

    def test_gateway_api_key(self):
        a = self.upsert([{"id": 1}], headers={"apikey": None})
        self.assertEqual(a.status, 401)
        self.assertEqual(a.json(), {
            "message": "No API key found in request",
            "hint": "No `apikey` request header or url param was found."})
        a = self.upsert([{"id": 1}], headers={"apikey": "wrong"})
        self.assertEqual(a.status, 401)
        self.assertEqual(a.json(), {
            "message": "Invalid API key",
            "hint": "Double check your Supabase `anon` or `service_role` API key."})
        # The key may also come as a url parameter.
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}],
                        query="on_conflict=id&columns=%s&apikey=%s" % (COLS, KEY),
                        headers={"apikey": None})
        self.assertEqual(a.status, 201, a.body)
        # A bearer token that is not the key is a bad JWT for PostgREST.
        a = self.upsert([{"id": 2}], headers={"Authorization": "Bearer nope"})
        self.assertPgrstError(a, 401, "PGRST301")
        self.assertEqual(self.ids(), [1])

    # -- fault switches ----------------------------------------------------

    def test_fail_next_with_retry_after(self):
        f = self.control("faults", {"fail_next": 2, "status": 503, "retry_after": "2"})
        self.assertEqual(f["fail_next"], 2)
        for _ in range(2):
            a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
            self.assertPgrstError(a, 503, "PGRST001")
            self.assertEqual(a.headers.get("retry-after"), "2")
        self.assertEqual(self.ids(), [])
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201)
        # Another status, an explicit body, no Retry-After.
        self.control("faults", {"fail_next": 1, "status": 429,
                                "body": {"message": "slow down"}})
        a = self.upsert([])
        self.assertEqual((a.status, a.json()), (429, {"message": "slow down"}))
        self.assertNotIn("retry-after", a.headers)

    def test_drop_next(self):
        self.control("faults", {"drop_next": 1})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(self.ids(), [])                  # nothing written
        self.control("faults", {"drop_next": 1, "drop_with_reset": True})
        with self.assertRaises(ConnectionError):
            self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(self.ids(), [])
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201)

    def test_drop_after_commit_next(self):
        self.control("faults", {"drop_after_commit_next": 1})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(self.ids(), [1])                 # committed all the same
        log = self.control("requests")
        self.assertEqual(log[-1]["fault"], "drop_after_commit")
        self.assertIsNone(log[-1]["status"])
        self.assertEqual(log[-1]["would_status"], 201)
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 200)

    def test_down_for_ms_refuses_then_recovers(self):
        t0 = time.monotonic()
        self.control("faults", {"down_for_ms": 800}, port=self.port)   # via the main port
        with self.assertRaises(ConnectionRefusedError):
            self.upsert([])
        # The control port stays up.
        self.assertTrue(self.control("health")["down"])
        while time.monotonic() - t0 < 5:
            try:
                a = self.upsert([{"id": 1, "name": "a", "age": 1,
                                  "sync_source": "tabuladormax"}])
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        self.assertEqual(a.status, 201)
        self.assertGreaterEqual(time.monotonic() - t0, 0.75)
        self.assertFalse(self.control("health")["down"])

    def test_down_toggle(self):
        self.control("faults", {"down": True})
        with self.assertRaises(ConnectionRefusedError):
            self.upsert([])
        self.control("faults", {"down": False})
        self.assertEqual(self.upsert([]).status, 200)

    def test_delay_and_gateway_timeout(self):
        self.control("faults", {"delay_next": 1, "delay_ms": 300})
        t0 = time.monotonic()
        self.assertEqual(self.upsert([]).status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        t0 = time.monotonic()
        self.assertEqual(self.upsert([]).status, 200)
        self.assertLess(time.monotonic() - t0, 0.25)
        # Every answer waits, and the gateway gives up past its limit (the
        # work is done all the same, as behind a real gateway).
        self.control("faults", {"delay_ms": 250, "gateway_timeout_over_ms": 100})
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 544)
        self.assertEqual(self.ids(), [1])
        self.control("faults", {"delay_ms": 0})
        self.assertEqual(self.upsert([]).status, 200)

    # -- a WAN's latency and a rate-limiting gateway ------------------------

    def concurrent_upserts(self, ids, stagger_s=0.0):
        """One upsert of one row per id, each on its own connection and
        thread, all started together (or stagger_s apart): [(id, Answer,
        seconds)] in the order of ids, and the wall time of the lot."""
        out = [None] * len(ids)

        def one_upsert(i, lead):
            t = time.monotonic()
            a = self.upsert([{"id": lead, "name": "n%d" % lead, "age": 1,
                              "sync_source": "tabuladormax"}])
            out[i] = (lead, a, time.monotonic() - t)

        threads = [threading.Thread(target=one_upsert, args=(i, lead))
                   for i, lead in enumerate(ids)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
            if stagger_s:
                time.sleep(stagger_s)
        for t in threads:
            t.join(30)
        return out, time.monotonic() - t0

    def test_delay_is_a_round_trip_each_request_waits_its_own(self):
        # 16 requests at once (more than the pool's 10 connections), each
        # on a new connection: each waits its own 200 ms, holding neither a
        # database connection nor a lock, so the lot takes ~200 ms, not
        # 16 x 200 ms (nor 2 x 200 ms, as a pool held during the wait would).
        self.control("faults", {"delay_ms": 200})
        out, wall = self.concurrent_upserts(list(range(1, 17)))
        self.assertEqual(sorted(a.status for _, a, _ in out), [201] * 16)
        for _, _, secs in out:
            self.assertGreaterEqual(secs, 0.2)
        self.assertLess(wall, 0.39, "16 concurrent requests at 200 ms took %.3f s" % wall)
        self.assertEqual(self.ids(), list(range(1, 17)))
        stats = self.control("stats")
        self.assertEqual(stats["max_concurrent_seen"], 16)
        self.assertEqual(stats["rate_limited"], 0)
        # And the delay is every answer's, the control endpoint's aside.
        t0 = time.monotonic()
        self.control("stats")
        self.assertLess(time.monotonic() - t0, 0.15)

    def test_sixteen_connections_opened_at_once(self):
        # A client opening 16 connections in the same instant (libcurl's
        # multi interface with 16 transfers) is not held back by a short
        # listen backlog: with socketserver's default of 5 the SYNs beyond
        # it are dropped and retried a second later.
        self.control("faults", {"delay_ms": 200})
        socks = [socket.socket() for _ in range(16)]
        conns = []
        try:
            t0 = time.monotonic()
            for s in socks:
                s.setblocking(False)
                try:
                    s.connect(("127.0.0.1", self.port))
                except BlockingIOError:
                    pass
            for i, s in enumerate(socks):
                s.setblocking(True)
                s.settimeout(10)
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                c.sock = s
                h = dict(UPSERT_HEADERS)
                c.request("POST", "/rest/v1/fichas?on_conflict=id&columns=id",
                          body=json.dumps([{"id": 200 + i}]), headers=h)
                conns.append(c)
            statuses = []
            for c in conns:
                r = c.getresponse()
                r.read()
                statuses.append(r.status)
            wall = time.monotonic() - t0
        finally:
            for c in conns:
                c.close()
            for s in socks:
                s.close()
        self.assertEqual(statuses, [201] * 16)
        self.assertLess(wall, 0.75, "16 connections at once took %.3f s" % wall)
        self.assertEqual(self.control("stats")["max_concurrent_seen"], 16)

    def test_max_concurrent_refuses_the_excess_with_429(self):
        f = self.control("faults", {"delay_ms": 300, "max_concurrent": 2})
        self.assertEqual((f["max_concurrent"], f["max_concurrent_retry_after"]), (2, "1"))
        # 6 requests at once: the first 2 received are processed, the 4 that
        # arrive while those 2 are at it are refused at the gateway.
        out, wall = self.concurrent_upserts([11, 12, 13, 14, 15, 16], stagger_s=0.02)
        statuses = [a.status for _, a, _ in out]
        self.assertEqual(sorted(statuses), [201, 201, 429, 429, 429, 429])
        passed = sorted(lead for lead, a, _ in out if a.status == 201)
        refused = sorted(lead for lead, a, _ in out if a.status == 429)
        for lead, a, secs in out:
            if a.status == 429:
                self.assertEqual(a.json(), {"message": "API rate limit exceeded"})
                self.assertEqual(a.headers.get("retry-after"), "1")
                self.assertEqual(a.headers.get("content-type"),
                                 "application/json; charset=utf-8")
            # every answer crosses the "WAN", the refusal too
            self.assertGreaterEqual(secs, 0.3)
        # Nothing of the refused requests reached the table.
        self.assertEqual(self.ids(), passed)
        stats = self.control("stats")
        self.assertEqual(stats["by_status"], {"201": 2, "429": 4})
        self.assertEqual((stats["requests"], stats["rows"]), (6, 2))
        self.assertEqual(stats["rate_limited"], 4)
        self.assertEqual(stats["max_concurrent_seen"], 6)
        # In the log (the order of receipt): the first two passed.
        log = self.control("requests")
        self.assertEqual([(e["status"], e["fault"]) for e in log],
                         [(201, None), (201, None)] + [(429, "rate_limited")] * 4)
        self.assertEqual(sorted(e["ids"][0] for e in log if e["status"] == 429), refused)
        # Once they are answered their slots are free again: two at a time
        # pass, and requests one after another never see a 429 (a slot is
        # given back before its answer leaves).
        out, _ = self.concurrent_upserts(refused[:2])
        self.assertEqual([a.status for _, a, _ in out], [201, 201])
        self.control("faults", {"delay_ms": 0, "max_concurrent": 1})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for i in range(30):
                a = self.upsert([{"id": 100 + i}], query="on_conflict=id&columns=id",
                                conn=conn if i % 2 else None)
                self.assertEqual(a.status, 201, a.body)
        finally:
            conn.close()
        self.assertEqual(self.control("stats")["rate_limited"], 4)
        # Another Retry-After, or none; null lifts the limit.
        self.control("faults", {"delay_ms": 300, "max_concurrent": 1,
                                "max_concurrent_retry_after": "3"})
        out, _ = self.concurrent_upserts([21, 22], stagger_s=0.05)
        out.sort(key=lambda o: o[1].status)
        self.assertEqual([a.status for _, a, _ in out], [201, 429])
        self.assertEqual(out[1][1].headers.get("retry-after"), "3")
        self.control("faults", {"max_concurrent_retry_after": None})
        out, _ = self.concurrent_upserts([23, 24], stagger_s=0.05)
        out.sort(key=lambda o: o[1].status)
        self.assertEqual([a.status for _, a, _ in out], [201, 429])
        self.assertNotIn("retry-after", out[1][1].headers)
        self.control("faults", {"max_concurrent": None})
        out, _ = self.concurrent_upserts([31, 32, 33, 34])
        self.assertEqual([a.status for _, a, _ in out], [201] * 4)
        self.assertEqual(self.control("stats")["max_concurrent_seen"], 6)
        # reset clears the counts and the limit.
        self.control("faults", {"max_concurrent": 3})
        self.control("reset")
        f = self.control("faults")
        self.assertEqual((f["max_concurrent"], f["delay_ms"]), (None, 0))
        stats = self.control("stats")
        self.assertEqual((stats["rate_limited"], stats["max_concurrent_seen"]), (0, 0))

    def test_max_concurrent_is_the_outermost_gateway(self):
        # A refused request takes none of the one-shot faults, and no key
        # check happens first: the gateway's limit answers before anything.
        self.control("faults", {"delay_ms": 300, "max_concurrent": 1})
        t = threading.Thread(target=self.upsert, args=([{"id": 1}],),
                             kwargs={"query": "on_conflict=id&columns=id"})
        t.start()
        time.sleep(0.1)
        self.control("faults", {"fail_next": 1, "status": 503})
        a = self.upsert([{"id": 2}], query="on_conflict=id&columns=id",
                        headers={"apikey": None})
        t.join()
        self.assertEqual(a.status, 429)
        self.assertEqual(self.control("faults")["fail_next"], 1)
        for bad in ({"max_concurrent": 0}, {"max_concurrent": -1},
                    {"max_concurrent": "2"}, {"max_concurrent": True}):
            a = self.request("POST", "/_control/faults", bad, port=self.cport)
            self.assertEqual(a.status, 400, bad)

    def test_max_concurrent_and_delay_on_the_command_line_survive_reset(self):
        proc, port, _ = self.spawn("--delay-ms", "150", "--max-concurrent", "1",
                                   "--max-concurrent-retry-after", "2")
        try:
            f = self.request("GET", "/_control/faults", port=port).json()
            self.assertEqual((f["delay_ms"], f["max_concurrent"],
                              f["max_concurrent_retry_after"]), (150, 1, "2"))
            self.request("POST", "/_control/faults", {"max_concurrent": None,
                                                     "delay_ms": 0}, port=port)
            self.assertEqual(self.request("POST", "/_control/reset", port=port).status, 200)
            f = self.request("GET", "/_control/faults", port=port).json()
            self.assertEqual((f["delay_ms"], f["max_concurrent"],
                              f["max_concurrent_retry_after"]), (150, 1, "2"))
            out = [None, None]

            def go(i):
                out[i] = self.upsert([{"id": 50 + i}], query="on_conflict=id&columns=id",
                                     port=port)

            ts = [threading.Thread(target=go, args=(i,)) for i in range(2)]
            ts[0].start()
            time.sleep(0.05)
            ts[1].start()
            for t in ts:
                t.join()
            out.sort(key=lambda a: a.status)
            self.assertEqual([a.status for a in out], [201, 429])
            self.assertEqual(out[1].headers.get("retry-after"), "2")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            proc.stdout.close()

    def test_paused_project_540(self):
        self.control("faults", {"paused_project": True})
        self.assertEqual(self.upsert([{"id": 1}]).status, 540)
        self.control("faults", {"paused_project": False})
        self.assertEqual(self.upsert([]).status, 200)

    def test_unknown_fault_key_refused(self):
        a = self.request("POST", "/_control/faults", {"fail_nxt": 1}, port=self.cport)
        self.assertEqual(a.status, 400)

    # -- request log and statistics ----------------------------------------

    def test_requests_log_and_stats(self):
        self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"},
                     {"id": 2, "name": "b", "age": 2, "sync_source": "tabuladormax"}])
        self.upsert([{"id": 2, "name": "b", "age": 2, "sync_source": "tabuladormax"}])
        self.upsert([{"id": 3}], query="on_conflict=id&columns=nope")
        log = self.control("requests")
        self.assertEqual([e["seq"] for e in log], [1, 2, 3])
        first = log[0]
        self.assertEqual(first["method"], "POST")
        self.assertEqual(first["path"], "/rest/v1/fichas")
        self.assertEqual(first["query"], {"on_conflict": "id", "columns": COLS})
        self.assertEqual(first["headers"]["apikey"], KEY)
        self.assertEqual(first["headers"]["prefer"],
                         "resolution=merge-duplicates,return=minimal")
        self.assertEqual((first["n_rows"], first["ids"], first["status"]), (2, [1, 2], 201))
        self.assertIsInstance(first["started_at"], float)
        self.assertGreaterEqual(first["duration_ms"], 0)
        self.assertNotIn("body", first)
        self.assertEqual((log[1]["status"], log[2]["status"]), (200, 400))
        self.assertEqual(log[2]["error_code"], "PGRST204")
        self.assertEqual([e["seq"] for e in self.control("requests?since=2", method="GET")],
                         [3])
        stats = self.control("stats")
        self.assertEqual(stats, {"requests": 3, "rows": 3,
                                 "by_status": {"201": 1, "200": 1, "400": 1},
                                 "rate_limited": 0, "max_concurrent_seen": 1})
        self.control("reset")
        self.assertEqual(self.control("stats"), {"requests": 0, "rows": 0, "by_status": {},
                                                 "rate_limited": 0,
                                                 "max_concurrent_seen": 0})

    def test_log_rows_of_failed_and_refused_requests(self):
        # A successful upsert with ?columns takes its ids from the database
        # (the body is not parsed); any other request from its body, as sent.
        ok = [{"id": 10, "name": "a", "age": 1, "sync_source": "tabuladormax"},
              {"id": 11, "name": "b", "age": 2, "sync_source": "tabuladormax"}]
        bad = [{"id": 20, "name": "a", "age": 1, "sync_source": "tabuladormax"},
               {"id": 21, "name": "b", "age": "x", "sync_source": "tabuladormax"}]
        self.assertEqual(self.upsert(ok).status, 201)
        self.assertEqual(self.upsert(bad).status, 400)                  # 22P02
        self.assertEqual(self.upsert([]).status, 200)
        self.assertEqual(self.upsert(ok[0]).status, 200)                # one object
        self.assertEqual(self.upsert([{"id": 30}], query="on_conflict=id&columns=name")
                         .status, 400)                                  # 23502, no id column
        self.assertEqual(self.upsert(ok, headers={"apikey": "wrong"}).status, 401)
        self.control("faults", {"fail_next": 1})
        self.assertEqual(self.upsert(bad).status, 503)
        self.control("faults", {"drop_next": 1})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.upsert(bad)
        self.control("faults", {"drop_after_commit_next": 1})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.upsert([{"id": 12}, {"id": 13}], query="on_conflict=id&columns=id")
        self.assertEqual(self.upsert("[1, {\"id\": 5}, {\"x\": 1}]").status, 400)
        self.assertEqual(self.upsert("not json").status, 400)
        log = self.control("requests")
        self.assertEqual([(e["status"], e["n_rows"], e["ids"]) for e in log], [
            (201, 2, [10, 11]), (400, 2, [20, 21]), (200, 0, []), (200, 1, [10]),
            (400, 1, [30]), (401, 2, [10, 11]), (503, 2, [20, 21]),
            (None, 2, [20, 21]), (None, 2, [12, 13]), (400, 3, [5]), (400, None, None)])
        self.assertEqual(log[1]["error_code"], "22P02")
        self.assertEqual(log[8]["would_status"], 201)
        self.assertEqual(self.control("stats")["rows"], 2 + 0 + 1 + 2)
        self.assertEqual(self.ids(), [10, 11, 12, 13])

    def test_log_ids_are_the_bodys_when_the_table_may_differ(self):
        # ignore-duplicates skips conflicting rows (not returned by the
        # upsert): the log still lists every row of the body.
        self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        a = self.upsert([{"id": 1, "name": "b", "age": 1, "sync_source": "tabuladormax"},
                         {"id": 2, "name": "b", "age": 1, "sync_source": "tabuladormax"}],
                        headers={"Prefer": "resolution=ignore-duplicates,return=minimal"})
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual((self.control("requests")[-1]["n_rows"],
                          self.control("requests")[-1]["ids"]), (2, [1, 2]))
        # A BEFORE trigger that skips a row and rewrites another's id: once
        # the schema cache knows it, the log lists the body's rows too.
        self.sql("CREATE FUNCTION public.odd() RETURNS trigger LANGUAGE plpgsql AS $$ "
                 "BEGIN IF NEW.name = 'skip' THEN RETURN NULL; END IF; "
                 "IF NEW.name = 'shift' THEN NEW.id := NEW.id + 1000; END IF; "
                 "RETURN NEW; END $$; "
                 "CREATE TRIGGER odd BEFORE INSERT ON public.fichas "
                 "FOR EACH ROW EXECUTE FUNCTION public.odd()")
        try:
            self.control("reload_schema")
            self.control("reset")
            a = self.upsert([{"id": 5, "name": "skip", "age": 1, "sync_source": "tabuladormax"},
                             {"id": 6, "name": "shift", "age": 1, "sync_source": "tabuladormax"},
                             {"id": 7, "name": "keep", "age": 1, "sync_source": "tabuladormax"}])
            self.assertEqual(a.status, 201, a.body)
            e = self.control("requests")[-1]
            self.assertEqual((e["n_rows"], e["ids"]), (3, [5, 6, 7]))
            self.assertEqual(self.control("stats")["rows"], 3)
            self.assertEqual(self.ids(), [1, 2, 7, 1006])
        finally:
            self.sql("DROP TRIGGER odd ON public.fichas; DROP FUNCTION public.odd()")
            self.control("reload_schema")

    # -- the body as the upsert's parameter --------------------------------

    HOSTILE = ["O'Neil", "'); DROP TABLE public.fichas; --", "back\\slash \\' \\\\' ''",
               "$$ $1 %s %% {} \\x00 \\u00e9", "quote \" and \\\" ç ã 🙂 \U0001F600",
               "new\nline\ttab", "E'\\\\'", "\\"]

    def check_hostile(self, port=None):
        rows = [{"id": i + 1, "name": v, "age": i, "sync_source": "tabuladormax"}
                for i, v in enumerate(self.HOSTILE)]
        a = self.upsert(rows, port=port)
        self.assertEqual(a.status, 201, a.body)
        got = self.sql("SELECT name FROM public.fichas ORDER BY id")
        self.assertEqual([r[0] for r in got], self.HOSTILE)
        # Raw escapes of JSON itself, exactly as sent.
        self.sql("TRUNCATE public.fichas")
        a = self.upsert('[{"id": 1, "name": "\\u0041\\\\\\"\\/\'", "age": 1}]'.encode(),
                        query="on_conflict=id&columns=id,name,age", port=port)
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(self.row(1), [(1, 'A\\"/\'', 1, None)])

    def test_body_bytes_reach_the_database_unchanged(self):
        self.check_hostile()
        self.assertEqual(self.control("requests")[0]["ids"], list(range(1, 9)))

    def test_body_bytes_without_standard_conforming_strings(self):
        self.sql("ALTER DATABASE remote SET standard_conforming_strings = off")
        try:
            proc, port, _ = self.spawn()
            try:
                self.check_hostile(port=port)
            finally:
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(10), 0)
                proc.stdout.close()
        finally:
            self.sql("ALTER DATABASE remote RESET standard_conforming_strings")

    def pg_utf8_error(self, raw):
        """PostgreSQL's own error for `raw` as UTF-8 (as for PostgREST's
        binary json parameter)."""
        try:
            self.sql("SELECT convert_from(%s::bytea, 'UTF8')", (psycopg2.Binary(raw),))
        except psycopg2.Error as e:
            return e.pgcode, e.diag.message_primary
        self.fail("valid UTF-8: %r" % raw)

    def test_invalid_utf8_and_nul_refused_by_the_database(self):
        bodies = [b'[{"id": 1, "name": "\xff"}]',
                  b'[{"id": 1, "name": "\xe2\'x"}]',     # the quote follows the bad byte
                  b'[{"id": 1, "name": "\xe2\\\\x"}]',
                  b'[{"id": 1, "name": "x"}]\xc3',         # cut at the very end
                  b'[{"id": 1, "name": "a\x00b"}]',
                  b'[{"id": 1, "name": "\xc3\xa9"}]\x00']
        for raw in bodies:
            a = self.upsert(raw, query="on_conflict=id&columns=id,name")
            code, message = self.pg_utf8_error(raw)
            self.assertPgrstError(a, 400, code, message)
            self.assertEqual(code, "22021")
        self.assertEqual(self.ids(), [])
        log = self.control("requests")
        self.assertEqual([e["error_code"] for e in log], ["22021"] * len(bodies))
        # A body that is not even UTF-8 has no rows to log.
        self.assertEqual({(e["n_rows"], e["ids"]) for e in log}, {(None, None)})
        # The connections stay usable.
        a = self.upsert([{"id": 1, "name": "é", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201, a.body)

    def test_deep_json_with_columns_goes_to_the_database(self):
        # PostgREST does not parse a body sent with ?columns: the database
        # refuses what it cannot take (here its stack depth limit).
        deep = '[{"id": 1, "raw": ' + "[" * 100000 + "]" * 100000 + "}]"
        a = self.upsert(deep, query="on_conflict=id&columns=id,raw")
        self.assertPgrstError(a, 500, "54001")
        self.assertEqual(self.control("requests")[-1]["error_code"], "54001")
        self.assertEqual(self.ids(), [])


LEADS_COLS = "id,nome,responsavel,idade,ultima_sincronizacao,origem_sincronizacao"


class OtherTablesTest(StandInCase):
    """A second table besides fichas: gestao-scouter's own `leads`, with
    Portuguese column names (gestao_leads.sql), as a job with the option
    target_table = 'leads' writes to it."""

    SCHEMA_FILES = [SCHEMA_FILE, LEADS_FILE]
    TRUNCATE = ["public.fichas", "public.fichas_sync_back", "public.leads"]

    def post(self, table, rows, query="", headers=None, **kw):
        h = dict(UPSERT_HEADERS)
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        path = "/rest/v1/" + table + ("?" + query if query else "")
        return self.request("POST", path, rows, h, **kw)

    def upsert_leads(self, rows, query="on_conflict=id&columns=" + LEADS_COLS, **kw):
        return self.post("leads", rows, query, **kw)

    def lead(self, i):
        return self.sql("SELECT id, nome, responsavel, idade, "
                        "to_char(ultima_sincronizacao AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD HH24:MI:SS.US'), origem_sincronizacao, foto "
                        "FROM public.leads WHERE id = %s", (i,))

    def lead_ids(self):
        return [r[0] for r in self.sql("SELECT id FROM public.leads ORDER BY id")]

    @staticmethod
    def leads(*ids, **over):
        out = []
        for i in ids:
            row = {"id": i, "nome": "Nome %d" % i, "responsavel": "Resp ção",
                   "idade": 20 + i,
                   "ultima_sincronizacao": "2025-03-01T12:00:00.123456-03:00",
                   "origem_sincronizacao": "batch_export"}
            row.update(over)
            out.append(row)
        return out

    def test_upsert_into_leads(self):
        a = self.upsert_leads(self.leads(1, 2))
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(a.body, b"")
        self.assertEqual(a.headers["content-range"], "*/*")
        self.assertEqual(a.headers["preference-applied"],
                         "resolution=merge-duplicates, return=minimal")
        self.assertEqual(self.lead(1), [(1, "Nome 1", "Resp ção", 21,
                                         "2025-03-01 15:00:00.123456", "batch_export",
                                         None)])
        self.assertEqual(self.ids(), [])                # fichas untouched
        # DO UPDATE SET each sent column = EXCLUDED.column: a column not
        # sent (foto) keeps its value; all rows existed: 200.
        self.sql("UPDATE public.leads SET foto = 'f.jpg' WHERE id = 1")
        a = self.upsert_leads(self.leads(1, 2, nome="Outro", idade=None))
        self.assertEqual(a.status, 200, a.body)
        self.assertEqual(self.lead(1), [(1, "Outro", "Resp ção", None,
                                         "2025-03-01 15:00:00.123456", "batch_export",
                                         "f.jpg")])
        # One new row among updates: 201.
        a = self.upsert_leads(self.leads(2, 3))
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(self.lead_ids(), [1, 2, 3])
        # Without ?columns the keys are the columns; the table's own CHECK
        # refuses a bad origem_sincronizacao (all or nothing).
        a = self.post("leads", [{"id": 4, "nome": "x", "origem_sincronizacao": "batch_export"},
                                {"id": 5, "nome": "y", "origem_sincronizacao": "bogus"}],
                      "on_conflict=id")
        b = self.assertPgrstError(a, 400, "23514")
        self.assertIn("leads_origem_sincronizacao_check", b["message"])
        self.assertEqual(self.lead_ids(), [1, 2, 3])
        # return=representation: the rows of leads.
        a = self.upsert_leads(self.leads(6), headers={
            "Prefer": "resolution=merge-duplicates,return=representation"})
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(a.headers["content-profile"], "public")
        body = a.json()
        self.assertEqual([(r["id"], r["nome"], r["foto"]) for r in body], [(6, "Nome 6", None)])
        # GET reads leads too.
        a = self.request("GET", "/rest/v1/leads?select=id,nome&id=in.(1,6)&order=id",
                         headers={"apikey": KEY})
        self.assertEqual((a.status, a.json()), (200, [{"id": 1, "nome": "Outro"},
                                                     {"id": 6, "nome": "Nome 6"}]))
        # fichas still works as before, in the same stand-in.
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201, a.body)

    def test_missing_column_pgrst204_names_column_and_table(self):
        # A column fichas has, but leads has not (schema drift between a
        # job's mapping and the remote table).
        a = self.upsert_leads(self.leads(1), query="on_conflict=id&columns=" + LEADS_COLS
                              + ",name,sync_source")
        b = self.assertPgrstError(
            a, 400, "PGRST204",
            "Could not find the 'name' column of 'leads' in the schema cache")
        self.assertIsNone(b["details"])
        self.assertIsNone(b["hint"])
        # Without ?columns: the first unknown key, alphabetically.
        a = self.post("leads", [{"id": 1, "nome": "x", "zona": 1, "photo_url": "p"}],
                      "on_conflict=id")
        self.assertPgrstError(
            a, 400, "PGRST204",
            "Could not find the 'photo_url' column of 'leads' in the schema cache")
        # And the other way round, each table with its own columns.
        a = self.upsert([{"id": 1, "nome": "x"}], query="on_conflict=id&columns=id,nome")
        self.assertPgrstError(
            a, 400, "PGRST204",
            "Could not find the 'nome' column of 'fichas' in the schema cache")
        self.assertEqual((self.lead_ids(), self.ids()), ([], []))
        self.assertEqual([e["error_code"] for e in self.control("requests")],
                         ["PGRST204"] * 3)

    def test_unknown_table_404_as_postgrest(self):
        for q in ("on_conflict=id&columns=id,nome", "on_conflict=id", ""):
            a = self.post("leadz", [{"id": 1, "nome": "x"}], q)
            self.assertEqual(a.status, 404, (q, a.body))
            self.assertEqual(a.headers.get("content-type"), "application/json; charset=utf-8")
            self.assertEqual(a.json(), {})
        # No column to resolve: PostgREST 12.2 sends the INSERT and the
        # database answers.
        for body in ([], [{}], {}):
            a = self.post("leadz", body, "on_conflict=id")
            self.assertPgrstError(a, 404, "42P01", 'relation "public.leadz" does not exist')
        a = self.request("GET", "/rest/v1/leadz", headers={"apikey": KEY})
        self.assertPgrstError(a, 404, "42P01", 'relation "public.leadz" does not exist')
        # A table created since the schema cache was loaded is unknown to
        # PostgREST until a reload, although the database has it.
        self.sql("CREATE TABLE public.novos (id bigint PRIMARY KEY, nome text)")
        try:
            a = self.post("novos", [{"id": 1, "nome": "x"}], "on_conflict=id&columns=id,nome")
            self.assertEqual((a.status, a.json()), (404, {}))
            a = self.post("novos", [], "on_conflict=id")
            self.assertEqual(a.status, 200, a.body)         # the database took it
            a = self.request("GET", "/rest/v1/novos", headers={"apikey": KEY})
            self.assertEqual((a.status, a.json()), (200, []))
            info = self.control("reload_schema")
            self.assertEqual(info["tables"]["novos"]["columns"], ["id", "nome"])
            a = self.post("novos", [{"id": 1, "nome": "x"}], "on_conflict=id&columns=id,nome")
            self.assertEqual(a.status, 201, a.body)
            self.assertEqual(self.sql("SELECT id, nome FROM public.novos"), [(1, "x")])
        finally:
            self.sql("DROP TABLE public.novos")
            self.control("reload_schema")
        # Dropped, reloaded: unknown again.
        a = self.post("novos", [{"id": 1}], "on_conflict=id&columns=id")
        self.assertEqual((a.status, a.json()), (404, {}))

    def test_on_conflict_without_unique_constraint(self):
        self.upsert_leads(self.leads(1))
        # PostgREST does not check on_conflict against its schema cache:
        # the database refuses a target that no unique index matches.
        a = self.upsert_leads(self.leads(1, 2), query="on_conflict=nome&columns=" + LEADS_COLS)
        self.assertPgrstError(
            a, 400, "42P10",
            "there is no unique or exclusion constraint matching the ON CONFLICT specification")
        a = self.upsert_leads(self.leads(2), query="on_conflict=id,nome&columns=" + LEADS_COLS)
        self.assertPgrstError(a, 400, "42P10")
        a = self.upsert_leads(self.leads(2), query="on_conflict=nada&columns=" + LEADS_COLS)
        self.assertPgrstError(a, 400, "42703", 'column "nada" does not exist')
        self.assertEqual(self.lead_ids(), [1])
        # Once nome is unique, the same request is an upsert on nome.
        self.sql("CREATE UNIQUE INDEX leads_nome ON public.leads (nome)")
        try:
            a = self.upsert_leads([{"id": 1, "nome": "Nome 1", "idade": 99}],
                                  query="on_conflict=nome&columns=id,nome,idade")
            self.assertEqual(a.status, 200, a.body)
            self.assertEqual(self.lead(1)[0][3], 99)
        finally:
            self.sql("DROP INDEX public.leads_nome")

    def test_log_and_stats_name_the_table(self):
        self.assertEqual(self.upsert_leads(self.leads(1, 2)).status, 201)
        self.assertEqual(self.upsert([{"id": 7, "name": "a", "age": 1,
                                       "sync_source": "tabuladormax"}]).status, 201)
        self.assertEqual(self.upsert_leads(self.leads(3), query="on_conflict=id&columns=x")
                         .status, 400)
        self.assertEqual(self.post("leadz", [{"id": 1}], "on_conflict=id&columns=id")
                         .status, 404)
        self.control("faults", {"fail_next": 1})
        self.assertEqual(self.upsert_leads(self.leads(4)).status, 503)
        self.assertEqual(self.request("POST", "/rest/v1/rpc/f", {}, UPSERT_HEADERS).status, 404)
        log = self.control("requests")
        self.assertEqual([(e["table"], e["status"]) for e in log], [
            ("leads", 201), ("fichas", 201), ("leads", 400), ("leadz", 404),
            ("leads", 503), (None, 404)])
        self.assertEqual((log[0]["path"], log[0]["n_rows"], log[0]["ids"]),
                         ("/rest/v1/leads", 2, [1, 2]))
        self.assertEqual(log[2]["error_code"], "PGRST204")
        self.assertEqual(log[4]["fault"], "fail")
        self.assertEqual([e["seq"] for e in self.control("requests?table=leads",
                                                         method="GET")], [1, 3, 5])
        self.assertEqual([e["seq"] for e in self.control("requests?since=2&table=leads",
                                                         method="GET")], [3, 5])
        self.assertEqual(self.control("stats"), {
            "requests": 6, "rows": 3,
            "by_status": {"201": 2, "400": 1, "404": 2, "503": 1},
            "rate_limited": 0, "max_concurrent_seen": 1})
        self.assertEqual(self.control("stats?table=leads", method="GET"), {
            "requests": 3, "rows": 2, "by_status": {"201": 1, "400": 1, "503": 1}})
        self.assertEqual(self.control("stats?table=fichas", method="GET"), {
            "requests": 1, "rows": 1, "by_status": {"201": 1}})
        self.assertEqual(self.control("stats?table=nada", method="GET"), {
            "requests": 0, "rows": 0, "by_status": {}})
        self.control("reset")
        self.assertEqual(self.control("stats?table=leads", method="GET"), {
            "requests": 0, "rows": 0, "by_status": {}})

    def test_reload_schema_reads_every_table(self):
        info = self.control("reload_schema")
        # fichas at the top, as before; every relation under "tables".
        self.assertTrue(info["table"])
        self.assertIn("sync_source", info["columns"])
        self.assertEqual(info["pk"], ["id"])
        self.assertEqual(info["tables"]["leads"], {
            "schema": "public", "kind": "table", "pk": ["id"],
            "columns": ["id", "nome", "responsavel", "idade", "foto", "telefone", "etapa",
                        "projeto_comercial", "scouter", "criado", "modificado",
                        "ultima_sincronizacao", "origem_sincronizacao"]})
        self.assertEqual(info["tables"]["fichas_sync_back"]["pk"], [])
        self.sql("ALTER TABLE public.leads DROP COLUMN foto")
        try:
            # Stale cache: the database refuses the column.
            a = self.post("leads", [{"id": 1, "foto": "x"}], "on_conflict=id")
            self.assertPgrstError(a, 400, "42703")
            self.assertNotIn("foto", self.control("reload_schema")["tables"]["leads"]["columns"])
            a = self.post("leads", [{"id": 1, "foto": "x"}], "on_conflict=id")
            self.assertPgrstError(
                a, 400, "PGRST204",
                "Could not find the 'foto' column of 'leads' in the schema cache")
        finally:
            self.sql("ALTER TABLE public.leads ADD COLUMN foto text")
            self.control("reload_schema")
        a = self.post("leads", [{"id": 1, "foto": "x"}], "on_conflict=id")
        self.assertEqual(a.status, 201, a.body)

    def test_trigger_on_one_table_leaves_the_others_log(self):
        # A BEFORE trigger on leads: its log ids come from the body; fichas
        # keeps taking them from its upsert.
        self.sql("CREATE FUNCTION public.skip_lead() RETURNS trigger LANGUAGE plpgsql AS $$ "
                 "BEGIN IF NEW.nome = 'skip' THEN RETURN NULL; END IF; RETURN NEW; END $$; "
                 "CREATE TRIGGER skip_lead BEFORE INSERT ON public.leads "
                 "FOR EACH ROW EXECUTE FUNCTION public.skip_lead()")
        try:
            self.control("reload_schema")
            a = self.upsert_leads(self.leads(1) + self.leads(2, nome="skip"))
            self.assertEqual(a.status, 201, a.body)
            self.assertEqual(self.lead_ids(), [1])
            a = self.upsert([{"id": 3, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
            self.assertEqual(a.status, 201, a.body)
            self.assertEqual([(e["table"], e["n_rows"], e["ids"])
                              for e in self.control("requests")],
                             [("leads", 2, [1, 2]), ("fichas", 1, [3])])
        finally:
            self.sql("DROP TRIGGER skip_lead ON public.leads; DROP FUNCTION public.skip_lead()")
            self.control("reload_schema")

    def test_view(self):
        self.sql("CREATE VIEW public.leads_jovens AS "
                 "SELECT id, nome, idade FROM public.leads WHERE idade < 30")
        try:
            info = self.control("reload_schema")
            self.assertEqual(info["tables"]["leads_jovens"]["kind"], "view")
            # A plain insert through the (auto-updatable) view.
            a = self.post("leads_jovens", [{"id": 1, "nome": "v", "idade": 20}], "",
                          headers={"Prefer": "return=minimal"})
            self.assertEqual(a.status, 201, a.body)
            self.assertEqual(self.lead_ids(), [1])
            a = self.post("leads_jovens", [{"id": 1, "foto": "x"}], "")
            self.assertPgrstError(
                a, 400, "PGRST204",
                "Could not find the 'foto' column of 'leads_jovens' in the schema cache")
            # A resolution without on_conflict would need the view's primary
            # key, which PostgREST infers and the stand-in does not: 501.
            a = self.post("leads_jovens", [{"id": 2, "nome": "v", "idade": 20}], "")
            self.assertPgrstError(a, 501, "STANDIN501")
            self.assertEqual(self.lead_ids(), [1])
        finally:
            self.sql("DROP VIEW public.leads_jovens")
            self.control("reload_schema")

    def test_fixture_file(self):
        # gestao_leads.sql loads on its own (as gs_export's TAP tests load
        # it) and its CHECK takes every origin the original used.
        for origin in ("batch_export", "tabuladormax", "gestao_scouter", "bitrix", "manual",
                       None):
            a = self.post("leads", [{"id": 1, "origem_sincronizacao": origin}],
                          "on_conflict=id&columns=id,origem_sincronizacao")
            self.assertIn(a.status, (200, 201), (origin, a.body))
        self.assertEqual(self.sql("SELECT data_type FROM information_schema.columns "
                                  "WHERE table_name = 'leads' AND column_name IN "
                                  "('id', 'idade', 'criado', 'modificado') ORDER BY column_name"),
                         [("timestamp with time zone",), ("bigint",), ("integer",),
                          ("timestamp with time zone",)])


# ---------------------------------------------------------------------------
# API mode: the stand-in in front of an application's database (as in front
# of TabuladorMax's), JWTs, RPC, reads, CORS
# ---------------------------------------------------------------------------

JWT_SECRET = "stand-in-test-secret-of-32-characters-or-more"
USER_A = "00000000-0000-4000-8000-00000000000a"
USER_B = "00000000-0000-4000-8000-00000000000b"

# A Supabase-like database: PostgREST's roles (authenticator, a login role
# that is no superuser and does not inherit, switches to anon or
# authenticated), auth.uid() from request.jwt.claims, a table with row level
# security, and functions of every shape PostgREST distinguishes.
API_FIXTURE = r"""
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated TO authenticator;
GRANT USAGE ON SCHEMA public TO anon, authenticated;
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('request.jwt.claims', true)::jsonb ->> 'sub', '')::uuid $$;

CREATE TABLE public.notes (id int PRIMARY KEY, owner uuid NOT NULL, body text,
                           tag text, created_at timestamptz NOT NULL DEFAULT now());
ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON public.notes FOR SELECT TO authenticated USING (owner = auth.uid());
GRANT SELECT ON public.notes TO authenticated;
INSERT INTO public.notes (id, owner, body, tag) VALUES
  (1, '00000000-0000-4000-8000-00000000000a', 'a one', 'x'),
  (2, '00000000-0000-4000-8000-00000000000a', 'a two', 'y'),
  (3, '00000000-0000-4000-8000-00000000000a', 'a three', NULL),
  (4, '00000000-0000-4000-8000-00000000000b', 'b one', 'x');

CREATE FUNCTION public.add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
CREATE FUNCTION public.hello(name text DEFAULT 'world') RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT 'hello ' || name $$;
CREATE TABLE public.touched (note_id int, by uuid);
GRANT INSERT, SELECT ON public.touched TO authenticated;
CREATE FUNCTION public.touch(note_id int) RETURNS void LANGUAGE sql
  AS $$ INSERT INTO public.touched VALUES (note_id, auth.uid()) $$;
CREATE FUNCTION public.note(note_id int) RETURNS public.notes LANGUAGE sql STABLE
  AS $$ SELECT * FROM public.notes WHERE id = note_id $$;
CREATE FUNCTION public.my_notes(tag text DEFAULT NULL) RETURNS SETOF public.notes
  LANGUAGE sql STABLE AS $$ SELECT * FROM public.notes n WHERE my_notes.tag IS NULL OR n.tag = my_notes.tag
                            ORDER BY id $$;
CREATE FUNCTION public.ids(n int) RETURNS SETOF int LANGUAGE sql IMMUTABLE
  AS $$ SELECT generate_series(1, n) $$;
CREATE FUNCTION public.state_of(job uuid DEFAULT NULL, OUT job uuid, OUT state text, OUT n bigint)
  RETURNS record LANGUAGE sql STABLE AS $$ SELECT job, 'running', 7::bigint $$;
CREATE FUNCTION public.whoami() RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object('user', current_user, 'uid', auth.uid(),
                           'claims', current_setting('request.jwt.claims', true)::json,
                           'method', current_setting('request.method', true),
                           'path', current_setting('request.path', true),
                           'search_path', current_setting('search_path'),
                           'read_only', current_setting('transaction_read_only'),
                           'isolation', current_setting('transaction_isolation'),
                           'statement_timeout', current_setting('statement_timeout')) $$;
CREATE FUNCTION public.whoami_volatile() RETURNS json LANGUAGE sql
  AS $$ SELECT public.whoami() $$;
CREATE FUNCTION public.serializable() RETURNS text LANGUAGE sql
  SET default_transaction_isolation = 'serializable'
  AS $$ SELECT current_setting('transaction_isolation') $$;
CREATE FUNCTION public.fail(code text, message text DEFAULT 'it failed') RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message, DETAIL = 'the detail',
                        HINT = 'the hint';
END $$;
CREATE FUNCTION public.write_in_stable() RETURNS int LANGUAGE plpgsql STABLE AS $$
BEGIN PERFORM public.touch(0); RETURN 1; END $$;
CREATE FUNCTION public.twice(x int) RETURNS int LANGUAGE sql AS $$ SELECT 2 * x $$;
CREATE FUNCTION public.twice(x text) RETURNS text LANGUAGE sql AS $$ SELECT x || x $$;
CREATE FUNCTION public.private() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
REVOKE EXECUTE ON FUNCTION public.private() FROM PUBLIC;
CREATE FUNCTION public.echo(json) RETURNS json LANGUAGE sql AS $$ SELECT $1 $$;
CREATE FUNCTION public.total(VARIADIC v int[]) RETURNS int LANGUAGE sql IMMUTABLE
  AS $$ SELECT sum(x)::int FROM unnest(v) x $$;
CREATE FUNCTION public.two_unnamed(int, int) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION public.shout(text) RETURNS text LANGUAGE sql AS $$ SELECT upper($1) $$;
CREATE FUNCTION public.keys_of(doc jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT jsonb_agg(k ORDER BY k) FROM jsonb_object_keys(doc) k $$;
"""


def make_jwt(claims, secret=JWT_SECRET, alg="HS256", header=None):
    """An HS256 JWT, written here independently of the stand-in."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
              "HS512": hashlib.sha512}.get(alg, hashlib.sha256)
    sig = b64(hmac.new(secret.encode(), (head + "." + body).encode(), digest).digest())
    return head + "." + body + "." + sig


ANON_KEY = make_jwt({"role": "anon", "iss": "supabase"})


def user_jwt(sub, role="authenticated", **extra):
    claims = {"sub": sub, "role": role, "exp": int(time.time()) + 3600}
    claims.update(extra)
    return make_jwt(claims)


class ApiModeTest(StandInCase):
    """The stand-in in API mode (--jwt-secret): PostgREST 12.2 as an
    application talks to it, in front of a Supabase-like database, logged
    in as authenticator."""

    DBNAME = "app"
    API_KEY = ANON_KEY
    SCHEMA_FILES = []

    @classmethod
    def setUpClass(cls):
        cls.start_cluster()
        cls.db.cursor().execute(API_FIXTURE)
        cls.app_dsn = cls.dsn.replace("user=postgres", "user=authenticator")
        cls.start_stand_in()

    @classmethod
    def stand_in_args(cls):
        return ["--dsn", cls.app_dsn, "--api-key", ANON_KEY, "--jwt-secret", JWT_SECRET,
                "--anon-role", "anon"]

    def setUp(self):
        self.control("reset")
        self.sql("TRUNCATE public.touched")

    # -- helpers -----------------------------------------------------------

    def api(self, method, path, body=None, jwt=None, headers=None, **kw):
        """A request as supabase-js sends it: the key, the user's token."""
        h = {"apikey": ANON_KEY}
        if jwt is not None:
            h["Authorization"] = "Bearer " + jwt
        if body is not None and not isinstance(body, (bytes, str)):
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        return self.request(method, "/rest/v1" + path, body, h, **kw)

    def rpc(self, fn, args=None, jwt=None, **kw):
        return self.api("POST", "/rpc/" + fn, {} if args is None else args, jwt=jwt, **kw)

    def assertJson(self, a, status, value):
        self.assertEqual(a.status, status, a.body)
        self.assertEqual(a.headers.get("content-type"), "application/json; charset=utf-8")
        self.assertEqual(a.json(), value)

    # -- results: scalar, void, composite, set ------------------------------

    def test_scalar_is_the_bare_value(self):
        a = self.rpc("add", {"a": 1, "b": 2})
        self.assertJson(a, 200, 3)
        self.assertEqual(a.body, b"3")
        self.assertEqual(a.headers["content-range"], "0-0/*")
        # more than one exposed schema: the schema counts as negotiated
        self.assertEqual(a.headers["content-profile"], "public")
        self.assertJson(self.rpc("hello", {"name": "ana"}), 200, "hello ana")
        # optional parameters may be left out; an empty body is {}
        self.assertJson(self.rpc("hello", {}), 200, "hello world")
        self.assertJson(self.api("POST", "/rpc/hello", b""), 200, "hello world")
        self.assertJson(self.rpc("hello", {"name": None}), 200, None)

    def test_void_is_204(self):
        a = self.rpc("touch", {"note_id": 7}, jwt=user_jwt(USER_A))
        self.assertEqual(a.status, 204, a.body)
        self.assertEqual(a.body, b"")
        self.assertNotIn("content-type", a.headers)
        self.assertEqual(a.headers["content-range"], "0-0/*")
        self.assertEqual(self.sql("SELECT note_id, by::text FROM public.touched"),
                         [(7, USER_A)])

    def test_composite_is_an_object_setof_an_array(self):
        a = self.rpc("note", {"note_id": 2}, jwt=user_jwt(USER_A))
        self.assertEqual(a.status, 200, a.body)
        body = a.json()
        self.assertEqual((body["id"], body["body"], body["owner"]), (2, "a two", USER_A))
        self.assertEqual(a.headers["content-range"], "0-0/*")
        # RETURNS record with OUT parameters is composite too
        self.assertJson(self.rpc("state_of", {"job": USER_B}), 200,
                        {"job": USER_B, "state": "running", "n": 7})
        self.assertJson(self.rpc("state_of"), 200, {"job": None, "state": "running", "n": 7})
        # no row: null
        self.assertJson(self.rpc("note", {"note_id": 4}, jwt=user_jwt(USER_A)), 200,
                        {"id": None, "owner": None, "body": None, "tag": None,
                         "created_at": None})
        a = self.rpc("my_notes", {}, jwt=user_jwt(USER_A))
        self.assertEqual(a.status, 200, a.body)
        self.assertEqual([n["id"] for n in a.json()], [1, 2, 3])
        self.assertEqual(a.headers["content-range"], "0-2/*")
        a = self.rpc("my_notes", {"tag": "x"}, jwt=user_jwt(USER_B))
        self.assertEqual([n["id"] for n in a.json()], [4])
        a = self.rpc("my_notes", {}, jwt=None)            # anon may not read notes
        self.assertEqual(a.status, 401, a.body)
        self.assertJson(self.rpc("ids", {"n": 3}), 200, [1, 2, 3])
        a = self.rpc("ids", {"n": 0})
        self.assertJson(a, 200, [])
        self.assertEqual(a.headers["content-range"], "*/*")

    def test_select_filters_order_limit_on_a_result(self):
        jwt = user_jwt(USER_A)
        a = self.api("POST", "/rpc/my_notes?select=id,tag&tag=eq.y", {}, jwt=jwt)
        self.assertJson(a, 200, [{"id": 2, "tag": "y"}])
        a = self.api("POST", "/rpc/my_notes?select=id&order=id.desc&limit=2", {}, jwt=jwt)
        self.assertJson(a, 200, [{"id": 3}, {"id": 2}])
        a = self.api("POST", "/rpc/my_notes?select=id", {}, jwt=jwt,
                     headers={"Prefer": "count=exact"})
        self.assertEqual(a.headers["content-range"], "0-2/3")
        self.assertEqual(a.headers["preference-applied"], "count=exact")
        a = self.api("POST", "/rpc/my_notes?select=id&limit=1", {}, jwt=jwt,
                     headers={"Prefer": "count=exact"})
        self.assertEqual((a.status, a.headers["content-range"]), (206, "0-0/3"))

    def test_get_and_head_on_rpc(self):
        self.assertJson(self.api("GET", "/rpc/add?a=2&b=5"), 200, 7)
        # repeated values of a variadic parameter make its array
        self.assertJson(self.api("GET", "/rpc/total?v=1&v=2&v=4"), 200, 7)
        # POST: the array as given, passed as VARIADIC
        self.assertJson(self.rpc("total", {"v": [1, 2, 4, 8]}), 200, 15)
        # operators filter the result, other values are arguments
        a = self.api("GET", "/rpc/my_notes?select=id,tag&tag=eq.x", jwt=user_jwt(USER_A))
        self.assertJson(a, 200, [{"id": 1, "tag": "x"}])
        # 12.2 calls the function for the selected columns only: a filter on
        # another one fails (PostgREST issue 3965, fixed in 13)
        a = self.api("GET", "/rpc/my_notes?select=id&tag=eq.x", jwt=user_jwt(USER_A))
        self.assertPgrstError(a, 400, "42703", "column notes.tag does not exist")
        a = self.api("HEAD", "/rpc/add?a=2&b=5")
        self.assertEqual((a.status, a.body), (200, b""))
        # GET is a read-only transaction whatever the function's volatility
        a = self.api("GET", "/rpc/whoami_volatile")
        self.assertEqual(a.json()["read_only"], "on")

    def test_form_and_single_unnamed_json(self):
        a = self.api("POST", "/rpc/add", "a=4&b=5",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertJson(a, 200, 9)
        # a function with one unnamed json parameter takes the whole body
        self.assertJson(self.rpc("echo", {"x": [1, 2]}), 200, {"x": [1, 2]})
        # text/plain for one unnamed text parameter
        a = self.api("POST", "/rpc/shout", "psiu", headers={"Content-Type": "text/plain"})
        self.assertJson(a, 200, "PSIU")
        b = self.assertPgrstError(
            self.api("POST", "/rpc/add", "x", headers={"Content-Type": "text/plain"}),
            404, "PGRST202", "Could not find the function public.add in the schema cache")
        self.assertEqual(b["details"], "Searched for the function public.add with a single "
                         "unnamed text parameter, but no matches were found in the schema cache.")
        self.assertIsNone(b["hint"])
        # Prefer: params=single-object: the body is the one json parameter
        a = self.rpc("keys_of", {"b": 1, "a": 2}, headers={"Prefer": "params=single-object"})
        self.assertJson(a, 200, ["a", "b"])
        self.assertEqual(a.headers["preference-applied"], "params=single-object")

    def test_volatility_makes_the_transaction(self):
        self.assertEqual(self.rpc("whoami").json()["read_only"], "on")
        self.assertEqual(self.rpc("whoami_volatile").json()["read_only"], "off")
        # a STABLE function that writes: read-only transaction, 25006 -> 405
        a = self.rpc("write_in_stable", jwt=user_jwt(USER_A))
        self.assertPgrstError(a, 405, "25006")
        # default_transaction_isolation set on the function is applied
        self.assertJson(self.rpc("serializable"), 200, "serializable")

    # -- finding the function ----------------------------------------------

    def test_pgrst202_unknown_function(self):
        a = self.rpc("ad", {"a": 1, "b": 2})
        b = self.assertPgrstError(
            a, 404, "PGRST202", "Could not find the function public.ad(a, b) in the schema cache")
        self.assertEqual(b["details"], "Searched for the function public.ad with parameters "
                         "a, b or with a single unnamed json/jsonb parameter, but no matches "
                         "were found in the schema cache.")
        self.assertEqual(b["hint"], "Perhaps you meant to call the function public.add")
        b = self.assertPgrstError(self.rpc("nothing_like_it_at_all"), 404, "PGRST202",
                                  "Could not find the function "
                                  "public.nothing_like_it_at_all without parameters in the "
                                  "schema cache")
        self.assertEqual(b["details"], "Searched for the function public.nothing_like_it_at_all "
                         "without parameters or with a single unnamed json/jsonb parameter, "
                         "but no matches were found in the schema cache.")
        self.assertIsNone(b["hint"])

    def test_pgrst202_wrong_arguments(self):
        # a required parameter left out, an unknown one given
        b = self.assertPgrstError(self.rpc("add", {"a": 1}), 404, "PGRST202",
                                  "Could not find the function public.add(a) in the schema "
                                  "cache")
        self.assertEqual(b["details"], "Searched for the function public.add with parameter a "
                         "or with a single unnamed json/jsonb parameter, but no matches were "
                         "found in the schema cache.")
        self.assertEqual(b["hint"], "Perhaps you meant to call the function public.add(a, b)")
        b = self.assertPgrstError(self.rpc("hello", {"nome": "x"}), 404, "PGRST202")
        self.assertEqual(b["hint"], "Perhaps you meant to call the function public.hello(name)")
        # GET: no json alternative in the details
        b = self.assertPgrstError(self.api("GET", "/rpc/add?a=1&c=2"), 404, "PGRST202")
        self.assertEqual(b["details"], "Searched for the function public.add with parameters "
                         "a, c, but no matches were found in the schema cache.")
        # functions with two unnamed parameters are not in the schema cache
        self.assertPgrstError(self.rpc("two_unnamed"), 404, "PGRST202")

    def test_pgrst203_overloaded(self):
        b = self.assertPgrstError(self.rpc("twice", {"x": 2}), 300, "PGRST203",
                                  "Could not choose the best candidate function between: "
                                  "public.twice(x => integer), public.twice(x => text)")
        self.assertEqual(b["hint"], "Try renaming the parameters or the function itself in "
                         "the database so function overloading can be resolved")

    def test_pgrst101_and_options(self):
        self.assertPgrstError(self.api("PUT", "/rpc/add", {}), 405, "PGRST101",
                              "Cannot use the PUT method on RPC")
        a = self.api("OPTIONS", "/rpc/touch?note_id=1")
        self.assertEqual((a.status, a.headers["allow"]), (200, "OPTIONS,POST"))
        self.assertEqual(a.headers["access-control-allow-origin"], "*")
        a = self.api("OPTIONS", "/rpc/add?a=1&b=1")
        self.assertEqual((a.status, a.headers["allow"]), (200, "OPTIONS,GET,HEAD,POST"))
        a = self.api("OPTIONS", "/notes")
        self.assertEqual((a.status, a.headers["allow"]),
                         (200, "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"))
        self.assertEqual(self.api("OPTIONS", "/nope").status, 404)
        self.assertPgrstError(self.api("POST", "/rpc/add", b"{nope"), 400, "PGRST102",
                              "Empty or invalid json")

    # -- who is calling ----------------------------------------------------

    def test_role_claims_and_settings(self):
        w = self.rpc("whoami").json()
        self.assertEqual((w["user"], w["uid"]), ("anon", None))
        self.assertEqual(w["claims"], {"role": "anon"})
        self.assertEqual((w["method"], w["path"]), ("POST", "/rpc/whoami"))
        # the request's schema, then db-extra-search-path (Supabase's
        # "public, extensions"), as PostgREST sets it
        self.assertEqual(w["search_path"], '"public", "public", "extensions"')
        self.assertEqual(w["isolation"], "read committed")
        jwt = user_jwt(USER_A, email="a@example.com")
        w = self.rpc("whoami", jwt=jwt).json()
        self.assertEqual((w["user"], w["uid"]), ("authenticated", USER_A))
        self.assertEqual(w["claims"]["email"], "a@example.com")
        self.assertEqual(w["claims"]["role"], "authenticated")
        # no role claim: the anon role, with the claims given
        w = self.rpc("whoami", jwt=make_jwt({"sub": USER_B})).json()
        self.assertEqual((w["user"], w["uid"]), ("anon", USER_B))
        # the anon key itself is a JWT of role anon
        w = self.rpc("whoami", jwt=ANON_KEY).json()
        self.assertEqual(w["claims"], {"role": "anon", "iss": "supabase"})
        # ALTER ROLE ... SET of the impersonated role is applied
        self.sql("ALTER ROLE authenticated SET statement_timeout = '4567ms'")
        try:
            proc, port = self.spawn_api()
            try:
                w = self.rpc("whoami", jwt=jwt, port=port).json()
                self.assertEqual(w["statement_timeout"], "4567ms")
                w = self.rpc("whoami", port=port).json()
                self.assertEqual(w["statement_timeout"], "0")
            finally:
                proc.terminate()
                proc.wait(10)
        finally:
            self.sql("ALTER ROLE authenticated RESET statement_timeout")

    def spawn_api(self, *extra, args=None):
        n = len(os.listdir(self.tmp))
        port_file = os.path.join(self.tmp, "port_%d" % n)
        proc = subprocess.Popen([PYTHON, STAND_IN, "--port", "0", "--port-file", port_file,
                                 "--control-port", "-1"]
                                + (args if args is not None else self.stand_in_args())
                                + list(extra),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("stand_in did not start")
            time.sleep(0.05)
        with open(port_file) as fh:
            return proc, int(fh.read())

    def test_bad_tokens_401_pgrst301(self):
        now = int(time.time())
        cases = [
            (make_jwt({"role": "authenticated", "exp": now - 60}), "JWT expired"),
            (make_jwt({"role": "authenticated"}, secret="x" * 40),
             "JWSError JWSInvalidSignature"),
            ("abc.def", "JWSError (CompactDecodeError Invalid number of parts: "
                        "Expected 3 parts; got 2)"),
            (make_jwt({"role": "authenticated"}, header={"alg": "none"}),
             "JWSError JWSNoSignatures"),
            (make_jwt({"role": "authenticated", "iat": now + 3600}), "JWTIssuedAtFuture"),
            (make_jwt({"role": "authenticated", "nbf": now + 3600}), "JWTNotYetValid"),
        ]
        for token, message in cases:
            a = self.rpc("whoami", jwt=token)
            self.assertPgrstError(a, 401, "PGRST301", message)
            self.assertEqual(a.headers["www-authenticate"],
                             'Bearer error="invalid_token", error_description="%s"' % message)
        # within jose's 30 s of skew: accepted
        a = self.rpc("whoami", jwt=make_jwt({"role": "authenticated", "exp": now - 10}))
        self.assertEqual(a.status, 200, a.body)
        # HS512 with the same secret is fine
        a = self.rpc("whoami", jwt=make_jwt({"role": "authenticated"}, alg="HS512"))
        self.assertEqual(a.json()["user"], "authenticated")
        # "bearer" in any case
        a = self.rpc("whoami", headers={"Authorization": "bEaReR " + user_jwt(USER_A)})
        self.assertEqual(a.json()["uid"], USER_A)

    def test_no_anon_role_pgrst302(self):
        args = ["--dsn", self.app_dsn, "--api-key", ANON_KEY, "--jwt-secret", JWT_SECRET]
        proc, port = self.spawn_api(args=args)
        try:
            a = self.rpc("whoami", port=port)
            self.assertPgrstError(a, 401, "PGRST302", "Anonymous access is disabled")
            self.assertEqual(a.headers["www-authenticate"], "Bearer")
            a = self.rpc("whoami", jwt=user_jwt(USER_A), port=port)
            self.assertEqual(a.json()["user"], "authenticated")
        finally:
            proc.terminate()
            proc.wait(10)

    def test_gateway_key_still_checked(self):
        a = self.api("POST", "/rpc/add", {"a": 1, "b": 1}, headers={"apikey": "wrong"})
        self.assertEqual((a.status, a.json()["message"]), (401, "Invalid API key"))

    # -- errors: SQLSTATE -> HTTP status, as Error.pgErrorStatus ----------

    def test_sqlstate_to_status(self):
        jwt = user_jwt(USER_A)
        for code, status in [("22023", 400), ("22004", 400), ("42704", 400), ("P0001", 400),
                             ("55000", 500), ("42501", 403), ("23505", 409), ("23503", 409),
                             ("53100", 503), ("57014", 500), ("08006", 503), ("28000", 403),
                             ("P0002", 500), ("XX000", 500), ("42883", 404), ("42P01", 404),
                             ("PT402", 402), ("25006", 405), ("40001", 500), ("0P000", 403)]:
            a = self.rpc("fail", {"code": code}, jwt=jwt)
            b = self.assertPgrstError(a, status, code, "it failed")
            self.assertEqual((b["details"], b["hint"]), ("the detail", "the hint"), code)
            if status == 401:
                self.assertEqual(a.headers["www-authenticate"], "Bearer")
        # 42501: 401 with WWW-Authenticate for the anon role, 403 otherwise
        a = self.rpc("fail", {"code": "42501"})
        self.assertPgrstError(a, 401, "42501")
        self.assertEqual(a.headers["www-authenticate"], "Bearer")
        a = self.rpc("private")
        self.assertPgrstError(a, 401, "42501", "permission denied for function private")
        self.assertPgrstError(self.rpc("private", jwt=jwt), 403, "42501",
                              "permission denied for function private")
        # a failed call is rolled back
        self.sql("CREATE OR REPLACE FUNCTION public.touch_then_fail() RETURNS void LANGUAGE "
                 "plpgsql AS $$ BEGIN INSERT INTO public.touched VALUES (1, NULL); "
                 "RAISE EXCEPTION 'no' USING ERRCODE = '22023'; END $$")
        self.control("reload_schema")
        self.assertPgrstError(self.rpc("touch_then_fail", jwt=jwt), 400, "22023")
        self.assertEqual(self.sql("SELECT count(*) FROM public.touched"), [(0,)])

    # -- GET on tables, row level security -----------------------------------

    def test_get_select_filters_order_limit(self):
        jwt = user_jwt(USER_A)
        a = self.api("GET", "/notes?select=id,body&order=id", jwt=jwt)
        self.assertJson(a, 200, [{"id": 1, "body": "a one"}, {"id": 2, "body": "a two"},
                                 {"id": 3, "body": "a three"}])
        self.assertEqual(a.headers["content-range"], "0-2/*")
        self.assertEqual(a.headers["content-location"], "/notes?order=id&select=id%2Cbody")
        self.assertEqual(a.headers["content-profile"], "public")
        a = self.api("GET", "/notes?select=id&id=in.(2,3,4)&order=id.desc", jwt=jwt)
        self.assertJson(a, 200, [{"id": 3}, {"id": 2}])       # 4 is B's
        a = self.api("GET", "/notes?select=id&tag=eq.x", jwt=user_jwt(USER_B))
        self.assertJson(a, 200, [{"id": 4}])
        a = self.api("GET", "/notes?select=id&tag=is.null", jwt=jwt)
        self.assertJson(a, 200, [{"id": 3}])
        a = self.api("GET", "/notes?select=id&tag=not.eq.x&order=id", jwt=jwt)
        self.assertJson(a, 200, [{"id": 2}])
        a = self.api("GET", "/notes?select=id&order=id&limit=2&offset=1", jwt=jwt,
                     headers={"Prefer": "count=exact"})
        self.assertJson(a, 206, [{"id": 2}, {"id": 3}])
        self.assertEqual(a.headers["content-range"], "1-2/3")
        # anon may not read the table at all: 401
        self.assertPgrstError(self.api("GET", "/notes"), 401, "42501",
                              "permission denied for table notes")
        # a value without an operator is a parse error on tables
        b = self.assertPgrstError(self.api("GET", "/notes?id=3", jwt=jwt), 400, "PGRST100",
                                  '"failed to parse filter (3)" (line 1, column 1)')
        self.assertEqual(b["details"], 'unexpected "3" expecting "not" or operator (eq, gt, ...)')

    def test_get_single_object(self):
        jwt = user_jwt(USER_A)
        single = {"Accept": "application/vnd.pgrst.object+json"}
        a = self.api("GET", "/notes?select=id&id=eq.2", jwt=jwt, headers=single)
        self.assertEqual((a.status, a.json()), (200, {"id": 2}))
        self.assertEqual(a.headers["content-type"],
                         "application/vnd.pgrst.object+json; charset=utf-8")
        b = self.assertPgrstError(self.api("GET", "/notes?select=id", jwt=jwt, headers=single),
                                  406, "PGRST116",
                                  "JSON object requested, multiple (or no) rows returned")
        self.assertEqual(b["details"], "The result contains 3 rows")
        # on a call, the function's work is rolled back with the refusal
        a = self.api("POST", "/rpc/touch", {"note_id": 9}, jwt=jwt, headers=single)
        self.assertEqual(a.status, 204, a.body)      # void: one row
        self.sql("CREATE OR REPLACE FUNCTION public.touch_all() RETURNS SETOF int "
                 "LANGUAGE sql AS $$ INSERT INTO public.touched VALUES (1, NULL), (2, NULL) "
                 "RETURNING note_id $$")
        self.control("reload_schema")
        self.assertPgrstError(self.api("POST", "/rpc/touch_all", {}, jwt=jwt, headers=single),
                              406, "PGRST116")
        self.assertEqual(self.sql("SELECT count(*) FROM public.touched"), [(1,)])
        self.assertPgrstError(self.api("GET", "/notes", jwt=jwt,
                                       headers={"Accept": "text/html"}), 406, "PGRST107",
                              "None of these media types are available: text/html")

    # -- CORS ----------------------------------------------------------------

    def test_cors_preflight_and_headers(self):
        pre = {"Origin": "http://127.0.0.1:8080", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization, apikey, content-type, "
                                                 "x-client-info, content-profile"}
        # no apikey: a browser sends none with a preflight
        a = self.request("OPTIONS", "/rest/v1/rpc/gs_export_create", headers=pre)
        self.assertEqual(a.status, 200, a.body)
        self.assertEqual(a.body, b"")
        self.assertEqual(a.headers["access-control-allow-origin"], "*")
        self.assertEqual(a.headers["access-control-allow-methods"],
                         "GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD")
        self.assertEqual(a.headers["access-control-allow-headers"],
                         "Authorization, authorization, apikey, content-type, x-client-info, "
                         "content-profile, Accept, Accept-Language, Content-Language")
        self.assertEqual(a.headers["access-control-max-age"], "86400")
        a = self.request("OPTIONS", "/rest/v1/notes",
                         headers={"Origin": "http://x", "Access-Control-Request-Method": "GET"})
        self.assertEqual(a.status, 200)
        self.assertNotIn("access-control-allow-headers", a.headers)
        a = self.request("OPTIONS", "/rest/v1/notes",
                         headers={"Origin": "http://x", "Access-Control-Request-Method": "GET",
                                  "Access-Control-Request-Headers": ""})
        self.assertEqual(a.headers["access-control-allow-headers"],
                         "Authorization, Accept, Accept-Language, Content-Language")
        # an actual request from a page: the CORS headers on any answer
        for a in (self.rpc("add", {"a": 1, "b": 1}, headers={"Origin": "http://x"}),
                  self.rpc("nope", headers={"Origin": "http://x"}),
                  self.rpc("add", {"a": 1, "b": 1},
                           headers={"Origin": "http://x", "apikey": "wrong"})):
            self.assertEqual(a.headers["access-control-allow-origin"], "*")
            self.assertEqual(a.headers["access-control-expose-headers"],
                             "Content-Encoding, Content-Location, Content-Range, "
                             "Content-Type, Date, Location, Server, Transfer-Encoding, "
                             "Range-Unit")
        # no Origin, no CORS headers
        self.assertNotIn("access-control-allow-origin", self.rpc("add", {"a": 1, "b": 1}).headers)
        # a preflight for a method CORS does not allow is left to PostgREST
        a = self.api("OPTIONS", "/notes", headers={"Origin": "http://x",
                                                   "Access-Control-Request-Method": "TRACE"})
        self.assertEqual((a.status, a.headers["allow"]),
                         (200, "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"))
        self.assertNotIn("access-control-allow-methods", a.headers)

    def test_requests_are_logged(self):
        self.rpc("add", {"a": 1, "b": 1})
        log = self.control("requests")
        self.assertEqual([(e["method"], e["path"], e["status"]) for e in log],
                         [("POST", "/rest/v1/rpc/add", 200)])


class UnitTest(unittest.TestCase):
    """Pure functions of the stand-in, checked against PostgREST's own
    examples."""

    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, HERE)
        import stand_in
        cls.m = stand_in

    def test_fuzzy_hint_as_postgrest_doctests(self):
        # Error.hs, noRpcHint's doctests
        get = self.m.fuzzy_get_one
        self.assertEqual(get(["test", "another"], "testt"), "test")
        self.assertEqual(get(["test", "another"], "other"), "another")
        self.assertIsNone(get(["test", "another"], "noclosealternative"))
        sets = ["(name, param, val)", "(attr, id)"]
        self.assertEqual(get(sets, "(nam, pqaram, vall)"), "(name, param, val)")
        self.assertEqual(get(sets, "(param, val)"), "(name, param, val)")
        self.assertEqual(get(sets, "(attrs, id)"), "(attr, id)")
        self.assertEqual(get(sets, "(id)"), "(attr, id)")
        self.assertIsNone(get(sets, "(noclosealternative)"))

    def test_jwt_round_trip_and_expiry(self):
        now = 1_700_000_000
        tok = make_jwt({"sub": "x", "exp": now + 1})
        self.assertEqual(self.m.verify_jwt(tok, JWT_SECRET.encode(), now=now)["sub"], "x")
        self.assertEqual(self.m.verify_jwt(tok, JWT_SECRET.encode(), now=now + 30)["sub"], "x")
        with self.assertRaises(self.m.JwtError):
            self.m.verify_jwt(tok, JWT_SECRET.encode(), now=now + 31)
        self.assertEqual(self.m.verify_jwt(self.m.sign_jwt({"a": 1}, JWT_SECRET.encode()),
                                           JWT_SECRET.encode()), {"a": 1})

    def test_canonical_query(self):
        c = self.m.canonical_query
        self.assertEqual(c([("c", "3"), ("a", "1"), ("b", "2")]), "a=1&b=2&c=3")
        self.assertEqual(c([("select", "id,name"), ("id", "in.(1,2)")]),
                         "id=in.%281%2C2%29&select=id%2Cname")
        self.assertEqual(c([("a", "1"), ("b", "x"), ("a", "2")]), "a=1,2&b=x")


if __name__ == "__main__":
    unittest.main()
