"""Errors, request parsing, JSON beans and the page envelope shared by the Confluence endpoints."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode

from werkzeug.wrappers import Request, Response

from scimsync.sim.confluence_directory import ConfluenceDirectory, ConfluenceGroup, ConfluenceUser

if TYPE_CHECKING:
    from scimsync.sim.confluence_tasks import TaskBoard

T = TypeVar("T")

JSON_TYPE = "application/json;charset=UTF-8"
PAGE_MAX = 200  # §2.6: the cap on every collection; the answer says the limit it used


class ConfluenceError(Exception):
    """An error answer in Confluence's shape ``{statusCode, data{...}, message, reason}`` (§2.8)."""

    def __init__(self, status: int, message: str, *, errors: Sequence[str] = ()) -> None:
        self.status = status
        self.message = message
        self.errors = list(errors)
        super().__init__(f"{status} {message}")

    @property
    def body(self) -> dict[str, Any]:
        """Return the §2.8 body.

        The reference shows ``authorized: false`` even on a 404 for a missing user, so every
        error says so; ``valid`` is false only for a validation failure (400). Each field
        error is ``{"message": {"translation", "args"}}`` [U: the reference shows only ``[]``].
        """
        return {
            "statusCode": self.status,
            "data": {
                "authorized": False,
                "valid": self.status != 400,
                "allowedInReadOnlyMode": True,
                "errors": [{"message": {"translation": e, "args": []}} for e in self.errors],
                "successful": False,
            },
            "message": self.message,
            "reason": _reason(self.status),
        }

    def response(self) -> Response:
        """Render the error as a response."""
        return json_response(self.body, self.status)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def error_body(status: int) -> dict[str, Any]:
    """Return the §2.8 body of an injected fault (for ``Faults``)."""
    return ConfluenceError(status, f"Injected fault: HTTP {status}").body


def json_response(data: Any, status: int = 200) -> Response:
    """Return ``data`` as a JSON response."""
    return Response(json.dumps(data), status=status, content_type=JSON_TYPE)


def empty_response(status: int = 204) -> Response:
    """Return a response without a body."""
    return Response(b"", status=status)


@dataclass
class Ctx:
    """One authenticated request: the directory, the caller, the version and the long tasks."""

    request: Request
    directory: ConfluenceDirectory
    caller: ConfluenceUser | None
    version: tuple[int, ...]
    tasks: TaskBoard
    params: dict[str, str] = field(default_factory=dict)
    seats: int | None = None  # licence seats; None: unlimited

    # Worked out once per request, not once per user of a page.

    @functools.cached_property
    def base(self) -> str:
        """Return the base URL the client used, context path included."""
        return str(self.request.root_url).rstrip("/")

    @functools.cached_property
    def context(self) -> str:
        """Return the context path ("" or "/confluence")."""
        return str(self.request.script_root).rstrip("/")

    @functools.cached_property
    def caller_is_admin(self) -> bool:
        """Tell whether the caller is a Confluence administrator."""
        return self.caller is not None and self.directory.is_admin(self.caller)

    def arg(self, name: str) -> str | None:
        """Return a query parameter, or None when absent."""
        value: str | None = self.request.args.get(name)
        return value

    def expand(self) -> set[str]:
        """Return the names in ``?expand=`` (comma-separated)."""
        return set(self.expanded)

    @functools.cached_property
    def expanded(self) -> frozenset[str]:
        """Return the names in ``?expand=``, worked out once."""
        return frozenset(part.strip() for part in (self.arg("expand") or "").split(",") if part.strip())

    def int_arg(self, name: str, default: int) -> int:
        """Return an integer query parameter; 400 when it is not an integer."""
        raw = self.arg(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfluenceError(400, f"Invalid value '{raw}' for query parameter '{name}'.") from None

    def page_args(self, default: int) -> tuple[int, int]:
        """Return ``start`` and the limit actually used (at most 200, §2.6); 400 when out of range."""
        start, limit = self.int_arg("start", 0), self.int_arg("limit", default)
        if start < 0:
            raise ConfluenceError(400, "start must be zero or a positive number.")
        if limit < 1:  # [U] a zero limit would page forever; refused
            raise ConfluenceError(400, "limit must be a positive number.")
        return start, min(limit, PAGE_MAX)

    def json_body(self, allowed: Iterable[str]) -> dict[str, Any]:
        """Return the JSON object body; 415 for another content type, 400 if malformed or unknown."""
        mimetype = self.request.mimetype
        if mimetype != "application/json":
            raise ConfluenceError(
                415, f"Unsupported media type '{mimetype or 'none'}': send application/json."
            )
        try:
            body = json.loads(self.request.get_data(as_text=True))
        except json.JSONDecodeError as exc:
            raise ConfluenceError(400, f"Unexpected body: not JSON ({exc.msg}).") from None
        if not isinstance(body, dict):
            raise ConfluenceError(400, "Unexpected body: a JSON object is required.")
        allowed = set(allowed)
        for name in body:
            if name not in allowed:  # the 8.x JSON schemas say additionalProperties: false (§2.7)
                raise ConfluenceError(400, f'Unrecognized field "{name}", not marked as ignorable.')
        return body

    def query_user(self) -> ConfluenceUser:
        """Return the user named by ``?username=`` or ``?key=`` (exactly one, §2.3); 404 if none."""
        username, key = self.arg("username"), self.arg("key")
        if (username is None) == (key is None):  # [U] both or neither: refused
            raise ConfluenceError(
                400, "Exactly one of the 'username' and 'key' query parameters is required."
            )
        if username is not None:
            return self.named_user(username)
        found = self.directory.users.get(key or "")
        if found is None:
            raise ConfluenceError(404, f"No user found with key: {key}")
        return found

    def named_user(self, username: str) -> ConfluenceUser:
        """Return the user with this username; 404 with the §2.8 message when missing."""
        user = self.directory.find_user(username)
        if user is None:
            raise ConfluenceError(404, f"No user found with username: {username}")
        return user

    def named_group(self, name: str) -> ConfluenceGroup:
        """Return the group with this name; 404 when missing."""
        group = self.directory.find_group(name)
        if group is None:
            raise ConfluenceError(404, f"No group found with name: {name}")
        return group


def user_json(ctx: Ctx, user: ConfluenceUser) -> dict[str, Any]:
    """Return the person JSON of §2.3: ``status`` only when expanded, ``email`` only from 10.0.

    Before 10.0 Confluence shows no email to REST callers at all; from 10.0 an administrator
    sees it [U: the brief's reading of CONF-DEV v1000].
    """
    bean: dict[str, Any] = {
        "type": "known",
        "username": user.name,
        "userKey": user.key,
        "profilePicture": {
            "path": "/images/icons/profilepics/default.svg",
            "width": 48,
            "height": 48,
            "isDefault": True,
        },
        "displayName": user.display_name,
    }
    if ctx.version >= (10,) and ctx.caller_is_admin:
        bean["email"] = user.email
    if "status" in ctx.expanded:
        bean["status"] = "Active" if user.active else "Deactivated"
    else:
        bean["_expandable"] = {"status": ""}
    bean["_links"] = {"self": f"{ctx.base}/rest/api/user?key={user.key}"}
    return bean


def group_json(ctx: Ctx, group: ConfluenceGroup) -> dict[str, Any]:
    """Return the group JSON of §2.7."""
    return {
        "type": "group",
        "name": group.name,
        "_links": {"self": f"{ctx.base}/rest/api/group/{quote(group.name, safe='')}"},
    }


def user_text(ctx: Ctx, user: ConfluenceUser) -> str:
    """Return ``user_json`` as JSON text, kept while what it shows stays the same.

    A page then costs joining its users' texts, not building and encoding each one (issue 12).
    """
    email = ctx.version >= (10,) and ctx.caller_is_admin
    cache_key = (ctx.base, email, "status" in ctx.expanded, user.key)
    shown = (user.name, user.email, user.display_name, user.active)
    cached = ctx.directory.encoded.get(cache_key)
    if cached is not None and cached[0] == shown:
        return cached[1]
    text = json.dumps(user_json(ctx, user))
    ctx.directory.encoded[cache_key] = (shown, text)
    return text


def page(
    ctx: Ctx, items: Sequence[T], start: int, limit: int, render: Callable[[Ctx, T], dict[str, Any]]
) -> Response:
    """Return one page of ``items`` in the §2.6 envelope; ``_links.next`` only when more follow."""
    texts = [json.dumps(render(ctx, item)) for item in items[start : start + limit]]
    return _page(ctx, texts, start, limit, len(items))


def user_page(ctx: Ctx, users: Sequence[ConfluenceUser], start: int, limit: int) -> Response:
    """Return one page of ``users`` (``user_json``) in the §2.6 envelope."""
    return _page(ctx, [user_text(ctx, u) for u in users[start : start + limit]], start, limit, len(users))


def _page(ctx: Ctx, results: list[str], start: int, limit: int, count: int) -> Response:
    """Return the §2.6 envelope around ``results`` (JSON texts), of a list of ``count`` items.

    ``next`` is relative to ``_links.base`` (which holds the context path), as Confluence
    writes it [U: exact keys beyond results/start/limit/size].
    """
    path = quote(ctx.request.path)  # a group name in the path may hold spaces
    links: dict[str, str] = {
        "self": f"{ctx.base}{path}",
        "base": ctx.base,
        "context": ctx.context,
    }
    if start + limit < count:
        query = [(k, v) for k, v in ctx.request.args.items(multi=True) if k not in ("start", "limit")]
        query += [("limit", str(limit)), ("start", str(start + limit))]
        links["next"] = f"{path}?{urlencode(query)}"
    rest = json.dumps({"start": start, "limit": limit, "size": len(results), "_links": links})
    text = '{"results": [' + ", ".join(results) + "], " + rest[1:]
    return Response(text, status=200, content_type=JSON_TYPE)
