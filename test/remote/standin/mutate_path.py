"""PATCH and DELETE on a table (the remote's fichas, any table of the
exposed schemas), as PostgREST 12.2 does them: the filters, order and
limit of the query string (query.py's grammar), the body of a PATCH, the
Prefer header, the UPDATE / DELETE in PostgREST 12.2.12's SQL shape, its
statuses, headers and errors.

Checked against PostgREST v12.2.12: ApiRequest.hs (getAction, getSchema:
Content-Profile; getRanges: a limit or offset without order is PGRST109;
getPayload: a DELETE's body is never read, a PATCH's is parsed as a POST's),
Plan.hs (mutatePlan: the body's keys resolved against the schema cache,
404 {} for a relation it lacks, PGRST204 for a column; returnings =
the select's columns plus the primary key, none with return=minimal;
negotiateContent: no aggregate unless return=representation),
Query/QueryBuilder.hs (mutatePlanToQuery Update / Delete: the plain
UPDATE ... FROM <body> WHERE ... / DELETE FROM ... WHERE ..., the ranged
form with pgrst_affected_rows when limit / offset is given, and for a body
without a key "SELECT ... WHERE false"), Query/SqlFragment.hs (fromJsonBodyF,
returningF, mutRangeF), Query/Statements.hs (prepareWrite), Query.hs
(failNotSingular, failExceedsMaxAffectedPref, failsChangesOffLimits),
Response.hs (204 unless return=representation, then 200; Content-Range
"*/<total>" for DELETE, "0-<n-1>/<total>" for PATCH; Preference-Applied),
RangeQuery.hs (contentRangeH) and Error.hs (the codes and messages).

What PostgREST 12.2 itself does with a PATCH or DELETE without any filter:
it sends the statement without WHERE, i.e. it would change or delete every
row.  Supabase's database refuses it: its `authenticator` role loads
pg-safeupdate (session_preload_libraries = 'safeupdate'), whose
post-parse-analysis hook raises 21000 "DELETE requires a WHERE clause" /
"UPDATE requires a WHERE clause" for such a statement (in a CTE too), which
PostgREST answers 400 (Error.pgErrorStatus: 21000 ending in "requires a
WHERE clause").  This stand-in's database has no pg-safeupdate, so the
stand-in raises that same error in the database, in the request's
transaction, unless it runs with --no-safeupdate (PostgREST without
pg-safeupdate: every row is changed or deleted).  A ranged statement
(limit/offset with order) has a WHERE and passes, as with pg-safeupdate.

Filters on columns the table lacks are not checked by PostgREST 12.2: the
database refuses them (400, 42703 "column fichas.nope does not exist").

For the request log, n_rows and ids are the rows the statement changed or
deleted and their "id" (when the table has one): the statement also
returns the id (stand-in only: RETURNING <table>.id instead of RETURNING 1,
and one more column); both null when the statement did not run.
"""

import json

from psycopg2 import sql

from .common import Reply, Rollback, StandInError, error_reply, not_implemented
from .query import (limit_offset_sql, order_sql, parse_read_query, where_sql)
from .request import (Preferences, invalid_prefs_reply, override_status_headers,
                      singular_error)
from .write_path import body_param, is_utf8, json_body_fragment, mutation_payload


class MutatePath:
    """PostgREST's PATCH and DELETE on a table (a part of PostgREST).  Uses
    self.app (run_transaction, opts.safeupdate) and ApiMode's content
    negotiation."""

    def patch(self, ctx, cache, rel):
        return self._mutate(ctx, cache, rel, "update")

    def delete(self, ctx, cache, rel):
        return self._mutate(ctx, cache, rel, "delete")

    def _mutate(self, ctx, cache, rel, kind):
        # The log's rows are the rows touched, never the body's.
        ctx.rows_noted = True
        # QueryParams.parse, then getRanges, then getPayload.
        rq = parse_read_query(ctx.params, False)
        ranged = rq.limit is not None or rq.offset is not None
        if ranged and not rq.order:
            return error_reply(400, "PGRST109",
                               "A 'limit' was applied without an explicit 'order'",
                               None, "Apply an 'order' using unique column(s)")
        keys, raw, is_object = set(), b"", False
        if kind == "update":
            keys, raw, is_object = mutation_payload(ctx, rq.columns, note=False)
        prefs = Preferences(ctx.header_all("prefer"), cache.timezones)
        # mutatePlan: the body's keys against the schema cache.
        cols = []
        if kind == "update" and keys:
            if rel is None:
                return Reply(404, {})
            for name in sorted(keys):
                if name not in rel.columns:
                    return error_reply(
                        400, "PGRST204",
                        "Could not find the '%s' column of '%s' in the schema cache"
                        % (name, rel.name))
                cols.append((name,) + rel.columns[name])
        if prefs.invalid and prefs.handling == "strict":
            return invalid_prefs_reply(prefs)
        handler, media = self._negotiate_handler(ctx)
        if isinstance(handler, Reply):
            return handler
        if prefs.count not in (None, "exact"):
            return not_implemented("Prefer: count=%s" % prefs.count)
        rep = prefs.representation
        if rep != "representation":
            handler = "none"
        # returnings (Plan.inferColsEmbedNeeds): none unless a
        # representation (or headers-only) is asked for; "*" if the
        # select has it, else the selected columns and the primary key.
        if rep in ("representation", "headers-only"):
            if "*" in rq.select:
                returnings = ["*"]
            else:
                pk = rel.pk_cols if rel is not None else []
                returnings = sorted(set(rq.select) | set(pk))
        else:
            returnings = []
        has_id = rel is not None and "id" in rel.columns
        no_where = not rq.filters and not ranged and (kind == "delete" or cols)
        as_bytea = b"\x00" in raw or not is_utf8(raw)
        stmt, params = mutate_statement(
            kind, ctx.relation, rq, cols, is_object, prefs.missing == "default",
            as_bytea, raw, returnings, handler, has_id)
        safeupdate = no_where and getattr(self.app.opts, "safeupdate", True)
        max_aff = prefs.max_affected_n if prefs.handling == "strict" else None

        def run(cur):
            if safeupdate:
                raise_safeupdate(cur, ctx.relation, kind)
            cur.execute(stmt, params)
            row = cur.fetchone()
            n = row[1]
            if media == "object" and n != 1:
                raise Rollback(singular_error(n))
            if max_aff is not None and n > max_aff:
                raise Rollback(error_reply(
                    400, "PGRST124", "Query result exceeds max-affected preference constraint",
                    "The query affects %d rows" % n))
            if rq.limit is not None and n > rq.limit:
                raise Rollback(error_reply(
                    400, "PGRST110",
                    "The maximum number of rows allowed to change was surpassed",
                    "Results contain %d rows changed but the maximum number allowed is %d"
                    % (n, rq.limit)))
            return row

        row = self.app.run_transaction(ctx, run, prefs=prefs, read_only=False)
        if isinstance(row, Reply):
            return row
        n, body_text, guc_headers, guc_status, ids_text = row[1:6]
        ctx.n_rows = n
        ctx.ids = json.loads(ids_text) if ids_text is not None else None
        total = str(n) if prefs.count == "exact" else "*"
        if kind == "delete":
            # contentRangeH 1 0 total: never a range.
            content_range = "*/" + total
        else:
            # contentRangeH 0 (n - 1) total
            content_range = ("0-%d/%s" % (n - 1, total)
                             if n >= 1 and total != "0" else "*/" + total)
        headers = [("Content-Range", content_range)]
        applied = applied_header(prefs, kind)
        if applied:
            headers.append(("Preference-Applied", applied))
        if rep == "representation":
            headers += self._content_type_headers(ctx, media)
            reply = Reply(200, (body_text or "").encode("utf-8"), headers)
        else:
            reply = Reply(204, b"", headers)
        return override_status_headers(reply, guc_status, guc_headers)


def applied_header(prefs, kind):
    """Preferences.prefAppliedHeader with what Response.hs passes for an
    update (missing, return, count, handling, timezone, max-affected) or a
    delete (the same without missing), in PostgREST's order."""
    vals = []
    if kind == "update" and prefs.missing:
        vals.append("missing=" + prefs.missing)
    if prefs.representation:
        vals.append("return=" + prefs.representation)
    if prefs.count:
        vals.append("count=" + prefs.count)
    if prefs.handling:
        vals.append("handling=" + prefs.handling)
    if prefs.timezone:
        vals.append("timezone=" + prefs.timezone)
    if prefs.handling == "strict" and prefs.max_affected_n is not None:
        vals.append("max-affected=%d" % prefs.max_affected_n)
    return ", ".join(vals) if vals else None


def raise_safeupdate(cur, relation, kind):
    """pg-safeupdate's refusal, raised in the database: 21000 "DELETE
    requires a WHERE clause" (or UPDATE).  Parse analysis resolves the
    relation before the hook runs, so a relation the database lacks is
    left to the statement itself (42P01)."""
    name = sql.SQL("{}.{}").format(sql.Identifier(relation[0]),
                                   sql.Identifier(relation[1])).as_string(cur)
    cur.execute(sql.SQL(
        "DO $standin$ BEGIN IF to_regclass({}) IS NOT NULL THEN "
        "RAISE EXCEPTION USING ERRCODE = '21000', MESSAGE = {}; END IF; END $standin$")
        .format(sql.Literal(name),
                sql.Literal("%s requires a WHERE clause" % kind.upper())))


def mutate_statement(kind, relation, rq, cols, is_object, apply_defaults, as_bytea,
                     raw, returnings, handler, log_ids):
    """Statements.prepareWrite around QueryBuilder.mutatePlanToQuery for an
    Update or a Delete: one row of (total_result_set, page_total, body,
    response_headers, response_status, stand_in_ids).  Returns (Composed,
    params); the body (an update's) is the first parameter."""
    tbl = sql.SQL("{}.{}").format(sql.Identifier(relation[0]), sql.Identifier(relation[1]))
    alias = sql.Identifier(relation[1])
    comma = sql.SQL(", ")
    where, wparams = where_sql(tbl, rq)
    where_f = (sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)) if where else sql.SQL("")
    ranged = rq.limit is not None or rq.offset is not None
    # returningF, with the id for the log (stand-in only).
    ret_cols = list(returnings)
    if log_ids and "*" not in ret_cols and "id" not in ret_cols:
        ret_cols.append("id")

    def returning():
        if not ret_cols:
            return sql.SQL("RETURNING 1")
        return sql.SQL("RETURNING ") + comma.join(
            sql.SQL("{}.*").format(tbl) if c == "*"
            else sql.SQL("{}.{}").format(tbl, sql.Identifier(c)) for c in ret_cols)

    params = []
    if ranged:
        # mutRangeF: the order's columns identify the rows in range.
        rid = [c for c, _, _ in rq.order]
        range_sel = comma.join(sql.SQL("{}.{}").format(tbl, sql.Identifier(c)) for c in rid)
        range_where = sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}.{}").format(tbl, sql.Identifier(c),
                                            sql.Identifier("pgrst_affected_rows"),
                                            sql.Identifier(c)) for c in rid)
        affected = (sql.SQL("pgrst_affected_rows AS (SELECT ") + range_sel
                    + sql.SQL(" FROM ") + tbl + where_f + sql.SQL(" ")
                    + order_sql(tbl, rq.order) + sql.SQL(" ") + limit_offset_sql(rq)
                    + sql.SQL(") "))
    if kind == "update" and not cols:
        # No column to set: the table's columns, and no row.
        if returnings:
            sel = comma.join(sql.SQL("{}.*").format(alias) if c == "*"
                             else sql.SQL("{}.{}").format(alias, sql.Identifier(c))
                             for c in returnings)
        else:
            sel = sql.SQL("NULL")
        mutate = sql.SQL("SELECT ") + sel + sql.SQL(" FROM ") + tbl + sql.SQL(" WHERE false")
        log_ids = False
    elif kind == "update" and not ranged:
        set_f = comma.join(sql.SQL("{} = {}.{}").format(sql.Identifier(c[0]),
                                                        sql.Identifier("pgrst_body"),
                                                        sql.Identifier(c[0])) for c in cols)
        mutate = (sql.SQL("UPDATE ") + tbl + sql.SQL(" SET ") + set_f + sql.SQL(" ")
                  + json_body_fragment(cols, is_object, apply_defaults, as_bytea,
                                       include_select=False)
                  + where_f + sql.SQL(" ") + returning())
        params.append(body_param(raw, as_bytea))
        params += wparams
    elif kind == "update":
        set_f = comma.join(sql.SQL("{} = (SELECT {} FROM pgrst_update_body) ").format(
            sql.Identifier(c[0]), sql.Identifier(c[0])) for c in cols)
        mutate = (sql.SQL("WITH pgrst_update_body AS (")
                  + json_body_fragment(cols, is_object, apply_defaults, as_bytea,
                                       include_select=True, include_limit_one=True)
                  + sql.SQL("), ") + affected
                  + sql.SQL("UPDATE ") + tbl + sql.SQL(" SET ") + set_f
                  + sql.SQL("FROM pgrst_affected_rows WHERE ") + range_where
                  + sql.SQL(" ") + returning())
        params.append(body_param(raw, as_bytea))
        params += wparams
    elif not ranged:
        mutate = (sql.SQL("DELETE FROM ") + tbl + sql.SQL(" ") + where_f + sql.SQL(" ")
                  + returning())
        params += wparams
    else:
        mutate = (sql.SQL("WITH ") + affected + sql.SQL("DELETE FROM ") + tbl
                  + sql.SQL(" USING pgrst_affected_rows WHERE ") + range_where
                  + sql.SQL(" ") + returning())
        params += wparams
    # prepareWrite: the answer's row, from the rows the mutation returned
    # (selectF: "SELECT * FROM pgrst_source" without an aggregate, else the
    # read of the select's columns from pgrst_source AS <table>).
    if handler == "none":
        body_f = sql.SQL("''")
        select_f = sql.SQL("SELECT * FROM pgrst_source")
    else:
        items = comma.join(sql.SQL("{}.*").format(alias) if s == "*"
                           else sql.SQL("{}.{}").format(alias, sql.Identifier(s))
                           for s in rq.select)
        select_f = (sql.SQL("SELECT ") + items + sql.SQL(" FROM pgrst_source AS ")
                    + alias)
        body_f = sql.SQL("coalesce(json_agg(_postgrest_t)->0, 'null')" if handler == "single"
                         else "coalesce(json_agg(_postgrest_t), '[]')")
    ids_f = (sql.SQL("(SELECT coalesce(json_agg(s.{}), '[]') FROM pgrst_source s)::text")
             .format(sql.Identifier("id")) if log_ids else sql.SQL("NULL::text"))
    stmt = sql.Composed([
        sql.SQL("WITH pgrst_source AS ("), mutate, sql.SQL(") SELECT "),
        sql.SQL("'' AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, ("),
        body_f, sql.SQL(")::text AS body, "
                        "nullif(current_setting('response.headers', true), '') AS response_headers, "
                        "nullif(current_setting('response.status', true), '') AS response_status, "),
        ids_f, sql.SQL(" AS stand_in_ids FROM ("), select_f, sql.SQL(") _postgrest_t"),
    ])
    return stmt, params
