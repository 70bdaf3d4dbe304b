"""The in-memory state behind the Confluence simulator: users, groups, credentials.

No HTTP here. Usernames are looked up case-insensitively and keep their original case
(LDAP users may have upper case, §2.10); group names are stored lower-case, as Confluence
stores them. Users are keyed by their stable ``userKey`` (§2.3, §6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scimsync.sim.jira_directory import WatchedSet, changed, revision

ADMIN_GROUP = "confluence-administrators"
DEFAULT_GROUP = "confluence-users"
# The stock groups with "can use" permission: their active members take licence seats (§2.6, §7).
CAN_USE_GROUPS = (DEFAULT_GROUP, ADMIN_GROUP)


def fold(name: str) -> str:
    """Return the lookup key of a username or group name (lower-cased, not case-folded, §6)."""
    return name.lower()


@dataclass
class ConfluenceUser:
    """One user; ``read_only`` means it lives in a read-only LDAP directory (§2.10)."""

    key: str
    name: str
    email: str
    display_name: str
    number: int
    active: bool = True
    read_only: bool = False

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("name", "number"):  # member lists are ordered by name, /user/list by number
            changed()
        super().__setattr__(name, value)


@dataclass
class ConfluenceGroup:
    """One group: its lower-case name and the keys of its members (no nesting in the sim)."""

    name: str
    members: set[str] = field(default_factory=WatchedSet)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "members":  # a set put in place later is watched too
            changed()
            value = value if isinstance(value, WatchedSet) else WatchedSet(value)
        super().__setattr__(name, value)


class ConfluenceDirectory:
    """Users, groups and credentials of one simulated Confluence."""

    def __init__(self) -> None:
        self.users: dict[str, ConfluenceUser] = {}
        self.groups: dict[str, ConfluenceGroup] = {}
        self.passwords: dict[str, str] = {}  # user key -> password
        self.tokens: dict[str, str] = {}  # personal access token -> user key
        self._by_name: dict[str, str] = {}
        self._next = 1
        # Kept until anything changes (``revision``): a page costs no sort of its whole list.
        self._by_creation: tuple[int, list[ConfluenceUser]] = (-1, [])
        self._sorted: dict[str, tuple[int, list[ConfluenceUser]]] = {}  # group -> members by name
        # (base URL, email shown, status shown, user key) -> (the fields shown, the user's JSON)
        self.encoded: dict[tuple[str, bool, bool, str], tuple[tuple[Any, ...], str]] = {}

    # -- users --------------------------------------------------------------

    def find_user(self, name: str) -> ConfluenceUser | None:
        """Return the user with this username (case-insensitive), if any."""
        key = self._by_name.get(fold(name))
        return self.users.get(key) if key is not None else None

    def create_user(
        self, name: str, email: str, display_name: str, *, active: bool = True, read_only: bool = False
    ) -> ConfluenceUser:
        """Create a user with the next 32-hex-digit userKey (the shape of §2.3)."""
        if self.find_user(name) is not None:
            raise ValueError(f"user {name!r} already exists")
        number = self._next
        self._next += 1
        key = f"8a80cb81{number:024x}"
        user = ConfluenceUser(key, name, email, display_name, number, active=active, read_only=read_only)
        changed()
        self.users[key] = user
        self._by_name[fold(name)] = key
        return user

    def delete_user(self, user: ConfluenceUser) -> None:
        """Remove a user, its memberships and its credentials."""
        changed()
        del self.users[user.key]
        del self._by_name[fold(user.name)]
        for group in self.groups.values():
            group.members.discard(user.key)
        self.passwords.pop(user.key, None)
        for token in [t for t, k in self.tokens.items() if k == user.key]:
            del self.tokens[token]

    def users_by_creation(self) -> list[ConfluenceUser]:
        """Return every user in creation order.

        Confluence documents no order for /user/list (§2.6); creation order, unlike
        username order, does not hide paging mistakes behind an alphabetical accident.
        """
        cached = self._by_creation
        if cached[0] == revision():
            return cached[1]
        now = revision()
        found = sorted(self.users.values(), key=lambda u: u.number)
        self._by_creation = (now, found)
        return found

    def sorted_members(self, group: ConfluenceGroup) -> list[ConfluenceUser]:
        """Return the members of ``group`` by lower-cased username; the caller must not change the list."""
        cached = self._sorted.get(group.name)
        if cached is not None and cached[0] == revision():
            return cached[1]
        now = revision()
        found = sorted((self.users[k] for k in group.members), key=lambda u: u.name.lower())
        self._sorted[group.name] = (now, found)
        return found

    # -- groups -------------------------------------------------------------

    def find_group(self, name: str) -> ConfluenceGroup | None:
        """Return the group with this name (case-insensitive), if any."""
        return self.groups.get(fold(name))

    def create_group(self, name: str) -> ConfluenceGroup:
        """Create an empty group, its name lower-cased."""
        if fold(name) in self.groups:
            raise ValueError(f"group {name!r} already exists")
        changed()  # a group made again under a deleted one's name starts empty
        group = ConfluenceGroup(fold(name))
        self.groups[group.name] = group
        return group

    def delete_group(self, group: ConfluenceGroup) -> None:
        """Remove a group (its members stay users)."""
        changed()
        del self.groups[group.name]

    def groups_of(self, user: ConfluenceUser) -> list[ConfluenceGroup]:
        """Return the groups a user belongs to, by name."""
        return sorted((g for g in self.groups.values() if user.key in g.members), key=lambda g: g.name)

    # -- permissions and licence ---------------------------------------------

    def is_admin(self, user: ConfluenceUser) -> bool:
        """Tell whether a user is a Confluence administrator."""
        group = self.groups.get(ADMIN_GROUP)
        return group is not None and user.key in group.members

    def is_licensed(self, user: ConfluenceUser) -> bool:
        """Tell whether a user takes a licence seat: active and in a "can use" group."""
        if not user.active:
            return False
        return any(user.key in g.members for n, g in self.groups.items() if n in CAN_USE_GROUPS)

    def licensed_count(self) -> int:
        """Count the users taking a licence seat."""
        return sum(1 for u in self.users.values() if self.is_licensed(u))
