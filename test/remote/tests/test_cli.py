"""The command line (standin/cli.py, test/remote/stand_in.py): the stdout
line, the port files, SIGTERM / SIGINT whatever the stand-in is doing."""

import http.client
import json
import os
import signal
import socket
import subprocess
import time

from .fixture import KEY, PYTHON, STAND_IN, UPSERT_HEADERS, StandInCase


class CommandLineTest(StandInCase):
    """The stand-in as a command: its own, and others started on the same
    database."""

    @staticmethod
    def terminate(proc, timeout):
        """SIGTERM to proc: (its exit status, None if it still runs after
        timeout seconds; the seconds it took)."""
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, time.monotonic() - t0

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
            rc, elapsed = self.terminate(proc, 5)
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
            rc, elapsed = self.terminate(proc, 4)
            conn.close()
            with open(base + ".err") as fh:
                stderr = fh.read()
            self.assertEqual(rc, 0, "still running %.1f s after SIGTERM\n%s" % (elapsed, stderr))
            self.assertLess(elapsed, 2, stderr)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
