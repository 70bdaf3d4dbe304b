"""The Okta simulator's users, groups and memberships, rendered as the API does (idp-apis §1.4-§1.6)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scimsync.sim.okta_common import iso

# §1.4: every UserStatus value. DEPROVISIONED users are hidden from a plain list.
USER_STATUSES = (
    "STAGED",
    "PROVISIONED",
    "ACTIVE",
    "RECOVERY",
    "LOCKED_OUT",
    "PASSWORD_EXPIRED",
    "SUSPENDED",
    "DEPROVISIONED",
)
GROUP_TYPES = ("OKTA_GROUP", "APP_GROUP", "BUILT_IN")  # §1.5
EVERYONE_ID = "00gSIMeveryone000001"


@dataclass
class SimUser:
    """One Okta user; times are epoch seconds."""

    id: str
    status: str
    profile: dict[str, Any]
    created: float
    last_updated: float
    activated: float | None = None
    status_changed: float | None = None
    last_login: float | None = None
    password_changed: float | None = None
    transitioning: str | None = None
    # What the eventually consistent search index shows (§1.4): the user as it was before
    # its last change (None: not indexed yet), until `changed + search_lag`.
    indexed: dict[str, Any] | None = None
    changed: float = 0.0


@dataclass
class SimGroup:
    """One Okta group; ``members`` keeps user ids (Okta groups hold users only, §1.6)."""

    id: str
    name: str
    type: str
    created: float
    last_updated: float
    last_membership_updated: float
    description: str = ""
    members: dict[str, None] = field(default_factory=dict)


def user_json(user: SimUser, base: str) -> dict[str, Any]:
    """Render a user as in a list (§1.4): null properties left out, ``_links`` holding only self."""
    body: dict[str, Any] = {
        "id": user.id,
        "status": user.status,
        "created": iso(user.created),
        "activated": iso(user.activated),
        "statusChanged": iso(user.status_changed),
        "lastLogin": iso(user.last_login),
        "lastUpdated": iso(user.last_updated),
        "passwordChanged": iso(user.password_changed),
        "type": {"id": "otySIMdefault00000001"},
        # A copy: the caller may keep it (the search index). The sim replaces a changed
        # profile whole (change_user), never a value inside it, so one level is enough.
        "profile": dict(user.profile),
        "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
        "_links": {"self": {"href": f"{base}/api/v1/users/{user.id}"}},
    }
    if user.transitioning:
        body["transitioningToStatus"] = user.transitioning
    return {k: v for k, v in body.items() if v is not None}


def filter_view(user: SimUser) -> dict[str, Any]:
    """Return what a ``filter`` on users may name (idp-apis §1.4), without rendering the whole user."""
    updated = iso(user.last_updated)
    return {"id": user.id, "status": user.status, "lastUpdated": updated, "profile": user.profile}


def group_json(group: SimGroup, base: str, *, members: int | None = None) -> dict[str, Any]:
    """Render a group (§1.5); ``members`` adds ``_embedded.stats.usersCount`` (expand=stats)."""
    body: dict[str, Any] = {
        "id": group.id,
        "created": iso(group.created),
        "lastUpdated": iso(group.last_updated),
        "lastMembershipUpdated": iso(group.last_membership_updated),
        "objectClass": ["okta:user_group"],
        "type": group.type,
        "profile": {"name": group.name, "description": group.description},
        "_links": {"users": {"href": f"{base}/api/v1/groups/{group.id}/users"}},
    }
    if members is not None:
        body["_embedded"] = {"stats": {"usersCount": members, "appsCount": 0, "hasAdminPrivilege": False}}
    return body


class OktaDirectory:
    """Users and groups in id order, as Okta pages them (by an ``after`` cursor on the id)."""

    def __init__(self, clock: Callable[[], float], *, everyone: bool, deprovisioned_members: bool) -> None:
        self.clock = clock
        self.users: dict[str, SimUser] = {}
        self._by_login: dict[str, str] = {}  # lower-cased login -> id, to seed thousands quickly
        self.groups: dict[str, SimGroup] = {}
        self.deprovisioned_members = deprovisioned_members
        self._serial = 0
        self._sorted: tuple[int, list[SimUser], list[str]] | None = None  # (len(users), users, ids)
        if everyone:
            now = clock()
            self.groups[EVERYONE_ID] = SimGroup(EVERYONE_ID, "Everyone", "BUILT_IN", now, now, now)

    def new_id(self, prefix: str) -> str:
        """Return a fresh 20-character id (``00u…`` users, ``00g…`` groups), increasing."""
        self._serial += 1
        return f"{prefix}SIM{self._serial:014d}"

    def add_user(self, user: SimUser) -> None:
        if user.id in self.users or self.find_user(_login(user)) is not None:
            raise ValueError(f"user {user.id} / {user.profile.get('login')!r} already exists")
        self.users[user.id] = user
        self._by_login[_login(user)] = user.id
        self._sorted = None

    def find_user(self, id_or_login: str) -> SimUser | None:
        """Return a user by id or by login (compared ignoring case), or None."""
        found = self.users.get(id_or_login)
        if found is not None:
            return found
        wanted = id_or_login.lower()
        indexed = self.users.get(self._by_login.get(wanted, ""))
        # An entry left by a login that changed since, or by a deleted user, finds nobody.
        return indexed if indexed is not None and _login(indexed) == wanted else None

    def find_group(self, id_or_name: str) -> SimGroup | None:
        """Return a group by id or by name, or None."""
        return self.groups.get(id_or_name) or next(
            (g for g in self.groups.values() if g.name == id_or_name), None
        )

    def sorted_users(self) -> list[SimUser]:
        return self.users_by_id()[0]

    def users_by_id(self) -> tuple[list[SimUser], list[str]]:
        """Return the users in id order and their ids (kept until a user is added or removed)."""
        cached = self._sorted
        if cached is None or cached[0] != len(self.users):
            users = sorted(self.users.values(), key=lambda u: u.id)
            cached = self._sorted = (len(self.users), users, [u.id for u in users])
        return cached[1], cached[2]

    def remove_user(self, user_id: str) -> None:
        """Delete a user for good, from the directory and from every group."""
        del self.users[user_id]
        self._sorted = None
        for group in self.groups.values():
            group.members.pop(user_id, None)

    def sorted_groups(self) -> list[SimGroup]:
        return sorted(self.groups.values(), key=lambda g: g.id)

    def member_ids(self, group: SimGroup) -> list[str]:
        """Return a group's members in id order; Everyone (BUILT_IN) holds every user."""
        if group.id == EVERYONE_ID:
            return [u.id for u in self.users_by_id()[0] if self._listed(u)]
        return sorted(i for i in group.members if i in self.users and self._listed(self.users[i]))

    def groups_of(self, user: SimUser) -> list[SimGroup]:
        """Return the groups a user is a member of, in id order."""
        return [g for g in self.sorted_groups() if user.id in self.member_ids(g)]

    def _listed(self, user: SimUser) -> bool:
        # ⚠ §1.6: unconfirmed whether deactivated members are listed; they keep their
        # memberships (Okta support: deactivation does not remove group memberships).
        return self.deprovisioned_members or user.status != "DEPROVISIONED"

    def change_user(self, user: SimUser, base: str, changes: Mapping[str, Any]) -> None:
        """Apply changes to a user, keeping what the search index shows until it catches up."""
        now = self.clock()
        user.indexed = user_json(user, base)
        user.changed = now
        for name, value in changes.items():
            setattr(user, name, value)
        user.last_updated = now
        self._by_login[_login(user)] = user.id


def _login(user: SimUser) -> str:
    return str(user.profile.get("login", "")).lower()
