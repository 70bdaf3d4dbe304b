"""Jira simulator: user endpoints (reference §1.2-§1.7)."""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from typing import Any

from werkzeug.wrappers import Response

from scimsync.sim.jira_common import (
    Ctx,
    JiraError,
    empty_response,
    json_response,
    summary_json,
    user_bean,
    values_response,
)
from scimsync.sim.jira_directory import JiraDirectory, JiraUser, fold

# §1.3: the UserWrite bean; anything else is refused by Jackson.
USER_WRITE_FIELDS = frozenset(
    {
        "name",
        "password",
        "emailAddress",
        "displayName",
        "notification",
        "applicationKeys",
        "key",
        "active",
        "self",
    }
)
MAX_LENGTH = 255
EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
LIST_MAX = 2000  # §1.7: /user/list default and ceiling
SEARCH_MAX = 1000  # §1.7: /user/search maxResults ceiling


def _string(body: dict[str, Any], name: str) -> str | None:
    """Return a string field of the body; 400 when it has another JSON type."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise JiraError(400, [f"Field '{name}' must be a string."])
    return value


def _flag(body: dict[str, Any], name: str) -> bool | None:
    """Return a flag sent as a JSON boolean or as the string "true"/"false" (§1.3, §1.5)."""
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise JiraError(400, [f"Field '{name}' must be true or false."])


def _check_username(
    directory: JiraDirectory, name: str | None, errors: dict[str, str], *, me: JiraUser | None = None
) -> None:
    """Validate a new username like Jira's DefaultUserService (§1.3)."""
    if not name:
        errors["username"] = "You must specify a username."
    elif len(name) > MAX_LENGTH:
        errors["username"] = "The username must not exceed 255 characters in length."
    elif name != name.lower():
        errors["username"] = "The username must be all lower case."
    elif any(c in name for c in "<>&"):
        errors["username"] = "The username must not contain '<', '>' or '&'."
    else:
        other = directory.find_user(name)
        if other is not None and other is not me:
            errors["username"] = "A user with that username already exists."


def _check_email(email: str | None, errors: dict[str, str]) -> None:
    if not email:
        errors["email"] = "You must specify an email address."
    elif len(email) > MAX_LENGTH:
        errors["email"] = "The email address must not exceed 255 characters in length."
    elif not EMAIL.match(email):
        errors["email"] = "You must specify a valid email address."


def _check_display_name(display_name: str | None, errors: dict[str, str]) -> None:
    if not display_name or not display_name.strip():
        errors["displayName"] = "You must specify a full name."
    elif len(display_name) > MAX_LENGTH:
        errors["displayName"] = "The full name must not exceed 255 characters in length."


def _default_groups(ctx: Ctx, keys: Any) -> list[str]:
    """Return the default groups of the roles to grant (§1.3, §1.9)."""
    roles = ctx.directory.roles
    if keys is None:  # omitted: the roles selected by default
        chosen = [r for r in roles.values() if r.selected_by_default]
    else:
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise JiraError(400, ["Field 'applicationKeys' must be a list of strings."])
        unknown = [k for k in keys if k not in roles]
        if unknown:
            raise JiraError(400, [f"Application with key '{unknown[0]}' does not exist."])
        chosen = [roles[k] for k in keys]
    return [g for role in chosen for g in role.default_groups]


def create_user(ctx: Ctx) -> Response:
    """POST /user: validate strictly and create in the internal directory (§1.3)."""
    body = ctx.json_body(USER_WRITE_FIELDS)
    name, email = _string(body, "name"), _string(body, "emailAddress")
    display_name, password = _string(body, "displayName"), _string(body, "password")
    _flag(body, "notification")  # a string in the schema, a bool from python clients: both accepted
    errors: dict[str, str] = {}
    _check_username(ctx.directory, name, errors)
    _check_email(email, errors)
    _check_display_name(display_name, errors)
    if errors:
        raise JiraError(400, [], errors)
    groups = _default_groups(ctx, body.get("applicationKeys"))
    assert name and email and display_name
    user = ctx.directory.create_user(name, email, display_name)
    if password:
        ctx.directory.passwords[user.key] = password
    for group_name in groups:
        group = ctx.directory.find_group(group_name)
        if group is not None:
            group.members.add(user.key)
    return json_response(user_bean(ctx.directory, user, ctx.base), 201)


def get_user(ctx: Ctx) -> Response:
    """GET /user?username=|key= (§1.4); groups and roles only with ``expand`` (§1.2)."""
    user = ctx.target_user()
    expand = (ctx.arg("expand") or "").split(",")
    return json_response(user_bean(ctx.directory, user, ctx.base, expand=expand))


def myself(ctx: Ctx) -> Response:
    """GET /myself: the caller's user bean."""
    assert ctx.caller is not None
    expand = (ctx.arg("expand") or "").split(",")
    return json_response(user_bean(ctx.directory, ctx.caller, ctx.base, expand=expand))


def update_user(ctx: Ctx) -> Response:
    """PUT /user: partial update, rename, (de)activate from 8.3 (§1.5)."""
    # Before 8.3 the bean has no `active` (§1.5), so Jackson refuses the field.
    fields = USER_WRITE_FIELDS if ctx.version >= (8, 3) else USER_WRITE_FIELDS - {"active"}
    body = ctx.json_body(fields)
    user = ctx.target_user()
    if user.read_only:  # §1.5 step 3, §1.12
        message = f"User '{user.name}' belongs to a read-only directory and cannot be updated."
        raise JiraError(ctx.directory.read_only_status, [message])
    name, email = _string(body, "name"), _string(body, "emailAddress")
    display_name, active = _string(body, "displayName"), _flag(body, "active")
    errors: dict[str, str] = {}
    if "name" in body and name != user.name:
        _check_username(ctx.directory, name, errors, me=user)
    if "emailAddress" in body:
        _check_email(email, errors)
    if "displayName" in body:
        _check_display_name(display_name, errors)
    if active is False and user is ctx.caller:
        errors["active"] = "You cannot deactivate yourself."
    if errors:
        raise JiraError(400, [], errors)
    if name and name != user.name:
        ctx.directory.rename(user, name)
    user.email = email or user.email
    user.display_name = display_name or user.display_name
    if active is not None:
        user.active = active
    return json_response(user_bean(ctx.directory, user, ctx.base))


def delete_user(ctx: Ctx) -> Response:
    """DELETE /user: 204; read-only directory and yourself are refused (§1.6)."""
    user = ctx.target_user()
    if user.read_only:
        message = f"User '{user.name}' belongs to a read-only directory and cannot be deleted."
        raise JiraError(ctx.directory.read_only_status, [message])
    if user is ctx.caller:
        raise JiraError(400, ["You cannot delete the currently logged in user."])
    ctx.directory.delete_user(user)
    return empty_response(204)


def _encode_cursor(user: JiraUser) -> str:
    return base64.urlsafe_b64encode(f"after:{user.key}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    """Return the key number the page starts after; 400 (never 404) when malformed (§1.7)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":JIRAUSER")
        if prefix != "after":
            raise ValueError(raw)
        return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise JiraError(400, [f"The cursor '{cursor}' is not valid."]) from None


def list_users(ctx: Ctx) -> Response:
    """GET /user/list: cursor pages of every user, active or not, without groups (§1.7)."""
    max_results = ctx.int_arg("maxResults", LIST_MAX)
    if max_results < 1:
        raise JiraError(400, ["maxResults must be a positive number."])
    max_results = min(max_results, LIST_MAX)
    cursor = ctx.arg("cursor")
    after = _decode_cursor(cursor) if cursor else -1
    users, numbers = ctx.directory.users_by_number()  # no sort per page (issue 12)
    at = bisect.bisect_right(numbers, after)
    page = users[at : at + max_results]
    is_last = at + max_results >= len(users)
    result: dict[str, Any] = {"self": ctx.request.url, "maxResults": max_results, "isLast": is_last}
    if not is_last:
        next_cursor = _encode_cursor(page[-1])
        result["nextCursor"] = next_cursor
        result["nextPage"] = f"{ctx.base}/rest/api/2/user/list?cursor={next_cursor}&maxResults={max_results}"
    return values_response(result, [summary_json(ctx.directory, u, ctx.base) for u in page])


def _matches(user: JiraUser, query: str) -> bool:
    """Match a prefix of the username, the email, the display name or one of its words."""
    if query == ".":  # §1.7: "." finds everyone
        return True
    display = user.display_name.lower()
    candidates = [user.name.lower(), user.email.lower(), display, *display.split()]
    return any(c.startswith(query) for c in candidates)


def search_users(ctx: Ctx) -> Response:
    """GET /user/search: a bare array, truncated to 1000 (<10) or 100 (10.x+) matches (§1.7)."""
    query = ctx.arg("username")
    if not query:
        raise JiraError(400, ["The username query parameter was not provided"])
    include_active = ctx.bool_arg("includeActive", True)
    include_inactive = ctx.bool_arg("includeInactive", False)
    if not include_active and not include_inactive:
        raise JiraError(400, ["At least one of includeActive or includeInactive must be true."])
    start_at, max_results = ctx.int_arg("startAt", 0), ctx.int_arg("maxResults", 50)
    if start_at < 0 or max_results < 0:
        raise JiraError(400, ["startAt and maxResults must not be negative."])
    query = fold(query)
    found = [
        u
        for u in ctx.directory.users_by_creation()  # an order of its own, not by username
        if (include_active if u.active else include_inactive) and _matches(u, query)
    ]
    # JRASERVER-65089 / JRASERVER-78660: the window is cut before startAt applies.
    window = found[: 1000 if ctx.version < (10,) else 100]
    page = window[start_at : start_at + min(max_results, SEARCH_MAX)]
    return values_response(None, [summary_json(ctx.directory, u, ctx.base) for u in page])
