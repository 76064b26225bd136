"""What the stand-in's tests share: a throwaway PostgreSQL 15 cluster
(initdb into a temporary directory, a Unix socket only), the stand-in
started on it on port 0 (one of each for a test class), and the HTTP and
SQL helpers of the tests (StandInCase)."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import psycopg2


# test/remote: the stand-in and its SQL files.
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAND_IN = os.path.join(HERE, "stand_in.py")
SCHEMA_FILE = os.path.join(HERE, "fichas.sql")
LEADS_FILE = os.path.join(HERE, "gestao_leads.sql")


def pg_bindir():
    """initdb and pg_ctl: those of $PG_CONFIG when it is set, else Debian's
    PostgreSQL 15."""
    pg_config = os.environ.get("PG_CONFIG")
    if pg_config:
        return subprocess.run([pg_config, "--bindir"], check=True, capture_output=True,
                              text=True).stdout.strip()
    return "/usr/lib/postgresql/15/bin"


PGBIN = pg_bindir()
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


