"""The query string as PostgREST 12.2 parses it (QueryParams: select,
filters, order, limit, offset, columns, on_conflict) and the SQL of
reads (QueryBuilder / Statements): used by POST (columns, on_conflict),
GET / HEAD on tables and the results of RPC calls."""

import collections
import re
import urllib.parse

from psycopg2 import sql

from .common import StandInError, error_reply, jdump, not_implemented, pgrst_body


# ---------------------------------------------------------------------------
# Query-string grammar (PostgREST.ApiRequest.QueryParams, the parts we need)
# ---------------------------------------------------------------------------

def _is_ident_char(ch):
    # pIdentifierChar = letter <|> digit <|> oneOf "_ $"
    return ch.isalpha() or ch in "0123456789_ $"


def parse_columns(text, what):
    """pColumns = pFieldName `sepBy1` lexeme (char ','), without eof (so
    trailing junk after a complete list is ignored, as in PostgREST).
    Returns a list of names or raises StandInError (PGRST100)."""
    n = len(text)

    def fail(pos, expecting):
        msg = '"failed to parse %s parameter (%s)" (line 1, column %d)' % (
            what, text, pos + 1)
        unexpected = ("end of input" if pos >= n else '"%s"' % text[pos])
        raise StandInError(error_reply(
            400, "PGRST100", msg,
            "unexpected %s expecting %s" % (unexpected, expecting)))

    def field(i):
        if i < n and text[i] == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                else:
                    buf.append(text[j])
                    j += 1
            if j >= n:
                fail(j, '"\\"" or "\\\\"')
            return "".join(buf), j + 1
        parts = []
        while True:
            j = i
            while j < n and _is_ident_char(text[j]):
                j += 1
            if j == i:
                fail(i, "field name (* or [a..z0..9_$])")
            parts.append(text[i:j].strip())
            if j < n and text[j] == "-" and not (j + 1 < n and text[j + 1] == ">"):
                i = j + 1
                continue
            return "-".join(parts), j

    names = []
    name, i = field(0)
    names.append(name)
    while True:
        j = i
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == ",":
            j += 1
            while j < n and text[j] in " \t":
                j += 1
            name, i = field(j)
            names.append(name)
            continue
        if j != i:
            # `lexeme` consumed blanks and no ',' follows: a parsec error.
            fail(j, '","')
        return names


# ---------------------------------------------------------------------------
# Reads and calls: the query string and the statements
# ---------------------------------------------------------------------------

def range_status(lower, page_total, total):
    """RangeQuery.rangeStatusHeader: the status and the Content-Range."""
    upper = lower + page_total - 1
    rng = "%d-%d" % (lower, upper) if (total != 0 and lower <= upper) else "*"
    head = "%s/%s" % (rng, "*" if total is None else total)
    if total is None:
        return 200, head
    if lower > total:
        return 416, head
    if 1 + upper - lower < total:
        return 206, head
    return 200, head


def range_error_body(lower, total):
    return jdump(pgrst_body("PGRST103", "Requested range not satisfiable",
                            "An offset of %d was requested, but there are only %d rows."
                            % (lower, total or 0)))


ReadQuery = collections.namedtuple("ReadQuery", [
    "select",       # [column name or "*"]
    "filters",      # [(column, negated, op, value)]
    "order",        # [(column, "ASC"/"DESC"/None, "NULLS FIRST"/"NULLS LAST"/None)]
    "limit",        # int or None
    "offset",       # int or None
    "rpc_args",     # [(name, value)]: GET /rpc/f?name=value
    "columns",      # columns= (names) or None
    "canonical",    # QueryParams.qsCanonical
])

# Every operator PostgREST 12.2 knows; the stand-in runs the first group.
READ_OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
            "like": "LIKE", "ilike": "ILIKE"}
OTHER_OPS = {"match", "imatch", "isdistinct", "fts", "plfts", "phfts", "wfts", "cs", "cd",
             "ov", "sl", "sr", "nxr", "nxl", "adj"}
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def _qp_error(what, value, pos=0, expecting='"not" or operator (eq, gt, ...)'):
    unexpected = '"%s"' % value[pos] if pos < len(value) else "end of input"
    return StandInError(error_reply(
        400, "PGRST100",
        '"failed to parse %s (%s)" (line 1, column %d)' % (what, value, pos + 1),
        "unexpected %s expecting %s" % (unexpected, expecting)))


def _url_encode(text):
    """Network.HTTP.Base.urlEncode: UTF-8, all but [A-Za-z0-9-_.~] escaped."""
    return urllib.parse.quote(text, safe="-_.~")


def canonical_query(params):
    """QueryParams.qsCanonical: the parameters sorted by name (stably), as
    urlEncodeVars renders them (values of one name joined by commas)."""
    ordered = sorted(params, key=lambda kv: kv[0])
    out, done = [], set()
    for k, _ in ordered:
        if k in done:
            continue
        done.add(k)
        vals = [_url_encode(v) for kk, v in ordered if kk == k]
        out.append(_url_encode(k) + "=" + ",".join(vals))
    return "&".join(out)


def parse_read_query(params, is_rpc_read):
    """QueryParams.parse, for the features the stand-in implements: select
    of plain columns, filters eq/neq/gt/gte/lt/lte/like/ilike/in/is (with
    not.), order, limit, offset, columns; on GET /rpc/ a parameter whose
    value is no operator expression is an argument.  Anything else PostgREST
    would accept answers 501; what it would refuse, PGRST100."""
    select = None
    filters, order, rpc_args = [], [], []
    limit = offset = columns = None
    for k, v in params:
        last = k.split(".")[-1]
        if k == "select":
            if select is None:
                select = v
            continue
        if k == "columns":
            if columns is None:
                columns = parse_columns(v, "columns")
            continue
        if k == "on_conflict":
            continue
        if last in ("order", "limit", "offset", "and", "or"):
            if k != last:
                raise StandInError(not_implemented("%s on an embedded resource" % last))
            if last in ("and", "or"):
                raise StandInError(not_implemented("the %s= filter" % last))
            if last == "order":
                order += _parse_order(v)
            else:
                # readMaybe: a value that is no integer is ignored.
                if re.match(r"^-?\d+$", v.strip()):
                    n = int(v)
                    if n < 0:
                        raise StandInError(not_implemented("a negative %s" % last))
                    if last == "limit":
                        limit = n
                    else:
                        offset = n
            continue
        f = _parse_filter(k, v, is_rpc_read)
        if f is None:
            rpc_args.append((k, v))
        else:
            filters.append(f)
    items = []
    for s in (select.split(",") if select is not None and select.strip() else ["*"]):
        s = s.strip()
        if s != "*" and not _IDENT_RE.match(s):
            raise StandInError(not_implemented("select=%s (only plain columns)" % select))
        items.append(s)
    return ReadQuery(items, filters, order, limit, offset, rpc_args, columns,
                     canonical_query(params))


def _parse_filter(key, value, is_rpc_read):
    """(column, negated, op, value), or None for an RPC argument."""
    rest, negated = value, False
    if rest.startswith("not."):
        negated, rest = True, rest[4:]
    op, dot, val = rest.partition(".")
    base = op.split("(")[0]
    known = base in READ_OPS or base in OTHER_OPS or base in ("in", "is")
    if not dot or not known:
        if is_rpc_read:
            return None
        pos = 0
        if negated:
            pos = 4
        raise _qp_error("filter", value, pos)
    if base == "is" and val not in ("null", "true", "false", "unknown"):
        if is_rpc_read:
            return None
        raise _qp_error("filter", value, len(value) - len(val),
                        'null or trilean value (unknown, true, false)')
    if op != base or base in OTHER_OPS:
        raise StandInError(not_implemented("the filter %s=%s" % (key, value)))
    if not _IDENT_RE.match(key):
        raise StandInError(not_implemented("the filter %s=%s (embedded or JSON paths)"
                                           % (key, value)))
    if base == "in":
        if not (val.startswith("(") and val.endswith(")")):
            if is_rpc_read:
                return None
            raise _qp_error("filter", value, len(value) - len(val), '"("')
        val = _parse_in_list(val[1:-1]) if len(val) > 2 else []
    return (key, negated, base, val)


def _parse_order(text):
    out = []
    for term in text.split(","):
        parts = term.strip().split(".")
        if not parts or not _IDENT_RE.match(parts[0]):
            raise StandInError(not_implemented("order=%s" % text))
        direction = nulls = None
        for mod in parts[1:]:
            if mod in ("asc", "desc") and direction is None and nulls is None:
                direction = mod.upper()
            elif mod in ("nullsfirst", "nullslast") and nulls is None:
                nulls = "NULLS FIRST" if mod == "nullsfirst" else "NULLS LAST"
            else:
                raise _qp_error("order", text, 0, '"asc", "desc", "nullsfirst" or "nullslast"')
        out.append((parts[0], direction, nulls))
    return out


def _where_sql(qi, rq):
    where, params = [], []
    for col, negated, op, val in rq.filters:
        colsql = sql.SQL("{}.{}").format(qi, sql.Identifier(col))
        if op in READ_OPS:
            if op in ("like", "ilike"):
                val = val.replace("*", "%")
            piece = sql.SQL("{} %s %%s" % READ_OPS[op]).format(colsql)
            params.append(val)
        elif op == "is":
            piece = sql.SQL("{} IS %s" % val.upper()).format(colsql)
        else:
            # in: an untyped array literal, which the database types from
            # the column (PostgREST sends it the same way).
            piece = sql.SQL("{} = ANY (%s)").format(colsql)
            params.append("{%s}" % ",".join(
                '"%s"' % e.replace("\\", "\\\\").replace('"', '\\"') for e in val))
        if negated:
            piece = sql.SQL("NOT {}").format(piece)
        where.append(piece)
    return where, params


def read_query_sql(src, qi, rq):
    """QueryBuilder.readPlanToQuery for one relation without embedding:
    SELECT <qi>.<columns> FROM <src> WHERE ... ORDER BY ... LIMIT ... OFFSET."""
    items = [sql.SQL("{}.*").format(qi) if s == "*"
             else sql.SQL("{}.{}").format(qi, sql.Identifier(s)) for s in rq.select]
    q = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(items), src)
    where, params = _where_sql(qi, rq)
    if where:
        q = q + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
    if rq.order:
        q = q + sql.SQL(" ") + order_sql(qi, rq.order)
    if rq.limit is not None or rq.offset is not None:
        q = q + sql.SQL(" ") + limit_offset_sql(rq)
    return q, params


def order_sql(qi, order):
    """SqlFragment.orderF: ORDER BY <qi>.<col> [ASC|DESC] [NULLS ...], ..."""
    terms = []
    for col, direction, nulls in order:
        t = sql.SQL("{}.{}").format(qi, sql.Identifier(col))
        if direction:
            t = t + sql.SQL(" " + direction)
        if nulls:
            t = t + sql.SQL(" " + nulls)
        terms.append(t)
    return sql.SQL("ORDER BY ") + sql.SQL(", ").join(terms)


def limit_offset_sql(rq):
    """SqlFragment.limitOffsetF, for a range other than allRange."""
    return sql.SQL("LIMIT %s OFFSET %d" % (
        "ALL" if rq.limit is None else str(rq.limit), rq.offset or 0))


def where_sql(qi, rq):
    """The filters of rq on the relation qi: ([pieces], params), to be
    joined with AND (QueryBuilder's pgFmtLogicTree for plain filters)."""
    return _where_sql(qi, rq)


def count_query_sql(src, qi, rq):
    """QueryBuilder.readPlanToCountQuery: SELECT 1 FROM <src> WHERE ..."""
    q = sql.SQL("SELECT 1 FROM {}").format(src)
    where, params = _where_sql(qi, rq)
    if where:
        q = q + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
    return q, params


def body_sql(handler, proc):
    """SqlFragment.handlerF for the JSON handlers (asJsonF, asJsonSingleF)."""
    if handler == "none":
        return sql.SQL("''::text")
    scalar = proc is not None and proc.returns_scalar
    if handler == "single":
        col = "_postgrest_t.pgrst_scalar" if scalar else "_postgrest_t"
        return sql.SQL("coalesce(json_agg(%s)->0, 'null')" % col)
    if proc is not None and proc.returns_single_composite:
        return sql.SQL("coalesce(json_agg(_postgrest_t)->0, 'null')")
    if scalar:
        return sql.SQL("coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null')")
    if proc is not None and proc.returns_setof_scalar:
        return sql.SQL("coalesce(json_agg(_postgrest_t.pgrst_scalar), '[]')")
    return sql.SQL("coalesce(json_agg(_postgrest_t), '[]')")


def result_statement(select_q, select_p, count_q, count_p, body, single):
    """Statements.prepareRead: the read in the pgrst_source CTE, then one
    row: total_result_set, page_total, body, response.headers,
    response.status."""
    parts = [sql.SQL("WITH pgrst_source AS ( "), select_q, sql.SQL(" ) ")]
    row, row_params = result_row_sql(count_q, count_p, single, body)
    parts += row + [sql.SQL("FROM ( SELECT * FROM pgrst_source ) _postgrest_t")]
    return sql.Composed(parts), list(select_p) + row_params


def result_row_sql(count_q, count_p, single, body):
    """What follows the pgrst_source CTE in Statements.prepareRead and
    prepareCall: the count's CTE (count_q, when counting), then the one
    row's columns; its FROM is the caller's.  Returns (parts, params)."""
    parts, params = [], []
    if count_q is not None:
        parts += [sql.SQL(", pgrst_source_count AS ("), count_q, sql.SQL(") ")]
        params += count_p
        total = sql.SQL("(SELECT pg_catalog.count(*) FROM pgrst_source_count)")
    else:
        total = sql.SQL("null::bigint")
    parts += [sql.SQL("SELECT "), total, sql.SQL(" AS total_result_set, "),
              sql.SQL("1" if single else "pg_catalog.count(_postgrest_t)"),
              sql.SQL(" AS page_total, ("), body, sql.SQL(")::text AS body, "),
              sql.SQL("nullif(current_setting('response.headers', true), '') AS response_headers, "
                      "nullif(current_setting('response.status', true), '') AS response_status, "
                      "'' AS response_inserted ")]
    return parts, params


def _parse_in_list(text):
    """The elements of in.(a,b,"c,d")."""
    out, i, n = [], 0, len(text)
    while i <= n:
        if i < n and text[i] == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            out.append("".join(buf))
            i = j + 1
            while i < n and text[i] != ",":
                i += 1
            i += 1
        else:
            j = text.find(",", i)
            if j < 0:
                j = n
            out.append(text[i:j])
            i = j + 1
    return out
