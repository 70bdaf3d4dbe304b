"""diff(): the exact words a plan says, and the matching rules behind them (SPEC §4-§6).

Every notice message and every operation reason is what an administrator reads in the plan
before approving it, so each one is pinned here word for word, with the operations' source
ids and the state they expect (a saved plan re-checks it, SPEC §6). The expectations are
written out by hand, never computed with the engine's helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from test_diff import OWN, acct, fmt, run, want

from scimsync.engine.diff import DiffPolicy, diff
from scimsync.engine.plan import Collision, Notice, TargetPlan
from scimsync.models import Account, Capabilities, DesiredAccount, GroupGrant, TargetDirectory

SCIM = {"owner_marker": "external_id"}
LINK_HINT = "(no link yet: match by id links them once scimsync has seen the account)"
CHECK_KEYS = "check the match keys and the account's username and email"


def no_email(d: DesiredAccount) -> DesiredAccount:
    return replace(d, email="")


def granted(d: DesiredAccount, *grants: tuple[str, str]) -> DesiredAccount:
    return replace(d, grants=tuple(GroupGrant(group, reason) for group, reason in grants))


def expected_of(plan: TargetPlan) -> dict[str, dict[str, Any]]:
    return {fmt(op): dict(op.expected) for op in plan.operations}


def reasons_of(plan: TargetPlan) -> list[tuple[str, str]]:
    return [(fmt(op), op.reason) for op in plan.operations]


# --- SPEC §5-6: an adopted account's owner marker records why it was adopted ------------------

ADOPTIONS = [
    pytest.param(
        [want("bob", "robert@x.io", groups=("jira-users", "jira-devs"))],
        [acct("BOB", groups=("jira-users",))],
        {
            "update_user BOB email:BOB@x.io->robert@x.io": {"email": "BOB@x.io"},
            "add_member BOB jira-devs": {"member": False},
            f"add_member BOB {OWN}": {"member": False, "matched_by": "username", "match_value": "BOB"},
        },
        id="by username: the account's own spelling of the value",
    ),
    pytest.param(
        [want("robert", "Bob@X.io", "Bob")],
        [acct("bob", "BOB@x.io", groups=("jira-users",))],
        {f"add_member bob {OWN}": {"member": False, "matched_by": "email", "match_value": "BOB@x.io"}},
        id="by email",
    ),
    pytest.param(
        [want("bob", active=False)],
        [acct("bob", groups=("jira-users",))],
        {
            f"add_member bob {OWN}": {"member": False, "matched_by": "username", "match_value": "bob"},
            "remove_member bob jira-users": {"member": True},
            "deactivate_user bob": {"active": True},
        },
        id="an inactive source user's account is adopted to be deprovisioned",
    ),
    pytest.param(
        [want("bob", groups=("jira-devs",))],
        [acct("bob", active=False)],
        {
            "reactivate_user bob": {"active": False},
            "add_member bob jira-devs": {"member": False},
            "remove_member bob jira-users": {"member": True},
        },
        id="an account that already carries the marker is not adopted again",
    ),
]


@pytest.mark.parametrize(("desired", "accounts", "expected"), ADOPTIONS)
def test_the_owner_marker_of_an_adopted_account_says_how_it_matched(
    desired: Sequence[DesiredAccount], accounts: Sequence[Account], expected: dict[str, dict[str, Any]]
) -> None:
    assert expected_of(run(desired, accounts)) == expected


def test_an_account_adopted_on_a_scim_target_gets_its_external_id_not_the_owner_group() -> None:
    # SCIM: the marker is externalId (SPEC §5), never a membership, even where the group is managed.
    active = run([want("bob")], [acct("bob", groups=("jira-users",))], caps=SCIM)
    assert [fmt(op) for op in active.operations] == ["update_user bob external_id:None->s-bob"]
    assert active.operations[0].reason == "adopted: externalId set to the source id (matched by username)"
    assert active.operations[0].source_id == "s-bob"
    assert dict(active.operations[0].expected) == {
        "external_id": None,
        "matched_by": "username",
        "match_value": "bob",
    }
    leaver = run([want("bob", active=False)], [acct("bob", groups=("jira-users",))], caps=SCIM)
    assert [fmt(op) for op in leaver.operations] == [
        "update_user bob external_id:None->s-bob",
        "remove_member bob jira-users",
        "deactivate_user bob",
    ]


def test_a_scim_adoption_rides_on_the_field_update_and_spares_other_owners() -> None:
    # One write: the externalId joins the email change, and the saved-plan facts of both.
    plan = run([want("bob", "robert@x.io")], [acct("bob", groups=("jira-users",))], caps=SCIM)
    assert [fmt(op) for op in plan.operations] == [
        "update_user bob email:bob@x.io->robert@x.io external_id:None->s-bob"
    ]
    op = plan.operations[0]
    assert op.reason == (
        "changed in source (matched by username); "
        "adopted: externalId set to the source id (matched by username)"
    )
    assert dict(op.expected) == {
        "email": "bob@x.io",
        "external_id": None,
        "matched_by": "username",
        "match_value": "bob",
    }
    # Folded into the update, the adoption keeps every operation after it.
    back = run([want("bob", "robert@x.io")], [acct("bob", active=False, groups=("jira-users",))], caps=SCIM)
    assert [fmt(op) for op in back.operations] == [
        "reactivate_user bob",
        "update_user bob email:bob@x.io->robert@x.io external_id:None->s-bob",
    ]
    # An account with someone's externalId is owned already: it keeps that externalId.
    theirs = run([want("bob")], [acct("bob", groups=("jira-users",), external_id="okta-00u1")], caps=SCIM)
    assert not [c for op in theirs.operations for c in op.changes if c.field == "external_id"]
    # A group-marker target never plans an externalId.
    jira = run([want("bob")], [acct("bob", groups=("jira-users",))])
    assert not [c for op in jira.operations for c in op.changes if c.field == "external_id"]


# --- every notice, word for word --------------------------------------------------------------


def notice(account: str, kind: str, message: str) -> Notice:
    return Notice("jira", account, kind, message)


def row(
    id: str,
    desired: Sequence[DesiredAccount],
    accounts: Sequence[Account],
    notices: Sequence[Notice],
    **settings: Any,
) -> Any:
    return pytest.param(desired, accounts, settings, notices, id=id)


MATCH_EMAIL = {"match": ("email",)}
NOTICES = [
    row(
        "ambiguous: a leaver holding a present person's email",
        [want("amara")],
        [acct("amara"), acct("old-amara", "amara@x.io")],
        [
            notice(
                "old-amara",
                "ambiguous",
                "not deprovisioned (left the source): an active source user maps to its email "
                f"'amara@x.io'; {CHECK_KEYS}",
            )
        ],
    ),
    row(
        "ambiguous and username_taken: an edited email under match [email]",
        [want("amara")],
        [acct("amara", "edited@elsewhere.io")],
        [
            notice(
                "amara",
                "ambiguous",
                "not deprovisioned (left the source): an active source user maps to its username "
                f"'amara'; {CHECK_KEYS}",
            ),
            notice(
                "amara",
                "username_taken",
                "username taken by an account that source user 'amara' does not match; not created",
            ),
        ],
        policy=MATCH_EMAIL,
    ),
    row(
        "ambiguous: an inactive user's account whose email a new hire maps to",
        [want("bob", "bob.old@x.io", active=False), want("carl", "bob@x.io")],
        [acct("bob")],
        [
            notice(
                "bob",
                "ambiguous",
                "not deprovisioned (inactive in source): an active source user maps to its email "
                f"'bob@x.io'; {CHECK_KEYS}",
            )
        ],
    ),
    row(
        "ambiguous: an inactive record matching a stranger by email only",
        [want("jsmith1", "john@x.io", active=False)],
        [acct("john", "john@x.io", groups=("jira-users",))],
        [
            notice(
                "john",
                "ambiguous",
                "not deprovisioned: source user 'jsmith1' (inactive) matches it by email only, "
                "and scimsync does not own it",
            )
        ],
    ),
    row(
        "incomplete: names the source user and the target",
        [no_email(want("zoe", src="zoe.k"))],
        [],
        [notice("zoe", "incomplete", "not created: source user 'zoe.k' has no email, and jira needs one")],
    ),
    row(
        "username_differs",
        [want("robert", "bob@x.io", "Bob")],
        [acct("bob")],
        [
            notice(
                "bob",
                "username_differs",
                "username is 'bob', the mapping gives 'robert'; not renamed "
                "because username is not in policy.sync_fields",
            )
        ],
    ),
    row(
        "username_taken: a rename onto another account's username",
        [want("robert", "bob@x.io", "Bob")],
        [acct("bob"), acct("robert", "other@x.io", groups=())],
        [
            notice(
                "bob",
                "username_taken",
                "cannot rename to 'robert': another account on this target has that username",
            )
        ],
        policy={"match": ("email",), "sync_fields": ("username",)},
        caps={"update_fields": frozenset({"username"})},
    ),
    row(
        "username_taken: a create onto an account the match rules skip",
        [want("bob", "robert@x.io", src="robert")],
        [acct("bob", groups=())],
        [
            notice(
                "bob",
                "username_taken",
                "username taken by an account that source user 'robert' does not match; not created",
            )
        ],
        policy=MATCH_EMAIL,
    ),
    row(
        "unmatchable: a shared email",
        [want("carl")],
        [acct("x1", "carl@x.io", groups=()), acct("x2", "CARL@x.io", groups=())],
        [
            notice(
                "carl",
                "unmatchable",
                "not created: match [id, email] could not find the new account "
                "(email 'carl@x.io' is on 2 accounts)",
            )
        ],
        policy={"match": ("id", "email")},
    ),
    row(
        "unmatchable: no email",
        [no_email(want("carl"))],
        [],
        [
            notice(
                "carl",
                "unmatchable",
                "not created: match [id, email] could not find the new account (no email)",
            )
        ],
        policy={"match": ("id", "email")},
    ),
    row(
        "unmatchable: match [id] alone never finds a new account by a unique email",
        [want("carl")],
        [],
        [
            notice(
                "carl",
                "unmatchable",
                "not created: match [id] could not find the new account (email 'carl@x.io' is on 0 accounts)",
            )
        ],
        policy={"match": ("id",)},
    ),
    row(
        "protected: never created",
        [want("admin")],
        [],
        [notice("admin", "protected", "protected user: never created")],
        policy={"protected_users": ("adm*",)},
    ),
    row(
        "protected: matched, never changed",
        [want("admin", "new@x.io", src="root")],
        [acct("Admin", active=False)],
        [
            notice(
                "Admin", "protected", "protected user: matches source user 'root' by username; never changed"
            )
        ],
        policy={"protected_users": ("admin",)},
    ),
    row(
        "cannot create accounts",
        [want("amara")],
        [],
        [notice("amara", "cannot_update", "cannot create accounts on this target")],
        caps={"create_user": False},
    ),
    row(
        "cannot create accounts, with the target's reason",
        [want("amara")],
        [],
        [notice("amara", "cannot_update", "cannot create accounts on this target (Jira 7.0 LDAP)")],
        caps={"create_user": False, "reason": "Jira 7.0 LDAP"},
    ),
    row(
        "cannot reactivate accounts",
        [want("bob")],
        [acct("bob", active=False)],
        [notice("bob", "cannot_update", "cannot reactivate accounts on this target")],
        caps={"deactivate": False},
    ),
    row(
        "cannot delete accounts: deactivating instead",
        [],
        [acct("carl")],
        [notice("carl", "cannot_update", "cannot delete accounts on this target; deactivating instead")],
        policy={"deprovision": "delete"},
        caps={"delete": False},
    ),
    row(
        "cannot delete accounts, with the target's reason",
        [],
        [acct("carl")],
        [
            notice(
                "carl",
                "cannot_update",
                "cannot delete accounts on this target (SCIM 1.1); deactivating instead",
            )
        ],
        policy={"deprovision": "delete"},
        caps={"delete": False, "reason": "SCIM 1.1"},
    ),
    row(
        "cannot deactivate accounts",
        [],
        [acct("carl")],
        [notice("carl", "cannot_update", "cannot deactivate accounts on this target")],
        caps={"deactivate": False},
    ),
    row(
        "cannot change group memberships: says every change",
        [want("bob", groups=("jira-devs", "jira-new"))],
        [acct("bob")],
        [
            notice(
                "bob",
                "cannot_update",
                "cannot change group memberships on this target: "
                "would add to jira-devs, add to jira-new, remove from jira-users",
            )
        ],
        caps={"manage_groups": False},
    ),
    row(
        "cannot update a field",
        [want("bob", "robert@x.io")],
        [acct("bob")],
        [notice("bob", "cannot_update", "cannot update email on this target")],
        caps={"update_fields": frozenset({"display_name"})},
    ),
    row(
        "not_manageable: every change, in plan order",
        [want("bob", "robert@x.io", "Robert", groups=("jira-devs",))],
        [acct("bob", manageable=False)],
        [
            notice(
                "bob",
                "not_manageable",
                "read-only directory: would update email, display_name, add to jira-devs, "
                "remove from jira-users",
            )
        ],
    ),
    row(
        "not_manageable: a reactivation",
        [want("bob")],
        [acct("bob", active=False, manageable=False)],
        [notice("bob", "not_manageable", "read-only directory: would reactivate")],
    ),
    row(
        "not_manageable: a leaver",
        [],
        [acct("carl", manageable=False)],
        [notice("carl", "not_manageable", "read-only directory: would remove from jira-users, deactivate")],
    ),
    row(
        "not_manageable: a leaver, delete mode",
        [],
        [acct("carl", manageable=False)],
        [notice("carl", "not_manageable", "read-only directory: would delete")],
        policy={"deprovision": "delete"},
    ),
    row(
        "missing_group: policy.create_groups off",
        [want("bob", groups=("jira-users", "jira-new"))],
        [acct("bob")],
        [
            notice(
                "jira-new",
                "missing_group",
                "group 'jira-new' does not exist on this target and policy.create_groups is off",
            )
        ],
        policy={"create_groups": False},
    ),
    row(
        "missing_group: the target cannot create groups",
        [want("bob", groups=("jira-users", "jira-new"))],
        [acct("bob")],
        [
            notice(
                "jira-new",
                "missing_group",
                "group 'jira-new' does not exist on this target and this target cannot create groups",
            )
        ],
        caps={"create_groups": False},
    ),
    row(
        "missing_group: the target cannot create groups, with its reason",
        [want("bob", groups=("jira-users", "jira-new"))],
        [acct("bob")],
        [
            notice(
                "jira-new",
                "missing_group",
                "group 'jira-new' does not exist on this target and this target cannot create groups "
                "(Confluence 7.4)",
            )
        ],
        caps={"create_groups": False, "reason": "Confluence 7.4"},
    ),
]


@pytest.mark.parametrize(("desired", "accounts", "settings", "notices"), NOTICES)
def test_notice_text(
    desired: Sequence[DesiredAccount],
    accounts: Sequence[Account],
    settings: dict[str, Any],
    notices: Sequence[Notice],
) -> None:
    assert list(run(desired, accounts, **settings).notices) == list(notices)


# --- every operation reason, word for word ------------------------------------------------------

REASONS = [
    pytest.param(
        [granted(want("amara"), ("jira-devs", "rule 2 (from: eng-*)"))],
        [],
        {},
        [
            ("create_user amara", "new in source"),
            ("add_member amara jira-devs", "rule 2 (from: eng-*)"),
            (f"add_member amara {OWN}", "owner marker"),
        ],
        id="create",
    ),
    pytest.param(
        [granted(want("bob"), ("jira-users", "default_groups"), ("jira-new", "rule 3 (from: new-*)"))],
        [acct("bob")],
        {},
        [
            ("create_group jira-new", "missing on target, needed by rule 3 (from: new-*)"),
            ("add_member bob jira-new", "rule 3 (from: new-*)"),
        ],
        id="a missing group is created for the membership that needs it",
    ),
    pytest.param(
        [want("bob", "robert@x.io", groups=())],
        [acct("bob", active=False)],
        {},
        [
            ("reactivate_user bob", "active in source (matched by username)"),
            ("update_user bob email:bob@x.io->robert@x.io", "changed in source (matched by username)"),
            ("remove_member bob jira-users", "not given by any rule"),
        ],
        id="matched by username",
    ),
    pytest.param(
        [want("robert", "bob@x.io", "Robert")],
        [acct("bob", active=False)],
        {},
        [
            ("reactivate_user bob", "active in source (matched by email)"),
            ("update_user bob display_name:Bob->Robert", "changed in source (matched by email)"),
        ],
        id="matched by email",
    ),
    pytest.param(
        [want("amara.n", "amara.n@x.io", "Amara", src="amara")],
        [acct("amara", active=False)],
        {"links": {"s-amara": "K-amara"}},
        [
            ("reactivate_user amara", "active in source (matched by id)"),
            ("update_user amara email:amara@x.io->amara.n@x.io", "changed in source (matched by id)"),
        ],
        id="matched by id (a link)",
    ),
    pytest.param(
        [want("robert", "rob@x.io", "Bob", src="bob")],
        [acct("bob", active=False, groups=("jira-users",), external_id="s-bob")],
        {"caps": SCIM},
        [
            ("reactivate_user bob", "active in source (matched by external_id)"),
            ("update_user bob email:bob@x.io->rob@x.io", "changed in source (matched by external_id)"),
        ],
        id="matched by external_id",
    ),
    pytest.param(
        [],
        [acct("carl", groups=(OWN, "jira-users", "unmanaged"))],
        {},
        [("remove_member carl jira-users", "left the source"), ("deactivate_user carl", "left the source")],
        id="a leaver",
    ),
    pytest.param(
        [],
        [acct("carl")],
        {"policy": {"deprovision": "delete"}},
        [("delete_user carl", "left the source")],
        id="a leaver, delete mode",
    ),
    pytest.param(
        [want("dee", active=False)],
        [acct("dee")],
        {},
        [
            ("remove_member dee jira-users", "inactive in source"),
            ("deactivate_user dee", "inactive in source"),
        ],
        id="inactive in source",
    ),
    pytest.param(
        [want("dee", active=False)],
        [acct("dee")],
        {"policy": {"deprovision": "delete"}},
        [("delete_user dee", "inactive in source")],
        id="inactive in source, delete mode",
    ),
    pytest.param(
        [want("amara.nowak", "amara.nowak@x.io", "Amara", src="amara")],
        [acct("amara")],
        {},
        [
            (
                "create_user amara.nowak",
                f"new in source; probable rename 'amara' -> 'amara.nowak' {LINK_HINT}",
            ),
            ("add_member amara.nowak jira-users", "default_groups"),
            (f"add_member amara.nowak {OWN}", "owner marker"),
            ("remove_member amara jira-users", "left the source"),
            (
                "deactivate_user amara",
                f"left the source; probable rename 'amara' -> 'amara.nowak' {LINK_HINT}",
            ),
        ],
        id="a probable rename: one leaver, one create, one display name",
    ),
    pytest.param(
        [want("amara.nowak", "amara.nowak@x.io", "Amara", src="amara")],
        [acct("amara")],
        {"policy": {"deprovision": "delete"}},
        [
            (
                "create_user amara.nowak",
                f"new in source; probable rename 'amara' -> 'amara.nowak' {LINK_HINT}",
            ),
            ("add_member amara.nowak jira-users", "default_groups"),
            (f"add_member amara.nowak {OWN}", "owner marker"),
            ("delete_user amara", f"left the source; probable rename 'amara' -> 'amara.nowak' {LINK_HINT}"),
        ],
        id="a probable rename, delete mode",
    ),
]


@pytest.mark.parametrize(("desired", "accounts", "settings", "reasons"), REASONS)
def test_operation_reasons(
    desired: Sequence[DesiredAccount],
    accounts: Sequence[Account],
    settings: dict[str, Any],
    reasons: list[tuple[str, str]],
) -> None:
    assert reasons_of(run(desired, accounts, **settings)) == reasons


def on(
    desired: Sequence[DesiredAccount],
    *,
    groups: Sequence[str],
    creation_groups: Sequence[str] = (),
    managed: Sequence[str] = (OWN, "jira-users", "jira-devs"),
    accounts: Sequence[Account] = (),
) -> TargetPlan:
    """Plan against a target whose groups (and the ones it adds new accounts to) are given."""
    actual = TargetDirectory(tuple(accounts), frozenset(groups), frozenset(creation_groups))
    return diff(
        "jira", "jira", desired, actual, DiffPolicy(managed_groups=frozenset(managed)), Capabilities()
    )


def test_a_group_the_target_adds_new_accounts_to_is_removed_with_its_reason() -> None:
    plan = on([want("amara")], groups=(OWN, "jira-users", "jira-devs"), creation_groups=("jira-devs",))
    removal = plan.operations[-1]
    assert (fmt(removal), removal.reason, dict(removal.expected), removal.source_id) == (
        "remove_member amara jira-devs",
        "the target adds new accounts to it by itself; not given by any rule",
        {"member": True},
        "s-amara",
    )


def test_memberships_name_a_group_as_the_target_spells_it() -> None:
    plan = on(
        [want("bob")],
        groups=("Scimsync-Managed", "JIRA-Users", "jira-devs"),
        accounts=[acct("bob", groups=())],
    )
    assert [fmt(op) for op in plan.operations] == [
        "add_member bob JIRA-Users",
        "add_member bob Scimsync-Managed",
    ]


# --- who an operation is for: target id and source id ------------------------------------------


def test_operations_carry_the_source_id_of_the_person_they_are_for() -> None:
    plan = run(
        [
            want("bob", "robert@x.io", src="b", groups=("jira-devs",)),
            want("dee", active=False, src="d"),
            want("amara.nowak", "amara.nowak@x.io", "Amara Nowak", src="amara"),
        ],
        [acct("bob", "b@x.io"), acct("carl"), acct("dee"), acct("amara")],
        policy={"match": ("username", "email")},
        links={"s-amara": "K-amara"},
    )
    assert {(fmt(op), op.account_id, op.source_id) for op in plan.operations} == {
        ("update_user bob email:b@x.io->robert@x.io", "K-bob", "s-b"),
        ("add_member bob jira-devs", "K-bob", "s-b"),
        ("remove_member bob jira-users", "K-bob", "s-b"),
        ("remove_member dee jira-users", "K-dee", "s-d"),
        ("deactivate_user dee", "K-dee", "s-d"),
        ("remove_member carl jira-users", "K-carl", None),
        ("deactivate_user carl", "K-carl", None),
        # match leaves out id: the link still says whose account it was (SPEC §5 Links)
        ("remove_member amara jira-users", "K-amara", "s-amara"),
        ("deactivate_user amara", "K-amara", "s-amara"),
        ("create_user amara.nowak", None, "s-amara"),
        ("add_member amara.nowak jira-users", None, "s-amara"),
        (f"add_member amara.nowak {OWN}", None, "s-amara"),
    }
    # same source id: the pair is marked even though the display names differ
    assert {
        op.kind.value for op in plan.operations if "probable rename 'amara' -> 'amara.nowak'" in op.reason
    } == {
        "create_user",
        "deactivate_user",
    }


# --- probable renames: only an unmistakable pair is marked --------------------------------------


RENAME_PAIRS = [
    pytest.param(
        [want("amara.nowak", "amara.nowak@x.io", "Amara", src="amara")],
        [acct("amara"), acct("amara2", display="Amara")],
        id="two leavers with the display name",
    ),
    pytest.param(
        [want("amara.nowak", "an@x.io", "Amara", src="a1"), want("amara.n", "a2@x.io", "Amara", src="a2")],
        [acct("amara")],
        id="two creates with the display name",
    ),
    pytest.param(
        [want("amara.nowak", "amara.nowak@x.io", "Amara Nowak", src="amara")],
        [acct("amara")],
        id="another display name",
    ),
    pytest.param(
        [replace(want("amara.nowak", "amara.nowak@x.io", src="amara"), display_name="")],
        [acct("amara", display="")],
        id="no display name is no name",
    ),
]


@pytest.mark.parametrize(("desired", "accounts"), RENAME_PAIRS)
def test_an_ambiguous_pair_is_not_marked_as_a_rename(
    desired: Sequence[DesiredAccount], accounts: Sequence[Account]
) -> None:
    plan = run(desired, accounts)
    kinds = {op.kind.value for op in plan.operations}
    assert {"create_user", "deactivate_user"} <= kinds
    assert [op.reason for op in plan.operations if "probable rename" in op.reason] == []


# --- links kept and dropped (SPEC §5 Links) ----------------------------------------------------


def test_a_collision_keeps_the_links_of_the_people_in_it() -> None:
    plan = run(
        [want("bob", "b1@x.io", src="bob1"), want("BOB", "b2@x.io", src="bob2"), want("amara")],
        [acct("bob"), acct("amara")],
        links={"s-bob1": "K-bob"},
    )
    assert plan.operations == ()
    assert plan.links == {"s-amara": "K-amara", "s-bob1": "K-bob"}


def test_untrusted_links_are_listed_as_unlinked_in_order() -> None:
    plan = run(
        [want("zed"), want("amara")],
        [acct("zed"), acct("amara"), acct("stranger", groups=())],
        links={"s-zed": "K-gone", "s-amara": "K-stranger", "s-kept": "K-zed"},
    )
    assert plan.unlinked == ("s-amara", "s-zed")


# --- a new account must be findable on the next run (SPEC §5) ----------------------------------


def test_match_by_email_alone_creates_a_user_whose_email_is_unique() -> None:
    plan = run([want("carl")], [acct("x1", "other@x.io", groups=())], policy=MATCH_EMAIL)
    assert [fmt(op) for op in plan.operations] == [
        "create_user carl",
        "add_member carl jira-users",
        f"add_member carl {OWN}",
    ]
    assert plan.notices == ()


def test_externalid_finds_a_new_account_on_a_scim_target_whatever_the_email() -> None:
    accounts = [acct("x1", "carl@x.io", groups=()), acct("x2", "carl@x.io", groups=())]
    plan = run([want("carl")], accounts, policy=MATCH_EMAIL, caps=SCIM)
    assert [fmt(op) for op in plan.operations] == ["create_user carl", "add_member carl jira-users"]
    assert plan.notices == ()


def test_an_externalid_two_accounts_carry_finds_neither() -> None:
    accounts = [
        acct("x1", "carl@x.io", groups=(), external_id="s-carl"),
        acct("x2", "carl@x.io", groups=(), external_id="s-carl"),
    ]
    plan = run([want("carl")], accounts, policy=MATCH_EMAIL, caps=SCIM)
    assert plan.operations == ()
    # Both carry an externalId, so both are owned; the present carl maps to their email (SPEC §5).
    assert [(n.kind, n.account) for n in plan.notices] == [
        ("unmatchable", "carl"),
        ("ambiguous", "x1"),
        ("ambiguous", "x2"),
    ]


def test_no_email_matches_no_account_whatever_the_target_makes_of_a_missing_value() -> None:
    def placeholder(value: str | None) -> str:
        # A target comparison that gives a missing value a key of its own.
        return (value or "-").lower()

    plan = run([no_email(want("zoe"))], [acct("hidden", None, groups=())], caps={"name_key": placeholder})
    assert plan.operations == ()
    assert [(n.kind, n.account) for n in plan.notices] == [("incomplete", "zoe")]


# --- missing groups: the memberships that need them wait, the others go ahead --------------------


@pytest.mark.parametrize(
    "settings",
    [{"policy": {"create_groups": False}}, {"caps": {"create_groups": False}}],
    ids=["policy off", "target cannot"],
)
def test_only_the_memberships_of_a_missing_group_are_dropped(settings: dict[str, Any]) -> None:
    plan = run(
        [want("bob", groups=("jira-users", "jira-new"))], [acct("bob", groups=("jira-devs",))], **settings
    )
    assert [fmt(op) for op in plan.operations] == [
        "add_member bob jira-users",
        f"add_member bob {OWN}",
        "remove_member bob jira-devs",
    ]
    assert [(n.kind, n.account) for n in plan.notices] == [("missing_group", "jira-new")]


# --- deprovisioning, delete mode -------------------------------------------------------------


def test_delete_mode_deletes_and_nothing_else() -> None:
    plan = run([], [acct("carl", groups=(OWN, "jira-users", "jira-devs"))], policy={"deprovision": "delete"})
    assert expected_of(plan) == {"delete_user carl": {"exists": True}}
    assert (plan.leavers, plan.notices) == (1, ())


def test_delete_mode_on_a_target_that_cannot_delete_deactivates_instead() -> None:
    plan = run(
        [],
        [acct("carl", groups=(OWN, "jira-users", "jira-devs"))],
        policy={"deprovision": "delete"},
        caps={"delete": False},
    )
    assert expected_of(plan) == {
        "remove_member carl jira-devs": {"member": True},
        "remove_member carl jira-users": {"member": True},
        "deactivate_user carl": {"active": True},
    }
    assert plan.leavers == 1
    assert [(n.kind, n.account) for n in plan.notices] == [("cannot_update", "carl")]


def test_an_email_only_match_never_deprovisions_an_account_a_present_person_maps_to() -> None:
    # jsmith1 left and his record matches the owned account john by email only; john2 is present
    # and maps to that email (SPEC §5: never deprovisioned, whatever the match keys say).
    plan = run(
        [want("jsmith1", "john@x.io", active=False), want("john2", "john@x.io")],
        [acct("john"), acct("john2")],
    )
    assert [fmt(op) for op in plan.operations] == ["update_user john2 email:john2@x.io->john@x.io"]
    assert list(plan.notices) == [
        notice(
            "john",
            "ambiguous",
            "not deprovisioned (inactive in source): an active source user maps to its email "
            f"'john@x.io'; {CHECK_KEYS}",
        )
    ]


# --- matching order and collisions (SPEC §5-6) ---------------------------------------------------


def test_an_inactive_record_that_names_the_account_by_an_earlier_key_keeps_it() -> None:
    # SCIM: externalId says the account is the leaver's; the new hire only shares its username.
    plan = run(
        [want("robert", src="old", active=False), want("bob", "bob2@x.io", src="new")],
        [acct("bob", groups=("jira-users",), external_id="s-old")],
        caps=SCIM,
    )
    assert plan.operations == ()
    assert [(n.kind, n.account) for n in plan.notices] == [("ambiguous", "bob"), ("username_taken", "bob")]
    assert plan.links == {"s-old": "K-bob"}


def test_a_collision_stays_blocked_when_another_collision_is_found() -> None:
    plan = run(
        [
            want("bob", "b1@x.io", src="bob1"),
            want("BOB", "b2@x.io", src="bob2"),
            want("carl", "c1@x.io"),
            want("charles", "carl@x.io"),
        ],
        [acct("carl")],
    )
    assert plan.operations == ()
    assert [(c.field, c.value) for c in plan.collisions] == [("account", "carl"), ("username", "bob")]


def test_a_collision_lists_its_source_users_case_insensitively() -> None:
    plan = run([want("bob", "b1@x.io", src="Zoe"), want("BOB", "b2@x.io", src="bob")], [])
    assert list(plan.collisions) == [Collision("jira", "username", "bob", ("bob", "Zoe"))]


def test_notices_are_sorted_by_account_then_kind() -> None:
    plan = run(
        [want("robert", "Bob@x.io", "Bob"), want("amara", groups=("jira-new",)), want("zed")],
        [acct("Bob"), acct("carl"), acct("Zed")],
        policy={"create_groups": False, "protected_users": ("zed",)},
        caps={"deactivate": False},
    )
    assert [(n.account, n.kind) for n in plan.notices] == [
        ("Bob", "username_differs"),
        ("carl", "cannot_update"),
        ("jira-new", "missing_group"),
        ("Zed", "protected"),
    ]


def test_policy_errors_name_every_problem() -> None:
    with pytest.raises(ValueError) as error:
        DiffPolicy(match=("uid",), sync_fields=("groups",), deprovision="suspend")
    assert str(error.value) == (
        "unknown match key 'uid'; unknown sync field 'groups'; unknown deprovision mode 'suspend'"
    )


def test_swapped_links_are_collisions_whoever_comes_first() -> None:
    # Each link hands one person's account to the other, whose username names it (SPEC §5 Links).
    plan = run(
        [want("carl"), want("amara"), want("bruno")],
        [acct("carl"), acct("amara"), acct("bruno")],
        links={"s-amara": "K-bruno", "s-bruno": "K-amara"},
    )
    assert plan.operations == ()
    assert list(plan.collisions) == [
        Collision("jira", "account", "amara", ("amara", "bruno")),
        Collision("jira", "account", "bruno", ("amara", "bruno")),
    ]
