"""End to end: wrong writes an adversarial review found, each kept as a test.

Saved plans whose adoption no longer holds, links from another instance or swapped by
hand, a leaver's record adopting a stranger by email, a reused email under email-first
matching, remembered rule groups that were tampered with or handed back to humans, an old
plan rolling the state file back, and hand-edited plans past the guard.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from e2e_support import STAFF, person
from e2e_trust_support import (
    TOKEN,
    TrustWorld,
    key_of,
    operations,
    read_json,
    snapshot,
    write_json,
)

from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer


def state_file(world: TrustWorld) -> Path:
    return world.folder / "scimsync-state.json"


def saved_plan(world: TrustWorld) -> Path:
    plan_file = world.folder / "plan.json"
    result = world.run("plan", "--out", str(plan_file))
    assert result.exit_code == 0, result.output
    return plan_file


# --- saved plans: an adoption holds only while its match does -------------------------------


def test_a_saved_adoption_by_email_is_stale_once_the_email_changed(world: TrustWorld) -> None:
    world.sim.add_user("sam", "amara@acme.test", "Sam Stranger", groups=("jira-software-users",))
    plan_file = saved_plan(world)  # sam holds amara's email: matched, to be adopted
    world.sim.update_user("sam", emailAddress="sam@elsewhere.test")  # the admin fixes sam's email
    before = snapshot(world.sim, "sam")
    result = world.run("apply", str(plan_file))
    assert result.exit_code == 1 and "stale: jira" in result.stderr
    assert snapshot(world.sim, "sam") == before


def test_a_saved_adoption_by_username_is_stale_once_renamed(world: TrustWorld) -> None:
    world.sim.add_user("amara", "amara.private@home.test", "Amara K", groups=("jira-software-users",))
    plan_file = saved_plan(world)
    world.sim.update_user("amara", name="sam", displayName="Sam Other", emailAddress="sam@elsewhere.test")
    before = snapshot(world.sim, "sam")
    assert world.run("apply", str(plan_file)).exit_code == 1
    assert snapshot(world.sim, "sam") == before


def test_a_hand_added_adoption_of_a_stranger_is_stale(world: TrustWorld) -> None:
    world.sim.add_user("cfo", "cfo@acme.test", "The CFO", groups=("jira-software-users",))
    world.provision()
    plan_file = saved_plan(world)
    data = read_json(plan_file)
    base = {"account": "cfo", "account_id": key_of(world.sim, "cfo"), "reason": "x", "source_id": None}
    data["targets"][0]["operations"] += [
        {
            **base,
            "op": "add_member",
            "group": "scimsync-managed",
            "changes": [],
            "expected": {"member": False},
        },
        {**base, "op": "deactivate_user", "group": None, "changes": [], "expected": {"active": True}},
    ]
    write_json(plan_file, data)
    assert world.run("apply", str(plan_file)).exit_code == 1
    assert snapshot(world.sim, "cfo") == (
        "cfo@acme.test",
        "The CFO",
        True,
        frozenset({"jira-software-users"}),
    )


def test_hand_added_deactivations_trip_the_guard(world10: TrustWorld) -> None:
    world = world10
    world.provision()
    world.write(STAFF[1:])  # amara leaves: 1 deactivation, within the limit of 3
    plan_file = saved_plan(world)
    data = read_json(plan_file)
    for p in STAFF[1:]:
        data["targets"][0]["operations"].append(
            {
                "op": "deactivate_user",
                "account": p["username"],
                "account_id": key_of(world.sim, p["username"]),
                "group": None,
                "changes": [],
                "reason": "x",
                "expected": {"active": True},
                "source_id": None,
            }
        )
    write_json(plan_file, data)
    result = world.run("apply", str(plan_file))
    assert result.exit_code == 3 and "max_deactivations" in result.stderr
    assert world.sim.log.writes() == []


# --- links: never one person's account for another -------------------------------------------


def test_swapped_links_never_swap_two_peoples_accounts(world: TrustWorld) -> None:
    world.provision()
    data = json.loads(state_file(world).read_text())
    links = data["targets"]["jira"]["links"]
    links["id-amara"], links["id-bruno"] = links["id-bruno"], links["id-amara"]
    state_file(world).write_text(json.dumps(data))
    world.assert_converged()
    assert snapshot(world.sim, "amara")[0] == "amara@acme.test"
    assert snapshot(world.sim, "bruno")[0] == "bruno@acme.test"


def test_links_of_another_instance_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    sim_a, sim_b = JiraSim(token=TOKEN, version="10.3.1"), JiraSim(token=TOKEN, version="10.3.1")
    with SimServer(sim_a.app) as a, SimServer(sim_b.app) as b:
        staging = TrustWorld(sim=sim_a, url=a.url, folder=tmp_path)
        staging.write(STAFF)
        staging.provision()
        (tmp_path / "b").mkdir()
        prod = TrustWorld(sim=sim_b, url=b.url, folder=tmp_path / "b")
        prod.write(list(reversed(STAFF)))  # other keys for the same people there
        prod.provision()
        staging.url, staging.sim = b.url, sim_b  # the target is re-pointed, the state file stays
        staging.write(STAFF)
        result = staging.run("apply", "-y")
        assert result.exit_code == 0, result.output
        assert "its links are ignored" in result.stderr
        assert all(snapshot(sim_b, p["username"])[0] == p["email"] for p in STAFF)


def test_a_link_is_kept_while_its_person_is_out_of_scope(world: TrustWorld) -> None:
    world.policy = {"sync_fields": ["username", "email", "display_name"]}
    world.write(STAFF)
    world.provision()
    key = key_of(world.sim, "amara")
    config = world.config_data()
    config["source"]["exclude_users"] = ["amara"]
    world.config.write_text(yaml.safe_dump(config, sort_keys=False))
    assert world.run("apply", "-y").exit_code == 0
    assert json.loads(state_file(world).read_text())["targets"]["jira"]["links"]["id-amara"] == key
    world.record("amara").update(username="amara.nowak", email="amara.nowak@acme.test")
    world.write()
    ops = operations(world.plan_json())
    assert {o["op"] for o in ops if o["account_id"] == key} >= {"reactivate_user", "update_user"}
    assert not [o for o in ops if o["op"] == "create_user"]


def test_an_old_saved_plan_does_not_roll_the_links_back(world10: TrustWorld) -> None:
    world = world10
    world.provision()
    world.write([*STAFF[:4], person("emeka", "Emeka", "Okafor", "team-beta")])
    plan_file = saved_plan(world)
    world.write([*STAFF, person("farah", "Farah", "Ali", "team-beta")])
    assert world.run("apply", "-y").exit_code == 0
    world.run("apply", str(plan_file))
    assert "id-farah" in json.loads(state_file(world).read_text())["targets"]["jira"]["links"]


# --- a leaver's record, a reused email ---------------------------------------------------------


def test_a_leavers_record_never_adopts_a_stranger_by_email(world: TrustWorld) -> None:
    world.sim.add_user("john", "john@acme.test", "John New", groups=("jira-software-users",))
    leaver = {**person("jsmith1", "John", "Smith"), "email": "john@acme.test", "active": False}
    world.write([*STAFF, leaver])
    assert world.run("apply", "-y").exit_code == 0
    assert snapshot(world.sim, "john") == (
        "john@acme.test",
        "John New",
        True,
        frozenset({"jira-software-users"}),
    )


def test_email_first_a_reused_email_stays_with_the_leaver(world: TrustWorld) -> None:
    world.match = ["email", "username"]
    world.write([*STAFF, person("olga", "Olga", "Old", "team-alpha")])
    world.provision()
    olga = {**person("olga", "Olga", "Old", "team-alpha"), "active": False}
    oleg = {**person("oleg", "Oleg", "New", "team-beta"), "email": "olga@acme.test"}
    world.write([*STAFF, olga, oleg])
    assert world.run("apply", "-y").exit_code == 0
    assert snapshot(world.sim, "olga")[1:3] == ("Olga Old", False)
    assert world.sim.user("oleg") is not None and "oleg" in world.sim.members("jira-team-beta")


# --- remembered rule groups --------------------------------------------------------------------


def test_a_tampered_rule_memory_never_manages_admin_or_foreign_groups(world10: TrustWorld) -> None:
    world = world10
    world.provision()
    world.sim.add_group("jira-administrators", members=["amara"])
    world.sim.add_group("finance-approvers", members=["amara", "bruno"])
    data = json.loads(state_file(world).read_text())
    (memory,) = data["targets"]["jira"]["rule_groups"]
    data["targets"]["jira"]["rule_groups"][memory] += ["finance-approvers", "jira-administrators"]
    state_file(world).write_text(json.dumps(data))
    world.assert_converged()
    assert "amara" in world.sim.members("jira-administrators")
    assert world.sim.members("finance-approvers") == {"amara", "bruno"}


def test_a_group_handed_back_to_humans_is_no_longer_managed(world10: TrustWorld) -> None:
    world = world10
    world.provision()  # jira-team-alpha and jira-team-beta remembered
    world.rules = [{"from": "team-alpha", "to": "jira-{{ group.name }}"}]
    world.write_config()
    assert world.run("apply", "-y").exit_code == 0
    world.sim.add_group("jira-team-beta", members=["chen", "emeka"])
    assert not [o for o in operations(world.plan_json()) if o.get("group") == "jira-team-beta"]
