"""Confluence simulator: groups and memberships (reference §2.7)."""

from __future__ import annotations

from werkzeug.wrappers import Response

from scimsync.sim.confluence_admin import MAX_LENGTH, read_only_message
from scimsync.sim.confluence_common import (
    ConfluenceError,
    Ctx,
    empty_response,
    group_json,
    json_response,
    page,
    user_page,
)

GROUP_PAGE_DEFAULT = 200  # [U] §8 item 5: the documented default of /group and /group/{g}/member
# [U] the reference names no refused character; these break paths and markup, so refuse them.
GROUP_NAME_FORBIDDEN = "<>/\\"


def list_groups(ctx: Ctx) -> Response:
    """GET /group?start=&limit=: every group by name, paged (§2.7)."""
    start, limit = ctx.page_args(GROUP_PAGE_DEFAULT)
    groups = sorted(ctx.directory.groups.values(), key=lambda g: g.name)
    return page(ctx, groups, start, limit, group_json)


def get_group(ctx: Ctx) -> Response:
    """GET /group/{groupName}: one group, 404 when missing (§2.7)."""
    return json_response(group_json(ctx, ctx.named_group(ctx.params["group"])))


def group_members(ctx: Ctx) -> Response:
    """GET /group/{groupName}/member: direct members by username, disabled ones too (§2.6)."""
    group = ctx.named_group(ctx.params["group"])
    start, limit = ctx.page_args(GROUP_PAGE_DEFAULT)
    users = ctx.directory.sorted_members(group)  # sorted once per change, not per page (issue 12)
    return user_page(ctx, users, start, limit)


def _check_group_name(name: object) -> str:
    """Return a valid group name; 400 with the reason otherwise."""
    if name is not None and not isinstance(name, str):
        raise ConfluenceError(400, "Field 'name' must be a string.")
    if not name or not name.strip():
        problem = "Group name must not be blank."
    elif len(name) > MAX_LENGTH:
        problem = f"Group name must not exceed {MAX_LENGTH} characters."
    elif any(c in GROUP_NAME_FORBIDDEN or not c.isprintable() for c in name):
        problem = "Group name must not contain '<', '>', '/', '\\' or control characters."
    else:
        return name
    raise ConfluenceError(400, problem, errors=[problem])


def create_group(ctx: Ctx) -> Response:
    """POST /admin/group {"name"}: 201, stored lower-case; 409 when it exists (8.2+, §2.7).

    [U] a duplicate's status is undocumented; 409, as for a duplicate user (§2.4).
    """
    body = ctx.json_body(("name",))  # only `name`: the schema has additionalProperties: false (§2.7)
    name = _check_group_name(body.get("name"))
    if ctx.directory.find_group(name) is not None:
        raise ConfluenceError(409, f"A group with the name '{name.lower()}' already exists.")
    return json_response(group_json(ctx, ctx.directory.create_group(name)), 201)


def delete_group(ctx: Ctx) -> Response:
    """DELETE /admin/group/{groupName}: 204, 404 when missing (8.2+, §2.7)."""
    ctx.directory.delete_group(ctx.named_group(ctx.params["group"]))
    return empty_response(204)


def _membership(ctx: Ctx, add: bool) -> Response:
    """Add or remove a membership: idempotent 204, 404 for a missing user or group (§2.7, §6)."""
    user = ctx.named_user(ctx.params["username"])
    group = ctx.named_group(ctx.params["group"])
    if user.read_only:  # [U] §8 item 9; the strict reading: no membership change at all
        action = f"added to group '{group.name}'" if add else f"removed from group '{group.name}'"
        raise ConfluenceError(403, read_only_message(user, action))
    if add:
        group.members.add(user.key)
    else:
        group.members.discard(user.key)
    return empty_response(204)


def add_member(ctx: Ctx) -> Response:
    """PUT /user/{username}/group/{groupName} (8.2+, §2.7)."""
    return _membership(ctx, True)


def remove_member(ctx: Ctx) -> Response:
    """DELETE /user/{username}/group/{groupName} (8.2+, §2.7)."""
    return _membership(ctx, False)
