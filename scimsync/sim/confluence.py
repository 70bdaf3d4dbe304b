"""An in-memory Confluence Data Center (REST API for users and groups), strict to reference §2.

Serve ``ConfluenceSim().app`` with ``SimServer``. Seed and inspect it directly through
``add_user``, ``add_group``, ``add_account``, ``update_user``, ``user``, ``members`` and
``group_names``.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Request, Response

from scimsync.sim.confluence_common import ConfluenceError, Ctx, error_body
from scimsync.sim.confluence_directory import (
    ADMIN_GROUP,
    DEFAULT_GROUP,
    ConfluenceDirectory,
    ConfluenceGroup,
    ConfluenceUser,
)
from scimsync.sim.confluence_routes import ROUTES, Route, parse_version, rule_map
from scimsync.sim.confluence_tasks import TaskBoard
from scimsync.sim.faults import Faults, RateLimiter, RequestLog

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

NOT_AUTHENTICATED = "Authentication required: no valid credentials were given."  # [U] wording
NOT_ADMIN = "You do not have permission to perform this operation: Confluence administrators only."


class ConfluenceSim:
    """An in-memory Confluence Data Center; ``app`` is the WSGI callable (with faults and a log)."""

    def __init__(
        self,
        version: str = "9.2.1",
        *,
        admin: str = "admin",
        password: str = "admin",
        token: str = "sim-confluence-token",
        rate_limit: tuple[int, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        delete_task_steps: int = 2,
        delete_task_fails: bool = False,
        seats: int | None = None,
    ) -> None:
        self.version = version
        self.version_info = parse_version(version)
        # §2.1: documented from 7.13 [U: the first version is not confirmed]; not earlier here.
        if rate_limit is not None and self.version_info < (7, 13):
            raise ValueError("rate limiting needs Confluence Data Center 7.13+ (§2.1)")
        if seats is not None and seats < 0:
            raise ValueError("seats must not be negative")
        self.seats = seats
        self.directory = ConfluenceDirectory()
        self.tasks = TaskBoard(delete_task_steps, delete_task_fails, clock)
        self.limiter = RateLimiter(rate_limit[0], rate_limit[1], clock) if rate_limit else None
        self._lock = threading.RLock()
        available = [r for r in ROUTES if self.version_info >= r.since]
        self._routes = {f"{r.method} {r.path}": r for r in available}
        self._map = rule_map(available)
        self._all_map = rule_map(ROUTES)
        self.log = RequestLog()
        rate_limited = ConfluenceError(429, "Rate limit exceeded.").body
        self.faults = Faults(self._wsgi, log=self.log, error_body=error_body, rate_limit_body=rate_limited)
        self.app = self.faults
        self._seed(admin, password, token)

    def _seed(self, admin: str, password: str, token: str) -> None:
        """Create the stock groups and the administrator (member of both)."""
        for name in (DEFAULT_GROUP, ADMIN_GROUP):
            self.directory.create_group(name)
        self.add_user(admin, f"{admin}@example.test", "Administrator", groups=(DEFAULT_GROUP, ADMIN_GROUP))
        self.add_account(admin, password, token)

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
        """Create a user directly (any case allowed, as from LDAP) and return its userKey."""
        with self._lock:
            user = self.directory.create_user(name, email, display_name, active=active, read_only=read_only)
            for group_name in groups:
                self._group(group_name).members.add(user.key)
            return user.key

    def add_group(self, name: str, *, members: Iterable[str] = ()) -> None:
        """Create a group (or extend an existing one) and add members by username."""
        with self._lock:
            group = self._group(name)
            for username in members:
                group.members.add(self._user(username).key)

    def add_account(
        self, username: str, password: str | None = None, token: str | None = None, *, admin: bool = False
    ) -> str:
        """Give a user (created if missing) a password and/or a PAT; ``admin`` makes it an administrator."""
        with self._lock:
            user = self.directory.find_user(username)
            if user is None:
                user = self.directory.create_user(username, f"{username}@example.test", username)
                self._group(DEFAULT_GROUP).members.add(user.key)
            if password is not None:
                self.directory.passwords[user.key] = password
            if token is not None:
                self.directory.tokens[token] = user.key
            if admin:
                self._group(ADMIN_GROUP).members.add(user.key)
            return user.key

    def update_user(self, name_or_key: str, **fields: Any) -> None:
        """Edit a user by hand, as an admin in the UI would: email, display_name, active."""
        unknown = set(fields) - {"email", "display_name", "active"}
        if unknown:
            raise TypeError(f"unknown user fields: {sorted(unknown)}")
        with self._lock:
            user = self._find(name_or_key)
            if user is None:
                raise KeyError(f"no user {name_or_key!r}")
            user.email = fields.get("email", user.email)
            user.display_name = fields.get("display_name", user.display_name)
            user.active = bool(fields.get("active", user.active))

    def user(self, name_or_key: str) -> dict[str, Any] | None:
        """Return a user's state by username or userKey, or None."""
        with self._lock:
            user = self._find(name_or_key)
            if user is None:
                return None
            return {
                "username": user.name,
                "userKey": user.key,
                "email": user.email,
                "display_name": user.display_name,
                "active": user.active,
                "groups": [g.name for g in self.directory.groups_of(user)],
                "read_only": user.read_only,
            }

    def members(self, group: str) -> set[str]:
        """Return the usernames of a group's members."""
        with self._lock:
            found = self.directory.find_group(group)
            if found is None:
                raise KeyError(f"no group {group!r}")
            return {self.directory.users[k].name for k in found.members}

    def group_names(self) -> set[str]:
        """Return every group name (lower-case, as Confluence stores them)."""
        with self._lock:
            return set(self.directory.groups)

    def _group(self, name: str) -> ConfluenceGroup:
        return self.directory.find_group(name) or self.directory.create_group(name)

    def _find(self, name_or_key: str) -> ConfluenceUser | None:
        return self.directory.find_user(name_or_key) or self.directory.users.get(name_or_key)

    def _user(self, name: str) -> ConfluenceUser:
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
        try:
            endpoint, params = self._map.bind_to_environ(request.environ).match()
        except MethodNotAllowed as exc:
            if self._in_later_version(request):  # a route this version lacks: unknown, 404 (§2.2)
                return self._no_route(request)
            response = ConfluenceError(405, f"Method {request.method} is not allowed here.").response()
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))
            return response
        except HTTPException:
            return self._no_route(request)
        with self._lock:
            try:
                caller = self._authenticate(request)
            except ConfluenceError as exc:
                return exc.response()
            return self._serve(request, self._routes[endpoint], caller, params)

    def _in_later_version(self, request: Request) -> bool:
        try:
            self._all_map.bind_to_environ(request.environ).match()
        except HTTPException:
            return False
        return True

    @staticmethod
    def _no_route(request: Request) -> Response:
        """Answer an unknown route: a 404 whose message is not that of a missing user (§2.1a)."""
        return ConfluenceError(404, f"null for uri: {request.url}").response()

    def _serve(self, request: Request, route: Route, caller: ConfluenceUser | None, params: Any) -> Response:
        """Apply rate limit and permissions, then run the handler (caller holds the lock)."""
        headers: list[tuple[str, str]] = []
        try:
            if caller is None and not route.anonymous:
                raise ConfluenceError(401, NOT_AUTHENTICATED)
            if caller is not None and self.limiter is not None:
                allowed, headers = self.limiter.take(caller.key)
                if not allowed:  # §2.1: an empty bucket, the same headers as Jira (§1.11)
                    raise ConfluenceError(429, "Rate limit exceeded.")
            if route.admin and caller is not None and not self.directory.is_admin(caller):
                raise ConfluenceError(403, NOT_ADMIN)
            ctx = Ctx(
                request, self.directory, caller, self.version_info, self.tasks, dict(params), self.seats
            )
            response = route.handler(ctx)
        except ConfluenceError as exc:
            response = exc.response()
        for name, value in headers:
            response.headers[name] = value
        return response

    def _authenticate(self, request: Request) -> ConfluenceUser | None:
        """Return the caller, None when anonymous; 401 on bad credentials (§2.1)."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise ConfluenceError(401, NOT_AUTHENTICATED) from None
            username, _, password = decoded.partition(":")
            user = self.directory.find_user(username)
            if user is None or self.directory.passwords.get(user.key) != password:
                raise ConfluenceError(401, NOT_AUTHENTICATED)
        elif scheme.lower() == "bearer" and self.version_info >= (7, 9):  # PATs from 7.9 (§2.1)
            key = self.directory.tokens.get(credentials.strip())
            user = self.directory.users.get(key) if key else None
            if user is None:
                raise ConfluenceError(401, NOT_AUTHENTICATED)
        else:
            return None  # anonymous; before 7.9 a Bearer header means nothing
        if not user.active:  # a disabled account cannot log in
            raise ConfluenceError(401, NOT_AUTHENTICATED)
        return user
