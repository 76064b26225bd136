"""Pieces every role uses: the constants of the emulated PostgREST and
Supabase project, JSON as aeson writes and reads it, a Reply and
PostgREST's error bodies, media types."""

import decimal
import json
import re


POSTGREST_VERSION = "12.2.12"
SCHEMA = "public"
# The table gs_export writes to unless a job names another (target_table).
TABLE = "fichas"
# Supabase exposes these schemas through PostgREST (db-schemas); the first is
# the default.  Every table and view of theirs is in the schema cache.
EXPOSED_SCHEMAS = ["public", "graphql_public"]
# Supabase's db-extra-search-path.
EXTRA_SEARCH_PATH = ["public", "extensions"]

JSON_CT = "application/json; charset=utf-8"


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def jdump(obj):
    """Compact JSON, UTF-8, like aeson's encode."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"),
                      default=json_default).encode("utf-8")


def json_default(o):
    if isinstance(o, decimal.Decimal):
        return float(o) if o != o.to_integral_value() else int(o)
    raise TypeError(repr(o))


def pgrst_body(code, message, details=None, hint=None):
    """A PostgREST error body; aeson orders the keys alphabetically."""
    return {"code": code, "details": details, "hint": hint, "message": message}


class Reply:
    """One HTTP answer, or an instruction to drop the connection."""

    def __init__(self, status, body=b"", headers=None, reason=None):
        self.status = status
        if isinstance(body, (dict, list)):
            body = jdump(body)
            headers = [("Content-Type", JSON_CT)] + list(headers or [])
        elif isinstance(body, str):
            body = body.encode("utf-8")
        self.body = body
        self.headers = list(headers or [])
        self.reason = reason
        self.drop = False          # close without answering
        self.drop_reset = None     # a drop's close: RST (True), FIN (False),
                                   # or as the drop_with_reset fault says
        self.error_code = None     # the "code" of an error body, for the log

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def set_header(self, name, value):
        self.headers = [(k, v) for k, v in self.headers
                        if k.lower() != name.lower()]
        self.headers.append((name, value))


def error_reply(status, code, message, details=None, hint=None, headers=None):
    r = Reply(status, pgrst_body(code, message, details, hint), headers)
    r.error_code = code
    return r


def not_implemented(what):
    """Loud refusal of a PostgREST feature this stand-in does not emulate."""
    return error_reply(501, "STANDIN501",
                       "stand_in does not implement " + what,
                       None, "Extend test/remote/stand_in.py if a test needs it.")


class StandInError(Exception):
    """Raised inside request processing to answer with `reply`."""

    def __init__(self, reply):
        super().__init__(reply.status)
        self.reply = reply


# ---------------------------------------------------------------------------
# JSON and media types, as PostgREST parses them
# ---------------------------------------------------------------------------

def reject_json_constant(name):
    # aeson refuses NaN / Infinity / -Infinity, Python's json accepts them.
    raise ValueError("invalid JSON constant " + name)


def parse_json_strict(raw):
    """Parse like aeson's `decode`: UTF-8, RFC 8259, no NaN/Infinity.
    Numbers are kept exact (int / Decimal).  Raises ValueError."""
    text = raw.decode("utf-8")        # UnicodeDecodeError is a ValueError
    return json.loads(text, parse_constant=reject_json_constant,
                      parse_float=decimal.Decimal)


def decode_media_type(value):
    """PostgREST.MediaType.decodeMediaType, reduced to what matters here:
    returns (kind, mime) where kind is one of json, csv, urlencoded, plain,
    xml, octet, geojson, openapi, any, object, array_strip, plan, other."""
    v = value.strip()
    m = re.match(r"^([A-Za-z0-9.*]+)/([A-Za-z0-9.*+\-]+)(.*)$", v)
    if not m:
        return ("other", value)
    main, sub, rest = m.group(1).lower(), m.group(2).lower(), m.group(3)
    params = {}
    for p in rest.split(";"):
        if "=" in p:
            k, _, pv = p.partition("=")
            params[k.strip().lower()] = pv.strip()
    table = {
        ("application", "json"): ("json", "application/json"),
        ("application", "geo+json"): ("geojson", "application/geo+json"),
        ("text", "csv"): ("csv", "text/csv"),
        ("text", "plain"): ("plain", "text/plain"),
        ("text", "xml"): ("xml", "text/xml"),
        ("application", "openapi+json"): ("openapi", "application/openapi+json"),
        ("application", "x-www-form-urlencoded"):
            ("urlencoded", "application/x-www-form-urlencoded"),
        ("application", "octet-stream"): ("octet", "application/octet-stream"),
        ("*", "*"): ("any", "*/*"),
    }
    if (main, sub) in table:
        return table[(main, sub)]
    if main == "application" and sub in ("vnd.pgrst.plan", "vnd.pgrst.plan+text",
                                         "vnd.pgrst.plan+json"):
        return ("plan", "application/" + sub)
    if main == "application" and sub in ("vnd.pgrst.object+json", "vnd.pgrst.object"):
        return ("object", "application/vnd.pgrst.object+json")
    if main == "application" and sub in ("vnd.pgrst.array+json", "vnd.pgrst.array"):
        if params.get("nulls") == "stripped":
            return ("array_strip", "application/vnd.pgrst.array+json;nulls=stripped")
        return ("json", "application/json")
    return ("other", value)


def parse_accept(value):
    """Wai's parseHttpAccept, simplified: split, order by q (stable)."""
    items = []
    for i, part in enumerate(value.split(",")):
        part = part.strip()
        if not part:
            continue
        q = 1.0
        pieces = part.split(";")
        keep = [pieces[0].strip()]
        for p in pieces[1:]:
            k, _, v = p.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
            else:
                keep.append(p.strip())
        items.append((-q, i, ";".join(keep)))
    items.sort()
    return [decode_media_type(x[2]) for x in items if -x[0] > 0]


class Rollback(Exception):
    """Raised inside a transaction: roll it back and answer `reply`
    (PostgREST's SQL.condemn, e.g. for PGRST116)."""

    def __init__(self, reply):
        super().__init__(reply.status)
        self.reply = reply
