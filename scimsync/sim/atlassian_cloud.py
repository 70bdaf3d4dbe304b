"""An in-memory Atlassian Cloud user-provisioning API (SCIM 2.0) of one directory, strict to §3.

Serve ``AtlassianCloudSim().app`` with ``SimServer``; everything lives under ``base_path``
(``/scim/directory/<directory_id>``, §3.1). Seed and inspect it directly through
``add_user``, ``add_group``, ``claim_managed_account``, ``user``, ``members`` and
``group_names``.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from scimsync.sim import atlassian_cloud_discovery as discovery
from scimsync.sim import atlassian_cloud_groups as groups
from scimsync.sim import atlassian_cloud_users as users
from scimsync.sim.atlassian_cloud_common import (
    NO_RESOURCE,
    SCIM_TYPE,
    Ctx,
    FailureError,
    ScimError,
    fault_body,
)
from scimsync.sim.atlassian_cloud_directory import CloudDirectory, CloudGroup, CloudUser, primary_email
from scimsync.sim.faults import Faults, RateLimiter, RequestLog

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

Handler = Callable[[Ctx], Response]

DIRECTORY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# [U] The Failure texts of §3.8 are not documented; these name the cause.
NO_KEY = "Unauthorized: send the directory API key as 'Authorization: Bearer <key>'"
BAD_KEY = "Unauthorized: the directory API key is not valid"
RATE_LIMITED = "Too many requests: retry after the time in Retry-After"

ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("/Users", "GET", users.list_users),
    ("/Users", "POST", users.create_user),
    ("/Users/<user_id>", "GET", users.get_user),
    ("/Users/<user_id>", "PUT", users.replace_user),
    ("/Users/<user_id>", "PATCH", users.patch_user),
    ("/Users/<user_id>", "DELETE", users.delete_user),
    ("/Groups", "GET", groups.list_groups),
    ("/Groups", "POST", groups.create_group),
    ("/Groups/<group_id>", "GET", groups.get_group),
    ("/Groups/<group_id>", "PUT", groups.replace_group),
    ("/Groups/<group_id>", "PATCH", groups.patch_group),
    ("/Groups/<group_id>", "DELETE", groups.delete_group),
    ("/Schemas", "GET", discovery.schemas),
    ("/Schemas/<urn>", "GET", discovery.schema),
    ("/ResourceTypes", "GET", discovery.resource_types),
    ("/ResourceTypes/<name>", "GET", discovery.resource_type),
    ("/ServiceProviderConfig", "GET", discovery.service_provider_config),
)


class AtlassianCloudSim:
    """One Atlassian Cloud SCIM directory; ``app`` is the WSGI callable (with faults and a log)."""

    def __init__(
        self,
        *,
        directory_id: str = "d0c5-sim-directory",
        token: str = "sim-cloud-api-key",
        verified_domains: Iterable[str] = ("acme.example", "acme.test", "example.test"),
        max_users: int = 20000,
        rate_limit: tuple[int, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        delete_removes: bool = False,
    ) -> None:
        if not DIRECTORY_ID.fullmatch(directory_id):
            raise ValueError(f"not a directory id: {directory_id!r}")
        if not token or max_users < 0:
            raise ValueError("the API key must not be empty and max_users not negative")
        self.directory_id = directory_id
        self.token = token
        self.base_path = f"/scim/directory/{directory_id}"
        # §3.9: 20,000 users per directory [U current]; §3.6: the two documented DELETEs.
        self.directory = CloudDirectory(
            verified_domains=verified_domains, max_users=max_users, delete_removes=delete_removes
        )
        self.limiter = RateLimiter(rate_limit[0], rate_limit[1], clock) if rate_limit else None
        self._lock = threading.RLock()
        self._handlers = {f"{method} {path}": handler for path, method, handler in ROUTES}
        rules = [Rule(self.base_path + p, methods=[m], endpoint=f"{m} {p}") for p, m, _ in ROUTES]
        self._map = Map(rules, merge_slashes=False, redirect_defaults=False)
        self.log = RequestLog()
        self.faults = Faults(
            self._wsgi,
            log=self.log,
            error_body=fault_body,
            rate_limit_body=ScimError(429, RATE_LIMITED).body,
            content_type=SCIM_TYPE,
            quota_headers=False,  # §3.9: SCIM publishes no rate-limit headers
        )
        self.app = self.faults

    # -- seeding and inspection (no HTTP) ------------------------------------

    def add_user(
        self,
        user_name: str,
        email: str,
        display_name: str,
        *,
        active: bool = True,
        external_id: str | None = None,
        groups: Iterable[str] = (),
        managed_account: bool = False,
    ) -> str:
        """Create a user by the rules of a POST (ValueError if broken); return its SCIM id.

        ``groups`` are names, created when missing; ``managed_account`` links the user to
        an existing Atlassian account for its email (§3.5).
        """
        attrs: dict[str, Any] = {
            "userName": user_name,
            "emails": [{"value": email, "type": "work", "primary": True}],
            "displayName": display_name,
            "active": active,
        }
        if external_id is not None:
            attrs["externalId"] = external_id
        with self._lock:
            try:
                users.check_user(self.directory, attrs, None)
            except ScimError as exc:
                raise ValueError(exc.detail) from None
            if len(self.directory.users) >= self.directory.max_users:
                raise ValueError(f"the directory has reached its limit of {self.directory.max_users} users")
            if managed_account:
                self.directory.claim(email)
            user = self.directory.create_user(attrs)
            for name in groups:
                group = self._group(name)
                self.directory.set_members(group, [*group.members, user.id])
            return user.id

    def add_group(self, name: str, *, members: Iterable[str] = ()) -> str:
        """Create a group (or extend an existing one) with members by userName; return its id."""
        with self._lock:
            group = self._group(name)
            ids = [self._live_user(user_name).id for user_name in members]
            self.directory.set_members(group, [*group.members, *ids])
            return group.id

    def claim_managed_account(self, email: str) -> None:
        """Record that an Atlassian account exists for ``email``: a user created with it links to it."""
        with self._lock:
            self.directory.claim(email)

    def user(self, user_name_or_id: str) -> dict[str, Any] | None:
        """Return a user's state by SCIM id or userName (deleted ones included), or None."""
        with self._lock:
            directory = self.directory
            user = directory.users.get(user_name_or_id) or directory.user_named(user_name_or_id)
            if user is None:
                return None
            return {
                "id": user.id,
                "userName": user.user_name,
                "email": primary_email(user.attrs),
                "display_name": user.attrs.get("displayName"),
                "active": user.attrs.get("active", True),
                "external_id": user.attrs.get("externalId"),
                "groups": sorted(g.display_name for g in directory.groups_of(user.id)),
            }

    def members(self, group: str) -> set[str]:
        """Return the userNames of a group's members (KeyError for an unknown group)."""
        with self._lock:
            found = self.directory.group_named(group)
            if found is None:
                raise KeyError(f"no group {group!r}")
            return {self.directory.users[user_id].user_name for user_id in found.members}

    def group_names(self) -> set[str]:
        """Return every group name, as created."""
        with self._lock:
            return {g.display_name for g in self.directory.groups.values()}

    def _group(self, name: str) -> CloudGroup:
        return self.directory.group_named(name) or self.directory.create_group(name, None, ())

    def _live_user(self, user_name: str) -> CloudUser:
        user = self.directory.user_named(user_name)
        if user is None or user.deleted:
            raise KeyError(f"no user {user_name!r}")
        return user

    # -- HTTP ---------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request."""
        response = self._dispatch(Request(environ))
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path != self.base_path and not path.startswith(self.base_path + "/"):
            return ScimError(404, NO_RESOURCE).response()  # another directory, or no API at all
        with self._lock:
            try:
                return self._serve(request)
            except (ScimError, FailureError) as exc:
                return exc.response()

    def _serve(self, request: Request) -> Response:
        """Authenticate, spend a token, route and run the handler (caller holds the lock)."""
        self._authenticate(request)
        if self.limiter is not None:
            allowed, headers = self.limiter.take(self.token)
            if not allowed:  # §3.9: no published limits or headers; only Retry-After
                response = ScimError(429, RATE_LIMITED).response()
                response.headers["Retry-After"] = dict(headers)["retry-after"]
                return response
        try:
            endpoint, params = self._map.bind_to_environ(request.environ).match()
        except MethodNotAllowed as exc:
            response = ScimError(405, f"method {request.method} is not allowed on {request.path}").response()
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))
            return response
        except HTTPException:
            raise ScimError(404, f"no endpoint at {request.path}") from None
        base_url = request.host_url.rstrip("/") + request.script_root + self.base_path
        return self._handlers[endpoint](Ctx(request, self.directory, base_url, dict(params)))

    def _authenticate(self, request: Request) -> None:
        """Accept only ``Bearer <directory API key>`` (§3.1); 401 with the Failure body otherwise."""
        header = request.headers.get("Authorization", "")
        if not header:
            raise FailureError(401, NO_KEY)
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), self.token.encode()):
            raise FailureError(401, BAD_KEY)
