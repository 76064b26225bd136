"""The database side of a request: the connection pool (hasql-pool's role),
PostgreSQL errors as PostgREST answers them (Error.hs), and one request's
transaction with PostgREST's per-request settings (Query.setPgLocals)."""

import json
import threading

import psycopg2
import psycopg2.extensions

from .common import Reply, Rollback, error_reply, json_default, pgrst_body
from .schema_cache import ISOLATION_LEVELS


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
# One request's transaction (a part of App)
# ---------------------------------------------------------------------------

class Transactions:
    """App's transactions.  Uses App's opts, pool, cache, schemas,
    extra_search_path, lock and faults (statement_timeout_ms)."""

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
                                        ensure_ascii=False, default=json_default)))
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
