"""The in-memory state behind the Jira simulator: users, groups, roles, credentials.

No HTTP here. Names are looked up case-insensitively and stored with their original
case (reference §1.8, §1.12); users are keyed by their stable ``key`` (§1.2).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ADMIN_GROUPS = ("jira-administrators", "jira-system-administrators")

# Bumped by every change that can alter a member list's content or order: a membership, a
# nesting, a group created or deleted, a user created, deleted, renamed, (de)activated.
# One counter for every simulator in the process: a change elsewhere only costs a re-sort.
_changes = itertools.count()
_revision = [next(_changes)]


def changed() -> None:
    """Note a change that may alter a list's content or order (the Confluence simulator's too)."""
    _revision[0] = next(_changes)


def revision() -> int:
    """Return the number of the last change: a cache made at this number is still good."""
    return _revision[0]


class WatchedSet(set[str]):
    """A set that counts its changes: seeding, handlers and tests edit member sets directly.

    ``group.members |= more`` is seen too: augmented assignment to an attribute ends in
    ``JiraGroup.__setattr__``.
    """

    def add(self, element: str) -> None:
        """Add a member."""
        changed()
        super().add(element)

    def discard(self, element: object) -> None:
        """Remove a member if present."""
        changed()
        super().discard(element)

    def remove(self, element: str) -> None:
        """Remove a member; KeyError when absent."""
        changed()
        super().remove(element)

    def pop(self) -> str:
        """Remove and return any member."""
        changed()
        return super().pop()

    def clear(self) -> None:
        """Remove every member."""
        changed()
        super().clear()

    def update(self, *others: Iterable[str]) -> None:
        """Add the members of ``others``."""
        changed()
        super().update(*others)

    def difference_update(self, *others: Iterable[object]) -> None:
        """Remove the members of ``others``."""
        changed()
        super().difference_update(*others)

    def intersection_update(self, *others: Iterable[object]) -> None:
        """Keep only the members also in ``others``."""
        changed()
        super().intersection_update(*others)

    def symmetric_difference_update(self, other: Iterable[str]) -> None:
        """Keep the members in exactly one of this set and ``other``."""
        changed()
        super().symmetric_difference_update(other)


def fold(name: str) -> str:
    """Return the lookup key of a username or group name (Jira lower-cases, §1.12)."""
    return name.lower()


@dataclass
class JiraUser:
    """One user; ``read_only`` means it lives in a read-only LDAP directory (§1.12)."""

    key: str
    name: str
    email: str
    display_name: str
    active: bool = True
    read_only: bool = False

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("name", "active"):  # member lists are ordered by name and filtered on active
            changed()
        super().__setattr__(name, value)


@dataclass
class JiraGroup:
    """One group: direct members (user keys) and nested child groups (folded names)."""

    name: str
    members: set[str] = field(default_factory=WatchedSet)
    children: set[str] = field(default_factory=WatchedSet)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("members", "children"):  # a set put in place later is watched too
            changed()
            value = value if isinstance(value, WatchedSet) else WatchedSet(value)
        super().__setattr__(name, value)


@dataclass
class AppRole:
    """An application role (§1.9): access groups and the groups new users are put in."""

    key: str
    name: str
    groups: list[str]
    default_groups: list[str]
    selected_by_default: bool
    platform: bool = False


class JiraDirectory:
    """Users, groups, application roles and credentials of one simulated Jira."""

    def __init__(self) -> None:
        self.users: dict[str, JiraUser] = {}
        self.groups: dict[str, JiraGroup] = {}
        self.roles: dict[str, AppRole] = {}
        self.passwords: dict[str, str] = {}  # user key -> password
        self.tokens: dict[str, str] = {}  # personal access token -> user key
        self.autocomplete_limit = 20  # the jira.ajax.autocomplete.limit system property (§1.8)
        # The status of a refused write to a read-only user: 400 over REST per §1.5 [U], but
        # a strict Jira may answer 403 (§1.5 steps 3-5); a connector must handle both.
        self.read_only_status = 400
        self._by_name: dict[str, str] = {}
        self._next_id = 10000
        # (folded group name, inactive included) -> (revision, members sorted by folded name)
        self._sorted: dict[tuple[str, bool], tuple[int, list[JiraUser]]] = {}
        # (revision, users by key number, their key numbers): the order of /user/list and search
        self._by_number: tuple[int, list[JiraUser], list[int]] = (-1, [], [])
        # (base URL, user key) -> (the fields it shows, its summary bean as JSON): see jira_common
        self.encoded: dict[tuple[str, str], tuple[tuple[Any, ...], str]] = {}
        self._groups_of: dict[str, tuple[int, list[JiraGroup]]] = {}  # user key -> (revision, groups)

    # -- users --------------------------------------------------------------

    def find_user(self, name: str) -> JiraUser | None:
        """Return the user with this username (case-insensitive), if any."""
        key = self._by_name.get(fold(name))
        return self.users.get(key) if key is not None else None

    def create_user(
        self, name: str, email: str, display_name: str, *, active: bool = True, read_only: bool = False
    ) -> JiraUser:
        """Create a user with the next ``JIRAUSER<n>`` key (§1.2)."""
        if self.find_user(name) is not None:
            raise ValueError(f"user {name!r} already exists")
        key = f"JIRAUSER{self._next_id}"
        self._next_id += 1
        user = JiraUser(key, name, email, display_name, active=active, read_only=read_only)
        changed()
        self.users[key] = user
        self._by_name[fold(name)] = key
        return user

    def rename(self, user: JiraUser, new_name: str) -> None:
        """Change a username; the key stays (§1.2)."""
        del self._by_name[fold(user.name)]
        user.name = new_name
        self._by_name[fold(new_name)] = user.key

    def delete_user(self, user: JiraUser) -> None:
        """Remove a user, its memberships and its credentials."""
        changed()
        del self.users[user.key]
        del self._by_name[fold(user.name)]
        for group in self.groups.values():
            group.members.discard(user.key)
        self.passwords.pop(user.key, None)
        for token in [t for t, k in self.tokens.items() if k == user.key]:
            del self.tokens[token]

    def users_by_creation(self) -> list[JiraUser]:
        """Return every user in creation order (by key number), not by username.

        Jira documents no order for /user/search (§1.7); creation order is as good a
        stand-in as any, and unlike username order it does not hide a user that sorts
        after a cut window's prefix.
        """
        return self.users_by_number()[0]

    def users_by_number(self) -> tuple[list[JiraUser], list[int]]:
        """Return every user by key number, and those numbers (for a bisect).

        Kept until anything changes (``revision``): a page of /user/list or a search costs
        no sort of the whole directory. The caller must not change the lists.
        """
        cached = self._by_number
        if cached[0] == revision():
            return cached[1], cached[2]
        now = revision()
        found = sorted(self.users.values(), key=lambda u: int(u.key.removeprefix("JIRAUSER")))
        numbers = [int(u.key.removeprefix("JIRAUSER")) for u in found]
        self._by_number = (now, found, numbers)
        return found, numbers

    # -- groups -------------------------------------------------------------

    def find_group(self, name: str) -> JiraGroup | None:
        """Return the group with this name (case-insensitive), if any."""
        return self.groups.get(fold(name))

    def create_group(self, name: str) -> JiraGroup:
        """Create an empty group."""
        if fold(name) in self.groups:
            raise ValueError(f"group {name!r} already exists")
        group = JiraGroup(name)
        changed()
        self.groups[fold(name)] = group
        return group

    def delete_group(self, group: JiraGroup) -> None:
        """Remove a group, its nesting links and its place in application roles."""
        folded = fold(group.name)
        changed()
        del self.groups[folded]
        for other in self.groups.values():
            other.children.discard(folded)
        for role in self.roles.values():
            role.groups = [g for g in role.groups if fold(g) != folded]
            role.default_groups = [g for g in role.default_groups if fold(g) != folded]

    def nest(self, child: JiraGroup, parent: JiraGroup) -> None:
        """Make ``child`` a subgroup of ``parent``: its members count as parent members."""
        parent.children.add(fold(child.name))

    def effective_members(self, group: JiraGroup) -> set[str]:
        """Return the keys of direct and nested members (§1.8), safe against cycles."""
        keys: set[str] = set()
        for g in self._closure(group):
            keys |= g.members
        return keys

    def sorted_members(self, group: JiraGroup, *, include_inactive: bool) -> list[JiraUser]:
        """Return the effective members (§1.8) by folded username, inactive ones on request.

        Kept until anything changes (``revision``), so that paging through a group of
        10,000 costs one sort, not one per page of 50. The caller must not change the list.
        """
        cache_key = (fold(group.name), include_inactive)
        cached = self._sorted.get(cache_key)
        if cached is not None and cached[0] == revision():
            return cached[1]
        now = revision()
        users = (self.users[k] for k in self.effective_members(group))
        found = sorted((u for u in users if u.active or include_inactive), key=lambda u: fold(u.name))
        self._sorted[cache_key] = (now, found)
        return found

    def _closure(self, group: JiraGroup) -> list[JiraGroup]:
        """Return the group and every group nested in it, transitively."""
        seen = {fold(group.name)}
        todo, found = [group], [group]
        while todo:
            for child_name in todo.pop().children:
                child = self.groups.get(child_name)
                if child is not None and child_name not in seen:
                    seen.add(child_name)
                    todo.append(child)
                    found.append(child)
        return found

    def groups_of(self, user: JiraUser) -> list[JiraGroup]:
        """Return the groups a user belongs to, directly or through nesting, by name.

        Kept until anything changes (``revision``): the admin check of every request asks
        for the caller's groups, which would otherwise scan every group each time.
        """
        cached = self._groups_of.get(user.key)
        if cached is not None and cached[0] == revision():
            return list(cached[1])
        now = revision()
        groups = self._groups_of_now(user)
        self._groups_of[user.key] = (now, groups)
        return list(groups)

    def _groups_of_now(self, user: JiraUser) -> list[JiraGroup]:
        found = {n for n, g in self.groups.items() if user.key in g.members}
        grew = True
        while grew:  # walk up: a parent of a group the user is in also counts
            parents = {n for n, g in self.groups.items() if g.children & found} - found
            found |= parents
            grew = bool(parents)
        return sorted((self.groups[n] for n in found), key=lambda g: fold(g.name))

    # -- roles and permissions ---------------------------------------------

    def roles_of(self, user: JiraUser) -> list[AppRole]:
        """Return the roles a user has access through (member of any role group, §1.9)."""
        names = {fold(g.name) for g in self.groups_of(user)}
        return [r for r in self.roles.values() if names & {fold(g) for g in r.groups}]

    def is_admin(self, user: JiraUser) -> bool:
        """Tell whether a user holds Jira Administrators (member of an admin group)."""
        names = {fold(g.name) for g in self.groups_of(user)}
        return any(a in names for a in ADMIN_GROUPS)

    def role_user_count(self, role: AppRole) -> int:
        """Count the active users with access through a role."""
        keys: set[str] = set()
        for name in role.groups:
            group = self.find_group(name)
            if group is not None:
                keys |= self.effective_members(group)
        return sum(1 for k in keys if self.users[k].active)
