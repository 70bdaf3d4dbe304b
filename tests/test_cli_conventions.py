"""CLI conventions: global options anywhere, NO_COLOR / TERM=dumb, --lock-timeout,
`audit verify` without an argument, and demo hints that work as printed."""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import World, make_world

from scimsync.errors import LockError
from scimsync.lock import run_lock
from scimsync.sim.demo import command_name

TOKEN = "conventions-token-77"
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colours(text: str) -> list[str]:
    """Return the SGR sequences that set a colour (bold or italic are not colour: no-color.org)."""

    def colour(params: str) -> bool:
        codes = [int(p) for p in params.split(";") if p]
        return any(30 <= c <= 38 or 40 <= c <= 48 or 90 <= c <= 97 or 100 <= c <= 107 for c in codes)

    return [m.group(0) for m in SGR.finditer(text) if colour(m.group(1))]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    yield from make_world(tmp_path, TOKEN, version="10.3.1")


# --- global options after the command ------------------------------------------------------


def test_global_options_after_the_command_act_as_before_it(world: World, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scimsync.cli import cli

    runner = CliRunner()
    os.chdir(tmp_path)  # the default ./scimsync.yaml does not exist here: -c must be honoured
    before = runner.invoke(cli, ["-q", "-c", str(world.config), "plan", "--format", "json"])
    after = runner.invoke(cli, ["plan", "--format", "json", "-q", "-c", str(world.config)])
    assert before.exit_code == after.exit_code == 0, after.output
    strip = [line for line in after.stdout.splitlines() if '"created_at"' not in line]
    assert strip == [line for line in before.stdout.splitlines() if '"created_at"' not in line]
    assert '"create_user"' in after.stdout


def test_a_config_given_after_the_command_wins_over_one_before_it(world: World, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scimsync.cli import cli

    missing = tmp_path / "missing.yaml"
    good = CliRunner().invoke(cli, ["-c", str(missing), "validate", "-c", str(world.config)])
    assert good.exit_code == 0 and good.stdout.startswith(f"config OK: {world.config}")
    bad = CliRunner().invoke(cli, ["-c", str(world.config), "validate", "--config", str(missing)])
    assert bad.exit_code == 1 and bad.stderr.startswith(f"error: config {missing}")


def test_verbose_after_the_command_shows_a_traceback_on_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scimsync.cli import cli

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nsource: [\n")
    quiet = CliRunner().invoke(cli, ["validate", "-c", str(broken)])
    loud = CliRunner().invoke(cli, ["validate", "-c", str(broken), "-v"])
    assert quiet.exit_code == loud.exit_code == 1
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr


def test_nested_commands_take_global_options_too(world: World) -> None:
    from click.testing import CliRunner

    from scimsync.cli import cli

    assert world.run("apply", "-y").exit_code == 0
    result = CliRunner().invoke(cli, ["audit", "verify", "-c", str(world.config)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("audit log OK: ")


# --- colour ---------------------------------------------------------------------------------


def _plan_on_a_terminal(world: World, **env: str) -> str:
    """Run `scimsync plan` in a child process whose stdout is a pseudo-terminal; return it."""
    leader, follower = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    environment |= {"E2E_JIRA_TOKEN": TOKEN, "TERM": "xterm-256color", "COLUMNS": "200", **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "scimsync", "-c", str(world.config), "plan"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0
    return b"".join(chunks).decode(errors="replace")


def test_colour_on_a_terminal_and_none_with_no_color_or_a_dumb_terminal(world: World) -> None:
    coloured = _plan_on_a_terminal(world)
    assert "create" in coloured and colours(coloured)  # the oracle: a terminal does get colour
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        plain = _plan_on_a_terminal(world, **env)
        assert "create" in plain and not colours(plain), env


# --- --lock-timeout -------------------------------------------------------------------------


def test_lock_timeout_waits_for_the_other_run_to_finish(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    released = threading.Event()
    holding = threading.Event()

    def other_run() -> None:
        with run_lock(lock):
            holding.set()
            released.wait(10)

    thread = threading.Thread(target=other_run)
    thread.start()
    holding.wait(10)
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        released.set()  # the other run finishes while this one waits
        time.sleep(0.05)

    try:
        with run_lock(lock, timeout=30, sleep=nap):
            pass
    finally:
        released.set()
        thread.join()
    assert naps  # it did wait, and then got the lock


def test_lock_timeout_gives_up_with_the_wait_named(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    with run_lock(lock), pytest.raises(LockError, match=r"after waiting 0\.3 s"), run_lock(lock, timeout=0.3):
        pass
    with run_lock(lock), pytest.raises(LockError) as raised, run_lock(lock):
        pass
    assert "after waiting" not in str(raised.value)
    assert "--lock-timeout" in str(raised.value)


def test_apply_with_lock_timeout_on_a_held_lock_exits_1_without_writes(world: World) -> None:
    with run_lock(world.folder / "run.lock"):
        result = world.run("apply", "-y", "--lock-timeout", "0.4")
    assert result.exit_code == 1
    assert "another scimsync run is writing" in result.stderr
    assert "after waiting 0.4 s" in result.stderr
    assert world.sim.log.writes() == []
    assert world.run("apply", "-y", "--lock-timeout", "5").exit_code == 0


# --- audit verify without an argument -------------------------------------------------------


def test_audit_verify_defaults_to_the_configs_audit_log(world: World) -> None:
    assert world.run("apply", "-y").exit_code == 0
    ok = world.run("audit", "verify")
    assert ok.exit_code == 0, ok.output
    lines = (world.folder / "audit.jsonl").read_text().splitlines()
    assert ok.stdout == f"audit log OK: {len(lines)} lines, hash chain intact\n"
    (world.folder / "audit.jsonl").write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    broken = world.run("audit", "verify")
    assert broken.exit_code == 1 and "line 3: chain broken" in broken.stderr


def test_audit_verify_without_a_log_anywhere_says_so(world: World) -> None:
    world.config.write_text(world.config.read_text().replace("audit_log: audit.jsonl\n", "audit_log: null\n"))
    result = world.run("audit", "verify")
    assert result.exit_code == 1
    assert result.stderr == f"error: audit verify: {world.config} sets no audit_log; name the file\n"
    missing = world.run("audit", "verify", str(world.folder / "nope.jsonl"))
    assert missing.exit_code == 1
    assert missing.stderr == f"error: audit log {world.folder / 'nope.jsonl'}: no such file\n"


# --- the demo's hints -----------------------------------------------------------------------


def test_command_name_is_what_a_new_shell_can_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    script = venv / "scimsync"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name(".venv/bin/scimsync") == ".venv/bin/scimsync"  # make demo's way
    assert command_name(str(script)) == str(script)
    monkeypatch.setenv("PATH", f"{venv}:/usr/bin:/bin")
    assert command_name(".venv/bin/scimsync") == "scimsync"  # the venv is active
    assert command_name("/opt/elsewhere/scimsync") == "/opt/elsewhere/scimsync"


def test_the_demo_without_keep_names_no_folder_it_removed() -> None:
    from click.testing import CliRunner

    from scimsync.cli import cli

    result = CliRunner().invoke(cli, ["demo", "--target", "jira"])
    assert result.exit_code == 0, result.output
    hints = result.stdout.split("What to try next", 1)[1]
    assert "scimsync-demo-" not in hints
    assert "demo --keep --target jira" in hints


def test_the_demo_keep_hints_run_as_printed(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
    command = [sys.executable, "-m", "scimsync", "demo", "--keep", "--target", "jira"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    ) as process:
        watchdog = threading.Timer(90, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            seen = []
            for line in process.stdout:
                seen.append(line)
                if "keep running until Ctrl-C" in line:
                    break
            hints = "".join(seen).split("What to try next", 1)[1]
            plans = [h.strip() for h in hints.splitlines() if h.strip().endswith(" plan")]
            assert len(plans) == 1, hints
            ran = subprocess.run(
                shlex.split(plans[0]), capture_output=True, text=True, cwd=tmp_path, timeout=60
            )
            assert ran.returncode == 0, ran.stderr
            assert "No changes" in ran.stdout
        finally:
            watchdog.cancel()
            process.send_signal(2)
            process.communicate(timeout=30)
