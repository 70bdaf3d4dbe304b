"""Compute one target's plan from the desired accounts and what the target holds (SPEC §5-6).

Pure: no I/O, no logging, no client calls. Every matching and ownership rule has a
table-driven test in tests/test_diff.py; tests/test_engine_properties.py checks that a
plan applied and planned again is empty.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from scimsync.engine.matching import (
    DEPROVISION_MODES,
    MATCH_KEYS,
    STRONG_KEYS,
    SYNC_FIELDS,
    Context,
    DiffPolicy,
    Match,
    Who,
    build_context,
    resolve,
)
from scimsync.engine.plan import FieldChange, Notice, Operation, OpKind, TargetPlan, describe, sort_operations
from scimsync.models import Account, Capabilities, DesiredAccount, TargetDirectory, key

__all__ = ["DEPROVISION_MODES", "MATCH_KEYS", "SYNC_FIELDS", "DiffPolicy", "diff"]


@dataclass
class _Out:
    """Operations and notices collected for one account (local, mutable while building)."""

    ops: list[Operation] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    leavers: int = 0  # accounts deprovisioned, as the max_deactivations guard counts them

    def extend(self, other: _Out) -> None:
        """Append another result's operations and notices."""
        self.ops.extend(other.ops)
        self.notices.extend(other.notices)
        self.leavers += other.leavers


@dataclass(frozen=True)
class _Present:
    """The mapped usernames and emails of the in-scope ACTIVE source users (target keys)."""

    usernames: frozenset[str]
    emails: frozenset[str]

    def holds(self, ctx: Context, account: Account, *, shared: str | None = None) -> str | None:
        """Return which of the account's names an active source user maps to, or None.

        ``shared``: the email of the leaver this account surely is, which a new hire may
        have been given too (SPEC §6: an inactive user never blocks a deprovisioning).
        """
        if ctx.key(account.username) in self.usernames:
            return f"username '{account.username}'"
        email = ctx.key(account.email)
        if email and email in self.emails and email != ctx.key(shared):
            return f"email '{account.email}'"
        return None


def diff(
    target: str,
    target_type: str,
    desired: Sequence[DesiredAccount],
    actual: TargetDirectory,
    policy: DiffPolicy,
    caps: Capabilities,
    links: Mapping[str, str] | None = None,
) -> TargetPlan:
    """Return the plan that makes ``actual`` agree with ``desired`` on one target.

    ``links`` maps source ids to the stable ids of the accounts scimsync created or
    adopted for them (the state file, SPEC §5 Links).
    """
    ctx = build_context(target, actual, policy, caps, links)
    found = resolve(ctx, desired)
    present = _Present(
        frozenset(ctx.key(d.username) for d in desired if d.active),
        frozenset(ctx.key(d.email) for d in desired if d.active and d.email),
    )
    out = _Out()
    for i, d in enumerate(desired):
        m = found.matches[i]
        if i in found.blocked:
            continue  # a collision: neither user is created or changed (SPEC §6)
        if m is None:
            out.extend(_plan_create(ctx, d))
        else:
            out.extend(_plan_matched(ctx, d, ctx.accounts[m.position], m, present))
    # A link that did not match (match leaves out id): its leaver still names the person,
    # so that a create for the same source id shows as the rename it is.
    linked = {j: source_id for source_id, j in ctx.links.items()}
    for j, account in enumerate(ctx.accounts):
        if j not in found.claimed:
            out.extend(_plan_unmatched(ctx, account, present, linked.get(j)))
    ops, group_notices = _settle_groups(ctx, out.ops)
    ops = _mark_probable_renames(ctx, ops)
    owned = [a for j, a in enumerate(ctx.accounts) if j in found.claimed or ctx.owned_by_marker(a)]
    return TargetPlan(
        target=target,
        type=target_type,
        operations=sort_operations(ops),
        collisions=found.collisions,
        notices=tuple(sorted([*out.notices, *group_notices], key=lambda n: (key(n.account), n.kind))),
        owned_count=len(owned),
        active_owned_count=sum(1 for a in owned if a.active),
        leavers=out.leavers,
        links=_links(ctx, desired, found.matches, found.blocked),
        # Links that cannot be trusted any more: the account is gone or lost the owner marker.
        unlinked=tuple(sorted(set(links or {}) - set(ctx.links))),
    )


def _links(
    ctx: Context, desired: Sequence[DesiredAccount], matches: Sequence[Match | None], blocked: frozenset[int]
) -> dict[str, str]:
    """Return the links to keep: every matched source user's account, and blocked users' old links."""
    links = {
        d.source_id: ctx.accounts[m.position].id
        for i, (d, m) in enumerate(zip(desired, matches, strict=True))
        if m is not None and i not in blocked and d.source_id
    }
    for i in blocked:  # a collision this run does not forget who was who
        held = ctx.links.get(desired[i].source_id)
        if held is not None:
            links.setdefault(desired[i].source_id, ctx.accounts[held].id)
    return dict(sorted(links.items()))


def _plan_matched(ctx: Context, d: DesiredAccount, account: Account, m: Match, present: _Present) -> _Out:
    if ctx.protected(account.username):
        message = f"protected user: matches source user '{d.source_username}' by {m.how}; never changed"
        return _Out(notices=[ctx.notice(account.username, "protected", message)])
    marked = ctx.owned_by_marker(account)
    # A link or username names this person for sure; an email may belong to someone else now.
    strong = m.how in STRONG_KEYS or ctx.names(d, account)
    if d.active:
        out = _plan_active(ctx, d, account, m.how)
    elif not strong and not marked:
        # An email may be recycled: a leaver's record never adopts a stranger's account by it.
        message = (
            f"not deprovisioned: source user '{d.source_username}' (inactive) matches it by email "
            "only, and scimsync does not own it"
        )
        return _Out(notices=[ctx.notice(account.username, "ambiguous", message)])
    else:
        shared = d.email if strong else None
        out = _deprovision(ctx, account, "inactive in source", d.source_id, present, shared=shared)
    if not marked:
        out.ops = _with_external_id(
            ctx, d, account, m.how, [_adoption(ctx, op, account, m.how) for op in out.ops]
        )
    return _unless_unmanageable(ctx, account, out)


def _match_value(account: Account, how: str) -> str | None:
    """Return the value an account was matched by: its username or email, else its id."""
    return getattr(account, how, None) if how in ("username", "email") else account.id


def _adoption(ctx: Context, op: Operation, account: Account, how: str) -> Operation:
    """Record on the owner-marker addition why the account is adopted, for a saved plan's re-check."""
    if op.kind is not OpKind.ADD_MEMBER or ctx.key(op.group) != ctx.owner_key:
        return op
    expected = {**op.expected, "matched_by": how, "match_value": _match_value(account, how)}
    return dataclasses.replace(op, expected=expected)


def _with_external_id(
    ctx: Context, d: DesiredAccount, account: Account, how: str, ops: list[Operation]
) -> list[Operation]:
    """On a SCIM-based target, adopt the account by setting its externalId to the source id (SPEC §5).

    Folded into the account's field update when it has one: one write, and a saved plan
    re-checks the adoption (matched_by, match_value) with the fields.
    """
    if ctx.caps.owner_marker != "external_id" or not d.source_id:
        return ops
    change = FieldChange("external_id", account.external_id, d.source_id)
    expected = {
        "external_id": account.external_id,
        "matched_by": how,
        "match_value": _match_value(account, how),
    }
    reason = f"adopted: externalId set to the source id (matched by {how})"
    for i, op in enumerate(ops):
        if op.kind is OpKind.UPDATE_USER:
            merged = dataclasses.replace(
                op,
                changes=(*op.changes, change),
                expected={**op.expected, **expected},
                reason=f"{op.reason}; {reason}",
            )
            return [*ops[:i], merged, *ops[i + 1 :]]
    return [
        *ops,
        ctx.op(OpKind.UPDATE_USER, Who.of(account, d.source_id), reason, expected, changes=[change]),
    ]


def _plan_unmatched(ctx: Context, account: Account, present: _Present, source_id: str | None) -> _Out:
    if not ctx.owned_by_marker(account) or ctx.protected(account.username):
        return _Out()  # not ours, or never touched: SPEC §5
    out = _deprovision(ctx, account, "left the source", source_id, present)
    return _unless_unmanageable(ctx, account, out)


def _plan_active(ctx: Context, d: DesiredAccount, account: Account, how: str) -> _Out:
    out = _update(ctx, d, account, how)
    if not account.active:
        if ctx.caps.deactivate:
            reason = f"active in source (matched by {how})"
            out.ops.append(
                ctx.op(OpKind.REACTIVATE_USER, Who.of(account, d.source_id), reason, {"active": False})
            )
        else:
            out.notices.append(ctx.cannot(account.username, "reactivate accounts"))
    out.extend(_memberships(ctx, Who.of(account, d.source_id), account.groups, _wanted(ctx, d), ""))
    return out


def _update(ctx: Context, d: DesiredAccount, account: Account, how: str) -> _Out:
    out = _Out()
    changes = []
    for name in ctx.policy.sync_fields:
        old: str | None = getattr(account, name)
        new: str = getattr(d, name)
        if old is None or not new or _same(ctx, name, old, new):
            # None: the target never shows this field; "": the source has no value to give.
            continue
        if name == "username" and ctx.protected(new):
            # A renamed-in protected account could never be changed or deprovisioned again (SPEC §5).
            message = f"protected user: refusing to rename '{old}' to '{new}', a protected username"
            out.notices.append(ctx.notice(account.username, "protected", message))
        elif name not in ctx.caps.update_fields:
            out.notices.append(ctx.cannot(account.username, f"update {name}"))
        elif name == "username" and ctx.holders("username", new):
            message = f"cannot rename to '{new}': another account on this target has that username"
            out.notices.append(ctx.notice(account.username, "username_taken", message))
        else:
            changes.append(FieldChange(name, old, new))
    if "username" not in ctx.policy.sync_fields and not _same(ctx, "username", account.username, d.username):
        message = (
            f"username is '{account.username}', the mapping gives '{d.username}'; not renamed "
            "because username is not in policy.sync_fields"
        )
        out.notices.append(ctx.notice(account.username, "username_differs", message))
    if changes:
        reason = f"changed in source (matched by {how})"
        expected = {c.field: c.old for c in changes}
        who = Who.of(account, d.source_id)
        out.ops.append(ctx.op(OpKind.UPDATE_USER, who, reason, expected, changes=changes))
    return out


def _same(ctx: Context, name: str, old: str, new: str) -> bool:
    """Compare a field as the target does: display names exactly, names by its key (SPEC §4)."""
    return old == new if name == "display_name" else ctx.key(old) == ctx.key(new)


def _deprovision(
    ctx: Context,
    account: Account,
    reason: str,
    source_id: str | None,
    present: _Present,
    *,
    shared: str | None = None,
) -> _Out:
    """Deprovision an owned account per ``policy.deprovision``; the owner marker stays (SPEC §6).

    Never an account whose username or email an active source user maps to: that person
    is present, and the ambiguity is a notice (SPEC §5). The one exception is ``shared``,
    the email of the leaver a strong key says this account is, reused for a new hire.
    """
    holder = present.holds(ctx, account, shared=shared)
    if holder is not None:
        message = (
            f"not deprovisioned ({reason}): an active source user maps to its {holder}; "
            "check the match keys and the account's username and email"
        )
        return _Out(notices=[ctx.notice(account.username, "ambiguous", message)])
    mode = ctx.policy.deprovision
    who = Who.of(account, source_id)
    out = _Out()
    if mode == "delete":
        if ctx.caps.delete:
            out.ops.append(ctx.op(OpKind.DELETE_USER, who, reason, {"exists": True}))
            return _Out(ops=out.ops, leavers=1)
        # Leaving a leaver's access in place is worse than deactivating instead.
        if account.active:
            out.notices.append(ctx.cannot(account.username, "delete accounts", "; deactivating instead"))
    if account.active and mode != "none":
        if ctx.caps.deactivate:
            out.ops.append(ctx.op(OpKind.DEACTIVATE_USER, who, reason, {"active": True}))
            out.leavers = 1
        else:
            out.notices.append(ctx.cannot(account.username, "deactivate accounts"))
    # A matched account is owned: it keeps (or gets) the owner marker, so that it stays
    # owned after it left (SPEC §5-6) and a saved plan can prove it.
    keep = {} if source_id is None else _marker(ctx)
    # Even with deprovision "none" a leaver loses what the rules gave (SPEC §6), and
    # counts as a leaver for the guard then.
    removals = _memberships(ctx, who, account.groups, keep, reason)
    if mode == "none" and any(op.kind is OpKind.REMOVE_MEMBER for op in removals.ops):
        out.leavers = 1
    out.extend(removals)
    return out


def _marker(ctx: Context) -> dict[str, tuple[str, str]]:
    """Return the owner group as a wanted membership, on targets whose marker is a group."""
    if ctx.caps.owner_marker == "external_id":
        return {}
    return {ctx.owner_key: (ctx.managed[ctx.owner_key], "owner marker")}


def _wanted(ctx: Context, d: DesiredAccount) -> dict[str, tuple[str, str]]:
    """Return the managed groups ``d`` should be in: group key -> (name, reason)."""
    wanted = _marker(ctx)
    for grant in d.grants:
        k = ctx.key(grant.group)
        if k in ctx.managed:  # memberships in other groups are never touched
            wanted.setdefault(k, (ctx.managed[k], grant.reason))
    return wanted


def _memberships(
    ctx: Context,
    who: Who,
    current: Iterable[str],
    wanted: Mapping[str, tuple[str, str]],
    removal_reason: str,
) -> _Out:
    """Make the account's managed-group memberships exactly ``wanted``, keeping the owner group."""
    have = {ctx.key(g): g for g in sorted(current) if ctx.key(g) in ctx.managed}
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


def _plan_create(ctx: Context, d: DesiredAccount) -> _Out:
    if not d.active:
        return _Out()  # nothing to deprovision, and never create an account for a leaver
    blocker = _create_blocker(ctx, d)
    if blocker is not None:
        return _Out(notices=[blocker])
    if not d.email:
        # One incomplete record never stops the others: this person waits for an email.
        message = f"not created: source user '{d.source_username}' has no email, and {ctx.target} needs one"
        return _Out(notices=[ctx.notice(d.username, "incomplete", message)])
    if not ctx.caps.create_user:
        return _Out(notices=[ctx.cannot(d.username, "create accounts")])
    changes = (
        FieldChange("username", None, d.username),
        FieldChange("email", None, d.email),
        FieldChange("display_name", None, d.display_name),
    )
    who = Who(d.username, None, d.source_id)
    out = _Out(ops=[ctx.op(OpKind.CREATE_USER, who, "new in source", {"exists": False}, changes=changes)])
    wanted = _wanted(ctx, d)
    out.extend(_memberships(ctx, who, (), wanted, ""))
    # A managed group the target puts every new account in by itself, that no rule gives:
    # plan its removal now, so that the result is what the plan shows (reference §1.9).
    reason = "the target adds new accounts to it by itself; not given by any rule"
    out.ops += [
        ctx.op(OpKind.REMOVE_MEMBER, who, reason, {"member": True}, group=ctx.managed[k])
        for k in sorted(ctx.creation_groups)
        if k in ctx.managed and k not in wanted
    ]
    return out


def _create_blocker(ctx: Context, d: DesiredAccount) -> Notice | None:
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


def _unless_unmanageable(ctx: Context, account: Account, out: _Out) -> _Out:
    """Turn the operations on an account the target cannot change into one notice."""
    if account.manageable or not out.ops:
        return out
    what = ", ".join(describe(op) for op in sort_operations(out.ops))
    notice = ctx.notice(account.username, "not_manageable", f"read-only directory: would {what}")
    return _Out(notices=[*out.notices, notice])


def _settle_groups(ctx: Context, ops: list[Operation]) -> tuple[list[Operation], list[Notice]]:
    """Create the missing groups memberships need, or drop those memberships with a notice."""
    missing: dict[str, Operation] = {}  # group key -> the first membership that needs it
    for op in ops:
        if op.kind is OpKind.ADD_MEMBER and ctx.key(op.group) not in ctx.existing_groups:
            missing.setdefault(ctx.key(op.group), op)
    if ctx.policy.create_groups and ctx.caps.create_groups:
        creates = [
            ctx.op(
                OpKind.CREATE_GROUP,
                Who(str(op.group)),
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
    kept = [op for op in ops if not (op.kind is OpKind.ADD_MEMBER and ctx.key(op.group) in missing)]
    notices = [
        ctx.notice(
            str(op.group), "missing_group", f"group '{op.group}' does not exist on this target and {why}"
        )
        for op in missing.values()
    ]
    return kept, notices


def _mark_probable_renames(ctx: Context, ops: list[Operation]) -> list[Operation]:
    """Mark a create and a deprovision that look like one renamed person (no link yet, SPEC §5).

    They are the same person when they share a source id, and probably so when exactly one
    account leaves and one is created with the same display name.
    """
    creates = [op for op in ops if op.kind is OpKind.CREATE_USER]
    leaves = [op for op in ops if op.kind in (OpKind.DEACTIVATE_USER, OpKind.DELETE_USER)]
    if not creates or not leaves:
        return ops
    names = {a.id: a.display_name for a in ctx.accounts}

    def created_name(op: Operation) -> str:
        change = op.change("display_name")
        return (change.new if change else None) or ""

    pairs: dict[int, Operation] = {}
    for leave in leaves:
        same_id = [c for c in creates if leave.source_id and c.source_id == leave.source_id]
        same_name = [
            c
            for c in creates
            if names.get(leave.account_id or "") and created_name(c) == names[leave.account_id or ""]
        ]
        twins = [c for c in leaves if names.get(c.account_id or "") == names.get(leave.account_id or "")]
        found = same_id or (same_name if len(same_name) == 1 and len(twins) == 1 else [])
        if found:
            pairs[id(leave)] = found[0]
            pairs[id(found[0])] = leave
    if not pairs:
        return ops

    def hint(op: Operation) -> str:
        leave, create = (op, pairs[id(op)]) if op.kind is not OpKind.CREATE_USER else (pairs[id(op)], op)
        return (
            f"{op.reason}; probable rename '{leave.account}' -> '{create.account}' "
            "(no link yet: match by id links them once scimsync has seen the account)"
        )

    return [dataclasses.replace(op, reason=hint(op)) if id(op) in pairs else op for op in ops]
