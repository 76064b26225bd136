"""PostgREST 12.2's dispatch: from a request's path, method and profile
headers to the write path, a read, a call or an OPTIONS answer; one
RequestContext in, one Reply out."""

from .api_mode import ApiMode
from .auth import Authentication
from .common import Reply, StandInError, error_reply, not_implemented
from .mutate_path import MutatePath
from .openapi import OpenAPI
from .query import parse_read_query
from .request import respond_info
from .write_path import WritePath


class PostgREST(Authentication, WritePath, MutatePath, ApiMode, OpenAPI):
    """The emulation of PostgREST 12.2: this dispatch, with its
    authentication, write path (POST), mutate path (PATCH, DELETE), API
    mode (reads, calls) and OpenAPI document mixed in."""

    def __init__(self, app):
        self.app = app

    # -- entry point -------------------------------------------------------

    def handle(self, ctx):
        try:
            reply = self._handle(ctx)
        except StandInError as e:
            reply = e.reply
        # App.addRetryHint: every 503 from PostgREST carries Retry-After with
        # the reconnection delay, which is always 0 in 12.2.
        if reply.status == 503 and reply.header("Retry-After") is None:
            reply.headers.append(("Retry-After", "0"))
        return reply

    def _handle(self, ctx):
        self._authenticate(ctx)
        cache = self.app.get_schema_cache()
        if cache is None:
            return error_reply(503, "PGRST002",
                               "Could not query the database for the schema cache. Retrying.")
        segs = ctx.segments
        method = ctx.method
        # getResource
        if segs == []:
            kind, name = "schema", None
        elif len(segs) == 1:
            kind, name = "relation", segs[0]
        elif len(segs) == 2 and segs[0] == "rpc":
            kind, name = "routine", segs[1]
        else:
            return Reply(404, {})
        # getSchema: Content-Profile for writes, Accept-Profile for reads.
        schemas = self.app.schemas
        prof_hdr = "content-profile" if method in ("POST", "PUT", "PATCH", "DELETE") \
            else "accept-profile"
        profile = ctx.header(prof_hdr)
        if profile is not None and profile not in schemas:
            return error_reply(406, "PGRST106",
                               "The schema must be one of the following: "
                               + ", ".join(schemas))
        schema = profile or schemas[0]
        ctx.schema = schema
        # With more than one exposed schema the schema counts as negotiated
        # (and the answer names it in Content-Profile).
        ctx.negotiated = profile is not None or len(schemas) != 1
        # getAction
        if kind == "routine":
            if method not in ("GET", "HEAD", "POST", "OPTIONS"):
                return error_reply(405, "PGRST101",
                                   "Cannot use the %s method on RPC" % method)
            return self.rpc(ctx, cache, schema, name)
        if kind == "schema":
            if method == "OPTIONS":
                parse_read_query(ctx.params, False)
                return respond_info("OPTIONS,GET,HEAD")
            if method in ("GET", "HEAD"):
                return self.openapi(ctx, cache, schema)
            return error_reply(405, "PGRST117", "Unsupported HTTP method: " + method)
        table = name
        # The relation of the schema cache, or None: PostgREST looks it up
        # by its qualified name, exactly as spelled in the path.
        rel = cache.relation(schema, table)
        ctx.relation = (schema, table)
        if method == "POST":
            return self.post(ctx, cache, rel)
        if method in ("GET", "HEAD"):
            return self.get(ctx, cache, rel)
        if method == "OPTIONS":
            parse_read_query(ctx.params, False)
            if rel is None:
                return Reply(404, {})
            allow = ["OPTIONS,GET,HEAD"]
            if rel.insertable:
                allow.append("POST")
            if rel.insertable and rel.updatable and rel.pk_cols:
                allow.append("PUT")
            if rel.updatable:
                allow.append("PATCH")
            if rel.deletable:
                allow.append("DELETE")
            return respond_info(",".join(allow))
        if method == "PATCH":
            return self.patch(ctx, cache, rel)
        if method == "DELETE":
            return self.delete(ctx, cache, rel)
        if method == "PUT":
            return not_implemented(method + " on tables")
        return error_reply(405, "PGRST117", "Unsupported HTTP method: " + method)
