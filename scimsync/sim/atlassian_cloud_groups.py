"""Atlassian Cloud simulator: the /Groups endpoints (§3.7).

``displayName`` is required and immutable; members are SCIM user ids. An unknown user
is a 400 in a POST or PUT (§3.2: "referenced users don't exist") and a 404 in a PATCH
(§3.7). Group names are unique case-insensitively [U: the strict reading].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

from scimsync.sim.atlassian_cloud_common import (
    NO_RESOURCE,
    Ctx,
    ScimError,
    empty_response,
    list_response,
    page_args,
    scim_response,
)
from scimsync.sim.atlassian_cloud_directory import CloudDirectory, CloudGroup, fold
from scimsync.sim.atlassian_cloud_patch import Operation, read_operations
from scimsync.sim.atlassian_cloud_query import PatchPath, Projection, list_filter, parse_path, projection
from scimsync.sim.atlassian_cloud_schema import CORE_GROUP, GROUP, check_schemas, check_value

LIST_QUERY = frozenset({"filter", "startIndex", "count", "attributes", "excludedAttributes"})
ONE_QUERY = frozenset({"attributes", "excludedAttributes"})


@dataclass
class _Draft:
    """A group's writable state while a PUT or PATCH is checked."""

    name: str
    external_id: str | None
    members: dict[str, None]


def render_group(ctx: Ctx, group: CloudGroup) -> dict[str, Any]:
    """Return the §3.7 resource with its members embedded."""
    out: dict[str, Any] = {"schemas": [CORE_GROUP], "id": group.id}
    if group.external_id is not None:
        out["externalId"] = group.external_id
    out["displayName"] = group.display_name
    users, at = ctx.directory.users, ctx.base_url + "/Users/"
    members = (users[user_id] for user_id in group.members)
    out["members"] = [
        {
            "value": u.id,
            "display": u.attrs.get("displayName") or u.user_name,
            "type": "User",
            "$ref": at + u.id,
        }
        for u in members
    ]
    out["meta"] = {
        "resourceType": "Group",
        "created": group.created,
        "lastModified": group.modified,
        "location": ctx.location("Groups", group.id),
    }
    return out


def _member_ids(directory: CloudDirectory, value: Any, missing: int) -> list[str]:
    """Return the user ids of a ``members`` value; ``missing`` is the status for an unknown user."""
    ids = []
    for n, member in enumerate(check_value(GROUP["members"], value, "members")):
        user_id = member.get("value")
        if not isinstance(user_id, str):
            raise ScimError(400, f"members[{n}] needs a value (a user id)", "invalidValue")
        if member.get("type", "User") != "User":  # [U] Atlassian groups hold users only
            raise ScimError(400, f"members[{n}] must be of type User", "invalidValue")
        if directory.live_user(user_id) is None:
            detail = NO_RESOURCE if missing == 404 else f"referenced user '{user_id}' does not exist"
            raise ScimError(missing, detail, "invalidValue" if missing == 400 else None)
        ids.append(user_id)
    return ids


def _read_group(directory: CloudDirectory, body: dict[str, Any]) -> _Draft:
    """Return the state a POST or PUT body asks for (id and meta ignored, RFC 7644 §3.3)."""
    check_schemas(body, CORE_GROUP, (CORE_GROUP,))
    extra = sorted(set(body) - {"schemas", "id", "meta", "displayName", "externalId", "members"})
    if extra:
        raise ScimError(400, f"unknown attribute '{extra[0]}' for a Group", "invalidSyntax")
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise ScimError(400, "displayName is required", "invalidValue")
    external_id = body.get("externalId")
    if external_id is not None:
        check_value(GROUP["externalId"], external_id, "externalId")
    members = _member_ids(directory, body.get("members") or [], 400)
    return _Draft(name, external_id, dict.fromkeys(members))


def _shape(query: dict[str, str]) -> Projection | None:
    return projection(query, GROUP, {})


def _answer(ctx: Ctx, group: CloudGroup, shape: Projection | None, status: int = 200) -> Response:
    resource = render_group(ctx, group)
    response = scim_response(shape.apply(resource) if shape else resource, status)
    if status == 201:
        response.headers["Location"] = resource["meta"]["location"]
    return response


def _target(ctx: Ctx) -> CloudGroup:
    group = ctx.directory.groups.get(ctx.params["group_id"])
    if group is None:
        raise ScimError(404, NO_RESOURCE)
    return group


def list_groups(ctx: Ctx) -> Response:
    """GET /Groups: members embedded unless excluded, one ``displayName eq`` filter (§3.4, §7)."""
    query = ctx.query(LIST_QUERY)
    start, count = page_args(query)
    shape = _shape(query)
    groups = list(ctx.directory.groups.values())
    if "filter" in query:
        wanted = fold(list_filter(query["filter"], ("displayName",)).value)
        groups = [g for g in groups if fold(g.display_name) == wanted]
    resources = [render_group(ctx, g) for g in groups[start - 1 : start - 1 + count]]
    return list_response([shape.apply(r) for r in resources] if shape else resources, len(groups), start)


def create_group(ctx: Ctx) -> Response:
    """POST /Groups: 201; 409 when the name is taken in any case (§3.7)."""
    shape = _shape(ctx.query(ONE_QUERY))
    draft = _read_group(ctx.directory, ctx.json_body())
    if ctx.directory.group_named(draft.name) is not None:
        raise ScimError(409, f"a group named '{draft.name}' already exists in this directory", "uniqueness")
    group = ctx.directory.create_group(draft.name, draft.external_id, draft.members)
    return _answer(ctx, group, shape, 201)


def get_group(ctx: Ctx) -> Response:
    """GET /Groups/{id}."""
    shape = _shape(ctx.query(ONE_QUERY))
    return _answer(ctx, _target(ctx), shape)


def replace_group(ctx: Ctx) -> Response:
    """PUT /Groups/{id}: replaces externalId and members; the name may not change (§3.7)."""
    shape = _shape(ctx.query(ONE_QUERY))
    group = _target(ctx)
    draft = _read_group(ctx.directory, ctx.json_body())
    _keep_name(group, draft.name)
    _commit(ctx.directory, group, draft)
    return _answer(ctx, group, shape)


def patch_group(ctx: Ctx) -> Response:
    """PATCH /Groups/{id}: members and externalId, all operations or none; 200 with the group."""
    shape = _shape(ctx.query(ONE_QUERY))
    group = _target(ctx)
    draft = _Draft(group.display_name, group.external_id, dict(group.members))
    for operation in read_operations(ctx.json_body()):
        _patch(ctx.directory, group, draft, operation)
    _commit(ctx.directory, group, draft)
    return _answer(ctx, group, shape)


def delete_group(ctx: Ctx) -> Response:
    """DELETE /Groups/{id}: 204."""
    ctx.query(frozenset())
    ctx.directory.delete_group(_target(ctx))
    return empty_response()


def _keep_name(group: CloudGroup, name: Any) -> None:
    if name != group.display_name:  # any change, even of case [U]
        raise ScimError(400, "displayName is immutable: groups cannot be renamed (§3.7)", "mutability")


def _commit(directory: CloudDirectory, group: CloudGroup, draft: _Draft) -> None:
    group.external_id = draft.external_id
    directory.set_members(group, draft.members)


def _patch(directory: CloudDirectory, group: CloudGroup, draft: _Draft, operation: Operation) -> None:
    """Apply one operation to the draft; with no path, each key of the value is one (RFC 7644 §3.5.2)."""
    if operation.path is not None:
        _patch_path(directory, group, draft, operation.op, parse_path(operation.path), operation.value)
        return
    if operation.op == "remove":
        raise ScimError(400, "remove needs a path", "noTarget")
    if not isinstance(operation.value, dict) or not operation.value:
        raise ScimError(400, f"{operation.op} without a path needs an object value", "invalidValue")
    for key, value in operation.value.items():
        path = parse_path(key)
        if path.filter is not None or path.sub is not None:
            raise ScimError(400, f"'{key}' in a value object must be an attribute name", "invalidPath")
        _patch_path(directory, group, draft, operation.op, path, value)


def _patch_path(
    directory: CloudDirectory, group: CloudGroup, draft: _Draft, op: str, path: PatchPath, value: Any
) -> None:
    plain = path.filter is None and path.sub is None
    if path.attr == "members" and path.sub is None:
        _patch_members(directory, draft, op, path, value)
    elif path.attr == "displayName" and plain:
        _keep_name(group, None if op == "remove" else value)
    elif path.attr == "externalId" and plain:
        draft.external_id = None if op == "remove" else check_value(GROUP["externalId"], value, "externalId")
    elif path.attr in ("id", "meta"):
        raise ScimError(400, f"'{path.attr}' is read-only", "mutability")
    else:
        raise ScimError(
            400, "unsupported path for a Group: only members, externalId, displayName", "invalidPath"
        )


def _patch_members(directory: CloudDirectory, draft: _Draft, op: str, path: PatchPath, value: Any) -> None:
    """§3.7: add many at once (a member already is a no-op), remove by filter or value list."""
    if path.filter is not None:
        eq = path.filter
        if op != "remove" or eq.attribute.lower() != "value" or not isinstance(eq.value, str):
            raise ScimError(400, 'only remove takes a filter: members[value eq "<id>"]', "invalidPath")
        ids = _member_ids(directory, [{"value": eq.value}], 404)
    elif op == "remove" and value is None:
        draft.members.clear()  # RFC 7644 §3.5.2.2: no value, no filter: every member goes
        return
    else:
        ids = _member_ids(directory, value, 404)
    if op == "replace":
        draft.members = dict.fromkeys(ids)
    elif op == "add":
        draft.members |= dict.fromkeys(ids)
    else:
        for user_id in ids:  # removing a user who is not a member is a no-op [U] (§6)
            draft.members.pop(user_id, None)
