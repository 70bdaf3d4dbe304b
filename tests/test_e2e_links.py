"""End to end: identity that survives renames (SPEC §5 Links) and a state file that can be lost."""

from __future__ import annotations

import json

from e2e_support import STAFF
from e2e_trust_support import TrustWorld, key_of, operations


def rename_amara(world: TrustWorld, last_name: str = "Nowak") -> None:
    """The IdP renames amara: new username and email, same id."""
    world.record("amara").update(username="amara.nowak", email="amara.nowak@acme.test", last_name=last_name)
    world.write()


def test_the_first_apply_links_every_account_it_created(world: TrustWorld) -> None:
    world.provision()
    state = json.loads((world.folder / "scimsync-state.json").read_text())
    links = state["targets"]["jira"]["links"]
    assert links == {f"id-{p['username']}": key_of(world.sim, p["username"]) for p in STAFF}


def test_a_rename_with_the_same_id_is_one_update_of_the_same_account(world: TrustWorld) -> None:
    world.policy = {"sync_fields": ["username", "email", "display_name"]}
    world.write()
    world.provision()
    key = key_of(world.sim, "amara")
    rename_amara(world)
    plan = world.plan_json()
    ops = operations(plan)
    assert [(o["op"], o["account"], o["account_id"]) for o in ops] == [("update_user", "amara", key)]
    assert {c["field"] for c in ops[0]["changes"]} == {"username", "email", "display_name"}
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    renamed = world.sim.user("amara.nowak")
    assert renamed is not None and renamed["key"] == key and renamed["active"] is True
    assert world.sim.user("amara") is None
    assert "amara.nowak" in world.sim.members("jira-team-alpha"), "same account, same groups"
    world.assert_converged()


def test_a_rename_without_renaming_usernames_keeps_the_account_and_says_so(world: TrustWorld) -> None:
    world.provision()
    rename_amara(world)
    plan = world.plan_json()
    assert [(o["op"], o["account"]) for o in operations(plan)] == [("update_user", "amara")]
    said = [n for n in plan["targets"][0]["notices"] if n["kind"] == "username_differs"]
    assert len(said) == 1 and "amara.nowak" in said[0]["message"]


def test_without_links_a_rename_is_shown_as_a_probable_rename(world: TrustWorld) -> None:
    world.provision()
    (world.folder / "scimsync-state.json").unlink()
    rename_amara(world, last_name="Kowalski")  # a new username and email, the same name
    result = world.run("plan", "--format", "json")
    assert "warning: state file" in result.stderr and "not found" in result.stderr
    ops = operations(json.loads(result.stdout))
    marked = {o["op"] for o in ops if "probable rename 'amara' -> 'amara.nowak'" in o["reason"]}
    assert marked == {"create_user", "deactivate_user"}


def test_a_corrupt_state_file_is_a_warning_and_never_deprovisions(world: TrustWorld) -> None:
    world.provision()
    (world.folder / "scimsync-state.json").write_text("{garbage", encoding="utf-8")
    result = world.run("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output  # matched by username and email: no changes
    assert "warning: state file" in result.stderr
    assert world.run("apply", "-y").exit_code == 0
    state = json.loads((world.folder / "scimsync-state.json").read_text())
    assert len(state["targets"]["jira"]["links"]) == len(STAFF), "the next apply writes it anew"


def test_a_tampered_link_never_hands_over_a_strangers_account(world: TrustWorld) -> None:
    world.sim.add_user("stranger", "stranger@elsewhere.test", "Stranger")
    world.provision()
    path = world.folder / "scimsync-state.json"
    state = json.loads(path.read_text())
    state["targets"]["jira"]["links"]["id-amara"] = key_of(world.sim, "stranger")
    path.write_text(json.dumps(state), encoding="utf-8")
    world.assert_converged()
    stranger = world.sim.user("stranger")
    assert stranger is not None and stranger["emailAddress"] == "stranger@elsewhere.test"
