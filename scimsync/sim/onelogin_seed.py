"""Seeding and inspecting the OneLogin simulator without HTTP (users, roles, groups, idp-apis §4)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from scimsync.sim.onelogin_store import PROFILE_FIELDS, STATES, STATUSES, OLGroup, OLRole, OLUser, user_json

FIRST_USER, FIRST_GROUP, FIRST_ROLE = 500001, 7001, 9001  # as in the §4.2 example


class Seeder:
    """The simulator's directory, and the methods that fill it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.users: dict[int, OLUser] = {}
        self.roles: dict[int, OLRole] = {}
        self.groups: dict[int, OLGroup] = {}

    def clear(self) -> None:
        """Remove every user, role and group."""
        with self._lock:
            self.users.clear()
            self.roles.clear()
            self.groups.clear()

    def add_user(
        self,
        username: str | None,
        email: str | None,
        firstname: str | None = None,
        lastname: str | None = None,
        *,
        status: int = 1,
        state: int = 1,
        group: str | None = None,
        roles: Iterable[str] = (),
        custom_attributes: dict[str, Any] | None = None,
        **profile: Any,
    ) -> int:
        """Create a user (``group``: a group name, ``roles``: role names, created if missing)."""
        if status not in STATUSES or state not in STATES:
            raise ValueError(f"status must be in {sorted(STATUSES)} and state in {sorted(STATES)} (§4.3)")
        unknown = set(profile) - set(PROFILE_FIELDS)
        if unknown:
            raise TypeError(f"not a simulated user field: {sorted(unknown)}")
        with self._lock:
            uid = max(self.users, default=FIRST_USER - 1) + 1
            user = OLUser(uid, username, email, firstname, lastname, status, state)
            user.group_id = self.add_group(group) if group is not None else None
            user.profile = dict(profile)
            user.custom_attributes = dict(custom_attributes or {})
            self.users[uid] = user
            for name in roles:
                self.roles[self.add_role(name)].users.add(uid)
            return uid

    def add_group(self, name: str) -> int:
        """Create a group (or find one by exact name) and return its id."""
        with self._lock:
            for group in self.groups.values():
                if group.name == name:
                    return group.id
            gid = max(self.groups, default=FIRST_GROUP - 1) + 1
            self.groups[gid] = OLGroup(gid, name)
            return gid

    def add_role(self, name: str, members: Iterable[str] = ()) -> int:
        """Create a role (or find one by exact name), add members by username; return its id."""
        with self._lock:
            role = next((r for r in self.roles.values() if r.name == name), None)
            if role is None:
                rid = max(self.roles, default=FIRST_ROLE - 1) + 1
                role = self.roles[rid] = OLRole(rid, name)
            role.users.update(self.find(m).id for m in members)
            return role.id

    def assign(self, role: str, *usernames: str) -> None:
        """Add users to a role."""
        self.add_role(role, usernames)

    def unassign(self, role: str, *usernames: str) -> None:
        """Remove users from a role."""
        with self._lock:
            found = self.roles[self.add_role(role)]
            found.users.difference_update(self.find(u).id for u in usernames)

    def update_user(self, username: str, **fields: Any) -> None:
        """Change a user's fields (``status``, ``state``, ``email``, ``group`` by name, ...)."""
        with self._lock:
            user = self.find(username)
            if "group" in fields:
                group = fields.pop("group")
                user.group_id = self.add_group(group) if group is not None else None
            for name, value in fields.items():
                if name in PROFILE_FIELDS:
                    user.profile[name] = value
                elif name in ("username", "email", "firstname", "lastname", "status", "state"):
                    setattr(user, name, value)
                else:
                    raise TypeError(f"not a simulated user field: {name}")

    def remove_user(self, username: str) -> None:
        """Delete a user: it vanishes from every list (§4.5)."""
        with self._lock:
            user = self.find(username)
            del self.users[user.id]
            for role in self.roles.values():
                role.users.discard(user.id)

    def find(self, username: str) -> OLUser:
        """Return a user by username (or by email when it has none)."""
        with self._lock:
            for user in self.users.values():
                if username in (user.username, user.email):
                    return user
        raise KeyError(f"no user {username!r}")

    def user(self, username: str) -> dict[str, Any]:
        """Return a user as the API shows it."""
        with self._lock:
            return user_json(self.find(username), list(self.roles.values()))

    def seed_company(self, people: list[dict[str, Any]]) -> None:
        """Create users from ``make_people()`` records (scimsync.sim.company).

        A person's ``department`` becomes their OneLogin group (one per user, §4.4) and
        each of their other ``groups`` a role; the source names both as they are, so the
        group names read are the records' own. An inactive person is suspended (status 2).
        """
        with self._lock:
            for person in people:
                department = person.get("department")
                groups = [g for g in person.get("groups", ()) if g != department]
                self.add_user(
                    person["username"],
                    person["email"],
                    person.get("first_name"),
                    person.get("last_name"),
                    status=1 if person.get("active", True) else 2,
                    group=department,
                    roles=groups,
                    department=department,
                    external_id=person.get("id"),
                )
