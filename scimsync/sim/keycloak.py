"""An in-memory Keycloak (token endpoint and admin REST API reads), strict to idp-apis §5.

Serve ``KeycloakSim().app`` with ``SimServer``; the source's ``url`` is the server's URL
plus ``sim.base_path`` (``/auth`` before Keycloak 17, §5.1). Seed it directly with
``add_user``, ``add_group``, ``add_member`` or ``seed_company``. Keycloak has no rate
limiting of its own (§5.4, §8): ``rate_limit`` stands for a reverse proxy in front of it
that answers 429 with ``Retry-After``.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from scimsync.sim import keycloak_routes as routes
from scimsync.sim.faults import Faults, RateLimiter, RequestLog
from scimsync.sim.keycloak_realm import VIEW_USERS, KcClient, KcUser, Realm, user_rep
from scimsync.sim.keycloak_routes import Ctx, KcError, status_body
from scimsync.sim.keycloak_token import issue_token

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

SECRET = "sim-keycloak-secret"
# A list endpoint's path under the realm, then its handler; ``since``: the first version with it.
_ADMIN = (
    ("/users", routes.list_users, (0, 0)),
    ("/users/count", routes.count_users, (0, 0)),
    ("/groups", routes.list_groups, (0, 0)),
    ("/groups/count", routes.count_groups, (0, 0)),
    ("/groups/<id>", routes.get_group, (0, 0)),
    ("/groups/<id>/children", routes.children, (23, 0)),  # §5.3: the children walk is 23+
    ("/groups/<id>/members", routes.members, (0, 0)),
)
_HANDLERS = {path: handler for path, handler, _ in _ADMIN}


@dataclass
class _PageFault:
    """Answer the page of ``path`` at ``first`` with ``status`` (``times`` None: every time)."""

    path: str
    first: int
    status: int
    times: int | None
    retry_after: int | None


def parse_version(version: str) -> tuple[int, int]:
    """Turn "26.0" (or "26.0.7") into (26, 0)."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", version)
    if match is None:
        raise ValueError(f"not a Keycloak version: {version!r}")
    return int(match[1]), int(match[2])


class KeycloakSim:
    """One realm with one confidential client; ``app`` is the WSGI callable (faults and a log)."""

    def __init__(
        self,
        version: str = "26.0",
        *,
        realm: str = "acme",
        client_id: str = "scimsync",
        client_secret: str = SECRET,
        roles: Iterable[str] = (VIEW_USERS,),
        token_lifetime: int = 300,
        rate_limit: tuple[int, float] | None = None,
        page_cap: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.version = parse_version(version)
        # Before 17 (WildFly) everything sits under /auth (idp §5.1 ⚠).
        self.base_path = "/auth" if self.version < (17, 0) else ""
        self.realm = Realm(realm)
        self.realm.add_client(client_id, client_secret, service_accounts=True, roles=roles)
        self.token_lifetime = token_lifetime  # Keycloak's default access token lifespan: 5 minutes
        self.clock = clock
        self.limiter = RateLimiter(rate_limit[0], rate_limit[1], clock) if rate_limit else None
        self.page_cap = page_cap
        # Called with (path, first) before a page of a list is served: tests change the realm there.
        self.before_page: Callable[[str, int], None] | None = None
        self._lock = threading.RLock()
        self._map = self._build_map()
        self._faults: list[_PageFault] = []
        self._answers: dict[tuple[str, int], list[int]] = {}
        self._expire_after: int | None = None
        self.log = RequestLog()
        # Injected 429s carry only Retry-After: Keycloak itself sends no rate-limit headers (§5.4).
        self.faults = Faults(
            self._wsgi,
            log=self.log,
            error_body=status_body,
            rate_limit_body=status_body(429),
            quota_headers=False,
        )
        self.app = self.faults

    def _build_map(self) -> Map:
        base = self.base_path
        rules = [
            Rule(f"{base}/realms/<realm>/protocol/openid-connect/token", methods=["POST"], endpoint="token")
        ]
        for path, _, since in _ADMIN:
            if self.version >= since:
                rules.append(Rule(f"{base}/admin/realms/<realm>{path}", methods=["GET"], endpoint=path))
        return Map(rules, merge_slashes=False, redirect_defaults=False, strict_slashes=False)

    # -- seeding and inspection (no HTTP) ------------------------------------------------

    def add_user(
        self,
        username: str,
        *,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        enabled: bool = True,
        attributes: Mapping[str, Sequence[str]] | None = None,
        required_actions: Iterable[str] = (),
        email_verified: bool = False,
        federation_link: str | None = None,
        groups: Iterable[str] = (),
        user_id: str | None = None,
    ) -> str:
        """Create a user (username and email lower-cased, as Keycloak does); return its id."""
        with self._lock:
            user = KcUser(
                user_id or str(uuid.uuid4()),
                username,
                email,
                first_name,
                last_name,
                enabled=enabled,
                email_verified=email_verified,
                attributes={k: list(v) for k, v in (attributes or {}).items()},
                required_actions=list(required_actions),
                federation_link=federation_link,
            )
            self.realm.add_user(user)
            for path in groups:
                self.realm.find_group(path).members.add(user.id)
            return user.id

    def add_group(self, name: str, *, parent: str | None = None, members: Iterable[str] = ()) -> str:
        """Create a group under ``parent`` (a path; None: top level) with members; return its path."""
        with self._lock:
            group = self.realm.add_group(name, self.realm.find_group(parent) if parent else None)
            for username in members:
                group.members.add(self.realm.find_user(username).id)
            return self.realm.path(group)

    def add_member(self, path: str, username: str) -> None:
        """Make a user a direct member of the group at ``path``."""
        with self._lock:
            self.realm.find_group(path).members.add(self.realm.find_user(username).id)

    def add_client(
        self,
        client_id: str,
        secret: str,
        *,
        service_accounts: bool = True,
        roles: Iterable[str] = (VIEW_USERS,),
    ) -> None:
        """Add another confidential client (``service_accounts`` False: it cannot get a token)."""
        with self._lock:
            self.realm.add_client(client_id, secret, service_accounts=service_accounts, roles=roles)

    def remove_user(self, username: str) -> None:
        """Delete a user."""
        with self._lock:
            self.realm.remove_user(self.realm.find_user(username))

    def rename_user(self, username: str, new: str) -> None:
        """Change a username (it moves in the list, which is ordered by username)."""
        with self._lock:
            self.realm.rename_user(self.realm.find_user(username), new)

    def user(self, username: str) -> dict[str, Any]:
        """Return a user's full representation."""
        with self._lock:
            return user_rep(self.realm.find_user(username), brief=False)

    def seed_company(self, people: Iterable[Mapping[str, Any]]) -> None:
        """Create users and top-level groups from ``company.make_people()`` records."""
        with self._lock:
            for person in people:
                extra = {"department": [person["department"]]} if person.get("department") else {}
                uid = self.add_user(
                    person["username"],
                    email=person.get("email"),
                    first_name=person.get("first_name"),
                    last_name=person.get("last_name"),
                    enabled=bool(person.get("active", True)),
                    attributes=extra,
                    user_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"scimsync-demo:{person['id']}")),
                )
                for name in person.get("groups", ()):
                    group = next((g for g in self.realm.siblings(None) if g.name == name), None)
                    group = group or self.realm.add_group(name, None)
                    group.members.add(uid)

    def tokens_issued(self) -> int:
        """Return how many access tokens the token endpoint has issued."""
        with self._lock:
            return len(self.realm.tokens)

    # -- faults ---------------------------------------------------------------------------

    def fail_page(
        self, path: str, first: int, status: int, *, times: int | None = None, retry_after: int | None = None
    ) -> None:
        """Answer the page of ``path`` ("/users", "/groups/<id>/members") at ``first`` with ``status``."""
        with self._lock:
            self._faults.append(_PageFault(path, first, status, times, retry_after))

    def answers(self, path: str, first: int) -> list[int]:
        """Return the statuses the page of ``path`` at ``first`` was answered with, in order."""
        with self._lock:
            return list(self._answers.get((path, first), []))

    def expire_tokens_after(self, pages: int) -> None:
        """Expire every token issued so far once ``pages`` more pages of /users have been served."""
        with self._lock:
            self._expire_after = pages

    # -- HTTP -------------------------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        response = self._dispatch(Request(environ))
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _dispatch(self, request: Request) -> Response:
        adapter = self._map.bind_to_environ(request.environ)
        try:
            endpoint, params = adapter.match()
        except MethodNotAllowed:
            return KcError(405).response()
        except HTTPException:
            return KcError(404).response()
        with self._lock:
            if self.limiter is not None:
                allowed, headers = self.limiter.take("proxy")
                if not allowed:
                    return _proxy_429(dict(headers)["retry-after"])
            try:
                if endpoint == "token":
                    if params["realm"] != self.realm.name:
                        raise KcError(404, {"error": "Realm does not exist"})  # ⚠ wording not in §5
                    return issue_token(request, self.realm, self.clock(), self.token_lifetime)
                return self._admin(request, endpoint, dict(params))
            except KcError as exc:
                return exc.response()

    def _admin(self, request: Request, endpoint: str, params: dict[str, str]) -> Response:
        """Authenticate, then serve one admin read (the caller holds the lock)."""
        client = self._authenticate(request)
        if params.pop("realm") != self.realm.name:
            raise KcError(404, {"error": "Realm not found."})  # ⚠ wording not in the reference
        path = endpoint.replace("<id>", params.get("id", ""))
        first = _int_or_zero(request.args.get("first"))
        fault = self._take_fault(path, first)
        if fault is not None:
            response = KcError(fault.status).response()
            if fault.retry_after is not None:
                response.headers["Retry-After"] = str(fault.retry_after)
        else:
            if self.before_page is not None:
                self.before_page(path, first)
            ctx = Ctx(request, self.realm, client, self.version, self.page_cap, params)
            response = _HANDLERS[endpoint](ctx)
            if path == "/users" and response.status_code == 200:
                self._count_users_page()
        self._answers.setdefault((path, first), []).append(response.status_code)
        return response

    def _authenticate(self, request: Request) -> KcClient:
        """Return the client whose bearer token this is; 401 for none, an unknown or an expired one."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = self.realm.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or self.clock() >= token.expires_at:
            raise KcError(401)  # {"error": "HTTP 401 Unauthorized"} (§5.4)
        client = self.realm.clients.get(token.client_id)
        if client is None:
            raise KcError(401)
        return client

    def _take_fault(self, path: str, first: int) -> _PageFault | None:
        for fault in self._faults:
            if (fault.path, fault.first) == (path, first):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _count_users_page(self) -> None:
        if self._expire_after is None:
            return
        self._expire_after -= 1
        if self._expire_after <= 0:
            self.realm.expire_tokens(self.clock())
            self._expire_after = None


def _int_or_zero(raw: str | None) -> int:
    try:
        return max(0, int(raw or 0))
    except ValueError:
        return 0


def _proxy_429(retry_after: str) -> Response:
    """Return the 429 a reverse proxy sends: an HTML page and Retry-After (Keycloak has none, §5.4)."""
    page = "<html><head><title>429 Too Many Requests</title></head><body>Too Many Requests</body></html>"
    response = Response(page, status=429, content_type="text/html")
    response.headers["Retry-After"] = retry_after
    return response
