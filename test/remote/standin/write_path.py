"""The remote's write path: POST on a table (gestao-scouter's fichas,
leads, any table of the exposed schemas) as PostgREST 12.2 does it: the
Prefer header, columns and on_conflict, the upsert statement in
PostgREST 12.2.12's SQL shape, its 201/200 rule and PGRST errors.

Worth knowing:
  * psycopg2 binds parameters on the client: the body reaches the database
    inside the upsert's text (an E'' literal of its very bytes, JsonBody),
    not as PostgREST's binary parameter; PostgreSQL refuses invalid UTF-8
    with the same 22021 error all the same.
  * The schema cache holds every table, view, materialized view and
    foreign table (partitions aside) of the exposed schemas, as of the
    last load (start, reload_schema, SIGUSR1): columns with their types
    and defaults, primary keys, rules and row triggers (for the log).  A
    table missing from it (unknown, or created since the last load): 404
    `{}` when PostgREST has columns to resolve (as for every batch
    gs_export sends); with no column at all ([] or [{}]) and on GET,
    PostgREST 12.2 sends the query and the database answers (404 42P01
    for a table it lacks).  A key or `columns` entry the table lacks:
    400 PGRST204 naming the column and the table.  `on_conflict` is not
    checked against the cache (nor by PostgREST): a column with no
    unique constraint is the database's 400 42P10, an unknown one its
    400 42703.
"""

import collections
import json
import urllib.parse

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from .common import (JSON_CT, SCHEMA, TABLE, Reply, StandInError, decode_media_type,
                    error_reply, jdump, not_implemented, parse_accept, parse_json_strict)
from .query import parse_columns
from .request import (Preferences, csv_payload, note_rows, override_status_headers,
                     payload_attributes)


class WritePath:
    """PostgREST's POST on a table (a part of PostgREST).  Uses self.app
    (run_transaction, count_rows)."""

    def post(self, ctx, cache, rel):
        # QueryParams.parse comes before the payload.
        columns = None
        on_conflict = None
        select = None
        for k, v in ctx.params:
            if k == "columns":
                if columns is None:
                    columns = parse_columns(v, "columns")
            elif k == "on_conflict":
                if on_conflict is None:
                    on_conflict = parse_columns(v, "on_conflict")
            elif k == "select":
                if select is None:
                    select = v
            else:
                return not_implemented(
                    "the query parameter %r on POST (filters, order, limit)" % k)
        keys, raw, payload_is_object = mutation_payload(ctx, columns, note=True)

        prefs = Preferences(ctx.header_all("prefer"), cache.timezones)
        # Plan (mutatePlan): resolving the columns of a relation missing
        # from the schema cache fails with NotFound, a 404 with an empty
        # body.  With no column to resolve ([] / [{}] / a scalar), 12.2
        # plans fine and sends the INSERT: the database answers (42P01,
        # or it inserts if the relation exists but the cache is stale).
        if rel is None and keys:
            return Reply(404, {})
        if select is not None and select.strip() not in ("", "*"):
            return not_implemented("select=%s on POST" % select)
        # mutatePlan (resolveOrError): every column must be known; the
        # first unknown one in sorted order is named, with the relation's
        # name (not its schema).
        cols = []
        for name in sorted(keys):
            if name not in rel.columns:
                return error_reply(
                    400, "PGRST204",
                    "Could not find the '%s' column of '%s' in the schema cache"
                    % (name, rel.name))
            cols.append((name,) + rel.columns[name])
        if prefs.invalid and prefs.handling == "strict":
            return error_reply(400, "PGRST122",
                               "Invalid preferences given with handling=strict",
                               "Invalid preferences: " + ", ".join(prefs.invalid))
        neg = self._negotiate(ctx)
        if neg is not None:
            return neg
        # pkCols = maybe mempty tablePKCols tbl: none for a relation the
        # cache lacks.
        pk_cols = rel.pk_cols if rel is not None else []
        rep = prefs.representation
        if rel is not None and rel.is_view and (
                (prefs.resolution is not None and on_conflict is None)
                or rep == "headers-only"):
            # The ON CONFLICT target, Preference-Applied and Location would
            # come from the view's inferred primary key.
            return not_implemented(
                "the primary key of a view (%s.%s): send on_conflict, and no "
                "return=headers-only" % ctx.relation)
        conflict_cols = on_conflict if on_conflict is not None else pk_cols
        returning_rows = rep in ("representation", "headers-only")
        # The log's rows and ids of an unparsed body (`columns`) come from
        # the upsert itself (RETURNING id) when they are surely the body's:
        # every object is written and returned with its own id unless
        # ignore-duplicates skips conflicts or a trigger or rule of the
        # table skips or rewrites rows.  Otherwise: body_rows, below.
        log_ids = (not ctx.rows_noted and "id" in keys
                   and prefs.resolution != "ignore-duplicates"
                   and rel is not None and rel.rows_as_sent)
        spec = InsertSpec(ctx.relation, tuple(cols), payload_is_object,
                          prefs.resolution,
                          tuple(conflict_cols), prefs.missing == "default",
                          returning_rows,
                          tuple(pk_cols) if rep == "headers-only" else (),
                          log_ids)
        # libpq sends a query as a C string: a body with a NUL goes as bytea.
        as_bytea = b"\x00" in raw
        row = self._run_insert(ctx, prefs, cache, spec, raw, as_bytea)
        if isinstance(row, Reply) and row.error_code == "22021" \
                and not as_bytea and not is_utf8(raw):
            # Invalid UTF-8 in a body sent inline: PostgreSQL refused the
            # whole query string before running any of it.  Run it again
            # with the body alone as bytea, so that the error reports the
            # bad bytes of the body exactly as for PostgREST's parameter.
            row = self._run_insert(ctx, prefs, cache, spec, raw, True)
        if isinstance(row, Reply):
            return row
        page_total, location, body_text, guc_headers, guc_status, inserted = row[:6]
        if log_ids:
            ctx.n_rows = page_total
            ctx.ids = json.loads(row[6])
            ctx.rows_noted = True
        if prefs.resolution == "merge-duplicates":
            status = 201 if (inserted is not None and inserted > 0) else 200
        else:
            status = 201
        headers = []
        if location:
            headers.append(("Location", "/" + ctx.relation[1] + "?" + urllib.parse.urlencode(
                [tuple(kv.split("=", 1)) for kv in location])))
        total = "*" if prefs.count is None else str(page_total)
        headers.append(("Content-Range", "*/" + total))
        resolution_applies = bool(pk_cols) or on_conflict is not None
        applied = prefs.applied_for_create(resolution_applies)
        if applied:
            headers.append(("Preference-Applied", applied))
        out = b""
        if rep == "representation":
            # contentTypeHeaders: with more than one exposed schema the
            # schema counts as negotiated, and is named.
            headers.append(("Content-Type", JSON_CT))
            if ctx.negotiated:
                headers.append(("Content-Profile", ctx.relation[0]))
            out = (body_text or "[]").encode("utf-8")
        reply = Reply(status, out, headers)
        reply = override_status_headers(reply, guc_status, guc_headers)
        if 200 <= reply.status < 300:
            ctx.body_rows()
            self.app.count_rows(ctx)
        return reply

    def _run_insert(self, ctx, prefs, cache, spec, raw, as_bytea):
        """Run the upsert of `spec` with the body `raw` as its parameter;
        its result row or an error Reply."""
        def run(cur):
            cur.execute(cache.insert_sql(cur, spec, as_bytea),
                        (body_param(raw, as_bytea),))
            return cur.fetchone()

        return self.app.run_transaction(ctx, run, prefs=prefs, read_only=False)

    def _negotiate(self, ctx):
        """Plan.negotiateContent for tables: which Accept we can answer."""
        accept = ctx.header("accept")
        if accept is None:
            return None
        mts = parse_accept(accept)
        for kind, mime in mts:
            if kind in ("json", "any"):
                return None
            if kind in ("csv", "object", "array_strip", "geojson"):
                return not_implemented("Accept: " + mime)
        return error_reply(406, "PGRST107",
                           "None of these media types are available: "
                           + ", ".join(m for _, m in mts))



def mutation_payload(ctx, columns, note):
    """ApiRequest.getPayload for POST and PATCH on a table: (keys, raw body
    to send, is it one object).  JSON (with `columns`: RawJSON, not parsed),
    CSV, form bodies; any other Content-Type is PGRST102.  With `note`, the
    body's rows are noted for the request log (note_rows)."""
    ct = ctx.header("content-type")
    kind, mime = decode_media_type(ct) if ct is not None else ("json", "application/json")
    body = ctx.body
    if kind == "json":
        if columns is not None:
            # RawJSON: PostgREST does not parse the body at all; the
            # database does (and refuses it if it is not JSON).  Nor
            # does this stand-in: the log's rows come from the upsert.
            keys = set(columns)
            raw = body
        else:
            try:
                parsed = parse_json_strict(body)
            except ValueError:
                raise StandInError(error_reply(400, "PGRST102", "Empty or invalid json"))
            except RecursionError:
                raise StandInError(not_implemented("JSON nested this deep"))
            if note:
                note_rows(ctx, parsed)
            keys, raw = payload_attributes(parsed, body)
    elif kind == "csv":
        keys, raw = csv_payload(body)
        if note:
            note_rows(ctx, json.loads(raw))
    elif kind == "urlencoded":
        pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                       keep_blank_values=True)
        obj = dict(pairs)
        keys, raw = set(obj), jdump(obj)
        if note:
            note_rows(ctx, obj)
    else:
        raise StandInError(error_reply(400, "PGRST102",
                                       "Content-Type not acceptable: " + mime))
    stripped = raw.lstrip(b" \t\n\r")
    return keys, raw, stripped[:1] == b"{"


# ---------------------------------------------------------------------------
# The upsert statement
# ---------------------------------------------------------------------------


InsertSpec = collections.namedtuple("InsertSpec", [
    "relation",         # (schema, name) of the target
    "cols",             # sorted (name, nominal_type, default) of the keys
    "is_object",        # the body is one object, not an array
    "resolution",       # Prefer: resolution= (None, merge-/ignore-duplicates)
    "conflict_cols",    # on_conflict, else the primary key
    "apply_defaults",   # Prefer: missing=default
    "returning_rows",   # return=representation / headers-only
    "location_pk",      # primary key columns for Location (headers-only)
    "log_ids",          # stand-in only: also return the ids, for the log
])


def build_insert(cols, raw, is_object, resolution, conflict_cols,
                 apply_defaults, returning_rows, location_pk,
                 relation=(SCHEMA, TABLE)):
    """The statement PostgREST 12.2.12 sends for POST on a table (by
    default public.fichas), with the body as ONE json parameter (see
    insert_statement).  `cols` is a sorted list of (name, nominal_type,
    default).  Returns (Composed, params).  The stand-in itself caches the
    statement (SchemaCache.insert_sql)."""
    spec = InsertSpec(tuple(relation), tuple(cols), is_object, resolution,
                      tuple(conflict_cols), apply_defaults, returning_rows,
                      tuple(location_pk), False)
    as_bytea = not is_utf8(raw) or b"\x00" in raw
    return insert_statement(spec, as_bytea), [body_param(raw, as_bytea)]


def is_utf8(raw):
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class JsonBody:
    """The body, as the json parameter of the upsert, in the bytes it came
    in.  psycopg2 binds parameters on the client: it would want a str,
    i.e. decoding the body, then encoding it again and escaping it (~6 ms
    for a batch of 1,000 leads).  The body goes as an E'' literal with its
    backslashes and quotes doubled, which is injection-safe for any bytes
    but NUL, which a query string (a C string for libpq) cannot hold: a
    body with a NUL goes as bytea instead.  Invalid UTF-8 never reaches the
    parser:
    PostgreSQL checks the encoding of the whole query string first (the
    pool's connections are client_encoding UTF8) and refuses it with 22021,
    as it refuses PostgREST's binary parameter."""

    __slots__ = ("raw",)

    def __init__(self, raw):
        self.raw = raw

    def __conform__(self, protocol):
        if protocol is psycopg2.extensions.ISQLQuote:
            return self
        return None

    def getquoted(self):
        return b"E'" + self.raw.replace(b"\\", b"\\\\").replace(b"'", b"''") + b"'"


def body_param(raw, as_bytea):
    """The parameter of insert_statement(spec, as_bytea) for the body."""
    return psycopg2.Binary(raw) if as_bytea else JsonBody(raw)


def insert_statement(spec, as_bytea):
    """The statement PostgREST 12.2.12 sends for POST on spec.relation
    (mutatePlanToQuery Insert + fromJsonBodyF + Statements.prepareWrite),
    with the body as its one json parameter (%s): clean UTF-8 goes as text
    cast to json; anything else (invalid UTF-8, NUL bytes) as bytea through
    convert_from, so that the database, not this script, refuses it, as it
    would refuse PostgREST's binary json parameter.  With spec.log_ids the
    statement also returns the ids of the rows written, for the request log
    (RETURNING <table>.id instead of RETURNING 1, and one more column)."""
    (relation, cols, is_object, resolution, conflict_cols, apply_defaults,
     returning_rows, location_pk, log_ids) = spec
    tbl = sql.SQL("{}.{}").format(sql.Identifier(relation[0]),
                                  sql.Identifier(relation[1]))
    idents = [sql.Identifier(c[0]) for c in cols]
    comma = sql.SQL(", ")
    from_body = json_body_fragment(cols, is_object, apply_defaults, as_bytea,
                                   include_select=True)

    def inserted_cfg(add):
        sym, num = ("+", "0") if add else ("-", "-1")
        return sql.SQL(
            "set_config('pgrst.inserted', (coalesce(nullif(current_setting("
            "'pgrst.inserted', true), '')::int, 0) %s 1)::text, true) <> '%s'"
            % (sym, num))

    merge = resolution == "merge-duplicates"
    ins = [sql.SQL("INSERT INTO "), tbl]
    ins.append(sql.SQL("(") + comma.join(idents) + sql.SQL(") ") if cols else sql.SQL(" "))
    ins.append(from_body)
    if merge:
        ins += [sql.SQL("WHERE "), inserted_cfg(True)]
    if resolution is not None and conflict_cols:
        ins += [sql.SQL(" ON CONFLICT("),
                comma.join(sql.Identifier(c) for c in conflict_cols),
                sql.SQL(") ")]
        if resolution == "ignore-duplicates" or not cols:
            ins.append(sql.SQL("DO NOTHING"))
        else:
            ins.append(sql.SQL("DO UPDATE SET "))
            ins.append(comma.join(sql.SQL("{} = EXCLUDED.{}").format(i, i) for i in idents))
            ins += [sql.SQL(" WHERE "), inserted_cfg(False)]
    ins.append(sql.SQL(" RETURNING "))
    if returning_rows:
        ins.append(sql.SQL("{}.*").format(tbl))
    elif log_ids:
        ins.append(sql.SQL("{}.{}").format(tbl, sql.Identifier("id")))
    else:
        ins.append(sql.SQL("1"))
    mutate = sql.Composed(ins)

    if location_pk:
        loc = sql.SQL(
            "CASE WHEN pg_catalog.count(_postgrest_t) = 1 THEN coalesce(("
            "WITH data AS (SELECT row_to_json(_) AS row FROM pgrst_source AS _ LIMIT 1) "
            "SELECT array_agg(json_data.key || '=' || coalesce('eq.' || json_data.value, 'is.null')) "
            "FROM data CROSS JOIN json_each_text(data.row) AS json_data "
            "WHERE json_data.key IN ({})), array[]::text[]) ELSE array[]::text[] END"
        ).format(comma.join(sql.Literal(c) for c in location_pk))
    else:
        loc = sql.SQL("array[]::text[]")
    body_f = sql.SQL("coalesce(json_agg(_postgrest_t), '[]')::text") if returning_rows \
        else sql.SQL("''::text")
    inserted_f = sql.SQL("nullif(current_setting('pgrst.inserted', true),'')::int") if merge \
        else sql.SQL("NULL::int")
    stmt = sql.Composed([
        sql.SQL("WITH pgrst_source AS ("), mutate, sql.SQL(") SELECT "),
        sql.SQL("pg_catalog.count(_postgrest_t) AS page_total, "),
        loc, sql.SQL(" AS header, "), body_f, sql.SQL(" AS body, "),
        sql.SQL("nullif(current_setting('response.headers', true), '') AS response_headers, "),
        sql.SQL("nullif(current_setting('response.status', true), '') AS response_status, "),
        inserted_f, sql.SQL(" AS response_inserted "),
    ] + ([sql.SQL(", coalesce(json_agg(_postgrest_t.{}), '[]')::text AS stand_in_ids ")
          .format(sql.Identifier("id"))] if log_ids else []) + [
        sql.SQL("FROM (SELECT * FROM pgrst_source) _postgrest_t"),
    ])
    return stmt


def json_body_fragment(cols, is_object, apply_defaults, as_bytea, include_select,
                       include_limit_one=False):
    """SqlFragment.fromJsonBodyF: the body (the one parameter %s) as rows of
    the typed columns `cols` ((name, nominal_type, default), sorted), in a
    `pgrst_body` relation: "[SELECT pgrst_body.<cols> ]FROM (SELECT $1 AS
    json_data) pgrst_payload, [LATERAL (<defaults> || ...) pgrst_json_defs, ]
    LATERAL (SELECT <cols> FROM json_to_record[set](...) AS _(<typed>)
    [LIMIT 1]) pgrst_body ".  Clean UTF-8 goes as text cast to json, other
    bytes as bytea through convert_from (see insert_statement)."""
    idents = [sql.Identifier(c[0]) for c in cols]
    body_idents = [sql.SQL("{}.{}").format(sql.Identifier("pgrst_body"), i)
                   for i in idents]
    typed = [sql.SQL("{} " + c[1].replace("{", "{{").replace("}", "}}"))
             .format(sql.Identifier(c[0])) for c in cols]
    comma = sql.SQL(", ")

    json_type = "jsonb" if apply_defaults else "json"
    if as_bytea:
        placeholder = sql.SQL("convert_from(%s::bytea, 'UTF8')::" + json_type)
    else:
        placeholder = sql.SQL("%s::" + json_type)

    parts = []
    if include_select:
        parts += [sql.SQL("SELECT "), comma.join(body_idents), sql.SQL(" ")]
    parts += [sql.SQL("FROM (SELECT "), placeholder, sql.SQL(" AS json_data) pgrst_payload, ")]
    if apply_defaults:
        defs = [sql.SQL("{}, " + c[2].replace("{", "{{").replace("}", "}}")
                        .replace("%", "%%"))
                .format(sql.Literal(c[0])) for c in cols if c[2] is not None]
        defs_jsonb = sql.SQL("jsonb_build_object(") + sql.SQL(",").join(defs) + sql.SQL(")")
        if is_object:
            parts += [sql.SQL("LATERAL (SELECT "), defs_jsonb,
                      sql.SQL(" || pgrst_payload.json_data AS val) pgrst_json_defs, ")]
        else:
            parts += [sql.SQL("LATERAL (SELECT jsonb_agg("), defs_jsonb,
                      sql.SQL(" || elem) AS val from jsonb_array_elements("
                              "pgrst_payload.json_data) elem) pgrst_json_defs, ")]
        final_body = "pgrst_json_defs.val"
        arr_elems = "jsonb_array_elements"
        to_rec = "jsonb_to_record" if is_object else "jsonb_to_recordset"
    else:
        final_body = "pgrst_payload.json_data"
        arr_elems = "json_array_elements"
        to_rec = "json_to_record" if is_object else "json_to_recordset"
    parts += [sql.SQL("LATERAL (SELECT "), comma.join(idents), sql.SQL(" FROM ")]
    if not cols:
        if is_object:
            parts.append(sql.SQL("(values(1)) _ "))
        else:
            parts.append(sql.SQL("%s(%s) _ " % (arr_elems, final_body)))
    else:
        parts += [sql.SQL("%s(%s) AS _(" % (to_rec, final_body)), comma.join(typed),
                  sql.SQL(") ")]
        if include_limit_one:
            parts.append(sql.SQL("LIMIT 1"))
    parts.append(sql.SQL(") pgrst_body "))
    return sql.Composed(parts)
