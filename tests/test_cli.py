"""CLI: exit codes and the exact error line for each main failure. These strings are product."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import World, make_world

TOKEN = "cli-token-5e0c"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # retries wait for nothing
    yield from make_world(tmp_path, TOKEN, version="10.3.1")


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def edit_config(world: World, old: str, new: str) -> None:
    world.config.write_text(world.config.read_text().replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("    token:", "    tokn:", "targets.jira.tokn: unknown key (did you mean 'token'?)"),
        ("E2E_JIRA_TOKEN", "MISSING_VAR", "targets.jira.token: environment variable MISSING_VAR is not set"),
        (
            "{{ user.username }}",
            "{{ user.username ",
            "mapping.username: template error: unexpected end of template, "
            "expected 'end of print statement' (line 1)",
        ),
    ],
    ids=["typo", "missing-env", "broken-template"],
)
def test_validate_names_the_key_path(world: World, old: str, new: str, line: str) -> None:
    edit_config(world, old, new)
    result = world.run("validate")
    assert result.exit_code == 1
    assert result.stderr == f"error: config {world.config}: {line}\n"


def test_validate_ok(world: World) -> None:
    result = world.run("validate")
    assert result.exit_code == 0
    assert result.stdout == f"config OK: {world.config}: source file; targets jira (jira)\n"


def test_missing_config_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scimsync.cli import cli

    result = CliRunner().invoke(cli, ["-c", str(tmp_path / "nope.yaml"), "plan"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: config {tmp_path / 'nope.yaml'}")


def test_wrong_token_is_401(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2E_JIRA_TOKEN", "wrong-token-000")
    result = world.run("plan")
    assert result.exit_code == 1
    assert last_line(result.stderr) == (
        "error: jira: GET /rest/api/2/serverInfo: HTTP 401 Unauthorized: the credentials were rejected"
    )


def test_non_admin_is_403(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.sim.add_account("viewer", token="viewer-token-1")
    monkeypatch.setenv("E2E_JIRA_TOKEN", "viewer-token-1")
    result = world.run("plan")
    assert result.exit_code == 1
    assert last_line(result.stderr) == (
        "error: jira: GET /rest/api/2/user/list: HTTP 403 Forbidden: "
        "You do not have the permission to perform this operation: Jira Administrators only."
    )


def test_wrong_url_is_404(world: World) -> None:
    world.url += "/wrong"
    world.write()
    result = world.run("plan")
    assert result.exit_code == 1
    assert last_line(result.stderr) == (
        "error: jira: GET /rest/api/2/serverInfo: HTTP 404 Not Found: "
        "No resource at /wrong/rest/api/2/serverInfo"
    )


def test_repeated_429_gives_up_with_a_clear_line(world: World) -> None:
    # 429s wait as the server says, within a time budget of max(60 s, 10 x timeout).
    world.sim.faults.rate_limit(100, retry_after=1)
    result = world.run("plan")
    assert result.exit_code == 1
    assert last_line(result.stderr) == (
        "error: jira: GET /rest/api/2/serverInfo: HTTP 429 Too Many Requests: "
        "still rate limited after 61 attempts (60 s)"
    )


def test_a_few_429s_are_absorbed(world: World) -> None:
    world.sim.faults.rate_limit(2, retry_after=1)
    result = world.run("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output


def test_unreachable_system(world: World) -> None:
    world.url = "http://127.0.0.1:1"
    world.write()
    result = world.run("plan")
    assert result.exit_code == 1
    assert last_line(result.stderr) == (
        "error: jira: GET /rest/api/2/serverInfo: connection refused (3 attempts)"
    )
    check = world.run("check", "--format", "json")
    assert check.exit_code == 1
    assert json.loads(check.stdout) == [
        {"system": "source", "type": "file", "ok": True, "detail": "file with 5 users"},
        {"system": "jira", "type": "jira", "ok": False, "detail": "connection refused (3 attempts)"},
    ]


def test_check_ok(world: World) -> None:
    result = world.run("check")
    assert result.exit_code == 0
    assert "Jira 10.3.1, signed in as admin" in result.stdout


def test_unknown_target_name(world: World) -> None:
    result = world.run("plan", "--target", "wiki")
    assert result.exit_code == 1
    assert result.stderr == "error: --target wiki: no such target (targets: jira)\n"


def test_detailed_exitcode(world: World) -> None:
    assert world.run("plan").exit_code == 0
    assert world.run("plan", "--detailed-exitcode").exit_code == 2
    assert world.run("apply", "-y").exit_code == 0
    assert world.run("plan", "--detailed-exitcode").exit_code == 0


def test_guard_line_names_guard_count_and_limit(world: World) -> None:
    assert world.run("apply", "-y").exit_code == 0
    world.write(world.people[:1])
    result = world.run("plan")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == (
        "error: safety guard: max_deactivations: plan deprovisions 4 accounts on target 'jira', limit is 3 "
        "(policy.max_deactivations); check the source, or re-run with --allow-deactivations 4"
    )
    assert last_line(result.stderr) == "nothing was written"


def test_lock_held_by_another_run(world: World) -> None:
    from scimsync.lock import run_lock

    with run_lock(world.folder / "run.lock"):
        result = world.run("apply", "-y")
    assert result.exit_code == 1
    assert "another scimsync run is writing" in result.stderr
    assert world.sim.log.writes() == []


def test_audit_verify(world: World) -> None:
    assert world.run("apply", "-y").exit_code == 0
    log = world.folder / "audit.jsonl"
    ok = world.run("audit", "verify", str(log))
    assert ok.exit_code == 0 and ok.stdout.startswith("audit log OK: 22 lines")
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    broken = world.run("audit", "verify", str(log))
    assert broken.exit_code == 1
    assert broken.stderr == (
        f"error: audit log {log}: line 4: chain broken (a line before it was changed or removed)\n"
    )


def test_version() -> None:
    from click.testing import CliRunner

    from scimsync import __version__
    from scimsync.cli import cli

    assert CliRunner().invoke(cli, ["--version"]).output.strip() == f"scimsync, version {__version__}"


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--detailed-exitcode", "--taget", "jira"],
        ["plan", "--format", "yaml"],
        ["plan", "--allow-deactivations", "-1"],
        ["no-such-command"],
    ],
    ids=["unknown-option", "bad-choice", "negative", "unknown-command"],
)
def test_usage_errors_exit_1_never_2(world: World, args: list[str]) -> None:
    # 2 means "plan found changes" to CI scripts; a typo must never look like that.
    result = world.run(*args)
    assert result.exit_code == 1
    assert "Error:" in result.stderr
    assert world.sim.log.writes() == []


def test_allow_deactivations_with_a_plan_file_is_refused(world: World) -> None:
    plan_file = world.folder / "plan.json"
    assert world.run("plan", "--out", str(plan_file)).exit_code == 0
    result = world.run("apply", str(plan_file), "--allow-deactivations", "5")
    assert result.exit_code == 1
    assert last_line(result.stderr) == (
        "error: --allow-deactivations acts when planning: "
        "run `scimsync plan --allow-deactivations N --out FILE`"
    )
    assert world.sim.log.writes() == []
