"""The Entra ID simulator's identity platform: app registrations, the token endpoint, token checks.

``POST /{tenant}/oauth2/v2.0/token`` with client credentials (idp-apis §2.1) hands out
bearer tokens that expire after the configured lifetime; Graph refuses a missing, unknown
or expired token with 401 ``InvalidAuthenticationToken`` and a missing application
permission with 403 ``Authorization_RequestDenied``. ⚠ The AADSTS codes and messages are
general knowledge (the reference checked only the token's shape): their form is what
matters, an ``error`` and an ``error_description`` whose lines end in ``\\r\\n``.
"""

from __future__ import annotations

import datetime
import json
import secrets
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from werkzeug.wrappers import Request, Response

from scimsync.sim.entra_query import GraphError

# §2.1: what a sync app holds, admin-consented. Directory.Read.All would do for both.
READ_ROLES = frozenset({"User.Read.All", "GroupMember.Read.All"})
USERS_READERS = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
GROUPS_READERS = frozenset(
    {
        "GroupMember.Read.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
GRAPH_RESOURCE = "https://graph.microsoft.com"
AUTH_JSON = "application/json; charset=utf-8"


@dataclass
class App:
    """An app registration: its secret and the application permissions consented to it."""

    client_id: str
    secret: str
    roles: frozenset[str]
    secret_expired: bool = False


@dataclass
class IssuedToken:
    """An access token: who holds it, what it allows, and until when (simulator clock)."""

    client_id: str
    roles: frozenset[str]
    expires_at: float


@dataclass
class Identity:
    """Apps and the tokens issued to them, for one tenant."""

    tenant_id: str
    domain: str
    lifetime: float
    clock: Callable[[], float]
    apps: dict[str, App] = field(default_factory=dict)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)

    def expire_all(self) -> None:
        """Make every token issued so far expired, as if its lifetime had passed."""
        now = self.clock()
        for token in self.tokens.values():
            token.expires_at = min(token.expires_at, now)

    def caller(self, request: Request) -> IssuedToken:
        """Return the valid token of a Graph request; 401 in Graph's envelope otherwise."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthenticated("Access token is empty.")
        token = self.tokens.get(value.strip())
        if token is None:
            raise _unauthenticated("IDX14100: JWT is not well formed, there are no dots (.).")
        if self.clock() >= token.expires_at:
            raise _unauthenticated("Lifetime validation failed, the token is expired.")
        return token

    def token_endpoint(self, request: Request, tenant: str) -> Response:
        """Serve ``POST /{tenant}/oauth2/v2.0/token`` (client credentials, §2.1)."""
        try:
            return self._grant(request, tenant)
        except TokenError as exc:
            return exc.response()

    def _grant(self, request: Request, tenant: str) -> Response:
        if tenant not in (self.tenant_id, self.domain):
            raise TokenError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud.",
            )
        if request.mimetype != "application/x-www-form-urlencoded":
            raise _missing("grant_type")
        form = request.form
        grant = form.get("grant_type")
        if not grant:
            raise _missing("grant_type")
        if grant != "client_credentials":
            raise TokenError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        app = self._app(form.get("client_id"), form.get("client_secret"))
        self._check_scope(request, form.get("scope"))
        value = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(32)
        lifetime = int(self.lifetime)
        self.tokens[value] = IssuedToken(app.client_id, app.roles, self.clock() + self.lifetime)
        body = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": value,
        }
        response = Response(json.dumps(body), status=200, content_type=AUTH_JSON)
        response.headers["Cache-Control"] = "no-store, no-cache"
        response.headers["Pragma"] = "no-cache"
        return response

    def _app(self, client_id: str | None, secret: str | None) -> App:
        if not client_id:
            raise _missing("client_id")
        app = self.apps.get(client_id)
        if app is None:
            raise TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'.",
            )
        if not secret:
            raise TokenError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        if app.secret_expired:
            raise TokenError(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{client_id}' are expired.",
            )
        if not secrets.compare_digest(secret, app.secret):
            raise TokenError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        return app

    def _check_scope(self, request: Request, scope: str | None) -> None:
        if not scope:
            raise _missing("scope")
        if not scope.endswith("/.default"):
            raise TokenError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have "
                "a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = scope.removesuffix("/.default")
        # The simulator is Graph too: a scope naming its own address is the Graph resource.
        if resource not in (GRAPH_RESOURCE, str(request.root_url).rstrip("/")):
            raise TokenError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}.",
            )


def require(token: IssuedToken, readers: Collection[str]) -> None:
    """Refuse with 403 when the token holds none of the permissions that allow a read (§2.1)."""
    if not token.roles & set(readers):
        raise GraphError(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )


class TokenError(Exception):
    """A refused token request in the identity platform's shape (RFC 6749 §5.2 plus AADSTS codes)."""

    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"{status} {error}")
        self.status, self.error, self.code, self.message = status, error, code, message

    def response(self) -> Response:
        """Render the error; the description's lines end in CRLF, as the identity platform's do."""
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        body = {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.message}\r\nTrace ID: {trace}\r\n"
                f"Correlation ID: {correlation}\r\nTimestamp: {now}"
            ),
            "error_codes": [self.code],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }
        return Response(json.dumps(body), status=self.status, content_type=AUTH_JSON)


def _missing(parameter: str) -> TokenError:
    return TokenError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{parameter}'.",
    )


def _unauthenticated(message: str) -> GraphError:
    challenge = (
        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
        'client_id="00000003-0000-0000-c000-000000000000"'
    )
    return GraphError(401, "InvalidAuthenticationToken", message, [("WWW-Authenticate", challenge)])
