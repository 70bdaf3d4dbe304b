"""An in-memory OneLogin (API v2, and v1 groups), strict to idp-apis §4.

Serve ``OneLoginSim().app`` with ``SimServer``. Seed it directly with ``add_user``,
``add_group``, ``add_role``, ``assign`` and ``seed_company``; break it with ``fail_page``,
``expire_token``, ``expire_token_after``, ``owner_deleted`` and the ``faults`` middleware
(``faults.inject``; its ``rate_limit`` sends no OneLogin headers: use ``fail_page(..., 429)``
or a small ``hourly_limit`` for OneLogin's own X-RateLimit-* answers, §4.6).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from scimsync.sim import onelogin_api as api
from scimsync.sim.faults import Faults, RequestLog
from scimsync.sim.onelogin_api import OneLoginError, Paging, json_response
from scimsync.sim.onelogin_auth import token_request
from scimsync.sim.onelogin_seed import Seeder
from scimsync.sim.onelogin_store import (
    HOURLY_LIMIT,
    TOKEN_LIFETIME,
    WINDOW,
    HourlyBudget,
    OLUser,
    TokenStore,
    user_json,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

USERS = "/api/2/users"
ROLES = "/api/2/roles"
GROUPS = "/api/1/groups"
TOKEN = "/auth/oauth2/v2/token"
# §4.1: the scope levels of an API credential; all but the first may read users, roles, groups.
SCOPES = ("authentication_only", "read_users", "manage_users", "read_all", "manage_all")


@dataclass
class _PageFault:
    """Answer a page of a list with ``status``, ``times`` times (None: every time)."""

    path: str
    page: int
    status: int
    times: int | None
    reset: int


class OneLoginSim(Seeder):
    """An in-memory OneLogin account; ``app`` is the WSGI callable (with faults and a log)."""

    def __init__(
        self,
        *,
        client_id: str = "sim-onelogin-client",
        client_secret: str = "sim-onelogin-secret",
        scope: str = "read_users",
        token_lifetime: float = TOKEN_LIFETIME,
        hourly_limit: int | None = HOURLY_LIMIT,
        paging: Paging | None = None,
        account_id: int = 123456,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}")
        super().__init__()
        self.client_id, self.client_secret, self.scope = client_id, client_secret, scope
        self.account_id = account_id
        self.paging = paging or Paging()
        self.tokens = TokenStore(token_lifetime, clock)
        # None: no budget and no X-RateLimit-* headers (a long benchmark against one account).
        self.budget = HourlyBudget(hourly_limit, clock) if hourly_limit else None
        self.owner_deleted = False  # §4.1: the admin who made the credential was deleted -> 500
        self._faults: list[_PageFault] = []
        self._expire_after: int | None = None
        self._map = Map(
            [
                Rule(TOKEN, methods=["POST"], endpoint="token"),
                Rule("/auth/rate_limit", methods=["GET"], endpoint="rate_limit"),
                Rule(USERS, methods=["GET"], endpoint="users"),
                Rule(f"{USERS}/<int:user_id>", methods=["GET"], endpoint="user"),
                Rule(ROLES, methods=["GET"], endpoint="roles"),
                Rule(f"{ROLES}/<int:role_id>/users", methods=["GET"], endpoint="role_users"),
                Rule(GROUPS, methods=["GET"], endpoint="groups"),
                Rule(f"{GROUPS}/<int:group_id>", methods=["GET"], endpoint="group"),
            ],
            merge_slashes=False,
            redirect_defaults=False,
            strict_slashes=False,
        )
        self.log = RequestLog()
        self.faults = Faults(
            self._wsgi,
            log=self.log,
            error_body=api.error_body,
            rate_limit_body=api.envelope(429, "Rate limit exceeded"),
            content_type=api.JSON_TYPE,
            quota_headers=False,
        )
        self.app = self.faults

    # -- breaking it (no HTTP) -----------------------------------------------

    def fail_page(
        self, path: str, page: int, status: int, *, times: int | None = None, reset: int = 1
    ) -> None:
        """Answer page ``page`` of the list at ``path`` with ``status`` (a 429 with §4.6 headers)."""
        with self._lock:
            self._faults.append(_PageFault(path, page, status, times, reset))

    def page_statuses(self, path: str, page: int) -> list[int]:
        """Return the statuses answered to page ``page`` of ``path``, attempt by attempt."""
        return [e.status for e in self.log.entries if e.path == path and api.page_of(e.query) == page]

    def expire_token(self) -> None:
        """Expire the current access token now: the API refuses it with 401 (§4.1)."""
        with self._lock:
            self.tokens.expire()

    def expire_token_after(self, pages: int) -> None:
        """Expire the current token once ``pages`` more pages of users have been served."""
        with self._lock:
            self._expire_after = pages

    # -- HTTP ---------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        with self._lock:
            response = self._dispatch(request)
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _dispatch(self, request: Request) -> Response:
        adapter = self._map.bind_to_environ(request.environ)
        try:
            endpoint, params = adapter.match()
        except MethodNotAllowed:
            return OneLoginError(405, f"Method {request.method} is not allowed").response()
        except HTTPException:
            return OneLoginError(404, "Not Found").response()
        if self.owner_deleted:
            # §4.1: calls with the credentials of a deleted admin fail with HTTP 500.
            return OneLoginError(500, "Internal Server Error").response()
        if endpoint == "token":
            return self._token(request)
        headers: list[tuple[str, str]] = []
        try:
            self._authenticate(request)
            if self.budget is not None:
                allowed, headers = self.budget.take()
                if not allowed:
                    raise OneLoginError(429, "Rate limit exceeded", headers)
            self._page_fault(request)
            response = self._serve(endpoint, request, params)
        except OneLoginError as exc:
            response = exc.response()
        for name, value in headers:  # §4.6: on every resource call (a fault's own win)
            response.headers.setdefault(name, value)
        return response

    def _token(self, request: Request) -> Response:
        """POST /auth/oauth2/v2/token: the same token until it expires (§4.1)."""
        try:
            client_id, secret = token_request(request)
            if (client_id, secret) != (self.client_id, self.client_secret):
                raise OneLoginError(401, "Authentication Failure")
        except OneLoginError as exc:
            return exc.response()
        grant = self.tokens.grant()
        created = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        return json_response(
            {
                "access_token": grant.value,
                "created_at": created.replace("+00:00", "Z"),
                "expires_in": max(1, int(grant.expires_at - self.tokens.clock())),
                "refresh_token": grant.value[::-1],  # §4.1: deprecated, never used
                "token_type": "bearer",
                "account_id": self.account_id,
            }
        )

    def _authenticate(self, request: Request) -> None:
        """Accept ``Bearer <token>`` and v1's ``bearer:<token>`` (§4.1); 401 otherwise."""
        header = request.headers.get("Authorization", "").strip()
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            scheme, _, value = header.partition(":")
        if scheme.lower() != "bearer" or not self.tokens.valid(value.strip()):
            raise OneLoginError(401, "Authentication Failure")
        if self.scope == "authentication_only":
            # [U] the answer to a credential without read scope is not documented (§4.1).
            raise OneLoginError(403, "Forbidden")

    def _page_fault(self, request: Request) -> None:
        page = api.page_of(dict(request.args.items()))
        for fault in self._faults:
            if fault.path == request.path and fault.page == page:
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                headers = []
                if fault.status == 429:  # §4.6: the budget is spent until the reset
                    limit = str(self.budget.limit if self.budget else HOURLY_LIMIT)
                    headers = [("X-RateLimit-Limit", limit), ("X-RateLimit-Remaining", "0")]
                    headers.append(("X-RateLimit-Reset", str(fault.reset)))
                raise OneLoginError(fault.status, api.TYPES.get(fault.status, "error"), headers)

    def _serve(self, endpoint: str, request: Request, params: Mapping[str, Any]) -> Response:
        users = sorted(self.users.values(), key=lambda u: u.id)
        roles = sorted(self.roles.values(), key=lambda r: r.id)
        if endpoint == "users":
            win = api.window(request, "users", api.USER_FILTERS, self.paging)
            response = api.page_response(request, win, api.user_rows(users, roles, win.filters), USERS)
            self._count_user_page()
            return response
        if endpoint == "user":
            return json_response(user_json(self._user_by_id(params["user_id"]), roles))
        if endpoint == "roles":
            win = api.window(request, "roles", ("name", "role_name"), self.paging)
            return api.page_response(request, win, api.role_rows(roles, win.filters), ROLES)
        if endpoint == "role_users":
            role = self.roles.get(params["role_id"])
            if role is None:
                raise OneLoginError(404, f"Role {params['role_id']} not found")
            win = api.window(request, f"role-{role.id}", ("name", "include_unassigned"), self.paging)
            rows = api.role_user_rows(role, users, roles, win.filters)
            return api.page_response(request, win, rows, f"{ROLES}/{role.id}/users")
        if endpoint == "groups":
            return api.v1_groups(request, sorted(self.groups.values(), key=lambda g: g.id), GROUPS)
        if endpoint == "group":
            group = self.groups.get(params["group_id"])
            if group is None:
                raise OneLoginError(404, f"Group {params['group_id']} not found")
            return json_response({"status": _SUCCESS, "data": [{"id": group.id, "name": group.name}]})
        return self._rate_limit()

    def _rate_limit(self) -> Response:
        """GET /auth/rate_limit: the budget in the body (§4.6)."""
        headers = dict(self.budget.headers(0)) if self.budget else {}
        data = {name: int(value) for name, value in headers.items()}
        if self.budget is not None and self.budget.started is not None:
            data["X-RateLimit-Reset"] = max(0, int(self.budget.started + WINDOW - self.budget.clock()))
        return json_response({"status": _SUCCESS, "data": data})

    def _count_user_page(self) -> None:
        """Expire the token that read the page once ``expire_token_after`` pages are served."""
        if self._expire_after is None:
            return
        self._expire_after -= 1
        if self._expire_after <= 0:
            self._expire_after = None
            self.tokens.expire()

    def _user_by_id(self, user_id: int) -> OLUser:
        user = self.users.get(user_id)
        if user is None:
            raise OneLoginError(404, f"User {user_id} not found")
        return user


_SUCCESS = {"error": False, "code": 200, "type": "success", "message": "Success"}
