"""Safety guards (SPEC §6): each trips above its limit and passes at it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from scimsync.engine.guards import GuardLimits, check_guards, deactivation_limit
from scimsync.engine.plan import GuardViolation, Operation, OpKind, TargetPlan
from scimsync.models import DesiredAccount, GroupGrant

PRIVILEGED = frozenset({"jira-administrators", "site-admins"})


def deactivations(count: int, *, deletes: int = 0, owned: int = 100, target: str = "jira") -> TargetPlan:
    ops = [
        Operation(OpKind.DEACTIVATE_USER, target, f"u{i}", "left the source", account_id=f"K{i}")
        for i in range(count)
    ]
    ops += [Operation(OpKind.DELETE_USER, target, f"d{i}", "left the source") for i in range(deletes)]
    return TargetPlan(target, "jira", operations=tuple(ops), owned_count=owned, active_owned_count=owned)


def guards(
    *plans: TargetPlan,
    active: int = 50,
    desired: Mapping[str, Sequence[DesiredAccount]] | None = None,
    **limits: Any,
) -> list[tuple[str, str, int, int]]:
    found = check_guards(
        plans,
        desired or {},
        active_source_users=active,
        limits=GuardLimits(**limits),
    )
    return [(v.guard, v.target, v.count, v.limit) for v in found]


MAX_DEACTIVATIONS = [
    pytest.param(10, 10, {"max_deactivations": 10}, [], id="at the limit"),
    pytest.param(11, 100, {"max_deactivations": 10}, [("max_deactivations", "jira", 11, 10)], id="above"),
    pytest.param(25, 100, {}, [], id="default 25"),
    pytest.param(26, 100, {}, [("max_deactivations", "jira", 26, 25)], id="default 25, above"),
    pytest.param(5, 100, {"max_deactivations": "5%"}, [], id="5% of 100 at the limit"),
    pytest.param(6, 100, {"max_deactivations": "5%"}, [("max_deactivations", "jira", 6, 5)], id="5% above"),
    pytest.param(2, 59, {"max_deactivations": "5%"}, [], id="5% of 59"),
    pytest.param(
        3, 59, {"max_deactivations": "5%"}, [("max_deactivations", "jira", 3, 2)], id="rounded down"
    ),
    pytest.param(29, 100, {"max_deactivations": "29%"}, [], id="no float rounding"),
    pytest.param(1, 19, {"max_deactivations": "5%"}, [("max_deactivations", "jira", 1, 0)], id="0 of few"),
    pytest.param(12, 100, {"max_deactivations": 10, "allow_deactivations": 12}, [], id="allowed"),
    pytest.param(
        13,
        100,
        {"max_deactivations": 10, "allow_deactivations": 12},
        [("max_deactivations", "jira", 13, 12)],
        id="allowed, above",
    ),
    pytest.param(
        3,
        100,
        {"max_deactivations": 10, "allow_deactivations": 2},
        [("max_deactivations", "jira", 3, 2)],
        id="allow lowers the limit too",
    ),
]


@pytest.mark.parametrize(("count", "owned", "limits", "expected"), MAX_DEACTIVATIONS)
def test_max_deactivations(
    count: int, owned: int, limits: dict[str, Any], expected: list[tuple[str, str, int, int]]
) -> None:
    assert guards(deactivations(count, owned=owned), **limits) == expected


def test_deletions_count_as_deactivations() -> None:
    assert guards(deactivations(6, deletes=5), max_deactivations=10) == [
        ("max_deactivations", "jira", 11, 10)
    ]


def test_each_target_has_its_own_limit() -> None:
    found = guards(
        deactivations(3, owned=100, target="jira"),
        deactivations(3, owned=40, target="wiki"),
        max_deactivations="5%",
    )
    assert found == [("max_deactivations", "wiki", 3, 2)]


def test_max_deactivations_message() -> None:
    (violation,) = check_guards(
        [deactivations(12)], {}, active_source_users=50, limits=GuardLimits(max_deactivations=10)
    )
    assert violation.message == (
        "max_deactivations: plan deprovisions 12 accounts on target 'jira', limit is 10 "
        "(policy.max_deactivations); check the source, or re-run with --allow-deactivations 12"
    )


def test_percentage_limit_message_says_of_what() -> None:
    (violation,) = check_guards(
        [deactivations(3, owned=59)], {}, active_source_users=5, limits=GuardLimits(max_deactivations="5%")
    )
    assert "limit is 2 (policy.max_deactivations 5% of 59 active owned)" in violation.message


@pytest.mark.parametrize("value", ["5", "five%", "%"])
def test_bad_percentage_is_an_error(value: str) -> None:
    with pytest.raises(ValueError, match="max_deactivations"):
        deactivation_limit(GuardLimits(max_deactivations=value), 100)


EMPTY_SOURCE = [
    pytest.param(0, 40, {}, [("empty_source", "jira", 40, 0)], id="trips"),
    pytest.param(1, 40, {}, [], id="one active user"),
    pytest.param(0, 0, {}, [], id="nothing owned"),
    pytest.param(0, 40, {"allow_deactivations": 40}, [], id="acknowledged"),
]


@pytest.mark.parametrize(("active", "owned", "limits", "expected"), EMPTY_SOURCE)
def test_empty_source(
    active: int, owned: int, limits: dict[str, Any], expected: list[tuple[str, str, int, int]]
) -> None:
    assert guards(deactivations(0, owned=owned), active=active, **limits) == expected


def test_empty_source_message() -> None:
    (violation,) = check_guards([deactivations(0, owned=40)], {}, active_source_users=0, limits=GuardLimits())
    assert violation.message == (
        "empty_source: the source returned 0 in-scope active users while target 'jira' has 40 owned "
        "accounts; refusing to deprovision (re-run with --allow-deactivations 40 if this is really intended)"
    )


def test_empty_source_with_deactivations_trips_both_guards() -> None:
    found = guards(deactivations(40, owned=40), active=0, max_deactivations=10)
    assert found == [("max_deactivations", "jira", 40, 10), ("empty_source", "jira", 40, 0)]
    assert guards(deactivations(40, owned=40), active=0, max_deactivations=10, allow_deactivations=40) == []


def user(username: str, *grants: GroupGrant) -> DesiredAccount:
    return DesiredAccount(f"s-{username}", username, username, f"{username}@x.io", username, True, grants)


def add(account: str, group: str, *, source_id: str | None = None, target: str = "jira") -> Operation:
    return Operation(OpKind.ADD_MEMBER, target, account, "rule", group=group, source_id=source_id)


def adds(*ops: Operation, target: str = "jira", error: str | None = None) -> TargetPlan:
    return TargetPlan(target, "jira", operations=ops, owned_count=10, error=error)


PLAIN = GroupGrant("jira-administrators", "default_groups")
VOUCHED = GroupGrant("jira-administrators", "rule 1 (from: admins)", privileged_ok=True)

PRIVILEGED_CASES = [
    pytest.param([user("amara", PLAIN)], [add("amara", "jira-administrators")], [1], id="trips"),
    pytest.param([user("amara", VOUCHED)], [add("amara", "jira-administrators")], [], id="privileged rule"),
    pytest.param(
        [user("amara", PLAIN, VOUCHED)],
        [add("amara", "jira-administrators")],
        [],
        id="one vouching rule is enough",
    ),
    pytest.param([user("amara", PLAIN)], [add("amara", "JIRA-Administrators")], [1], id="case-insensitive"),
    pytest.param(
        [user("amara", GroupGrant("jira-users", "default_groups"))],
        [add("amara", "jira-users")],
        [],
        id="not privileged",
    ),
    pytest.param(
        [user("amara", PLAIN), user("bob", PLAIN), user("carl", GroupGrant("site-admins", "rule 3"))],
        [add("amara", "jira-administrators"), add("bob", "jira-administrators"), add("carl", "site-admins")],
        [2, 1],
        id="one per group, counting additions",
    ),
    pytest.param(
        [user("renamed", VOUCHED)],
        [add("amara", "jira-administrators", source_id="s-renamed")],
        [],
        id="found by source id",
    ),
    pytest.param([], [add("amara", "jira-administrators")], [1], id="no grant vouches"),
]


@pytest.mark.parametrize(("desired", "ops", "counts"), PRIVILEGED_CASES)
def test_privileged_group(desired: list[DesiredAccount], ops: list[Operation], counts: list[int]) -> None:
    found = check_guards(
        [adds(*ops)],
        {"jira": desired},
        active_source_users=10,
        limits=GuardLimits(privileged_groups=PRIVILEGED),
    )
    assert [(v.guard, v.count, v.limit) for v in found] == [("privileged_group", c, 0) for c in counts]


def test_privileged_group_message() -> None:
    (violation,) = check_guards(
        [adds(add("amara.k", "jira-administrators"))],
        {"jira": [user("amara.k", PLAIN)]},
        active_source_users=10,
        limits=GuardLimits(privileged_groups=PRIVILEGED),
    )
    assert violation == GuardViolation(
        "privileged_group",
        "jira",
        1,
        0,
        "privileged_group: rule 'default_groups' would add 'amara.k' to privileged group "
        "'jira-administrators' on target 'jira'; mark the rule privileged: true if intended",
    )


def test_desired_accounts_are_looked_up_per_target() -> None:
    found = check_guards(
        [adds(add("amara", "jira-administrators"), target="wiki")],
        {"jira": [user("amara", VOUCHED)], "wiki": [user("amara", PLAIN)]},
        active_source_users=10,
        limits=GuardLimits(privileged_groups=PRIVILEGED),
    )
    assert [(v.guard, v.target) for v in found] == [("privileged_group", "wiki")]


def test_unreadable_targets_are_skipped() -> None:
    broken = TargetPlan("jira", "jira", owned_count=40, error="jira: 401")
    assert guards(broken, active=0) == []
    failed = adds(add("amara", "jira-administrators"), error="jira: 503")
    assert guards(failed, desired={"jira": [user("amara", PLAIN)]}, privileged_groups=PRIVILEGED) == []


@pytest.mark.parametrize(
    ("limit", "owned", "expected"),
    [
        (25, 0, 25),
        (25, 1000, 25),
        ("5%", 100, 5),
        ("5%", 39, 1),
        ("5%", 19, 0),
        ("7%", 100, 7),
        ("2.5%", 200, 5),
    ],
)
def test_deactivation_limit_numbers_and_percentages_round_down(
    limit: int | str, owned: int, expected: int
) -> None:
    assert deactivation_limit(GuardLimits(max_deactivations=limit), owned)[0] == expected


def test_leavers_without_deactivations_count() -> None:
    # deprovision "none": a leaver only loses its managed groups, and still counts (SPEC §6).
    removals = tuple(
        Operation(OpKind.REMOVE_MEMBER, "jira", f"u{i}", "left the source", account_id=f"K{i}", group="g")
        for i in range(29)
    )
    plan = TargetPlan("jira", "jira", operations=removals, owned_count=30, active_owned_count=30, leavers=29)
    assert guards(plan, max_deactivations=25) == [("max_deactivations", "jira", 29, 25)]
    assert guards(plan, max_deactivations=29) == []


def test_percentage_is_of_active_owned_accounts_only() -> None:
    # 10 active and 90 long-deactivated owned accounts: "10%" allows 1, not 10.
    plan = TargetPlan(
        "jira",
        "jira",
        operations=deactivations(9).operations,
        owned_count=100,
        active_owned_count=10,
        leavers=9,
    )
    assert guards(plan, max_deactivations="10%") == [("max_deactivations", "jira", 9, 1)]
