"""diff(): the rules that decide who is touched, each against a hand-written expectation.

Issue "Trust" items 1, 2, 7, 9, 10 and links (SPEC §4-§6). The expected operations are
written out by hand from the SPEC sentence, never computed with the engine's helpers.
"""

from __future__ import annotations

import dataclasses

import pytest
from test_diff import OWN, acct, fmt, run, want

# --- SPEC §4: the target's comparison, never a looser one -----------------------------------

# (source username, existing stranger's username): str.lower() tells them apart, casefold() does not.
DIFFERENT_FOR_JIRA = [
    pytest.param("strasse", "straße", id="sharp s"),
    pytest.param("gross", "GROß", id="sharp s upper"),
    pytest.param("fiona", "ﬁona", id="ligature fi"),
    pytest.param("σοφια", "ΣΟΦΙΑ".casefold().replace("σ", "ς", 1), id="final sigma"),  # noqa: RUF001
    pytest.param("ｂｏｂ", "bob", id="full-width letters"),  # noqa: RUF001
    pytest.param("jose\u0301", "josé", id="combining acute vs precomposed"),
    pytest.param("i̇lker", "ilker", id="dotted I lowered"),
    pytest.param("ılker", "ilker", id="dotless i"),  # noqa: RUF001
]


@pytest.mark.parametrize(("source", "stranger"), DIFFERENT_FOR_JIRA)
def test_a_name_that_only_case_folding_equates_is_another_person(source: str, stranger: str) -> None:
    assert source.lower() != stranger.lower()  # the premise: Jira sees two users
    plan = run([want(source, "new@x.io")], [acct(stranger, "old@x.io", groups=())])
    assert [fmt(op) for op in plan.operations] == [
        f"create_user {source}",
        f"add_member {source} jira-users",
        f"add_member {source} {OWN}",
    ]
    assert plan.owned_count == 0  # the stranger was never adopted


SAME_FOR_JIRA = [
    pytest.param("bob", "BOB", id="ascii"),
    pytest.param("ÉMILE", "émile", id="accented upper"),
    pytest.param("ΣΟΦΙΑ", "σοφια", id="greek"),
]


@pytest.mark.parametrize(("source", "existing"), SAME_FOR_JIRA)
def test_a_name_that_lower_casing_equates_is_the_same_account(source: str, existing: str) -> None:
    assert source.lower() == existing.lower()
    plan = run([want(source, f"{existing}@x.io", existing.capitalize())], [acct(existing)])
    assert plan.operations == ()
    assert plan.owned_count == 1


def test_the_engine_uses_the_comparison_the_target_declares() -> None:
    def exact(value: str | None) -> str:
        return value or ""

    # A target that compares names exactly: "BOB" is not "bob" there, so BOB is a new account.
    desired, accounts = [want("BOB", "BOB@x.io")], [acct("bob", "bob@x.io", groups=())]
    exactly = run(desired, accounts, caps={"name_key": exact})
    assert next(fmt(op) for op in exactly.operations) == "create_user BOB"
    assert exactly.owned_count == 0
    lowered = run(desired, accounts)
    assert [fmt(op) for op in lowered.operations] == ["add_member bob jira-users", f"add_member bob {OWN}"]


# --- SPEC §5: a present person is never deprovisioned -----------------------------------------


def test_match_by_email_ambiguous_never_deactivates_the_owned_account() -> None:
    # match [email]; a second account took amara's email: amara's own account is not a leaver.
    plan = run(
        [want("amara")],
        [acct("amara"), acct("intruder", "amara@x.io", groups=())],
        policy={"match": ("email",)},
    )
    assert plan.operations == ()
    kinds = sorted(f"{n.kind} {n.account}" for n in plan.notices)
    assert "ambiguous amara" in kinds


def test_match_by_email_after_an_email_edit_never_deactivates() -> None:
    plan = run([want("amara")], [acct("amara", "edited@elsewhere.io")], policy={"match": ("email",)})
    assert [fmt(op) for op in plan.operations] == []
    assert any(n.kind == "ambiguous" and n.account == "amara" for n in plan.notices)


def test_an_owned_account_holding_an_active_users_email_is_not_a_leaver() -> None:
    plan = run([want("amara")], [acct("amara"), acct("old-amara", "amara@x.io")])
    assert [fmt(op) for op in plan.operations] == []
    assert [(n.kind, n.account) for n in plan.notices] == [("ambiguous", "old-amara")]


# --- SPEC §6: only active users collide; a leaver is deprovisioned -----------------------------


def test_a_leaver_and_a_new_hire_sharing_an_email_do_not_collide() -> None:
    plan = run(
        [want("amara", active=False), want("amara.new", "amara@x.io")],
        [acct("amara")],
    )
    assert plan.collisions == ()
    assert [fmt(op) for op in plan.operations] == [
        "create_user amara.new",
        "add_member amara.new jira-users",
        f"add_member amara.new {OWN}",
        "remove_member amara jira-users",
        "deactivate_user amara",
    ]


def test_two_active_users_on_one_account_still_collide() -> None:
    plan = run([want("bob", "b1@x.io"), want("robert", "bob@x.io")], [acct("bob")])
    assert plan.operations == ()
    assert [c.field for c in plan.collisions] == ["account"]


def test_an_active_user_wins_an_account_over_an_inactive_one_matched_alike() -> None:
    plan = run([want("bob", src="old", active=False), want("BOB", src="new")], [acct("bob", active=False)])
    assert [fmt(op) for op in plan.operations] == ["reactivate_user bob"]


# --- SPEC §6: an incomplete record is a notice on that person --------------------------------


def test_an_active_user_without_email_is_not_created_and_others_are() -> None:
    nomail = want("zoe")
    nomail = dataclasses.replace(nomail, email="")
    plan = run([nomail, want("amara")], [])
    assert [fmt(op) for op in plan.operations] == [
        "create_user amara",
        "add_member amara jira-users",
        f"add_member amara {OWN}",
    ]
    assert [(n.kind, n.account) for n in plan.notices] == [("incomplete", "zoe")]


def test_a_matched_user_without_email_keeps_the_accounts_email() -> None:
    nomail = want("zoe")
    nomail = dataclasses.replace(nomail, email="")
    plan = run([nomail], [acct("zoe")])
    assert plan.operations == ()


# --- deprovision none: leavers counted for the guard --------------------------------------------


def test_leavers_are_counted_in_every_deprovision_mode() -> None:
    accounts = [acct("a"), acct("b"), acct("c", active=False)]
    for mode, ops in (
        ("none", ["remove_member a jira-users", "remove_member b jira-users", "remove_member c jira-users"]),
        (
            "deactivate",
            [
                "remove_member a jira-users",
                "remove_member b jira-users",
                "remove_member c jira-users",
                "deactivate_user a",
                "deactivate_user b",
            ],
        ),
    ):
        plan = run([want("keep")], accounts, policy={"deprovision": mode})
        assert [fmt(op) for op in plan.operations if op.account != "keep"] == ops
        assert plan.leavers == (3 if mode == "none" else 2)
        assert (plan.owned_count, plan.active_owned_count) == (3, 2)


# --- SPEC §5 Links ---------------------------------------------------------------------------


def test_a_rename_with_the_same_id_is_one_update_of_the_linked_account() -> None:
    renamed = want("amara.nowak", "amara.nowak@x.io", "Amara", src="amara")
    plan = run(
        [renamed],
        [acct("amara")],
        policy={"sync_fields": ("username", "email", "display_name")},
        caps={"update_fields": frozenset({"username", "email", "display_name"})},
        links={"s-amara": "K-amara"},
    )
    assert [fmt(op) for op in plan.operations] == [
        "update_user amara username:amara->amara.nowak email:amara@x.io->amara.nowak@x.io"
    ]
    assert plan.operations[0].account_id == "K-amara"
    assert plan.links == {"s-amara": "K-amara"}


def test_without_the_link_a_rename_is_marked_as_a_probable_rename() -> None:
    renamed = want("amara.nowak", "amara.nowak@x.io", "Amara", src="amara")
    plan = run([renamed, want("bob")], [acct("amara"), acct("bob")])
    kinds = [fmt(op) for op in plan.operations]
    assert "create_user amara.nowak" in kinds and "deactivate_user amara" in kinds
    marked = [op for op in plan.operations if "probable rename" in op.reason]
    assert sorted(op.kind.value for op in marked) == ["create_user", "deactivate_user"]


def test_a_link_to_an_account_without_the_owner_marker_is_not_trusted() -> None:
    # The state file says s-amara is K-stranger, but the stranger is not ours.
    plan = run([want("amara")], [acct("stranger", groups=())], links={"s-amara": "K-stranger"})
    assert all(op.account != "stranger" for op in plan.operations)
    assert plan.links == {}


def test_a_link_to_a_gone_account_is_dropped_and_matching_falls_back() -> None:
    plan = run([want("amara")], [acct("amara")], links={"s-amara": "K-gone"})
    assert plan.operations == ()
    assert plan.links == {"s-amara": "K-amara"}


def test_username_not_synced_is_said() -> None:
    plan = run([want("amara.nowak", "amara@x.io", "Amara", src="amara")], [acct("amara")])
    assert plan.operations == ()
    assert [(n.kind, n.account) for n in plan.notices] == [("username_differs", "amara")]


def test_a_link_that_match_leaves_out_still_marks_the_rename() -> None:
    renamed = want("amara.nowak", "amara.nowak@x.io", "Amara Nowak", src="amara")
    plan = run(
        [renamed, want("bob")],
        [acct("amara"), acct("bob")],
        policy={"match": ("username", "email")},
        links={"s-amara": "K-amara"},
    )
    marked = {
        op.kind.value for op in plan.operations if "probable rename 'amara' -> 'amara.nowak'" in op.reason
    }
    assert marked == {"create_user", "deactivate_user"}


def test_a_leavers_record_matching_only_by_email_never_adopts_a_stranger() -> None:
    plan = run(
        [want("jsmith1", "john@x.io", active=False)], [acct("john", "john@x.io", groups=("jira-users",))]
    )
    assert plan.operations == ()
    assert [(n.kind, n.account) for n in plan.notices] == [("ambiguous", "john")]


def test_a_leavers_record_matching_by_email_its_own_owned_account_is_deprovisioned() -> None:
    plan = run([want("jsmith1", "john@x.io", active=False)], [acct("john", "john@x.io")])
    assert [fmt(op) for op in plan.operations] == ["remove_member john jira-users", "deactivate_user john"]


def test_an_email_two_records_share_stays_with_the_record_its_username_names() -> None:
    # match [email, username]: olga left, her mailbox went to oleg; both match olga's account by email.
    olga, oleg = want("olga", active=False), want("oleg", "olga@x.io")
    plan = run([olga, oleg], [acct("olga")], policy={"match": ("email", "username")})
    assert [fmt(op) for op in plan.operations] == [
        "create_user oleg",
        "add_member oleg jira-users",
        f"add_member oleg {OWN}",
        "remove_member olga jira-users",
        "deactivate_user olga",
    ]


def test_a_link_to_an_account_another_active_users_username_names_is_a_collision() -> None:
    # Swapped links: each would hand one person's account to the other; neither is changed.
    plan = run(
        [want("amara"), want("bruno")],
        [acct("amara"), acct("bruno")],
        links={"s-amara": "K-bruno", "s-bruno": "K-amara"},
    )
    assert plan.operations == ()
    assert sorted((c.field, c.value) for c in plan.collisions) == [("account", "amara"), ("account", "bruno")]


def test_a_leavers_username_never_costs_a_renamed_person_their_link() -> None:
    renamed = want("svc-bot", "svc@x.io", "Admin", src="s2")
    leaver = want("admin", "old-admin@x.io", src="s3", active=False)
    plan = run([renamed, leaver], [acct("admin", "admin@x.io", "Admin")], links={"s-s2": "K-admin"})
    assert [fmt(op) for op in plan.operations] == ["update_user admin email:admin@x.io->svc@x.io"]


def test_a_link_of_someone_out_of_scope_is_neither_used_nor_dropped() -> None:
    plan = run([want("bruno")], [acct("bruno"), acct("amara", active=False)], links={"s-amara": "K-amara"})
    assert plan.unlinked == ()
    assert "s-amara" not in plan.links  # not confirmed this run; the state file keeps it


def test_a_group_the_target_adds_new_accounts_to_is_corrected_in_the_same_plan() -> None:
    from scimsync.engine.diff import DiffPolicy, diff
    from scimsync.models import Capabilities, TargetDirectory

    managed = frozenset({OWN, "jira-users", "jira-devs"})
    actual = TargetDirectory(
        (), frozenset({OWN, "jira-users", "jira-devs"}), frozenset({"JIRA-DEVS", "other"})
    )
    plan = diff("jira", "jira", [want("amara")], actual, DiffPolicy(managed_groups=managed), Capabilities())
    assert [fmt(op) for op in plan.operations] == [
        "create_user amara",
        "add_member amara jira-users",
        f"add_member amara {OWN}",
        "remove_member amara jira-devs",  # managed, not given: Jira's own addition is undone
    ]  # "other" is not managed: never touched
    wanted = diff(
        "jira",
        "jira",
        [want("amara", groups=("jira-devs",))],
        actual,
        DiffPolicy(managed_groups=managed),
        Capabilities(),
    )
    assert "remove_member amara jira-devs" not in [fmt(op) for op in wanted.operations]


def test_the_owner_marker_is_compared_as_the_target_compares_names() -> None:
    def exact(value: str | None) -> str:
        return value or ""

    # Under an exact comparison "SCIMSYNC-MANAGED" is another group: the account is not ours.
    stranger = acct("gone", groups=(OWN.upper(), "jira-users"))
    assert run([want("keep")], [stranger], caps={"name_key": exact}).owned_count == 0
    assert run([want("keep")], [stranger]).owned_count == 1
