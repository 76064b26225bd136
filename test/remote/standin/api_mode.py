"""The app's own API (API mode, --jwt-secret): RPC calls and reads of
tables, as PostgREST 12.2 serves them to supabase-js.  Reads (GET / HEAD
on a table) answer in the remote's mode too.

API MODE (--jwt-secret SECRET, checked against src/PostgREST/Auth.hs,
App.hs, Query.hs, Plan.hs, Plan/CallPlan.hs, Query/QueryBuilder.hs,
Query/SqlFragment.hs, Query/Statements.hs, Response.hs, Error.hs, Cors.hs,
SchemaCache.hs, Config/Database.hs of v12.2.12, and the jose, fuzzyset and
wai-cors versions it is built with):
  * Every bearer token ("Bearer" in any case) is a JWT, verified as
    PostgREST verifies it with the secret as its one key: HS256 / HS384 /
    HS512; exp, iat and nbf with 30 s of skew.  401 PGRST301 with jose's
    message ("JWT expired", "JWSError JWSInvalidSignature", "JWSError
    (CompactDecodeError Invalid number of parts: Expected 3 parts; got N)",
    "JWSError JWSNoSignatures" for alg none, "JWTIssuedAtFuture",
    "JWTNotYetValid") and WWW-Authenticate: Bearer error="invalid_token", ....
    The role is the `role` claim, else --anon-role, else 401 PGRST302
    "Anonymous access is disabled".  No token: --anon-role, claims {}.
  * Each request is one transaction of the DSN's login role (connect as a
    role that is no superuser, e.g. Supabase's `authenticator`, NOINHERIT,
    granted anon and authenticated) with, in one statement: search_path
    (the request's schema, then --extra-search-path), the role's own ALTER
    ROLE settings (as PostgREST's queryRoleSettings reads them), role =
    the request's role (SET LOCAL ROLE), request.jwt.claims (the token's
    claims, role included: auth.uid() works), request.method, request.path,
    request.headers, request.cookies, timezone, and the function's hoisted
    settings (statement_timeout, plan_filter.statement_cost_limit,
    default_transaction_isolation SET on it).  "Authenticated" (42501 ->
    403 rather than 401) means: the role is not --anon-role.
  * RPC: POST /rpc/<function> with a JSON object of named arguments (an
    empty body is {}), form bodies, text/plain / xml / octet-stream bodies
    for a function of one unnamed text / xml / bytea parameter, a JSON body
    for one of one unnamed json / jsonb parameter, `Prefer:
    params=single-object`; GET / HEAD /rpc/<function>?name=value (values that
    are no operator expression are arguments; a variadic one repeated makes
    an array; always a read-only transaction); OPTIONS (Allow:
    OPTIONS,POST for a volatile function, else OPTIONS,GET,HEAD,POST).
    The function is found as Plan.findProc finds it among every function of
    the exposed schemas (the schema cache: SchemaCache.allFunctions, loaded
    at start, reload_schema and SIGUSR1; EXECUTE is checked by the database
    when it is called, 42501): by name, and by the argument names against
    its required and optional parameters.  None: 404 PGRST202 with
    PostgREST's message, details and fuzzy "Perhaps you meant..." hint;
    several: 300 PGRST203.  It is called with named arguments taken from
    json_to_record of the body (only those given: the others keep their
    defaults), in a read-only transaction unless POST and VOLATILE.  A
    scalar result is the bare JSON value (200), void is 204 with no body, a
    composite (a table's row type, or OUT / TABLE parameters) an object,
    SETOF an array; select (plain columns), filters, order, limit, offset
    and Prefer: count=exact apply to the result (12.2 returns only the
    selected columns from the call, so a filter on another one fails with
    42703, as in 12.2).  Content-Range as PostgREST sets it (0-0/* for a
    single row); Content-Profile with more than one exposed schema.
  * Errors of the database: Error.pgErrorStatus, e.g. 22023 / 22004 /
    42704 / P0001 -> 400, 55000 -> 500, 42501 -> 401 (anon, with
    WWW-Authenticate: Bearer) or 403, 23505 -> 409, 42883 -> 404, 25006 ->
    405, PTnnn -> nnn; the body {code: SQLSTATE, message, details, hint}.
  * The gateway's apikey check stays (the anon key is a JWT of role anon);
    without --jwt-secret none of the above applies: the remote's mode.

READS (GET / HEAD on a table or view, and the result of a call): select of
plain columns or *; filters eq, neq, gt, gte, lt, lte, like, ilike (* for
%), in.(...), is.null/true/false/unknown, each with not.; order (asc, desc,
nullsfirst, nullslast); limit, offset; Prefer: count=exact (Content-Range
with the total, 206 for part of it); Accept application/json or
application/vnd.pgrst.object+json (supabase-js .single(): 406 PGRST116
unless exactly one row, the transaction rolled back); Content-Location.
"""

import math
import urllib.parse

import psycopg2
from psycopg2 import sql

from .common import (JSON_CT, Reply, Rollback, StandInError, decode_media_type,
                    error_reply, jdump, not_implemented, parse_accept, parse_json_strict)
from .query import (body_sql, count_query_sql, parse_read_query, range_error_body,
                   range_status, read_query_sql, result_row_sql, result_statement)
from .request import (Preferences, csv_payload, invalid_prefs_reply,
                     override_status_headers, payload_attributes, respond_info,
                     singular_error)
from .schema_cache import ISOLATION_LEVELS
from .write_path import body_param, is_utf8


class ApiMode:
    """PostgREST's RPC and reads (a part of PostgREST).  Uses self.app
    (run_transaction)."""

    # -- POST /rpc/<function>, GET / HEAD / OPTIONS /rpc/<function> ------------

    def rpc(self, ctx, cache, schema, name):
        method = ctx.method
        inv_post = method == "POST"
        rq = restrict_range(parse_read_query(ctx.params, not inv_post), self.app.opts)
        prefs = Preferences(ctx.header_all("prefer"), cache.timezones)
        ct = ctx.header("content-type")
        ckind, cmime = decode_media_type(ct) if ct is not None else ("json", "application/json")
        # getPayload: only a POST has one.
        raw, form = None, None
        if inv_post:
            body = ctx.body
            if ckind == "json":
                if rq.columns is not None:
                    keys, raw = set(rq.columns), body      # RawJSON: not parsed
                elif body == b"":
                    keys, raw = set(), body
                else:
                    try:
                        parsed = parse_json_strict(body)
                    except ValueError:
                        return error_reply(400, "PGRST102", "Empty or invalid json")
                    except RecursionError:
                        return not_implemented("JSON nested this deep")
                    keys, raw = payload_attributes(parsed, body)
            elif ckind == "urlencoded":
                form = urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                              keep_blank_values=True)
                keys = {k for k, _ in form}
            elif ckind in ("plain", "xml", "octet"):
                keys, raw = set(), body
            elif ckind == "csv":
                keys, raw = csv_payload(body)
            else:
                return error_reply(400, "PGRST102", "Content-Type not acceptable: " + cmime)
        else:
            keys = {k for k, _ in rq.rpc_args}
        single_object = prefs.parameters == "single-object"
        proc = find_proc(cache, schema, name, keys, single_object, ckind, inv_post)
        if method == "OPTIONS":
            # RoutineInfoPlan: no query, an Allow header.
            return respond_info("OPTIONS,POST" if proc.volatility == "v"
                                else "OPTIONS,GET,HEAD,POST")
        # The arguments (CallPlan.callParams, and callReadPlan's args).
        if single_object or (len(proc.params) == 1 and proc.params[0].name == ""):
            call_params = ("one", proc.params[0])
        else:
            call_params = ("keys", [p for p in proc.params if p.name in keys])
        if not inv_post:
            args = jdump(json_rpc_params(proc, rq.rpc_args))
        elif form is not None:
            args = jdump(json_rpc_params(proc, form))
        else:
            args = raw
        handler, media = self._negotiate_handler(ctx, head=method == "HEAD")
        if isinstance(handler, Reply):
            return handler
        if prefs.invalid and prefs.handling == "strict":
            return invalid_prefs_reply(prefs)
        if prefs.count not in (None, "exact"):
            return not_implemented("Prefer: count=%s" % prefs.count)
        read_only = not inv_post or proc.volatility != "v"
        alias = proc.table_name or proc.name
        stmt, params = call_statement(proc, call_params, args, rq, alias, handler,
                                      prefs.count == "exact")
        max_aff = prefs.max_affected_n if prefs.handling == "strict" else None

        def run(cur):
            cur.execute(stmt, params)
            row = cur.fetchone()
            page_total = row[1]
            if media == "object" and page_total != 1:
                raise Rollback(singular_error(page_total))
            if max_aff is not None and page_total > max_aff:
                raise Rollback(error_reply(
                    400, "PGRST124", "Query result exceeds max-affected preference constraint",
                    "The query affects %d rows" % page_total))
            return row

        iso = proc.iso_level
        row = self.app.run_transaction(ctx, run, prefs=prefs, read_only=read_only,
                                       iso_level=ISOLATION_LEVELS.get(iso) if iso else None,
                                       func_settings=proc.settings)
        if isinstance(row, Reply):
            return row
        total, page_total, body_text, guc_headers, guc_status = row[:5]
        status, content_range = range_status(rq.offset or 0, page_total, total)
        headers = [("Content-Range", content_range)]
        applied = prefs.applied(parameters=True, count=True, handling=True,
                                timezone=True, max_affected=True)
        if applied:
            headers.append(("Preference-Applied", applied))
        if proc.returns_void:
            status, out = 204, b""
        else:
            headers += self._content_type_headers(ctx, media)
            out = b"" if method == "HEAD" else (body_text or "").encode("utf-8")
            if status == 416:
                out = range_error_body(rq.offset or 0, total)
        reply = Reply(status, out, headers)
        return override_status_headers(reply, guc_status, guc_headers)

    def _content_type_headers(self, ctx, media):
        """Response.contentTypeHeaders: the media type, and the schema when
        it was negotiated."""
        mime = ("application/vnd.pgrst.object+json; charset=utf-8" if media == "object"
                else JSON_CT)
        out = [("Content-Type", mime)]
        if ctx.negotiated:
            out.append(("Content-Profile", ctx.schema))
        return out

    def _negotiate_handler(self, ctx, head=False):
        """Plan.negotiateContent for reads and calls: (handler, media) with
        handler "json" (json_agg), "single" (the first element, for
        application/vnd.pgrst.object+json) or "none" (HEAD), or a Reply."""
        accept = ctx.header("accept")
        mts = parse_accept(accept) if accept is not None else [("any", "*/*")]
        for kind, mime in mts:
            if kind in ("json", "any"):
                return ("none" if head else "json"), "json"
            if kind == "object":
                return ("none" if head else "single"), "object"
            if kind in ("csv", "array_strip", "geojson", "plain", "xml", "octet",
                        "plan", "openapi"):
                return not_implemented("Accept: " + mime), None
        return error_reply(406, "PGRST107",
                           "None of these media types are available: "
                           + ", ".join(m for _, m in mts)), None

    # -- GET / HEAD: a read ------------------------------------------------

    def get(self, ctx, cache, rel):
        rq = restrict_range(parse_read_query(ctx.params, False), self.app.opts)
        if ctx.header("range") is not None:
            return not_implemented("the Range header")
        prefs = Preferences(ctx.header_all("prefer"), cache.timezones)
        if prefs.count not in (None, "exact"):
            return not_implemented("Prefer: count=%s" % prefs.count)
        handler, media = self._negotiate_handler(ctx, head=ctx.method == "HEAD")
        if isinstance(handler, Reply):
            return handler
        if prefs.invalid and prefs.handling == "strict":
            return invalid_prefs_reply(prefs)
        # 12.2 does not check reads against its schema cache (v13's
        # PGRST205 does): the query goes to the database, which refuses a
        # relation it does not have (42P01) and reads one that the cache
        # does not know yet.
        schema, name = ctx.relation
        tbl = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        select_q, select_p = read_query_sql(tbl, tbl, rq)
        count_q = count_p = None
        if prefs.count == "exact":
            count_q, count_p = count_query_sql(tbl, tbl, rq)
        full, params = result_statement(select_q, select_p, count_q, count_p,
                                        body_sql(handler, None), single=False)

        def run(cur):
            cur.execute(full, params)
            row = cur.fetchone()
            if media == "object" and row[1] != 1:
                raise Rollback(singular_error(row[1]))
            return row

        row = self.app.run_transaction(ctx, run, prefs=prefs, read_only=True)
        if isinstance(row, Reply):
            return row
        total, n, body_text, guc_headers, guc_status = row[:5]
        status, content_range = range_status(rq.offset or 0, n, total)
        headers = [("Content-Range", content_range),
                   ("Content-Location", "/" + name + (("?" + rq.canonical)
                                                      if rq.canonical else ""))]
        headers += self._content_type_headers(ctx, media)
        applied = prefs.applied(count=True, handling=True, timezone=True)
        if applied:
            headers.append(("Preference-Applied", applied))
        out = (body_text or "").encode("utf-8")
        if status == 416:
            out = range_error_body(rq.offset or 0, total)
        elif ctx.method == "HEAD":
            out = b""
        reply = Reply(status, out, headers)
        return override_status_headers(reply, guc_status, guc_headers)


def restrict_range(rq, opts):
    """Plan.treeRestrictRange: db-max-rows (--db-max-rows; Supabase's
    default is 1000) caps the limit of a read or a call, never that of a
    PATCH or DELETE.  The Content-Range still counts from the offset asked
    for, so a capped page of a counted read answers 206."""
    max_rows = getattr(opts, "db_max_rows", None)
    if max_rows is None:
        return rq
    return rq._replace(limit=max_rows if rq.limit is None else min(rq.limit, max_rows))


# ---------------------------------------------------------------------------
# Plan.findProc, and the call
# ---------------------------------------------------------------------------

def find_proc(cache, schema, name, keys, single_object, content_kind, inv_post):
    """Plan.findProc: the function called, by name and argument names, or a
    StandInError (PGRST202, PGRST203)."""
    procs = cache.routines.get((schema, name), [])
    matched, fallback = [], []
    for p in procs:
        if _matches_params(p, keys, single_object, content_kind, inv_post):
            matched.append(p)
        elif len(p.params) == 1 and inv_post and (content_kind, p.params[0].type) in (
                ("json", "json"), ("json", "jsonb"), ("plain", "text"), ("xml", "xml"),
                ("octet", "bytea")):
            fallback.append(p)
    if len(matched) == 1:
        return matched[0]
    if matched or len(fallback) > 1:
        ambiguous = matched or fallback
        raise StandInError(error_reply(
            300, "PGRST203",
            "Could not choose the best candidate function between: "
            + ", ".join(p.signature() for p in ambiguous),
            None, "Try renaming the parameters or the function itself in the database "
                  "so function overloading can be resolved"))
    if len(fallback) == 1:
        return fallback[0]
    raise StandInError(no_rpc_reply(cache, schema, name, keys, single_object,
                                    content_kind, inv_post, procs))


def _matches_params(p, keys, single_object, content_kind, inv_post):
    params = p.params
    if single_object:
        return len(params) == 1 and params[0].type in ("json", "jsonb")
    if not params:
        return not keys and not (inv_post and content_kind in ("octet", "plain", "xml"))
    req = {q.name for q in params if q.required}
    opt = {q.name for q in params if not q.required}
    if not opt:
        return keys == req
    if not req:
        return keys <= opt
    return keys - opt == req


def no_rpc_reply(cache, schema, name, keys, single_object, content_kind, inv_post,
                 overloads):
    """Error.hs, NoRpc: 404 PGRST202 with PostgREST's message, details and
    hint."""
    func = schema + "." + name
    arg_keys = sorted(keys)
    prms = ", ".join(arg_keys)

    def fmt(p):
        return " without parameters" if not arg_keys else p

    only_single = single_object or (inv_post and content_kind in ("plain", "xml", "octet"))
    message = ("Could not find the function " + func
               + ("" if only_single else fmt("(" + prms + ")")) + " in the schema cache")
    prms_det = " with parameter" + ("s " if len(arg_keys) > 1 else " ") + prms
    if single_object:
        det = " with a single json/jsonb parameter"
    elif inv_post and content_kind == "plain":
        det = " with a single unnamed text parameter"
    elif inv_post and content_kind == "xml":
        det = " with a single unnamed xml parameter"
    elif inv_post and content_kind == "octet":
        det = " with a single unnamed bytea parameter"
    elif inv_post and content_kind == "json":
        det = fmt(prms_det) + " or with a single unnamed json/jsonb parameter"
    else:
        det = fmt(prms_det)
    details = "Searched for the function " + func + det + \
        ", but no matches were found in the schema cache."
    hint = None
    if not only_single:
        def list_text(names):
            return "(" + ", ".join(sorted(names)) + ")"
        if not overloads:
            best = fuzzy_get_one([n for (s, n) in cache.routines if s == schema], name)
        else:
            best = fuzzy_get_one([list_text(q.name for q in ov.params) for ov in overloads],
                                 list_text(arg_keys))
            best = None if best is None else name + best
        if best is not None:
            hint = "Perhaps you meant to call the function " + schema + "." + best
    return error_reply(404, "PGRST202", message, details, hint)


def json_rpc_params(proc, pairs):
    """CallPlan.jsonRpcParams: query-string (or form) arguments as a JSON
    object of strings; a variadic parameter given several times becomes an
    array; otherwise the last value of a name wins."""
    variadic = {p.name for p in proc.params if p.variadic}
    out = {}
    for k, v in pairs:
        if k in variadic:
            out.setdefault(k, []).append(v)
        else:
            out[k] = v
    return out


def call_statement(proc, call_params, args, rq, alias, handler, count):
    """QueryBuilder.callPlanToQuery inside Statements.prepareCall: the call
    in the pgrst_source CTE, its arguments from json_to_record of the body
    (named notation), the read of its result, one row out."""
    fn = sql.SQL("{}.{}").format(sql.Identifier(proc.schema), sql.Identifier(proc.name))
    scalar = proc.returns_scalar or proc.returns_setof_scalar

    def call_it(arg):
        if scalar:
            return sql.SQL("(SELECT {}({}) pgrst_scalar) pgrst_call").format(fn, arg)
        return sql.SQL("{}({}) pgrst_call").format(fn, arg)

    params = []
    mode, what = call_params
    if mode == "one":
        if what.type == "bytea":
            arg = sql.SQL("%s")
            params.append(psycopg2.Binary(args or b""))
        else:
            arg = sql.SQL("%s::" + what.type.replace("%", "%%"))
            params.append(body_param(args or b"", b"\x00" in (args or b"")))
        from_call = sql.SQL("FROM ") + call_it(arg)
    elif not what:
        from_call = sql.SQL("FROM ") + call_it(sql.SQL(""))
    else:
        payload = args or b""
        is_object = payload.lstrip(b" \t\n\r")[:1] == b"{"
        to_rec = "json_to_record" if is_object else "json_to_recordset"
        names = sql.SQL(", ").join(sql.Identifier(p.name) for p in what)
        typed = sql.SQL(", ").join(
            sql.SQL("{} " + p.type_max_length.replace("{", "{{").replace("}", "}}")
                    .replace("%", "%%")).format(sql.Identifier(p.name)) for p in what)
        named = sql.SQL(", ").join(
            sql.SQL("{}{} := pgrst_body.{}").format(
                sql.SQL("VARIADIC " if p.variadic else ""),
                sql.Identifier(p.name), sql.Identifier(p.name)) for p in what)
        as_bytea = b"\x00" in payload or not is_utf8(payload)
        placeholder = sql.SQL("convert_from(%s::bytea, 'UTF8')::json" if as_bytea
                              else "%s::json")
        params.append(body_param(payload, as_bytea))
        from_call = sql.Composed([
            sql.SQL("FROM (SELECT "), placeholder, sql.SQL(" AS json_data) pgrst_payload, "),
            sql.SQL("LATERAL (SELECT "), names,
            sql.SQL(" FROM %s(pgrst_payload.json_data) AS _(" % to_rec), typed,
            sql.SQL(") LIMIT 1) pgrst_body , LATERAL "), call_it(named)])
    if scalar:
        returned = sql.SQL("pgrst_call.pgrst_scalar")
    elif rq.select == ["*"] or "*" in rq.select:
        returned = sql.SQL("{}.*").format(sql.Identifier("pgrst_call"))
    else:
        returned = sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier("pgrst_call"), sql.Identifier(c))
            for c in sorted(set(rq.select)))
    call_q = sql.SQL("SELECT {} ").format(returned) + from_call
    qi = sql.Identifier(alias)
    src = sql.SQL("{} AS {}").format(sql.Identifier("pgrst_source"), qi)
    select_q, select_p = read_query_sql(src, qi, rq)
    parts = [sql.SQL("WITH pgrst_source AS ("), call_q, sql.SQL(") ")]
    count_q = count_p = None
    if count:
        count_q, count_p = count_query_sql(src, qi, rq)
    row, row_params = result_row_sql(count_q, count_p, proc.returns_single,
                                     body_sql(handler, proc))
    parts += row + [sql.SQL("FROM ("), select_q, sql.SQL(") _postgrest_t")]
    params += row_params + select_p
    return sql.Composed(parts), params


# ---------------------------------------------------------------------------
# The hint of PGRST202: PostgREST's fuzzy search (Error.noRpcHint, with the
# fuzzyset 0.2.4 package: cosine similarity of 3-grams, else 2-grams, of the
# names lowercased and stripped of all but letters, digits, spaces and
# commas; the 50 best rescored by normalised Levenshtein similarity of the
# lowercased names; 0.33 at least)
# ---------------------------------------------------------------------------

def _fuzzy_grams(value, size):
    s = "-" + "".join(c for c in value.lower() if c.isalnum() or c.isspace() or c == ",") + "-"
    counts = {}
    for i in range(len(s) - size + 1):
        g = s[i:i + size]
        counts[g] = counts.get(g, 0) + 1
    return counts


def _levenshtein_similarity(a, b):
    """text-metrics' levenshteinNorm: 1 - distance / the longer length."""
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))


def fuzzy_get_one(candidates, query, min_score=0.33):
    """Data.FuzzySet.getOne (fromList candidates) query, or None."""
    exact = {}
    for c in candidates:
        exact.setdefault(c.lower(), c)
    key = query.lower()
    if key in exact:
        return exact[key]
    entries = list(exact)
    for size in (3, 2):
        qv = _fuzzy_grams(key, size)
        qn = math.sqrt(sum(v * v for v in qv.values()))
        scored = []
        for e in entries:
            ev = _fuzzy_grams(e, size)
            dot = sum(n * ev[g] for g, n in qv.items() if g in ev)
            if dot:
                en = math.sqrt(sum(v * v for v in ev.values()))
                scored.append((dot / (qn * en), e))
        scored.sort(key=lambda x: -x[0])
        rescored = sorted(((_levenshtein_similarity(key, e), e) for _, e in scored[:50]),
                          key=lambda x: -x[0])
        found = [e for s, e in rescored if s >= min_score]
        if found:
            return exact[found[0]]
    return None
