"""The Entra ID simulator's directory: users, groups, other directory objects, nested membership.

Objects keep every property they have; what a response shows is decided by ``render``
from ``$select`` and each type's default property set (idp-apis §2.2, §2.5).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# idp §2.2: only these come back on /users unless $select asks for others.
USER_DEFAULT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
)
# Properties a list of users can $select. [U] A working subset of the Graph user schema.
USER_LISTABLE = (
    *USER_DEFAULT,
    "accountEnabled",
    "city",
    "companyName",
    "country",
    "createdDateTime",
    "department",
    "employeeId",
    "employeeType",
    "externalUserState",
    "mailNickname",
    "onPremisesSamAccountName",
    "onPremisesSyncEnabled",
    "otherMails",
    "proxyAddresses",
    "usageLocation",
    "userType",
)
# idp §2.2: readable on a single user only; selecting one on a collection answers 501.
USER_SINGLE_ONLY = (
    "aboutMe",
    "birthday",
    "hireDate",
    "interests",
    "mailboxSettings",
    "mySite",
    "pastProjects",
    "preferredName",
    "responsibilities",
    "schools",
    "skills",
)
# idp §2.5 (⚠ general knowledge there): the group properties a list shows and can $select.
GROUP_PROPERTIES = (
    "createdDateTime",
    "description",
    "displayName",
    "groupTypes",
    "mail",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
    "visibility",
)
# idp §2.5: the member types /members and /transitiveMembers return.
KINDS = ("user", "group", "device", "orgContact", "servicePrincipal")
OTHER_PROPERTIES = ("displayName", "accountEnabled")


@dataclass
class DirectoryObject:
    """One directory object; ``members`` are the direct member ids of a group, in order added."""

    id: str
    kind: str
    props: dict[str, Any]
    members: dict[str, None] = field(default_factory=dict)  # an ordered set


class EntraDirectory:
    """Every object of one tenant. Not thread-safe: the simulator holds its lock."""

    def __init__(self, *, seed: int = 20260110) -> None:
        self.objects: dict[str, DirectoryObject] = {}
        self._ids: dict[str, set[str]] = {kind: set() for kind in KINDS}  # kind -> ids, for speed
        self._rng = random.Random(seed)

    def clear(self) -> None:
        """Delete every object."""
        self.objects.clear()
        for ids in self._ids.values():
            ids.clear()

    def new_id(self) -> str:
        """Return a fresh object id: a version-4 GUID, deterministic per simulator."""
        while True:
            value = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            if value not in self.objects:
                return value

    def add(self, kind: str, props: dict[str, Any]) -> DirectoryObject:
        """Create an object of ``kind`` with ``props``."""
        if kind not in KINDS:
            raise ValueError(f"unknown directory object type {kind!r} (one of {', '.join(KINDS)})")
        obj = DirectoryObject(self.new_id(), kind, dict(props))
        self.objects[obj.id] = obj
        self._ids[kind].add(obj.id)
        return obj

    def get(self, object_id: str, kind: str | None = None) -> DirectoryObject:
        """Return an object by id (of ``kind`` when given); KeyError when there is none."""
        obj = self.objects.get(object_id)
        if obj is None or (kind is not None and obj.kind != kind):
            raise KeyError(f"no {kind or 'object'} {object_id!r}")
        return obj

    def of_kind(self, kind: str) -> list[DirectoryObject]:
        """Return every object of ``kind``, ordered by id (the order lists are paged in)."""
        return sorted((self.objects[i] for i in self._ids[kind]), key=lambda o: o.id)

    def add_member(self, group_id: str, member_id: str) -> None:
        """Make ``member_id`` a direct member of the group (idempotent)."""
        group = self.get(group_id, "group")
        self.get(member_id)
        group.members[member_id] = None

    def remove(self, object_id: str) -> None:
        """Delete an object and every membership of it (a deleted user leaves /users, §2.4)."""
        gone = self.objects.pop(object_id, None)
        if gone is not None:
            self._ids[gone.kind].discard(object_id)
        for obj in self.objects.values():
            obj.members.pop(object_id, None)

    def direct_members(self, group_id: str) -> list[DirectoryObject]:
        """Return a group's direct members ordered by id."""
        group = self.get(group_id, "group")
        return sorted((self.objects[m] for m in group.members), key=lambda o: o.id)

    def transitive_members(self, group_id: str) -> list[DirectoryObject]:
        """Return everything in a group directly or through nested groups, once each, by id.

        Nested groups are listed too (idp §2.5); a cycle ends, and a group is never its own member.
        """
        seen = {group_id}
        found: dict[str, DirectoryObject] = {}
        todo = [group_id]
        while todo:
            for member_id in self.get(todo.pop(), "group").members:
                if member_id in seen:
                    continue
                seen.add(member_id)
                member = self.objects[member_id]
                found[member_id] = member
                if member.kind == "group":
                    todo.append(member_id)
        return sorted(found.values(), key=lambda o: o.id)

    def find_groups(self, display_name: str) -> list[DirectoryObject]:
        """Return the groups with this display name (Graph does not make names unique)."""
        groups = (self.objects[i] for i in self._ids["group"])
        return [g for g in groups if g.props.get("displayName") == display_name]


def default_properties(kind: str) -> tuple[str, ...]:
    """Return the properties a response shows for ``kind`` without $select."""
    if kind == "user":
        return USER_DEFAULT
    if kind == "group":
        return GROUP_PROPERTIES
    return OTHER_PROPERTIES


def selectable(kind: str) -> tuple[str, ...]:
    """Return the properties $select may name on a list of ``kind``."""
    if kind == "user":
        return USER_LISTABLE
    if kind == "group":
        return GROUP_PROPERTIES
    return OTHER_PROPERTIES


def render(obj: DirectoryObject, select: Iterable[str] | None, *, typed: bool) -> dict[str, Any]:
    """Return the JSON of ``obj``: ``id`` always, then the selected (or default) properties.

    An unset property that is asked for is null, as Graph shows it; a property the object's
    type does not have is left out (a group in a member list selected with user fields).
    ``typed`` adds ``@odata.type``: member lists hold several types (idp §2.5).
    """
    names = default_properties(obj.kind) if select is None else tuple(select)
    known = selectable(obj.kind)
    body: dict[str, Any] = {"@odata.type": f"#microsoft.graph.{obj.kind}"} if typed else {}
    body["id"] = obj.id
    for name in names:
        if name != "id" and name in known:
            body[name] = obj.props.get(name)
    return body
