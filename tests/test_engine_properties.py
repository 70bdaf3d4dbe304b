"""Engine properties over random directories (STYLE.md "Tests").

Applying a plan and planning again yields an empty plan; the plan never touches a
protected account or an account it does not own, and never makes one protected by a
rename; it never touches an unmanaged group; leavers leave every managed group but the
owner group, whatever policy.deprovision says.
"""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scimsync.engine.diff import SYNC_FIELDS, DiffPolicy, diff
from scimsync.engine.effects import apply_to_directory, check
from scimsync.engine.plan import PHASES, Operation, OpKind, TargetPlan
from scimsync.models import Account, Capabilities, DesiredAccount, GroupGrant, TargetDirectory, key

OWN = "scimsync-managed"
NAMES = ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "admin"]
GROUPS = [OWN, "g-a", "g-b", "g-new", "other"]
SETTINGS = settings(deadline=None, max_examples=200)
DEPROVISION = (OpKind.DEACTIVATE_USER, OpKind.DELETE_USER)


def spelled(word: str) -> st.SearchStrategy[str]:
    """Return the word as a source or target might spell it: same letters, any case."""
    return st.sampled_from([word, word.upper(), word.title()])


@st.composite
def desired_accounts(draw: st.DrawFn) -> list[DesiredAccount]:
    """Source users, some inactive, now and then two sharing a username or email in another case."""
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=6))
    if names and draw(st.integers(0, 3)) == 0:
        names.append(draw(st.sampled_from(names)))  # two source users with one username
    out = []
    for i, name in enumerate(names):
        groups = draw(st.lists(st.sampled_from(GROUPS[1:]).flatmap(spelled), max_size=3, unique_by=key))
        privileged = draw(st.booleans())
        email = draw(st.sampled_from(NAMES) if draw(st.integers(0, 5)) == 0 else st.just(name)) + "@x.io"
        out.append(
            DesiredAccount(
                source_id=f"s{i}",
                source_username=f"src{i}",
                username=draw(spelled(name)),
                email=draw(spelled(email)),
                display_name=draw(st.sampled_from(["A", "B", name.title()])),
                active=draw(st.sampled_from([True, True, False])),
                grants=tuple(GroupGrant(g, f"rule {j}", privileged) for j, g in enumerate(groups)),
            )
        )
    return out


@st.composite
def targets(draw: st.DrawFn, *, shared_emails: bool) -> TargetDirectory:
    """A target: usernames unique (case-insensitive, as the products enforce), emails maybe not."""
    names = draw(st.lists(st.sampled_from([*NAMES, "zed", "svc"]), unique=True, max_size=6))
    taken: set[str] = set()
    accounts = []
    for i, name in enumerate(names):
        email = draw(
            st.none() | st.sampled_from([name, name, *NAMES]).flatmap(lambda n: spelled(n + "@x.io"))
        )
        if not shared_emails and email is not None and key(email) in taken:
            email = f"{name}.{i}@y.io"
        taken.add(key(email))
        accounts.append(
            Account(
                id=f"K{i}",
                username=draw(spelled(name)),
                email=email,
                display_name=draw(st.sampled_from(["A", "B", name.title()])),
                active=draw(st.booleans()),
                groups=frozenset(draw(st.lists(st.sampled_from(GROUPS).flatmap(spelled), unique_by=key))),
                manageable=draw(st.sampled_from([True, True, True, False])),
                external_id=draw(st.sampled_from([None, "", "s0", "s1", "s2", "x9"])),
            )
        )
    groups = [draw(spelled(g)) for g in GROUPS if draw(st.integers(0, 4))]  # most groups exist
    return TargetDirectory(accounts=tuple(accounts), groups=frozenset(groups))


policies = st.builds(
    DiffPolicy,
    match=st.sampled_from([("username", "email"), ("email", "username"), ("username",), ("email",)]),
    deprovision=st.sampled_from(["deactivate", "delete", "none"]),
    protected_users=st.sampled_from([(), ("admin",), ("A*",), ("bob", "z*")]),
    create_groups=st.booleans(),
    sync_fields=st.sampled_from([("email", "display_name"), SYNC_FIELDS])
    | st.lists(st.sampled_from(SYNC_FIELDS), unique=True).map(tuple),
    managed_groups=st.lists(st.sampled_from(["g-a", "G-B", "g-new", OWN]), unique=True).map(frozenset),
)

capabilities = st.builds(
    Capabilities,
    create_user=st.sampled_from([True, True, False]),
    update_fields=st.sampled_from([frozenset(SYNC_FIELDS), frozenset({"email", "display_name"})])
    | st.lists(st.sampled_from(SYNC_FIELDS), unique=True).map(frozenset),
    deactivate=st.sampled_from([True, True, False]),
    delete=st.booleans(),
    manage_groups=st.sampled_from([True, True, False]),
    create_groups=st.booleans(),
    owner_marker=st.sampled_from(["group", "external_id"]),
)


def plan(
    desired: list[DesiredAccount], actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities
) -> TargetPlan:
    return diff("jira", "jira", desired, actual, policy, caps)


def find(directory: TargetDirectory, op: Operation) -> Account | None:
    for a in directory.accounts:
        if (a.id == op.account_id) if op.account_id else key(a.username) == key(op.account):
            return a
    return None


def settles_later(p: TargetPlan) -> bool:
    """Tell whether applying ``p`` lets the next plan do more, by design.

    A create waits while another account holds its username, and that account may be
    renamed or deleted by this very plan (creates run first, SPEC §6). Deleting a
    leaver's account can let the leaver match another account by a later match key,
    which the next run deprovisions too.
    """
    return any(n.kind == "username_taken" for n in p.notices) or any(
        op.kind is OpKind.DELETE_USER and op.source_id for op in p.operations
    )


def converge(
    desired: list[DesiredAccount], actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities
) -> list[TargetPlan]:
    """Plan and apply until a plan is empty (at most 5 runs); return every non-empty plan."""
    plans: list[TargetPlan] = []
    for _ in range(5):
        p = plan(desired, actual, policy, caps)
        if not p.operations:
            return plans
        plans.append(p)
        actual = apply_to_directory(actual, p.operations)
    raise AssertionError(f"no convergence after 5 runs: {[op for p in plans for op in p.operations]}")


@SETTINGS
@given(desired_accounts(), targets(shared_emails=False), policies, capabilities)
def test_plan_applied_then_planned_again_is_empty(
    desired: list[DesiredAccount], actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities
) -> None:
    first = plan(desired, actual, policy, caps)
    second = plan(desired, apply_to_directory(actual, first.operations), policy, caps)
    if settles_later(first):
        converge(desired, actual, policy, caps)
    else:
        assert second.operations == ()


@pytest.mark.xfail(
    strict=True,
    reason=(
        "FINDING (low, found by hypothesis): a stranger's disabled account 'bob' holding ann's "
        "email goes to leaver bob by username while no account has bob's email; once the run "
        "creates fay with that email, leaver bob matches fay's account by email instead, and "
        "the next plan gives 'bob' to active ann by email and reactivates it: two runs, not one. "
        "Matching takes each person's first key that finds an account, not the surest account"
    ),
)
def test_a_leaver_matched_by_username_keeps_the_account_when_a_joiner_takes_their_email() -> None:
    def person(i: int, username: str, email: str, active: bool) -> DesiredAccount:
        return DesiredAccount(f"s{i}", f"src{i}", username, email, "A", active, ())

    desired = [
        person(0, "ann", "ann@x.io", False),
        person(1, "cy", "cy@x.io", True),
        person(2, "dee", "ann@x.io", False),
        person(3, "eve", "eve@x.io", True),
        person(4, "bob", "bob@x.io", False),
        person(5, "fay", "bob@x.io", True),
        person(6, "ann", "ann@x.io", True),
    ]
    stranger = Account("K0", "bob", "ann@x.io", "A", active=False)
    actual = TargetDirectory(accounts=(stranger,))
    policy = DiffPolicy(match=("email", "username"), deprovision="deactivate", protected_users=("A*",))
    fields = frozenset(SYNC_FIELDS) | {"username"}
    caps = Capabilities(update_fields=fields, delete=False, create_groups=False)
    first = plan(desired, actual, policy, caps)
    # cy, eve and fay are created; 'bob' stays with leaver bob, whose username it is.
    assert [(op.kind, op.account) for op in first.operations] == [
        (OpKind.CREATE_USER, "cy"),
        (OpKind.CREATE_USER, "eve"),
        (OpKind.CREATE_USER, "fay"),
    ]
    second = plan(desired, apply_to_directory(actual, first.operations), policy, caps)
    assert second.operations == ()


@SETTINGS
@given(desired_accounts(), targets(shared_emails=True), policies, capabilities)
def test_plans_converge_when_targets_share_emails(
    desired: list[DesiredAccount], actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities
) -> None:
    # A deletion or an email change can make an ambiguous email unique, so a user it
    # hid is matched one run later; convergence must still come fast, without flapping.
    plans = converge(desired, actual, policy, caps)
    # apply_to_directory gives created accounts the id "new:<username>".
    gone = [op.account_id for p in plans for op in p.operations if op.kind in DEPROVISION]
    assert not [i for i in gone if i and i.startswith("new:")]


@SETTINGS
@given(desired_accounts(), targets(shared_emails=True), policies, capabilities)
def test_plan_touches_only_what_it_owns(
    desired: list[DesiredAccount], actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities
) -> None:
    p = plan(desired, actual, policy, caps)
    by_source = {d.source_id: d for d in desired}
    for op in p.operations:
        if op.kind is OpKind.CREATE_GROUP:
            continue
        assert not _protected(policy, op.account)
        account = find(actual, op) if op.account_id else None
        if account is None:
            assert op.kind is OpKind.CREATE_USER or op.account_id is None
            continue
        if not _marked(policy, caps, account):
            # Unowned accounts are touched only when a source user matches them.
            source = by_source.get(op.source_id or "")
            assert source is not None
            assert _could_match(source, account)


@st.composite
def renamed_users(draw: st.DrawFn, actual: TargetDirectory) -> list[DesiredAccount]:
    """Source users that keep a target account's email under another username, often."""
    out = []
    for i, account in enumerate(actual.accounts):
        if account.email and draw(st.integers(0, 2)):
            out.append(
                DesiredAccount(
                    source_id=f"r{i}",
                    source_username=f"src-r{i}",
                    username=draw(st.sampled_from([*NAMES, "zed", "svc"]).flatmap(spelled)),
                    email=account.email,
                    display_name="A",
                    active=True,
                    grants=(),
                )
            )
    return out


@SETTINGS
@given(st.data(), targets(shared_emails=False), policies, capabilities)
def test_plan_never_renames_into_a_protected_username(
    data: st.DataObject, actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities
) -> None:
    # A renamed-in protected account could never be deprovisioned again (SPEC §5).
    protected = data.draw(st.sampled_from([("admin",), ("A*",), ("bob", "z*")]))
    policy = replace(policy, protected_users=protected, sync_fields=SYNC_FIELDS)
    caps = replace(caps, update_fields=frozenset(SYNC_FIELDS))
    desired = data.draw(renamed_users(actual))
    for op in plan(desired, actual, policy, caps).operations:
        rename = op.change("username")
        assert rename is None or not _protected(policy, rename.new or "")


@SETTINGS
@given(targets(shared_emails=True), policies, capabilities)
def test_leavers_leave_every_managed_group_but_the_owner_group(
    actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities
) -> None:
    # SPEC §6: deprovision per policy.deprovision *and* remove from managed groups.
    if not caps.manage_groups:
        return  # the plan lists what it cannot change instead
    after = apply_to_directory(actual, plan([], actual, policy, caps).operations)
    managed = {key(g) for g in policy.managed_groups} - {key(policy.owner_group)}
    # With desired empty, every marked account is a leaver.
    leavers = [
        a
        for a in after.accounts
        if _marked(policy, caps, a) and a.manageable and not _protected(policy, a.username)
    ]
    for account in leavers:
        assert not {key(g) for g in account.groups} & managed, account


@SETTINGS
@given(desired_accounts(), targets(shared_emails=True), policies, capabilities)
def test_memberships_stay_in_managed_groups(
    desired: list[DesiredAccount], actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities
) -> None:
    managed = {key(g) for g in policy.managed_groups} | {key(policy.owner_group)}
    for op in plan(desired, actual, policy, caps).operations:
        if op.kind in (OpKind.ADD_MEMBER, OpKind.REMOVE_MEMBER):
            assert key(op.group) in managed
            assert caps.manage_groups
        if op.kind is OpKind.REMOVE_MEMBER:
            assert key(op.group) != key(policy.owner_group)  # the marker stays


@SETTINGS
@given(desired_accounts(), targets(shared_emails=True), policies, capabilities)
def test_plan_respects_collisions_capabilities_and_phases(
    desired: list[DesiredAccount], actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities
) -> None:
    p = plan(desired, actual, policy, caps)
    colliding = {u for c in p.collisions for u in c.source_users}
    sources = {d.source_id for d in desired if d.source_username in colliding}
    assert not any(op.source_id in sources for op in p.operations)
    kinds = [next(i for i, phase in enumerate(PHASES) if op.kind in phase) for op in p.operations]
    assert kinds == sorted(kinds)
    allowed = _allowed_kinds(caps)
    assert {op.kind for op in p.operations} <= allowed
    # SCIM-based targets are adopted by setting externalId (SPEC §5), whatever else they update.
    marker = {"external_id"} if caps.owner_marker == "external_id" else set()
    for op in p.operations:
        assert {c.field for c in op.changes} <= (
            caps.update_fields | marker if op.kind is OpKind.UPDATE_USER else set(SYNC_FIELDS)
        )


@SETTINGS
@given(desired_accounts(), targets(shared_emails=True), policies, capabilities)
def test_every_operation_checks_apply_before_and_done_after(
    desired: list[DesiredAccount], actual: TargetDirectory, policy: DiffPolicy, caps: Capabilities
) -> None:
    p = plan(desired, actual, policy, caps)
    for done, op in enumerate(p.operations, start=1):
        if op.kind is OpKind.CREATE_GROUP:
            exists = any(key(g) == key(op.group) for g in actual.groups)
            assert check(op, None, group_exists=exists) == "apply"
            continue
        if op.account_id is not None or op.kind is OpKind.CREATE_USER:
            assert check(op, find(actual, op)) == "apply", op
        # Right after it (and what comes before it), not after the whole plan: a leaver's
        # account adopted by its externalId and then deleted is gone by the end.
        after = apply_to_directory(actual, p.operations[:done])
        assert check(op, find(after, op)) == "done", op


def _protected(policy: DiffPolicy, username: str) -> bool:
    return any(fnmatch.fnmatchcase(key(username), key(g)) for g in policy.protected_users)


def _marked(policy: DiffPolicy, caps: Capabilities, account: Account) -> bool:
    if caps.owner_marker == "external_id":
        return bool(account.external_id)
    return account.in_group(policy.owner_group)


def _could_match(source: DesiredAccount, account: Account) -> bool:
    return (
        account.external_id == source.source_id
        or key(account.username) == key(source.username)
        or (account.email is not None and key(account.email) == key(source.email))
    )


def _allowed_kinds(caps: Capabilities) -> set[OpKind]:
    wanted: dict[OpKind, Any] = {
        OpKind.CREATE_USER: caps.create_user,
        OpKind.CREATE_GROUP: caps.create_groups,
        OpKind.REACTIVATE_USER: caps.deactivate,
        OpKind.DEACTIVATE_USER: caps.deactivate,
        OpKind.DELETE_USER: caps.delete,
        OpKind.ADD_MEMBER: caps.manage_groups,
        OpKind.REMOVE_MEMBER: caps.manage_groups,
        OpKind.UPDATE_USER: caps.update_fields or caps.owner_marker == "external_id",
    }
    return {kind for kind, ok in wanted.items() if ok}
