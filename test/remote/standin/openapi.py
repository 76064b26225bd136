"""GET / HEAD /rest/v1/ : PostgREST 12.2's OpenAPI (Swagger 2.0) document
of the request's schema, and the catalog facts it needs beyond the rest of
the schema cache (loaded with it: load_openapi_catalog).

Checked against PostgREST v12.2.12: Response/OpenAPI.hs (the whole
document: makeTableDef, makeProperty, toSwaggerType, parseDefault,
makeParamDefs, makePathItem, makeProcPathItem, makeRootPathItem,
postgrestSpec), SchemaCache.hs (tablesSqlQuery's columns: description,
is_nullable, data_type, character_maximum_length, column_default, enum
values; accessibleTables, schemaDescription; the relationships the
foreign-key notes come from), Query.hs (actionQuery InspectPlan:
openapi-mode follow-privileges, the default, keeps the tables and
functions of the schema that the request's role may use), Plan.hs
(inspectPlan: Accept must allow application/openapi+json,
application/json or */*, else 406 PGRST107), Response.hs (200,
Content-Type application/openapi+json; charset=utf-8, Content-Profile when
negotiated, no body for HEAD), Version.hs (docsVersion "v12").

What a client relies on, as PostgREST computes it:
  * definitions.<table>.properties.<column>: "format" is the column's type
    as PostgREST's schema cache names it (format_type without the modifier
    for a pg_catalog type: "bigint", "text", "character varying",
    "timestamp with time zone", "numeric", "jsonb", "text[]"...; a domain
    over a pg_catalog type is its base type); "type" from the format:
    string (character varying, character, text and every type not below),
    boolean, integer (smallint, integer, bigint), number (numeric, real,
    double precision), array (a "[]" type, with "items": {"type": <its
    element's>}, {} for json / jsonb elements), none for json and jsonb;
    "maxLength" for character types with a length; "enum" for an enum
    type; "description": the column's comment, and for a primary key
    column "Note:\nThis is a Primary Key.<pk/>" (after "\n\n" when there is
    a comment), and for a column that is the single column of a foreign key
    to a table of the same schema "This is a Foreign Key to `<table>.<column>`.<fk
    table='t' column='c'/>" on its own line after the note's "Note:".
  * "default": the column's default expression (a domain's, nextval for an
    identity column) when it reads as JSON after parseDefault: for a type
    shown as a string, "::<format>" stripped, then the quotes around it,
    then the whole wrapped in double quotes; any other type's expression
    as is.  So `DEFAULT now()` on a timestamptz is "now()", `'x'::text` is
    "x", `false` is false, `0` is 0; `nextval('s'::regclass)` on a bigint,
    `'{}'::jsonb`, `'-1'::integer` do not read as JSON: no "default".
  * "required": every column that is NOT NULL (or of a NOT NULL domain),
    WHETHER OR NOT IT HAS A DEFAULT (makeTableDef: filter (not .
    colNullable)); absent when none is.  A client wanting "NOT NULL without
    a default" must subtract the columns with a default itself, knowing
    that a default that does not read as JSON is not shown.
Known differences: the views' primary keys, which PostgREST infers from
their definitions, are not inferred (no <pk/> note on a view's column, and
no foreign-key note through a view); info.version is "12.2.12" without a
git hash; host and basePath are PostgREST's defaults ("0.0.0.0:3000",
"/") as no openapi-server-proxy-uri is set.
"""

import collections

from .common import POSTGREST_VERSION, Reply, error_reply, jdump, parse_accept, \
    parse_json_strict
from .query import parse_read_query

OPENAPI_CT = "application/openapi+json; charset=utf-8"
DOCS_VERSION = "v" + POSTGREST_VERSION.split(".")[0]

# Response/OpenAPI.hs, postgrestSpec / makeProcPathItem / makeRootPathItem
MIME_ALL = ["application/json", "application/vnd.pgrst.object+json;nulls=stripped",
            "application/vnd.pgrst.object+json", "text/csv"]
MIME_PROC = MIME_ALL[:3]
MIME_ROOT = ["application/openapi+json", "application/json"]

OAColumn = collections.namedtuple("OAColumn", [
    "name", "description", "nullable", "type", "max_len", "default", "enum"])
OATable = collections.namedtuple("OATable", ["description", "columns", "fks"])


def load_openapi_catalog(cur, schemas):
    """What the OpenAPI document needs of the relations and functions of
    the exposed schemas, beyond the rest of the schema cache: {"tables":
    {(schema, name): OATable}, "procs": {(schema, name, (param names)):
    (oid, description)}}.  tablesSqlQuery's column facts, in attnum order;
    single-column foreign keys to tables of the same schema."""
    cur.execute("""
        SELECT nc.nspname::text, c.relname::text, a.attname::text, d.description,
               NOT (a.attnotnull OR t.typtype = 'd' AND t.typnotnull),
               CASE
                 WHEN t.typtype = 'd' THEN
                   CASE WHEN nbt.nspname = 'pg_catalog' THEN format_type(t.typbasetype, NULL)
                        ELSE format_type(a.atttypid, a.atttypmod) END
                 ELSE
                   CASE WHEN nt.nspname = 'pg_catalog' THEN format_type(a.atttypid, NULL)
                        ELSE format_type(a.atttypid, a.atttypmod) END
               END::text,
               information_schema._pg_char_max_length(
                   information_schema._pg_truetypid(a.*, t.*),
                   information_schema._pg_truetypmod(a.*, t.*))::integer,
               CASE
                 WHEN t.typbasetype <> 0 AND ad.adbin IS NULL
                   THEN pg_get_expr(t.typdefaultbin, 0)
                 WHEN a.attidentity = 'd'
                   THEN (SELECT format('nextval(%%s)',
                                       quote_literal(sn.nspname || '.' || s.relname))
                           FROM pg_depend dep
                           JOIN pg_class s ON s.oid = dep.objid
                           JOIN pg_namespace sn ON sn.oid = s.relnamespace
                          WHERE dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum
                            AND dep.deptype = 'i' AND s.relkind = 'S' LIMIT 1)
                 WHEN a.attgenerated = 's' THEN NULL
                 ELSE pg_get_expr(ad.adbin, ad.adrelid)::text
               END,
               (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                  FROM pg_enum e WHERE e.enumtypid = coalesce(bt.oid, t.oid))
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace nc ON nc.oid = c.relnamespace
          JOIN pg_type t ON t.oid = a.atttypid
          JOIN pg_namespace nt ON nt.oid = t.typnamespace
          LEFT JOIN (pg_type bt JOIN pg_namespace nbt ON nbt.oid = bt.typnamespace)
                 ON t.typtype = 'd' AND t.typbasetype = bt.oid
          LEFT JOIN pg_description d ON d.objoid = a.attrelid AND d.objsubid = a.attnum
                 AND d.classoid = 'pg_class'::regclass
          LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
         WHERE nc.nspname = ANY (%s)
           AND c.relkind IN ('r', 'v', 'm', 'f', 'p') AND NOT c.relispartition
           AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY 1, 2, a.attnum""", (schemas,))
    cols = collections.defaultdict(list)
    for schema, rel, name, desc, nullable, typ, max_len, default, enum in cur.fetchall():
        cols[(schema, rel)].append(OAColumn(name, desc, nullable, typ, max_len, default,
                                            list(enum or [])))
    cur.execute("""
        SELECT n.nspname::text, c.relname::text, d.description
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_description d ON d.objoid = c.oid AND d.objsubid = 0
                 AND d.classoid = 'pg_class'::regclass
         WHERE n.nspname = ANY (%s)
           AND c.relkind IN ('r', 'v', 'm', 'f', 'p') AND NOT c.relispartition""",
                (schemas,))
    descs = {(s, r): d for s, r, d in cur.fetchall()}
    # Single-column foreign keys to a table of the same (exposed) schema,
    # the first by the foreign table's name for a column with several.
    cur.execute("""
        SELECT n.nspname::text, c.relname::text, a.attname::text,
               fc.relname::text, fa.attname::text
          FROM pg_constraint k
          JOIN pg_class c ON c.oid = k.conrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_class fc ON fc.oid = k.confrelid
          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
          JOIN pg_attribute fa ON fa.attrelid = k.confrelid AND fa.attnum = k.confkey[1]
         WHERE k.contype = 'f' AND cardinality(k.conkey) = 1
           AND fc.relnamespace = c.relnamespace AND n.nspname = ANY (%s)
         ORDER BY 1, 2, 3, 4 DESC, k.conname DESC""", (schemas,))
    fks = collections.defaultdict(dict)
    for schema, rel, col, ftable, fcol in cur.fetchall():
        fks[(schema, rel)][col] = (ftable, fcol)     # the last one wins: the first
    tables = {qi: OATable(descs.get(qi), cols.get(qi, []), dict(fks.get(qi, {})))
              for qi in descs}
    cur.execute("""
        SELECT n.nspname::text, p.proname::text, p.oid::bigint,
               coalesce((SELECT array_agg(x.name ORDER BY x.pos)
                           FROM unnest(p.proargnames, p.proargtypes, p.proargmodes)
                                WITH ORDINALITY AS x(name, type, mode, pos)
                          WHERE x.type IS NOT NULL), '{}')::text[],
               d.description
          FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
          LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass
         WHERE n.nspname = ANY (%s) AND p.prokind = 'f'""", (schemas,))
    procs = {}
    for schema, name, oid, argnames, desc in cur.fetchall():
        procs[(schema, name, tuple(a or "" for a in argnames))] = (oid, desc)
    return {"tables": tables, "procs": procs}


# ---------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------

def swagger_type(t):
    """OpenAPI.toSwaggerType; None where PostgREST gives no type."""
    if t in ("character varying", "character", "text"):
        return "string"
    if t == "boolean":
        return "boolean"
    if t in ("smallint", "integer", "bigint"):
        return "integer"
    if t in ("numeric", "real", "double precision"):
        return "number"
    if t in ("json", "jsonb"):
        return None
    return "array" if t.endswith("[]") else "string"


def _items(t):
    """makePropertyItems: {"type": <element's type>} for an array type."""
    if swagger_type(t) != "array":
        return None
    et = swagger_type(t[:-2])
    return {"type": et} if et is not None else {}


def parse_default(t, expr):
    """OpenAPI.parseDefault then aeson's decode: the default as JSON, or
    None (no "default") when the text does not read as JSON."""
    if swagger_type(t) == "string":
        suffix = "::" + t
        if expr.endswith(suffix):
            expr = expr[:-len(suffix)].strip("'")
        expr = '"' + expr + '"'
    try:
        return (parse_json_strict(expr.encode("utf-8")),)
    except (ValueError, RecursionError):
        return None


def _breakon_newline(text):
    """Data.Text.breakOn "\\n": (first line, rest without leading newlines)."""
    if text is None:
        return None, None
    head, nl, rest = text.partition("\n")
    return head, (nl + rest).lstrip("\n")


def table_definition(rel, oat):
    """makeTableDef / makeProperty for one relation."""
    props = {}
    for c in oat.columns:
        p = {}
        if c.default is not None:
            d = parse_default(c.type, c.default)
            if d is not None:
                p["default"] = d[0]
        notes = ["Note:"]
        if c.name in rel.pk_cols:
            notes.append("This is a Primary Key.<pk/>")
        fk = oat.fks.get(c.name)
        if fk is not None:
            notes.append("This is a Foreign Key to `%s.%s`.<fk table='%s' column='%s'/>"
                         % (fk[0], fk[1], fk[0], fk[1]))
        if len(notes) > 1:
            p["description"] = ((c.description + "\n\n") if c.description is not None
                                else "") + "\n".join(notes)
        elif c.description is not None:
            p["description"] = c.description
        if c.enum:
            p["enum"] = list(c.enum)
        p["format"] = c.type
        if c.max_len is not None:
            p["maxLength"] = c.max_len
        st = swagger_type(c.type)
        if st is not None:
            p["type"] = st
        it = _items(c.type)
        if it is not None:
            p["items"] = it
        props[c.name] = p
    d = {}
    if oat.description is not None:
        d["description"] = oat.description
    required = [c.name for c in oat.columns if not c.nullable]
    if required:
        d["required"] = required
    d["properties"] = props
    d["type"] = "object"
    return d


def _param(name, where, description=None, default=None, enum=None):
    p = {"name": name}
    if description is not None:
        p["description"] = description
    p["required"] = False
    p["in"] = where
    p["type"] = "string"
    if default is not None:
        p["default"] = default
    if enum is not None:
        p["enum"] = enum
    return p


def _prefer(*kinds):
    vals = {"count": ["count=none"], "params": ["params=single-object"],
            "return": ["return=representation", "return=minimal", "return=none"],
            "resolution": ["resolution=ignore-duplicates", "resolution=merge-duplicates"]}
    return _param("Prefer", "header", "Preference",
                  enum=[v for k in kinds for v in vals[k]])


def param_definitions(tables):
    """makeParamDefs: the shared parameters, then per relation its body and
    a row filter per column."""
    defs = {
        "preferParams": _prefer("params"),
        "preferReturn": _prefer("return"),
        "preferCount": _prefer("count"),
        "preferPost": _prefer("return", "resolution"),
        "select": _param("select", "query", "Filtering Columns"),
        "on_conflict": _param("on_conflict", "query", "On Conflict"),
        "order": _param("order", "query", "Ordering"),
        "range": _param("Range", "header", "Limiting and Pagination"),
        "rangeUnit": _param("Range-Unit", "header", "Limiting and Pagination",
                            default="items"),
        "offset": _param("offset", "query", "Limiting and Pagination"),
        "limit": _param("limit", "query", "Limiting and Pagination"),
    }
    for rel, oat in tables:
        defs["body." + rel.name] = {"name": rel.name, "description": rel.name,
                                    "required": False, "in": "body",
                                    "schema": {"$ref": "#/definitions/" + rel.name}}
        for c in oat.columns:
            defs["rowFilter.%s.%s" % (rel.name, c.name)] = _param(
                c.name, "query", c.description)
    return defs


def _ref(name):
    return {"$ref": "#/parameters/" + name}


def _summary_description(op, text):
    head, rest = _breakon_newline(text)
    if head is not None:
        op["summary"] = head
    if rest:
        op["description"] = rest


def table_path(rel, oat):
    """makePathItem: GET always; POST, PATCH and DELETE when the relation
    is insertable, updatable or deletable."""
    rs = [_ref("rowFilter.%s.%s" % (rel.name, c.name)) for c in oat.columns]

    def op(params, responses):
        o = {"tags": [rel.name]}
        _summary_description(o, oat.description)
        o["parameters"] = params
        o["responses"] = responses
        return o

    item = {"get": op(rs + [_ref(x) for x in ("select", "order", "range", "rangeUnit",
                                             "offset", "limit", "preferCount")],
                      {"200": {"description": "OK",
                               "schema": {"type": "array",
                                          "items": {"$ref": "#/definitions/" + rel.name}}},
                       "206": {"description": "Partial Content"}})}
    if rel.insertable or rel.updatable or rel.deletable:
        item["post"] = op([_ref("body." + rel.name), _ref("select"), _ref("preferPost")],
                          {"201": {"description": "Created"}})
        item["delete"] = op(rs + [_ref("preferReturn")], {"204": {"description": "No Content"}})
        item["patch"] = op(rs + [_ref("body." + rel.name), _ref("preferReturn")],
                           {"204": {"description": "No Content"}})
    return item


def proc_path(proc, description):
    """makeProcPathItem: GET with a query parameter per argument, POST with
    the arguments as a body object."""
    def op():
        o = {}
        _summary_description(o, description)
        o["tags"] = ["(rpc) " + proc.name]
        o["produces"] = list(MIME_PROC)
        o["responses"] = {"200": {"description": "OK"}}
        return o

    get_params = []
    for p in proc.params:
        gp = {"name": p.name, "required": bool(p.required), "in": "query"}
        if p.variadic:
            gp["type"] = swagger_type(p.type) or "string"
            et = swagger_type(p.type[:-2]) if p.type.endswith("[]") else swagger_type(p.type)
            items = {"format": p.type[:-2] if p.type.endswith("[]") else p.type}
            if et is not None:
                items["type"] = et
            gp["items"] = items
            gp["collectionFormat"] = "multi"
        else:
            gp["format"] = p.type
            st = swagger_type(p.type)
            gp["type"] = "string" if st in (None, "array") else st
        get_params.append(gp)
    schema = {}
    if description is not None:
        schema["description"] = description
    req = [p.name for p in proc.params if p.required]
    if req:
        schema["required"] = req
    props = {}
    for p in proc.params:
        pp = {"format": p.type}
        st = swagger_type(p.type)
        if st is not None:
            pp["type"] = st
        it = _items(p.type)
        if it is not None:
            pp["items"] = it
        props[p.name] = pp
    schema["properties"] = props
    schema["type"] = "object"
    g, po = op(), op()
    g["parameters"] = get_params
    po["parameters"] = [{"name": "args", "required": True, "in": "body", "schema": schema},
                        _ref("preferParams")]
    return {"get": g, "post": po}


def openapi_document(tables, procs, schema_description):
    """postgrestSpec: `tables` [(Relation, OATable)], `procs` [(Routine,
    description)] as the role may use them."""
    title, desc = _breakon_newline(schema_description)
    paths = {"/": {"get": {"tags": ["Introspection"],
                           "summary": "OpenAPI description (this document)",
                           "produces": list(MIME_ROOT),
                           "responses": {"200": {"description": "OK"}}}}}
    for rel, oat in tables:
        paths["/" + rel.name] = table_path(rel, oat)
    for proc, pdesc in procs:
        paths["/rpc/" + proc.name] = proc_path(proc, pdesc)
    return {
        "swagger": "2.0",
        "info": {"description": desc if desc is not None
                 else "This is a dynamic API generated by PostgREST",
                 "title": title if title is not None else "PostgREST API",
                 "version": POSTGREST_VERSION},
        "host": "0.0.0.0:3000",
        "basePath": "/",
        "schemes": ["http"],
        "consumes": list(MIME_ALL),
        "produces": list(MIME_ALL),
        "paths": paths,
        "definitions": {rel.name: table_definition(rel, oat) for rel, oat in tables},
        "parameters": param_definitions(tables),
        "externalDocs": {"description": "PostgREST Documentation",
                         "url": "https://postgrest.org/en/%s/references/api.html"
                                % DOCS_VERSION},
    }


class OpenAPI:
    """GET / HEAD on the root (a part of PostgREST).  Uses self.app
    (run_transaction)."""

    def openapi(self, ctx, cache, schema):
        parse_read_query(ctx.params, False)
        accept = ctx.header("accept")
        mts = parse_accept(accept) if accept is not None else [("any", "*/*")]
        if not any(k in ("openapi", "json", "any") for k, _ in mts):
            return error_reply(406, "PGRST107", "None of these media types are available: "
                               + ", ".join(m for _, m in mts))
        catalog = getattr(cache, "openapi", None) or {"tables": {}, "procs": {}}
        procs = [(p, catalog["procs"].get((p.schema, p.name,
                                           tuple(x.name for x in p.params))))
                 for p in (r for (s, _), rs in sorted(cache.routines.items()) if s == schema
                           for r in rs)]
        proc_oids = [d[0] for _, d in procs if d is not None]

        def run(cur):
            # accessibleTables, accessibleFuncs, schemaDescription, as the
            # request's role.
            cur.execute("""
                SELECT c.relname::text
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('v', 'r', 'm', 'f', 'p') AND NOT c.relispartition
                   AND n.nspname = %s
                   AND (pg_has_role(c.relowner, 'USAGE')
                        OR has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, '
                                               'TRUNCATE, REFERENCES, TRIGGER')
                        OR has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, '
                                                    'REFERENCES'))""", (schema,))
            tables = {r[0] for r in cur.fetchall()}
            cur.execute("SELECT p.oid::bigint FROM pg_proc p WHERE p.oid = ANY (%s::oid[]) "
                        "AND has_function_privilege(p.oid, 'execute')", (proc_oids,))
            oids = {r[0] for r in cur.fetchall()}
            cur.execute("SELECT d.description FROM pg_namespace n LEFT JOIN pg_description d "
                        "ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass "
                        "WHERE n.nspname = %s", (schema,))
            row = cur.fetchone()
            return tables, oids, (row[0] if row else None)

        res = self.app.run_transaction(ctx, run, prefs=None, read_only=True)
        if isinstance(res, Reply):
            return res
        names, oids, schema_desc = res
        tables = []
        for (s, name), rel in sorted(cache.relations.items()):
            if s == schema and name in names:
                oat = catalog["tables"].get((s, name)) or OATable(None, [], {})
                tables.append((rel, oat))
        visible = [(p, d[1]) for p, d in procs if d is not None and d[0] in oids]
        headers = [("Content-Type", OPENAPI_CT)]
        if ctx.negotiated:
            headers.append(("Content-Profile", schema))
        if ctx.method == "HEAD":
            return Reply(200, b"", headers)
        return Reply(200, jdump(openapi_document(tables, visible, schema_desc)), headers)
