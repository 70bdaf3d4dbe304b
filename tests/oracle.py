"""An oracle for the engine, written from SPEC §4-§6 alone (STYLE.md "Tests").

Nothing here calls scimsync code: not ``models.key`` or ``glob_match``, not matching,
diff or effects. Only the value types (accounts, desired accounts, operations, the
policy settings) are shared, because they are the engine's interface; the oracle reads
their fields and nothing else. Names compare the
way Jira compares them, ``str.lower()`` and never ``casefold()`` (SPEC §4); ownership is
the SPEC §5 rule; ``simulate`` applies operations the way Jira would, strictly.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scimsync.engine.matching import DiffPolicy
from scimsync.engine.plan import Operation, OpKind
from scimsync.models import Account, DesiredAccount, TargetDirectory

# SPEC §6 "Order of application".
PHASE = {
    OpKind.CREATE_GROUP: 0,
    OpKind.CREATE_USER: 1,
    OpKind.REACTIVATE_USER: 1,
    OpKind.UPDATE_USER: 2,
    OpKind.ADD_MEMBER: 3,
    OpKind.REMOVE_MEMBER: 4,
    OpKind.DEACTIVATE_USER: 5,
    OpKind.DELETE_USER: 5,
}
DEPROVISIONS = (OpKind.DEACTIVATE_USER, OpKind.DELETE_USER)
MEMBERSHIPS = (OpKind.ADD_MEMBER, OpKind.REMOVE_MEMBER)


def same(a: str | None, b: str | None) -> bool:
    """Compare two names as Jira does: lower-cased, not case-folded (SPEC §4)."""
    return a is not None and b is not None and a.lower() == b.lower()


def is_protected(username: str, globs: Iterable[str]) -> bool:
    """Tell whether a username matches a ``protected_users`` glob, ignoring case (SPEC §3, §5)."""
    return any(fnmatch.fnmatchcase(username.lower(), g.lower()) for g in globs)


@dataclass(frozen=True)
class World:
    """One target's state and one run's input: what the oracle judges a plan against."""

    desired: tuple[DesiredAccount, ...]
    actual: TargetDirectory
    policy: DiffPolicy
    links: Mapping[str, str]

    def marked(self, account: Account) -> bool:
        """Tell whether the account carries the owner marker: the owner group (SPEC §5)."""
        return any(same(g, self.policy.owner_group) for g in account.groups)

    def by_id(self, account_id: str | None) -> Account | None:
        """Return the account with that stable id."""
        return next((a for a in self.actual.accounts if a.id == account_id), None)

    def named(self, username: str) -> list[Account]:
        """Return the accounts with that username."""
        return [a for a in self.actual.accounts if same(a.username, username)]

    def email_holders(self, email: str | None) -> list[Account]:
        """Return the accounts with that email."""
        return [a for a in self.actual.accounts if email and same(a.email, email)]

    def linked(self, source_id: str) -> Account | None:
        """Return the account a link names, if it exists and still carries the marker (SPEC §5)."""
        account = self.by_id(self.links.get(source_id))
        return account if account is not None and self.marked(account) else None

    def could_match(self, d: DesiredAccount, account: Account) -> bool:
        """Tell whether some ``match`` key could find ``account`` for ``d`` (a superset of matching)."""
        match = self.policy.match
        return (
            ("id" in match and self.linked(d.source_id) == account)
            or ("username" in match and same(d.username, account.username))
            or ("email" in match and same(d.email, account.email) and len(self.email_holders(d.email)) == 1)
        )

    def owned(self, account: Account) -> bool:
        """Tell whether the account is scimsync's: marked, or matching an in-scope user (SPEC §5)."""
        return self.marked(account) or any(self.could_match(d, account) for d in self.desired)

    def protected(self, username: str) -> bool:
        """Tell whether a username is protected."""
        return is_protected(username, self.policy.protected_users)

    def managed(self) -> set[str]:
        """Return the lowered names of the managed groups, the owner group included (SPEC §5)."""
        return {g.lower() for g in self.policy.managed_groups} | {self.policy.owner_group.lower()}

    def source(self, source_id: str | None) -> DesiredAccount | None:
        """Return the desired account of a source id."""
        return next((d for d in self.desired if source_id is not None and d.source_id == source_id), None)


def untouchable_violations(world: World, ops: Sequence[Operation]) -> list[str]:
    """Name every operation that touches a protected or unowned account (SPEC §5)."""
    created = {op.account.lower() for op in ops if op.kind is OpKind.CREATE_USER}
    problems = []
    for op in ops:
        if op.kind is OpKind.CREATE_GROUP:
            continue
        if op.kind is OpKind.CREATE_USER and world.protected(op.account):
            problems.append(f"creates protected user {op.account!r}")
        renamed = [c.new for c in op.changes if c.field == "username" and c.new and c.old is not None]
        if renamed and world.protected(renamed[0]):
            problems.append(f"renames {op.account!r} into protected username {renamed[0]!r}")
        if op.account_id is None and op.kind is not OpKind.CREATE_USER:
            if not (op.kind is OpKind.ADD_MEMBER and op.account.lower() in created):
                problems.append(f"{op.kind.value} of {op.account!r} names no account")
            continue
        named = world.named(op.account)
        by_id = world.by_id(op.account_id)
        if op.account_id is not None:
            if by_id is None:
                problems.append(f"{op.kind.value} names missing account id {op.account_id!r}")
            else:
                named.append(by_id)
        for account in named:
            if world.protected(account.username):
                problems.append(f"{op.kind.value} touches protected account {account.username!r}")
            elif not world.owned(account):
                problems.append(
                    f"{op.kind.value} touches unowned account {account.username!r} ({account.id})"
                )
    return problems


def present_person_violations(
    world: World, ops: Sequence[Operation], *, by: Sequence[str] = ("username", "email", "link")
) -> list[str]:
    """Name every deprovisioning of an account an active source user maps to or is linked to.

    SPEC §5: never deprovisioned while an active user maps to its username or email; an
    inactive user found by link or username still deprovisions it (SPEC §6). ``by`` picks
    which of username, email and link are checked.
    """
    active = [d for d in world.desired if d.active]
    usernames = {d.username.lower() for d in active}
    emails = {d.email.lower() for d in active if d.email}
    match = world.policy.match

    def leaver_keeps_it(account: Account) -> bool:
        # An inactive user found by a strong key never blocks: an email may be reused (SPEC §6).
        return any(
            ("id" in match and world.linked(d.source_id) == account)
            or ("username" in match and same(d.username, account.username))
            for d in world.desired
            if not d.active
        )

    def linked_to_present(account: Account) -> bool:
        # Matched first by its link, a renamed person keeps the account: "an update_user of
        # the same account, never a create plus a deactivation" (SPEC §5 Links).
        linkers = [d for d in world.desired if world.linked(d.source_id) == account]
        return match[:1] == ("id",) and len(linkers) == 1 and linkers[0].active

    problems = []
    for op in ops:
        if op.kind not in (*DEPROVISIONS, OpKind.REMOVE_MEMBER) or op.account_id is None:
            continue
        account = world.by_id(op.account_id)
        if account is None:
            continue  # untouchable_violations reports it
        by_email = account.email is not None and account.email.lower() in emails
        held = (
            ("username" in by and account.username.lower() in usernames)
            or ("email" in by and by_email and not leaver_keeps_it(account))
            or ("link" in by and linked_to_present(account))
        )
        if not held:
            continue
        if op.kind is OpKind.REMOVE_MEMBER and any(
            world.could_match(d, account) and not any(same(g.group, op.group) for g in d.grants)
            for d in active
        ):
            continue  # an active user's account losing a group no rule gives any more
        problems.append(
            f"{op.kind.value} {op.group or ''} of {account.username!r}: an active source user holds it"
        )
    return problems


def unmanaged_group_writes(world: World, ops: Sequence[Operation]) -> list[str]:
    """Name every membership change of a group that is not managed (SPEC §5)."""
    managed = world.managed()
    return [
        f"{op.kind.value} {op.group!r} of {op.account!r}"
        for op in ops
        if op.kind in MEMBERSHIPS and (op.group or "").lower() not in managed
    ]


def find(world: World, d: DesiredAccount) -> Account | None:
    """Return the account ``d`` matches: the first ``match`` key that names exactly one (SPEC §3, §5)."""
    for how in world.policy.match:
        if how == "id":
            found = [a for a in [world.linked(d.source_id)] if a is not None]
        elif how == "username":
            found = world.named(d.username)
        else:
            found = world.email_holders(d.email)
        if len(found) == 1:
            return found[0]
    return None


def contested(world: World) -> bool:
    """Tell whether who keeps an account needs more than the SPEC's plain rules.

    An account an active user and another user both match (a leaver, say) is settled by
    rules of the engine's own. Users in a collision are neither created nor changed, so
    the account they match stays theirs; two leavers on one account leave it either way.
    """
    found = [(a.id, d.active) for d in world.desired if (a := find(world, d)) is not None]
    return any(active and sum(1 for j, _ in found if j == i) > 1 for i, active in found)


def expected_leavers(world: World, ops: Sequence[Operation]) -> int:
    """Count the leavers as the max_deactivations guard must (SPEC §6); not for contested worlds."""
    if world.policy.deprovision != "none":
        return len({op.account_id for op in ops if op.kind in DEPROVISIONS})
    # With deprovision "none" a leaver is an owned account removed from its managed groups;
    # an active user's account losing a group no rule gives any more is not one.
    kept = {a.id for a in (find(world, d) for d in world.desired if d.active) if a is not None}
    removed = {op.account_id for op in ops if op.kind is OpKind.REMOVE_MEMBER}
    return len(removed - kept)


def provenance_violations(world: World, ops: Sequence[Operation]) -> list[str]:
    """Name every operation on an existing account done for a source user who cannot match it.

    A trusted link names its person even when ``match`` leaves out ``id`` or the person
    left the scope (a leaver's operations say who it was).
    """
    problems = []
    for op in ops:
        account = world.by_id(op.account_id)
        if account is None or op.source_id is None or world.linked(op.source_id) == account:
            continue
        d = world.source(op.source_id)
        if d is None:
            problems.append(f"{op.kind.value} of {account.username!r} for unknown source id {op.source_id!r}")
        elif not world.could_match(d, account):
            problems.append(
                f"{op.kind.value} of {account.username!r} for {d.username!r}, who cannot match it"
            )
    return problems


def unmarked_after(world: World, ops: Sequence[Operation], after: TargetDirectory) -> list[str]:
    """Name every account the plan created or adopted for an active user that lacks the marker.

    SPEC §5: the owner group is "added to every account the tool creates or adopts"; only
    a missing owner group that may not be created excuses it (a notice says so).
    """
    if not any(same(g, world.policy.owner_group) for g in after.groups):
        return []
    active = {d.source_id for d in world.desired if d.active}
    ids = {f"new:{op.account}" for op in ops if op.kind is OpKind.CREATE_USER}
    ids |= {op.account_id for op in ops if op.account_id and op.source_id in active}
    marked = World(world.desired, after, world.policy, world.links).marked
    return [f"{a.username!r} ({a.id})" for a in after.accounts if a.id in ids and not marked(a)]


class RejectedError(AssertionError):
    """The simulated Jira refuses an operation: the plan could not be carried out."""


def simulate(directory: TargetDirectory, ops: Sequence[Operation]) -> TargetDirectory:
    """Apply ``ops`` in SPEC §6 order the way Jira would, refusing what Jira refuses.

    A created account gets the id ``new:<username>``, no groups (scimsync's memberships add
    them), and is active. Adding a member to a group that does not exist, creating an
    account whose username is taken, or writing to an account that is gone is refused.
    """
    accounts: list[Account] = list(directory.accounts)
    groups: list[str] = sorted(directory.groups)

    def locate(op: Operation) -> int:
        for i, a in enumerate(accounts):
            if (a.id == op.account_id) if op.account_id is not None else same(a.username, op.account):
                return i
        raise RejectedError(f"{op.kind.value}: no account {op.account!r} ({op.account_id})")

    for op in sorted(ops, key=lambda o: PHASE[o.kind]):
        if op.kind is OpKind.CREATE_GROUP:
            if any(same(g, op.group) for g in groups):
                raise RejectedError(f"create_group {op.group!r}: the group exists")
            groups.append(op.group or "")
            continue
        if op.kind is OpKind.CREATE_USER:
            new = {c.field: c.new or "" for c in op.changes}
            username = new.get("username") or op.account
            if any(same(a.username, username) for a in accounts):
                raise RejectedError(f"create_user {username!r}: the username is taken")
            accounts.append(
                Account(f"new:{username}", username, new.get("email", ""), new.get("display_name", ""))
            )
            continue
        i = locate(op)
        account = accounts[i]
        if op.kind is OpKind.UPDATE_USER:
            fields = {c.field: c.new or "" for c in op.changes}
            taken = [a for a in accounts if a.id != account.id and same(a.username, fields.get("username"))]
            if taken:
                raise RejectedError(f"rename of {account.username!r}: {taken[0].username!r} exists")
            accounts[i] = dataclasses.replace(
                account,
                username=fields.get("username", account.username),
                email=fields.get("email", account.email),
                display_name=fields.get("display_name", account.display_name),
            )
        elif op.kind is OpKind.REACTIVATE_USER:
            accounts[i] = dataclasses.replace(account, active=True)
        elif op.kind is OpKind.DEACTIVATE_USER:
            accounts[i] = dataclasses.replace(account, active=False)
        elif op.kind is OpKind.DELETE_USER:
            del accounts[i]
        elif op.kind is OpKind.ADD_MEMBER:
            group = next((g for g in groups if same(g, op.group)), None)
            if group is None:
                raise RejectedError(f"add {account.username!r} to {op.group!r}: no such group")
            if not any(same(g, group) for g in account.groups):
                accounts[i] = dataclasses.replace(account, groups=account.groups | {group})
        elif op.kind is OpKind.REMOVE_MEMBER:
            kept = frozenset(g for g in account.groups if not same(g, op.group))
            accounts[i] = dataclasses.replace(account, groups=kept)
    return dataclasses.replace(directory, accounts=tuple(accounts), groups=frozenset(groups))
