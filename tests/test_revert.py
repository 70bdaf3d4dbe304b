"""`scimsync revert`: undo one run from the audit log, end to end against the Jira simulator.

The expected state is read from the simulator itself (before the run, after the revert),
never from revert's own code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import STAFF, Snapshot, World, audit_runs, make_world, person, snapshot

from scimsync.audit import AuditLog, verify
from scimsync.engine.plan import FieldChange, Operation, OpKind
from scimsync.revert import NOT_WRITTEN, read_runs, undo

TOKEN = "revert-token-7d21"
LEAVERS = [person(f"leaver{i}", "Leaver", f"N{i}", "team-alpha" if i % 2 else "team-beta") for i in range(6)]
PRIVILEGED_RULE = """\
      - from: admins
        to: jira-administrators
        privileged: true
"""


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    yield from make_world(tmp_path, TOKEN, version="10.3.1")


def log(world: World) -> str:
    return str(world.folder / "audit.jsonl")


def apply(world: World, *args: str) -> None:
    result = world.run("apply", "-y", *args)
    assert result.exit_code == 0, result.stderr


def leavers_gone(world: World) -> tuple[Snapshot, Snapshot]:
    """Provision staff and six leavers, then apply their leaving; return the states before and after."""
    world.write(STAFF + LEAVERS)
    apply(world)
    before = snapshot(world)
    world.write(STAFF)
    apply(world, "--allow-deactivations", "6")
    return before, snapshot(world)


def test_revert_reactivates_six_leavers_and_restores_exactly_their_memberships(world: World) -> None:
    before, gone = leavers_gone(world)
    for leaver in LEAVERS:
        active, groups = gone[leaver["username"]]
        assert not active and groups == {"scimsync-managed"}  # the apply really deprovisioned them
    leaver_run = audit_runs(world.folder)[-1][0]

    result = world.run("revert", log(world), "-y")
    assert result.exit_code == 0, result.stderr
    assert snapshot(world) == before
    assert "Plan: 0 to create, 6 to update, 0 to deactivate, 12 membership changes." in result.stdout

    # The revert's own writes are audited, chained, and say which run they undo.
    revert_run, records = audit_runs(world.folder)[-1]
    assert revert_run != leaver_run
    assert sorted((r["op"], r["result"]) for r in records) == sorted(
        [("reactivate_user", "done")] * 6 + [("add_member", "done")] * 12
    )
    assert {r["reason"] for r in records} == {f"revert of run {leaver_run}"}
    assert verify(world.folder / "audit.jsonl")[1] is None

    # The IdP glitch fixed: the six are back in the source, and nothing is left to do.
    world.write(STAFF + LEAVERS)
    plan = world.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert "No changes" in plan.stdout


def test_revert_again_has_nothing_left_to_undo(world: World) -> None:
    before, _ = leavers_gone(world)
    leaver_run = audit_runs(world.folder)[-1][0]
    assert world.run("revert", log(world), "-y").exit_code == 0
    world.sim.log.clear()
    again = world.run("revert", log(world), "--run", leaver_run, "-y")
    assert again.exit_code == 0, again.stderr
    assert world.sim.log.writes() == []
    assert "18 of its changes are undone already" in again.stdout
    assert snapshot(world) == before


def test_run_picks_an_older_run_and_a_revert_of_an_addition_removes_exactly_it(world: World) -> None:
    apply(world)
    amara = world.record("amara")
    amara["groups"] = [
        *amara["groups"],
        "team-beta",
    ]  # run 2: amara joins jira-team-beta (no shared list edited)
    world.write()
    apply(world)
    world.write([p for p in world.people if p["username"] != "emeka"])  # run 3: emeka leaves
    apply(world)
    expected = snapshot(world)
    active, groups = expected["amara"]
    assert "jira-team-beta" in groups
    expected["amara"] = (active, groups - {"jira-team-beta"})
    second = audit_runs(world.folder)[1][0]

    result = world.run("revert", log(world), "--run", second, "-y")
    assert result.exit_code == 0, result.stderr
    assert snapshot(world) == expected  # emeka (run 3) stays deactivated


def test_revert_of_a_provisioning_run_undoes_no_creation(world: World) -> None:
    apply(world)
    before = snapshot(world)
    world.sim.log.clear()
    result = world.run("revert", log(world), "-y")
    assert result.exit_code == 0, result.stderr
    assert world.sim.log.writes() == []
    assert snapshot(world) == before
    joined = sum(len(before[p["username"]][1]) for p in STAFF)
    assert f"5 creations (and their {joined} memberships), 3 group creations: not reverted" in result.stdout


def test_unknown_run_lists_the_last_five_runs(world: World) -> None:
    apply(world)
    for name in ("fola", "gus", "hana", "ivo", "jun"):
        world.write([*world.people, person(name, name.title(), "Tester")])
        apply(world)
    found = audit_runs(world.folder)
    assert len(found) == 6
    described = [
        f"{run} ({records[0]['time']}, {len(records)} operations, {len(records)} done)"
        for run, records in reversed(found[1:])
    ]
    result = world.run("revert", log(world), "--run", "20200101T000000Z-1")
    assert result.exit_code == 1
    missing = f"error: audit log {log(world)} has no run '20200101T000000Z-1'"
    assert result.stderr == f"{missing}; the last runs: {', '.join(described)}\n"


def test_a_log_whose_chain_is_broken_is_refused(world: World) -> None:
    leavers_gone(world)
    path = world.folder / "audit.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:4] + lines[5:]) + "\n")
    world.sim.log.clear()
    result = world.run("revert", str(path), "-y")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: audit log {path}: line 5: chain broken (a line before it was changed or removed); "
        "refusing to revert from a log that was changed\n"
    )
    assert world.sim.log.writes() == []


def test_accounts_changed_since_are_stale_not_written(world: World) -> None:
    before, _ = leavers_gone(world)
    sim = world.sim
    sim.directory.delete_user(sim.directory.find_user("leaver0"))  # deleted by someone
    sim.update_user("leaver1", name="leaver1-old")  # renamed by someone
    sim.directory.find_group("scimsync-managed").members.discard(sim.directory.find_user("leaver2").key)
    changed = snapshot(world)

    result = world.run("revert", log(world), "-y")
    assert result.exit_code == 1
    assert "warning: 9 changes of the run cannot be undone: the accounts changed since" in result.stderr
    after = snapshot(world)
    for name in ("leaver1-old", "leaver2"):
        assert after[name] == changed[name]  # not reactivated, no membership put back
    assert "leaver0" not in after
    for name in ("leaver3", "leaver4", "leaver5"):
        assert after[name] == before[name]
    assert (
        "note leaver1: cannot reactivate_user: the account was renamed to 'leaver1-old' since"
        in result.stdout
    )


def test_saved_revert_plan_is_applied_by_apply_and_rechecked(world: World) -> None:
    before, _ = leavers_gone(world)
    out = world.folder / "revert.json"
    world.sim.log.clear()
    saved = world.run("revert", log(world), "--out", str(out))
    assert saved.exit_code == 0, saved.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert world.sim.log.writes() == []
    world.sim.directory.delete_user(world.sim.directory.find_user("leaver5"))  # after the review

    result = world.run("apply", str(out))
    assert result.exit_code == 1
    assert "3 operations were stale" in result.stderr
    after = snapshot(world)
    assert "leaver5" not in after
    assert after == {k: v for k, v in before.items() if k != "leaver5"}


def test_what_a_run_found_done_already_is_not_undone(world: World) -> None:
    world.write(STAFF + LEAVERS[:2])
    apply(world)
    before = snapshot(world)
    world.write(STAFF)
    out = world.folder / "leavers.json"
    assert world.run("plan", "--out", str(out)).exit_code == 0
    world.sim.update_user("leaver0", active=False)  # someone deactivates leaver0 first, by hand
    assert world.run("apply", str(out)).exit_code == 0  # its deactivation: "already in the wanted state"

    result = world.run("revert", log(world), "-y")
    assert result.exit_code == 0, result.stderr
    after = snapshot(world)
    assert after["leaver0"] == (False, before["leaver0"][1])  # groups back; the hand deactivation stays
    assert after["leaver1"] == before["leaver1"]


def test_non_interactive_revert_without_yes_is_refused(world: World) -> None:
    _, gone = leavers_gone(world)
    world.sim.log.clear()
    result = world.run("revert", log(world))
    assert result.exit_code == 1
    assert result.stderr.endswith(
        "error: revert needs confirmation, and this run is not interactive: pass -y/--auto-approve, "
        "or save the plan for review (scimsync revert AUDIT_LOG --out FILE; scimsync apply FILE)\n"
    )
    assert world.sim.log.writes() == []
    assert snapshot(world) == gone


def test_json_plan_on_stdout_and_the_summary_on_stderr(world: World) -> None:
    before, _ = leavers_gone(world)
    leaver_run = audit_runs(world.folder)[-1][0]
    result = world.run("revert", log(world), "-y", "--format", "json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)  # one document: the apply summary went to stderr
    assert plan["source"] == f"revert of run {leaver_run}"
    ops = [(o["op"], o["account"], o["group"]) for t in plan["targets"] for o in t["operations"]]
    expected = [("reactivate_user", p["username"], None) for p in LEAVERS]
    expected += [
        ("add_member", user, g)
        for user, (_, groups) in before.items()
        if user.startswith("leaver")
        for g in groups - {"scimsync-managed"}
    ]
    assert sorted(ops, key=str) == sorted(expected, key=str)
    assert "apply" in result.stderr and snapshot(world) == before


def test_revert_waits_for_no_one_while_another_run_holds_the_lock(world: World) -> None:
    from scimsync.lock import run_lock

    _, gone = leavers_gone(world)
    world.sim.log.clear()
    with run_lock(world.folder / "run.lock"):
        result = world.run("revert", log(world), "-y")
    assert result.exit_code == 1
    assert "another scimsync run is writing" in result.stderr
    assert world.sim.log.writes() == []
    assert snapshot(world) == gone


def with_admins_rule(world: World, people: list[dict[str, Any]], *, privileged: bool = True) -> None:
    world.write(people)
    rule = PRIVILEGED_RULE if privileged else PRIVILEGED_RULE.replace("        privileged: true\n", "")
    text = world.config.read_text()
    anchor = '        to: "jira-{{ group.name }}"\n'
    world.config.write_text(text.replace(anchor, anchor + rule, 1))


def test_a_revert_never_puts_anyone_back_in_a_privileged_group(world: World) -> None:
    # Whatever the rules say now: privileges come back only through a plan, from the source.
    amara = world.record("amara")
    amara["groups"] = [*amara["groups"], "admins"]
    with_admins_rule(world, world.people)
    apply(world)
    assert "jira-administrators" in snapshot(world)["amara"][1]
    amara = world.record("amara")  # write() copied the records
    amara["groups"] = [g for g in amara["groups"] if g != "admins"]  # her admin rights end
    with_admins_rule(world, world.people)
    apply(world)
    after = snapshot(world)
    assert "jira-administrators" not in after["amara"][1] and after["amara"][0]

    for privileged in (False, True):
        with_admins_rule(world, world.people, privileged=privileged)
        world.sim.log.clear()
        result = world.run("revert", log(world), "-y")
        assert result.exit_code == 1, result.output
        assert (
            "cannot add_member jira-administrators: 'jira-administrators' is a privileged group: "
            "a revert never gives privileges back" in result.stdout
        )
        assert world.sim.log.writes() == []
        assert snapshot(world) == after


def test_deletions_are_named_and_not_undone(world: World) -> None:
    world.write(STAFF + LEAVERS[:2])
    apply(world)
    world.write(STAFF)
    world.config.write_text(world.config.read_text().replace("policy:\n", "policy:\n  deprovision: delete\n"))
    apply(world)
    run = audit_runs(world.folder)[-1][0]
    world.sim.log.clear()
    result = world.run("revert", log(world), "-y")
    assert result.exit_code == 0, result.stderr
    assert world.sim.log.writes() == []
    for name in ("leaver0", "leaver1"):
        assert (
            f"note {name}: deleted by run {run}: a deletion cannot be undone (apply creates a new account "
            "when the person is in scope)" in result.stdout
        )


def test_a_run_on_another_instance_of_the_target_is_refused(world: World) -> None:
    leavers_gone(world)
    text = world.config.read_text()
    world.config.write_text(text.replace(world.url, "http://127.0.0.1:9"))
    result = world.run("revert", log(world), "-y")
    assert result.exit_code == 1
    run = audit_runs(world.folder)[-1][0]
    assert result.stderr.endswith(
        f"error: run {run} wrote to target 'jira' at {world.url}, and the config points it at "
        "http://127.0.0.1:9: refusing to revert on another instance\n"
    )


# --- the undo itself, from hand-written audit records (no I/O) ----------------------------


def record(path: Path, run: str, op: Operation, result: str = "done", message: str = "") -> None:
    AuditLog(path, run_id=run).record(op, result, message)


def op(kind: OpKind, account: str, account_id: str | None, group: str | None = None, **kw: Any) -> Operation:
    return Operation(
        kind=kind, target="jira", account=account, reason="r", account_id=account_id, group=group, **kw
    )


def test_undo_skips_what_did_not_write_and_keeps_the_owner_group(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    record(path, "r1", op(OpKind.DEACTIVATE_USER, "ann", "K1"))
    record(path, "r1", op(OpKind.DEACTIVATE_USER, "bob", "K2"), message=NOT_WRITTEN)  # someone did it first
    record(path, "r1", op(OpKind.DEACTIVATE_USER, "cy", "K3"), result="failed", message="HTTP 400")
    record(path, "r1", op(OpKind.ADD_MEMBER, "dee", "K4", "scimsync-managed"))  # adopted
    record(path, "r1", op(OpKind.ADD_MEMBER, "dee", "K4", "jira-devs"))
    record(path, "r1", op(OpKind.CREATE_USER, "eve", None))
    record(path, "r1", op(OpKind.ADD_MEMBER, "eve", None, "jira-devs"))
    rename = op(OpKind.UPDATE_USER, "fay", "K6", changes=(FieldChange("username", "fay", "faye"),))
    record(path, "r1", rename)
    record(path, "r1", op(OpKind.REMOVE_MEMBER, "fay", "K6", "jira-ops"))
    (run,) = read_runs(path)
    result = undo(run, "jira", owner_group="scimsync-managed")
    assert [(o.kind, o.account, o.account_id, o.group) for o in result.operations] == [
        (OpKind.REACTIVATE_USER, "ann", "K1", None),
        (OpKind.ADD_MEMBER, "faye", "K6", "jira-ops"),
        (OpKind.REMOVE_MEMBER, "dee", "K4", "jira-devs"),
    ]
    assert [(n.account, n.kind) for n in result.notices] == [("dee", "kept"), ("run r1", "not_reverted")]
    assert result.notices[1].message == "1 creation (and their 1 membership), 1 update: not reverted"


def test_records_without_a_url_are_read(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    record(path, "old", op(OpKind.REMOVE_MEMBER, "ann", "K1", "jira-devs"))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert "url" not in lines[0]
    (run,) = read_runs(path)
    assert [(o.kind, o.group) for o in undo(run, "jira", owner_group="m").operations] == [
        (OpKind.ADD_MEMBER, "jira-devs")
    ]


def test_a_chained_line_that_is_no_audit_record_is_a_clean_error(tmp_path: Path) -> None:
    from scimsync.audit import GENESIS, _digest
    from scimsync.revert import RevertError

    path = tmp_path / "audit.jsonl"
    entry: dict[str, Any] = {"run": "r1", "time": "t", "target": "jira", "op": "frobnicate", "prev": GENESIS}
    entry["hash"] = _digest(entry)
    path.write_text(json.dumps(entry) + "\n")
    assert verify(path) == (1, None)
    with pytest.raises(
        RevertError, match=r"line 1: not an audit record \('frobnicate' is not a valid OpKind\)"
    ):
        read_runs(path)
