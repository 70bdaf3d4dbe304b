"""Jira simulator: group, membership, picker and application-role endpoints (§1.8, §1.9)."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from werkzeug.wrappers import Response

from scimsync.sim.jira_common import (
    Ctx,
    JiraError,
    empty_response,
    group_bean,
    json_response,
    summary_json,
    values_response,
)
from scimsync.sim.jira_directory import AppRole, JiraDirectory, fold

MEMBER_PAGE_MAX = 50  # §1.8: group/member never answers more than 50 per page


def create_group(ctx: Ctx) -> Response:
    """POST /group {"name"}: 201 with the group JSON; an existing name is a 400 (§1.8)."""
    body = ctx.json_body({"name"})
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise JiraError(400, ["Field 'name' must be a string."])
    if not name or not name.strip():
        raise JiraError(400, [], {"groupName": "You must specify a group name."})
    if len(name) > 255:
        raise JiraError(400, [], {"groupName": "The group name must not exceed 255 characters in length."})
    # Group names compare case-insensitively (§1.8).
    if ctx.directory.find_group(name) is not None:
        raise JiraError(400, [], {"groupName": "A group or user with this name already exists."})
    group = ctx.directory.create_group(name)
    return json_response(group_bean(ctx.directory, group, ctx.base), 201)


def get_group(ctx: Ctx) -> Response:
    """GET /group?groupname= (deprecated in Jira, still served): the group JSON."""
    return json_response(group_bean(ctx.directory, ctx.group_arg(), ctx.base))


def delete_group(ctx: Ctx) -> Response:
    """DELETE /group?groupname=[&swapGroup=]: 200 without a body, 404 when unknown (§1.8)."""
    group = ctx.group_arg()
    swap = ctx.arg("swapGroup")
    if swap is not None:
        other = ctx.directory.find_group(swap)
        if other is None:
            raise JiraError(400, [f"Group with name '{swap}' does not exist."])
        if other is group:
            raise JiraError(400, ["You cannot swap a group with itself."])
    ctx.directory.delete_group(group)
    return empty_response(200)


def group_members(ctx: Ctx) -> Response:
    """GET /group/member: nested members, 50 per page at most, inactive only on request (§1.8)."""
    group = ctx.group_arg()
    include_inactive = ctx.bool_arg("includeInactiveUsers", False)
    start_at, max_results = ctx.int_arg("startAt", 0), ctx.int_arg("maxResults", MEMBER_PAGE_MAX)
    if start_at < 0 or max_results < 1:
        raise JiraError(400, ["startAt must not be negative and maxResults must be positive."])
    max_results = min(max_results, MEMBER_PAGE_MAX)
    # Sorted once per change of the directory, not per page: a page costs its own size (issue 12).
    users = ctx.directory.sorted_members(group, include_inactive=include_inactive)
    page = users[start_at : start_at + max_results]
    is_last = start_at + max_results >= len(users)
    result: dict[str, Any] = {"self": ctx.request.url}
    if not is_last:
        result["nextPage"] = (
            f"{ctx.base}/rest/api/2/group/member?groupname={quote(group.name, safe='')}"
            f"&includeInactiveUsers={str(include_inactive).lower()}"
            f"&startAt={start_at + max_results}&maxResults={max_results}"
        )
    result |= {"maxResults": max_results, "startAt": start_at, "total": len(users), "isLast": is_last}
    return values_response(result, [summary_json(ctx.directory, u, ctx.base) for u in page])


def add_member(ctx: Ctx) -> Response:
    """POST /group/user {"name"}: 201 with the group; a direct member already is a 400 (§1.8)."""
    body = ctx.json_body({"name"})
    group = ctx.group_arg()
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise JiraError(400, ["Field 'name' must be a non-empty string."])
    user = ctx.directory.find_user(name)
    if user is None:
        raise JiraError(400, [f"Cannot add user. '{name}' does not exist"])
    if user.key in group.members:
        raise JiraError(400, [f"Cannot add user '{name}', user is already a member of '{group.name}'"])
    # Read-only (LDAP) users can still join local groups: "read only, with local groups" (§1.12).
    group.members.add(user.key)
    return json_response(group_bean(ctx.directory, group, ctx.base), 201)


def remove_member(ctx: Ctx) -> Response:
    """DELETE /group/user?groupname=&username=: 200; not a direct member is a 400 (§1.8)."""
    group = ctx.group_arg()
    name = ctx.arg("username")
    if not name:
        raise JiraError(400, ["The 'username' query parameter is required."])
    user = ctx.directory.find_user(name)
    if user is None:
        raise JiraError(404, [f"The user named '{name}' does not exist"])
    if user.key not in group.members:
        raise JiraError(
            400,
            [f"Cannot remove user '{name}' from group '{group.name}'. User is not a member of the group."],
        )
    group.members.discard(user.key)
    return empty_response(200)


def _highlight(name: str, query: str) -> str:
    """Return the picker's html: the name with the first match in bold."""
    at = fold(name).find(fold(query)) if query else -1
    if at < 0:
        return html.escape(name)
    end = at + len(query)
    return f"{html.escape(name[:at])}<b>{html.escape(name[at:end])}</b>{html.escape(name[end:])}"


def group_picker(ctx: Ctx) -> Response:
    """GET /groups/picker: sorted matches, capped by jira.ajax.autocomplete.limit, no paging (§1.8)."""
    query = ctx.arg("query") or ""
    limit = ctx.directory.autocomplete_limit
    max_results = ctx.int_arg("maxResults", limit)
    if max_results < 0:
        raise JiraError(400, ["maxResults must not be negative."])
    excluded = {fold(name) for name in ctx.request.args.getlist("exclude")}
    matches = sorted(
        (g for key, g in ctx.directory.groups.items() if fold(query) in key and key not in excluded),
        key=lambda g: fold(g.name),
    )
    shown = matches[: min(max_results, limit)]
    return json_response(
        {
            "header": f"Showing {len(shown)} of {len(matches)} matching groups",
            "total": len(matches),
            "groups": [{"name": g.name, "html": _highlight(g.name, query), "labels": []} for g in shown],
        }
    )


def role_bean(directory: JiraDirectory, role: AppRole) -> dict[str, Any]:
    """Return an application role (§1.9); seats are unlimited in the simulator."""
    users = directory.role_user_count(role)
    return {
        "key": role.key,
        "groups": list(role.groups),
        "name": role.name,
        "defaultGroups": list(role.default_groups),
        "selectedByDefault": role.selected_by_default,
        "defined": True,
        "numberOfSeats": -1,
        "remainingSeats": -1,
        "userCount": users,
        "userCountDescription": f"{users} users",
        "hasUnlimitedSeats": True,
        "platform": role.platform,
    }


def application_roles(ctx: Ctx) -> Response:
    """GET /applicationrole: every role (§1.9)."""
    return json_response([role_bean(ctx.directory, r) for r in ctx.directory.roles.values()])


def application_role(ctx: Ctx) -> Response:
    """GET /applicationrole/{key}: one role, 404 when unknown (§1.9)."""
    key = ctx.params["key"]
    role = ctx.directory.roles.get(key)
    if role is None:
        raise JiraError(404, [f"The application role '{key}' does not exist."])
    return json_response(role_bean(ctx.directory, role))
