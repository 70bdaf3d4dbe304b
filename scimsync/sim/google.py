"""An in-memory Google Workspace: the Admin SDK Directory API and its token endpoint (idp-apis §3).

Serve ``GoogleSim().app`` with ``SimServer``: the API is under ``/admin/directory/v1`` and the
token endpoint is ``/token`` on the same server, so a config points ``url`` at the server
and ``token_url`` at ``<server>/token``. ``write_credentials_file`` writes the service-account
key file of a throwaway key made for this simulator. Seed and inspect through
``add_user``, ``add_group``, ``add_member``, ``update_user``, ``delete_user`` and
``seed_company`` (in ``google_seed``); break it through ``faults`` (any request),
``break_page`` and ``tamper_page`` (one page of one list), ``expire_tokens`` and the quota.

Google publishes no rate-limit headers (idp-apis §3.7, §8): the optional quota answers
``403 userRateLimitExceeded`` once a user has made ``quota_per_minute`` queries in a minute.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from scimsync.sim import google_routes as routes
from scimsync.sim.faults import Faults, RequestLog
from scimsync.sim.google_common import (
    JSON_TYPE,
    RATE_LIMITED_BODY,
    GoogleError,
    PageTokens,
    html_not_found,
    injected_error_body,
    json_response,
)
from scimsync.sim.google_oauth import (
    BAD_SUBJECT,
    GROUP_READONLY,
    NOT_DELEGATED,
    USER_READONLY,
    Assertion,
    OAuthError,
    ServiceAccount,
    new_service_account,
    verify_assertion,
)
from scimsync.sim.google_pages import PageFaults

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

API = "/admin/directory/v1"
TOKEN_PATH = "/token"
DEFAULT_ACCOUNT = "scimsync-reader@scimsync-sim.iam.gserviceaccount.com"
MISSING_CREDENTIALS = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential."
)
INVALID_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential."
)
QUOTA_EXCEEDED = (
    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' "
    "of service 'admin.googleapis.com'."
)


@dataclass
class _Token:
    """An access token handed out: what it was granted for and until when (sim clock)."""

    grant: Assertion
    expires_at: float
    expired: bool = False


class GoogleSim(PageFaults):
    """One Google Workspace customer; ``app`` is the WSGI callable (with faults and a log)."""

    def __init__(
        self,
        *,
        customer_id: str = "C0sim0001",
        domains: Iterable[str] = ("acme.example",),
        token_lifetime: int = 3599,
        page_limit: int | None = None,
        quota_per_minute: int | None = None,
        key_bits: int = 2048,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(customer_id, tuple(d.lower() for d in domains), page_limit)
        self.token_lifetime = token_lifetime
        self.quota_per_minute = quota_per_minute
        self.key_bits = key_bits
        self._clock = clock
        self._wall_clock = wall_clock
        self.accounts: dict[str, ServiceAccount] = {}
        self._tokens: dict[str, _Token] = {}
        self._page_tokens = PageTokens()
        self._quota: dict[tuple[str, str | None], tuple[float, int]] = {}
        self.grants = 0  # access tokens handed out
        self._map = Map(
            [
                Rule(TOKEN_PATH, methods=["POST"], endpoint="token"),
                Rule(f"{API}/users", methods=["GET"], endpoint="users"),
                Rule(f"{API}/users/<user_key>", methods=["GET"], endpoint="user"),
                Rule(f"{API}/groups", methods=["GET"], endpoint="groups"),
                Rule(f"{API}/groups/<group_key>/members", methods=["GET"], endpoint="members"),
            ],
            merge_slashes=False,
            redirect_defaults=False,
        )
        self.log = RequestLog()
        self.faults = Faults(
            self._wsgi,
            log=self.log,
            error_body=injected_error_body,
            rate_limit_body=RATE_LIMITED_BODY,
            content_type=JSON_TYPE,
            quota_headers=False,  # §3.7: no rate-limit headers; a 429 carries at most Retry-After
        )
        self.app = self.faults

    # -- service accounts (no HTTP) -----------------------------------------------------

    def service_account(self, client_email: str = DEFAULT_ACCOUNT) -> ServiceAccount:
        """Return a service account, created (with a new key, and the read-only scopes delegated) if new."""
        with self._lock:
            if client_email not in self.accounts:
                scopes = {USER_READONLY, GROUP_READONLY}
                project = client_email.split("@")[-1].split(".")[0]
                self.accounts[client_email] = new_service_account(
                    client_email, scopes=scopes, project_id=project, key_bits=self.key_bits
                )
            return self.accounts[client_email]

    def credentials_info(self, token_url: str, client_email: str = DEFAULT_ACCOUNT) -> dict[str, str]:
        """Return the service account's JSON key file content."""
        return self.service_account(client_email).info(token_url)

    def write_credentials_file(self, path: Path, token_url: str, client_email: str = DEFAULT_ACCOUNT) -> Path:
        """Write a throwaway service-account key file for this simulator (mode 0600) and return its path."""
        path.write_text(
            json.dumps(self.credentials_info(token_url, client_email), indent=2), encoding="utf-8"
        )
        path.chmod(0o600)
        return path

    def delegate(self, scopes: Iterable[str], client_email: str = DEFAULT_ACCOUNT) -> None:
        """Set the scopes a super admin authorised for the account's client ID (§3.1)."""
        with self._lock:
            self.service_account(client_email).scopes = set(scopes)

    def revoke_key(self, client_email: str = DEFAULT_ACCOUNT) -> None:
        """Delete the account's key (and make a new one): files holding the old key are refused."""
        with self._lock:
            self.service_account(client_email).new_key()

    def expire_tokens(self) -> None:
        """Make every access token handed out so far expired."""
        with self._lock:
            for token in self._tokens.values():
                token.expired = True

    # -- HTTP ---------------------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        response = self._dispatch(Request(environ))
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _dispatch(self, request: Request) -> Response:
        adapter = self._map.bind_to_environ(request.environ)
        try:
            endpoint, params = adapter.match()
        except MethodNotAllowed:
            return GoogleError(405, "Method Not Allowed", "httpMethodNotAllowed").response()
        except HTTPException:
            return html_not_found(request.path)
        with self._lock:
            if endpoint == "token":
                return self._grant(request)
            try:
                token = self._authorize(request)
                self._count_query(token.grant)
                ctx = routes.Ctx(
                    request, self.directory, self, self._page_tokens, token.grant.scopes, self._wall_clock()
                )
                if endpoint == "users":
                    return routes.list_users(ctx)
                if endpoint == "user":
                    return routes.get_user(ctx, params["user_key"])
                if endpoint == "groups":
                    return routes.list_groups(ctx)
                return routes.list_members(ctx, params["group_key"])
            except GoogleError as exc:
                return exc.response()

    def _grant(self, request: Request) -> Response:
        """POST /token: the JWT bearer grant of §3.1."""
        try:
            grant = verify_assertion(request.form, self.accounts, request.base_url, self._wall_clock())
            if grant.subject is not None:
                if not grant.scopes <= grant.account.scopes:
                    raise OAuthError(401, "unauthorized_client", NOT_DELEGATED)
                subject = self.directory.find_user(grant.subject)
                if subject is None or subject.suspended:
                    raise OAuthError(400, "invalid_grant", BAD_SUBJECT)
        except OAuthError as exc:
            return exc.response()
        value = "ya29.sim-" + secrets.token_urlsafe(32)
        self._tokens[value] = _Token(grant, self._clock() + self.token_lifetime)
        self.grants += 1
        body = {"access_token": value, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        return json_response(body, headers=[("Cache-Control", "no-store")])

    def _authorize(self, request: Request) -> _Token:
        """Return the caller's token; 401 without a valid one, 403 unless it acts for an admin."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise GoogleError(
                401, MISSING_CREDENTIALS, "required", location="Authorization", location_type="header"
            )
        token = self._tokens.get(value.strip())
        if token is None or token.expired or self._clock() >= token.expires_at:
            challenge = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
            raise GoogleError(
                401,
                INVALID_CREDENTIALS,
                "authError",
                location="Authorization",
                location_type="header",
                headers=[("WWW-Authenticate", challenge)],
            )
        admin = self.directory.find_user(token.grant.subject) if token.grant.subject else None
        if admin is None or not admin.is_admin or admin.suspended:
            raise routes.forbidden()  # a service account without a subject is no admin
        return token

    def _count_query(self, grant: Assertion) -> None:
        """Apply the per-user, per-project quota of §3.7 (2,400 a minute by default at Google)."""
        if self.quota_per_minute is None:
            return
        who = (grant.account.client_email, grant.subject)
        start, used = self._quota.get(who, (self._clock(), 0))
        if self._clock() - start >= 60:
            start, used = self._clock(), 0
        if used >= self.quota_per_minute:
            raise GoogleError(403, QUOTA_EXCEEDED, "userRateLimitExceeded", domain="usageLimits")
        self._quota[who] = (start, used + 1)
