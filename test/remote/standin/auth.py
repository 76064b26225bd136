"""Who a request is (PostgREST.Auth): the bearer token, checked as the
remote's gateway keys (anon, service_role) or, in API mode
(--jwt-secret), as a JWT verified as PostgREST 12.2 with jose does;
its role and claims."""

import base64
import decimal
import hashlib
import hmac
import json
import re
import time

from .common import StandInError, error_reply, jdump, reject_json_constant


# ---------------------------------------------------------------------------
# JWTs, as PostgREST 12.2 checks them (PostgREST.Auth with the jose library)
# ---------------------------------------------------------------------------

# jose's default validation settings: the algorithms a signature may use.
# "none" is not among them: a token that uses it has no signature to check.
JWT_ALGS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
JWT_OTHER_ALGS = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
                  "PS256", "PS384", "PS512", "EdDSA", "ES256K"}
# PostgREST sets jose's allowed clock skew to 30 seconds.
JWT_SKEW_S = 30


class JwtError(Exception):
    """A token PostgREST refuses: 401 PGRST301 with this message."""


def _b64url(part):
    """Unpadded base64url, as JOSE's compact serialisation uses."""
    if "=" in part or re.search(r"[^A-Za-z0-9_-]", part) or len(part) % 4 == 1:
        raise ValueError("invalid base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _numeric_date(claims, key):
    v = claims.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, decimal.Decimal)):
        raise JwtError('JWTClaimsSetDecodeError "Error in $[\'%s\']: expected '
                       'NumericDate, encountered %s"' % (key, type(v).__name__))
    return float(v)


def verify_jwt(token, secret, now=None):
    """The claims of `token` (a dict), verified as PostgREST 12.2 verifies
    them (Auth.parseToken: jose's verifyClaimsAt with a 30 s skew, the
    secret as one symmetric key), or JwtError with PostgREST's message.
    The order is jose's: decode the compact form, decode the claims set,
    check the signature, then exp, iat, nbf.  Messages for malformed
    headers and claims sets are approximations of jose's."""
    if now is None:
        now = time.time()
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("JWSError (CompactDecodeError Invalid number of parts: "
                       "Expected 3 parts; got %d)" % len(parts))
    try:
        header = json.loads(_b64url(parts[0]))
        payload = _b64url(parts[1])
        signature = _b64url(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise JwtError("JWSError (CompactDecodeError Base64Error)")
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise JwtError('JWSError (JSONDecodeError "Error in $: key \\"alg\\" not found")')
    alg = header["alg"]
    if alg not in JWT_ALGS and alg not in JWT_OTHER_ALGS and alg != "none":
        raise JwtError('JWSError (JSONDecodeError "Error in $.alg: unknown algorithm")')
    try:
        claims = json.loads(payload, parse_float=decimal.Decimal,
                            parse_constant=reject_json_constant)
    except (ValueError, UnicodeDecodeError):
        raise JwtError('JWTClaimsSetDecodeError "Error in $: not valid JSON"')
    if not isinstance(claims, dict):
        raise JwtError('JWTClaimsSetDecodeError "Error in $: expected Object"')
    for key in ("iss", "sub", "jti"):
        if key in claims and claims[key] is not None and not isinstance(claims[key], str):
            raise JwtError('JWTClaimsSetDecodeError "Error in $[\'%s\']: expected '
                           'StringOrURI"' % key)
    aud = claims.get("aud")
    if aud is not None and not isinstance(aud, str) and not (
            isinstance(aud, list) and all(isinstance(a, str) for a in aud)):
        raise JwtError('JWTClaimsSetDecodeError "Error in $[\'aud\']: expected Audience"')
    exp = _numeric_date(claims, "exp")
    iat = _numeric_date(claims, "iat")
    nbf = _numeric_date(claims, "nbf")
    if alg == "none":
        # Not an allowed algorithm: jose checks no signature, and with the
        # AllValidated policy no signature at all is an error.
        raise JwtError("JWSError JWSNoSignatures")
    if alg not in JWT_ALGS:
        # An asymmetric algorithm with a symmetric key never verifies.
        raise JwtError("JWSError JWSInvalidSignature")
    mac = hmac.new(secret, (parts[0] + "." + parts[1]).encode("ascii"), JWT_ALGS[alg])
    if not hmac.compare_digest(mac.digest(), signature):
        raise JwtError("JWSError JWSInvalidSignature")
    if exp is not None and not now < exp + JWT_SKEW_S:
        raise JwtError("JWT expired")          # PostgREST's own wording
    if iat is not None and iat > now + JWT_SKEW_S:
        raise JwtError("JWTIssuedAtFuture")
    if nbf is not None and not now >= nbf - JWT_SKEW_S:
        raise JwtError("JWTNotYetValid")
    return claims


def sign_jwt(claims, secret, alg="HS256"):
    """An HS256/384/512 token (for tests and tools/: the stand-in itself
    only verifies)."""
    def enc(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")
    head = enc(jdump({"alg": alg, "typ": "JWT"}))
    body = enc(jdump(claims))
    sig = hmac.new(secret, (head + "." + body).encode("ascii"), JWT_ALGS[alg]).digest()
    return head + "." + body + "." + enc(sig)


def jwt_error_reply(msg):
    return error_reply(401, "PGRST301", msg, headers=[(
        "WWW-Authenticate",
        'Bearer error="invalid_token", error_description=%s' % json.dumps(msg))])


def _jwt_claims(token):
    """The payload of a JWT, unverified, or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        pad = "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + pad))
        return claims if isinstance(claims, dict) else None
    except (ValueError, TypeError):
        return None


# ---------------------------------------------------------------------------
# Auth.middleware (a part of PostgREST)
# ---------------------------------------------------------------------------

class Authentication:
    """PostgREST's authentication of a request.  Uses self.app.opts."""

    def _authenticate(self, ctx):
        """Auth.middleware: the bearer token's claims and role, or a 401.
        With --jwt-secret (API mode) every token is a JWT checked with the
        secret, and its role claim is the request's role (--anon-role
        without a token or a role claim).  Without it (the remote's mode),
        the gateway's keys are the only tokens: the anon key is anon, the
        service role key service_role, anything else a badly signed JWT."""
        auth = ctx.header("authorization")
        token = ""
        if auth:
            # Wai.extractBearerAuth: "bearer" in any case, then the rest.
            m = re.match(r"^(\S*)\s*(.*)$", auth, re.S)
            if m and m.group(1).lower() == "bearer":
                token = m.group(2)
        opts = self.app.opts
        if opts.jwt_secret is not None:
            self._authenticate_jwt(ctx, token)
            return
        if token == "":
            ctx.role, ctx.authed, ctx.claims = "anon", False, {"role": "anon"}
            return
        if token == opts.api_key:
            role = "anon"
        elif opts.service_role_key and token == opts.service_role_key:
            role = "service_role"
        else:
            # Any other token is a JWT the project's secret did not sign.
            parts = token.split(".")
            if len(parts) != 3:
                msg = ("JWSError (CompactDecodeError Invalid number of parts: "
                       "Expected 3 parts; got %d)" % len(parts))
            else:
                msg = "JWSError JWSInvalidSignature"
            raise StandInError(jwt_error_reply(msg))
        claims = _jwt_claims(token) or {}
        claims["role"] = role
        ctx.role, ctx.authed, ctx.claims = role, role != "anon", claims

    def _authenticate_jwt(self, ctx, token):
        opts = self.app.opts
        if token == "":
            claims = {}
        else:
            try:
                claims = verify_jwt(token, opts.jwt_secret.encode("utf-8"))
            except JwtError as e:
                raise StandInError(jwt_error_reply(str(e)))
        role = claims.get("role")
        if role is not None:
            role = role if isinstance(role, str) else jdump(role).decode("utf-8")
        elif opts.anon_role:
            role = opts.anon_role
        else:
            raise StandInError(error_reply(401, "PGRST302", "Anonymous access is disabled",
                                           headers=[("WWW-Authenticate", "Bearer")]))
        claims = dict(claims)
        claims["role"] = role
        ctx.role, ctx.claims = role, claims
        # App.postgrestResponse: authenticated = the role is not the anon role
        ctx.authed = role != opts.anon_role
