"""End to end over loopback sockets: the CLI, a file source, and the Jira DC simulator."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import STAFF, World, make_world, person

TOKEN = "e2e-token-9b1f"
SUMMARY_EMPTY = "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes."


@pytest.fixture(params=["9.12.0", "10.3.1"])
def world(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A Jira before /user/list (9.12: capped search) and one with it (10.3)."""
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    yield from make_world(tmp_path, TOKEN, version=request.param)


def provisioned(world: World) -> World:
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    world.sim.log.clear()
    return world


def assert_converged(world: World) -> None:
    world.sim.log.clear()
    result = world.run("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert SUMMARY_EMPTY in result.stdout
    assert world.sim.log.writes() == []


def test_first_provisioning_creates_accounts_groups_and_memberships(world: World) -> None:
    plan = world.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 2, plan.output
    assert "Plan: 5 to create, 0 to update, 0 to deactivate, 14 membership changes." in plan.stdout
    assert "Groups: 3 to create." in plan.stdout  # jira-team-alpha, jira-team-beta, scimsync-managed
    assert world.sim.log.writes() == [], "plan must never write"

    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    amara = world.sim.user("amara")
    assert amara is not None
    assert (amara["emailAddress"], amara["displayName"], amara["active"]) == (
        "amara@acme.test",
        "Amara Kowalski",
        True,
    )
    assert world.sim.members("jira-team-alpha") == {"amara", "bruno"}
    assert world.sim.members("jira-team-beta") == {"chen", "dalia"}
    assert {"amara", "bruno", "chen", "dalia", "emeka"} <= world.sim.members("scimsync-managed")
    assert {"amara", "emeka"} <= world.sim.members("jira-software-users")
    audit = [json.loads(line) for line in (world.folder / "audit.jsonl").read_text().splitlines()]
    assert len(audit) == 22 and {a["result"] for a in audit} == {"done"}
    assert_converged(world)


def test_name_and_email_change_updates_the_account(world: World) -> None:
    provisioned(world)
    world.record("bruno").update(last_name="Bianchi", email="bruno.bianchi@acme.test")
    world.write()
    plan = world.run("plan")
    assert "Plan: 0 to create, 1 to update, 0 to deactivate, 0 membership changes." in plan.stdout
    assert world.run("apply", "-y").exit_code == 0
    bruno = world.sim.user("bruno")
    assert bruno is not None
    assert (bruno["emailAddress"], bruno["displayName"]) == ("bruno.bianchi@acme.test", "Bruno Bianchi")
    assert_converged(world)


def test_group_change_moves_managed_memberships_only(world: World) -> None:
    provisioned(world)
    world.sim.add_group("confluence-users", members=("chen",))  # not managed: must stay
    world.record("chen")["groups"] = ["team-alpha"]
    world.write()
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    assert "chen" in world.sim.members("jira-team-alpha")
    assert "chen" not in world.sim.members("jira-team-beta")
    assert "chen" in world.sim.members("confluence-users")
    assert_converged(world)


def test_leaver_is_deactivated_and_removed_from_managed_groups(world: World) -> None:
    provisioned(world)
    world.sim.add_group("confluence-users", members=("dalia",))
    world.write([p for p in STAFF if p["username"] != "dalia"])
    plan = world.run("plan")
    assert "Plan: 0 to create, 0 to update, 1 to deactivate, 2 membership changes." in plan.stdout
    assert world.run("apply", "-y").exit_code == 0
    dalia = world.sim.user("dalia")
    assert dalia is not None and dalia["active"] is False
    assert "dalia" not in world.sim.members("jira-team-beta")
    assert "dalia" not in world.sim.members("jira-software-users")
    assert "dalia" in world.sim.members("scimsync-managed"), "the owner marker stays"
    assert "dalia" in world.sim.members("confluence-users"), "unmanaged group untouched"
    assert_converged(world)


def test_returner_is_reactivated(world: World) -> None:
    provisioned(world)
    world.write([p for p in STAFF if p["username"] != "dalia"])
    assert world.run("apply", "-y").exit_code == 0
    world.write(STAFF)
    plan = world.run("plan")
    assert "Plan: 0 to create, 1 to update, 0 to deactivate, 2 membership changes." in plan.stdout
    assert "reactivate" in plan.stdout
    assert world.run("apply", "-y").exit_code == 0
    dalia = world.sim.user("dalia")
    assert dalia is not None and dalia["active"] is True
    assert "dalia" in world.sim.members("jira-team-beta")
    assert_converged(world)


def test_inactive_in_source_is_deprovisioned(world: World) -> None:
    provisioned(world)
    world.record("emeka")["active"] = False
    world.write()
    assert world.run("apply", "-y").exit_code == 0
    emeka = world.sim.user("emeka")
    assert emeka is not None and emeka["active"] is False
    assert_converged(world)


def test_unowned_and_protected_accounts_are_never_touched(world: World) -> None:
    world.sim.add_user("build-bot", "build-bot@acme.test", "Build Bot", groups=("jira-software-users",))
    provisioned(world)
    bot = world.sim.user("build-bot")
    admin = world.sim.user("admin")
    assert bot is not None and bot["active"] is True
    assert "build-bot" in world.sim.members("jira-software-users")
    assert admin is not None and admin["active"] is True
    assert "admin" not in world.sim.members("scimsync-managed")


def test_guard_blocks_mass_deactivation_with_exit_3(world: World) -> None:
    provisioned(world)
    world.write(STAFF[:1])  # four leavers, limit is 3
    result = world.run("apply", "-y")
    assert result.exit_code == 3, result.output
    assert "max_deactivations" in result.stderr and "4" in result.stderr and "3" in result.stderr
    assert world.sim.log.writes() == []
    allowed = world.run("apply", "-y", "--allow-deactivations", "4")
    assert allowed.exit_code == 0, allowed.output


def test_empty_source_never_deactivates_anyone(world: World) -> None:
    world.max_deactivations = 100
    provisioned(world)
    world.write([])
    for command in (["plan"], ["apply", "-y"]):
        result = world.run(*command)
        assert result.exit_code == 3, result.output
        assert "empty_source" in result.stderr
    assert world.sim.log.writes() == []
    assert all(world.sim.user(p["username"])["active"] for p in STAFF)  # type: ignore[index]


def test_stale_saved_plan_is_skipped_and_reported(world: World) -> None:
    provisioned(world)
    world.record("amara")["last_name"] = "Nowak"
    world.write([p for p in world.people if p["username"] != "bruno"])
    plan_file = world.folder / "plan.json"
    assert world.run("plan", "--out", str(plan_file)).exit_code == 0
    assert plan_file.stat().st_mode & 0o777 == 0o600
    # Someone changes amara by hand after the plan was reviewed.
    key = world.sim.user("amara")["key"]  # type: ignore[index]
    world.sim.update_user(key, displayName="Amara Hand-Edited")
    result = world.run("apply", str(plan_file))
    assert result.exit_code == 1, result.output
    assert "stale: jira update_user amara" in result.stderr
    assert "Run `scimsync plan` again." in result.stderr
    assert world.sim.user("amara")["displayName"] == "Amara Hand-Edited"  # type: ignore[index]
    assert world.sim.user("bruno")["active"] is False  # type: ignore[index]  # the rest was applied


def test_saved_plan_from_another_config_is_refused(world: World) -> None:
    plan_file = world.folder / "plan.json"
    assert world.run("plan", "--out", str(plan_file)).exit_code == 0
    world.max_deactivations = 7
    world.write()
    result = world.run("apply", str(plan_file))
    assert result.exit_code == 1
    assert "was made with another config" in result.stderr
    assert world.sim.log.writes() == []


def test_failure_mid_apply_then_rerun_converges(world: World) -> None:
    # The first 4 membership POSTs are the owner group's, sent with each of the 4 creations
    # that succeed: their failures leave them to the memberships phase, where 2 more fail.
    world.sim.faults.inject(500, count=6, method="POST", path="/rest/api/2/group/user")
    world.sim.faults.inject(400, count=1, method="POST", path="/rest/api/2/user")
    result = world.run("apply", "-y")
    assert result.exit_code == 1, result.output
    assert result.stderr.count("failed: jira") >= 3
    again = world.run("apply", "-y")
    assert again.exit_code == 0, again.output
    assert_converged(world)
    assert world.sim.members("jira-team-alpha") == {"amara", "bruno"}


def test_read_only_directory_user_is_reported_not_failed(world: World) -> None:
    world.sim.add_group("scimsync-managed")
    world.sim.add_user("chen", "chen@old.test", "Chen N", groups=("scimsync-managed",), read_only=True)
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    assert "skipped: jira update_user chen: not manageable" in result.stderr


def test_apply_without_yes_is_refused_when_not_interactive(world: World) -> None:
    result = world.run("apply")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: apply needs confirmation, and this run is not interactive: pass -y/--auto-approve, "
        "or apply a reviewed plan file (scimsync plan --out FILE; scimsync apply FILE)"
    )
    assert world.sim.log.writes() == []


def test_json_and_markdown_formats(world: World) -> None:
    data = json.loads(world.run("plan", "--format", "json").stdout)
    assert data["format_version"] == 1
    assert data["summary"]["create"] == 5
    ops = data["targets"][0]["operations"]
    assert ops[0]["op"] == "create_group"
    markdown = world.run("plan", "--format", "markdown").stdout
    assert markdown.startswith("## scimsync plan")
    assert "| create_user | amara |" in markdown


def test_show_renders_a_saved_plan(world: World) -> None:
    plan_file = world.folder / "plan.json"
    world.run("plan", "--out", str(plan_file))
    shown = world.run("show", str(plan_file))
    assert shown.exit_code == 0
    assert "Plan: 5 to create" in shown.stdout


def test_new_person_joins(world: World) -> None:
    provisioned(world)
    world.write([*STAFF, person("farah", "Farah", "Lindqvist", "team-beta")])
    assert world.run("apply", "-y").exit_code == 0
    assert "farah" in world.sim.members("jira-team-beta")
    assert_converged(world)


def test_error_budget_stops_writing_to_the_target(world: World) -> None:
    world.write([person(f"user{i:02}", "User", f"N{i}") for i in range(20)])
    world.sim.faults.inject(500, count=100, method="POST", path="/rest/api/2/group/user")
    result = world.run("apply", "-y")
    assert result.exit_code == 1
    assert "over policy.max_write_failures (20%)" in result.stderr
    attempted = world.sim.log.count(method="POST", path="/rest/api/2/group/user")
    assert 3 <= attempted < 40, "writing stopped soon after the budget was spent"
    world.sim.faults.clear()
    assert world.run("apply", "-y").exit_code == 0
    assert_converged(world)


def test_sigterm_finishes_in_flight_writes_then_exits_143(world: World) -> None:
    import os
    import signal
    import threading
    import time

    world.write([person(f"user{i:02}", "User", f"N{i}") for i in range(30)])
    world.sim.faults.latency = 0.01

    def terminate_after_some_writes() -> None:
        deadline = time.monotonic() + 20
        while len(world.sim.log.writes()) < 5 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_after_some_writes)
    killer.start()
    result = world.run("apply", "-y")
    killer.join()
    assert result.exit_code == 143, result.output
    assert "interrupted" in result.stderr
    writes = len(world.sim.log.writes())
    audit = (world.folder / "audit.jsonl").read_text().splitlines()
    assert writes < 40, "no new operation started after the signal (a full run sends 91 writes)"
    # A membership the creation gave (the application role's default group, reference §1.9)
    # is done without a write of its own.
    written = [line for line in audit if "given by the account's creation" not in line]
    assert sum('"result": "done"' in line for line in written) == writes, "every finished write is logged"
    world.sim.faults.latency = 0
    assert world.run("apply", "-y").exit_code == 0
    assert_converged(world)


def test_demo_runs_offline_and_converges() -> None:
    from click.testing import CliRunner

    from scimsync.cli import cli

    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    assert "0 write requests sent by the second plan." in result.stdout
    assert "No changes: every target matches the source." in result.stdout
    # One directory into Jira and Confluence together; both were written to.
    written = re.search(r"(\d+) write requests sent to Jira, (\d+) to Confluence", result.stdout)
    assert written and int(written[1]) > 0 and int(written[2]) > 0, result.stdout
    assert "confluence (confluence): no changes" in result.stdout


def test_dropped_connections_lose_nothing_and_one_run_converges(world: World) -> None:
    # A read whose connection drops is retried. A create whose connection drops AFTER Jira
    # made the user is never re-sent blindly: it is read back, found to be the account this
    # run created (same username and email, no other owner), and adopted (SPEC §8).
    world.sim.faults.drop(1, method="GET", path="/rest/api/2/serverInfo")
    world.sim.faults.drop(1, method="POST", path="/rest/api/2/user", after_app=True)
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    creates = world.sim.log.count(method="POST", path="/rest/api/2/user")
    assert creates == 5, "a dropped create is never re-sent blindly"
    for person_ in STAFF:
        assert person_["username"] in world.sim.members("scimsync-managed"), person_["username"]
    assert_converged(world)


def test_saved_plan_create_gone_stale_leaves_the_strangers_account_alone(world: World) -> None:
    plan_file = world.folder / "plan.json"
    assert world.run("plan", "--out", str(plan_file)).exit_code == 0
    # Before the reviewed plan is applied, an admin creates another person's 'amara' by hand.
    world.sim.add_user("amara", "amara.other@elsewhere.test", "Amara Other")
    result = world.run("apply", str(plan_file))
    assert result.exit_code == 1
    assert "stale: jira create_user amara" in result.stderr
    assert "amara" not in world.sim.members("scimsync-managed"), "never adopt the stranger's account"
    assert "amara" not in world.sim.members("jira-team-alpha")
    assert "bruno" in world.sim.members("jira-team-alpha"), "the rest of the plan was applied"


def test_a_saved_plan_leaver_renamed_since_is_stale_and_the_next_plan_deactivates_it(world: World) -> None:
    provisioned(world)
    world.write([p for p in STAFF if p["username"] != "bruno"])
    plan_file = world.folder / "plan.json"
    assert world.run("plan", "--out", str(plan_file)).exit_code == 0
    world.sim.update_user("bruno", name="bruno.rossi")  # renamed in Jira after the review
    result = world.run("apply", str(plan_file))
    # The new name could be a present person's (SPEC §5): only a fresh plan can tell.
    assert result.exit_code == 1, result.output
    assert "'bruno' was renamed to 'bruno.rossi' since the plan was made" in result.output
    renamed = world.sim.user("bruno.rossi")
    assert renamed is not None and renamed["active"] is True, "never 'done' by mistake, never blind"
    again = world.run("apply", "-y")
    assert again.exit_code == 0, again.output
    renamed = world.sim.user("bruno.rossi")
    assert renamed is not None and renamed["active"] is False


def test_a_403_on_one_write_does_not_stop_the_others(world: World) -> None:
    provisioned(world)
    world.record("amara")["last_name"] = "Nowak"
    world.write([p for p in world.people if p["username"] != "bruno"])
    world.sim.faults.inject(403, count=1, method="PUT", path="/rest/api/2/user")  # amara's update
    result = world.run("apply", "-y")
    assert result.exit_code == 1
    assert "failed: jira update_user amara" in result.stderr
    assert world.sim.user("bruno")["active"] is False  # type: ignore[index]  # later phases still ran


def test_membership_through_a_nested_group_is_reported_not_done(world: World) -> None:
    provisioned(world)
    world.sim.add_group("contractors", members=("dalia",), parent="jira-software-users")
    world.write([p for p in STAFF if p["username"] != "dalia"])
    # She still reaches jira-software-users through 'contractors', so she keeps the access:
    # the run that removes the direct membership fails on it already, and so does every
    # later run, saying why, instead of pretending the removal was done.
    first = world.run("apply", "-y")
    assert first.exit_code == 1, first.output
    assert "failed: jira remove_member dalia: " in first.stderr
    result = world.run("apply", "-y")
    assert result.exit_code == 1, result.output
    failed = [
        line for line in result.stderr.splitlines() if line.startswith("failed: jira remove_member dalia: ")
    ]
    assert len(failed) == 1, result.stderr
    assert "still a member of jira-software-users through a nested group" in failed[0]
    assert "dalia" in world.sim.members("jira-software-users", nested=True)
