"""Seeding the Google Workspace simulator without HTTP: users, groups, members, a whole company."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from scimsync.sim.google_directory import MEMBER_TYPES, ROLES, Directory, GGroup, GUser, Member

_USER_FIELDS = frozenset({"given_name", "family_name", "full_name", "suspended", "archived", "is_admin"})


def slug(name: str) -> str:
    """Return an address-safe form of a group name: ``Équipe Design`` -> ``equipe-design``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


class Seeding:
    """The seeding and inspection methods of ``GoogleSim``."""

    def __init__(self, customer_id: str, domains: tuple[str, ...]) -> None:
        if not domains:
            raise ValueError("a customer has at least one domain")
        self.directory = Directory(customer_id, domains)
        self._lock = threading.RLock()

    def add_user(
        self,
        email: str,
        given_name: str = "",
        family_name: str = "",
        *,
        suspended: bool = False,
        archived: bool = False,
        admin: bool = False,
        full_name: str | None = None,
        aliases: Iterable[str] = (),
        **extra: Any,
    ) -> str:
        """Create a user (its address in one of the customer's domains) and return its id.

        ``extra`` are further resource fields as the API names them (``organizations``,
        ``customSchemas``, ``externalIds``...).
        """
        domain = email.rpartition("@")[2].lower()
        if domain not in self.directory.domains:
            raise ValueError(f"{email!r} is not in a domain of this customer {self.directory.domains}")
        with self._lock:
            user = self.directory.create_user(
                email,
                given_name,
                family_name,
                full_name=full_name,
                suspended=suspended,
                archived=archived,
                is_admin=admin,
                aliases=list(aliases),
                extra=dict(extra),
            )
            return user.id

    def add_group(
        self,
        name: str,
        *,
        email: str | None = None,
        members: Iterable[str] = (),
        children: Iterable[str] = (),
        description: str = "",
    ) -> str:
        """Create a group with user members and nested groups (by id, address or name); return its id."""
        with self._lock:
            address = email or self._free_address(name)
            group = self.directory.create_group(name, address, description)
            for member in [*members, *children]:
                self.add_member(group.id, member)
            return group.id

    def _free_address(self, name: str) -> str:
        base = slug(name) or "group"
        domain = self.directory.domains[0]
        address, n = f"{base}@{domain}", 1
        while self.directory.email_taken(address):
            n += 1
            address = f"{base}-{n}@{domain}"
        return address

    def add_member(self, group: str, member: str, *, role: str = "MEMBER") -> None:
        """Add a user or a group to a group (by id, address or group name); cycles are allowed."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        with self._lock:
            target = self._group(group)
            user = self.directory.find_user(member)
            nested = self._find_group(member)
            if user is not None:
                entry = Member(user.id, "USER", role)
            elif nested is not None:
                entry = Member(nested.id, "GROUP", role)
            else:
                raise KeyError(f"no user or group {member!r}")
            target.members[entry.id] = entry

    def add_customer_member(self, group: str) -> None:
        """Make every user of the customer a member of ``group`` (member type CUSTOMER, §3.5)."""
        with self._lock:
            customer = self.directory.customer_id
            self._group(group).members[customer] = Member(customer, MEMBER_TYPES[2])

    def remove_member(self, group: str, member: str) -> None:
        """Remove a direct member (by id or address)."""
        with self._lock:
            target = self._group(group)
            found = self.directory.find_user(member) or self._find_group(member)
            if found is None or target.members.pop(found.id, None) is None:
                raise KeyError(f"{member!r} is not a member of {group!r}")

    def update_user(self, key: str, **fields: Any) -> None:
        """Change a user as an admin would (the fields in ``_USER_FIELDS``)."""
        unknown = set(fields) - _USER_FIELDS
        if unknown:
            raise TypeError(f"unknown user fields: {sorted(unknown)}")
        with self._lock:
            user = self._user(key)
            for name, value in fields.items():
                setattr(user, name, value)

    def delete_user(self, key: str) -> None:
        """Delete a user: gone from lists and groups, listed only with showDeleted=true (§3.3)."""
        with self._lock:
            self.directory.delete_user(self._user(key))

    def user(self, key: str) -> GUser | None:
        """Return a (not deleted) user by id or address, or None."""
        with self._lock:
            return self.directory.find_user(key)

    def seed_company(self, people: Iterable[Mapping[str, Any]]) -> str:
        """Create users and groups from ``scimsync.sim.company.make_people`` records.

        ``groups`` are group names (a group is created for each new name); ``active: false``
        is a suspended user; ``id`` becomes an ``externalIds`` entry and ``department`` the
        primary organization's department. The first active person is made a super admin,
        and their address is returned: the ``subject`` to impersonate.
        """
        admin: str | None = None
        with self._lock:
            groups: dict[str, str] = {}
            for person in people:
                active = bool(person.get("active", True))
                extra: dict[str, Any] = {
                    "externalIds": [{"type": "organization", "value": str(person["id"])}]
                }
                if person.get("department"):
                    extra["organizations"] = [{"department": person["department"], "primary": True}]
                uid = self.add_user(
                    person["email"],
                    person.get("first_name", ""),
                    person.get("last_name", ""),
                    suspended=not active,
                    admin=admin is None and active,
                    **extra,
                )
                if admin is None and active:
                    admin = person["email"]
                for name in person.get("groups", ()):
                    if name not in groups:
                        groups[name] = self.add_group(name)
                    self.add_member(groups[name], uid)
        if admin is None:
            raise ValueError("seed_company needs at least one active person (the admin to impersonate)")
        return admin

    def _user(self, key: str) -> GUser:
        user = self.directory.find_user(key)
        if user is None:
            raise KeyError(f"no user {key!r}")
        return user

    def _find_group(self, key: str) -> GGroup | None:
        """Find a group by id, address or alias, or else by its (unique) name, for seeding."""
        found = self.directory.find_group(key)
        named = [g for g in self.directory.groups.values() if g.name == key]
        return found or (named[0] if len(named) == 1 else None)

    def _group(self, key: str) -> GGroup:
        group = self._find_group(key)
        if group is None:
            raise KeyError(f"no group {key!r}")
        return group
