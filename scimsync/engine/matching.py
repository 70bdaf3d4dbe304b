"""Index one target's accounts and decide which account each desired account is (SPEC §3, §5-6).

Pure, like ``diff``: the policy settings, the per-target context every planning rule
reads, matching by ``match`` keys (links, and externalId on SCIM targets, first), and
collisions. ``diff`` then plans each account from the resolution.

Every comparison of names goes through ``Context.key``, the target's own comparison
(SPEC §4): a looser one (case-folding) would adopt a stranger's account.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scimsync.engine.plan import Collision, FieldChange, Notice, Operation, OpKind
from scimsync.models import Account, Capabilities, DesiredAccount, TargetDirectory, glob_match, key

DEPROVISION_MODES = ("deactivate", "delete", "none")
MATCH_KEYS = ("id", "username", "email")
# Keys that name one person for sure; an email may be shared, stale or edited by hand (SPEC §5).
STRONG_KEYS = frozenset({"external_id", "id", "username"})
SYNC_FIELDS = ("username", "email", "display_name")


@dataclass(frozen=True)
class DiffPolicy:
    """The settings of ``match`` and ``policy`` that decide what a plan does (SPEC §3)."""

    match: tuple[str, ...] = ("id", "username", "email")
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


@dataclass(frozen=True)
class Who:
    """The account an operation names: username, target id once it exists, source user."""

    username: str
    account_id: str | None = None
    source_id: str | None = None

    @classmethod
    def of(cls, account: Account, source_id: str | None) -> Who:
        """Name an existing account."""
        return cls(account.username, account.id, source_id)


@dataclass(frozen=True)
class Context:
    """What every rule needs to know about the target; built once per diff."""

    target: str
    policy: DiffPolicy
    caps: Capabilities
    accounts: tuple[Account, ...]
    managed: Mapping[str, str]  # group key -> the group's name as this target spells it
    existing_groups: frozenset[str]  # keys of the groups that exist on the target
    # "username", "email", "external_id" -> value -> positions of the accounts that have it
    index: Mapping[str, Mapping[str, tuple[int, ...]]]
    links: Mapping[str, int]  # source id -> position of the linked account (SPEC §5 Links)
    creation_groups: frozenset[str] = frozenset()  # keys of the groups the target adds new accounts to

    def key(self, value: str | None) -> str:
        """Return the comparison key of a name, the way this target compares names (SPEC §4)."""
        return self.caps.name_key(value)

    @property
    def owner_key(self) -> str:
        """Return the comparison key of the owner group."""
        return self.key(self.policy.owner_group)

    def protected(self, username: str) -> bool:
        """Tell whether ``username`` matches a ``protected_users`` glob (case-insensitive)."""
        return any(glob_match(username, g) for g in self.policy.protected_users)

    def owned_by_marker(self, account: Account) -> bool:
        """Tell whether the account carries the owner marker (SPEC §5), names compared as the target does."""
        return account.carries_owner_marker(
            self.caps.owner_marker, self.policy.owner_group, self.caps.name_key
        )

    def names(self, d: DesiredAccount, account: Account) -> bool:
        """Tell whether ``d``'s username names ``account``, where ``match`` uses usernames at all."""
        return "username" in self.policy.match and self.key(d.username) == self.key(account.username)

    def holders(self, what: str, value: str | None) -> tuple[int, ...]:
        """Return the accounts whose ``what`` (username, email) equals ``value``."""
        return self.index[what].get(self.key(value), ()) if value else ()

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
        who: Who,
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


def build_context(
    target: str,
    actual: TargetDirectory,
    policy: DiffPolicy,
    caps: Capabilities,
    links: Mapping[str, str] | None = None,
) -> Context:
    """Index the target's accounts by username, email and externalId; name its managed groups.

    ``links`` maps source ids to the stable ids of the accounts scimsync created or adopted
    for them (the state file). A link counts only while its account exists and still
    carries the owner marker; an account that a link and another active person's username
    both claim is a collision (``resolve``), so an edited state file never hands one
    person's account to another.
    """
    fold = caps.name_key
    existing = {fold(g): g for g in sorted(actual.groups)}
    names = set(policy.managed_groups)
    if caps.owner_marker != "external_id":
        names.add(policy.owner_group)
    index: dict[str, dict[str, list[int]]] = {"username": {}, "email": {}, "external_id": {}}
    by_id: dict[str, int] = {}
    for j, a in enumerate(actual.accounts):
        by_id[a.id] = j
        # externalId is case-sensitive (reference §3.9); usernames and emails are not (SPEC §4).
        for what, value in (
            ("username", fold(a.username)),
            ("email", fold(a.email)),
            ("external_id", a.external_id),
        ):
            if value:
                index[what].setdefault(value, []).append(j)
    ctx = Context(
        target=target,
        policy=policy,
        caps=caps,
        accounts=actual.accounts,
        managed={fold(n): existing.get(fold(n), n) for n in sorted(names)},
        existing_groups=frozenset(existing),
        index={what: {v: tuple(js) for v, js in by.items()} for what, by in index.items()},
        links={},
        creation_groups=frozenset(fold(g) for g in actual.creation_groups),
    )
    # Another active person whose username names the linked account is a collision in
    # resolve(): neither is changed. A leaver's name never costs a renamed person their link.
    trusted = {
        source_id: by_id[account_id]
        for source_id, account_id in sorted((links or {}).items())
        if account_id in by_id and ctx.owned_by_marker(actual.accounts[by_id[account_id]])
    }
    return dataclasses.replace(ctx, links=trusted)


@dataclass(frozen=True)
class Match:
    """The account a desired account matched, by which key, and that key's rank (0 = first)."""

    position: int
    how: str
    rank: int


@dataclass(frozen=True)
class Resolution:
    """Which account each desired account is, and who may not be planned at all."""

    matches: tuple[Match | None, ...]  # per desired account
    claimed: Mapping[int, tuple[int, ...]]  # account position -> desired accounts matching it
    blocked: frozenset[int]  # desired accounts in a collision: neither created nor changed
    collisions: tuple[Collision, ...]


def resolve(ctx: Context, desired: Sequence[DesiredAccount]) -> Resolution:
    """Match every desired account to at most one account and find the collisions (SPEC §6).

    Two or more active source users matching one account are a collision. An inactive
    user never blocks anyone (SPEC §6): when it names the account for sure (a link, or a
    username) and the active user only shares its email, or both name it and the inactive
    one by an earlier key, it keeps the account and the active user is treated as
    unmatched; otherwise the active user keeps it.
    """
    clashes = _field_collisions(ctx, desired)
    blocked = {i for _, found in clashes for i in found}
    tried = [_match(ctx, d) for d in desired]
    by_account: dict[int, list[int]] = defaultdict(list)
    for i, m in enumerate(tried):
        if m is not None:
            by_account[m.position].append(i)
    matches: list[Match | None] = list(tried)
    claimed: dict[int, list[int]] = {}
    for j, found in by_account.items():
        winners = _winners(ctx, desired, tried, j, found)
        for i in found:
            if i not in winners:
                matches[i] = None  # an inactive loser is done; an active one is a new person
        claimed[j] = winners
    clashes += _account_collisions(ctx, desired, claimed, blocked)
    clashes += _link_collisions(ctx, desired, tried)
    blocked |= {i for _, found in clashes for i in found}
    return Resolution(
        matches=tuple(matches),
        claimed={j: tuple(found) for j, found in claimed.items()},
        blocked=frozenset(blocked),
        collisions=tuple(sorted((c for c, _ in clashes), key=lambda c: (c.field, c.value))),
    )


def _winners(
    ctx: Context, desired: Sequence[DesiredAccount], tried: Sequence[Match | None], j: int, found: list[int]
) -> list[int]:
    """Return who keeps account ``j`` among the desired accounts ``found`` matching it."""
    if len(found) == 1:
        return found  # the usual case: one person on their own account
    rank = {i: m.rank for i in found if (m := tried[i]) is not None}
    how = {i: m.how for i in found if (m := tried[i]) is not None}
    active = [i for i in found if desired[i].active]
    if len(active) > 1:
        return active  # several active people on one account: a collision

    def order(i: int) -> tuple[bool, int, bool]:
        # A record that names the account for sure (by link, externalId, or a username
        # `match` uses) before one that only shares its email; then the earliest key; then
        # the active record.
        sure = how[i] in STRONG_KEYS or ctx.names(desired[i], ctx.accounts[j])
        return (not sure, rank[i], not desired[i].active)

    return [min(found, key=order)]


def _names(desired: Sequence[DesiredAccount], found: Iterable[int]) -> tuple[str, ...]:
    return tuple(sorted({desired[i].source_username for i in found}, key=lambda n: (key(n), n)))


def _field_collisions(ctx: Context, desired: Sequence[DesiredAccount]) -> list[tuple[Collision, list[int]]]:
    """Return a collision per username or email that several ACTIVE desired accounts share.

    An inactive user never collides: a leaver whose email a new hire reuses must still
    be deprovisioned (SPEC §6).
    """
    clashes = []
    for name in ("username", "email"):
        sharing: dict[str, list[int]] = defaultdict(list)
        for i, d in enumerate(desired):
            value = getattr(d, name)
            if d.active and value:  # an empty email is no email, not a shared one
                sharing[ctx.key(value)].append(i)
        clashes += [
            (Collision(ctx.target, name, v, _names(desired, f)), f) for v, f in sharing.items() if len(f) > 1
        ]
    return clashes


def _account_collisions(
    ctx: Context, desired: Sequence[DesiredAccount], claimed: Mapping[int, list[int]], blocked: set[int]
) -> list[tuple[Collision, list[int]]]:
    """Return a collision per account that several active desired accounts still tie for."""
    # Users already in one username/email collision resolve to the same account anyway;
    # list the account only when it drags in someone new.
    return [
        (Collision(ctx.target, "account", ctx.accounts[j].username, _names(desired, found)), found)
        for j, found in claimed.items()
        if len(found) > 1 and not blocked.issuperset(found)
    ]


def _link_collisions(
    ctx: Context, desired: Sequence[DesiredAccount], tried: Sequence[Match | None]
) -> list[tuple[Collision, list[int]]]:
    """Return a collision per linked account whose username another ACTIVE person maps to.

    A link and a username that name two different people (links swapped or copied by hand,
    a username given to a new hire after a rename) leave both people unchanged. A leaver's
    username never costs a renamed person their link.
    """
    if "username" not in ctx.policy.match:
        return []
    by_name: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(desired):
        if d.active:
            by_name[ctx.key(d.username)].append(i)
    clashes = []
    for i, m in enumerate(tried):
        if m is None or m.how != "id":
            continue
        account = ctx.accounts[m.position]
        others = [k for k in by_name.get(ctx.key(account.username), []) if k != i]
        if others:
            found = [i, *others]
            clashes.append(
                (Collision(ctx.target, "account", account.username, _names(desired, found)), found)
            )
    return clashes


def _match(ctx: Context, d: DesiredAccount) -> Match | None:
    """Return the account ``d`` matches and how; ambiguous keys match nothing (SPEC §3 ``match``)."""
    tries: list[tuple[str, tuple[int, ...]]] = []
    if ctx.caps.owner_marker == "external_id":
        tries.append(("external_id", ctx.index["external_id"].get(d.source_id, ()) if d.source_id else ()))
    for how in ctx.policy.match:
        if how == "id":
            linked = ctx.links.get(d.source_id)
            tries.append(("id", () if linked is None else (linked,)))
        else:
            tries.append((how, ctx.holders(how, getattr(d, how))))
    for rank, (how, found) in enumerate(tries):
        if len(found) == 1:
            return Match(found[0], how, rank)
    return None
