"""The interface every target connector implements."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol, runtime_checkable

from scimsync.errors import ConnectorError
from scimsync.models import Account, Capabilities, TargetDirectory

# Progress callback: (what, done, total or None). The engine never imports rich.
Progress = Callable[[str, int, "int | None"], None]


def no_progress(what: str, done: int, total: int | None) -> None:
    """Ignore progress reports."""


class Target(Protocol):
    """A target directory: reads accounts, and carries out single writes.

    Every write raises ``ConnectorError`` (skippable for this one operation) or
    ``AuthError`` (fatal for this target). Writes are idempotent where the vendor
    makes that possible: adding an existing member or removing a non-member succeeds.
    """

    name: str
    type: str

    def capabilities(self) -> Capabilities:
        """Return what this target can do (may read the server version once)."""
        ...

    def check(self) -> str:
        """Make one cheap authenticated read; return a short description ("Jira 10.3.1")."""
        ...

    def read(
        self,
        managed_groups: Iterable[str],
        *,
        progress: Progress = no_progress,
        wanted: Iterable[tuple[str, str]] | None = None,
    ) -> TargetDirectory:
        """Read the accounts, and the memberships of the managed groups.

        Without ``wanted``: every account. With it, the (username, email) of each account
        the plan looks for: a target with no complete listing may then return only the
        accounts that can matter to the plan (owned ones, and those matching ``wanted``).
        """
        ...

    def get_account(self, username: str, *, account_id: str | None = None) -> Account | None:
        """Read one account fresh (with its groups), by its stable id when given; None when missing."""
        ...

    def group_exists(self, name: str) -> bool:
        """Tell whether group ``name`` exists."""
        ...

    def create_user(
        self, username: str, email: str, display_name: str, *, external_id: str | None = None
    ) -> Account:
        """Create an active account; no notification email is sent.

        ``external_id`` is the source user's id: SCIM-based targets store it as the
        account's ``externalId`` (their owner marker, SPEC §5); server targets ignore it.
        """
        ...

    def update_user(self, account: Account, fields: dict[str, str]) -> None:
        """Change fields (``email``, ``display_name``, ``username``) of an account."""
        ...

    def set_active(self, account: Account, active: bool) -> None:
        """Activate or deactivate an account."""
        ...

    def delete_user(self, account: Account) -> None:
        """Delete an account."""
        ...

    def create_group(self, name: str) -> None:
        """Create a group."""
        ...

    def add_member(self, account: Account, group: str) -> None:
        """Add an account to a group; already a member is success."""
        ...

    def remove_member(self, account: Account, group: str) -> None:
        """Remove an account from a group; not a member is success."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class BatchMembers(Protocol):
    """Optional: a target that changes many memberships of one group in one request.

    The engine sends a group's additions (or removals) in chunks of at most
    ``member_batch_size``; a chunk that raises is sent again one member at a time, so
    that one bad member fails only its own operation. As for ``add_member``, the wanted
    state already holding is success, and the target decides whether a refused write
    took effect (by reading the group again, never from the message).
    """

    def member_batch_size(self, *, add: bool) -> int:
        """Return the most members one request adds (or removes); below 2 the engine sends one each."""
        ...

    def add_members(self, group: str, accounts: Sequence[Account]) -> None:
        """Add every account to a group in one request; members already are success."""
        ...

    def remove_members(self, group: str, accounts: Sequence[Account]) -> None:
        """Remove every account from a group in one request; non-members are success."""
        ...


@runtime_checkable
class JoinsOnCreate(Protocol):
    """Optional: a target whose create can itself put the new account into some groups.

    Jira (reference §1.3, §1.9): granting an application role on create puts the user into
    the role's default groups, which saves a membership write each. The engine passes the
    groups the plan puts the new account in; the target joins only groups among them (never
    one the plan does not show) and returns the account with ``groups`` set to the ones the
    create itself joined, as the server's answer shows them (none when it does not say).
    The plan keeps showing those memberships; apply records them done with the creation
    and writes the others as planned.
    """

    def create_user_in(
        self,
        username: str,
        email: str,
        display_name: str,
        *,
        external_id: str | None = None,
        groups: Collection[str] = (),
    ) -> Account:
        """Create like ``Target.create_user``; the account joins those of ``groups`` the create can give."""
        ...


@runtime_checkable
class AccountMembers(Protocol):
    """Optional: a target that adds one account to several groups, then reads its groups back once.

    For a target that reads an account's groups back after each membership write (Confluence,
    reference §2.7): one read decides all of the account's new memberships. The result has
    one entry per group, in order: None when the account is a member now, else the error of
    that membership alone (``add_member``'s, as if it had been sent on its own). An error
    raised concerns every one of them.
    """

    def add_groups(self, account: Account, groups: Sequence[str]) -> list[ConnectorError | None]:
        """Add ``account`` to every one of ``groups``; already a member is success."""
        ...


@runtime_checkable
class GroupWithMembers(Protocol):
    """Optional: a target whose group creation can carry the group's first members (SCIM, §3.7).

    The engine then creates a new group after its members' creations, with them, instead of
    empty and then a request adding them. A refusal raises: the engine then creates the group
    the plain way (``Target.create_group``) and adds the members; after an unknown outcome it
    first reads whether the group exists (SPEC §8).
    """

    def create_group_with(self, name: str, accounts: Sequence[Account]) -> bool:
        """Create group ``name`` with ``accounts`` as members in one request; True if the answer shows all."""
        ...
