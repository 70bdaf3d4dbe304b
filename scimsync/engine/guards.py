"""Safety guards: refuse a plan that looks like an accident (SPEC §6, exit code 3).

The classic disaster is an IdP outage or a wrong filter that returns few or no users:
the plan then deactivates everyone. A rule typo must never make the company
administrators. Pure: the caller turns violations into ``GuardError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from scimsync.engine.plan import GuardViolation, Operation, OpKind, TargetPlan
from scimsync.models import DesiredAccount, GroupGrant, key


@dataclass(frozen=True)
class GuardLimits:
    """The guard settings: ``policy.max_deactivations``, ``--allow-deactivations``, privileged groups."""

    max_deactivations: int | str = 25  # a number, or "N%" of the target's active owned accounts, rounded down
    allow_deactivations: int | None = None  # replaces the limit for this run and acknowledges an empty source
    privileged_groups: frozenset[str] = frozenset()


def check_guards(
    targets: Sequence[TargetPlan],
    desired: Mapping[str, Sequence[DesiredAccount]],
    *,
    active_source_users: int,
    limits: GuardLimits,
) -> tuple[GuardViolation, ...]:
    """Return every guard the plans trip; targets that could not be read are skipped."""
    violations: list[GuardViolation] = []
    for plan in targets:
        if plan.error is None:
            violations += _leaver_guards(plan, active_source_users, limits)
            violations += _privileged(plan, desired.get(plan.target, ()), limits)
    return tuple(violations)


def check_saved_plan(
    targets: Sequence[TargetPlan], *, active_source_users: int, limits: GuardLimits
) -> tuple[GuardViolation, ...]:
    """Recount the leaver guards of a saved plan from its operations (a hand edit cannot slip past).

    The privileged-group guard needs the source's grants and was checked when planning.
    """
    return tuple(
        v for plan in targets if plan.error is None for v in _leaver_guards(plan, active_source_users, limits)
    )


def _leaver_guards(plan: TargetPlan, active_source_users: int, limits: GuardLimits) -> list[GuardViolation]:
    """Return the guards against mass deprovisioning: too many leavers, an empty source."""
    return [*_max_deactivations(plan, limits), *_empty_source(plan, active_source_users, limits)]


def deactivation_limit(limits: GuardLimits, owned_count: int) -> tuple[int, str]:
    """Return this run's deactivation limit for a target and where it comes from.

    ``owned_count`` is the target's ACTIVE owned accounts (SPEC §6): long-deactivated
    accounts must not widen the limit (10% of 10 active and 90 deactivated is 1, not 10).
    """
    if limits.allow_deactivations is not None:
        return limits.allow_deactivations, "--allow-deactivations"
    value = limits.max_deactivations
    if isinstance(value, int):
        return value, "policy.max_deactivations"
    text = value.strip()
    if not text.endswith("%"):
        raise ValueError(f"policy.max_deactivations: expected a number or a percentage, got {value!r}")
    try:
        percent = Fraction(text[:-1].strip())
    except ValueError:
        raise ValueError(f"policy.max_deactivations: {value!r} is not a percentage") from None
    # Fraction, not float: 29% of 100 must be 29, not 28.999... rounded down to 28.
    limit = math.floor(owned_count * percent / 100)
    return limit, f"policy.max_deactivations {text} of {owned_count} active owned"


def _max_deactivations(plan: TargetPlan, limits: GuardLimits) -> list[GuardViolation]:
    # Leavers, not deactivate operations: with deprovision "none" a leaver only loses its
    # managed groups, and a mass removal from product access is the same disaster (SPEC §6).
    count = max(
        plan.leavers, len({op.account_id or op.account for op in plan.operations if op.kind in _GONE})
    )
    limit, source = deactivation_limit(limits, plan.active_owned_count)
    if count <= limit:
        return []
    message = (
        f"max_deactivations: plan deprovisions {_accounts(count)} on target '{plan.target}', "
        f"limit is {limit} ({source}); check the source, or re-run with --allow-deactivations {count}"
    )
    return [GuardViolation("max_deactivations", plan.target, count, limit, message)]


_GONE = (OpKind.DEACTIVATE_USER, OpKind.DELETE_USER)


def _empty_source(plan: TargetPlan, active_source_users: int, limits: GuardLimits) -> list[GuardViolation]:
    if active_source_users > 0 or plan.owned_count == 0 or limits.allow_deactivations is not None:
        return []
    owned = plan.owned_count
    message = (
        f"empty_source: the source returned 0 in-scope active users while target '{plan.target}' "
        f"has {_accounts(owned, 'owned account')}; refusing to deprovision "
        f"(re-run with --allow-deactivations {owned} if this is really intended)"
    )
    return [GuardViolation("empty_source", plan.target, owned, 0, message)]


def _privileged(
    plan: TargetPlan, desired: Sequence[DesiredAccount], limits: GuardLimits
) -> list[GuardViolation]:
    """Return one violation per privileged group that unvouched additions would join."""
    privileged = {key(g) for g in limits.privileged_groups}
    found: dict[str, list[tuple[Operation, str]]] = {}
    for op in plan.operations:
        if op.kind is not OpKind.ADD_MEMBER or key(op.group) not in privileged:
            continue
        grant = _grant(op, desired)
        if grant is None or not grant.privileged_ok:
            # No grant at all (the owner group named privileged?) is no vouching either.
            found.setdefault(key(op.group), []).append((op, grant.reason if grant else "unknown"))
    return [_privileged_violation(plan.target, adds) for adds in found.values()]


def _privileged_violation(target: str, adds: list[tuple[Operation, str]]) -> GuardViolation:
    op, rule = adds[0]
    more = f" (and {len(adds) - 1} more)" if len(adds) > 1 else ""
    message = (
        f"privileged_group: rule '{rule}' would add '{op.account}'{more} to privileged group "
        f"'{op.group}' on target '{target}'; mark the rule privileged: true if intended"
    )
    return GuardViolation("privileged_group", target, len(adds), 0, message)


def _grant(op: Operation, desired: Sequence[DesiredAccount]) -> GroupGrant | None:
    """Return the grant that put ``op``'s account into ``op.group``."""
    account = next((d for d in desired if op.source_id is not None and d.source_id == op.source_id), None)
    if account is None:
        account = next((d for d in desired if key(d.username) == key(op.account)), None)
    if account is None:
        return None
    grants = [g for g in account.grants if key(g.group) == key(op.group)]
    # One rule marked privileged vouches for the membership, whichever other rules name it.
    return next((g for g in grants if g.privileged_ok), grants[0] if grants else None)


def _accounts(count: int, noun: str = "account") -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
