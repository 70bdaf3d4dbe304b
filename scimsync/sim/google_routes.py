"""The Directory API endpoints of the Google Workspace simulator (idp-apis §3.2-§3.5).

Each handler checks its scopes and parameters as strictly as the reference allows: a page
larger than the cap (users 500, groups and members 200) is refused, not clamped; a list
needs ``customer`` or ``domain``; a page token belongs to one list. An empty page leaves
its list field out, as Google's JSON does for an empty repeated field [U].
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from werkzeug.wrappers import Request, Response

from scimsync.sim.google_common import (
    GoogleError,
    PageTokens,
    bool_param,
    choice_param,
    etag,
    int_param,
    json_response,
)
from scimsync.sim.google_directory import ROLES, Directory, GUser
from scimsync.sim.google_oauth import GROUP_MEMBER_READONLY, GROUP_READONLY, SCOPE_PREFIX, USER_READONLY

T = TypeVar("T")

# Scopes each endpoint accepts: the read-only ones and their read-write parents.
USER_SCOPES = frozenset({USER_READONLY, SCOPE_PREFIX + "admin.directory.user"})
GROUP_SCOPES = frozenset({GROUP_READONLY, SCOPE_PREFIX + "admin.directory.group"})
MEMBER_SCOPES = GROUP_SCOPES | {GROUP_MEMBER_READONLY, SCOPE_PREFIX + "admin.directory.group.member"}
# §3.2 and §3.5: the largest pages.
USERS_MAX, GROUPS_MAX, MEMBERS_MAX = 500, 200, 200
NOT_AUTHORIZED = "Not Authorized to access this resource/api"


class PageHooks(Protocol):
    """What the simulator does around each page: injected faults, short pages, tampering."""

    def before_page(self, what: str, group: str | None, page: int) -> None:
        """Raise an injected error for this page, if one is due."""
        ...

    def page_size(self, asked: int) -> int:
        """Return how many items the page holds (at most ``asked``)."""
        ...

    def after_page(self, what: str, group: str | None, page: int, body: dict[str, Any]) -> Any:
        """Return the body to send (tampered with, or raw bytes)."""
        ...


@dataclass
class Ctx:
    """One authorised request."""

    request: Request
    directory: Directory
    hooks: PageHooks
    tokens: PageTokens
    scopes: frozenset[str]
    now: float  # wall-clock seconds: page tokens live three days

    @property
    def args(self) -> Mapping[str, str]:
        """Return the query parameters."""
        args: Mapping[str, str] = self.request.args
        return args

    def need_scope(self, accepted: Iterable[str]) -> None:
        """Refuse a token granted none of ``accepted``."""
        if not self.scopes & set(accepted):
            raise GoogleError(
                403, "Request had insufficient authentication scopes.", "insufficientPermissions"
            )


def forbidden() -> GoogleError:
    """Return the answer to a caller who is no admin of this customer."""
    return GoogleError(403, NOT_AUTHORIZED, "forbidden")


def _list_scope(ctx: Ctx) -> str | None:
    """Check ``customer`` / ``domain`` (one is required, §3.2); return the domain to keep, if any."""
    customer, domain = ctx.args.get("customer"), ctx.args.get("domain")
    if customer is None and domain is None:
        raise GoogleError(400, "Bad Request", "badRequest")  # §9 ⚠: a 400 is assumed
    if customer is not None and customer not in ("my_customer", ctx.directory.customer_id):
        raise forbidden()  # [U] another customer's directory
    if domain is not None and domain.lower() not in ctx.directory.domains:
        raise forbidden()  # [U]
    return domain.lower() if domain is not None else None


def _page(
    ctx: Ctx,
    what: str,
    items: Sequence[T],
    render: Callable[[T], dict[str, Any]],
    signature: tuple[Any, ...],
    *,
    cap: int,
    default: int,
    group: str | None = None,
) -> Response:
    """Serve one page of ``items`` for maxResults and pageToken."""
    size = int_param(ctx.args, "maxResults", default, 1, cap)
    token = ctx.args.get("pageToken")
    state = ctx.tokens.resolve(token, signature, ctx.now) if token else None
    offset, number = (state.offset, state.page) if state else (0, 1)
    ctx.hooks.before_page(what, group, number)
    end = offset + ctx.hooks.page_size(size)
    chunk = [render(item) for item in items[offset:end]]
    body: dict[str, Any] = {"kind": f"admin#directory#{what}", "etag": etag(chunk)}
    if chunk:
        body[what] = chunk
    if end < len(items):
        body["nextPageToken"] = ctx.tokens.issue(signature, end, number + 1, ctx.now)
    result = ctx.hooks.after_page(what, group, number, body)
    if isinstance(result, bytes):
        return Response(result, status=200, content_type="application/json; charset=UTF-8")
    return json_response(result)


# --- users --------------------------------------------------------------------------------

_ORDER: dict[str, Callable[[GUser], str]] = {
    "email": lambda u: u.primary_email.lower(),
    "givenName": lambda u: u.given_name.lower(),
    "familyName": lambda u: u.family_name.lower(),
}
_CLAUSE = re.compile(r"(\w+)([=:])(.+)")


def _query(raw: str | None) -> list[Callable[[GUser], bool]]:
    """Parse the part of §3.4's search syntax the simulator knows; anything else is a 400. [U]"""
    tests: list[Callable[[GUser], bool]] = []
    for clause in (raw or "").split():
        match = _CLAUSE.fullmatch(clause)
        field, op, value = match.groups() if match else ("", "", "")
        value = value.strip("'\"").lower()
        if field in ("isSuspended", "isArchived") and op == "=" and value in ("true", "false"):
            tests.append(_flag("suspended" if field == "isSuspended" else "archived", value == "true"))
        elif field == "email" and op == "=":
            tests.append(_email_is(value))
        elif field == "email" and op == ":" and value.endswith("*"):
            tests.append(_email_starts(value[:-1]))
        else:
            raise GoogleError(400, "Invalid Input: query", "invalid", location="query")
    return tests


def _flag(attribute: str, wanted: bool) -> Callable[[GUser], bool]:
    return lambda user: bool(getattr(user, attribute)) == wanted


def _email_is(value: str) -> Callable[[GUser], bool]:
    return lambda user: value in (user.primary_email.lower(), *(a.lower() for a in user.aliases))


def _email_starts(prefix: str) -> Callable[[GUser], bool]:
    return lambda user: user.primary_email.lower().startswith(prefix)


def _projection(ctx: Ctx) -> tuple[str, tuple[str, ...], bool]:
    projection = choice_param(ctx.args, "projection", "basic", ("basic", "custom", "full"))
    mask = tuple(m for m in (ctx.args.get("customFieldMask") or "").split(",") if m)
    if projection == "custom" and not mask:
        raise GoogleError(400, "Custom field mask is required with projection=custom", "badRequest")
    view = choice_param(ctx.args, "viewType", "admin_view", ("admin_view", "domain_public"))
    return projection, mask, view == "domain_public"


def list_users(ctx: Ctx) -> Response:
    """GET /users (§3.2): customer or domain, up to 500 a page; showDeleted lists only deleted users."""
    ctx.need_scope(USER_SCOPES)
    domain = _list_scope(ctx)
    deleted = bool_param(ctx.args, "showDeleted")
    projection, mask, public = _projection(ctx)
    order = choice_param(ctx.args, "orderBy", "", tuple(_ORDER))
    descending = choice_param(ctx.args, "sortOrder", "ASCENDING", ("ASCENDING", "DESCENDING")) == "DESCENDING"
    tests = _query(ctx.args.get("query"))
    users = [
        u
        for u in ctx.directory.users.values()
        if u.deleted == deleted
        and (domain is None or u.primary_email.lower().endswith("@" + domain))
        and all(test(u) for test in tests)
    ]
    if order:
        users.sort(key=_ORDER[order], reverse=descending)
    signature: tuple[Any, ...] = ("users", ctx.args.get("customer"), domain, deleted, ctx.args.get("query"))
    signature += (order, descending, projection, mask, public)

    def render(user: GUser) -> dict[str, Any]:
        return ctx.directory.render_user(user, projection=projection, mask=mask, public=public)

    return _page(ctx, "users", users, render, signature, cap=USERS_MAX, default=100)


def get_user(ctx: Ctx, user_key: str) -> Response:
    """GET /users/{userKey}: by id, primary email or alias."""
    ctx.need_scope(USER_SCOPES)
    projection, mask, public = _projection(ctx)
    user = ctx.directory.find_user(user_key)
    if user is None:
        raise GoogleError(404, "Resource Not Found: userKey", "notFound")
    return json_response(ctx.directory.render_user(user, projection=projection, mask=mask, public=public))


# --- groups and members ---------------------------------------------------------------------


def list_groups(ctx: Ctx) -> Response:
    """GET /groups (§3.5): customer or domain (or userKey), up to 200 a page."""
    ctx.need_scope(GROUP_SCOPES)
    if ctx.args.get("query"):
        raise GoogleError(400, "Invalid Input: the simulator supports no groups query", "invalid")
    user_key = ctx.args.get("userKey")
    if user_key:
        user = ctx.directory.find_user(user_key)
        if user is None:
            raise GoogleError(404, "Resource Not Found: userKey", "notFound")
        groups = list(ctx.directory.groups_of(user))
        domain = None
    else:
        domain = _list_scope(ctx)
        groups = [
            g
            for g in ctx.directory.groups.values()
            if domain is None or g.email.lower().endswith("@" + domain)
        ]
    if choice_param(ctx.args, "orderBy", "", ("email",)):
        descending = choice_param(ctx.args, "sortOrder", "ASCENDING", ("ASCENDING", "DESCENDING"))
        groups.sort(key=lambda g: g.email.lower(), reverse=descending == "DESCENDING")
    signature: tuple[Any, ...] = (
        "groups",
        ctx.args.get("customer"),
        domain,
        user_key,
        ctx.args.get("orderBy"),
    )
    signature += (ctx.args.get("sortOrder"),)
    return _page(ctx, "groups", groups, ctx.directory.render_group, signature, cap=GROUPS_MAX, default=200)


def list_members(ctx: Ctx, group_key: str) -> Response:
    """GET /groups/{groupKey}/members (§3.5): up to 200 a page; includeDerivedMembership adds nested users."""
    ctx.need_scope(MEMBER_SCOPES)
    group = ctx.directory.find_group(group_key)
    if group is None:
        raise GoogleError(404, "Resource Not Found: groupKey", "notFound")
    roles = ctx.args.get("roles")
    wanted = {r.strip().upper() for r in roles.split(",")} if roles else set(ROLES)
    if not wanted <= set(ROLES):
        raise GoogleError(400, f"Invalid value '{roles}'.", "invalid", location="roles")
    derived = bool_param(ctx.args, "includeDerivedMembership")
    members = ctx.directory.derived_members(group) if derived else list(group.members.values())
    members = [m for m in members if m.role in wanted]
    signature = ("members", group.id, tuple(sorted(wanted)), derived)
    render = ctx.directory.render_member
    return _page(ctx, "members", members, render, signature, cap=MEMBERS_MAX, default=200, group=group.id)
