"""The Keycloak simulator's admin API reads: users, their count, the group tree, members (idp §5).

Each handler gets a ``Ctx`` (the request, the realm, the calling client) and returns a
response or raises ``KcError``. Paging is ``first`` + ``max`` over an ordered list, with
no total and no link (idp §5.2); each list has its own default ``max``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from werkzeug.wrappers import Request, Response

from scimsync.sim.keycloak_realm import (
    QUERY_GROUPS,
    QUERY_USERS,
    VIEW_USERS,
    KcClient,
    KcGroup,
    Realm,
    group_rep,
    user_rep,
)

T = TypeVar("T")
JSON_TYPE = "application/json"

# Default page sizes: users and members 100 (idp §5.2, [S-KC8]); /children 10 (GroupResource
# getSubGroups, "Defaults to 10" — not in the reference, read in the keycloak source).
USERS_MAX = 100
MEMBERS_MAX = 100
CHILDREN_MAX = 10


def status_body(status: int) -> dict[str, str]:
    """Return the body Keycloak's error handler gives a bare status: {"error": "HTTP 401 Unauthorized"}."""
    return {"error": f"HTTP {status} {HTTPStatus(status).phrase}"}


class KcError(Exception):
    """An error answer; the admin API's bodies are ``{"error": ...}`` or ``{"errorMessage": ...}`` (§5.4)."""

    def __init__(self, status: int, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.body = body if body is not None else status_body(status)
        super().__init__(f"{status} {self.body}")

    def response(self) -> Response:
        """Render the error."""
        return json_response(self.body, self.status)


def json_response(data: Any, status: int = 200) -> Response:
    """Return ``data`` as JSON."""
    return Response(json.dumps(data), status=status, content_type=JSON_TYPE)


@dataclass
class Ctx:
    """One authenticated admin request."""

    request: Request
    realm: Realm
    client: KcClient
    version: tuple[int, int]
    page_cap: int | None = None  # a proxy that cuts every page (not Keycloak's own behaviour)
    params: dict[str, str] = field(default_factory=dict)

    def allow_args(self, names: Collection[str]) -> None:
        """Refuse a query parameter this simulator does not implement, rather than ignore it."""
        for name in self.request.args:
            if name not in names:
                raise KcError(400, {"errorMessage": f"simulator: query parameter '{name}' is not supported"})

    def int_arg(self, name: str, default: int | None) -> int | None:
        """Return an integer parameter; JAX-RS answers 404 for one it cannot convert ⚠."""
        raw = self.request.args.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise KcError(404) from None

    def bool_arg(self, name: str, default: bool) -> bool:
        """Return a boolean parameter the way Java's Boolean.valueOf reads it: only "true" is true."""
        raw = self.request.args.get(name)
        return default if raw is None else raw.lower() == "true"

    def require(self, *roles: str) -> None:
        """Answer 403 unless the service account holds one of ``roles`` (realm-management, §5.1)."""
        if not self.client.roles & set(roles):
            raise KcError(403)

    def group(self) -> KcGroup:
        """Return the group of the path's ``id``; 404 if there is none."""
        group = self.realm.groups.get(self.params["id"])
        if group is None:
            raise KcError(404, {"error": "Could not find group by id"})
        return group

    def page(self, items: Sequence[T], first: int | None, size: int | None) -> Sequence[T]:
        """Cut one page: a negative ``first`` is 0, a negative ``max`` no limit (JPA paging ⚠)."""
        start = max(0, first or 0)
        end = len(items) if size is None or size < 0 else start + size
        if self.page_cap is not None:
            end = min(end, start + self.page_cap)
        return items[start:end]


def list_users(ctx: Ctx) -> Response:
    """GET /users: the realm's users by username, brief or full (idp §5.2)."""
    ctx.allow_args({"first", "max", "briefRepresentation"})
    ctx.require(VIEW_USERS, QUERY_USERS)
    brief = ctx.bool_arg("briefRepresentation", False)
    users = ctx.realm.listed_users()
    if VIEW_USERS not in ctx.client.roles:
        # query-users lets a client search but not view: each user it may not view is
        # filtered out, so the list is empty while /users/count is not (UsersResource ⚠).
        users = []
    page = ctx.page(users, ctx.int_arg("first", 0), ctx.int_arg("max", USERS_MAX))
    return json_response([user_rep(u, brief=brief) for u in page])


def count_users(ctx: Ctx) -> Response:
    """GET /users/count: a bare integer, service accounts left out like the list (idp §5.2)."""
    ctx.allow_args(())
    ctx.require(VIEW_USERS, QUERY_USERS)
    return json_response(len(ctx.realm.listed_users()))


def list_groups(ctx: Ctx) -> Response:
    """GET /groups: the top-level groups by name; before 23 each with its whole subtree (idp §5.3)."""
    ctx.allow_args({"first", "max", "briefRepresentation"})
    ctx.require(VIEW_USERS, QUERY_GROUPS)
    first, size = ctx.int_arg("first", None), ctx.int_arg("max", None)
    if ctx.version < (23, 0) and (first is None or size is None):
        first, size = None, None  # the old resource pages only when both are given
    brief = ctx.bool_arg("briefRepresentation", True)
    tree = ctx.version < (23, 0)
    groups = ctx.page(ctx.realm.siblings(None), first, size)
    return json_response([group_rep(ctx.realm, g, brief=brief, tree=tree) for g in groups])


def count_groups(ctx: Ctx) -> Response:
    """GET /groups/count: ``{"count": n}``, every group or (``top=true``) the top level (⚠ §5.3)."""
    ctx.allow_args({"top"})
    ctx.require(VIEW_USERS, QUERY_GROUPS)
    groups = ctx.realm.siblings(None) if ctx.bool_arg("top", False) else list(ctx.realm.groups.values())
    return json_response({"count": len(groups)})


def get_group(ctx: Ctx) -> Response:
    """GET /groups/{id}: one group, full representation."""
    ctx.allow_args(())
    ctx.require(VIEW_USERS)
    return json_response(group_rep(ctx.realm, ctx.group(), brief=False, tree=ctx.version < (23, 0)))


def children(ctx: Ctx) -> Response:
    """GET /groups/{id}/children (Keycloak 23+): subgroups by name, ``max`` defaulting to 10."""
    ctx.allow_args({"first", "max", "briefRepresentation"})
    ctx.require(VIEW_USERS)
    group = ctx.group()
    brief = ctx.bool_arg("briefRepresentation", False)
    page = ctx.page(ctx.realm.siblings(group.id), ctx.int_arg("first", 0), ctx.int_arg("max", CHILDREN_MAX))
    return json_response([group_rep(ctx.realm, g, brief=brief, tree=False) for g in page])


def members(ctx: Ctx) -> Response:
    """GET /groups/{id}/members: the direct members by username, brief or full (idp §5.3)."""
    ctx.allow_args({"first", "max", "briefRepresentation"})
    ctx.require(VIEW_USERS)
    group = ctx.group()
    brief = ctx.bool_arg("briefRepresentation", False)
    page = ctx.page(ctx.realm.members(group), ctx.int_arg("first", 0), ctx.int_arg("max", MEMBERS_MAX))
    return json_response([user_rep(u, brief=brief) for u in page])
