"""The Okta simulator's read endpoints: users, groups and memberships, Link-paged (idp-apis §1.3-§1.6)."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Collection, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from werkzeug.wrappers import Request, Response

from scimsync.sim.okta_common import (
    INVALID_SEARCH,
    NOT_FOUND,
    VALIDATION,
    OktaError,
    decode_cursor,
    encode_cursor,
    json_response,
)
from scimsync.sim.okta_query import GROUP_FILTER, GROUP_SEARCH, USER_FILTER, USER_SEARCH, compile_expression
from scimsync.sim.okta_state import OktaDirectory, SimGroup, SimUser, filter_view, group_json, user_json

T = TypeVar("T")

# cursor key (path, the query without after/limit, the cursor) -> page number, for page faults
PageKey = tuple[str, tuple[tuple[str, str], ...], str]


@dataclass
class Ctx:
    """One authenticated request."""

    request: Request
    directory: OktaDirectory
    max_page: int  # the org's largest page for /users (§1.4: 200 for most orgs, not fixed)
    search_lag: float
    pages: MutableMapping[PageKey, int]
    params: Mapping[str, str]

    @property
    def base(self) -> str:
        return str(self.request.host_url).rstrip("/")

    def arg(self, name: str) -> str | None:
        value: str | None = self.request.args.get(name)
        return value

    def only(self, allowed: Collection[str]) -> None:
        """Refuse a parameter the endpoint does not take: a typo must not silently do nothing [U]."""
        for name in self.request.args:
            if name not in allowed:
                raise OktaError(400, VALIDATION, name, causes=[f"{name}: unknown query parameter"])

    def limit(self, default: int, cap: int) -> int:
        """Return ``limit``; above the cap it is the cap [U: the reference does not say clamp or refuse]."""
        raw = self.arg("limit")
        if raw is None:
            return min(default, cap)
        try:
            value = int(raw)
        except ValueError:
            raise OktaError(400, VALIDATION, "limit", causes=["limit: not a number"]) from None
        if value < 1:
            raise OktaError(400, VALIDATION, "limit", causes=["limit: must be at least 1"])
        return min(value, cap)

    def no_paging(self) -> None:
        """``q`` lists are not paged (§1.4, §1.5): an ``after`` with them is refused [U]."""
        if self.arg("after") is not None:
            raise OktaError(400, INVALID_SEARCH, causes=["after: q results are not paged"])


def page_number(path: str, args: Mapping[str, str], pages: Mapping[PageKey, int]) -> int | None:
    """Return which page of its list a request asks for (1 without a cursor), None if unknown."""
    after = args.get("after")
    if after is None:
        return 1
    return pages.get((path, _list_key(args), after))


def _list_key(args: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in args.items() if k not in ("after", "limit")))


def _page(
    ctx: Ctx,
    items: Sequence[T],
    limit: int,
    render: Callable[[T], dict[str, Any]],
    ident: Callable[[T], str],
    *,
    by_id: bool = True,
) -> Response:
    """Answer the page of ``items`` after the cursor (items in id order unless not ``by_id``)."""
    start = 0
    after = ctx.arg("after")
    if after is not None:
        last = decode_cursor(after)
        ids = [ident(item) for item in items]
        if by_id:
            start = bisect.bisect_right(ids, last)
        elif last in ids:
            start = ids.index(last) + 1
        else:
            raise OktaError(400, INVALID_SEARCH, causes=["after: the cursor's item is gone"])
    chunk = items[start : start + limit]
    return _answer(ctx, [render(item) for item in chunk], limit, ident(chunk[-1]) if chunk else "")


def _scan_users(ctx: Ctx, keep: Callable[[SimUser], bool], limit: int) -> Response:
    """Page the users ``keep`` selects in id order, looking only as far as the page reaches."""
    users, ids = ctx.directory.users_by_id()
    after = ctx.arg("after")
    start = 0 if after is None else bisect.bisect_right(ids, decode_cursor(after))
    chunk: list[SimUser] = []
    for user in itertools.islice(users, start, None):
        if keep(user):
            chunk.append(user)
            if len(chunk) == limit:
                break
    return _answer(ctx, [user_json(u, ctx.base) for u in chunk], limit, chunk[-1].id if chunk else "")


def _answer(ctx: Ctx, rendered: list[dict[str, Any]], limit: int, last_id: str) -> Response:
    """Answer one page with its ``self`` and ``next`` links, two separate headers (§1.3, §9)."""
    response = json_response(rendered)
    response.headers.add("link", f'<{ctx.request.url}>; rel="self"')
    # A full page gets a next link even when nothing follows: the client meets an empty page.
    if len(rendered) == limit:
        cursor = encode_cursor(last_id)
        query = {**{k: v for k, v in ctx.request.args.items() if k != "after"}, "after": cursor}
        query["limit"] = str(limit)
        link = f"{ctx.base}{ctx.request.path}?{urlencode(query, quote_via=quote)}"
        response.headers.add("link", f'<{link}>; rel="next"')
        number = page_number(ctx.request.path, ctx.request.args, ctx.pages)
        ctx.pages[(ctx.request.path, _list_key(ctx.request.args), cursor)] = (number or 0) + 1
    return response


def _json_page(ctx: Ctx, items: list[dict[str, Any]], limit: int, *, by_id: bool = True) -> Response:
    return _page(ctx, items, limit, lambda item: item, lambda item: str(item["id"]), by_id=by_id)


def _user_page(ctx: Ctx, users: list[SimUser], limit: int) -> Response:
    return _page(ctx, users, limit, lambda u: user_json(u, ctx.base), lambda u: u.id)


def _live(user: SimUser) -> bool:
    return user.status != "DEPROVISIONED"


def _one_of(ctx: Ctx, names: tuple[str, ...]) -> None:
    given = [n for n in names if ctx.arg(n) is not None]
    if len(given) > 1:
        raise OktaError(400, INVALID_SEARCH, causes=[f"{' and '.join(given)} cannot be combined"])
    if (ctx.arg("sortBy") or ctx.arg("sortOrder")) and ctx.arg("search") is None:
        raise OktaError(400, INVALID_SEARCH, causes=["sortBy and sortOrder need search (§1.4)"])


def _sorted(ctx: Ctx, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """Apply sortBy/sortOrder (search only); return the items and whether they are still in id order."""
    field, order = ctx.arg("sortBy"), (ctx.arg("sortOrder") or "asc").lower()
    if order not in ("asc", "desc"):
        raise OktaError(400, INVALID_SEARCH, causes=["sortOrder: asc or desc"])
    if field is None:
        return items, True

    def value(item: dict[str, Any]) -> str:
        current: Any = item
        for part in field.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        return "" if current is None else str(current).lower()

    return sorted(items, key=lambda i: (value(i), i["id"]), reverse=order == "desc"), False


def list_users(ctx: Ctx) -> Response:
    """GET /api/v1/users: no query hides DEPROVISIONED; filter and search show them (§1.4)."""
    ctx.only(("limit", "after", "filter", "search", "q", "sortBy", "sortOrder"))
    _one_of(ctx, ("filter", "search", "q"))
    users = ctx.directory.sorted_users()
    q = ctx.arg("q")
    if q is not None:
        ctx.no_paging()
        limit = ctx.limit(10, ctx.max_page)  # with q the default is 10 (§1.4)
        hits = [u for u in users if _live(u) and _starts(u, q.lower())]
        return json_response([user_json(u, ctx.base) for u in hits[:limit]])
    limit = ctx.limit(200, ctx.max_page)
    expression, search = ctx.arg("filter"), ctx.arg("search")
    if expression is not None:
        # `filter` reads the store itself (no lag, §1.4); it names only what filter_view holds.
        match = compile_expression(expression, USER_FILTER)
        return _scan_users(ctx, lambda u: match(filter_view(u)), limit)
    if search is not None:
        keep = compile_expression(search, USER_SEARCH)
        items = [j for j in (_indexed(ctx, u) for u in users) if j is not None and keep(j)]
        items, by_id = _sorted(ctx, items)
        return _json_page(ctx, items, limit, by_id=by_id)
    return _scan_users(ctx, _live, limit)


def _starts(user: SimUser, prefix: str) -> bool:
    fields = ("firstName", "lastName", "email")
    return any(str(user.profile.get(f) or "").lower().startswith(prefix) for f in fields)


def _indexed(ctx: Ctx, user: SimUser) -> dict[str, Any] | None:
    """Return the user as the search index shows it: ``search_lag`` seconds behind (§1.4, §9)."""
    if ctx.directory.clock() - user.changed >= ctx.search_lag:
        return user_json(user, ctx.base)
    return user.indexed


def get_user(ctx: Ctx) -> Response:
    """GET /api/v1/users/{idOrLogin}: any status; a deleted user is 404 E0000007 (§1.4)."""
    ctx.only(())
    return json_response(user_json(_user(ctx), ctx.base))


def user_groups(ctx: Ctx) -> Response:
    """GET /api/v1/users/{id}/groups: the groups a user is in (§1.6), paged at 200 [U]."""
    ctx.only(("limit", "after"))
    user = _user(ctx)
    groups = [group_json(g, ctx.base) for g in ctx.directory.groups_of(user)]
    return _json_page(ctx, groups, ctx.limit(200, 200))


def list_groups(ctx: Ctx) -> Response:
    """GET /api/v1/groups: q, filter, search, expand=stats|app; limit up to 10000 (§1.5)."""
    ctx.only(("limit", "after", "q", "filter", "search", "expand", "sortBy", "sortOrder"))
    _one_of(ctx, ("filter", "search", "q"))
    expand = {e.strip() for e in (ctx.arg("expand") or "").split(",") if e.strip()}
    if expand - {"stats", "app"}:
        raise OktaError(400, INVALID_SEARCH, causes=["expand: stats or app"])
    directory = ctx.directory

    def render(group: SimGroup) -> dict[str, Any]:
        count = len(directory.member_ids(group)) if "stats" in expand else None
        return group_json(group, ctx.base, members=count)

    groups = directory.sorted_groups()
    q = ctx.arg("q")
    if q is not None:
        ctx.no_paging()  # paging and q cannot be combined (§1.5)
        hits = [render(g) for g in groups if g.name.lower().startswith(q.lower())]
        return json_response(hits[: ctx.limit(300, 10000)])
    limit = ctx.limit(200, 10000)
    items = [render(g) for g in groups]
    expression, search = ctx.arg("filter"), ctx.arg("search")
    if expression is not None:
        items = [g for g in items if compile_expression(expression, GROUP_FILTER)(g)]
    elif search is not None:
        keep = compile_expression(search, GROUP_SEARCH)
        items, by_id = _sorted(ctx, [g for g in items if keep(g)])
        return _json_page(ctx, items, limit, by_id=by_id)
    return _json_page(ctx, items, limit)


def get_group(ctx: Ctx) -> Response:
    """GET /api/v1/groups/{id}."""
    ctx.only(())
    return json_response(group_json(_group(ctx), ctx.base))


def group_users(ctx: Ctx) -> Response:
    """GET /api/v1/groups/{id}/users: User objects; default limit 1000 (§1.6), capped there [U]."""
    ctx.only(("limit", "after"))
    directory = ctx.directory
    members = [directory.users[i] for i in directory.member_ids(_group(ctx))]
    return _user_page(ctx, members, ctx.limit(1000, 1000))


def _user(ctx: Ctx) -> SimUser:
    wanted = ctx.params["user"]
    user = ctx.directory.find_user(wanted)
    if user is None:
        raise OktaError(404, NOT_FOUND, wanted, "User")
    return user


def _group(ctx: Ctx) -> SimGroup:
    wanted = ctx.params["group"]
    group = ctx.directory.groups.get(wanted)
    if group is None:
        raise OktaError(404, NOT_FOUND, wanted, "UserGroup")
    return group


Handler = Callable[[Ctx], Response]

# (path, handler, rate-limit bucket (§1.8), permission needed)
ROUTES: tuple[tuple[str, Handler, str, str], ...] = (
    ("/api/v1/users", list_users, "users", "users"),
    ("/api/v1/users/<user>", get_user, "user", "users"),
    ("/api/v1/users/<user>/groups", user_groups, "other", "users"),
    ("/api/v1/groups", list_groups, "groups", "groups"),
    ("/api/v1/groups/<group>", get_group, "group", "groups"),
    ("/api/v1/groups/<group>/users", group_users, "other", "groups"),
)
