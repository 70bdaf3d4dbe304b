"""An in-memory Jira Data Center (REST API v2), strict to reference §1.

Serve ``JiraSim().app`` with ``SimServer``. Seed and inspect it directly through
``add_user``, ``add_group``, ``add_account``, ``user``, ``members`` and ``group_names``.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from scimsync.sim import jira_groups as groups
from scimsync.sim import jira_users as users
from scimsync.sim.faults import Faults, RateLimiter, RequestLog
from scimsync.sim.jira_common import Ctx, JiraError, json_response, user_bean
from scimsync.sim.jira_directory import AppRole, JiraDirectory, JiraGroup, JiraUser

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

Handler = Callable[[Ctx], Response]

NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
BASIC_DISABLED = "Basic Authentication has been disabled on this instance."
NOT_ADMIN = "You do not have the permission to perform this operation: Jira Administrators only."


@dataclass(frozen=True)
class _Route:
    """One endpoint under /rest/api/2."""

    path: str
    method: str
    handler: Handler
    admin: bool = False
    anonymous: bool = False
    since: tuple[int, ...] = ()


def server_info(ctx: Ctx) -> Response:
    """GET /serverInfo: anonymous, the version a connector reads its capabilities from (§0)."""
    numbers = list(ctx.version)
    return json_response(
        {
            "baseUrl": ctx.base,
            "version": ".".join(map(str, numbers)),
            "versionNumbers": numbers,
            "deploymentType": "Server",
            "buildNumber": numbers[0] * 1_000_000 + numbers[1] * 10_000 + numbers[2],
            "buildDate": "2025-01-01T00:00:00.000+0000",
            "scmInfo": "simulator",
            "serverTitle": "Jira",
        }
    )


ROUTES = (
    _Route("/serverInfo", "GET", server_info, anonymous=True),
    _Route("/myself", "GET", users.myself),
    _Route("/user", "GET", users.get_user),
    _Route("/user", "POST", users.create_user, admin=True),
    _Route("/user", "PUT", users.update_user, admin=True),
    _Route("/user", "DELETE", users.delete_user, admin=True),
    _Route("/user/list", "GET", users.list_users, admin=True, since=(10, 3)),  # §1.7
    _Route("/user/search", "GET", users.search_users),
    _Route("/group", "GET", groups.get_group, admin=True),
    _Route("/group", "POST", groups.create_group, admin=True),
    _Route("/group", "DELETE", groups.delete_group, admin=True),
    _Route("/group/member", "GET", groups.group_members, admin=True),
    _Route("/group/user", "POST", groups.add_member, admin=True),
    _Route("/group/user", "DELETE", groups.remove_member, admin=True),
    _Route("/groups/picker", "GET", groups.group_picker),
    _Route("/applicationrole", "GET", groups.application_roles, admin=True),
    _Route("/applicationrole/<key>", "GET", groups.application_role, admin=True),
)


def parse_version(version: str) -> tuple[int, int, int]:
    """Turn "10.3.1" into (10, 3, 1)."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        raise ValueError(f"not a Jira version: {version!r}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


class JiraSim:
    """An in-memory Jira Data Center; ``app`` is the WSGI callable (with faults and a log)."""

    def __init__(
        self,
        version: str = "10.3.1",
        *,
        admin: str = "admin",
        password: str = "admin",
        token: str = "sim-jira-token",
        basic_auth_enabled: bool = True,
        rate_limit: tuple[int, float] | None = None,
        read_only_status: int = 400,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.version = version
        self.version_info = parse_version(version)
        if not basic_auth_enabled and self.version_info < (8, 16):
            raise ValueError("blocking basic auth needs Jira 8.16+ (§1.1)")
        if rate_limit is not None and self.version_info < (8, 6):
            raise ValueError("rate limiting needs Jira Data Center 8.6+ (§1.11)")
        self.basic_auth_enabled = basic_auth_enabled
        if read_only_status not in (400, 403):
            raise ValueError("a read-only directory refuses with 400 or 403 (§1.5, §1.10)")
        self.directory = JiraDirectory()
        self.directory.read_only_status = read_only_status
        self.limiter = RateLimiter(rate_limit[0], rate_limit[1], clock) if rate_limit else None
        self._lock = threading.RLock()
        self._routes: dict[str, _Route] = {}
        self._map = self._build_map()
        self.log = RequestLog()
        self.faults = Faults(self._wsgi, log=self.log)
        self.app = self.faults
        self._seed(admin, password, token)

    def _build_map(self) -> Map:
        rules = []
        for route in ROUTES:
            if self.version_info < route.since:
                continue  # not in this version: an unknown route, 404
            endpoint = f"{route.method} {route.path}"
            self._routes[endpoint] = route
            path = "/rest/api/<any('2', 'latest'):api>" + route.path
            rules.append(Rule(path, methods=[route.method], endpoint=endpoint))
        return Map(rules, merge_slashes=False, redirect_defaults=False)

    def _seed(self, admin: str, password: str, token: str) -> None:
        """Create the stock groups, roles and the administrator (key JIRAUSER10000)."""
        for name in ("jira-software-users", "jira-administrators", "jira-core-users"):
            self.directory.create_group(name)
        self.directory.roles = {
            "jira-software": AppRole(
                "jira-software",
                "Jira Software",
                ["jira-software-users", "jira-administrators"],
                ["jira-software-users"],
                selected_by_default=True,
            ),
            "jira-core": AppRole(
                "jira-core", "Jira Core", ["jira-core-users"], ["jira-core-users"], False, platform=True
            ),
        }
        self.add_user(
            admin,
            f"{admin}@example.test",
            "Administrator",
            groups=("jira-administrators", "jira-software-users"),
        )
        self.add_account(admin, password, token, admin=True)

    # -- seeding and inspection (no HTTP) ------------------------------------

    def add_user(
        self,
        name: str,
        email: str,
        display_name: str,
        *,
        active: bool = True,
        groups: Iterable[str] = (),
        read_only: bool = False,
    ) -> str:
        """Create a user directly (any case allowed, as from LDAP) and return its key."""
        with self._lock:
            user = self.directory.create_user(name, email, display_name, active=active, read_only=read_only)
            for group_name in groups:
                self._group(group_name).members.add(user.key)
            return user.key

    def add_group(self, name: str, *, members: Iterable[str] = (), parent: str | None = None) -> None:
        """Create a group (or extend an existing one), add members, nest it in ``parent``."""
        with self._lock:
            group = self._group(name)
            for username in members:
                group.members.add(self._user(username).key)
            if parent is not None:
                self.directory.nest(group, self._group(parent))

    def add_account(
        self, username: str, password: str | None = None, token: str | None = None, *, admin: bool = False
    ) -> str:
        """Give a user (created if missing) a password and/or a PAT; ``admin`` joins jira-administrators."""
        with self._lock:
            user = self.directory.find_user(username)
            if user is None:
                user = self.directory.create_user(username, f"{username}@example.test", username)
            if password is not None:
                self.directory.passwords[user.key] = password
            if token is not None:
                self.directory.tokens[token] = user.key
            if admin:
                self._group("jira-administrators").members.add(user.key)
            return user.key

    def update_user(self, name_or_key: str, **fields: Any) -> None:
        """Edit a user by hand, as an admin in the UI would: name, emailAddress, displayName, active."""
        unknown = set(fields) - {"name", "emailAddress", "displayName", "active"}
        if unknown:
            raise TypeError(f"unknown user fields: {sorted(unknown)}")
        with self._lock:
            user = self._find(name_or_key)
            if user is None:
                raise KeyError(f"no user {name_or_key!r}")
            if "name" in fields and fields["name"] != user.name:
                if self.directory.find_user(fields["name"]) not in (None, user):
                    raise ValueError(f"user {fields['name']!r} already exists")
                self.directory.rename(user, fields["name"])
            user.email = fields.get("emailAddress", user.email)
            user.display_name = fields.get("displayName", user.display_name)
            user.active = bool(fields.get("active", user.active))

    def user(self, name_or_key: str) -> dict[str, Any] | None:
        """Return the user bean (groups and roles expanded) by username or key, or None."""
        with self._lock:
            user = self._find(name_or_key)
            if user is None:
                return None
            return user_bean(self.directory, user, "", expand=("groups", "applicationRoles"))

    def members(self, group: str, *, nested: bool = False) -> set[str]:
        """Return the usernames of a group's direct (or direct and nested) members."""
        with self._lock:
            found = self.directory.find_group(group)
            if found is None:
                raise KeyError(f"no group {group!r}")
            keys = self.directory.effective_members(found) if nested else found.members
            return {self.directory.users[k].name for k in keys}

    def group_names(self) -> set[str]:
        """Return every group name, in its original case."""
        with self._lock:
            return {g.name for g in self.directory.groups.values()}

    def _group(self, name: str) -> JiraGroup:
        return self.directory.find_group(name) or self.directory.create_group(name)

    def _find(self, name_or_key: str) -> JiraUser | None:
        return self.directory.find_user(name_or_key) or self.directory.users.get(name_or_key)

    def _user(self, name: str) -> JiraUser:
        user = self.directory.find_user(name)
        if user is None:
            raise KeyError(f"no user {name!r}")
        return user

    # -- HTTP ---------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request."""
        response = self._dispatch(Request(environ))
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _dispatch(self, request: Request) -> Response:
        adapter = self._map.bind_to_environ(request.environ)
        try:
            endpoint, params = adapter.match()
        except MethodNotAllowed as exc:
            response = JiraError(405, [f"Method {request.method} is not allowed here."]).response()
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))
            return response
        except HTTPException:
            return JiraError(404, [f"No resource at {request.path}"]).response()
        route = self._routes[endpoint]
        with self._lock:
            try:
                caller = self._authenticate(request)
            except JiraError as exc:
                return exc.response()
            return self._serve(request, route, caller, params)

    def _serve(self, request: Request, route: _Route, caller: JiraUser | None, params: Any) -> Response:
        """Apply rate limit and permissions, then run the handler (caller holds the lock)."""
        headers: list[tuple[str, str]] = []
        try:
            if caller is None and not route.anonymous:
                raise JiraError(401, [NOT_AUTHENTICATED])
            if caller is not None and self.limiter is not None:
                allowed, headers = self.limiter.take(caller.key)
                if not allowed:  # §1.11: an empty bucket
                    raise JiraError(429, ["Rate limit exceeded."])
            if route.admin and caller is not None and not self.directory.is_admin(caller):
                raise JiraError(403, [NOT_ADMIN])
            params = {k: v for k, v in params.items() if k != "api"}
            response = route.handler(Ctx(request, self.directory, caller, self.version_info, params))
        except JiraError as exc:
            response = exc.response()
        for name, value in headers:  # §1.11: on every rate-limited-scope response
            response.headers[name] = value
        return response

    def _authenticate(self, request: Request) -> JiraUser | None:
        """Return the caller, None when anonymous; 401 on bad credentials (§1.1)."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            if not self.basic_auth_enabled:  # §1.1: a different body, before any credential check
                raise JiraError(403, body={"message": BASIC_DISABLED})
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise JiraError(401, [NOT_AUTHENTICATED]) from None
            username, _, password = decoded.partition(":")
            user = self.directory.find_user(username)
            if user is None or self.directory.passwords.get(user.key) != password:
                raise JiraError(401, [NOT_AUTHENTICATED])
        elif scheme.lower() == "bearer" and self.version_info >= (8, 14):  # PATs from 8.14 (§1.1)
            key = self.directory.tokens.get(credentials.strip())
            user = self.directory.users.get(key) if key else None
            if user is None:
                raise JiraError(401, [NOT_AUTHENTICATED])
        else:
            return None  # anonymous; older Jira ignores a Bearer header
        if not user.active:  # a deactivated account cannot log in
            raise JiraError(401, [NOT_AUTHENTICATED])
        return user
