"""Values shared by sources, targets and the engine.

Usernames, emails and group names compare case-insensitively the way the targets compare
them (SPEC §4): Jira, Confluence and SCIM services lower-case (``str.lower()``); none of
them case-folds, so ``straße`` and ``strasse`` are two people. Use ``key()``, never
``casefold()``: a looser comparison than the target's adopts a stranger's account.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def key(value: str | None) -> str:
    """Return the comparison key of a username, email or group name: lower-cased, not case-folded."""
    return (value or "").lower()


def glob_match(value: str, pattern: str) -> bool:
    """Match a shell-style glob, ignoring case (SPEC §4)."""
    return fnmatch.fnmatchcase(key(value), key(pattern))


# The fields of a source user (SPEC §4), as records, configs and templates name them.
USER_FIELDS = ("id", "username", "email", "first_name", "last_name", "display_name", "active", "groups")


@dataclass(frozen=True, slots=True)
class User:
    """A person in the source directory (SPEC §4)."""

    id: str
    username: str
    email: str
    first_name: str = ""
    last_name: str = ""
    display_name: str = ""
    active: bool = True
    groups: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Group:
    """A group in the source directory; ``name`` is its display name in the IdP."""

    id: str
    name: str
    member_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceDirectory:
    """Everything read from the source in one run."""

    users: tuple[User, ...]
    groups: tuple[Group, ...] = ()


@dataclass(frozen=True, slots=True)
class Account:
    """An account in a target directory.

    ``id`` is the target's stable identifier (Jira ``key``, SCIM ``id``); ``email`` is
    None where the target never shows emails; ``manageable`` is False for accounts the
    target cannot change at all (a read-only LDAP directory).
    """

    id: str
    username: str
    email: str | None
    display_name: str
    active: bool = True
    groups: frozenset[str] = frozenset()
    manageable: bool = True
    external_id: str | None = None

    def in_group(self, group: str, fold: Callable[[str | None], str] = key) -> bool:
        """Tell whether the account is a member of ``group``, names compared by ``fold``."""
        wanted = fold(group)
        return any(fold(g) == wanted for g in self.groups)

    def carries_owner_marker(
        self, marker: str, owner_group: str, fold: Callable[[str | None], str] = key
    ) -> bool:
        """Tell whether the account carries scimsync's owner marker (SPEC §5).

        ``marker`` is "external_id" on SCIM-based targets (a non-empty externalId), else
        "group" (membership of ``owner_group``).
        """
        return bool(self.external_id) if marker == "external_id" else self.in_group(owner_group, fold)


@dataclass(frozen=True)
class TargetDirectory:
    """Everything read from one target in one run.

    ``groups`` holds the names of the target groups that exist, as far as the target
    was asked (at least every managed group).
    """

    accounts: tuple[Account, ...]
    groups: frozenset[str] = frozenset()
    # Groups the target itself puts every new account in (Jira's default roles, §1.9).
    creation_groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class GroupGrant:
    """Why a desired account belongs to a managed group."""

    group: str
    reason: str
    privileged_ok: bool = False
    # The templated rule `to` that named the group, if one did (remembered in the state file).
    template: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class DesiredAccount:
    """What one in-scope source user should look like on one target (mapping output)."""

    source_id: str
    source_username: str
    username: str
    email: str
    display_name: str
    active: bool
    grants: tuple[GroupGrant, ...] = ()

    @property
    def groups(self) -> frozenset[str]:
        """Return the managed groups this account should be a member of."""
        return frozenset(g.group for g in self.grants)


@dataclass(frozen=True)
class Capabilities:
    """What a target can do; the engine plans nothing a target cannot carry out (SPEC §6)."""

    create_user: bool = True
    update_fields: frozenset[str] = frozenset({"email", "display_name"})
    deactivate: bool = True
    delete: bool = True
    manage_groups: bool = True
    create_groups: bool = True
    shows_email: bool = True
    owner_marker: str = "group"  # "group" (server/DC) or "external_id" (SCIM-based)
    # How the target compares usernames, emails and group names (SPEC §4): the engine
    # uses exactly this, never a looser comparison. Every target known today lower-cases.
    name_key: Callable[[str | None], str] = key
    reason: str = ""  # why a capability is missing, shown in the plan ("Confluence 9.2")
