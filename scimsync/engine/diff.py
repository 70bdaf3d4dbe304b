"""Compute one target's plan from the desired accounts and what the target holds (SPEC §5-6).

Pure: no I/O, no logging, no client calls. Every matching and ownership rule has a
table-driven test in tests/test_diff.py; tests/test_engine_properties.py checks that a
plan applied and planned again is empty.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scimsync.engine.plan import (
    Collision,
    FieldChange,
    Notice,
    Operation,
    OpKind,
    TargetPlan,
    sort_operations,
)
from scimsync.models import Account, Capabilities, DesiredAccount, TargetDirectory, key

DEPROVISION_MODES = ("deactivate", "delete", "none")
MATCH_KEYS = ("username", "email")
SYNC_FIELDS = ("username", "email", "display_name")


@dataclass(frozen=True)
class DiffPolicy:
    """The settings of ``match`` and ``policy`` that decide what a plan does (SPEC §3)."""

    match: tuple[str, ...] = ("username", "email")
    deprovision: str = "deactivate"
    protected_users: tuple[str, ...] = ()
    owner_group: str = "scimsync-managed"
    create_groups: bool = True
    sync_fields: tuple[str, ...] = ("email", "display_name")
    managed_groups: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        problems = [f"unknown match key {m!r}" for m in self.match if m not in MATCH_KEYS]
        problems += [f"unknown sync field {f!r}" for f in self.sync_fields if f not in SYNC_FIELDS]
        if self.deprovision not in DEPROVISION_MODES:
            problems.append(f"unknown deprovision mode {self.deprovision!r}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class _Out:
    """Operations and notices collected for one account (local, mutable while building)."""

    ops: list[Operation] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def extend(self, other: _Out) -> None:
        """Append another result's operations and notices."""
        self.ops.extend(other.ops)
        self.notices.extend(other.notices)


@dataclass(frozen=True)
class _Who:
    """The account an operation names: username, target id once it exists, source user."""

    username: str
    account_id: str | None = None
    source_id: str | None = None

    @classmethod
    def of(cls, account: Account, source_id: str | None) -> _Who:
        """Name an existing account."""
        return cls(account.username, account.id, source_id)


@dataclass(frozen=True)
class _Context:
    """What every rule needs to know about the target; built once per diff."""

    target: str
    policy: DiffPolicy
    caps: Capabilities
    accounts: tuple[Account, ...]
    managed: Mapping[str, str]  # group key -> the group's name as this target spells it
    existing_groups: frozenset[str]  # keys of the groups that exist on the target
    # "username", "email", "external_id" -> value -> positions of the accounts that have it
    index: Mapping[str, Mapping[str, tuple[int, ...]]]

    @property
    def owner_key(self) -> str:
        """Return the comparison key of the owner group."""
        return key(self.policy.owner_group)

    def protected(self, username: str) -> bool:
        """Tell whether ``username`` matches a ``protected_users`` glob (case-insensitive)."""
        return any(fnmatch.fnmatchcase(key(username), key(g)) for g in self.policy.protected_users)

    def owned_by_marker(self, account: Account) -> bool:
        """Tell whether the account carries the owner marker (SPEC §5)."""
        if self.caps.owner_marker == "external_id":
            return bool(account.external_id)
        return account.in_group(self.policy.owner_group)

    def holders(self, what: str, value: str | None) -> tuple[int, ...]:
        """Return the accounts whose ``what`` (username, email) equals ``value``."""
        return self.index[what].get(key(value), ()) if value else ()

    def notice(self, account: str, kind: str, message: str) -> Notice:
        """Return a notice about ``account`` on this target."""
        return Notice(self.target, account, kind, message)

    def cannot(self, account: str, action: str, tail: str = "") -> Notice:
        """Return the notice for a change this target cannot make (SPEC §6 capabilities)."""
        why = f" ({self.caps.reason})" if self.caps.reason else ""
        return self.notice(account, "cannot_update", f"cannot {action} on this target{why}{tail}")

    def op(
        self,
        kind: OpKind,
        who: _Who,
        reason: str,
        expected: Mapping[str, Any],
        *,
        group: str | None = None,
        changes: Sequence[FieldChange] = (),
    ) -> Operation:
        """Return an operation on this target."""
        return Operation(
            kind,
            self.target,
            who.username,
            reason,
            account_id=who.account_id,
            group=group,
            changes=tuple(changes),
            expected=dict(expected),
            source_id=who.source_id,
        )


def diff(
    target: str,
    target_type: str,
    desired: Sequence[DesiredAccount],
    actual: TargetDirectory,
    policy: DiffPolicy,
    caps: Capabilities,
) -> TargetPlan:
    """Return the plan that makes ``actual`` agree with ``desired`` on one target."""
    ctx = _context(target, actual, policy, caps)
    clashes = _field_collisions(target, desired)
    blocked = {i for _, found in clashes for i in found}
    matches = [_match(ctx, d) for d in desired]
    resolved: dict[int, list[int]] = defaultdict(list)
    for i, m in enumerate(matches):
        if m is not None:
            resolved[m[0]].append(i)
    clashes += _account_collisions(ctx, desired, resolved, blocked)
    blocked |= {i for _, found in clashes for i in found}
    collisions = [c for c, _ in clashes]

    out = _Out()
    for i, d in enumerate(desired):
        m = matches[i]
        if i in blocked:
            continue  # a collision: neither user is created or changed (SPEC §6)
        out.extend(_plan_create(ctx, d) if m is None else _plan_matched(ctx, d, ctx.accounts[m[0]], m[1]))
    for j, account in enumerate(ctx.accounts):
        if j not in resolved:
            out.extend(_plan_unmatched(ctx, account))
    ops, group_notices = _settle_groups(ctx, out.ops)
    owned = sum(1 for j, a in enumerate(ctx.accounts) if j in resolved or ctx.owned_by_marker(a))
    return TargetPlan(
        target=target,
        type=target_type,
        operations=sort_operations(ops),
        collisions=tuple(sorted(collisions, key=lambda c: (c.field, c.value))),
        notices=tuple(sorted([*out.notices, *group_notices], key=lambda n: (key(n.account), n.kind))),
        owned_count=owned,
    )


def _context(target: str, actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities) -> _Context:
    existing = {key(g): g for g in sorted(actual.groups)}
    names = set(policy.managed_groups)
    if caps.owner_marker != "external_id":
        names.add(policy.owner_group)
    index: dict[str, dict[str, list[int]]] = {"username": {}, "email": {}, "external_id": {}}
    for j, a in enumerate(actual.accounts):
        # externalId is case-sensitive (reference §3.9); usernames and emails are not (SPEC §4).
        for what, value in (
            ("username", key(a.username)),
            ("email", key(a.email)),
            ("external_id", a.external_id),
        ):
            if value:
                index[what].setdefault(value, []).append(j)
    return _Context(
        target=target,
        policy=policy,
        caps=caps,
        accounts=actual.accounts,
        managed={key(n): existing.get(key(n), n) for n in sorted(names)},
        existing_groups=frozenset(existing),
        index={what: {v: tuple(js) for v, js in by.items()} for what, by in index.items()},
    )


def _names(desired: Sequence[DesiredAccount], found: Iterable[int]) -> tuple[str, ...]:
    return tuple(sorted({desired[i].source_username for i in found}, key=lambda n: (key(n), n)))


def _field_collisions(target: str, desired: Sequence[DesiredAccount]) -> list[tuple[Collision, list[int]]]:
    """Return a collision per username or email that several desired accounts share, with who."""
    clashes = []
    for name in ("username", "email"):
        sharing: dict[str, list[int]] = defaultdict(list)
        for i, d in enumerate(desired):
            if getattr(d, name):  # an empty email is no email, not a shared one
                sharing[key(getattr(d, name))].append(i)
        clashes += [
            (Collision(target, name, v, _names(desired, f)), f) for v, f in sharing.items() if len(f) > 1
        ]
    return clashes


def _account_collisions(
    ctx: _Context, desired: Sequence[DesiredAccount], resolved: Mapping[int, list[int]], blocked: set[int]
) -> list[tuple[Collision, list[int]]]:
    """Return a collision per account that several desired accounts resolve to, with who."""
    # Users already in one username/email collision resolve to the same account anyway;
    # list the account only when it drags in someone new.
    return [
        (Collision(ctx.target, "account", ctx.accounts[j].username, _names(desired, found)), found)
        for j, found in resolved.items()
        if len(found) > 1 and not blocked.issuperset(found)
    ]


def _match(ctx: _Context, d: DesiredAccount) -> tuple[int, str] | None:
    """Return the account ``d`` matches and how; ambiguous keys match nothing (SPEC §3 ``match``)."""
    tries: list[tuple[str, tuple[int, ...]]] = []
    if ctx.caps.owner_marker == "external_id":
        tries.append(("external_id", ctx.index["external_id"].get(d.source_id, ()) if d.source_id else ()))
    tries += [(how, ctx.holders(how, getattr(d, how))) for how in ctx.policy.match]
    for how, found in tries:
        if len(found) == 1:
            return found[0], how
    return None


def _plan_matched(ctx: _Context, d: DesiredAccount, account: Account, how: str) -> _Out:
    if ctx.protected(account.username):
        message = f"protected user: matches source user '{d.source_username}' by {how}; never changed"
        return _Out(notices=[ctx.notice(account.username, "protected", message)])
    if d.active:
        out = _plan_active(ctx, d, account, how)
    else:
        out = _deprovision(ctx, account, "inactive in source", d.source_id)
    return _unless_unmanageable(ctx, account, out)


def _plan_unmatched(ctx: _Context, account: Account) -> _Out:
    if not ctx.owned_by_marker(account) or ctx.protected(account.username):
        return _Out()  # not ours, or never touched: SPEC §5
    return _unless_unmanageable(ctx, account, _deprovision(ctx, account, "left the source", None))


def _plan_active(ctx: _Context, d: DesiredAccount, account: Account, how: str) -> _Out:
    out = _update(ctx, d, account, how)
    if not account.active:
        if ctx.caps.deactivate:
            reason = f"active in source (matched by {how})"
            out.ops.append(
                ctx.op(OpKind.REACTIVATE_USER, _Who.of(account, d.source_id), reason, {"active": False})
            )
        else:
            out.notices.append(ctx.cannot(account.username, "reactivate accounts"))
    out.extend(_memberships(ctx, _Who.of(account, d.source_id), account.groups, _wanted(ctx, d), ""))
    return out


def _update(ctx: _Context, d: DesiredAccount, account: Account, how: str) -> _Out:
    out = _Out()
    changes = []
    for name in ctx.policy.sync_fields:
        old: str | None = getattr(account, name)
        new: str = getattr(d, name)
        if old is None or (old == new if name == "display_name" else key(old) == key(new)):
            continue  # None: the target never shows this field, so there is nothing to compare
        if name not in ctx.caps.update_fields:
            out.notices.append(ctx.cannot(account.username, f"update {name}"))
        elif name == "username" and ctx.holders("username", new):
            message = f"cannot rename to '{new}': another account on this target has that username"
            out.notices.append(ctx.notice(account.username, "username_taken", message))
        else:
            changes.append(FieldChange(name, old, new))
    if changes:
        reason = f"changed in source (matched by {how})"
        expected = {c.field: c.old for c in changes}
        who = _Who.of(account, d.source_id)
        out.ops.append(ctx.op(OpKind.UPDATE_USER, who, reason, expected, changes=changes))
    return out


def _deprovision(ctx: _Context, account: Account, reason: str, source_id: str | None) -> _Out:
    """Deprovision an owned account per ``policy.deprovision``; the owner marker stays (SPEC §6)."""
    mode = ctx.policy.deprovision
    who = _Who.of(account, source_id)
    out = _Out()
    if mode == "none":
        return out
    if mode == "delete":
        if ctx.caps.delete:
            out.ops.append(ctx.op(OpKind.DELETE_USER, who, reason, {"exists": True}))
            return out
        # Leaving a leaver's access in place is worse than deactivating instead.
        if account.active:
            out.notices.append(ctx.cannot(account.username, "delete accounts", "; deactivating instead"))
    if account.active:
        if ctx.caps.deactivate:
            out.ops.append(ctx.op(OpKind.DEACTIVATE_USER, who, reason, {"active": True}))
        else:
            out.notices.append(ctx.cannot(account.username, "deactivate accounts"))
    out.extend(_memberships(ctx, who, account.groups, {}, reason))
    return out


def _wanted(ctx: _Context, d: DesiredAccount) -> dict[str, tuple[str, str]]:
    """Return the managed groups ``d`` should be in: group key -> (name, reason)."""
    wanted: dict[str, tuple[str, str]] = {}
    if ctx.caps.owner_marker != "external_id":
        wanted[ctx.owner_key] = (ctx.managed[ctx.owner_key], "owner marker")
    for grant in d.grants:
        if key(grant.group) in ctx.managed:  # memberships in other groups are never touched
            wanted.setdefault(key(grant.group), (ctx.managed[key(grant.group)], grant.reason))
    return wanted


def _memberships(
    ctx: _Context,
    who: _Who,
    current: Iterable[str],
    wanted: Mapping[str, tuple[str, str]],
    removal_reason: str,
) -> _Out:
    """Make the account's managed-group memberships exactly ``wanted``, keeping the owner group."""
    have = {key(g): g for g in sorted(current) if key(g) in ctx.managed}
    adds = [wanted[k] for k in sorted(wanted) if k not in have]
    removes = [have[k] for k in sorted(have) if k not in wanted and k != ctx.owner_key]
    if not adds and not removes:
        return _Out()
    if not ctx.caps.manage_groups:
        what = ", ".join([*(f"add to {g}" for g, _ in adds), *(f"remove from {g}" for g in removes)])
        return _Out(notices=[ctx.cannot(who.username, "change group memberships", f": would {what}")])
    reason = removal_reason or "not given by any rule"
    ops = [
        *(ctx.op(OpKind.ADD_MEMBER, who, why, {"member": False}, group=g) for g, why in adds),
        *(ctx.op(OpKind.REMOVE_MEMBER, who, reason, {"member": True}, group=g) for g in removes),
    ]
    return _Out(ops=ops)


def _plan_create(ctx: _Context, d: DesiredAccount) -> _Out:
    if not d.active:
        return _Out()  # nothing to deprovision, and never create an account for a leaver
    blocker = _create_blocker(ctx, d)
    if blocker is not None:
        return _Out(notices=[blocker])
    if not ctx.caps.create_user:
        return _Out(notices=[ctx.cannot(d.username, "create accounts")])
    changes = (
        FieldChange("username", None, d.username),
        FieldChange("email", None, d.email),
        FieldChange("display_name", None, d.display_name),
    )
    who = _Who(d.username, None, d.source_id)
    out = _Out(ops=[ctx.op(OpKind.CREATE_USER, who, "new in source", {"exists": False}, changes=changes)])
    out.extend(_memberships(ctx, who, (), _wanted(ctx, d), ""))
    return out


def _create_blocker(ctx: _Context, d: DesiredAccount) -> Notice | None:
    """Return why ``d`` must not be created, or None."""
    if ctx.protected(d.username):
        return ctx.notice(d.username, "protected", "protected user: never created")
    if ctx.holders("username", d.username):
        # In practice only when `match` leaves out username; the create would fail.
        message = f"username taken by an account that source user '{d.source_username}' does not match"
        return ctx.notice(d.username, "username_taken", f"{message}; not created")
    # scimsync sets externalId on create (SPEC §5); it finds the account only if unique.
    findable = (
        "username" in ctx.policy.match
        or (ctx.caps.owner_marker == "external_id" and d.source_id not in ctx.index["external_id"])
        or ("email" in ctx.policy.match and d.email and not ctx.holders("email", d.email))
    )
    if not findable:
        # The next run could not match the new account and would treat it as a leaver.
        shared = (
            f"email '{d.email}' is on {len(ctx.holders('email', d.email))} accounts"
            if d.email
            else "no email"
        )
        message = (
            f"not created: match [{', '.join(ctx.policy.match)}] could not find the new account ({shared})"
        )
        return ctx.notice(d.username, "unmatchable", message)
    return None


def _unless_unmanageable(ctx: _Context, account: Account, out: _Out) -> _Out:
    """Turn the operations on an account the target cannot change into one notice."""
    if account.manageable or not out.ops:
        return out
    what = ", ".join(_describe(op) for op in sort_operations(out.ops))
    notice = ctx.notice(account.username, "not_manageable", f"read-only directory: would {what}")
    return _Out(notices=[*out.notices, notice])


def _describe(op: Operation) -> str:
    if op.kind is OpKind.UPDATE_USER:
        return "update " + ", ".join(c.field for c in op.changes)
    if op.kind is OpKind.ADD_MEMBER:
        return f"add to {op.group}"
    if op.kind is OpKind.REMOVE_MEMBER:
        return f"remove from {op.group}"
    return op.kind.value.removesuffix("_user")


def _settle_groups(ctx: _Context, ops: list[Operation]) -> tuple[list[Operation], list[Notice]]:
    """Create the missing groups memberships need, or drop those memberships with a notice."""
    missing: dict[str, Operation] = {}  # group key -> the first membership that needs it
    for op in ops:
        if op.kind is OpKind.ADD_MEMBER and key(op.group) not in ctx.existing_groups:
            missing.setdefault(key(op.group), op)
    if ctx.policy.create_groups and ctx.caps.create_groups:
        creates = [
            ctx.op(
                OpKind.CREATE_GROUP,
                _Who(str(op.group)),
                f"missing on target, needed by {op.reason}",
                {"exists": False},
                group=op.group,
            )
            for op in missing.values()
        ]
        return [*ops, *creates], []
    if ctx.policy.create_groups:
        why = "this target cannot create groups" + (f" ({ctx.caps.reason})" if ctx.caps.reason else "")
    else:
        why = "policy.create_groups is off"
    kept = [op for op in ops if not (op.kind is OpKind.ADD_MEMBER and key(op.group) in missing)]
    notices = [
        ctx.notice(
            str(op.group), "missing_group", f"group '{op.group}' does not exist on this target and {why}"
        )
        for op in missing.values()
    ]
    return kept, notices
