"""Operation effects: re-checking a saved plan's operations (SPEC §6) and applying them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from scimsync.engine.effects import Check, apply_effect, apply_to_directory, check, made_by
from scimsync.engine.plan import FieldChange, Operation, OpKind
from scimsync.models import Account, TargetDirectory

BOB = Account("K1", "bob", "bob@x.io", "Bob", groups=frozenset({"jira-users"}))


def op(kind: OpKind, *changes: FieldChange, **kw: Any) -> Operation:
    return Operation(kind, "jira", kw.pop("account", "bob"), "test", changes=changes, **kw)


def bob(**changes: Any) -> Account:
    return replace(BOB, **changes)


CREATE = op(
    OpKind.CREATE_USER,
    FieldChange("username", None, "bob"),
    FieldChange("email", None, "bob@x.io"),
    FieldChange("display_name", None, "Bob"),
    expected={"exists": False},
    source_id="s1",
)
EMAIL = op(
    OpKind.UPDATE_USER,
    FieldChange("email", "old@x.io", "bob@x.io"),
    account_id="K1",
    expected={"email": "old@x.io"},
)
TWO = op(
    OpKind.UPDATE_USER,
    FieldChange("email", "old@x.io", "bob@x.io"),
    FieldChange("display_name", "B", "Bob"),
    account_id="K1",
    expected={"email": "old@x.io", "display_name": "B"},
)
RENAME = op(OpKind.UPDATE_USER, FieldChange("username", "robert", "bob"), account_id="K1")
REACTIVATE = op(OpKind.REACTIVATE_USER, account_id="K1", expected={"active": False})
DEACTIVATE = op(OpKind.DEACTIVATE_USER, account_id="K1", expected={"active": True})
DELETE = op(OpKind.DELETE_USER, account_id="K1", expected={"exists": True})
ADD = op(OpKind.ADD_MEMBER, account_id="K1", group="jira-devs", expected={"member": False})
REMOVE = op(OpKind.REMOVE_MEMBER, account_id="K1", group="jira-users", expected={"member": True})
ADD_NEW = op(OpKind.ADD_MEMBER, group="jira-devs", expected={"member": False})  # to an account being created

CHECKS = [
    pytest.param(CREATE, None, "apply", id="create: no account yet"),
    pytest.param(CREATE, bob(), "done", id="create: already there"),
    pytest.param(CREATE, bob(email="BOB@X.IO"), "done", id="create: email in other case"),
    pytest.param(CREATE, bob(email=None), "done", id="create: target hides emails"),
    pytest.param(CREATE, bob(email="else@x.io"), "stale", id="create: someone else has the name"),
    pytest.param(CREATE, bob(display_name="Robert"), "stale", id="create: other display name"),
    pytest.param(EMAIL, bob(email="old@x.io"), "apply", id="update: as planned"),
    pytest.param(EMAIL, bob(email="OLD@x.io"), "apply", id="update: old value in other case"),
    pytest.param(EMAIL, bob(), "done", id="update: already changed"),
    pytest.param(EMAIL, bob(email="third@x.io"), "stale", id="update: changed by someone else"),
    pytest.param(EMAIL, None, "stale", id="update: account gone"),
    pytest.param(EMAIL, bob(id="K2", email="old@x.io"), "stale", id="update: another account now"),
    pytest.param(TWO, bob(email="old@x.io"), "apply", id="update: one field done, one to do"),
    pytest.param(TWO, bob(display_name="B", email="old@x.io"), "apply", id="update: both to do"),
    pytest.param(TWO, bob(), "done", id="update: both done"),
    pytest.param(TWO, bob(display_name="b"), "stale", id="update: display name compares exactly"),
    pytest.param(RENAME, bob(username="Robert"), "apply", id="rename: as planned"),
    pytest.param(RENAME, bob(username="BOB"), "done", id="rename: done"),
    pytest.param(REACTIVATE, bob(active=False), "apply", id="reactivate: inactive"),
    pytest.param(REACTIVATE, bob(), "done", id="reactivate: already active"),
    pytest.param(REACTIVATE, None, "stale", id="reactivate: gone"),
    pytest.param(DEACTIVATE, bob(), "apply", id="deactivate: active"),
    pytest.param(DEACTIVATE, bob(active=False), "done", id="deactivate: already inactive"),
    pytest.param(DEACTIVATE, None, "stale", id="deactivate: gone"),
    pytest.param(DEACTIVATE, bob(id="K9"), "stale", id="deactivate: another account now"),
    pytest.param(DELETE, bob(), "apply", id="delete: exists"),
    pytest.param(DELETE, bob(active=False), "apply", id="delete: exists, inactive"),
    pytest.param(DELETE, None, "done", id="delete: already gone"),
    pytest.param(DELETE, bob(id="K9"), "stale", id="delete: another account with the name"),
    pytest.param(ADD, bob(), "apply", id="add: not a member"),
    pytest.param(ADD, bob(groups=frozenset({"JIRA-DEVS"})), "done", id="add: already a member"),
    pytest.param(ADD, None, "stale", id="add: gone"),
    pytest.param(ADD_NEW, bob(), "apply", id="add: account created by the plan"),
    pytest.param(REMOVE, bob(), "apply", id="remove: member"),
    pytest.param(REMOVE, bob(groups=frozenset()), "done", id="remove: not a member"),
    pytest.param(REMOVE, None, "stale", id="remove: gone"),
]


@pytest.mark.parametrize(("operation", "fresh", "expected"), CHECKS)
def test_check(operation: Operation, fresh: Account | None, expected: Check) -> None:
    assert check(operation, fresh) == expected


GROUP = Operation(
    OpKind.CREATE_GROUP, "jira", "jira-devs", "test", group="jira-devs", expected={"exists": False}
)


@pytest.mark.parametrize(
    ("exists", "expected"), [(False, "apply"), (True, "done")], ids=["missing", "exists"]
)
def test_check_create_group(exists: bool, expected: Check) -> None:
    assert check(GROUP, None, group_exists=exists) == expected


def test_check_create_group_needs_to_know_whether_it_exists() -> None:
    with pytest.raises(ValueError, match="group_exists"):
        check(GROUP, None)


def test_check_uses_the_saved_expected_state() -> None:
    # A plan read back from JSON carries its expectations in ``expected``.
    odd = op(OpKind.DEACTIVATE_USER, account_id="K1", expected={"active": "?"})
    assert check(odd, bob()) == "stale"


EFFECTS = [
    pytest.param(EMAIL, bob(email="old@x.io"), bob(), id="update"),
    pytest.param(RENAME, bob(username="robert"), bob(), id="rename"),
    pytest.param(REACTIVATE, bob(active=False), bob(), id="reactivate"),
    pytest.param(DEACTIVATE, bob(), bob(active=False), id="deactivate"),
    pytest.param(DELETE, bob(), None, id="delete"),
    pytest.param(ADD, bob(), bob(groups=frozenset({"jira-users", "jira-devs"})), id="add"),
    pytest.param(
        ADD, bob(groups=frozenset({"JIRA-DEVS"})), bob(groups=frozenset({"JIRA-DEVS"})), id="add again"
    ),
    pytest.param(
        REMOVE, bob(groups=frozenset({"JIRA-Users", "x"})), bob(groups=frozenset({"x"})), id="remove"
    ),
    pytest.param(GROUP, bob(), bob(), id="create group"),
    pytest.param(
        CREATE,
        None,
        Account("new:bob", "bob", "bob@x.io", "Bob", external_id="s1"),
        id="create",
    ),
]


@pytest.mark.parametrize(("operation", "before", "after"), EFFECTS)
def test_apply_effect(operation: Operation, before: Account | None, after: Account | None) -> None:
    assert apply_effect(operation, before) == after


@pytest.mark.parametrize("operation", [EMAIL, DEACTIVATE, ADD], ids=["update", "deactivate", "add"])
def test_apply_effect_needs_an_account(operation: Operation) -> None:
    with pytest.raises(ValueError, match="no such account"):
        apply_effect(operation, None)


def test_every_effect_checks_as_done_afterwards() -> None:
    for operation, before in [
        (EMAIL, bob(email="old@x.io")),
        (DEACTIVATE, bob()),
        (ADD, bob()),
        (REMOVE, bob()),
    ]:
        assert check(operation, before) == "apply"
        assert check(operation, apply_effect(operation, before)) == "done"


def test_apply_to_directory_folds_the_operations() -> None:
    carl = Account("K2", "carl", "carl@x.io", "Carl", groups=frozenset({"jira-users"}))
    directory = TargetDirectory(accounts=(bob(username="robert"), carl), groups=frozenset({"jira-users"}))
    ops = [GROUP, replace(CREATE, account="amy", changes=()), RENAME]
    ops += [
        op(OpKind.ADD_MEMBER, account="amy", group="jira-devs"),
        op(OpKind.DEACTIVATE_USER, account="carl", account_id="K2"),
        op(OpKind.REMOVE_MEMBER, account="carl", account_id="K2", group="jira-users"),
    ]
    after = apply_to_directory(directory, ops)
    assert after.groups == {"jira-users", "jira-devs"}
    assert after.accounts == (
        bob(),
        replace(carl, active=False, groups=frozenset()),
        Account("new:amy", "amy", "", "", groups=frozenset({"jira-devs"}), external_id="s1"),
    )
    gone = apply_to_directory(after, [op(OpKind.DELETE_USER, account="carl", account_id="K2")])
    assert [a.username for a in gone.accounts] == ["bob", "amy"]


# --- ownership re-checked before a saved plan touches an account (SPEC §6) -------------------

OWNED = replace(BOB, groups=frozenset({"jira-users", "Scimsync-Managed"}))


def ownership(*ops: Operation, marker: str = "group", protected: tuple[str, ...] = ("admin*",)) -> Any:
    from scimsync.engine.effects import Ownership
    from scimsync.engine.plan import TargetPlan

    plan = TargetPlan("jira", "jira", operations=ops)
    return Ownership.of(plan, owner_group="scimsync-managed", owner_marker=marker, protected=protected)


DEACTIVATE = op(OpKind.DEACTIVATE_USER, account_id="K1", expected={"active": True})


@pytest.mark.parametrize(
    ("fresh", "allowed"),
    [
        (OWNED, True),
        (BOB, False),  # the owner marker was removed since the plan was made
        (replace(OWNED, username="admin2"), False),  # renamed to a protected name
        (replace(OWNED, username="ADMIN"), False),  # protected globs ignore case
        (None, True),  # gone: check() decides (a deletion is done, the rest stale)
    ],
    ids=["owned", "marker gone", "renamed protected", "protected upper", "gone"],
)
def test_ownership_is_rechecked(fresh: Account | None, allowed: bool) -> None:
    assert (ownership(DEACTIVATE).problem(DEACTIVATE, fresh) is None) is allowed


def test_a_protected_name_in_the_plan_itself_is_refused() -> None:
    edited = op(OpKind.DEACTIVATE_USER, account="admin", account_id="K9", expected={"active": True})
    fresh = Account("K9", "admin", "admin@x.io", "Admin", groups=frozenset({"scimsync-managed"}))
    problem = ownership(edited).problem(edited, fresh)
    assert problem is not None and "protected" in problem


def test_an_account_the_plan_adopts_is_ours_before_the_marker_is_added() -> None:
    expected = {"member": False, "matched_by": "email", "match_value": "BOB@x.io"}
    adopt = op(OpKind.ADD_MEMBER, account_id="K1", group="SCIMSYNC-MANAGED", expected=expected)
    rule = ownership(EMAIL, adopt)
    assert rule.problem(EMAIL, BOB) is None
    other = op(OpKind.ADD_MEMBER, account_id="K1", group="jira-users", expected={"member": False})
    assert ownership(EMAIL, other).problem(EMAIL, BOB) is not None


@pytest.mark.parametrize(
    ("how", "value", "fresh", "allowed"),
    [
        ("email", "bob@x.io", BOB, True),
        ("email", "bob@x.io", replace(BOB, email="sam@elsewhere.io"), False),  # email changed since
        ("username", "bob", BOB, True),
        ("username", "bob", replace(BOB, username="sam"), False),  # renamed since
        ("id", "K1", BOB, False),  # a link needs the marker: never an adoption
    ],
)
def test_an_adoption_holds_only_while_the_match_does(
    how: str, value: str, fresh: Account, allowed: bool
) -> None:
    expected = {"member": False, "matched_by": how, "match_value": value}
    adopt = op(OpKind.ADD_MEMBER, account_id="K1", group="scimsync-managed", expected=expected)
    assert (ownership(EMAIL, adopt).problem(EMAIL, fresh) is None) is allowed


def test_scim_targets_own_by_external_id() -> None:
    rule = ownership(DEACTIVATE, marker="external_id")
    assert rule.problem(DEACTIVATE, replace(BOB, external_id="s1")) is None
    assert rule.problem(DEACTIVATE, OWNED) is not None  # a group is no marker there


def test_creates_are_not_ownership_checked() -> None:
    assert ownership(CREATE).problem(CREATE, BOB) is None


def test_a_scim_adoption_is_the_external_id_update_and_holds_only_while_the_match_does() -> None:
    expected = {"external_id": None, "matched_by": "username", "match_value": "bob"}
    adopt = op(OpKind.UPDATE_USER, FieldChange("external_id", None, "s1"), account_id="K1", expected=expected)
    rule = ownership(DEACTIVATE, adopt, marker="external_id")
    assert rule.problem(DEACTIVATE, BOB) is None  # not marked yet, but this plan adopts it
    assert rule.problem(DEACTIVATE, replace(BOB, username="sam")) is not None  # renamed since
    # On a SCIM target an owner-group addition adopts nothing, and a group target ignores externalIds.
    by_group = op(OpKind.ADD_MEMBER, account_id="K1", group="scimsync-managed", expected=expected)
    assert ownership(DEACTIVATE, by_group, marker="external_id").problem(DEACTIVATE, BOB) is not None
    assert ownership(DEACTIVATE, adopt).problem(DEACTIVATE, BOB) is not None
    # A field update without the externalId adopts nothing.
    plain = ownership(EMAIL, marker="external_id").problem(EMAIL, BOB)
    assert plain == "'bob' no longer carries the owner marker, so scimsync does not own it"


@pytest.mark.parametrize(
    ("now", "verdict"),
    [(None, "apply"), ("s1", "done"), ("S1", "stale"), ("okta-00u1", "stale")],
    ids=["not set yet", "set", "other case: another id (case-sensitive, ref §3.3)", "someone else's"],
)
def test_an_external_id_is_compared_exactly(now: str | None, verdict: Check) -> None:
    adopt = op(
        OpKind.UPDATE_USER,
        FieldChange("external_id", None, "s1"),
        account_id="K1",
        expected={"external_id": None},
    )
    assert check(adopt, replace(BOB, external_id=now)) == verdict


@pytest.mark.parametrize("kind", [OpKind.DEACTIVATE_USER, OpKind.DELETE_USER, OpKind.REMOVE_MEMBER])
def test_an_account_renamed_since_the_plan_is_not_taken_away_from(kind: OpKind) -> None:
    # A saved plan's leaver renamed since, say to a present person's name: only a fresh plan
    # can tell whether it is still a leaver's account (SPEC §5).
    leave = op(kind, account_id="K1", group="jira-users" if kind is OpKind.REMOVE_MEMBER else None)
    rule = ownership(leave)
    assert rule.problem(leave, OWNED) is None
    assert rule.problem(leave, replace(OWNED, username="BOB")) is None  # the same name, in another case
    problem = rule.problem(leave, replace(OWNED, username="bruna"))
    assert problem == "'bob' was renamed to 'bruna' since the plan was made"


def test_a_rename_in_the_plan_itself_is_no_reason_to_stop() -> None:
    rename = op(OpKind.UPDATE_USER, FieldChange("username", "bob", "robert"), account_id="K1")
    leave = op(OpKind.REMOVE_MEMBER, account_id="K1", group="jira-users")
    rule = ownership(rename, leave)
    assert rule.problem(leave, replace(OWNED, username="robert")) is None
    assert rule.problem(leave, replace(OWNED, username="rob")) is not None
    # Only the operations that take something away are stopped by a rename.
    add = op(OpKind.ADD_MEMBER, account_id="K1", group="jira-devs")
    assert ownership(add).problem(add, replace(OWNED, username="bruna")) is None


# --- made_by: may an account found after a create of unknown outcome be the one it made? ------

_CREATE = Operation(
    OpKind.CREATE_USER,
    "t",
    "amara",
    "new in source",
    source_id="src-1",
    changes=(
        FieldChange("username", None, "amara"),
        FieldChange("email", None, "amara@acme.test"),
        FieldChange("display_name", None, "Amara K"),
    ),
)


@pytest.mark.parametrize(
    ("marker", "email", "external_id", "expected"),
    [
        ("external_id", "amara@acme.test", "src-1", True),  # the externalId the create sent
        ("external_id", "amara@acme.test", None, False),  # a SCIM account without ours: a stranger's
        ("external_id", "amara@acme.test", "src-2", False),
        ("external_id", None, "src-1", True),  # the externalId alone proves it on SCIM targets
        ("group", "amara@acme.test", None, True),  # Data Center: every field visible
        ("group", "amara@acme.test", "src-1", True),
        ("group", "amara@acme.test", "hr-9", False),  # another system's account
        ("group", None, None, False),  # the email is not shown: cannot tell a stranger apart
    ],
)
def test_made_by(marker: str, email: str | None, external_id: str | None, expected: bool) -> None:
    fresh = Account("x1", "amara", email, "Amara K", external_id=external_id)
    assert made_by(_CREATE, fresh, marker) is expected


def test_made_by_ignores_a_field_the_create_leaves_empty() -> None:
    op = replace(_CREATE, changes=(FieldChange("username", None, "amara"), FieldChange("email", None, "")))
    assert made_by(op, Account("x1", "amara", None, "Amara K"), "group") is True
