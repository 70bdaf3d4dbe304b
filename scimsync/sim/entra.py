"""An in-memory Microsoft Entra ID tenant behind Microsoft Graph v1.0, strict to idp-apis §2.

Serve ``EntraSim().app`` with ``SimServer``; point both ``login_url`` and ``graph_url`` at
it. It serves the client-credentials token endpoint (§2.1), ``/v1.0/users`` (§2.2),
``/v1.0/groups`` and a group's ``members`` and ``transitiveMembers`` (§2.5), paged by
``@odata.nextLink`` (§2.3), with Graph's error envelope and, optionally, the identity
service's resource-unit throttling per app and tenant (§2.7). Seed it without HTTP
(``add_user``, ``add_group``, ``add_member``, ``seed_company``); break it with ``faults``
(any request) or ``fail_page`` (one page of one list), ``expire_tokens`` and friends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from scimsync.sim.entra_auth import READ_ROLES, App, Identity
from scimsync.sim.entra_directory import USER_LISTABLE, USER_SINGLE_ONLY, EntraDirectory
from scimsync.sim.entra_graph import GraphService, PageFault
from scimsync.sim.entra_query import GRAPH_JSON, TOO_MANY, ResourceUnits, graph_error_body
from scimsync.sim.faults import Faults, RequestLog

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

TENANT_ID = "8d1e5c2a-4f0b-4c3e-9a7d-2b6f1e0c9a41"
CLIENT_ID = "5b3f7a10-9c2e-4d8b-a6f1-0e4c2d9b7a35"
CLIENT_SECRET = "sim-entra-client-secret"

_ROUTES = Map(
    [
        Rule("/<tenant>/oauth2/v2.0/token", endpoint="token"),
        Rule("/v1.0/users", endpoint="users"),
        Rule("/v1.0/groups", endpoint="groups"),
        Rule("/v1.0/groups/<group_id>/members", endpoint="members"),
        Rule("/v1.0/groups/<group_id>/transitiveMembers", endpoint="transitiveMembers"),
    ],
    merge_slashes=False,
    strict_slashes=False,
)


class EntraSim:
    """One Entra ID tenant with one app registration; ``app`` is the WSGI callable."""

    def __init__(
        self,
        tenant_id: str = TENANT_ID,
        *,
        domain: str = "acme.example",
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        token_lifetime: float = 3599.0,
        max_page_size: int = 999,
        rate_limit: int | bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # max_page_size: Graph may return fewer than $top; tests use it to get many pages.
        # rate_limit: True sizes the quota by tenant size (§2.7), a number sets it.
        self.directory = EntraDirectory()
        self.identity = Identity(tenant_id, domain, token_lifetime, clock)
        limiter = (
            ResourceUnits(3500 if rate_limit is True else int(rate_limit), clock) if rate_limit else None
        )
        self.graph = GraphService(
            self.directory,
            self.identity,
            max_page_size=max_page_size,
            limiter=limiter,
            auto_quota=rate_limit is True,
        )
        self._lock = threading.RLock()
        self.add_app(client_id, client_secret)
        self.log = RequestLog()
        self.faults = Faults(
            self._wsgi,
            log=self.log,
            error_body=graph_error_body,
            rate_limit_body=TOO_MANY,
            content_type=GRAPH_JSON,
            quota_headers=False,  # Graph's 429 carries Retry-After, not X-RateLimit-* (§2.7)
        )
        self.app = self.faults

    # -- seeding and inspection (no HTTP) ------------------------------------

    def add_app(self, client_id: str, secret: str, *, roles: Iterable[str] = READ_ROLES) -> None:
        """Register an app with a client secret and admin-consented application permissions."""
        with self._lock:
            self.identity.apps[client_id] = App(client_id, secret, frozenset(roles))

    def add_user(
        self,
        upn: str,
        *,
        mail: str | None = None,
        given_name: str | None = None,
        surname: str | None = None,
        display_name: str | None = None,
        enabled: bool = True,
        user_type: str = "Member",
        groups: Iterable[str] = (),
        **props: Any,
    ) -> str:
        """Create a user (``props``: more Graph properties, e.g. ``department``); return its id.

        ``groups`` are display names of groups to put the user in, created when missing.
        """
        unknown = set(props) - set(USER_LISTABLE) - set(USER_SINGLE_ONLY)
        if unknown:
            raise TypeError(f"not user properties: {sorted(unknown)}")
        fields = {
            "userPrincipalName": upn,
            "mail": mail,
            "givenName": given_name,
            "surname": surname,
            "displayName": display_name,
            "accountEnabled": enabled,
            "userType": user_type,
            "businessPhones": [],
            "mailNickname": upn.split("@")[0],
            **props,
        }
        with self._lock:
            user = self.directory.add("user", fields)
            for name in groups:
                self.directory.add_member(self._group_named(name), user.id)
            return user.id

    def _group_named(self, name: str) -> str:
        """Return the id of the group named ``name``, created when there is none."""
        found = self.directory.find_groups(name)
        if len(found) > 1:
            raise ValueError(f"{len(found)} groups are named {name!r}: add the user by group id")
        return found[0].id if found else self.add_group(name)

    def add_group(
        self,
        display_name: str,
        *,
        members: Iterable[str] = (),
        description: str | None = None,
        security_enabled: bool = True,
        group_types: Iterable[str] = (),
    ) -> str:
        """Create a group with direct members (user or group ids); return its id."""
        with self._lock:
            group = self.directory.add(
                "group",
                {
                    "displayName": display_name,
                    "description": description,
                    "securityEnabled": security_enabled,
                    "mailEnabled": False,
                    "groupTypes": list(group_types),
                    "mailNickname": display_name.replace(" ", "-")[:64],
                    "mail": None,
                    "visibility": None,
                },
            )
            for member in members:
                self.directory.add_member(group.id, member)
            return group.id

    def add_member(self, group_id: str, member_id: str) -> None:
        """Make a user, group (nesting) or other object a direct member of a group."""
        with self._lock:
            self.directory.add_member(group_id, member_id)

    def add_object(self, kind: str, display_name: str, *, groups: Iterable[str] = ()) -> str:
        """Create a device, servicePrincipal or orgContact, a member of the groups given by id."""
        if kind in ("user", "group"):
            raise ValueError("use add_user or add_group")
        with self._lock:
            obj = self.directory.add(kind, {"displayName": display_name, "accountEnabled": True})
            for group_id in groups:
                self.directory.add_member(group_id, obj.id)
            return obj.id

    def update_user(self, user_id: str, **props: Any) -> None:
        """Change a user's Graph properties (``accountEnabled=False`` disables it, §2.4)."""
        with self._lock:
            self.directory.get(user_id, "user").props.update(props)

    def delete(self, object_id: str) -> None:
        """Delete an object: a deleted user leaves /users and every group (§2.4)."""
        with self._lock:
            self.directory.remove(object_id)

    def clear(self) -> None:
        """Delete every user, group and other object (the apps and tokens stay)."""
        with self._lock:
            self.directory.clear()

    def group_id(self, display_name: str) -> str:
        """Return the id of the one group with this name."""
        with self._lock:
            found = self.directory.find_groups(display_name)
        if len(found) != 1:
            raise KeyError(f"{len(found)} groups are named {display_name!r}")
        return found[0].id

    def seed_company(self, people: list[dict[str, Any]]) -> dict[str, str]:
        """Create users and groups from ``make_people()`` records; return username -> user id.

        The user principal name is the email, as in most tenants; the record id becomes
        ``employeeId`` (Graph assigns its own object ids).
        """
        ids = {}
        for person in people:
            first, last = person["first_name"], person["last_name"]
            ids[person["username"]] = self.add_user(
                person["email"],
                mail=person["email"],
                given_name=first,
                surname=last,
                display_name=f"{first} {last}".strip(),
                enabled=bool(person.get("active", True)),
                groups=person.get("groups", ()),
                employeeId=str(person["id"]),
                department=person.get("department"),
            )
        return ids

    # -- breaking it ----------------------------------------------------------

    def fail_page(
        self,
        collection: str,
        page: int,
        status: int,
        *,
        times: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer page ``page`` of a list ("users", "groups", "groups/{id}/transitiveMembers") ``status``.

        ``times`` answers (None: every time); a 429 carries Retry-After and the throttle headers.
        """
        with self._lock:
            self.graph.page_faults[(collection, page)] = PageFault(status, times, retry_after)

    def page_answers(self, collection: str, page: int) -> list[int]:
        """Return the statuses page ``page`` of a list was answered with, in order."""
        with self._lock:
            return list(self.graph.page_answers.get((collection, page), []))

    def expire_tokens(self) -> None:
        """Make every access token issued so far expired."""
        with self._lock:
            self.identity.expire_all()

    def expire_tokens_after(self, pages: int) -> None:
        """Expire every access token issued so far once ``pages`` more pages of users were served."""
        with self._lock:
            self.graph.expire_after = pages

    def expire_secret(self, client_id: str) -> None:
        """Make an app's client secret expired: the token endpoint refuses it (AADSTS7000222)."""
        with self._lock:
            self.identity.apps[client_id].secret_expired = True

    # -- HTTP ---------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        with self._lock:
            response = self._dispatch(request)
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _dispatch(self, request: Request) -> Response:
        try:
            endpoint, params = _ROUTES.bind_to_environ(request.environ).match(method=request.method)
        except HTTPException:
            if not request.path.startswith("/v1.0/"):
                return Response(b"Not Found", status=404, content_type="text/plain")
            endpoint, params = "", {}
        if endpoint == "token":
            if request.method != "POST":
                return Response(b"Method Not Allowed", status=405, content_type="text/plain")
            return self.identity.token_endpoint(request, params["tenant"])
        return self.graph.serve(request, endpoint, params.get("group_id"))
