"""SCIM resources <-> the model, for the SCIM-based targets: pure functions over plain dicts.

RFC 7643 §4.1 (User), §4.2 (Group); RFC 7644 §3.5.2 (PatchOp); reference §3.3, §3.5, §3.7.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from scimsync.errors import ResponseError
from scimsync.http.scim import GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, choose_email
from scimsync.models import Account

# Account fields update_user takes -> the attribute paths they replace.
USER_FIELDS = {
    "username": ("userName",),
    # name.formatted too: an account's display name is displayName, else name.formatted.
    "display_name": ("displayName", "name.formatted"),
    "email": ("emails",),
    "external_id": ("externalId",),
}
# Attributes a PUT must not send back: read-only (RFC 7643 §3.1, §4.1.2; reference §3.3).
_READ_ONLY = ("meta", "groups")


def _fail(system: str, obj: str, cause: str) -> NoReturn:
    raise ResponseError(system, obj, cause)


def to_account(system: str, resource: Any, obj: str, groups: Iterable[str] = ()) -> Account:
    """Map a User resource to an Account; a resource that is not a usable User raises ResponseError."""
    if not isinstance(resource, dict):
        _fail(system, obj, "not a SCIM User resource (not a JSON object)")
    rid, username = resource.get("id"), resource.get("userName")
    if not isinstance(rid, str) or not rid:
        _fail(system, obj, "a User resource without an id")
    where = f"user id '{rid}'"
    if not isinstance(username, str) or not username:
        # userName is required (RFC 7643 §4.1.1): without it no match rule can hold.
        _fail(system, where, "a User resource without a userName")
    # RFC 7643 gives `active` no default; Atlassian's defaults to true (§3.3): absent is active.
    active = resource.get("active", True)
    if not isinstance(active, bool):
        _fail(system, where, "active is not true or false")
    external = resource.get("externalId")
    if external is not None and not isinstance(external, str):
        _fail(system, where, "externalId is not a string")
    try:
        email = choose_email(resource.get("emails"))
    except ValueError as exc:
        _fail(system, where, str(exc))
    return Account(
        id=rid,
        username=username,
        email=email,
        display_name=display_name(system, where, resource),
        active=active,
        groups=frozenset(groups),
        external_id=external or None,
    )


def display_name(system: str, where: str, resource: Mapping[str, Any]) -> str:
    """Return ``displayName``, else ``name.formatted``, else ""."""
    name = resource.get("name")
    formatted = name.get("formatted") if isinstance(name, dict) else None
    for value in (resource.get("displayName"), formatted):
        if value is not None and not isinstance(value, str):
            _fail(system, where, "displayName or name.formatted is not a string")
        if value:
            return str(value)
    return ""


def _email_value(email: str) -> list[dict[str, Any]]:
    # One work address, primary: the email an account shows is the primary one (§3.3 wants one).
    return [{"value": email, "type": "work", "primary": True}] if email else []


def new_user(username: str, email: str, display: str, external_id: str | None) -> dict[str, Any]:
    """Return the POST /Users body; no given/family name is invented from the display name."""
    body: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": username}
    if external_id:
        body["externalId"] = external_id
    if display:
        body["displayName"] = display
        body["name"] = {"formatted": display}
    if email:
        body["emails"] = _email_value(email)
    body["active"] = True
    return body


def user_patch(fields: Mapping[str, str]) -> dict[str, Any]:
    """Return the PatchOp that replaces ``fields`` (an empty value removes the attribute)."""
    operations: list[dict[str, Any]] = []
    for field, value in fields.items():
        for path in USER_FIELDS[field]:
            if not value:
                operations.append({"op": "remove", "path": path})
            elif path == "emails":
                # A whole-list replace, not emails[type eq "work"].value: that path fails with
                # noTarget on an account without a work email, and could leave two primaries.
                operations.append({"op": "replace", "path": path, "value": _email_value(value)})
            else:
                operations.append({"op": "replace", "path": path, "value": value})
    return patch(operations)


def active_patch(active: bool) -> dict[str, Any]:
    """Return the PatchOp that activates or deactivates a user (reference §3.5)."""
    return patch([{"op": "replace", "path": "active", "value": active}])


def patch(operations: list[dict[str, Any]]) -> dict[str, Any]:
    """Wrap operations in a PatchOp message: ``Operations``, the RFC spelling (§3.5)."""
    return {"schemas": [PATCH_OP], "Operations": operations}


def replaced(resource: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Return the PUT body: the full resource read, with ``changes`` (attribute -> value) applied.

    §3.5: PUT clears what it does not name, so everything read is sent back but the
    read-only attributes; a None or "" value removes that attribute.
    """
    body = {k: copy.deepcopy(v) for k, v in resource.items() if k not in _READ_ONLY}
    for attribute, value in changes.items():
        head, _, sub = attribute.partition(".")
        target = body.setdefault(head, {}) if sub else body
        if not isinstance(target, dict):
            target = body[head] = {}
        leaf = sub or head
        if value is None or value == "":
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return body


def user_changes(fields: Mapping[str, str]) -> dict[str, Any]:
    """Return ``fields`` as attribute -> value, for ``replaced``."""
    changes: dict[str, Any] = {}
    for field, value in fields.items():
        for path in USER_FIELDS[field]:
            changes[path] = (_email_value(value) or None) if path == "emails" else value
    return changes


def new_group(name: str) -> dict[str, Any]:
    """Return the POST /Groups body (reference §3.7)."""
    return {"schemas": [GROUP_SCHEMA], "displayName": name, "members": []}


def group_name(system: str, resource: Any, obj: str) -> tuple[str, str]:
    """Return a Group resource's (id, displayName); one without either raises ResponseError."""
    if not isinstance(resource, dict):
        _fail(system, obj, "not a SCIM Group resource (not a JSON object)")
    gid, name = resource.get("id"), resource.get("displayName")
    if not isinstance(gid, str) or not gid:
        _fail(system, obj, "a Group resource without an id")
    if not isinstance(name, str) or not name.strip():
        _fail(system, f"group id '{gid}'", "no displayName")
    return gid, name


def member_ids(system: str, resource: Mapping[str, Any], obj: str) -> set[str] | None:
    """Return the ids of a Group's members; None when the resource leaves ``members`` out."""
    members = resource.get("members")
    if members is None:
        return None
    if not isinstance(members, list):
        _fail(system, obj, "members is not a list")
    ids = set()
    for member in members:
        value = member.get("value") if isinstance(member, dict) else None
        if not isinstance(value, str) or not value:
            _fail(system, obj, "a member without a value")
        ids.add(value)
    return ids


def direct_groups(system: str, resource: Mapping[str, Any], obj: str) -> list[tuple[str, str]] | None:
    """Return (group id, display) of a User's direct groups; None when it has no ``groups``.

    RFC 7643 §4.1.2: ``groups[].type`` is "direct" or "indirect"; absent counts as direct.
    """
    listed = resource.get("groups")
    if listed is None:
        return None
    if not isinstance(listed, list):
        _fail(system, obj, "groups is not a list")
    found = []
    for entry in listed:
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(value, str) or not value:
            _fail(system, obj, "a group without a value")
        kind = entry.get("type")
        if kind == "direct" or not kind or str(kind).lower() != "indirect":
            display = entry.get("display")
            found.append((value, display if isinstance(display, str) else ""))
    return found
