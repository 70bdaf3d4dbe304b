"""Request parsing, errors and JSON beans shared by the Jira simulator's endpoints."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from scimsync.sim.jira_directory import JiraDirectory, JiraGroup, JiraUser

JSON_TYPE = "application/json;charset=UTF-8"


class JiraError(Exception):
    """An error answer in Jira's shape ``{"errorMessages": [...], "errors": {...}}`` (§1.10)."""

    def __init__(
        self,
        status: int,
        messages: Iterable[str] = (),
        errors: Mapping[str, str] | None = None,
        *,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.body = (
            body if body is not None else {"errorMessages": list(messages), "errors": dict(errors or {})}
        )
        super().__init__(f"{status} {self.body}")

    def response(self) -> Response:
        """Render the error as a response."""
        return json_response(self.body, self.status)


def json_response(data: Any, status: int = 200) -> Response:
    """Return ``data`` as a JSON response."""
    return Response(json.dumps(data), status=status, content_type=JSON_TYPE)


def empty_response(status: int) -> Response:
    """Return a response without a body (204, or Jira's bodiless 200s)."""
    return Response(b"", status=status)


@dataclass
class Ctx:
    """One authenticated request: the directory, the caller and the simulated version."""

    request: Request
    directory: JiraDirectory
    caller: JiraUser | None
    version: tuple[int, ...]
    params: dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def base(self) -> str:
        """Return the base URL the client used, context path included."""
        return str(self.request.root_url).rstrip("/")

    def arg(self, name: str) -> str | None:
        """Return a query parameter, or None when absent."""
        value: str | None = self.request.args.get(name)
        return value

    def int_arg(self, name: str, default: int) -> int:
        """Return an integer query parameter; 400 when it is not an integer."""
        raw = self.arg(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise JiraError(400, [f"Invalid value '{raw}' for query parameter '{name}'."]) from None

    def bool_arg(self, name: str, default: bool) -> bool:
        """Return a boolean query parameter ("true"/"false", any case); 400 otherwise."""
        raw = self.arg(name)
        if raw is None or raw == "":
            return default
        if raw.lower() not in ("true", "false"):
            raise JiraError(400, [f"Invalid value '{raw}' for query parameter '{name}'."])
        return raw.lower() == "true"

    def json_body(self, allowed: Iterable[str]) -> dict[str, Any]:
        """Return the JSON object body; 415 for another content type, 400 if malformed or unknown."""
        mimetype = self.request.mimetype
        if mimetype != "application/json":
            raise JiraError(415, [f"Unsupported media type '{mimetype or 'none'}': send application/json."])
        try:
            body = json.loads(self.request.get_data(as_text=True))
        except json.JSONDecodeError as exc:
            raise JiraError(400, [f"Unexpected body: not JSON ({exc.msg})."]) from None
        if not isinstance(body, dict):
            raise JiraError(400, ["Unexpected body: a JSON object is required."])
        allowed = set(allowed)
        for name in body:
            if name not in allowed:
                # Jackson refuses properties the bean does not declare.
                raise JiraError(400, [f'Unrecognized field "{name}", not marked as ignorable.'])
        return body

    def target_user(self) -> JiraUser:
        """Return the user named by ``?username=`` or ``?key=`` (exactly one, §1.4); 404 if none."""
        username, key = self.arg("username"), self.arg("key")
        if (username is None) == (key is None):
            raise JiraError(400, ["Either the 'username' or the 'key' query parameter must be given."])
        if username is not None:
            user = self.directory.find_user(username)
            if user is None:
                raise JiraError(404, [f"The user named '{username}' does not exist"])
            return user
        found = self.directory.users.get(key or "")
        if found is None:
            raise JiraError(404, [f"The user with the key '{key}' does not exist"])
        return found

    def group_arg(self, name: str = "groupname") -> JiraGroup:
        """Return the group named by a query parameter; 400 when absent, 404 when unknown."""
        value = self.arg(name)
        if not value:
            raise JiraError(400, [f"The '{name}' query parameter is required."])
        group = self.directory.find_group(value)
        if group is None:
            raise JiraError(404, [f"Group with name '{value}' does not exist."])
        return group


def user_url(base: str, user: JiraUser) -> str:
    """Return the ``self`` link of a user."""
    return f"{base}/rest/api/2/user?username={quote(user.name, safe='')}"


def group_url(base: str, group: JiraGroup) -> str:
    """Return the ``self`` link of a group."""
    return f"{base}/rest/api/2/group?groupname={quote(group.name, safe='')}"


def user_bean(
    directory: JiraDirectory, user: JiraUser, base: str, *, expand: Iterable[str] = (), summary: bool = False
) -> dict[str, Any]:
    """Return the REST user bean (§1.2); groups and roles are filled only when expanded."""
    avatar = f"{base}/secure/useravatar?ownerId={quote(user.key)}&avatarId=10122"
    bean: dict[str, Any] = {
        "self": user_url(base, user),
        "key": user.key,
        "name": user.name,
        "emailAddress": user.email,
        "avatarUrls": {size: f"{avatar}&size={size}" for size in ("48x48", "24x24", "16x16", "32x32")},
        "displayName": user.display_name,
        "active": user.active,
        "deleted": False,
        "timeZone": "UTC",
        "locale": "en_US",
    }
    if summary:  # list, search and member pages carry no groups (§1.7)
        return bean
    expand = set(expand)
    groups = directory.groups_of(user)
    roles = directory.roles_of(user)
    group_items = [{"name": g.name, "self": group_url(base, g)} for g in groups]
    role_items = [{"key": r.key, "name": r.name} for r in roles]
    bean["groups"] = {"size": len(groups), "items": group_items if "groups" in expand else []}
    bean["applicationRoles"] = {
        "size": len(roles),
        "items": role_items if "applicationRoles" in expand else [],
    }
    bean["expand"] = "groups,applicationRoles"
    return bean


def summary_json(directory: JiraDirectory, user: JiraUser, base: str) -> str:
    """Return the summary bean of ``user`` (list, search and member pages) as JSON text.

    Kept per base URL and user while the fields it shows stay the same, so that a page
    costs joining its users' texts, not building and encoding each bean again (issue 12).
    """
    shown = (user.name, user.email, user.display_name, user.active)
    cache_key = (base, user.key)
    cached = directory.encoded.get(cache_key)
    if cached is not None and cached[0] == shown:
        return cached[1]
    text = json.dumps(user_bean(directory, user, base, summary=True))
    directory.encoded[cache_key] = (shown, text)
    return text


def values_response(head: Mapping[str, Any] | None, values: Iterable[str]) -> Response:
    """Return ``head`` plus a last field ``values``, the JSON texts ``values``; no head: a bare array."""
    array = "[" + ", ".join(values) + "]"
    if head is None:
        return Response(array, status=200, content_type=JSON_TYPE)
    text = json.dumps(head)
    text = text[:-1] + (", " if head else "") + '"values": ' + array + "}"
    return Response(text, status=200, content_type=JSON_TYPE)


def group_bean(directory: JiraDirectory, group: JiraGroup, base: str) -> dict[str, Any]:
    """Return the group JSON answered by create and add-member (§1.8)."""
    size = len(directory.effective_members(group))
    return {
        "name": group.name,
        "self": group_url(base, group),
        "users": {"size": size, "items": [], "max-results": 50, "start-index": 0, "end-index": 0},
        "expand": "users",
    }
