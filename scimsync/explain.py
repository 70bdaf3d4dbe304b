"""`scimsync explain USER`: why one person has (or has not) access, and what the plan does for them.

Built from ``api.plan_reads``: the very Plan that `plan` prints, and the source directory,
desired accounts and target reads it was computed from. What the plan would do for the
person is the plan's own operations on their account, filtered, never recomputed. The
reasons come from the config (scope globs, group rules, protected_users) and from the
engine's matching (``build_context`` and ``resolve``: pure, the same calls ``diff`` makes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scimsync.engine.matching import Context, Resolution, build_context, resolve
from scimsync.engine.plan import Collision, GuardViolation, Notice, Operation, OpKind, describe
from scimsync.mapping import MappingError, TargetMapper
from scimsync.models import Account, DesiredAccount, SourceDirectory, User, glob_match, key

if TYPE_CHECKING:
    from scimsync.api import Planning, TargetRun
    from scimsync.config import Config

_LEAVING = (OpKind.DEACTIVATE_USER, OpKind.DELETE_USER)


@dataclass(frozen=True)
class Scope:
    """Whether a person is in scope, and the glob that decided it."""

    in_source: bool
    in_scope: bool
    reason: str
    include: tuple[str, str] | None = None  # (source.include_groups glob, the source group it matched)
    exclude: tuple[str, str] | None = None  # (source.exclude_users glob, the username or email it matched)


@dataclass(frozen=True)
class RuleCheck:
    """One group rule (or default_groups) and what it gives this person on a target."""

    rule: str  # "default_groups" or "rule 1 (from: team-*)", as the plan's reasons name it
    source_groups: tuple[str, ...]  # the person's source groups matching the rule's `from`
    gives: tuple[str, ...]  # the target groups it gives them
    privileged: bool  # the rule says `privileged: true`


@dataclass(frozen=True)
class Grant:
    """A managed group the rules give the person; ``member`` is whether the account is in it now."""

    group: str
    by: str
    privileged: bool  # a policy.privileged_groups group
    privileged_ok: bool  # a rule with `privileged: true` gives it
    member: bool


@dataclass(frozen=True)
class MatchTry:
    """One match key in order: the value the person has, and the accounts that have it too."""

    key: str
    value: str
    accounts: tuple[str, ...]


@dataclass(frozen=True)
class AccountFacts:
    """A target account and what protects it."""

    account: Account
    owned: bool
    ownership: str
    protected_by: str | None  # the protected_users glob that matches its username


@dataclass(frozen=True)
class TargetAnswer:
    """Everything about one person on one target; ``summary`` says it in one line."""

    target: str
    type: str
    summary: str
    error: str | None = None
    planned: bool = False  # the person is one of the plan's desired accounts here (in scope)
    mapped: DesiredAccount | None = None  # what the mapping gives (or would give) the person here
    account: AccountFacts | None = None
    match_key: str | None = None  # external_id, id, username or email; None when unmatched
    match_reason: str = ""
    tried: tuple[MatchTry, ...] = ()
    grants: tuple[Grant, ...] = ()
    rules: tuple[RuleCheck, ...] = ()
    operations: tuple[Operation, ...] = ()  # the plan's operations on this account
    creates_groups: tuple[Operation, ...] = ()  # the plan's create_group for groups they join
    notices: tuple[Notice, ...] = ()
    collisions: tuple[Collision, ...] = ()
    guards: tuple[tuple[GuardViolation, bool], ...] = ()  # (guard, whether this person trips it)


@dataclass(frozen=True)
class Person:
    """One person: a source user, or (``user`` None) target accounts no source user has."""

    user: User | None
    scope: Scope
    targets: tuple[TargetAnswer, ...]


@dataclass(frozen=True)
class Explanation:
    """The answer to `explain QUERY`: every person the query names (none: not found)."""

    query: str
    people: tuple[Person, ...]
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  # targets that could not be read

    def not_found(self) -> str:
        """Return the one-line error for a query that names nobody."""
        unread = f" (not searched, could not be read: {', '.join(self.errors)})" if self.errors else ""
        return (
            f"explain {self.query}: no source user has that id, username or email, "
            f"and no target account has that username, email or id{unread}"
        )


@dataclass(frozen=True)
class _View:
    """One target's plan inputs with the engine's matching of them, computed once."""

    run: TargetRun
    ctx: Context
    res: Resolution

    def desired_index(self, user: User) -> int | None:
        return next((i for i, d in enumerate(self.run.desired) if d.source_id == user.id), None)

    def find(self, query: str) -> int | None:
        """Return the position of the account named by ``query`` (username, email or id)."""
        for what in ("username", "email"):
            if found := self.ctx.holders(what, query):
                return found[0]
        return next((j for j, a in enumerate(self.ctx.accounts) if a.id == query), None)


def explain_planning(config: Config, planning: Planning, query: str) -> Explanation:
    """Explain ``query`` from a plan and the reads it was made from (``api.plan_reads``)."""
    views: dict[str, _View | None] = {name: _view(run) for name, run in planning.targets.items()}
    users = _source_users(planning.directory, query)
    accounts: dict[str, int] = {}
    if not users:
        users, accounts = _account_owners(planning.directory, views, query)
    people = [_person(config, planning, views, u, {}) for u in users]
    if accounts:
        people.append(_person(config, planning, views, None, accounts))
    errors = tuple(run.plan.error for run in planning.targets.values() if run.plan.error)
    return Explanation(query, tuple(people), planning.plan.warnings, errors)


def _view(run: TargetRun) -> _View | None:
    if run.actual is None or run.policy is None or run.caps is None:
        return None
    ctx = build_context(run.plan.target, run.actual, run.policy, run.caps, run.links)
    return _View(run, ctx, resolve(ctx, run.desired))


def _source_users(directory: SourceDirectory, query: str) -> list[User]:
    """Return the source users ``query`` names: by id (exact), then username, then email."""
    k = key(query)
    found = [u for u in directory.users if u.id == query]
    found += [u for u in directory.users if key(u.username) == k]
    found += [u for u in directory.users if u.email and key(u.email) == k]
    return list({id(u): u for u in found}.values())


def _account_owners(
    directory: SourceDirectory, views: Mapping[str, _View | None], query: str
) -> tuple[list[User], dict[str, int]]:
    """Return the source users whose target account ``query`` names, and the accounts no one has."""
    by_id = {u.id: u for u in directory.users}
    users: dict[str, User] = {}
    orphans: dict[str, int] = {}
    for name, view in views.items():
        j = view.find(query) if view else None
        if view is None or j is None:
            continue
        claimants = view.res.claimed.get(j, ())
        linked = {pos: source_id for source_id, pos in view.ctx.links.items()}
        source_id = view.run.desired[claimants[0]].source_id if claimants else linked.get(j)
        owner = by_id.get(source_id or "")
        if owner is not None:
            users.setdefault(owner.id, owner)
        else:
            orphans[name] = j
    return list(users.values()), orphans


def _person(
    config: Config,
    planning: Planning,
    views: Mapping[str, _View | None],
    user: User | None,
    accounts: Mapping[str, int],
) -> Person:
    answers = []
    for name, view in views.items():
        tp = planning.targets[name].plan
        if view is None:
            answers.append(TargetAnswer(tp.target, tp.type, f"not planned: {tp.error}", error=tp.error))
        else:
            answers.append(_answer(config, planning, view, user, accounts.get(name)))
    return Person(user, _scope(config, planning, user), tuple(answers))


def _scope(config: Config, planning: Planning, user: User | None) -> Scope:
    """Say whether ``user`` is in scope; the verdict is the plan's own (``in_scope``)."""
    if user is None:
        return Scope(False, False, "not in the source")
    include_globs, exclude_globs = config.source.include_groups, config.source.exclude_users
    include = next(((p, g) for p in include_globs for g in user.groups if glob_match(g, p)), None)
    exclude = next(
        ((p, v) for p in exclude_globs for v in (user.username, user.email) if v and glob_match(v, p)), None
    )
    in_scope = any(u is user for u in planning.in_scope)
    if exclude is not None:
        reason = f"out of scope: '{exclude[1]}' matches source.exclude_users '{exclude[0]}'"
    elif include_globs and include is None:
        groups = ", ".join(user.groups) or "none"
        reason = (
            f"out of scope: in none of source.include_groups ({', '.join(include_globs)}); "
            f"source groups: {groups}"
        )
    elif include is not None:
        reason = f"in scope: source group '{include[1]}' matches source.include_groups '{include[0]}'"
    else:
        reason = "in scope: no source.include_groups, every source user is"
    if in_scope and not user.active:
        reason += "; inactive in the source, so their account is deprovisioned"
    return Scope(True, in_scope, reason, include, exclude)


def _answer(
    config: Config, planning: Planning, view: _View, user: User | None, position: int | None
) -> TargetAnswer:
    """Explain one person on one target."""
    ctx, tp = view.ctx, view.run.plan
    planned, d, j, how, reason = _locate(config, planning, view, user, position)
    account = ctx.accounts[j] if j is not None else None
    ops = tuple(
        op for op in tp.operations if op.kind is not OpKind.CREATE_GROUP and _on(op, account, d, user)
    )
    joins = {key(op.group) for op in ops if op.kind is OpKind.ADD_MEMBER}
    grants = _grants(config, ctx, d, account)
    answer = TargetAnswer(
        target=tp.target,
        type=tp.type,
        summary="",
        planned=planned,
        mapped=d,
        account=_facts(config, view, j) if j is not None else None,
        match_key=how,
        match_reason=reason,
        tried=_tries(ctx, d) if d else (),
        grants=grants,
        rules=_rules(config, tp.target, user, d),
        operations=ops,
        creates_groups=tuple(
            op for op in tp.operations if op.kind is OpKind.CREATE_GROUP and key(op.group) in joins
        ),
        notices=_notices(view, grants, account, d, user),
        collisions=tuple(
            c
            for c in tp.collisions
            if (user is not None and user.username in c.source_users)
            or (
                c.field == "account" and account is not None and ctx.key(c.value) == ctx.key(account.username)
            )
        ),
    )
    guards = tuple(
        (g, _trips(config, g, answer, planned and bool(user and user.active)))
        for g in planning.plan.guards
        if g.target == tp.target
    )
    return _summarize(answer, guards)


def _locate(
    config: Config, planning: Planning, view: _View, user: User | None, position: int | None
) -> tuple[bool, DesiredAccount | None, int | None, str | None, str]:
    """Return whether the plan has the person here, their mapped account, their account and how it matched."""
    i = view.desired_index(user) if user is not None else None
    if i is not None:
        d, m = view.run.desired[i], view.res.matches[i]
        return True, d, m.position if m else None, m.how if m else None, _match_reason(view, i, d)
    if user is not None:
        would = _would_be(config, view.run.plan.target, planning.directory, user)
        reason = "not matched: the person is not planned on this target (out of scope)"
        return False, would, _would_be_account(view, user, would), None, reason
    return False, None, position, None, "no in-scope source user matches this account"


def _notices(
    view: _View, grants: Sequence[Grant], account: Account | None, d: DesiredAccount | None, user: User | None
) -> tuple[Notice, ...]:
    """Return the plan's notices on the person's names, and on the missing groups they would join."""
    names = {
        view.ctx.key(n) for n in (account and account.username, d and d.username, user and user.username) if n
    }
    granted = {key(g.group) for g in grants}
    return tuple(
        n
        for n in view.run.plan.notices
        if view.ctx.key(n.account) in names or (n.kind == "missing_group" and key(n.account) in granted)
    )


def _would_be(
    config: Config, target: str, directory: SourceDirectory, user: User | None
) -> DesiredAccount | None:
    """Render the account the mapping would give a person the plan leaves out (out of scope)."""
    if user is None:
        return None
    try:
        return TargetMapper(target, config).desired(user, {key(g.name): g for g in directory.groups})
    except MappingError:
        return None


def _would_be_account(view: _View, user: User, d: DesiredAccount | None) -> int | None:
    """Return the account a left-out person would have: their link, else their unique username or email.

    Never one that an in-scope source user matched: that account is someone else's.
    """
    linked = view.ctx.links.get(user.id)
    if linked is not None or d is None:
        return linked
    for what in ("username", "email"):
        found = view.ctx.holders(what, getattr(d, what))
        if len(found) == 1 and found[0] not in view.res.claimed:
            return found[0]
    return None


def _match_reason(view: _View, i: int, d: DesiredAccount) -> str:
    """Say which account a planned person matched and by which key, or why none."""
    m, ctx = view.res.matches[i], view.ctx
    if i in view.res.blocked:
        clash = [c for c in view.run.plan.collisions if d.source_username in c.source_users]
        others = ", ".join(u for c in clash[:1] for u in c.source_users if u != d.source_username)
        what = f"{clash[0].field} '{clash[0].value}' with source user {others}" if clash else "another person"
        return f"collision on {what}: neither is created or changed"
    if m is not None:
        account = ctx.accounts[m.position]
        value = {
            "external_id": f"its externalId '{account.external_id}' is the source id",
            "id": f"the state file links source id '{d.source_id}' to account {account.id}",
            "username": f"username '{account.username}'",
            "email": f"email '{account.email}'",
        }[m.how]
        return f"matched by {m.how}: {value}"
    tries = _positions(ctx, d)
    unique = next((found[0] for _, _, found in tries if len(found) == 1), None)
    if unique is not None:
        other = [view.run.desired[k].source_username for k in view.res.claimed.get(unique, ()) if k != i]
        if other:
            taken = ctx.accounts[unique].username
            return f"not matched: account '{taken}' is matched to source user '{other[0]}' instead"
    shared = next(((how, value, found) for how, value, found in tries if len(found) > 1), None)
    if shared is not None:
        return f"not matched: {shared[0]} '{shared[1]}' is on {len(shared[2])} accounts (ambiguous)"
    stale = view.run.links.get(d.source_id)
    if stale is not None and d.source_id not in ctx.links:
        return (
            f"not matched: the state file's link to account {stale} no longer holds "
            "(the account is gone or lost the owner marker), and no other key matches"
        )
    return "not matched: no account has this person's link, username or email"


def _positions(ctx: Context, d: DesiredAccount) -> list[tuple[str, str, tuple[int, ...]]]:
    """Return each match key in the order matching tries them: (key, value, accounts holding it)."""
    tries: list[tuple[str, str, tuple[int, ...]]] = []
    if ctx.caps.owner_marker == "external_id":
        tries.append(("external_id", d.source_id, ctx.index["external_id"].get(d.source_id, ())))
    for how in ctx.policy.match:
        if how == "id":
            linked = ctx.links.get(d.source_id)
            tries.append(("id", d.source_id, () if linked is None else (linked,)))
        else:
            value = getattr(d, how)
            tries.append((how, value, ctx.holders(how, value)))
    return tries


def _tries(ctx: Context, d: DesiredAccount) -> tuple[MatchTry, ...]:
    return tuple(
        MatchTry(how, value, tuple(ctx.accounts[j].username for j in found))
        for how, value, found in _positions(ctx, d)
    )


def _facts(config: Config, view: _View, j: int) -> AccountFacts:
    """Say whether an account is owned (and why) and which protected_users glob protects it."""
    ctx, account = view.ctx, view.ctx.accounts[j]
    protected = next((g for g in config.policy.protected_users if glob_match(account.username, g)), None)
    claimants = [view.run.desired[i].source_username for i in view.res.claimed.get(j, ())]
    marker = (
        f"externalId '{account.external_id}'"
        if ctx.caps.owner_marker == "external_id"
        else f"member of owner group '{ctx.policy.owner_group}'"
    )
    why = []
    if claimants:
        why.append(f"matched to source user '{claimants[0]}'")
    if ctx.owned_by_marker(account):
        why.append(f"carries the owner marker ({marker})")
    if why:
        return AccountFacts(account, True, "owned: " + "; ".join(why), protected)
    absent = (
        "no externalId" if ctx.caps.owner_marker == "external_id" else f"not in '{ctx.policy.owner_group}'"
    )
    ownership = f"not owned: no owner marker ({absent}) and no in-scope source user matches it"
    return AccountFacts(account, False, ownership, protected)


def _on(op: Operation, account: Account | None, d: DesiredAccount | None, user: User | None) -> bool:
    """Tell whether a plan operation is on this person's account."""
    if account is not None and op.account_id == account.id:
        return True
    if account is None and d is not None and op.account_id is None and key(op.account) == key(d.username):
        return True
    return user is not None and op.source_id == user.id


def _grants(
    config: Config, ctx: Context, d: DesiredAccount | None, account: Account | None
) -> tuple[Grant, ...]:
    if d is None:
        return ()
    privileged = {key(g) for g in config.policy.privileged_groups}
    return tuple(
        Grant(
            g.group,
            g.reason,
            key(g.group) in privileged,
            g.privileged_ok,
            account is not None and account.in_group(g.group, ctx.caps.name_key),
        )
        for g in d.grants
    )


def _rules(config: Config, target: str, user: User | None, d: DesiredAccount | None) -> tuple[RuleCheck, ...]:
    """Return default_groups and every group rule, with what each gives the person (empty: does not apply)."""
    if user is None:
        return ()
    settings = config.targets[target]

    def gives(tag: str) -> tuple[str, ...]:
        return tuple(g.group for g in (d.grants if d else ()) if tag in g.reason.split("; "))

    checks = (
        [RuleCheck("default_groups", (), gives("default_groups"), False)] if settings.default_groups else []
    )
    for n, rule in enumerate(settings.groups, 1):
        tag = f"rule {n} (from: {rule.from_})"
        matched = tuple(g for g in user.groups if glob_match(g, rule.from_))
        checks.append(RuleCheck(tag, matched, gives(tag), rule.privileged))
    return tuple(checks)


def _trips(config: Config, guard: GuardViolation, answer: TargetAnswer, active: bool) -> bool:
    """Tell whether this person is one the guard counts (every guard blocks the whole run)."""
    kinds = {op.kind for op in answer.operations}
    if guard.guard == "max_deactivations":
        none_leaver = config.policy.deprovision == "none" and not active and OpKind.REMOVE_MEMBER in kinds
        return bool(kinds & set(_LEAVING)) or none_leaver
    if guard.guard == "privileged_group":
        vouched = {key(g.group) for g in answer.grants if g.privileged_ok}
        privileged = {key(g) for g in config.policy.privileged_groups}
        return any(
            op.kind is OpKind.ADD_MEMBER and key(op.group) in privileged - vouched for op in answer.operations
        )
    return answer.account is not None and answer.account.owned  # empty_source: every owned account


def _summarize(answer: TargetAnswer, guards: tuple[tuple[GuardViolation, bool], ...]) -> TargetAnswer:
    """Say in one line what the plan does for the person on this target, and why."""
    facts = answer.account
    if answer.operations:
        what = "; ".join(describe(op) for op in answer.operations)
        summary = f"plan: {what} ({answer.operations[0].reason})"
    elif facts is not None and facts.protected_by is not None:
        summary = f"never changed: protected by protected_users '{facts.protected_by}'"
    elif answer.collisions:
        listed = "; ".join(f"{c.field} '{c.value}': {', '.join(c.source_users)}" for c in answer.collisions)
        collision = answer.match_reason.startswith("collision")
        summary = (
            answer.match_reason if collision else f"collision on {listed}: neither is created or changed"
        )
    elif facts is not None and not facts.owned:
        summary = "never touched: scimsync does not own this account"
    elif answer.notices:
        summary = f"not changed: {answer.notices[0].message}"
    elif facts is None:
        summary = "nothing to do: no account on this target" + (
            "" if answer.planned else ", and none is created"
        )
    elif answer.planned and answer.mapped is not None and answer.mapped.active:
        summary = "nothing to do: the account already agrees with the source"
    else:
        summary = "nothing to do: the account is already deprovisioned"
    blocking = [g.guard for g, _ in guards]
    if blocking:
        mine = [g.guard for g, trips in guards if trips]
        summary += (
            f"; BLOCKED by safety guard {', '.join(mine)}, which this person counts towards"
            if mine
            else f"; the run is blocked by safety guard {', '.join(blocking)} (nothing is written)"
        )
    return dataclasses.replace(answer, summary=summary, guards=guards)
