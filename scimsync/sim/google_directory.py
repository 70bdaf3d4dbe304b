"""The simulator's directory: users, groups and members of one Google Workspace customer (idp-apis §3).

Users and groups are found by id, primary email or alias, case-insensitively. Resources are
rendered as the Directory API shows them (§3.2, §3.5). Deleted users stay, flagged, so that
``showDeleted=true`` can list them and nothing else (§3.3).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from scimsync.sim.google_common import etag

ROLES = ("OWNER", "MANAGER", "MEMBER")
MEMBER_TYPES = ("USER", "GROUP", "CUSTOMER")


@dataclass
class GUser:
    """A user; ``extra`` holds any other resource field (organizations, customSchemas, ...)."""

    id: str
    primary_email: str
    given_name: str
    family_name: str
    full_name: str | None = None
    suspended: bool = False
    archived: bool = False
    is_admin: bool = False
    deleted: bool = False
    aliases: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Member:
    """One direct member of a group: a user, a group, or every user of the customer."""

    id: str
    type: str
    role: str = "MEMBER"


@dataclass
class GGroup:
    """A group and its direct members, in the order they were added."""

    id: str
    email: str
    name: str
    description: str = ""
    aliases: list[str] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)


class Directory:
    """Every user and group of the customer ``customer_id`` (not thread-safe: the sim locks)."""

    def __init__(self, customer_id: str, domains: tuple[str, ...]) -> None:
        self.customer_id = customer_id
        self.domains = domains
        self.users: dict[str, GUser] = {}
        self.groups: dict[str, GGroup] = {}
        self._user_keys: dict[str, str] = {}  # id, address or alias (lower-cased) -> user id
        self._group_keys: dict[str, str] = {}
        self._user_ids = itertools.count(104400000000000000001)
        self._group_ids = itertools.count(1)

    # -- lookups ------------------------------------------------------------------------

    def find_user(self, key: str, *, deleted: bool = False) -> GUser | None:
        """Return the user whose id, primary email or alias is ``key``."""
        user = self.users.get(self._user_keys.get(key.lower(), ""))
        return user if user is not None and user.deleted == deleted else None

    def find_group(self, key: str) -> GGroup | None:
        """Return the group whose id, email or alias is ``key``."""
        return self.groups.get(self._group_keys.get(key.lower(), ""))

    def email_taken(self, email: str) -> bool:
        """Tell whether a user (deleted ones too) or a group already has this address."""
        return email.lower() in self._user_keys or email.lower() in self._group_keys

    # -- changes ------------------------------------------------------------------------

    def create_user(self, email: str, given: str, family: str, **fields: Any) -> GUser:
        """Create a user; ``fields`` are GUser fields."""
        user = GUser(str(next(self._user_ids)), email, given, family, **fields)
        keys = [user.id, email, *user.aliases]
        if any(self.email_taken(k) for k in keys):
            raise ValueError(f"an address of {email!r} is taken")
        self.users[user.id] = user
        self._user_keys.update((k.lower(), user.id) for k in keys)
        return user

    def create_group(self, name: str, email: str, description: str = "") -> GGroup:
        """Create a group."""
        if self.email_taken(email):
            raise ValueError(f"the address {email!r} is taken")
        group = GGroup(f"03sim{next(self._group_ids):011d}", email, name, description)
        self.groups[group.id] = group
        self._group_keys.update({group.id.lower(): group.id, email.lower(): group.id})
        return group

    def delete_user(self, user: GUser) -> None:
        """Delete a user: it leaves every group and shows only with showDeleted=true (§3.3)."""
        user.deleted = True
        for group in self.groups.values():
            group.members.pop(user.id, None)

    # -- listing ------------------------------------------------------------------------

    def derived_members(self, group: GGroup) -> list[Member]:
        """Return the direct members, then every user of a nested group once (cycles end). [U]"""
        found = dict(group.members)
        seen, todo = {group.id}, [group]
        while todo:
            for member in todo.pop().members.values():
                nested = self.groups.get(member.id) if member.type == "GROUP" else None
                if nested is None:
                    found.setdefault(member.id, Member(member.id, member.type, "MEMBER"))
                elif nested.id not in seen:
                    seen.add(nested.id)
                    todo.append(nested)
        return list(found.values())

    def groups_of(self, user: GUser) -> Iterator[GGroup]:
        """Yield the groups ``user`` is a direct member of (groups.list with userKey, §3.5)."""
        return (g for g in self.groups.values() if user.id in g.members)

    # -- rendering ----------------------------------------------------------------------

    def render_user(
        self, user: GUser, *, projection: str, mask: Iterable[str] = (), public: bool = False
    ) -> dict[str, Any]:
        """Return the user resource (§3.2); ``public`` is viewType=domain_public."""
        name = {
            "givenName": user.given_name,
            "familyName": user.family_name,
            "fullName": user.full_name or f"{user.given_name} {user.family_name}".strip(),
        }
        resource: dict[str, Any] = {"kind": "admin#directory#user", "id": user.id}
        resource |= {"primaryEmail": user.primary_email, "name": name}
        if not public:
            resource |= self._admin_view(user)
        extra = copy.deepcopy(user.extra)
        schemas = extra.pop("customSchemas", None)
        resource |= extra
        if schemas and projection == "full":
            resource["customSchemas"] = schemas
        elif schemas and projection == "custom":
            wanted = set(mask)
            resource["customSchemas"] = {k: v for k, v in schemas.items() if k in wanted}
        resource["etag"] = etag(resource)
        return resource

    def _admin_view(self, user: GUser) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "isAdmin": user.is_admin,
            "isDelegatedAdmin": False,
            "suspended": user.suspended,
            "archived": user.archived,
            "changePasswordAtNextLogin": False,
            "customerId": self.customer_id,
            "orgUnitPath": "/",
            "isMailboxSetup": True,
            "creationTime": "2024-03-01T09:00:00.000Z",
            "emails": [{"address": user.primary_email, "primary": True}],
        }
        if user.suspended:
            fields["suspensionReason"] = "ADMIN"  # §3.2: set only when suspended
        if user.aliases:
            fields["aliases"] = list(user.aliases)
        if user.deleted:
            fields["deletionTime"] = "2026-01-10T08:00:00.000Z"
        return fields

    def render_group(self, group: GGroup) -> dict[str, Any]:
        """Return the group resource (§3.5); the count is an int64, which JSON carries as a string."""
        resource: dict[str, Any] = {
            "kind": "admin#directory#group",
            "id": group.id,
            "email": group.email,
            "name": group.name,
            "directMembersCount": str(len(group.members)),
            "description": group.description,
            "adminCreated": True,
        }
        if group.aliases:
            resource["aliases"] = list(group.aliases)
        resource["etag"] = etag(resource)
        return resource

    def render_member(self, member: Member) -> dict[str, Any]:
        """Return the member resource (§3.5): CUSTOMER has no email, GROUP no status."""
        resource: dict[str, Any] = {"kind": "admin#directory#member", "id": member.id}
        resource |= {"role": member.role, "type": member.type}
        if member.type == "USER":
            user = self.users[member.id]
            # [U] §3.5 does not enumerate status; ACTIVE and SUSPENDED are assumed.
            status = "SUSPENDED" if user.suspended else "ACTIVE"
            resource |= {"email": user.primary_email, "status": status}
        elif member.type == "GROUP":
            resource["email"] = self.groups[member.id].email
        resource["etag"] = etag(resource)
        return resource
