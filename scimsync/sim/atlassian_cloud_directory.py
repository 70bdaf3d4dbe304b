"""The in-memory state of one Atlassian Cloud SCIM directory: users, groups, managed accounts.

No HTTP here. Users and groups are kept in creation order (the order lists answer in);
``userName`` and group names are indexed lower-cased (§3.9, §6: case rule [U], the
strict reading); ids are case-exact UUIDs (§3.3).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def fold(name: str) -> str:
    """Return the lookup key of a userName, email or group name."""
    return name.lower()


def timestamp() -> str:
    """Return the current time as SCIM writes it (``2026-01-12T09:30:00.000Z``)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def primary_email(attrs: dict[str, Any]) -> str | None:
    """Return the value of the primary email in user attributes, if any."""
    for email in attrs.get("emails") or ():
        if email.get("primary") is True and isinstance(email.get("value"), str):
            return str(email["value"])
    return None


@dataclass
class CloudUser:
    """One SCIM user; ``attrs`` holds its writable attributes (§3.3) as JSON values."""

    id: str
    attrs: dict[str, Any]
    created: str
    modified: str
    account_id: str | None = None  # the linked Atlassian account (§3.5)
    deleted: bool = False  # DELETE without removal: deactivated and unreachable (§3.6)

    @property
    def user_name(self) -> str:
        """Return the userName."""
        return str(self.attrs["userName"])


@dataclass
class CloudGroup:
    """One group: its immutable name and its members' user ids, in the order they joined."""

    id: str
    display_name: str
    created: str
    modified: str
    external_id: str | None = None
    members: dict[str, None] = field(default_factory=dict)


@dataclass
class ManagedAccount:
    """An Atlassian account that already exists for an email, and the SCIM user linked to it."""

    account_id: str
    email: str
    user_id: str | None = None


class CloudDirectory:
    """Users, groups and managed accounts of one simulated directory."""

    def __init__(self, *, verified_domains: Iterable[str], max_users: int, delete_removes: bool) -> None:
        self.verified_domains = frozenset(fold(d) for d in verified_domains)
        self.max_users = max_users
        self.delete_removes = delete_removes
        self.users: dict[str, CloudUser] = {}  # id -> user, tombstones included
        self.groups: dict[str, CloudGroup] = {}
        self.accounts: dict[str, ManagedAccount] = {}  # folded email -> account
        self._user_names: dict[str, str] = {}  # folded userName -> id
        self._group_names: dict[str, str] = {}  # folded displayName -> id
        self._memberships: dict[str, dict[str, None]] = {}  # user id -> group ids
        self._live: list[CloudUser] | None = None  # live_users(), until a user is added or deleted

    # -- users ----------------------------------------------------------------

    def live_user(self, user_id: str) -> CloudUser | None:
        """Return the user with this id unless it was deleted (§3.6: 404 for it from then on)."""
        user = self.users.get(user_id)
        return user if user is not None and not user.deleted else None

    def user_named(self, user_name: str) -> CloudUser | None:
        """Return the user holding this userName (any case), deleted ones included."""
        user_id = self._user_names.get(fold(user_name))
        return self.users.get(user_id) if user_id is not None else None

    def live_users(self) -> list[CloudUser]:
        """Return every user that lists show, in creation order (kept between changes: a list
        page must not cost a pass over the whole directory)."""
        if self._live is None:
            self._live = [u for u in self.users.values() if not u.deleted]
        return self._live

    def create_user(self, attrs: dict[str, Any]) -> CloudUser:
        """Store a checked user and link it to the managed account of its primary email (§3.5)."""
        now = timestamp()
        user = CloudUser(str(uuid.uuid4()), attrs, now, now)
        self.users[user.id] = user
        self._live = None
        self._user_names[fold(user.user_name)] = user.id
        self._memberships[user.id] = {}
        account = self.account_for(primary_email(attrs))
        if account is not None:
            account.user_id = user.id
            user.account_id = account.account_id
        return user

    def replace_user(self, user: CloudUser, attrs: dict[str, Any]) -> None:
        """Give a user new checked attributes (PUT or PATCH), keeping its id and account link."""
        del self._user_names[fold(user.user_name)]
        user.attrs = attrs
        self._user_names[fold(user.user_name)] = user.id
        user.modified = timestamp()

    def delete_user(self, user: CloudUser) -> None:
        """Leave every group; then deactivate and hide the user, or remove it (§3.6)."""
        for group_id in self._memberships.pop(user.id, {}):
            self.groups[group_id].members.pop(user.id, None)
        self._live = None
        if not self.delete_removes:
            user.deleted = True
            user.attrs["active"] = False
            user.modified = timestamp()
            return
        del self.users[user.id]
        del self._user_names[fold(user.user_name)]
        for account in self.accounts.values():
            if account.user_id == user.id:  # unlinked: a new POST links it again (§3.6)
                account.user_id = None

    # -- managed accounts -----------------------------------------------------

    def claim(self, email: str) -> ManagedAccount:
        """Record that an Atlassian account exists for this email (once per email)."""
        key = fold(email)
        if key not in self.accounts:
            self.accounts[key] = ManagedAccount(f"712020:{uuid.uuid4()}", email)
        return self.accounts[key]

    def account_for(self, email: str | None) -> ManagedAccount | None:
        """Return the managed account of an email (any case), if one was claimed."""
        return self.accounts.get(fold(email)) if email else None

    # -- groups ---------------------------------------------------------------

    def group_named(self, name: str) -> CloudGroup | None:
        """Return the group with this name (any case)."""
        group_id = self._group_names.get(fold(name))
        return self.groups.get(group_id) if group_id is not None else None

    def create_group(self, name: str, external_id: str | None, members: Iterable[str]) -> CloudGroup:
        """Store a group whose name is free and whose member ids are live users."""
        now = timestamp()
        group = CloudGroup(str(uuid.uuid4()), name, now, now, external_id)
        self.groups[group.id] = group
        self._group_names[fold(name)] = group.id
        self.set_members(group, members)
        return group

    def set_members(self, group: CloudGroup, members: Iterable[str]) -> None:
        """Make ``members`` (live user ids) the group's exact membership."""
        for user_id in group.members:
            self._memberships[user_id].pop(group.id, None)
        group.members = dict.fromkeys(members)
        for user_id in group.members:
            self._memberships[user_id][group.id] = None
        group.modified = timestamp()

    def delete_group(self, group: CloudGroup) -> None:
        """Remove a group and its memberships."""
        self.set_members(group, ())
        del self.groups[group.id]
        del self._group_names[fold(group.display_name)]

    def groups_of(self, user_id: str) -> list[CloudGroup]:
        """Return the groups a user is a member of, in the order it joined them."""
        return [self.groups[g] for g in self._memberships.get(user_id, {})]
