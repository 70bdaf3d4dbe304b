"""What an operation does to a target, and whether it still needs doing (SPEC §6 saved plans).

``check`` compares an operation with the target's current state just before a saved plan
applies it: already in the wanted state is *done*, still in the state the plan saw is
*apply*, anything else is *stale* and never applied blindly. ``Ownership`` re-checks that
the account is still scimsync's to touch: not protected, and still carrying the owner
marker (or adopted by this very plan). ``apply_effect`` is the
state after an operation succeeded; the property tests fold it over a plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from scimsync.engine.plan import Operation, OpKind, TargetPlan
from scimsync.models import Account, TargetDirectory, glob_match, key

Check = Literal["apply", "done", "stale"]


def check(op: Operation, fresh: Account | None, *, group_exists: bool | None = None) -> Check:
    """Tell whether ``op`` still needs applying to the current state ``fresh``."""
    if op.kind is OpKind.CREATE_GROUP:
        if group_exists is None:
            raise ValueError("check(create_group) needs group_exists")
        return "done" if group_exists else "apply"
    if op.kind is OpKind.CREATE_USER:
        return _check_create(op, fresh)
    if fresh is None:
        # The account is gone: only a deletion wanted that.
        return "done" if op.kind is OpKind.DELETE_USER else "stale"
    if op.account_id is not None and fresh.id != op.account_id:
        return "stale"  # another account now holds the username (deleted and re-created)
    if op.kind is OpKind.UPDATE_USER:
        return _check_update(op, fresh)
    if op.kind is OpKind.DELETE_USER:
        return "apply"
    return _check_flag(op, fresh)


@dataclass(frozen=True)
class Ownership:
    """What makes an account scimsync's to touch when a saved plan is applied (SPEC §5-6)."""

    owner_group: str
    owner_marker: str  # "group" (server/DC) or "external_id" (SCIM-based)
    protected_users: tuple[str, ...]
    # Accounts this plan itself gives the owner marker: id -> (the key it matched by, its value).
    adopted: Mapping[str, tuple[str, str]]
    # Accounts this plan itself renames: id -> the new username.
    renames: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(
        cls, plan: TargetPlan, *, owner_group: str, owner_marker: str, protected: tuple[str, ...]
    ) -> Ownership:
        """Return the ownership rule for one target's plan."""
        adopted = {
            op.account_id: (str(op.expected.get("matched_by")), str(op.expected.get("match_value")))
            for op in plan.operations
            if op.account_id and _gives_marker(op, owner_group, owner_marker)
        }
        renames = {
            op.account_id: change.new
            for op in plan.operations
            if op.kind is OpKind.UPDATE_USER
            and op.account_id
            and (change := op.change("username"))
            and change.new
        }
        return cls(owner_group, owner_marker, protected, adopted, renames)

    def problem(self, op: Operation, fresh: Account | None) -> str | None:
        """Return why ``op`` must not touch ``fresh`` any more, or None when it may."""
        if op.kind in (OpKind.CREATE_GROUP, OpKind.CREATE_USER) or fresh is None:
            return None
        names = {fresh.username, op.account}
        if any(glob_match(n, g) for n in names for g in self.protected_users):
            return f"'{fresh.username}' is a protected user"
        if op.kind in _TAKES_AWAY and key(fresh.username) not in {
            key(op.account),
            key(self.renames.get(fresh.id)),
        }:
            # Renamed since: the name may be a present person's now, whom no fresh plan would
            # deprovision (SPEC §5); only a fresh plan can tell.
            return f"'{op.account}' was renamed to '{fresh.username}' since the plan was made"
        if fresh.carries_owner_marker(self.owner_marker, self.owner_group):
            return None
        if fresh.id not in self.adopted:
            return f"'{fresh.username}' no longer carries the owner marker, so scimsync does not own it"
        # Adopted by this plan: only while it still matches as it did when the plan was made.
        how, value = self.adopted[fresh.id]
        if how not in ("username", "email") or key(getattr(fresh, how)) != key(value):
            return f"'{fresh.username}' no longer matches by {how} as it did when the plan was made"
        return None


_TAKES_AWAY = frozenset({OpKind.DEACTIVATE_USER, OpKind.DELETE_USER, OpKind.REMOVE_MEMBER})


def _gives_marker(op: Operation, owner_group: str, owner_marker: str) -> bool:
    """Tell whether ``op`` adopts its account: adds the owner group, or sets the externalId."""
    if owner_marker == "external_id":
        return op.kind is OpKind.UPDATE_USER and op.change("external_id") is not None
    return op.kind is OpKind.ADD_MEMBER and key(op.group) == key(owner_group)


def made_by(op: Operation, fresh: Account, owner_marker: str) -> bool:
    """Tell whether ``fresh``, found after create ``op`` had an unknown outcome, can be the account it made.

    SPEC §8: the same username and email, and no other owner. Where the owner marker is the
    externalId (SCIM), it must be the one the create sent; a field the target does not show
    (the email on Confluence before 10.0) cannot tell a stranger apart, so it proves nothing.
    The caller still compares the fields (``check``).
    """
    if owner_marker == "external_id":
        return fresh.external_id == op.source_id
    if fresh.external_id not in (None, op.source_id):
        return False
    return all(_field(fresh, c.field) is not None for c in op.changes if c.new)


def _check_create(op: Operation, fresh: Account | None) -> Check:
    if fresh is None:
        return "apply"
    # A field the target never shows (None) cannot tell the accounts apart.
    same = all(
        _same(c.field, now, c.new)
        for c in op.changes
        if c.field != "username" and (now := _field(fresh, c.field)) is not None
    )
    return "done" if same else "stale"


def _check_update(op: Operation, fresh: Account) -> Check:
    """Done when every field has its new value, apply while some still has the old one."""
    pending = False
    for change in op.changes:
        now = _field(fresh, change.field)
        if _same(change.field, now, change.new):
            continue
        if not _same(change.field, now, op.expected.get(change.field, change.old)):
            return "stale"
        pending = True
    return "apply" if pending else "done"


def _check_flag(op: Operation, fresh: Account) -> Check:
    """Check the operations that set one flag: active, or membership of ``op.group``."""
    name, wanted = _FLAGS[op.kind]
    now = fresh.active if name == "active" else fresh.in_group(op.group or "")
    if now == wanted:
        return "done"
    return "apply" if now == op.expected.get(name, not wanted) else "stale"


_FLAGS: Mapping[OpKind, tuple[str, bool]] = {
    OpKind.REACTIVATE_USER: ("active", True),
    OpKind.DEACTIVATE_USER: ("active", False),
    OpKind.ADD_MEMBER: ("member", True),
    OpKind.REMOVE_MEMBER: ("member", False),
}


def _field(account: Account, name: str) -> str | None:
    value: str | None = getattr(account, name)
    return value


def _same(name: str, a: str | None, b: str | None) -> bool:
    """Compare field values; usernames and emails case-insensitively (SPEC §4).

    A display name is compared exactly, and so is an externalId (case-sensitive, reference §3.3).
    """
    if a is None or b is None:
        return a is b
    return a == b if name in ("display_name", "external_id") else key(a) == key(b)


def apply_effect(op: Operation, account: Account | None) -> Account | None:
    """Return the account as it is after ``op`` succeeded."""
    if op.kind is OpKind.CREATE_USER:
        return _created(op)
    if op.kind is OpKind.CREATE_GROUP:
        return account
    if account is None:
        raise ValueError(f"{op.kind.value} of '{op.account}': no such account")
    return _EFFECTS[op.kind](op, account)


def _created(op: Operation) -> Account:
    def new(name: str) -> str:
        change = op.change(name)
        return (change.new if change else None) or ""

    username = new("username") or op.account
    # scimsync sets externalId to the source id on every account it creates (SPEC §5).
    return Account(
        id=op.account_id or f"new:{username}",
        username=username,
        email=new("email"),
        display_name=new("display_name"),
        active=True,
        external_id=op.source_id,
    )


def _updated(op: Operation, account: Account) -> Account:
    fields: dict[str, Any] = {c.field: c.new for c in op.changes}
    return dataclasses.replace(account, **fields)


def _with_member(op: Operation, account: Account) -> Account:
    if account.in_group(op.group or ""):
        return account
    return dataclasses.replace(account, groups=account.groups | {op.group or ""})


def _without_member(op: Operation, account: Account) -> Account:
    gone = key(op.group)
    return dataclasses.replace(account, groups=frozenset(g for g in account.groups if key(g) != gone))


_EFFECTS: Mapping[OpKind, Callable[[Operation, Account], Account | None]] = {
    OpKind.UPDATE_USER: _updated,
    OpKind.REACTIVATE_USER: lambda op, a: dataclasses.replace(a, active=True),
    OpKind.DEACTIVATE_USER: lambda op, a: dataclasses.replace(a, active=False),
    OpKind.DELETE_USER: lambda op, a: None,
    OpKind.ADD_MEMBER: _with_member,
    OpKind.REMOVE_MEMBER: _without_member,
}


def apply_to_directory(directory: TargetDirectory, ops: Sequence[Operation]) -> TargetDirectory:
    """Return the directory after every operation succeeded, in order."""
    accounts = list(directory.accounts)
    groups = set(directory.groups)
    for op in ops:
        if op.kind is OpKind.CREATE_GROUP:
            if not any(key(g) == key(op.group) for g in groups):
                groups.add(op.group or op.account)
            continue
        where = _find(accounts, op)
        after = apply_effect(op, accounts[where] if where is not None else None)
        if where is None:
            if after is not None:
                accounts.append(after)
        elif after is None:
            del accounts[where]
        else:
            accounts[where] = after
    return TargetDirectory(accounts=tuple(accounts), groups=frozenset(groups))


def _find(accounts: Sequence[Account], op: Operation) -> int | None:
    """Return the position of the account ``op`` names: by id when known, else by username."""
    for i, a in enumerate(accounts):
        if a.id == op.account_id if op.account_id is not None else key(a.username) == key(op.account):
            return i
    return None
