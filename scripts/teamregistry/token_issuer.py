"""A small Docker registry token server for the e2e "team registry" (scripts/team-registry).

It implements the issuing side of distribution's token authentication
(https://distribution.github.io/distribution/spec/auth/token/ and .../auth/oauth/):

- GET  /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]  with HTTP Basic credentials
  (what docker and helm send), and
- POST /token  with grant_type=password (what containerd sends when it has a username and password),

and answers with an RS256 JWT whose header carries the signing certificate (`x5c`), so the registry
verifies it against its `auth.token.rootcertbundle`. Claims: iss, sub, aud (the service), iat, nbf,
exp, jti and `access` (the granted subset of what was asked, per the ACL file: per user, per first
path component such as `staging` or `production`). Asking for a scope it does not understand (another
resource type, an unknown action, a malformed repository name, another service) is refused with 400,
not silently narrowed: such a request is a client bug worth seeing.

Why our own: cesanta/docker_auth and the other Go token servers are not served by the Go module proxy
this project can reach (checked in issue 11). PyJWT and cryptography do the JWT and key work; this
module only parses scopes and applies the ACL. It runs with Debian's python3 (python3-jwt,
python3-cryptography), like the rest of the set-up scripts, so it needs no virtualenv.

Never logs a password, an Authorization header or a token; one access line per request (user, asked,
granted, status).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import ssl
import sys
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACTIONS = ("pull", "push", "delete")
# distribution's reference grammar for a repository path (reference/regexp.go), lower case only.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")


class ScopeError(ValueError):
    """A scope the issuer does not understand; answered with 400."""


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]

    def claim(self) -> dict:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def parse_scope(text: str) -> Scope:
    """`repository:staging/app:pull,push` → Scope. Only repository scopes are known here."""
    kind, _, rest = text.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name or not actions:
        raise ScopeError(f"malformed scope {text!r} (want repository:NAME:ACTIONS)")
    if kind != "repository":
        raise ScopeError(f"unsupported scope type {kind!r} in {text!r} (only 'repository')")
    if not REPOSITORY.match(name) or len(name) > 255:
        raise ScopeError(f"invalid repository name {name!r}")
    wanted = []
    for action in actions.split(","):
        expanded = ACTIONS if action == "*" else (action,)
        for a in expanded:
            if a not in ACTIONS:
                raise ScopeError(f"unknown action {action!r} in {text!r} (one of {', '.join(ACTIONS)}, *)")
            if a not in wanted:
                wanted.append(a)
    return Scope(kind, name, tuple(wanted))


def grant(acl: dict[str, list[dict]], user: str, scope: Scope) -> Scope:
    """The part of `scope` the ACL gives `user`: rules match the repository's first path component."""
    namespace = scope.name.split("/", 1)[0]
    allowed: set[str] = set()
    for rule in acl.get(user, []):
        if rule["namespace"] in (namespace, "*"):
            allowed.update(ACTIONS if "*" in rule["actions"] else rule["actions"])
    return Scope(scope.type, scope.name, tuple(a for a in scope.actions if a in allowed))


# --- passwords -------------------------------------------------------------------------------------
# scrypt from the standard library: a memory-hard KDF, so a stolen users file does not give passwords away.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(stored: str, password: str) -> bool:
    try:
        kind, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32, **_SCRYPT)
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


# --- issuing ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Issuer:
    issuer: str
    service: str
    ttl: int
    key: object  # a cryptography private key
    x5c: str  # base64 DER of the signing certificate
    users: dict[str, str]  # user → password hash
    acl: dict[str, list[dict]]

    def authenticate(self, user: str, password: str) -> bool:
        stored = self.users.get(user)
        # Check a dummy hash for unknown users too, so timing does not tell which users exist.
        ok = check_password(stored or "scrypt$00$00", password)
        return stored is not None and ok

    def token(self, user: str, scopes: list[Scope]) -> tuple[str, list[Scope]]:
        granted = [g for g in (grant(self.acl, user, s) for s in scopes) if g.actions]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,
            "iat": now,
            # A little slack for clocks that disagree (the registry may run elsewhere).
            "nbf": now - 30,
            "exp": now + self.ttl,
            "jti": secrets.token_hex(16),
            "access": [g.claim() for g in granted],
        }
        # Debian's python3-jwt, imported here so the scope and ACL logic loads without it (unit tests).
        import jwt

        signed = jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": [self.x5c]})
        return signed, granted


def load_issuer(args: argparse.Namespace) -> Issuer:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(args.signing_key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(args.signing_cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    der = cert.public_bytes(serialization.Encoding.DER)
    with open(args.users) as f:
        users = json.load(f)
    with open(args.acl) as f:
        acl = json.load(f)["users"]
    return Issuer(args.issuer, args.service, args.ttl, key, base64.b64encode(der).decode(), users, acl)


def _scopes(values: list[str]) -> list[Scope]:
    # Clients may send several scopes in one parameter, separated by spaces (the OAuth2 form).
    return [parse_scope(s) for v in values for s in v.split()]


class Handler(BaseHTTPRequestHandler):
    server_version = "deployer-token-issuer"
    issuer: Issuer  # set on the class by main()

    def log_message(self, format: str, *args: object) -> None:
        # The default logs the request line, whose query string is harmless; credentials never reach it.
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

    def _reply(self, status: int, body: dict, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        extra = {"WWW-Authenticate": 'Basic realm="deployer-team-registry"'} if status == 401 else None
        self._reply(status, {"errors": [{"code": code, "message": message}]}, extra)

    def _basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep else None

    def _issue(self, user: str, password: str, service: str, scope_values: list[str], oauth: bool) -> None:
        if service != self.issuer.service:
            self._error(400, "UNSUPPORTED", f"unknown service {service!r}")
            self._access(user, scope_values, "refused: service")
            return
        try:
            scopes = _scopes(scope_values)
        except ScopeError as e:
            self._error(400, "UNSUPPORTED", str(e))
            self._access(user, scope_values, f"refused: {e}")
            return
        if not self.issuer.authenticate(user, password):
            self._error(401, "UNAUTHORIZED", "authentication required: wrong user name or password")
            self._access(user, scope_values, "refused: credentials")
            return
        token, granted = self.issuer.token(user, scopes)
        issued = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        body = {"access_token": token, "expires_in": self.issuer.ttl, "issued_at": issued}
        if oauth:
            body["scope"] = " ".join(f"{g.type}:{g.name}:{','.join(g.actions)}" for g in granted)
        else:
            body["token"] = token
        self._reply(200, body)
        given = " ".join(f"{g.name}:{','.join(g.actions)}" for g in granted)
        self._access(user, scope_values, f"granted {given or 'nothing'}")

    def _access(self, user: str, asked: list[str], outcome: str) -> None:
        sys.stderr.write(f"token user={user or '-'} asked={' '.join(asked) or '-'} {outcome}\n")

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            self._error(404, "NOT_FOUND", "the token endpoint is /token")
            return
        query = urllib.parse.parse_qs(url.query)
        creds = self._basic()
        if creds is None:
            # Anonymous access is not offered: every repository here needs an identity.
            self._error(401, "UNAUTHORIZED", "authentication required (HTTP Basic)")
            return
        self._issue(creds[0], creds[1], query.get("service", [""])[0], query.get("scope", []), oauth=False)

    def do_POST(self) -> None:
        if urllib.parse.urlsplit(self.path).path != "/token":
            self._error(404, "NOT_FOUND", "the token endpoint is /token")
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode(errors="replace"))
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != "password":
            # No refresh tokens are issued, so the password grant is the only one that can work;
            # clients fall back to GET on 400/404 as the OAuth2 spec page describes.
            self._error(400, "UNSUPPORTED", f"unsupported grant_type {grant_type!r} (use password)")
            return
        self._issue(
            form.get("username", [""])[0],
            form.get("password", [""])[0],
            form.get("service", [""])[0],
            form.get("scope", []),
            oauth=True,
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hash-password", help="read a password on stdin, print its scrypt hash")
    h.set_defaults(cmd="hash-password")
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True, help="host:port")
    s.add_argument("--tls-cert", required=True)
    s.add_argument("--tls-key", required=True)
    s.add_argument("--signing-key", required=True)
    s.add_argument("--signing-cert", required=True)
    s.add_argument("--users", required=True, help="JSON: user → scrypt hash")
    s.add_argument("--acl", required=True, help="JSON: {users: {user: [{namespace, actions}]}}")
    s.add_argument("--issuer", required=True)
    s.add_argument("--service", required=True)
    s.add_argument("--ttl", type=int, default=300)
    args = p.parse_args(argv)
    if args.cmd == "hash-password":
        print(hash_password(sys.stdin.read().rstrip("\n")))
        return 0
    Handler.issuer = load_issuer(args)
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    sys.stderr.write(f"token issuer on https://{args.listen}/token (pid {os.getpid()})\n")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
