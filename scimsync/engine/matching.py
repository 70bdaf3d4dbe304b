"""Index one target's accounts and decide which account each desired account is (SPEC §3, §5-6).

Pure, like ``diff``: the policy settings, the per-target context every planning rule
reads, matching by ``match`` keys (and externalId on SCIM targets), and collisions.
``diff`` then plans each account from the resolution.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scimsync.engine.plan import Collision, FieldChange, Notice, Operation, OpKind
from scimsync.models import Account, Capabilities, DesiredAccount, TargetDirectory, glob_match, key

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

    @property
    def owner_key(self) -> str:
        """Return the comparison key of the owner group."""
        return key(self.policy.owner_group)

    def protected(self, username: str) -> bool:
        """Tell whether ``username`` matches a ``protected_users`` glob (case-insensitive)."""
        return any(glob_match(username, g) for g in self.policy.protected_users)

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


def build_context(target: str, actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities) -> Context:
    """Index the target's accounts by username, email and externalId; name its managed groups."""
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
    return Context(
        target=target,
        policy=policy,
        caps=caps,
        accounts=actual.accounts,
        managed={key(n): existing.get(key(n), n) for n in sorted(names)},
        existing_groups=frozenset(existing),
        index={what: {v: tuple(js) for v, js in by.items()} for what, by in index.items()},
    )


@dataclass(frozen=True)
class Resolution:
    """Which account each desired account is, and who may not be planned at all."""

    matches: tuple[tuple[int, str] | None, ...]  # per desired account: (account position, how)
    claimed: Mapping[int, tuple[int, ...]]  # account position -> desired accounts matching it
    blocked: frozenset[int]  # desired accounts in a collision: neither created nor changed
    collisions: tuple[Collision, ...]


def resolve(ctx: Context, desired: Sequence[DesiredAccount]) -> Resolution:
    """Match every desired account to at most one account and find the collisions (SPEC §6)."""
    clashes = _field_collisions(ctx.target, desired)
    blocked = {i for _, found in clashes for i in found}
    matches = tuple(_match(ctx, d) for d in desired)
    claimed: dict[int, list[int]] = defaultdict(list)
    for i, m in enumerate(matches):
        if m is not None:
            claimed[m[0]].append(i)
    clashes += _account_collisions(ctx, desired, claimed, blocked)
    blocked |= {i for _, found in clashes for i in found}
    return Resolution(
        matches=matches,
        claimed={j: tuple(found) for j, found in claimed.items()},
        blocked=frozenset(blocked),
        collisions=tuple(sorted((c for c, _ in clashes), key=lambda c: (c.field, c.value))),
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
    ctx: Context, desired: Sequence[DesiredAccount], claimed: Mapping[int, list[int]], blocked: set[int]
) -> list[tuple[Collision, list[int]]]:
    """Return a collision per account that several desired accounts resolve to, with who."""
    # Users already in one username/email collision resolve to the same account anyway;
    # list the account only when it drags in someone new.
    return [
        (Collision(ctx.target, "account", ctx.accounts[j].username, _names(desired, found)), found)
        for j, found in claimed.items()
        if len(found) > 1 and not blocked.issuperset(found)
    ]


def _match(ctx: Context, d: DesiredAccount) -> tuple[int, str] | None:
    """Return the account ``d`` matches and how; ambiguous keys match nothing (SPEC §3 ``match``)."""
    tries: list[tuple[str, tuple[int, ...]]] = []
    if ctx.caps.owner_marker == "external_id":
        tries.append(("external_id", ctx.index["external_id"].get(d.source_id, ()) if d.source_id else ()))
    tries += [(how, ctx.holders(how, getattr(d, how))) for how in ctx.policy.match]
    for how, found in tries:
        if len(found) == 1:
            return found[0], how
    return None
