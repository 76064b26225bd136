"""The command line (test/remote/stand_in.py): options, --init-schema,
the port files, the stdout line, signals (SIGTERM / SIGINT stop,
SIGUSR1 reloads the schema cache)."""

import argparse
import faulthandler
import os
import re
import signal
import sys
import threading

import psycopg2

from . import __doc__ as PACKAGE_DOC
from .app import SHUTDOWN_TIMEOUT_S, App
from .common import EXPOSED_SCHEMAS, EXTRA_SEARCH_PATH
from .control import parse_fault_mix
from .gateway import CHAOS_KINDS


# A process still there EXIT_DEADLINE_S after SIGTERM / SIGINT dumps its
# threads' stacks on stderr and exits with status 1 (see app.py).
EXIT_DEADLINE_S = 5.0

# test/remote: the default --schema-file is its fichas.sql.
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    p = argparse.ArgumentParser(description=PACKAGE_DOC.split("\n\n")[0],
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
    p.add_argument("--db-max-rows", type=int, default=None,
                   help="PostgREST's db-max-rows: a read or a call returns at most this "
                        "many rows (Supabase's default: 1000; default here: none)")
    p.add_argument("--no-safeupdate", dest="safeupdate", action="store_false",
                   help="the database has no pg-safeupdate (Supabase's has it: a PATCH "
                        "or DELETE without a filter is refused with 21000); without it "
                        "such a request changes or deletes every row, as PostgREST "
                        "alone does (mutate_path.py)")
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
    # the chaos profile (gateway.py)
    p.add_argument("--delay-max-ms", type=int, default=None,
                   help="each request's delay uniform in [--delay-ms, this] (a noisy "
                        "latency; fault delay_max_ms)")
    p.add_argument("--fault-rate", type=float, default=0.0,
                   help="share of /rest/v1 requests (0..1) failed with a transient fault "
                        "from --fault-mix (fault fault_rate)")
    p.add_argument("--fault-mix", default=",".join(CHAOS_KINDS),
                   help="the transient faults drawn, comma-separated among %(default)s")
    p.add_argument("--fault-retry-after", default="1",
                   help="the Retry-After of the transient 429s (seconds; 'none': no header)")
    p.add_argument("--burst-after-ms", type=int, default=None,
                   help="a burst of faults this long after the start (and after each "
                        "reset) ...")
    p.add_argument("--burst-for-ms", type=int, default=None,
                   help="... during which every /rest/v1 request fails")
    p.add_argument("--burst-fault", default="503",
                   help="what the burst's requests meet: 429, 503 or reset")
    p.add_argument("--chaos-seed", type=int, default=None,
                   help="seed of the chaos profile's draws")
    p.add_argument("--fail-next", type=int, default=0)
    p.add_argument("--fail-status", type=int, default=503)
    p.add_argument("--fail-retry-after", default=None)
    p.add_argument("--paused-project", action="store_true")
    p.add_argument("--gateway-timeout-over-ms", type=int, default=None)
    p.add_argument("--keep-bodies", action="store_true")
    p.add_argument("--no-realtime", dest="realtime", action="store_false",
                   help="API mode: no /realtime/v1/websocket (404), as a "
                        "project without Realtime")
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
    if opts.fault_retry_after.lower() == "none":
        opts.fault_retry_after = None
    if opts.delay_max_ms is not None and opts.delay_max_ms < opts.delay_ms:
        p.error("--delay-max-ms must be >= --delay-ms")
    if not 0 <= opts.fault_rate <= 1:
        p.error("--fault-rate must be from 0 to 1")
    try:
        opts.fault_mix = parse_fault_mix(opts.fault_mix)
    except ValueError as e:
        p.error("--fault-mix: %s" % e)
    if opts.burst_fault not in CHAOS_KINDS:
        p.error("--burst-fault must be one of " + ", ".join(CHAOS_KINDS))
    if (opts.burst_after_ms is None) != (opts.burst_for_ms is None) \
            or (opts.burst_after_ms is not None
                and (opts.burst_after_ms < 0 or opts.burst_for_ms < 0)):
        p.error("--burst-after-ms and --burst-for-ms go together, each >= 0")
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
