"""API mode (standin/api_mode.py, auth.py, query.py): the stand-in in
front of an application's database as PostgREST 12.2 behind Supabase:
JWTs and roles, RPC, reads, CORS; and the pure functions behind them,
against PostgREST's own examples."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import unittest

from standin.api_mode import fuzzy_get_one
from standin.auth import JwtError, sign_jwt, verify_jwt
from standin.query import canonical_query

from .fixture import PYTHON, STAND_IN, StandInCase


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


class ApiModeUnitTest(unittest.TestCase):
    """Pure functions of the stand-in, checked against PostgREST's own
    examples."""

    def test_fuzzy_hint_as_postgrest_doctests(self):
        # Error.hs, noRpcHint's doctests
        get = fuzzy_get_one
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
        self.assertEqual(verify_jwt(tok, JWT_SECRET.encode(), now=now)["sub"], "x")
        self.assertEqual(verify_jwt(tok, JWT_SECRET.encode(), now=now + 30)["sub"], "x")
        with self.assertRaises(JwtError):
            verify_jwt(tok, JWT_SECRET.encode(), now=now + 31)
        self.assertEqual(verify_jwt(sign_jwt({"a": 1}, JWT_SECRET.encode()),
                                    JWT_SECRET.encode()), {"a": 1})

    def test_canonical_query(self):
        c = canonical_query
        self.assertEqual(c([("c", "3"), ("a", "1"), ("b", "2")]), "a=1&b=2&c=3")
        self.assertEqual(c([("select", "id,name"), ("id", "in.(1,2)")]),
                         "id=in.%281%2C2%29&select=id%2Cname")
        self.assertEqual(c([("a", "1"), ("b", "x"), ("a", "2")]), "a=1,2&b=x")
