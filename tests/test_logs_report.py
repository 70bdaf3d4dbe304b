"""Logs for machines and progress without a terminal: `-v` phase lines, `--log-format json` on
every stderr line with one run id, `apply --format json`, the `--report` file, progress lines."""

from __future__ import annotations

import io
import json
import logging
import re
import stat
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import STAFF, World, make_world
from rich.console import Console

from scimsync import render
from scimsync.engine.apply import ApplyResult, OpResult, Status, TargetResult
from scimsync.engine.plan import Operation, OpKind

TOKEN = "logs-token-3c9d"
KINDS = [k.value for k in OpKind]
STATUSES = ["done", "failed", "stale", "skipped"]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    monkeypatch.delenv("SCIMSYNC_PROGRESS_INTERVAL", raising=False)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # retries wait for nothing
    yield from make_world(tmp_path, TOKEN, version="10.3.1")


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Parse every stderr line as JSON (a line that is not JSON fails the test)."""
    lines = stderr.splitlines()
    assert lines, "expected log lines on stderr"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"stderr line is not JSON: {line!r}")
    return parsed


def one_run_id(lines: list[dict[str, Any]]) -> str:
    ids = {line.get("run_id") for line in lines}
    assert len(ids) == 1 and None not in ids, ids
    return str(ids.pop())


def planned_counts(world: World) -> dict[str, Counter[str]]:
    """Count the operations per target and kind from `plan --format json` (the oracle)."""
    result = world.run("plan", "--format", "json")
    assert result.exit_code in (0, 3), result.output
    plan = json.loads(result.stdout)
    return {t["target"]: Counter(op["op"] for op in t["operations"]) for t in plan["targets"]}


def audit_counts(world: World, run_id: str) -> Counter[tuple[str, str]]:
    """Count (operation kind, result) in the audit log lines of one run."""
    entries = [json.loads(x) for x in (world.folder / "audit.jsonl").read_text().splitlines()]
    return Counter((e["op"], e["result"]) for e in entries if e["run"] == run_id)


def read_report(path: Path) -> dict[str, Any]:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the report names people: mode 0600"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# --- --log-format json: every line, one run id; the report in every outcome ----------------


def test_plan_json_logs_and_report(world: World) -> None:
    expected = planned_counts(world)
    report, saved = world.folder / "report.json", world.folder / "plan.json"
    world.sim.log.clear()
    result = world.run("--log-format", "json", "-v", "plan", "--out", str(saved), "--report", str(report))
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stderr)
    run_id = one_run_id(lines)
    messages = [line["message"] for line in lines]
    assert any(m.startswith("read source file: 5 users, 2 groups in ") for m in messages), messages
    assert any(m.startswith("read target jira: ") for m in messages), messages
    assert f"Saved the plan to {saved}; apply it with: scimsync apply {saved}" in messages

    data = read_report(report)
    assert (data["run_id"], data["command"], data["exit_code"], data["outcome"]) == (run_id, "plan", 0, "ok")
    ops = data["targets"]["jira"]["operations"]
    assert {k: ops[k]["planned"] for k in KINDS} == {k: expected["jira"][k] for k in KINDS}
    assert all(ops[k][s] == 0 for k in KINDS for s in STATUSES), "plan never applies anything"
    assert data["totals"]["planned"] == sum(expected["jira"].values()) > 0
    # Every request the simulator received was counted, and a file source sends none.
    assert data["requests"] == {"source": 0, "jira": len(world.sim.log.entries)}
    assert data["requests"]["jira"] > 0
    assert {"read source", "read target jira"} <= set(data["durations"])
    assert data["failures"] == [] and data["guards"] == []


def test_apply_json_logs_report_and_audit_share_the_run_id(world: World) -> None:
    expected = planned_counts(world)["jira"]
    report = world.folder / "report.json"
    world.sim.log.clear()
    result = world.run("--log-format", "json", "-v", "apply", "-y", "--report", str(report))
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stderr)
    run_id = one_run_id(lines)
    # One INFO line per applied operation, naming target, kind, account and status.
    applied = [line for line in lines if line["logger"] == "scimsync.apply"]
    assert Counter(line["kind"] for line in applied) == expected
    assert {(line["target"], line["status"]) for line in applied} == {("jira", "done")}

    audit = audit_counts(world, run_id)
    assert audit == Counter({(kind, "done"): n for kind, n in expected.items()}), "audit log uses the run id"
    data = read_report(report)
    assert (data["run_id"], data["command"], data["exit_code"]) == (run_id, "apply", 0)
    ops = data["targets"]["jira"]["operations"]
    assert {k: (ops[k]["planned"], ops[k]["done"]) for k in KINDS} == {
        k: (expected[k], expected[k]) for k in KINDS
    }
    assert data["requests"]["jira"] == len(world.sim.log.entries) > len(world.sim.log.writes()) > 0
    assert "apply" in data["durations"]


def test_a_failed_operation_is_in_the_report_with_its_message(world: World) -> None:
    expected = planned_counts(world)["jira"]
    world.sim.faults.inject(
        400, method="POST", path="/rest/api/2/user", body={"errorMessages": ["bad email"]}
    )
    report = world.folder / "report.json"
    result = world.run("--log-format", "json", "apply", "-y", "--report", str(report))
    assert result.exit_code == 1, result.output
    lines = json_lines(result.stderr)
    run_id = one_run_id(lines)
    failed_lines = [line for line in lines if line["message"].startswith("failed: jira create_user ")]
    assert len(failed_lines) == 1 and failed_lines[0]["level"] == "error"

    audit = audit_counts(world, run_id)  # the oracle: what the audit log says happened
    data = read_report(report)
    assert data["exit_code"] == 1 and data["outcome"] == "error"
    ops = data["targets"]["jira"]["operations"]
    for kind in KINDS:
        assert ops[kind]["planned"] == expected[kind], kind
        assert {s: ops[kind][s] for s in STATUSES} == {s: audit[(kind, s)] for s in STATUSES}, kind
    assert [(f["kind"], f["status"]) for f in data["failures"]] == [("create_user", "failed")]
    assert "bad email" in data["failures"][0]["message"]
    assert data["failures"][0]["account"] == failed_lines[0]["account"]


def test_wrong_token_json_error_line_and_report(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2E_JIRA_TOKEN", "wrong-token-000")
    report = world.folder / "report.json"
    result = world.run("--log-format", "json", "plan", "--report", str(report))
    assert result.exit_code == 1
    lines = json_lines(result.stderr)
    run_id = one_run_id(lines)
    assert lines[-1]["level"] == "error"
    assert lines[-1]["message"] == (
        "error: jira: GET /rest/api/2/serverInfo: HTTP 401 Unauthorized: the credentials were rejected"
    )
    data = read_report(report)
    assert (data["run_id"], data["exit_code"]) == (run_id, 1)
    assert data["targets"]["jira"]["error"].endswith("HTTP 401 Unauthorized: the credentials were rejected")
    assert [(f["target"], f["status"]) for f in data["failures"]] == [("jira", "not planned")]
    assert data["requests"]["jira"] >= 1
    assert "wrong-token-000" not in report.read_text() + result.stderr


def test_guard_exit_json_error_line_and_report(world: World) -> None:
    assert world.run("apply", "-y").exit_code == 0
    world.write(STAFF[:1])  # four leavers, over max_deactivations (3)
    expected = planned_counts(world)["jira"]
    assert expected["deactivate_user"] == 4
    world.sim.log.clear()
    report = world.folder / "report.json"
    result = world.run("--log-format", "json", "apply", "-y", "--report", str(report))
    assert result.exit_code == 3, result.output
    assert world.sim.log.writes() == []
    lines = json_lines(result.stderr)
    run_id = one_run_id(lines)
    assert lines[-1]["level"] == "error" and lines[-1]["exit_code"] == 3
    assert lines[-1]["message"].startswith("error: safety guard: ")
    data = read_report(report)
    assert (data["run_id"], data["exit_code"], data["outcome"]) == (run_id, 3, "guard")
    assert data["error"] == lines[-1]["message"].removeprefix("error: ")
    assert [(g["guard"], g["count"], g["limit"]) for g in data["guards"]] == [("max_deactivations", 4, 3)]
    ops = data["targets"]["jira"]["operations"]
    assert {k: ops[k]["planned"] for k in KINDS} == {k: expected[k] for k in KINDS}
    assert data["totals"]["done"] == 0


def test_an_error_before_any_plan_is_json_and_reported(world: World) -> None:
    report = world.folder / "report.json"
    result = world.run("--log-format", "json", "plan", "--target", "wiki", "--report", str(report))
    assert result.exit_code == 1
    (line,) = json_lines(result.stderr)
    assert line["message"] == "error: --target wiki: no such target (targets: jira)"
    data = read_report(report)
    assert (data["run_id"], data["exit_code"], data["targets"]) == (line["run_id"], 1, {})
    assert data["error"] == "--target wiki: no such target (targets: jira)"


def test_interrupt_writes_the_report_with_130(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from scimsync import api

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "apply", interrupted)
    report = world.folder / "report.json"
    result = world.run("apply", "-y", "--report", str(report))
    assert result.exit_code == 130
    assert result.stderr.endswith("error: interrupted\n")
    data = read_report(report)
    assert (data["exit_code"], data["outcome"]) == (130, "interrupted")
    assert data["totals"]["planned"] > 0 and data["totals"]["done"] == 0


def test_warnings_usage_errors_and_tracebacks_are_json_too(world: World, tmp_path: Path) -> None:
    assert world.run("apply", "-y").exit_code == 0
    (world.folder / "scimsync-state.json").unlink()  # missing after a run: a warning
    warned = world.run("--log-format", "json", "plan")
    assert warned.exit_code == 0
    (warning,) = [x for x in json_lines(warned.stderr) if x["level"] == "warning"]
    assert warning["message"].startswith("warning: state file")

    usage = world.run("--log-format", "json", "plan", "--no-such-option")
    assert usage.exit_code == 1
    (line,) = json_lines(usage.stderr)
    assert line["level"] == "error" and "--no-such-option" in line["message"]

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nsource: [\n")
    loud = world.run("--log-format", "json", "-v", "validate", "-c", str(broken))
    assert loud.exit_code == 1
    (line,) = json_lines(loud.stderr)
    assert line["message"].startswith(f"error: config {broken}") and "Traceback" in line["traceback"]


def test_text_mode_stays_plain(world: World) -> None:
    result = world.run("-v", "plan")
    assert result.exit_code == 0
    expected = planned_counts(world)["jira"]
    memberships = expected["add_member"] + expected["remove_member"]
    assert "INFO scimsync.api: read source file: 5 users, 2 groups in " in result.stderr
    assert re.search(r"^INFO scimsync.api: read target jira: \d+ accounts in \d+\.\d s$", result.stderr, re.M)
    assert (
        f"INFO scimsync.api: plan jira: {expected['create_user']} to create, 0 to update, 0 to deactivate, "
        f"{memberships} membership changes, {expected['create_group']} groups to create"
    ) in result.stderr
    assert "{" not in result.stderr
    quiet = world.run("plan")
    assert quiet.stderr == "", "without -v nothing but problems on stderr"


# --- apply --format json -----------------------------------------------------------------


def test_apply_format_json_matches_the_audit_log(world: World) -> None:
    world.sim.faults.inject(
        400, method="POST", path="/rest/api/2/user", body={"errorMessages": ["bad email"]}
    )
    result = world.run("apply", "-y", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)  # stdout is exactly the JSON result: no plan table
    (target,) = data["targets"]
    audit = [json.loads(x) for x in (world.folder / "audit.jsonl").read_text().splitlines()]
    assert data["run_id"] == audit[0]["run"]
    assert sorted((o["kind"], o["account"], o["group"], o["status"]) for o in target["operations"]) == sorted(
        (a["op"], a["account"], a["group"], a["result"]) for a in audit
    )
    assert {s: target[s] for s in STATUSES} == {s: sum(a["result"] == s for a in audit) for s in STATUSES}
    assert data["ok"] is False and target["failed"] == 1
    (failed,) = [o for o in target["operations"] if o["status"] == "failed"]
    assert "bad email" in failed["message"]
    again = world.run("apply", "-y", "--format", "json")
    assert json.loads(again.stdout)["targets"][0]["failed"] == 0


def test_apply_format_json_without_changes_is_still_json(world: World) -> None:
    assert world.run("apply", "-y").exit_code == 0
    result = world.run("apply", "-y", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["targets"] == []


def _result() -> ApplyResult:
    def op(kind: OpKind, account: str) -> Operation:
        return Operation(kind, "jira", account, "reason")

    jira = (
        OpResult(op(OpKind.CREATE_USER, "amara"), Status.DONE),
        OpResult(op(OpKind.CREATE_USER, "bruno"), Status.FAILED, "HTTP 400: bad email"),
        OpResult(op(OpKind.ADD_MEMBER, "bruno"), Status.SKIPPED, "the account was not created in this run"),
        OpResult(op(OpKind.DEACTIVATE_USER, "chen"), Status.STALE, "the target changed since"),
    )
    wiki = (OpResult(op(OpKind.UPDATE_USER, "dalia"), Status.DONE),)
    return ApplyResult((TargetResult("jira", jira), TargetResult("wiki", wiki)))


def test_apply_json_and_table_say_the_same() -> None:
    out = io.StringIO()
    consoles = render.Consoles(Console(file=out, width=100, no_color=True), Console(file=io.StringIO()))
    render.render_apply(_result(), consoles)
    rows = {
        cells[0]: [int(c) for c in cells[1:]]
        for line in out.getvalue().splitlines()
        if len(cells := [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]) == 5 and cells[1].isdigit()
    }
    assert rows == {"jira": [1, 1, 1, 1], "wiki": [1, 0, 0, 0]}
    out.seek(0)
    out.truncate()
    render.render_apply(_result(), consoles, "json")
    data = json.loads(out.getvalue())
    assert {t["target"]: [t[s] for s in STATUSES] for t in data["targets"]} == rows
    assert [(o["account"], o["status"], o["message"]) for o in data["targets"][0]["operations"]] == [
        ("amara", "done", ""),
        ("bruno", "failed", "HTTP 400: bad email"),
        ("bruno", "skipped", "the account was not created in this run"),
        ("chen", "stale", "the target changed since"),
    ]


# --- progress without a terminal ---------------------------------------------------------


def test_progress_lines_without_a_terminal_and_none_with_q(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCIMSYNC_PROGRESS_INTERVAL", "0")
    operations = sum(planned_counts(world)["jira"].values())
    result = world.run("apply", "-y")
    assert result.exit_code == 0
    lines = re.findall(r"^apply jira: (\d+)/(\d+)", result.stderr, re.M)
    assert len(lines) == operations, "interval 0: a line per report"
    assert {int(total) for _, total in lines} == {operations}
    assert re.search(r"^jira: users: \d+", result.stderr, re.M), "reads report progress too"
    world.write([*STAFF[:4]])
    quiet = world.run("-q", "apply", "-y")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_progress_lines_every_interval_with_their_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(render, "say", lambda message, **fields: said.append((message, fields)))
    now = [100.0]
    lines = render.ProgressLines(10, clock=lambda: now[0])
    for at, done in [(0, 0), (5, 5), (9.9, 9), (10, 20), (15, 30), (21, 42), (25, 50)]:
        now[0] = 100.0 + at
        lines("apply jira", done, 50)
    now[0] = 103.0
    lines("jira: users", 7, None)  # another phase keeps its own clock: silent for its first 10 s
    assert [m for m, _ in said] == ["apply jira: 20/50 (2.0/s)", "apply jira: 42/50 (2.0/s)"]
    assert said[0][1] == {"phase": "apply jira", "done": 20, "total": 50, "rate": 2.0}


@pytest.mark.parametrize(
    ("term", "quiet", "expected"),
    [("xterm", False, "bars"), ("dumb", False, "lines"), ("xterm", True, "none")],
)
def test_bars_only_on_a_real_terminal(term: str, quiet: bool, expected: str) -> None:
    err = Console(file=io.StringIO(), force_terminal=True, _environ={"TERM": term})
    consoles = render.Consoles(Console(file=io.StringIO()), err, quiet=quiet)
    with render.progress(consoles, interval=0) as report:
        kind = "lines" if isinstance(report, render.ProgressLines) else "none" if quiet else "bars"
        report("apply jira", 1, 2)
    assert kind == expected


def test_a_bad_progress_interval_is_a_clear_error(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIMSYNC_PROGRESS_INTERVAL", "soon")
    result = world.run("plan")
    assert result.exit_code == 1
    assert result.stderr == "error: SCIMSYNC_PROGRESS_INTERVAL: not a number of seconds: 'soon'\n"


def test_console_lines_reach_logging_in_json(caplog: pytest.LogCaptureFixture) -> None:
    from scimsync.cli.logs import RedactingFormatter

    with caplog.at_level(logging.INFO, logger=render.CONSOLE_LOGGER):
        render.say("warning: something", level=logging.WARNING, target="jira")
    (record,) = caplog.records
    line = json.loads(RedactingFormatter("json").format(record))
    assert (line["level"], line["message"], line["target"]) == ("warning", "warning: something", "jira")
    assert RedactingFormatter("text").format(record) == "warning: something"


def test_other_libraries_warnings_keep_the_format(monkeypatch: pytest.MonkeyPatch) -> None:
    from scimsync.cli.logs import setup_logging

    monkeypatch.setattr(logging, "lastResort", logging.lastResort)  # put back after the test
    setup_logging(0, False, "json")
    try:
        record = logging.LogRecord(
            "urllib3.connectionpool", logging.WARNING, __file__, 1, "Connection pool is full", None, None
        )
        assert logging.lastResort is not None
        line = json.loads(logging.lastResort.format(record))
    finally:
        setup_logging(0, False, "text")
    assert line["message"] == "Connection pool is full" and line["level"] == "warning" and line["run_id"]
