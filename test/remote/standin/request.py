"""One request as the PostgREST emulation sees it: its context (path,
headers, body, role, the rows noted for the log), its Prefer header, its
payload (ApiRequest.getPayload), and the pieces of an answer shared by
writes, reads and calls."""

import csv
import decimal
import io
import json
import re

from .common import Reply, StandInError, error_reply, jdump, parse_json_strict


class RequestContext:
    """What the handler hands to the PostgREST emulation."""

    def __init__(self, method, raw_path, segments, params, headers, body):
        self.method = method
        self.raw_path = raw_path      # path as PostgREST sees it (prefix stripped)
        self.segments = segments      # decoded path segments after /rest/v1
        self.params = params          # list of (name, value), apikey removed
        self.headers = headers        # list of (lowercased name, value)
        self.body = body
        self.relation = None          # (schema, name) of the target table
        self.schema = None            # the request's schema (iSchema)
        self.negotiated = True        # iNegotiatedByProfile
        self.log_table = None         # the table of the path, for the log
        self.role = "anon"
        self.authed = False
        self.claims = {}
        # Filled for the request log: the body's rows and their "id"s.
        # They are noted as cheaply as the request allows (note_rows): from
        # a body PostgREST parses anyway, from the upsert's RETURNING, or
        # else, once the answer is known, by parsing the body (body_rows).
        self.n_rows = None
        self.ids = None
        self.rows_noted = False

    def body_rows(self):
        """Note the body's rows and ids by parsing it, unless already
        noted.  Only for requests the fast ways do not cover (refused,
        failed or dropped ones, rare shapes); not counted in duration_ms
        unless the request succeeded."""
        if self.rows_noted:
            return
        self.rows_noted = True
        if self.method in ("PATCH", "DELETE"):
            # Their log rows are those the statement touched
            # (mutate_path.py), never the body's: none when it did not run.
            return
        try:
            parsed = parse_json_strict(self.body)
        except (ValueError, RecursionError):
            return
        note_rows(self, parsed)

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k == name]

    def param(self, name):
        for k, v in self.params:
            if k == name:
                return v
        return None


class Preferences:
    """PostgREST.ApiRequest.Preferences.fromHeaders."""

    ACCEPTED = {
        "resolution=merge-duplicates", "resolution=ignore-duplicates",
        "return=representation", "return=minimal", "return=headers-only",
        "params=single-object", "count=exact", "count=planned",
        "count=estimated", "tx=commit", "tx=rollback", "missing=default",
        "missing=null", "handling=strict", "handling=lenient",
    }

    def __init__(self, header_values, timezones):
        prefs = []
        for hv in header_values:
            prefs.extend(p.strip() for p in hv.split(","))
        self.raw = prefs

        def first(options):
            for p in prefs:
                if p in options:
                    return p.split("=", 1)[1]
            return None

        self.resolution = first({"resolution=merge-duplicates",
                                 "resolution=ignore-duplicates"})
        self.representation = first({"return=representation", "return=minimal",
                                     "return=headers-only"})
        self.count = first({"count=exact", "count=planned", "count=estimated"})
        # db-tx-end override is off on Supabase: tx=... is accepted, ignored.
        self.missing = first({"missing=default", "missing=null"})
        self.handling = first({"handling=strict", "handling=lenient"})
        self.parameters = first({"params=single-object"})
        tz = None
        for p in prefs:
            if p.startswith("timezone="):
                tz = p[len("timezone="):]
                break
        self.timezone = tz if tz is not None and tz in timezones else None
        max_aff = None
        for p in prefs:
            if p.startswith("max-affected="):
                max_aff = p
                break
        self.invalid = [p for p in prefs
                        if p not in self.ACCEPTED
                        and not (p.startswith("timezone=") and self.timezone is not None)
                        and not p.startswith("max-affected=")]
        self.max_affected = max_aff
        m = re.match(r"^max-affected=(\d+)$", max_aff or "")
        self.max_affected_n = int(m.group(1)) if m else None

    def applied(self, parameters=False, count=False, handling=False, timezone=False,
                max_affected=False):
        """prefAppliedHeader for reads and calls: the preferences given
        among those named, in PostgREST's order."""
        vals = []
        if parameters and self.parameters:
            vals.append("params=" + self.parameters)
        if count and self.count:
            vals.append("count=" + self.count)
        if handling and self.handling:
            vals.append("handling=" + self.handling)
        if timezone and self.timezone:
            vals.append("timezone=" + self.timezone)
        if max_affected and self.handling == "strict" and self.max_affected_n is not None:
            vals.append("max-affected=%d" % self.max_affected_n)
        return ", ".join(vals) if vals else None

    def applied_for_create(self, resolution_applies):
        vals = []
        if self.resolution and resolution_applies:
            vals.append("resolution=" + self.resolution)
        if self.missing:
            vals.append("missing=" + self.missing)
        if self.representation:
            vals.append("return=" + self.representation)
        if self.count:
            vals.append("count=" + self.count)
        if self.handling:
            vals.append("handling=" + self.handling)
        if self.timezone:
            vals.append("timezone=" + self.timezone)
        return ", ".join(vals) if vals else None


def payload_attributes(parsed, raw):
    """ApiRequest.payloadAttributes: the key set, and the body to send."""
    if isinstance(parsed, list):
        if not parsed:
            return set(), b"[]"
        first = parsed[0]
        if not isinstance(first, dict):
            raise StandInError(error_reply(400, "PGRST102", "All object keys must match"))
        canonical = set(first)
        for o in parsed:
            if not isinstance(o, dict) or set(o) != canonical:
                raise StandInError(error_reply(400, "PGRST102",
                                               "All object keys must match"))
        return canonical, raw
    if isinstance(parsed, dict):
        return set(parsed), raw
    # Any other JSON value is truncated to an empty array.
    return set(), b"[]"

def csv_payload(body):
    """text/csv bodies: a header line, then rows; "NULL" is null.
    (cassava's exact parse-error messages are not reproduced.)"""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise StandInError(error_reply(400, "PGRST102", "parse error: invalid UTF-8"))
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise StandInError(error_reply(
            400, "PGRST102", "parse error (not enough input) at \"\""))
    header = rows[0]
    out = []
    for i, r in enumerate(rows[1:], start=2):
        if r == []:
            continue
        if len(r) != len(header):
            raise StandInError(error_reply(
                400, "PGRST102",
                "parse error: line %d has %d fields, the header %d"
                % (i, len(r), len(header))))
        out.append({h: (None if v == "NULL" else v) for h, v in zip(header, r)})
    return set(header), jdump(out)


def respond_info(allow):
    """Response.respondInfo: the answer to OPTIONS without CORS preflight."""
    return Reply(200, b"", [("Access-Control-Allow-Origin", "*"), ("Allow", allow)])


def invalid_prefs_reply(prefs):
    return error_reply(400, "PGRST122", "Invalid preferences given with handling=strict",
                       "Invalid preferences: " + ", ".join(prefs.invalid))


def singular_error(n):
    return error_reply(406, "PGRST116",
                       "JSON object requested, multiple (or no) rows returned",
                       "The result contains %d rows" % n)


def note_rows(ctx, parsed):
    """Rows and ids of a body, for the request log and statistics only."""
    ctx.rows_noted = True
    if isinstance(parsed, list):
        ctx.n_rows = len(parsed)
        ctx.ids = [_log_id(o.get("id")) for o in parsed
                   if isinstance(o, dict) and "id" in o]
    elif isinstance(parsed, dict):
        ctx.n_rows = 1
        ctx.ids = [_log_id(parsed["id"])] if "id" in parsed else []
    else:
        ctx.n_rows = 0
        ctx.ids = []


def _log_id(v):
    if isinstance(v, decimal.Decimal):
        return str(v)
    return v


def override_status_headers(reply, guc_status, guc_headers):
    """Response.overrideStatusHeaders: response.status / response.headers
    GUCs set by the database (e.g. by a trigger) override the answer."""
    if guc_status is not None:
        m = re.match(r"^\d+", guc_status)
        if not m:
            return error_reply(500, "PGRST112",
                               "response.status guc must be a valid status code")
        reply.status = int(m.group(0))
    if guc_headers is not None:
        try:
            hs = json.loads(guc_headers)
            if not isinstance(hs, list):
                raise ValueError
            pairs = []
            for h in hs:
                if not isinstance(h, dict) or len(h) != 1:
                    raise ValueError
                (k, v), = h.items()
                if not isinstance(v, str):
                    raise ValueError
                pairs.append((k, v))
        except ValueError:
            return error_reply(500, "PGRST111",
                               "response.headers guc must be a JSON array composed "
                               "of objects with a single key and a string value")
        for k, v in pairs:
            if reply.header(k) is None:
                reply.headers.append((k, v))
    return reply
