"""Keycloak representations -> the source model (SPEC §4): users, the group tree, memberships.

No I/O. Decisions, for the README:
- ``active`` is ``enabled`` (idp §5.2): a disabled user is inactive. Required actions
  (update password, verify email) and a brute-force lockout do not touch ``enabled`` in
  the list, so those people stay active, as SPEC §4 wants for temporary states.
- ``Group.name`` is the Keycloak ``name`` (SPEC §4), which rules and scoping match;
  ``Group.id`` is the group's path (``/engineering/platform``), unique in the realm, so a
  rule's ``to`` can use ``group.id``. Two groups of one name (``/eng/platform`` and
  ``/sales/platform``) would merge under that name: the read refuses them instead.
- A member of a subgroup is in every group above it (SPEC §4: "directly or through nested
  groups"); ``/members`` lists direct members only (idp §5.3), so memberships are walked up.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from scimsync.errors import ResponseError
from scimsync.models import Group, SourceDirectory, User, glob_match, key

log = logging.getLogger("scimsync.sources.keycloak")

Rep = Mapping[str, Any]
# Not profile data: what the admin console may do with the user, and credentials (never read).
_LEFT_OUT = frozenset({"access", "credentials"})


@dataclass(frozen=True)
class GroupNode:
    """One group of the tree: Keycloak's id, its name, its path, its parent's id."""

    id: str
    name: str
    path: str
    parent: str | None


def _fail(system: str, obj: str, cause: str) -> NoReturn:
    raise ResponseError(system, obj, cause)


# --- groups ------------------------------------------------------------------------------


def group_node(system: str, rep: Rep, parent: GroupNode | None) -> GroupNode:
    """Read one GroupRepresentation (idp §5.3); its path is computed when the server sends none."""
    gid = rep.get("id")
    if not isinstance(gid, str) or not gid:
        _fail(system, f"a group under {parent.path if parent else '/'}", "has no id")
    name = rep.get("name")
    if not isinstance(name, str) or not name.strip():
        _fail(system, f"group id '{gid}'", "has no name")
    path = rep.get("path")
    if path is None:
        path = f"{parent.path if parent else ''}/{name}"
    elif not isinstance(path, str) or not path.startswith("/"):
        _fail(system, f"group '{name}' (id {gid})", "its path is not a string starting with '/'")
    return GroupNode(gid, name, path, parent.id if parent else None)


def inline_subgroups(system: str, rep: Rep, node: GroupNode) -> list[Rep] | int:
    """Return the subgroups the representation holds whole, or how many ``/children`` must list.

    Before Keycloak 23 ``/groups`` nests every subtree in ``subGroups`` and has no
    ``subGroupCount``; from 23 on ``subGroups`` stays empty and ``subGroupCount`` counts
    the children to fetch (idp §5.3, keycloak#27694).
    """
    where = f"group {node.path}"
    inline = rep.get("subGroups")
    count = rep.get("subGroupCount")
    if inline is not None and not (isinstance(inline, list) and all(isinstance(g, dict) for g in inline)):
        _fail(system, where, "subGroups is not a list of groups")
    if count is None:
        if inline is None:
            # Strict [U]: neither tells whether it has subgroups, whose members are its members too.
            _fail(system, where, "has neither subGroups nor subGroupCount")
        return list(inline)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        _fail(system, where, "subGroupCount is not a number")
    if inline and len(inline) == count:
        return list(inline)
    return [] if count == 0 else count


def check_names(system: str, nodes: Sequence[GroupNode]) -> None:
    """Refuse two groups of one name (compared as the targets compare, SPEC §4)."""
    first: dict[str, GroupNode] = {}
    for node in nodes:
        seen = first.setdefault(key(node.name), node)
        if seen is not node:
            _fail(
                system,
                f"group {node.path}",
                f"has the name '{node.name}' of group {seen.path}: rules and scoping match group names "
                "(SPEC §4), so the two would merge; rename one",
            )


def scoped_groups(nodes: Sequence[GroupNode], include: Sequence[str]) -> set[str]:
    """Return the ids of the groups ``include`` matches by name, and of every group below them."""
    below: dict[str | None, list[GroupNode]] = {}
    for node in nodes:
        below.setdefault(node.parent, []).append(node)
    todo = [n for n in nodes if any(glob_match(n.name, p) for p in include)]
    found: set[str] = set()
    while todo:
        node = todo.pop()
        if node.id not in found:
            found.add(node.id)
            todo.extend(below.get(node.id, ()))
    return found


# --- users -------------------------------------------------------------------------------


def is_service_account(rep: Rep) -> bool:
    """Tell a client's service-account user, which the unfiltered /users leaves out (idp §5.2 ⚠)."""
    return bool(rep.get("serviceAccountClientId"))


def to_user(system: str, rep: Rep) -> User:
    """Map one UserRepresentation (idp §5.2); its groups are filled in by ``assemble``."""
    uid = str(rep["id"])
    username = _text(system, f"user id '{uid}'", rep, "username")
    where = f"user '{username}' (id {uid})" if username else f"user id '{uid}'"
    enabled = rep.get("enabled")
    if not isinstance(enabled, bool):
        _fail(system, where, "enabled is missing or not true/false")
    if enabled and not username:
        _fail(system, where, "an enabled user without a username")
    first, last = _text(system, where, rep, "firstName"), _text(system, where, rep, "lastName")
    return User(
        id=uid,
        username=username,
        email=_text(system, where, rep, "email"),
        first_name=first,
        last_name=last,
        display_name=f"{first} {last}".strip(),  # Keycloak has no display name (idp §5.2)
        active=enabled,
        attributes=_attributes(system, where, rep),
    )


def _text(system: str, where: str, rep: Rep, field: str) -> str:
    value = rep.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        _fail(system, where, f"{field} is not a string")
    return value


def _attributes(system: str, where: str, rep: Rep) -> dict[str, Any]:
    """Return the representation, and each custom attribute at the top (one value as a string).

    Custom attributes are lists of strings (idp §5.2): ``department: ["Finance"]`` becomes
    ``user.attributes.department == "Finance"``; a representation field of the same name wins,
    and the whole map stays under ``attributes``.
    """
    found = {k: v for k, v in rep.items() if k not in _LEFT_OUT}
    custom = rep.get("attributes")
    if custom is None:
        return found
    if not isinstance(custom, dict):
        _fail(system, where, "attributes is not an object")
    for name, values in custom.items():
        single = isinstance(values, list) and len(values) == 1
        found.setdefault(name, values[0] if single else values)
    return found


# --- the directory -------------------------------------------------------------------------


def assemble(
    system: str,
    users: Sequence[User],
    nodes: Sequence[GroupNode],
    direct: Mapping[str, Collection[str]],
) -> SourceDirectory:
    """Build the directory: every user with every group it is in, directly or below (SPEC §4).

    ``direct`` maps a group's Keycloak id to its direct members' ids; a member that is not
    among ``users`` (a service account; someone created after the users were read; out of
    scope) is left out.
    """
    by_id = {n.id: n for n in nodes}
    known = {u.id for u in users}
    member_of: dict[str, set[str]] = {}
    strangers: set[str] = set()
    for gid, members in direct.items():
        chain = _chain(system, by_id, by_id[gid])
        for uid in members:
            if uid in known:
                member_of.setdefault(uid, set()).update(chain)
            else:
                strangers.add(uid)
    if strangers:
        log.debug("%s: %d group members are not among the users read; left out", system, len(strangers))
    in_group: dict[str, list[str]] = {n.id: [] for n in nodes}
    result = []
    for user in users:
        gids = member_of.get(user.id, set())
        for gid in gids:
            in_group[gid].append(user.id)
        names = sorted((by_id[g].name for g in gids), key=key)
        result.append(dataclasses.replace(user, groups=tuple(names)))
    groups = tuple(Group(id=n.path, name=n.name, member_ids=tuple(in_group[n.id])) for n in nodes)
    return SourceDirectory(users=tuple(result), groups=groups)


def _chain(system: str, by_id: Mapping[str, GroupNode], node: GroupNode) -> list[str]:
    """Return the ids of ``node`` and every group above it; a parent loop is a ResponseError."""
    chain = [node.id]
    current = node
    while current.parent is not None:
        parent = by_id.get(current.parent)
        if parent is None or parent.id in chain:
            _fail(system, f"group {node.path}", "its parents do not lead to the top of the tree")
        chain.append(parent.id)
        current = parent
    return chain
