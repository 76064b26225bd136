"""PostgREST 12.2's schema cache: the relations and functions of the
exposed schemas and the roles' settings, read from the catalog (at start,
on /_control/reload_schema and SIGUSR1).  It also keeps the SQL text of
the upserts built so far."""

import collections

from .common import EXPOSED_SCHEMAS, SCHEMA, TABLE
from .openapi import load_openapi_catalog
from .write_path import insert_statement


class Relation:
    """One table, view, materialized view or foreign table of an exposed
    schema, as PostgREST 12.2's schema cache holds it (SchemaCache.hs,
    tablesSqlQuery): its columns and primary key."""

    __slots__ = ("schema", "name", "kind", "columns", "pk_cols", "rows_as_sent",
                 "insertable", "updatable", "deletable")

    def __init__(self, schema, name, kind, columns, pk_cols, rows_as_sent,
                 insertable=True, updatable=True, deletable=True):
        self.schema = schema
        self.name = name
        self.kind = kind            # pg_class.relkind: r p v m f
        # columns: dict name -> (nominal_type, default_expr or None), in
        # attnum order; empty for a relation without a column (PostgREST
        # keeps those too).
        self.columns = columns
        self.pk_cols = pk_cols
        # Not PostgREST's: True when an INSERT or an upsert on the relation
        # writes every row it is given, as given (no rule, no BEFORE or
        # INSTEAD OF row trigger on INSERT / UPDATE that could skip a row or
        # change its id), so that RETURNING id lists the body's ids (the
        # request log relies on it).  Like the rest, known as of the last
        # load: a trigger created since is seen after a reload.  Never true
        # of a view (its _RETURN rule).
        self.rows_as_sent = rows_as_sent
        # tableInsertable / tableUpdatable / tableDeletable: what OPTIONS
        # answers in its Allow header.
        self.insertable = insertable
        self.updatable = updatable
        self.deletable = deletable

    @property
    def is_view(self):
        """PostgREST's tableIsView.  A view's primary key is inferred from
        its definition (allViewsKeyDependencies, a parse of pg_rewrite's
        node trees), which this stand-in does not do: pk_cols is empty and
        requests whose answer depends on it are refused (STANDIN501)."""
        return self.kind in ("v", "m")

    @property
    def qi(self):
        return (self.schema, self.name)

    def describe(self):
        return {"schema": self.schema, "kind": KIND_NAMES.get(self.kind, self.kind),
                "columns": list(self.columns), "pk": list(self.pk_cols)}


KIND_NAMES = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
              "f": "foreign table"}


RoutineParam = collections.namedtuple("RoutineParam", [
    "name",             # "" for an unnamed parameter
    "type",             # its regtype, as text
    "type_max_length",  # the same, character -> character varying, bit -> bit varying
    "required",         # no default
    "variadic",
])


class Routine:
    """A function of an exposed schema, as PostgREST 12.2's schema cache
    holds it (SchemaCache.allFunctions / SchemaCache/Routine.hs): every
    function (prokind f) of the exposed schemas whatever the privileges
    (EXECUTE is the database's business when it is called), but trigger
    functions and those with unnamed parameters it cannot call."""

    __slots__ = ("schema", "name", "params", "ret_schema", "ret_name", "setof",
                 "composite", "composite_alias", "volatility", "has_variadic",
                 "iso_level", "settings")

    def __init__(self, schema, name, params, ret_schema, ret_name, setof, composite,
                 composite_alias, volatility, has_variadic, iso_level, settings):
        self.schema = schema
        self.name = name
        self.params = params                # [RoutineParam]
        self.ret_schema = ret_schema
        self.ret_name = ret_name            # the composite's table, or the type
        self.setof = setof
        self.composite = composite          # a composite type, or OUT/INOUT/TABLE params
        self.composite_alias = composite_alias  # a domain over the return type
        self.volatility = volatility        # "i", "s" or "v"
        self.has_variadic = has_variadic
        self.iso_level = iso_level          # default_transaction_isolation SET on it
        self.settings = settings            # [(name, value)] hoisted settings SET on it

    @property
    def returns_scalar(self):
        return not self.setof and not self.composite

    @property
    def returns_setof_scalar(self):
        return self.setof and not self.composite

    @property
    def returns_single(self):
        return not self.setof

    @property
    def returns_single_composite(self):
        return not self.setof and self.composite

    @property
    def returns_void(self):
        return (self.returns_scalar and self.ret_schema == "pg_catalog"
                and self.ret_name == "void")

    @property
    def table_name(self):
        """Routine.funcTableName: the composite's name, else None."""
        return self.ret_name if self.composite else None

    def sort_key(self):
        # Routine's Ord instance: fewer parameters first.
        return (len(self.params), [tuple(p) for p in self.params])

    def signature(self):
        """As AmbiguousRpc lists it: schema.name(a => type, ...)."""
        return "%s.%s(%s)" % (self.schema, self.name,
                              ", ".join("%s => %s" % (p.name, p.type) for p in self.params))


# PostgREST's db-hoisted-tx-settings default: a function's SET of one of
# these (a regular expression match on "name=value") is applied with the
# request's settings.
HOISTED_TX_SETTINGS = ["statement_timeout", "plan_filter.statement_cost_limit",
                       "default_transaction_isolation"]

ISOLATION_LEVELS = {"read committed": "READ COMMITTED",
                    "repeatable read": "REPEATABLE READ",
                    "serializable": "SERIALIZABLE"}


class SchemaCache:
    """What PostgREST's schema cache knows: the relations of the exposed
    schemas (EXPOSED_SCHEMAS), the timezones, the impersonated role's
    settings."""

    # At most this many upsert statements are kept (see insert_sql).
    MAX_STATEMENTS = 64

    def __init__(self, relations, timezones, role_settings, routines=None,
                 api_role_settings=None, api_role_iso=None):
        # relations: dict (schema, name) -> Relation
        self.relations = relations
        self.timezones = timezones
        # --db-role's ALTER ROLE settings (the remote's mode)
        self.role_settings = role_settings
        # routines: dict (schema, name) -> [Routine], fewest parameters first
        self.routines = routines or {}
        # API mode (--jwt-secret): every role's settings and isolation
        # level, as PostgREST's queryRoleSettings reads them.
        self.api_role_settings = api_role_settings or {}
        self.api_role_iso = api_role_iso or {}
        # The SQL text of the upserts built so far: (InsertSpec, as_bytea)
        # -> str.  Bound to this cache: a reload starts afresh.
        self.statements = {}

    def relation(self, schema, name):
        """The relation, or None when the schema cache does not have it."""
        return self.relations.get((schema, name))

    # public.fichas, as before there were other relations (bench/bench.py
    # and the control endpoint's reload_schema answer use these).
    @property
    def _fichas(self):
        return self.relations.get((SCHEMA, TABLE))

    @property
    def has_table(self):
        return self._fichas is not None

    @property
    def columns(self):
        r = self._fichas
        return r.columns if r is not None else None

    @property
    def pk_cols(self):
        r = self._fichas
        return r.pk_cols if r is not None else []

    def insert_sql(self, context, spec, as_bytea):
        """The SQL text of insert_statement(spec, as_bytea), built once
        (composing ~45 columns costs ~5 ms a request).  `context`: a
        connection or cursor, for quoting identifiers."""
        key = (spec, as_bytea)
        text = self.statements.get(key)
        if text is None:
            text = insert_statement(spec, as_bytea).as_string(context)
            if len(self.statements) >= self.MAX_STATEMENTS:
                self.statements.clear()     # tests that try many shapes
            self.statements[key] = text
        return text

    @classmethod
    def load(cls, conn, db_role, schemas=None, api_mode=False):
        schemas = list(schemas or EXPOSED_SCHEMAS)
        with conn.cursor() as cur:
            # The relations: relkind r v m f p, partitions left out (as in
            # tablesSqlQuery); with rows_as_sent.
            # tgtype bits: ROW 1, BEFORE 2, INSERT 4, UPDATE 16, INSTEAD 64.
            cur.execute("""
                SELECT n.nspname::text, c.relname::text, c.relkind::text,
                       NOT c.relhasrules
                       AND NOT EXISTS (SELECT FROM pg_trigger t
                                        WHERE t.tgrelid = c.oid AND t.tgenabled <> 'D'
                                          AND t.tgtype & 1 = 1 AND t.tgtype & 66 <> 0
                                          AND t.tgtype & 20 <> 0),
                       c.relkind IN ('r', 'p') OR pg_relation_is_updatable(c.oid, true) & 8 = 8,
                       c.relkind IN ('r', 'p') OR pg_relation_is_updatable(c.oid, true) & 4 = 4,
                       c.relkind IN ('r', 'p') OR pg_relation_is_updatable(c.oid, true) & 16 = 16
                  FROM pg_class c
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = ANY (%s)
                   AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
                   AND NOT c.relispartition""", (schemas,))
            rels = cur.fetchall()
            # Their columns, with the default PostgREST records (a domain's
            # default, an identity's nextval, none for a generated column).
            cur.execute("""
                SELECT n.nspname::text, c.relname::text, a.attname::text,
                       format_type(a.atttypid, a.atttypmod),
                       CASE
                         WHEN t.typbasetype <> 0 AND ad.adbin IS NULL
                           THEN pg_get_expr(t.typdefaultbin, 0)
                         WHEN a.attidentity = 'd'
                           THEN (SELECT format('nextval(%%s)',
                                               quote_literal(sn.nspname || '.' || s.relname))
                                   FROM pg_depend dep
                                   JOIN pg_class s ON s.oid = dep.objid
                                   JOIN pg_namespace sn ON sn.oid = s.relnamespace
                                  WHERE dep.refobjid = a.attrelid
                                    AND dep.refobjsubid = a.attnum
                                    AND dep.deptype = 'i' AND s.relkind = 'S'
                                  LIMIT 1)
                         WHEN a.attgenerated = 's' THEN NULL
                         ELSE pg_get_expr(ad.adbin, ad.adrelid)::text
                       END
                  FROM pg_attribute a
                  JOIN pg_class c ON c.oid = a.attrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  JOIN pg_type t ON t.oid = a.atttypid
                  LEFT JOIN pg_attrdef ad
                         ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                 WHERE n.nspname = ANY (%s)
                   AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
                   AND NOT c.relispartition
                   AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY 1, 2, a.attnum""", (schemas,))
            cols = cur.fetchall()
            # Primary keys of tables (contype 'p' on relkind r / p).
            cur.execute("""
                SELECT n.nspname::text, c.relname::text,
                       array_agg(a.attname::text ORDER BY k.ord)
                  FROM pg_constraint con
                  JOIN pg_class c ON c.oid = con.conrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                 CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                 WHERE con.contype = 'p' AND c.relkind IN ('r', 'p')
                   AND n.nspname = ANY (%s)
                 GROUP BY 1, 2""", (schemas,))
            pks = {(s, r): list(p) for s, r, p in cur.fetchall()}
            cur.execute("SELECT name FROM pg_timezone_names")
            tzs = {r[0] for r in cur.fetchall()}
            routines = load_routines(cur, schemas)
            openapi = load_openapi_catalog(cur, schemas)
            api_settings, api_iso = ({}, {})
            if api_mode:
                api_settings, api_iso = load_api_role_settings(cur)
            role_settings = []
            if db_role:
                # PostgREST applies the impersonated role's settings
                # (ALTER ROLE ... SET) itself, e.g. Supabase's statement_timeout.
                cur.execute("""
                    SELECT unnest(s.setconfig)
                      FROM pg_db_role_setting s
                      JOIN pg_roles r ON r.oid = s.setrole
                     WHERE r.rolname = %s
                       AND s.setdatabase IN (0, (SELECT oid FROM pg_database
                                                  WHERE datname = current_database()))
                     ORDER BY s.setdatabase""", (db_role,))
                for (kv,) in cur.fetchall():
                    k, _, v = kv.partition("=")
                    role_settings.append((k, v))
        conn.rollback()
        columns = collections.defaultdict(dict)
        for schema, rel, name, typ, default in cols:
            columns[(schema, rel)][name] = (typ, default)
        relations = {}
        for schema, rel, kind, rows_as_sent, ins, upd, dele in rels:
            qi = (schema, rel)
            relations[qi] = Relation(schema, rel, kind, columns.get(qi, {}),
                                     pks.get(qi, []), bool(rows_as_sent),
                                     bool(ins), bool(upd), bool(dele))
        cache = cls(relations, tzs, role_settings, routines, api_settings, api_iso)
        # What only the OpenAPI document (GET /rest/v1/) uses: comments,
        # nullability, PostgREST's type names, foreign keys (openapi.py).
        cache.openapi = openapi
        return cache


def load_routines(cur, schemas):
    """The functions of the exposed schemas, as SchemaCache.funcsSqlQuery
    describes them: parameters from proargnames / proargtypes / proargmodes
    taken position by position (input parameters only), required when
    before the first default; the return type through domains to its base;
    composite when it is a composite type or there are OUT / INOUT / TABLE
    parameters; callable unless it has several unnamed parameters, or one
    whose first parameter is not bytea, json, jsonb, text or xml."""
    cur.execute("""
        WITH RECURSIVE to_base(oid, base) AS (
            SELECT t.oid, t.oid FROM pg_type t WHERE t.typbasetype = 0
          UNION ALL
            SELECT d.oid, b.base FROM pg_type d JOIN to_base b ON d.typbasetype = b.oid
        ),
        params AS (
            SELECT p.oid,
                   json_agg(json_build_array(
                       coalesce(a.name, ''),
                       a.type::regtype::text,
                       CASE a.type
                         WHEN 'bit'::regtype THEN 'bit varying'
                         WHEN 'bit[]'::regtype THEN 'bit varying[]'
                         WHEN 'character'::regtype THEN 'character varying'
                         WHEN 'character[]'::regtype THEN 'character varying[]'
                         ELSE a.type::regtype::text END,
                       a.pos <= p.pronargs - p.pronargdefaults,
                       coalesce(a.mode = 'v', false)) ORDER BY a.pos) AS list,
                   count(*) - count(a.name) AS unnamed,
                   (array_agg(a.type ORDER BY a.pos))[1] AS first_type
              FROM pg_proc p,
                   unnest(p.proargnames, p.proargtypes, p.proargmodes)
                     WITH ORDINALITY AS a(name, type, mode, pos)
             WHERE a.type IS NOT NULL
             GROUP BY p.oid
        )
        SELECT n.nspname::text, p.proname::text, coalesce(pa.list, '[]'::json),
               rn.nspname::text, coalesce(rc.relname, rt.typname)::text,
               p.proretset,
               rt.typtype = 'c' OR coalesce(p.proargmodes::text[] && '{t,b,o}', false),
               b.oid <> b.base,
               p.provolatile::text,
               p.provariadic <> 0,
               (SELECT lower(split_part(split_part(c, '=', 2), ',', 1))
                  FROM unnest(p.proconfig) c
                 WHERE c LIKE 'default_transaction_isolation%%' LIMIT 1),
               (SELECT coalesce(json_agg(json_build_array(
                          substr(c, 1, strpos(c, '=') - 1), substr(c, strpos(c, '=') + 1))), '[]')
                  FROM unnest(p.proconfig) c WHERE c ~ ANY (%s))
          FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
          LEFT JOIN params pa ON pa.oid = p.oid
          JOIN to_base b ON b.oid = p.prorettype
          JOIN pg_type rt ON rt.oid = b.base
          JOIN pg_namespace rn ON rn.oid = rt.typnamespace
          LEFT JOIN pg_class rc ON rc.oid = rt.typrelid
         WHERE n.nspname = ANY (%s)
           AND p.prokind = 'f'
           AND rt.oid <> 'trigger'::regtype
           AND (pa.oid IS NULL OR pa.unnamed = 0
                OR (pa.unnamed = 1 AND pa.first_type IN ('bytea'::regtype, 'json'::regtype,
                                                         'jsonb'::regtype, 'text'::regtype,
                                                         'xml'::regtype)))""",
                (HOISTED_TX_SETTINGS, schemas))
    routines = collections.defaultdict(list)
    for (schema, name, params, rschema, rname, setof, composite, alias, vol, variadic,
         iso, settings) in cur.fetchall():
        routines[(schema, name)].append(Routine(
            schema, name, [RoutineParam(*p) for p in params], rschema, rname, setof,
            composite, alias, vol, variadic, iso, [tuple(kv) for kv in settings]))
    for procs in routines.values():
        procs.sort(key=Routine.sort_key)
    return dict(routines)


def load_api_role_settings(cur):
    """PostgREST's queryRoleSettings: the settings (ALTER ROLE ... SET, for
    every database) of the roles the login role is a direct member of, of
    parameters a user may set (context user, or SET granted), values
    lowercased; default_transaction_isolation apart, as the role's
    transaction isolation level."""
    cur.execute("SELECT current_setting('server_version_num')::int >= 150000")
    granted = ("OR has_parameter_privilege(current_user::regrole::oid, ps.name, 'set')"
               if cur.fetchone()[0] else "")
    cur.execute("""
        SELECT r.rolname::text,
               substr(c, 1, strpos(c, '=') - 1),
               lower(substr(c, strpos(c, '=') + 1))
          FROM pg_auth_members m
          JOIN pg_roles r ON r.oid = m.roleid
          CROSS JOIN LATERAL unnest(r.rolconfig) c
          JOIN pg_settings ps ON ps.name = substr(c, 1, strpos(c, '=') - 1)
         WHERE m.member = current_user::regrole::oid
           AND (ps.context = 'user' %s)""" % granted)
    settings, iso = collections.defaultdict(list), {}
    for role, key, value in cur.fetchall():
        if key == "default_transaction_isolation":
            iso[role] = value
        else:
            settings[role].append((key, value))
    return dict(settings), iso
