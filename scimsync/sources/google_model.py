"""Google Directory resources -> the source model (SPEC §4): users, statuses, groups, nesting.

No I/O: ``GoogleSource`` reads, this module maps what was read and refuses what would make
a wrong directory (an active user without a primaryEmail, a user listed twice, two groups
of one name, a member of a kind §3.5 does not name).

- A user's username and email are its ``primaryEmail`` (idp-apis §3.2: "login ->
  primaryEmail"); ``suspended`` or ``archived`` makes it inactive (§3.3, SPEC §4). A field
  left out is false, as Google's JSON leaves out default values [U]; one that is not a
  boolean is an error.
- A group's members are users (type ``USER``; ``EXTERNAL`` is documented as unused and read
  like a user), nested groups (``GROUP``) and ``CUSTOMER``: every user of the customer whose
  ``customerId`` is the member's id (§3.5). Nesting is flattened here, cycles included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from scimsync.errors import ResponseError
from scimsync.models import Group, SourceDirectory, User, key

# §3.2: ssosync strips zero-width spaces from names before use; so do we.
ZERO_WIDTH = "\u200b"
# Never copied into user.attributes: bookkeeping, and write-only credential fields.
NOT_ATTRIBUTES = frozenset({"kind", "etag", "password", "hashFunction"})
USER_TYPES = frozenset({"USER", "EXTERNAL"})
TWICE = "listed twice: the list changed while it was read; run again"


def _fail(system: str, where: str, cause: str) -> NoReturn:
    raise ResponseError(system, where, cause)


def _text(system: str, where: str, data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        _fail(system, where, f"{field} is not a string")
    return value.replace(ZERO_WIDTH, "")


def _flag(system: str, where: str, data: Mapping[str, Any], field: str) -> bool:
    value = data.get(field, False)
    if not isinstance(value, bool):
        _fail(system, where, f"{field} is not true or false")
    return value


def to_user(system: str, resource: Mapping[str, Any]) -> User:
    """Map one user resource (§3.2); its groups are filled in by ``assemble``."""
    uid = resource.get("id")
    if not isinstance(uid, str) or not uid:
        _fail(system, f"user {resource.get('primaryEmail')!r}", "has no id")
    where = f"user id '{uid}'"
    active = not (_flag(system, where, resource, "suspended") or _flag(system, where, resource, "archived"))
    email = _text(system, where, resource, "primaryEmail").strip()
    if not email and active:
        _fail(system, where, "an active user without a primaryEmail")
    name = resource.get("name") or {}
    if not isinstance(name, dict):
        _fail(system, where, "name is not an object")
    first, last = _text(system, where, name, "givenName"), _text(system, where, name, "familyName")
    full = _text(system, where, name, "fullName").strip()
    return User(
        id=uid,
        username=email,
        email=email,
        first_name=first,
        last_name=last,
        display_name=full or f"{first} {last}".strip(),
        active=active,
        attributes={k: v for k, v in resource.items() if k not in NOT_ATTRIBUTES},
    )


@dataclass(frozen=True)
class GroupInfo:
    """A group as groups.list shows it (§3.5)."""

    id: str
    name: str
    email: str


def group_info(system: str, resource: Mapping[str, Any]) -> GroupInfo:
    """Read one group resource: its id, name and address."""
    gid = resource.get("id")
    if not isinstance(gid, str) or not gid:
        _fail(system, f"group {resource.get('email')!r}", "has no id")
    where = f"group id '{gid}'"
    name = _text(system, where, resource, "name").strip()
    if not name:
        _fail(system, where, "has no name")
    return GroupInfo(gid, name, _text(system, where, resource, "email"))


@dataclass(frozen=True)
class Members:
    """A group's direct members by kind: user ids, nested group ids, customer ids."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    customers: tuple[str, ...] = ()

    def merge(self, more: Members) -> Members:
        """Return these members followed by ``more`` (the next page's), each once."""
        return Members(
            tuple(dict.fromkeys(self.users + more.users)),
            tuple(dict.fromkeys(self.groups + more.groups)),
            tuple(dict.fromkeys(self.customers + more.customers)),
        )


def direct_members(system: str, where: str, resources: Iterable[Mapping[str, Any]]) -> Members:
    """Sort the member resources of one group by type (§3.5); an unknown type is an error."""
    users: dict[str, None] = {}
    groups: dict[str, None] = {}
    customers: dict[str, None] = {}
    for member in resources:
        mid, kind = member.get("id"), member.get("type")
        if not isinstance(mid, str) or not mid:
            _fail(system, where, "a member without an id")
        if isinstance(kind, str) and kind in USER_TYPES:  # a list or object is no type, and unhashable
            users[mid] = None
        elif kind == "GROUP":
            groups[mid] = None
        elif kind == "CUSTOMER":
            customers[mid] = None
        else:
            _fail(system, where, f"member '{mid}' has the type {kind!r} (expected USER, GROUP or CUSTOMER)")
    return Members(tuple(users), tuple(groups), tuple(customers))


class Graph:
    """Every group whose members were read (listed, or nested from outside the list) and its members."""

    def __init__(self, members: Mapping[str, Members]) -> None:
        self.members = members

    def missing(self) -> list[str]:
        """Return nested groups whose members were not read (groups groups.list did not list)."""
        nested = {g: None for m in self.members.values() for g in m.groups}
        return [g for g in nested if g not in self.members]

    def reach(self, group_ids: Iterable[str]) -> tuple[set[str], set[str]]:
        """Return the user ids and customer ids in these groups, directly or nested (cycles end)."""
        seen = set(group_ids)
        todo = list(seen)
        users: set[str] = set()
        customers: set[str] = set()
        while todo:
            members = self.members.get(todo.pop(), Members())
            users.update(members.users)
            customers.update(members.customers)
            for child in members.groups:
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return users, customers


def assemble(
    system: str, resources: Sequence[Mapping[str, Any]], groups: Sequence[GroupInfo], graph: Graph
) -> SourceDirectory:
    """Build the directory: users with every group they are in, directly or nested (SPEC §4)."""
    users = [to_user(system, r) for r in resources]
    position: dict[str, int] = {}
    for i, user in enumerate(users):
        if user.id in position:
            _fail(
                system, f"user id '{user.id}'", "listed twice: the list changed while it was read; run again"
            )
        position[user.id] = i
    by_customer: dict[str, list[int]] = {}
    for i, resource in enumerate(resources):
        customer = resource.get("customerId")
        if isinstance(customer, str):
            by_customer.setdefault(customer, []).append(i)
    _unique_names(system, groups)
    names: list[list[str]] = [[] for _ in users]
    result = []
    for group in groups:
        uids, customers = graph.reach([group.id])
        inside = {position[u] for u in uids if u in position}
        inside.update(i for c in customers for i in by_customer.get(c, ()))
        for i in sorted(inside):
            names[i].append(group.name)
        result.append(
            Group(id=group.id, name=group.name, member_ids=tuple(users[i].id for i in sorted(inside)))
        )
    return SourceDirectory(
        users=tuple(dataclasses.replace(u, groups=tuple(n)) for u, n in zip(users, names, strict=True)),
        groups=tuple(result),
    )


def _unique_names(system: str, groups: Sequence[GroupInfo]) -> None:
    """Refuse two groups of one id, or of one name: rules and scoping match names (SPEC §4)."""
    ids: set[str] = set()
    names: dict[str, GroupInfo] = {}
    for group in groups:
        if group.id in ids:
            _fail(
                system, f"group {group.email}", "listed twice: the list changed while it was read; run again"
            )
        ids.add(group.id)
        other = names.setdefault(key(group.name), group)
        if other is not group:
            cause = f"has the name '{group.name}' of group {other.email}: two groups of one name would merge"
            _fail(system, f"group {group.email}", f"{cause}; rename one of them")
