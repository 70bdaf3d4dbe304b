"""diff(): every matching, ownership and safety rule of SPEC §5-6 as a table row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from scimsync.engine.diff import DiffPolicy, diff
from scimsync.engine.plan import PHASES, Collision, Operation, OpKind, TargetPlan
from scimsync.models import Account, Capabilities, DesiredAccount, GroupGrant, TargetDirectory

OWN = "scimsync-managed"
MANAGED = frozenset({OWN, "jira-users", "jira-devs", "jira-new"})
EXISTING = frozenset({OWN, "jira-users", "jira-devs", "unmanaged"})  # jira-new is missing
SCIM = {"owner_marker": "external_id"}


def want(
    username: str,
    email: str | None = None,
    display: str | None = None,
    *,
    src: str | None = None,
    active: bool = True,
    groups: Sequence[str] = ("jira-users",),
) -> DesiredAccount:
    """Return a desired account; email and display name default to what acct() gives."""
    return DesiredAccount(
        source_id=f"s-{src or username}",
        source_username=src or username,
        username=username,
        email=email or f"{username}@x.io",
        display_name=display or username.capitalize(),
        active=active,
        grants=tuple(GroupGrant(g, "default_groups") for g in groups),
    )


def acct(
    username: str,
    email: str | None = "",
    display: str | None = None,
    *,
    active: bool = True,
    groups: Sequence[str] = (OWN, "jira-users"),  # owned and in sync with want() unless told
    manageable: bool = True,
    external_id: str | None = None,
) -> Account:
    """Return a target account; ``email=None`` is a target that never shows emails."""
    return Account(
        id=f"K-{username}",
        username=username,
        email=f"{username}@x.io" if email == "" else email,
        display_name=display or username.capitalize(),
        active=active,
        groups=frozenset(groups),
        manageable=manageable,
        external_id=external_id,
    )


def run(
    desired: Sequence[DesiredAccount],
    accounts: Sequence[Account],
    *,
    policy: dict[str, Any] | None = None,
    caps: dict[str, Any] | None = None,
    links: dict[str, str] | None = None,
) -> TargetPlan:
    pol = DiffPolicy(**{"managed_groups": MANAGED, **(policy or {})})
    actual = TargetDirectory(accounts=tuple(accounts), groups=EXISTING)
    return diff("jira", "jira", desired, actual, pol, Capabilities(**(caps or {})), links)


def fmt(op: Operation) -> str:
    """Return an operation as one short line: kind, account, group or field changes."""
    if op.kind is OpKind.CREATE_GROUP:
        return f"create_group {op.group}"
    text = f"{op.kind.value} {op.account}"
    if op.group:
        text += f" {op.group}"
    if op.kind is OpKind.UPDATE_USER:
        text += "".join(f" {c.field}:{c.old}->{c.new}" for c in op.changes)
    return text


def case(
    id: str,
    desired: Sequence[DesiredAccount],
    accounts: Sequence[Account],
    ops: Sequence[str],
    notices: Sequence[str] = (),
    **settings: dict[str, Any],
) -> Any:
    return pytest.param(desired, accounts, ops, notices, settings, id=id)


CASES = [
    # rule 7: unmatched desired accounts
    case(
        "create new user with its groups and the owner group",
        [want("amara")],
        [],
        ["create_user amara", "add_member amara jira-users", f"add_member amara {OWN}"],
    ),
    case("inactive new user is not created", [want("amara", active=False)], [], []),
    case(
        "target that cannot create users",
        [want("amara")],
        [],
        [],
        ["cannot_update amara"],
        caps={"create_user": False},
    ),
    case(
        "protected source user is never created",
        [want("admin")],
        [],
        [],
        ["protected admin"],
        policy={"protected_users": ("adm*",)},
    ),
    case(
        "username held by an account the match rules skip",
        [want("bob", "robert@x.io")],
        [acct("bob", groups=())],
        [],
        ["username_taken bob"],
        policy={"match": ("email",)},
    ),
    case(
        "new account the match rules could not find again",
        [want("carl")],
        [acct("x1", "carl@x.io", groups=()), acct("x2", "carl@x.io", groups=())],
        [],
        ["unmatchable carl"],
        policy={"match": ("email",)},
    ),
    # rule 2: matching
    case("match by username", [want("bob")], [acct("bob")], []),
    case("match by username, case-insensitive", [want("bob")], [acct("BOB", "BOB@X.IO", "Bob")], []),
    case(
        "match by email",
        [want("robert", "bob@x.io", "Bob")],
        [acct("bob")],
        [],
        ["username_differs bob"],  # username is not in sync_fields: said, not renamed
    ),
    case(
        "match by email, case-insensitive",
        [want("robert", "Bob@X.io", "Bob")],
        [acct("bob", "BOB@x.IO")],
        [],
        ["username_differs bob"],
    ),
    case(
        "match keys in order: username first",
        [want("bob", "b2@x.io", "Bob")],
        [acct("bob"), acct("bobby", "b2@x.io")],
        # bobby holds the email bob maps to: a present person's, never deprovisioned (SPEC §5)
        ["update_user bob email:bob@x.io->b2@x.io"],
        ["ambiguous bobby"],
    ),
    case(
        "match keys in order: email first",
        [want("bob", "b2@x.io", "Bob")],
        [acct("bob"), acct("bobby", "b2@x.io")],
        ["update_user bobby display_name:Bobby->Bob"],
        ["ambiguous bob", "username_differs bobby"],
        policy={"match": ("email", "username")},
    ),
    case(
        "ambiguous email matches nothing",
        [want("robert", "shared@x.io")],
        [acct("a1", "shared@x.io", groups=()), acct("a2", "SHARED@x.io", groups=())],
        ["create_user robert", "add_member robert jira-users", f"add_member robert {OWN}"],
    ),
    case(
        "an account that hides its email is not matched by email",
        [want("robert", "bob@x.io")],
        [acct("bob", None, groups=())],
        ["create_user robert", "add_member robert jira-users", f"add_member robert {OWN}"],
    ),
    case(
        "external_id matched first on SCIM targets",
        [want("robert", "rob@x.io", "Robert", src="bob"), want("carl", src="carl")],
        [acct("bob", groups=("jira-users",), external_id="s-bob"), acct("carl", groups=("jira-users",))],
        # carl matched by username, without an externalId: adopted by setting it (SPEC §5).
        [
            "update_user bob email:bob@x.io->rob@x.io display_name:Bob->Robert",
            "update_user carl external_id:None->s-carl",
        ],
        ["username_differs bob"],
        caps=SCIM,
    ),
    case(
        "external_id is the owner marker on SCIM targets",
        [],
        [acct("gone", groups=("jira-users",), external_id="s-gone"), acct("other", groups=("jira-users",))],
        ["remove_member gone jira-users", "deactivate_user gone"],
        caps=SCIM,
    ),
    # rule 5: matched and active
    case(
        "update email",
        [want("bob", "robert@x.io")],
        [acct("bob")],
        ["update_user bob email:bob@x.io->robert@x.io"],
    ),
    case("email differing only in case is no change", [want("bob", "BOB@x.io")], [acct("bob")], []),
    case(
        "display name compares exactly",
        [want("bob", display="BOB")],
        [acct("bob")],
        ["update_user bob display_name:Bob->BOB"],
    ),
    case(
        "several fields in one update",
        [want("bob", "robert@x.io", "Robert")],
        [acct("bob")],
        ["update_user bob email:bob@x.io->robert@x.io display_name:Bob->Robert"],
    ),
    case(
        "field outside sync_fields is left alone",
        [want("bob", "robert@x.io", "Robert")],
        [acct("bob")],
        ["update_user bob display_name:Bob->Robert"],
        policy={"sync_fields": ("display_name",)},
    ),
    case(
        "rename when username is a sync field",
        [want("robert", "bob@x.io", "Bob")],
        [acct("bob")],
        ["update_user bob username:bob->robert"],
        policy={"sync_fields": ("username", "email", "display_name")},
        caps={"update_fields": frozenset({"username", "email", "display_name"})},
    ),
    case(
        "no rename for a difference in case",
        [want("Bob")],
        [acct("bob", display="Bob")],
        [],
        policy={"sync_fields": ("username",)},
        caps={"update_fields": frozenset({"username"})},
    ),
    case(
        "rename the target cannot make",
        [want("robert", "bob@x.io", "Bob")],
        [acct("bob")],
        [],
        ["cannot_update bob"],
        policy={"sync_fields": ("username",)},
    ),
    case(
        "rename onto a username another account holds",
        [want("robert", "bob@x.io", "Bob")],
        [acct("bob"), acct("robert", "other@x.io", groups=())],
        [],
        ["username_taken bob"],
        policy={"match": ("email",), "sync_fields": ("username",)},
        caps={"update_fields": frozenset({"username"})},
    ),
    case(
        "display name the target cannot update",
        [want("bob", "robert@x.io", "Robert")],
        [acct("bob")],
        ["update_user bob email:bob@x.io->robert@x.io"],
        ["cannot_update bob"],
        caps={"update_fields": frozenset({"email"}), "reason": "Confluence 9.2"},
    ),
    case("target never shows emails", [want("bob", "robert@x.io")], [acct("bob", None)], []),
    case("reactivate", [want("bob")], [acct("bob", active=False)], ["reactivate_user bob"]),
    case(
        "reactivation the target cannot make",
        [want("bob")],
        [acct("bob", active=False)],
        [],
        ["cannot_update bob"],
        caps={"deactivate": False},
    ),
    case(
        "memberships: add and remove managed groups only",
        [want("bob", groups=("jira-devs", "not-managed"))],
        [acct("bob", groups=(OWN, "jira-users", "unmanaged"))],
        ["add_member bob jira-devs", "remove_member bob jira-users"],
    ),
    case(
        "memberships compare group names case-insensitively",
        [want("bob", groups=("Jira-Users",))],
        [acct("bob", groups=("scimsync-MANAGED", "JIRA-USERS"))],
        [],
    ),
    case(
        "adopting an account adds the owner group",
        [want("bob")],
        [acct("bob", groups=("jira-users", "unmanaged"))],
        [f"add_member bob {OWN}"],
    ),
    case(
        "the owner group stays on a matched account",
        [want("bob", groups=())],
        [acct("bob")],
        ["remove_member bob jira-users"],
    ),
    case(
        "memberships the target cannot manage",
        [want("bob", groups=("jira-devs",))],
        [acct("bob")],
        [],
        ["cannot_update bob"],
        caps={"manage_groups": False},
    ),
    # rules 6 and 8: deprovisioning
    case(
        "leaver: deactivated and removed from managed groups, owner group kept",
        [],
        [acct("carl", groups=(OWN, "jira-users", "jira-devs", "unmanaged"))],
        ["remove_member carl jira-devs", "remove_member carl jira-users", "deactivate_user carl"],
    ),
    case("already deprovisioned leaver", [], [acct("carl", active=False, groups=(OWN, "unmanaged"))], []),
    case(
        "deactivated leaver still in a managed group",
        [],
        [acct("carl", active=False)],
        ["remove_member carl jira-users"],
    ),
    case("leaver, delete mode", [], [acct("carl")], ["delete_user carl"], policy={"deprovision": "delete"}),
    case(
        "leaver, none mode: not deactivated, still removed from managed groups, owner group kept",
        [],
        [acct("carl", groups=(OWN, "jira-users", "jira-devs", "unmanaged"))],
        ["remove_member carl jira-devs", "remove_member carl jira-users"],
        policy={"deprovision": "none"},
    ),
    case(
        "leaver, none mode, in no managed group",
        [],
        [acct("carl", groups=(OWN, "unmanaged"))],
        [],
        policy={"deprovision": "none"},
    ),
    case(
        "inactive source user, none mode",
        [want("bob", active=False)],
        [acct("bob")],
        ["remove_member bob jira-users"],
        policy={"deprovision": "none"},
    ),
    case(
        "leaver, none mode, on a SCIM target",
        [],
        [acct("gone", groups=("jira-users",), external_id="s-gone")],
        ["remove_member gone jira-users"],
        policy={"deprovision": "none"},
        caps=SCIM,
    ),
    case(
        "read-only leaver, none mode",
        [],
        [acct("carl", manageable=False)],
        [],
        ["not_manageable carl"],
        policy={"deprovision": "none"},
    ),
    case(
        "leaver, delete mode on a target that cannot delete",
        [],
        [acct("carl")],
        ["remove_member carl jira-users", "deactivate_user carl"],
        ["cannot_update carl"],
        policy={"deprovision": "delete"},
        caps={"delete": False},
    ),
    case(
        "leaver on a target that cannot deactivate",
        [],
        [acct("carl")],
        ["remove_member carl jira-users"],
        ["cannot_update carl"],
        caps={"deactivate": False},
    ),
    case(
        "inactive source user's account is deprovisioned",
        [want("bob", active=False)],
        [acct("bob", groups=("jira-users",))],
        # matched, so owned: it gets the owner marker that keeps it owned (SPEC §5-6)
        [f"add_member bob {OWN}", "remove_member bob jira-users", "deactivate_user bob"],
    ),
    case(
        "inactive source user, delete mode",
        [want("bob", active=False)],
        [acct("bob")],
        ["delete_user bob"],
        policy={"deprovision": "delete"},
    ),
    case("unowned unmatched account is never touched", [], [acct("carl", groups=("jira-users",))], []),
    # rule 3: protected
    case(
        "protected matched account",
        [want("admin", "new@x.io", groups=("jira-devs",))],
        [acct("Admin", active=False)],
        [],
        ["protected Admin"],
        policy={"protected_users": ("admin",)},
    ),
    case(
        "protected owned leaver",
        [],
        [acct("sysadmin")],
        [],
        policy={"protected_users": ("SYS*",)},
    ),
    # rule 4: not manageable
    case(
        "read-only account that would change",
        [want("bob", "robert@x.io", groups=("jira-devs",))],
        [acct("bob", manageable=False)],
        [],
        ["not_manageable bob"],
    ),
    case("read-only account in sync", [want("bob")], [acct("bob", manageable=False)], []),
    case("read-only leaver", [], [acct("carl", manageable=False)], [], ["not_manageable carl"]),
    # rule 1: collisions
    case(
        "two source users with one username",
        [want("bob", "b1@x.io", src="bob1"), want("BOB", "b2@x.io", src="bob2"), want("amara")],
        [acct("bob", "b1@x.io", display="B")],
        ["create_user amara", "add_member amara jira-users", f"add_member amara {OWN}"],
    ),
    case(
        "two source users with one email",
        [want("bob", "x@x.io"), want("robert", "X@x.io")],
        [],
        [],
    ),
    case(
        "two source users resolving to one account",
        [want("bob", "b1@x.io"), want("robert", "bob@x.io")],
        [acct("bob")],
        [],
    ),
    # rule 9: groups
    case(
        "missing managed group is created",
        [want("bob", groups=("jira-users", "jira-new"))],
        [acct("bob")],
        ["create_group jira-new", "add_member bob jira-new"],
    ),
    case(
        "missing group, policy.create_groups off",
        [want("bob", groups=("jira-users", "jira-new"))],
        [acct("bob")],
        [],
        ["missing_group jira-new"],
        policy={"create_groups": False},
    ),
    case(
        "missing group, target cannot create groups",
        [want("bob", groups=("jira-users", "jira-new"))],
        [acct("bob")],
        [],
        ["missing_group jira-new"],
        caps={"create_groups": False},
    ),
]


@pytest.mark.parametrize(("desired", "accounts", "ops", "notices", "settings"), CASES)
def test_rules(
    desired: Sequence[DesiredAccount],
    accounts: Sequence[Account],
    ops: Sequence[str],
    notices: Sequence[str],
    settings: dict[str, dict[str, Any]],
) -> None:
    plan = run(desired, accounts, **settings)
    assert [fmt(op) for op in plan.operations] == list(ops)
    assert sorted(f"{n.kind} {n.account}" for n in plan.notices) == sorted(notices)


COLLISIONS = [
    pytest.param(
        [want("bob", "b1@x.io", src="bob1"), want("BOB", "b2@x.io", src="bob2")],
        [Collision("jira", "username", "bob", ("bob1", "bob2"))],
        id="username",
    ),
    pytest.param(
        [want("bob", "x@x.io"), want("robert", "X@x.io"), want("amara", "x@x.io")],
        [Collision("jira", "email", "x@x.io", ("amara", "bob", "robert"))],
        id="email",
    ),
    pytest.param(
        [want("bob", "b1@x.io"), want("robert", "bob@x.io")],
        [Collision("jira", "account", "bob", ("bob", "robert"))],
        id="account",
    ),
    pytest.param(
        [want("bob", "b1@x.io", src="bob1"), want("bob", "b2@x.io", src="bob2")],
        [Collision("jira", "username", "bob", ("bob1", "bob2"))],
        id="one username collision is not also an account collision",
    ),
]


@pytest.mark.parametrize(("desired", "collisions"), COLLISIONS)
def test_collisions_name_every_source_user(
    desired: Sequence[DesiredAccount], collisions: list[Collision]
) -> None:
    plan = run(desired, [acct("bob")])
    assert list(plan.collisions) == collisions
    assert plan.operations == ()  # and the account they claim is not deprovisioned either


def test_collision_protects_the_claimed_account_from_deprovisioning() -> None:
    plan = run([want("carl", "c1@x.io", src="c1"), want("carl", "c2@x.io", src="c2")], [acct("carl")])
    assert plan.operations == ()
    assert plan.owned_count == 1


def test_operations_carry_reason_ids_and_expected_state() -> None:
    plan = run(
        [
            want("amara", groups=("jira-devs",)),
            want("robert", "bob@x.io", "Robert"),
            want("dee", active=False),
        ],
        [acct("bob", active=False), acct("carl"), acct("dee")],
    )
    rows = {
        (op.kind.value, op.account, op.group): (op.reason, op.account_id, op.source_id, dict(op.expected))
        for op in plan.operations
    }
    assert rows == {
        ("create_user", "amara", None): ("new in source", None, "s-amara", {"exists": False}),
        ("add_member", "amara", "jira-devs"): ("default_groups", None, "s-amara", {"member": False}),
        ("add_member", "amara", OWN): ("owner marker", None, "s-amara", {"member": False}),
        ("update_user", "bob", None): (
            "changed in source (matched by email)",
            "K-bob",
            "s-robert",
            {"display_name": "Bob"},
        ),
        ("reactivate_user", "bob", None): (
            "active in source (matched by email)",
            "K-bob",
            "s-robert",
            {"active": False},
        ),
        ("deactivate_user", "carl", None): ("left the source", "K-carl", None, {"active": True}),
        ("remove_member", "carl", "jira-users"): ("left the source", "K-carl", None, {"member": True}),
        ("deactivate_user", "dee", None): ("inactive in source", "K-dee", "s-dee", {"active": True}),
        ("remove_member", "dee", "jira-users"): ("inactive in source", "K-dee", "s-dee", {"member": True}),
    }
    create = plan.operations[0]
    assert [(c.field, c.old, c.new) for c in create.changes] == [
        ("username", None, "amara"),
        ("email", None, "amara@x.io"),
        ("display_name", None, "Amara"),
    ]


def test_delete_and_create_group_expect_existence() -> None:
    plan = run([want("bob", groups=("jira-new",))], [acct("carl")], policy={"deprovision": "delete"})
    expected = {op.kind.value: dict(op.expected) for op in plan.operations}
    assert expected["delete_user"] == {"exists": True}
    assert expected["create_group"] == {"exists": False}
    assert plan.operations[0].account == plan.operations[0].group == "jira-new"


def test_group_rule_reason_is_kept() -> None:
    grant = GroupGrant("jira-devs", "rule 2 (from: atlassian-jira-*)")
    desired = replace(want("bob"), grants=(grant,))
    plan = run([desired], [acct("bob", groups=(OWN,))])
    assert [(fmt(op), op.reason) for op in plan.operations] == [
        ("add_member bob jira-devs", "rule 2 (from: atlassian-jira-*)")
    ]


def test_operations_follow_the_phases_of_spec_6() -> None:
    plan = run(
        [
            want("amara", groups=("jira-new",)),
            want("bob", "robert@x.io", groups=()),
            want("cy", active=False),
            want("dee"),
        ],
        [acct("bob"), acct("cy"), acct("dee", active=False, groups=()), acct("zed")],
    )
    phases = [next(i for i, p in enumerate(PHASES) if op.kind in p) for op in plan.operations]
    assert phases == sorted(phases)
    assert {op.kind for op in plan.operations} == set(OpKind) - {OpKind.DELETE_USER}


NOTICE_MESSAGES = [
    pytest.param(
        [want("bob", "robert@x.io", groups=("jira-users", "jira-devs"))],
        [acct("bob", manageable=False)],
        {},
        "read-only directory: would update email, add to jira-devs",
        id="not manageable",
    ),
    pytest.param(
        [want("bob", display="Robert")],
        [acct("bob")],
        {"caps": {"update_fields": frozenset({"email"}), "reason": "Confluence 9.2"}},
        "cannot update display_name on this target (Confluence 9.2)",
        id="cannot update",
    ),
    pytest.param(
        [want("bob", groups=("jira-new",))],
        [acct("bob")],
        {"policy": {"create_groups": False}},
        "group 'jira-new' does not exist on this target and policy.create_groups is off",
        id="missing group",
    ),
]


@pytest.mark.parametrize(("desired", "accounts", "settings", "message"), NOTICE_MESSAGES)
def test_notice_messages(
    desired: Sequence[DesiredAccount], accounts: Sequence[Account], settings: dict[str, Any], message: str
) -> None:
    assert [n.message for n in run(desired, accounts, **settings).notices] == [message]


RENAMES_ALL = {"update_fields": frozenset({"username", "email", "display_name"})}
SYNC_ALL = {"sync_fields": ("username", "email", "display_name")}
SVC = {**SYNC_ALL, "protected_users": ("svc-*",)}
REFUSED = "protected user: refusing to rename '{old}' to '{new}', a protected username"

PROTECTED_RENAMES = [
    pytest.param(
        [want("svc-bob", "bob@x.io", "Bob")],
        [acct("bob")],
        {"policy": SVC, "caps": RENAMES_ALL},
        [],
        [REFUSED.format(old="bob", new="svc-bob")],
        id="rename only: nothing planned",
    ),
    pytest.param(
        [want("svc-bob", "bob@x.io", "Robert")],
        [acct("bob")],
        {"policy": SVC, "caps": RENAMES_ALL},
        ["update_user bob display_name:Bob->Robert"],
        [REFUSED.format(old="bob", new="svc-bob")],
        id="other fields still change",
    ),
    pytest.param(
        [want("SVC-Bob", "bob@x.io", "Bob")],
        [acct("bob")],
        {"policy": {**SYNC_ALL, "protected_users": ("admin", "svc-*")}, "caps": RENAMES_ALL},
        [],
        [REFUSED.format(old="bob", new="SVC-Bob")],
        id="glob compares case-insensitively",
    ),
    pytest.param(
        [want("svc-bob", "rob@x.io", "Bob", src="bob")],
        [acct("bob", groups=("jira-users",), external_id="s-bob")],
        {"policy": SVC, "caps": {**RENAMES_ALL, **SCIM}},
        ["update_user bob email:bob@x.io->rob@x.io"],
        [REFUSED.format(old="bob", new="svc-bob")],
        id="matched by external_id on a SCIM target",
    ),
    pytest.param(
        [want("svc-bob", "bob@x.io", "Bob")],
        [acct("bob")],
        {"policy": SVC},
        [],
        [REFUSED.format(old="bob", new="svc-bob")],
        id="refused before asking whether the target could rename",
    ),
    pytest.param(
        [want("robert", "bob@x.io", "Bob")],
        [acct("bob")],
        {"policy": SVC, "caps": RENAMES_ALL},
        ["update_user bob username:bob->robert"],
        [],
        id="a rename to an unprotected username still happens",
    ),
]


@pytest.mark.parametrize(("desired", "accounts", "settings", "ops", "messages"), PROTECTED_RENAMES)
def test_never_renames_into_a_protected_username(
    desired: Sequence[DesiredAccount],
    accounts: Sequence[Account],
    settings: dict[str, Any],
    ops: Sequence[str],
    messages: Sequence[str],
) -> None:
    plan = run(desired, accounts, **settings)
    assert [fmt(op) for op in plan.operations] == list(ops)
    assert [(n.kind, n.account, n.message) for n in plan.notices] == [
        ("protected", "bob", m) for m in messages
    ]


def test_owned_count_counts_matched_and_marked_accounts() -> None:
    accounts = [acct("bob", groups=()), acct("carl"), acct("dee", groups=()), acct("eve", active=False)]
    assert run([want("bob"), want("zed")], accounts).owned_count == 3


def test_ops_name_the_target() -> None:
    plan = run([want("amara")], [acct("carl")])
    assert {op.target for op in plan.operations} == {"jira"}
    assert (plan.target, plan.type) == ("jira", "jira")


@pytest.mark.parametrize(
    "bad",
    [{"match": ("uid",)}, {"deprovision": "suspend"}, {"sync_fields": ("groups",)}],
    ids=["match", "deprovision", "sync_fields"],
)
def test_policy_rejects_unknown_settings(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DiffPolicy(**bad)
