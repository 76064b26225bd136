"""The HTTP side: a listening port that can close and reopen (for
"down"), its connections (shut at once on stop, dropped with a FIN or a
RST), and the handler that reads a request and hands it to the App's
gateway or control interface."""

import selectors
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .common import POSTGREST_VERSION, Reply, error_reply


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
            elif path == "/realtime/v1/websocket":
                reply = app.realtime.upgrade(self, split.query)
                if reply is None:           # the websocket ran to its end
                    self.close_connection = True
                    return
            elif path == "/rest/v1" or path.startswith("/rest/v1/"):
                reply = app.rest(self, path, split.query, body, t0, started_at)
            else:
                reply = Reply(404, {"message": "no Route matched with those values"})
        except Exception as e:              # a bug here, not a remote's answer
            traceback.print_exc(file=sys.stderr)
            reply = error_reply(500, "STANDIN500", "stand_in internal error: %r" % (e,))
        if reply.drop:
            self.drop(reply.drop_reset)
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
