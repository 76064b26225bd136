"""The App: the state the roles share (options, faults, the request log
and statistics, the schema cache, the pool, the listeners), assembled from
the gateway, the control interface and the transactions; its start and
shutdown."""

import random
import threading
import time

import psycopg2

from .control import Control
from .database import Pool, Transactions
from .gateway import FaultState, Gateway
from .listener import Listener
from .postgrest import PostgREST
from .realtime import Realtime
from .schema_cache import SchemaCache


# SIGTERM / SIGINT: the listeners and the pool are given this long to stop
# (App.shutdown); a process still there EXIT_DEADLINE_S (cli.py) after the
# signal dumps its threads' stacks on stderr and exits with status 1 (a
# second SIGTERM / SIGINT ends it at once).
SHUTDOWN_TIMEOUT_S = 2.0


class App(Gateway, Control, Transactions):
    """The stand-in: one per process."""

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
        self.chaos_faults = 0                  # the chaos profile's faults
        self.burst_faults = 0
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
        self.realtime = Realtime(self)         # API mode's /realtime/v1
        self.main = Listener(self, opts.host, opts.port, control_only=False)
        self.control_listener = None
        if opts.control_port is not None and opts.control_port >= 0:
            self.control_listener = Listener(self, opts.host, opts.control_port,
                                             control_only=True)
        self._apply_cli_faults()

    def _apply_cli_faults(self):
        """The faults the command line asks for: the one-shot fail_next,
        and the settings a reset keeps (_apply_cli_faults_reset)."""
        o, f = self.opts, self.faults
        if o.fail_next:
            f.fail_next = o.fail_next
            f.fail_status = o.fail_status
            if o.fail_retry_after is not None:
                f.fail_retry_after, f.fail_retry_after_set = o.fail_retry_after, True
        self._apply_cli_faults_reset()

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
        # the chaos profile (a burst is timed from the start or the reset)
        f.delay_max_ms = getattr(o, "delay_max_ms", None)
        f.fault_rate = getattr(o, "fault_rate", 0.0) or 0.0
        if getattr(o, "fault_mix", None):
            f.fault_mix = list(o.fault_mix)
        if getattr(o, "fault_retry_after", "1") != "1":
            f.fault_retry_after = o.fault_retry_after
        if getattr(o, "burst_fault", None):
            f.burst_fault = o.burst_fault
        f.set_burst(getattr(o, "burst_after_ms", None), getattr(o, "burst_for_ms", None))
        f.chaos_seed = getattr(o, "chaos_seed", None)
        f.rng = random.Random(f.chaos_seed)

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
        self.realtime.stop()
        listeners = [self.main] + ([self.control_listener] if self.control_listener else [])
        stopping = [lst.begin_stop() for lst in listeners]
        ok = all([Listener.finish_stop(st, deadline) for st in stopping])
        self.pool.close_all()
        return ok
