"""The OneLogin simulator's endpoints: token, users, roles, role users, v1 groups (idp-apis §4).

v2 lists are bare JSON arrays paged by response headers (``After-Cursor``, ``Total-Count``
..., §4.2); v1 groups come in the ``{status, pagination, data}`` envelope (§4.4). Every
error uses the §4.6 envelope ``{"status": {"error": true, "code", "type", "message"}}``.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from scimsync.sim.onelogin_store import Cursor, OLGroup, OLRole, OLUser, decode_cursor, user_json

JSON_TYPE = "application/json; charset=utf-8"
DEFAULT_LIMIT = 50  # §4.2: "returns up to 50 users per page" by default
V1_PAGE = 50  # [U] the v1 page size; §4.4 names no limit parameter
TYPES = {
    400: "bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "not found",
    405: "method not allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def envelope(code: int, message: str) -> dict[str, Any]:
    """Return the §4.6 error envelope."""
    return {"status": {"error": True, "code": code, "type": TYPES.get(code, "error"), "message": message}}


def error_body(code: int) -> dict[str, Any]:
    """Return the envelope for a fault injected by ``Faults`` (§4.6)."""
    return envelope(code, f"Injected fault: HTTP {code}")


class OneLoginError(Exception):
    """An error answer in the §4.6 envelope, with extra headers (the 429's X-RateLimit-*)."""

    def __init__(self, code: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.headers = list(headers)

    def response(self) -> Response:
        """Render the error."""
        response = json_response(envelope(self.code, self.message), self.code)
        for name, value in self.headers:
            response.headers[name] = value
        return response


def json_response(data: Any, status: int = 200) -> Response:
    """Return ``data`` as JSON."""
    return Response(json.dumps(data), status=status, content_type=JSON_TYPE)


# --- header paging (§4.2) ---------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Which page a list request asks for: its filters, page size and where it starts."""

    list_key: str
    filters: tuple[tuple[str, str], ...]
    limit: int
    after: int  # show ids greater than this
    page: int
    start: int | None = None  # an index, for the `page` parameter


@dataclass(frozen=True)
class Paging:
    """The simulated caps: the largest ``limit`` and what a larger one gets."""

    max_limit: int = 100  # §4.2: the SDK's "max 100"
    clamp: bool = False  # False: 400 for a larger limit; True: serve max_limit


def window(request: Request, list_key: str, filters: Iterable[str], paging: Paging) -> Window:
    """Read ``limit``/``cursor``/``page`` and the filters; refuse what the list does not take."""
    args = request.args
    known = {"limit", "cursor", "page", *filters}
    for name in args:
        if name not in known:
            raise OneLoginError(400, f"Unsupported query parameter: {name}")
    query = tuple(sorted((k, v) for k, v in args.items() if k in set(filters)))
    token = args.get("cursor")
    if token is not None and args.get("page") is not None:
        raise OneLoginError(400, "Use either cursor or page, not both")
    if token is not None:
        _limit(args.get("limit"), paging)  # refused when invalid, else the cursor's own size holds
        cursor = decode_cursor(token)
        if cursor is None or cursor.list_key != list_key:
            raise OneLoginError(400, "Invalid cursor")
        if query and query != cursor.query:
            raise OneLoginError(400, "The cursor was made for another query")
        return Window(list_key, cursor.query, cursor.limit, cursor.after, cursor.page)
    limit = _limit(args.get("limit"), paging)
    page = _int_arg("page", args.get("page"), 1)
    if page < 1:
        raise OneLoginError(400, "page must be 1 or more")
    return Window(list_key, query, limit, 0, page, (page - 1) * limit)


def _limit(raw: str | None, paging: Paging) -> int:
    limit = _int_arg("limit", raw, DEFAULT_LIMIT)
    if limit < 1:
        raise OneLoginError(400, "limit must be 1 or more")
    if limit > paging.max_limit:
        if not paging.clamp:
            raise OneLoginError(400, f"limit must be {paging.max_limit} or less")
        limit = paging.max_limit
    return limit


def _int_arg(name: str, raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise OneLoginError(400, f"{name} must be an integer") from None


def page_response(
    request: Request, win: Window, rows: Sequence[tuple[int, dict[str, Any]]], path: str
) -> Response:
    """Answer one page of ``rows`` (id, JSON) sorted by id, with the §4.2 headers."""
    rows = sorted(rows, key=lambda row: row[0])
    start = win.start if win.start is not None else sum(1 for rid, _ in rows if rid <= win.after)
    shown = rows[start : start + win.limit]
    response = json_response([body for _, body in shown])
    total = len(rows)

    def cursor(after: int, page: int) -> str:
        return Cursor(win.list_key, win.filters, after, win.limit, page).encode()

    more = start + win.limit < total
    after_cursor = cursor(shown[-1][0], win.page + 1) if more and shown else ""
    before = ""
    if start > 0:
        previous = max(0, start - win.limit)
        before = cursor(rows[previous - 1][0] if previous else 0, max(1, win.page - 1))
    headers = {
        "Total-Count": str(total),
        "Total-Pages": str(math.ceil(total / win.limit)),
        "Current-Page": str(win.page),
        "Page-Items": str(win.limit),  # the page size, as in the §4.2 example (50 for 2 users)
        "Before-Cursor": before,
        "After-Cursor": after_cursor,  # empty on the last page (§4.2 example)
    }
    if after_cursor:
        base = str(request.host_url).rstrip("/") + request.script_root + path
        headers["Link"] = f'<{base}?{urlencode({"cursor": after_cursor})}>; rel="next"'
    response.headers.update(headers)
    return response


# --- the lists ---------------------------------------------------------------------------

USER_FILTERS = ("user_ids", "username", "email")
Rows = list[tuple[int, dict[str, Any]]]  # (id, JSON) of every item of a list, before paging


def user_rows(users: Iterable[OLUser], roles: list[OLRole], filters: tuple[tuple[str, str], ...]) -> Rows:
    """Return the users matching ``filters`` (§4.2: ``user_ids`` a comma list; ``*`` wildcards)."""
    wanted = dict(filters)
    ids: set[int] | None = None
    if "user_ids" in wanted:
        try:
            ids = {int(part) for part in wanted["user_ids"].split(",") if part.strip()}
        except ValueError:
            raise OneLoginError(400, "user_ids must be a comma-separated list of integers") from None
    return [
        (u.id, user_json(u, roles))
        for u in users
        if (ids is None or u.id in ids)
        and _like(u.username, wanted.get("username"))
        and _like(u.email, wanted.get("email"))
    ]


def _like(value: str | None, pattern: str | None) -> bool:
    """Match a §4.2 filter value: ``*`` is a wildcard; compared case-insensitively [U]."""
    if pattern is None:
        return True
    return fnmatch.fnmatchcase((value or "").lower(), pattern.lower())


def role_rows(roles: Iterable[OLRole], filters: tuple[tuple[str, str], ...]) -> Rows:
    """Return the roles (id, name) matching a ``name`` filter [U: exact match]."""
    wanted = dict(filters)
    name = wanted.get("name", wanted.get("role_name"))
    return [(r.id, {"id": r.id, "name": r.name}) for r in roles if name is None or r.name == name]


def role_user_rows(
    role: OLRole, users: Iterable[OLUser], roles: list[OLRole], filters: tuple[tuple[str, str], ...]
) -> Rows:
    """Return a role's users as User objects (§4.4, the SDK's ``List[User]``)."""
    wanted = dict(filters)
    unassigned = wanted.get("include_unassigned", "false").lower()
    if unassigned not in ("true", "false"):
        raise OneLoginError(400, "include_unassigned must be true or false")
    name = (wanted.get("name") or "").lower()

    def named(u: OLUser) -> bool:
        fields = (u.firstname, u.lastname, u.username, u.email)
        return not name or any(name in (f or "").lower() for f in fields)

    return [
        (u.id, user_json(u, roles))
        for u in users
        if (unassigned == "true" or u.id in role.users) and named(u)
    ]


def v1_groups(request: Request, groups: Sequence[OLGroup], path: str) -> Response:
    """Answer ``GET /api/1/groups`` in the v1 envelope, 50 a page, ``after_cursor`` paging (§4.4)."""
    for name in request.args:
        if name != "after_cursor":
            raise OneLoginError(400, f"Unsupported query parameter: {name}")
    after = 0
    token = request.args.get("after_cursor")
    if token is not None:
        cursor = decode_cursor(token)
        if cursor is None or cursor.list_key != "v1-groups":
            raise OneLoginError(400, "Invalid cursor")
        after = cursor.after
    rows = sorted((g for g in groups if g.id > after), key=lambda g: g.id)
    shown = rows[:V1_PAGE]
    next_cursor = Cursor("v1-groups", (), shown[-1].id, V1_PAGE, 0).encode() if len(rows) > V1_PAGE else None
    base = str(request.host_url).rstrip("/") + request.script_root + path
    return json_response(
        {
            "status": {"error": False, "code": 200, "type": "success", "message": "Success"},
            "pagination": {
                "before_cursor": None,
                "after_cursor": next_cursor,
                "previous_link": None,
                "next_link": f"{base}?{urlencode({'after_cursor': next_cursor})}" if next_cursor else None,
            },
            "data": [{"id": g.id, "name": g.name, "reference": None} for g in shown],
        }
    )


def page_of(query: dict[str, str]) -> int:
    """Return which page of a header-paged list a logged request asked for."""
    token = query.get("cursor")
    if token:
        cursor = decode_cursor(token)
        return cursor.page if cursor is not None else 0
    try:
        return int(query.get("page") or 1)
    except ValueError:
        return 0
