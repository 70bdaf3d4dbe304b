"""End to end over loopback sockets: what scimsync must never do to accounts it does not own.

Each test is one way a plan could touch the wrong account, deprovision a present person,
slip past a safety guard, or report success it did not have. The CLI runs against the Jira
DC simulator as in test_e2e_jira.py; config variants and sim edits are in e2e_trust_support.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import STAFF, person
from e2e_trust_support import (
    TrustWorld,
    assert_clean_error,
    error_lines,
    key_of,
    notices,
    operations,
    ops_on,
    read_json,
    remove_member,
    snapshot,
    write_json,
)

NO_CHANGES = "No changes: every target matches the source."


def without(*usernames: str) -> list[dict[str, Any]]:
    return [p for p in STAFF if p["username"] not in usernames]


def saved_plan(world: TrustWorld) -> Path:
    plan_file = world.folder / "plan.json"
    result = world.run("plan", "--out", str(plan_file))
    assert result.exit_code == 0, result.output
    return plan_file


# -- 1. Jira lower-cases; it does not case-fold ---------------------------------------------


@pytest.mark.parametrize(
    ("stranger", "newcomer"),
    [("straße", "strasse"), ("ﬁona", "fiona"), ("groß", "gross")],
    ids=["sharp-s", "fi-ligature", "gross"],
)
def test_a_name_equal_only_under_casefold_is_another_person(
    world: TrustWorld, stranger: str, newcomer: str
) -> None:
    # In a product-access group (not a managed one), so that Jira 9.12 (no /user/list) sees it too.
    world.sim.add_user(
        stranger,
        f"{newcomer}.old@elsewhere.test",
        f"{stranger.capitalize()} Stranger",
        groups=("jira-core-users",),
    )
    before = snapshot(world.sim, stranger)
    world.write([*STAFF, person(newcomer, "New", "Comer", "team-alpha")])

    plan = world.plan_json()
    assert ops_on(plan, stranger) == [], "the stranger's account is never updated or added to a group"
    assert [op["op"] for op in ops_on(plan, newcomer) if op["op"] == "create_user"] == ["create_user"]

    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    assert snapshot(world.sim, stranger) == before
    assert stranger not in world.sim.members("scimsync-managed")
    created = world.sim.user(newcomer)
    assert created is not None and created["key"] != key_of(world.sim, stranger)
    assert (created["name"], created["emailAddress"]) == (newcomer, f"{newcomer}@acme.test")
    assert newcomer in world.sim.members("jira-team-alpha")
    assert ops_on(world.plan_json(), stranger) == []


# -- 2. match: [email] never deactivates a person who is still there -------------------------


@pytest.mark.parametrize("change", ["second-holder-of-the-email", "email-edited-in-jira"])
def test_match_by_email_never_deactivates_a_present_person(world: TrustWorld, change: str) -> None:
    world.match = ["email"]
    world.write()
    world.provision()
    if change == "second-holder-of-the-email":
        # In a product-access group, so that Jira 9.12 (no /user/list) sees it too.
        world.sim.add_user("amara2", "amara@acme.test", "Someone Else", groups=("jira-core-users",))
    else:
        world.sim.update_user("amara", emailAddress="x@elsewhere.test")
    other = snapshot(world.sim, "amara2") if change == "second-holder-of-the-email" else None

    plan = world.plan_json()
    assert [op for op in ops_on(plan, "amara") if op["op"] in ("deactivate_user", "delete_user")] == []
    assert ops_on(plan, "amara2") == []
    assert any("amara" in n["account"] or "amara" in n["message"] for n in notices(plan)), notices(plan)

    result = world.run("apply", "-y")
    assert result.exit_code in (0, 1), result.output  # 0 expected; never a guard or a crash
    assert "internal error" not in result.output
    amara = world.sim.user("amara")
    assert amara is not None and amara["active"] is True, "amara is still in the source, active"
    assert "amara" in world.sim.members("jira-team-alpha"), "and keeps what the rules give her"
    if other is not None:
        assert snapshot(world.sim, "amara2") == other
        assert "amara2" not in world.sim.members("scimsync-managed")


# -- 3. YAML implicit typing: 012345 is a username, not the octal number 5349 ---------------


def test_yaml_number_like_username_never_matches_another_account(world: TrustWorld) -> None:
    world.sim.add_user("5349", "other@elsewhere.test", "Unrelated Person")
    before = snapshot(world.sim, "5349")
    records = yaml.safe_dump(STAFF, sort_keys=False)
    world.write_source(
        "people.yaml",
        records
        + "- username: 012345\n"  # unquoted: YAML 1.1 reads an octal int
        + "  email: 012345@acme.test\n"
        + "  first_name: Zero\n"
        + "  last_name: Digits\n"
        + "  groups: [team-beta]\n",
    )
    result = world.run("apply", "-y")
    assert snapshot(world.sim, "5349") == before, "the unrelated account is never touched"
    assert "5349" not in world.sim.members("scimsync-managed")
    if result.exit_code == 0:
        created = world.sim.user("012345")
        assert created is not None and created["emailAddress"] == "012345@acme.test"
        assert "012345" in world.sim.members("scimsync-managed")
    else:  # refusing the file is acceptable: naming the record, writing nothing
        assert result.exit_code == 1, result.output
        assert "012345" in result.stderr or "record 6" in result.stderr, result.stderr
        assert world.sim.log.writes() == []


# -- 4. A repeated column or key is an error, never a silent last-one-wins ------------------


def test_csv_with_a_repeated_column_is_refused(world: TrustWorld) -> None:
    header = "id,username,email,first_name,last_name,active,groups,email\n"
    rows = "".join(
        f"{p['id']},{p['username']},{p['email']},{p['first_name']},{p['last_name']},true,"
        f"{';'.join(p['groups'])},{p['username']}.alt@acme.test\n"
        for p in STAFF
    )
    world.write_source("people.csv", header + rows)
    for command in (["plan"], ["apply", "-y"]):
        result = world.run(*command)
        assert result.exit_code == 1, result.output
        assert any("email" in line and "line 1" in line for line in error_lines(result)), result.stderr
    assert world.sim.log.writes() == []


def test_json_record_with_a_repeated_key_is_refused(world: TrustWorld) -> None:
    records = [json.dumps(p) for p in STAFF]
    # The second "email" would silently win in json.loads.
    records[1] = records[1].replace(
        '"email": "bruno@acme.test"', '"email": "bruno@acme.test", "email": "x@y.test"'
    )
    assert records[1].count('"email"') == 2
    world.write_source("people.json", "[\n" + ",\n".join(records) + "\n]\n")
    for command in (["plan"], ["apply", "-y"]):
        result = world.run(*command)
        assert result.exit_code == 1, result.output
        assert any("email" in line for line in error_lines(result)), result.stderr
    assert world.sim.log.writes() == []


# -- 5. apply PLANFILE re-checks ownership and protection ------------------------------------


def test_saved_plan_skips_an_account_no_longer_owned(world: TrustWorld) -> None:
    world.provision()
    world.write(without("bruno"))
    plan_file = saved_plan(world)
    assert "deactivate_user" in [op["op"] for op in ops_on(read_json(plan_file), "bruno")]
    remove_member(world.sim, "scimsync-managed", "bruno")  # an admin takes the account back

    result = world.run("apply", str(plan_file))
    assert result.exit_code == 1, result.output
    assert "stale: jira deactivate_user bruno" in result.stderr
    bruno = world.sim.user("bruno")
    assert bruno is not None and bruno["active"] is True
    assert "bruno" in world.sim.members("jira-team-alpha"), "no operation on an account it does not own"


def test_saved_plan_skips_an_account_renamed_to_a_protected_name(world: TrustWorld) -> None:
    world.policy = {"protected_users": ["admin*"]}
    world.write()
    world.provision()
    world.write(without("bruno"))
    plan_file = saved_plan(world)
    world.sim.update_user("bruno", name="admin2")  # now protected

    result = world.run("apply", str(plan_file))
    assert result.exit_code == 1, result.output
    assert "stale: jira deactivate_user" in result.stderr
    admin2 = world.sim.user("admin2")
    assert admin2 is not None and admin2["active"] is True
    assert "admin2" in world.sim.members("jira-team-alpha")


def test_hand_edited_plan_cannot_deactivate_a_protected_unowned_account(
    world: TrustWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sync as another administrator: Jira refuses to let 'admin' deactivate itself, which
    # would hide the bug. The token is a secret, so the config digest does not change.
    world.sim.add_account("sync-bot", token="sync-bot-token", admin=True)
    monkeypatch.setenv("E2E_JIRA_TOKEN", "sync-bot-token")
    world.provision()
    world.write(without("bruno"))
    plan_file = saved_plan(world)
    data = read_json(plan_file)
    ops = data["targets"][0]["operations"]
    template = next(op for op in ops if op["op"] == "deactivate_user")
    ops.append(
        {
            **template,
            "account": "admin",
            "account_id": key_of(world.sim, "admin"),
            "expected": {"active": True},
            "source_id": None,
        }
    )
    write_json(plan_file, data)
    admin_before = snapshot(world.sim, "admin")

    result = world.run("apply", str(plan_file))
    assert result.exit_code == 1, result.output
    admin = world.sim.user("admin")
    assert admin is not None and admin["active"] is True
    assert snapshot(world.sim, "admin") == admin_before


# -- 6. The owner group can never be a privileged group ---------------------------------------


@pytest.mark.parametrize("owner", ["jira-administrators", "JIRA-Administrators"])
def test_a_privileged_owner_group_is_a_config_error(world10: TrustWorld, owner: str) -> None:
    world10.policy = {"owner_group": owner}
    world10.write()
    result = world10.run("validate")
    assert result.exit_code == 1, result.output
    assert "owner_group" in result.stderr
    for command in (["plan"], ["apply", "-y"]):
        result = world10.run(*command)
        assert result.exit_code == 1, result.output
    assert world10.sim.log.writes() == []


# -- 7. max_deactivations counts every leaver, as a share of the ACTIVE owned accounts --------


def max_deactivations_guard(world: TrustWorld) -> tuple[int, int]:
    """Return (count, limit) of the max_deactivations guard of ``plan --format json`` (exit 3)."""
    result = world.run("plan", "--format", "json")
    assert result.exit_code == 3, result.output
    guards = [g for g in json.loads(result.stdout)["guards"] if g["guard"] == "max_deactivations"]
    assert len(guards) == 1, result.stdout
    return guards[0]["count"], guards[0]["limit"]


def test_deprovision_none_leavers_count_against_max_deactivations(world10: TrustWorld) -> None:
    world10.policy = {"deprovision": "none", "max_deactivations": 3}
    people = [person(f"p{i:02}", "Person", f"N{i}", "team-alpha") for i in range(30)]
    world10.write(people)
    world10.provision()
    world10.write(people[:1])  # 29 leavers, each removed from its managed groups
    assert max_deactivations_guard(world10) == (29, 3)
    for command in (["plan"], ["apply", "-y"]):
        result = world10.run(*command)
        assert result.exit_code == 3, result.output
        assert "max_deactivations" in result.stderr
    assert world10.sim.log.writes() == []
    assert world10.sim.members("jira-team-alpha") == {p["username"] for p in people}


def test_percentage_limit_is_of_active_owned_accounts(world10: TrustWorld) -> None:
    for i in range(90):  # long gone: owned, already deactivated
        world10.sim.add_user(
            f"old{i:02}", f"old{i:02}@acme.test", f"Old {i}", active=False, groups=("scimsync-managed",)
        )
    world10.policy = {"max_deactivations": "10%"}
    people = [person(f"p{i:02}", "Person", f"N{i}") for i in range(10)]
    world10.write(people)
    world10.provision()
    world10.write(people[:1])  # 9 of the 10 active owned accounts would go; 10% of 10 is 1
    assert max_deactivations_guard(world10) == (9, 1)
    result = world10.run("apply", "-y")
    assert result.exit_code == 3, result.output
    assert "max_deactivations" in result.stderr
    assert world10.sim.log.writes() == []
    assert all(world10.sim.user(p["username"])["active"] for p in people)  # type: ignore[index]


# -- 8. A group a templated rule produced stays managed ---------------------------------------


def test_templated_group_nobody_produces_any_more_is_emptied_of_owned_accounts(world: TrustWorld) -> None:
    world.provision()
    for name in ("chen", "dalia"):  # team-beta's only members
        world.record(name)["groups"] = ["team-alpha"]
    world.write()
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    assert world.sim.members("jira-team-beta").isdisjoint({"chen", "dalia"})
    assert {"chen", "dalia"} <= world.sim.members("jira-team-alpha")
    world.assert_converged()


def test_group_named_from_a_user_attribute_follows_the_attribute(world: TrustWorld) -> None:
    world.rules = [{"from": "team-*", "to": "dept-{{ user.attributes.department | slug }}"}]
    departments = {"amara": "Sales", "bruno": "Engineering", "chen": "Engineering", "dalia": "Support"}
    world.write([{**p, "department": departments.get(p["username"], "Finance")} for p in STAFF])
    world.provision()
    assert "amara" in world.sim.members("dept-sales")
    world.record("amara")["department"] = "Legal"
    world.write()
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    assert "amara" in world.sim.members("dept-legal")
    assert "amara" not in world.sim.members("dept-sales")
    world.assert_converged()


# -- 9. An inactive source user never blocks with a collision ---------------------------------


def test_a_leaver_and_a_joiner_sharing_an_email_block_nothing(world: TrustWorld) -> None:
    world.provision()
    world.record("amara")["active"] = False
    joiner = {**person("amara.new", "Amara", "Novak", "team-alpha"), "email": "amara@acme.test"}
    world.write([*world.people, joiner])
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    amara = world.sim.user("amara")
    assert amara is not None and amara["active"] is False, "the leaver is deactivated"
    new = world.sim.user("amara.new")
    assert new is not None and new["active"] is True and new["key"] != amara["key"], "the joiner is created"
    assert new["emailAddress"] == "amara@acme.test"
    assert "amara.new" in world.sim.members("scimsync-managed")


# -- 10. One incomplete record does not stop the run -----------------------------------------


def test_inactive_record_without_email_is_still_deprovisioned(world: TrustWorld) -> None:
    world.provision()
    world.record("emeka").update(active=False, email="")
    world.write([*world.people, person("farah", "Farah", "Lindqvist", "team-beta")])
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    emeka = world.sim.user("emeka")
    assert emeka is not None and emeka["active"] is False
    assert "farah" in world.sim.members("jira-team-beta"), "the other changes of the run are applied"


def test_a_leaver_whose_username_and_email_hr_blanked_does_not_stop_the_run(world: TrustWorld) -> None:
    world.provision()
    world.record("emeka").update(active=False, email="", username="")
    world.write([*world.people, person("farah", "Farah", "Lindqvist", "team-beta")])
    plan = world.plan_json()
    skipped = [n for n in notices(plan) if n["kind"] == "incomplete"]
    assert len(skipped) == 1 and "inactive source user skipped" in skipped[0]["message"]
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    assert "farah" in world.sim.members("jira-team-beta")
    emeka = world.sim.user("emeka")  # no longer in the source by any name: a leaver
    assert emeka is not None and emeka["active"] is False


def test_active_newcomer_without_email_is_a_notice_not_a_failed_run(world: TrustWorld) -> None:
    world.provision()
    world.record("amara")["last_name"] = "Nowak"
    no_email = {**person("farah", "Farah", "Lindqvist", "team-beta"), "email": ""}
    world.write([*world.people, no_email, person("gita", "Gita", "Rao", "team-alpha")])
    plan = world.plan_json()  # exit 0
    assert any(n["account"] == "farah" or "farah" in n["message"] for n in notices(plan)), notices(plan)
    assert ops_on(plan, "farah") == []
    assert "create_user" in [op["op"] for op in ops_on(plan, "gita")]
    assert "update_user" in [op["op"] for op in ops_on(plan, "amara")]
    world.run("apply", "-y")
    assert world.sim.user("farah") is None
    assert "gita" in world.sim.members("jira-team-alpha")
    assert world.sim.user("amara")["displayName"] == "Amara Nowak"  # type: ignore[index]


# -- 11. Jira's own default groups do not make a managed group drift --------------------------


def test_jira_default_group_managed_by_a_rule_converges_after_one_apply(world: TrustWorld) -> None:
    world.default_groups = None
    world.rules = [
        {"from": "team-*", "to": "jira-{{ group.name }}"},
        {"from": "team-alpha", "to": "jira-software-users"},  # the default group of Jira Software
    ]
    world.write()
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    assert {"amara", "bruno"} <= world.sim.members("jira-software-users")
    assert world.sim.members("jira-software-users").isdisjoint({"chen", "dalia", "emeka"})
    world.assert_converged()
    assert world.sim.members("jira-software-users").isdisjoint({"chen", "dalia", "emeka"})


# -- 12. A removal a nested group undoes fails on the run that makes it ----------------------


def test_nested_membership_fails_the_first_removal(world: TrustWorld) -> None:
    world.provision()
    world.sim.add_group("contractors", members=("dalia",), parent="jira-software-users")
    world.write(without("dalia"))
    result = world.run("apply", "-y")  # removes the direct membership; the nested one remains
    assert result.exit_code == 1, result.output
    failed = [
        line for line in result.stderr.splitlines() if line.startswith("failed: jira remove_member dalia: ")
    ]
    assert len(failed) == 1, result.stderr
    assert "jira-software-users" in failed[0] and "nested" in failed[0]
    assert "dalia" in world.sim.members("jira-software-users", nested=True)


# -- 13. A target that cannot be read is never "no changes" -----------------------------------


def test_unreadable_target_is_never_reported_as_no_changes(
    world: TrustWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_JIRA_TOKEN", "wrong-token")
    for command in (["plan"], ["plan", "--detailed-exitcode"], ["apply", "-y"]):
        result = world.run(*command)
        assert result.exit_code == 1, result.output
        assert NO_CHANGES not in result.output
    assert world.sim.log.writes() == []


# -- 14. A broken plan file is one clear error line ------------------------------------------


def _deep_nesting(digest: str) -> str:
    return "[" * 200_000 + "]" * 200_000


def _alias_bomb(digest: str) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    return "\n".join(lines) + "\n"


def _wrong_shape(digest: str) -> str:
    return json.dumps({"format_version": 1, "targets": "x", "config_digest": 3})


def _wrong_types(digest: str) -> str:
    op = {
        "op": "add_member",
        "account": "amara",
        "account_id": 10412,
        "group": {"name": "jira-administrators"},
        "changes": [],
        "reason": "",
        "expected": {"member": False},
        "source_id": None,
    }
    target = {"target": "jira", "type": "jira", "owned_count": 1, "error": None, "operations": [op]}
    return json.dumps({"format_version": 1, "config_digest": digest, "targets": [target]})


BROKEN_PLANS = {
    "deep-nesting": _deep_nesting,
    "yaml-alias-bomb": _alias_bomb,
    "wrong-shape": _wrong_shape,
    "wrong-field-types": _wrong_types,
}


@pytest.mark.parametrize("command", ["apply", "show"])
@pytest.mark.parametrize("broken", sorted(BROKEN_PLANS))
def test_broken_plan_file_is_one_error_line(world10: TrustWorld, broken: str, command: str) -> None:
    digest = read_json(saved_plan(world10))["config_digest"]
    plan_file = world10.folder / "broken.json"
    plan_file.write_text(BROKEN_PLANS[broken](digest), encoding="utf-8")
    result = world10.run(command, str(plan_file))
    assert_clean_error(result)
    assert world10.sim.log.writes() == []


# -- 15. A saved plan for a target the config does not have is refused ------------------------


def test_saved_plan_naming_an_unknown_target_is_refused(world: TrustWorld) -> None:
    plan_file = saved_plan(world)
    data = read_json(plan_file)
    assert operations(data), "a first provisioning has work to do"
    data["targets"][0]["target"] = "nosuch"
    write_json(plan_file, data)
    result = world.run("apply", str(plan_file))
    assert result.exit_code == 1, result.output
    assert "nosuch" in result.stderr
    assert world.sim.log.writes() == []
