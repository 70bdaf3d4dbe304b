"""``scimsync demo`` with each IdP and each target: it converges, and it leaves nothing running.

The demo's own company tells what the plan must show; plans of the same company read from
a CSV file, a real slapd and a SCIM service must be the same plan.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from slapd import _unavailable

from scimsync import api
from scimsync.cli import cli
from scimsync.errors import ScimsyncError
from scimsync.sim import slapd as slapd_core
from scimsync.sim.demo import make_company

CONVERGED = "0 write requests sent by the second plan."
EMPTY = "No changes: every target matches the source."
LEAVER = next(p["username"] for p in make_company() if not p["active"])


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the tables wide enough that no account name is wrapped."""
    monkeypatch.setenv("COLUMNS", "200")


def need_slapd() -> None:
    """Skip loudly without slapd (fail when SCIMSYNC_REQUIRE_SLAPD=1), as tests/slapd.py does."""
    problem = slapd_core.missing()
    if problem is not None:
        _unavailable(problem)


def demo(*args: str) -> Result:
    return CliRunner().invoke(cli, ["demo", *args])


def plan_part(output: str) -> str:
    """Return the first plan, as printed between step 1 and step 2."""
    return output.split("1. scimsync plan", 1)[1].split("2. scimsync apply", 1)[0]


def assert_converged(result: Result) -> None:
    assert result.exit_code == 0, result.output
    assert CONVERGED in result.stdout
    assert EMPTY in result.stdout


def writes(result: Result) -> dict[str, int]:
    """Return target label -> write requests the apply sent, from the "N write requests" line."""
    line = next(x for x in result.stdout.splitlines() if " write requests sent to " in x)
    parts = line.rstrip(".").replace(" write requests sent to ", " to ", 1).split(", ")
    return {label: int(n) for n, label in (p.split(" to ", 1) for p in parts)}


def closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def ports(output: str, scheme: str) -> list[int]:
    return [int(p) for p in re.findall(rf"{scheme}://127\.0\.0\.1:(\d+)", output)]


def demo_folder(output: str) -> Path:
    found = re.search(r"config: (\S+)/scimsync\.yaml", output)
    assert found, output
    return Path(found[1])


@pytest.fixture(scope="module")
def every_target() -> Result:
    """The demo with the CSV file into every target ("all", and one named again)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "200")
        return demo("--target", "all", "--target", "jira")


def test_the_file_source_converges_and_the_leaver_is_deactivated() -> None:
    result = demo("--source", "file")
    assert_converged(result)
    assert "company.csv (a CSV file) (40 people)" in result.stdout
    rows = [x for x in plan_part(result.stdout).splitlines() if "deactivate" in x and f" {LEAVER} " in x]
    assert rows and all("inactive in source" in x for x in rows), plan_part(result.stdout)
    assert writes(result)["Jira"] > 0 and writes(result)["Confluence"] > 0


@pytest.mark.parametrize(
    ("source", "title"),
    [
        ("ldap", "OpenLDAP slapd at ldap://127.0.0.1:"),
        ("scim", "a simulated SCIM 2.0 service at http://"),
        ("okta", "a simulated Okta org at http://"),
        ("entra", "a simulated Microsoft Entra ID tenant at http://"),
        ("google", "a simulated Google Workspace at http://"),
        ("onelogin", "a simulated OneLogin account at http://"),
        ("keycloak", "a simulated Keycloak realm at http://"),
    ],
    ids=["ldap", "scim", "okta", "entra", "google", "onelogin", "keycloak"],
)
def test_an_idp_source_gives_the_same_plan_as_the_file(source: str, title: str, every_target: Result) -> None:
    if source == "ldap":
        need_slapd()
    result = demo("--source", source, "--target", "all")
    assert_converged(result)
    assert f"source: {title}" in result.stdout
    # Same company, same plan: names, emails, groups and the leaver's status came through.
    assert plan_part(result.stdout) == plan_part(every_target.stdout)
    assert f"scimsync demo --keep --source {source} --target jira" in result.stdout


def test_the_atlassian_cloud_target_alone_converges() -> None:
    result = demo("--target", "atlassian-cloud")
    assert_converged(result)
    assert "a simulated Atlassian Cloud directory at http://" in result.stdout
    assert "Jira Data Center" not in result.stdout and "Confluence Data Center" not in result.stdout
    assert list(writes(result)) == ["Atlassian Cloud"] and writes(result)["Atlassian Cloud"] > 0
    plan = plan_part(result.stdout)
    # Owned (an externalId) and gone from the source: deactivated; made by hand: left alone.
    assert any("deactivate" in x and "olga.former" in x and "left the source" in x for x in plan.splitlines())
    assert "site-admin" not in plan
    assert "cloud (atlassian-cloud): no changes" in result.stdout


def test_target_all_writes_to_every_target_and_converges(every_target: Result) -> None:
    assert_converged(every_target)
    sent = writes(every_target)
    assert list(sent) == ["Jira", "Confluence", "Atlassian Cloud"] and all(sent.values()), sent
    for name in ("jira (jira)", "confluence (confluence)", "cloud (atlassian-cloud)"):
        assert f"{name}: no changes" in every_target.stdout


def test_without_slapd_the_ldap_demo_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slapd_core, "SLAPD", tmp_path / "slapd")
    result = demo("--source", "ldap")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: demo --source ldap runs OpenLDAP's slapd, and {tmp_path / 'slapd'} is not installed: "
        "install it with `apt-get install slapd ldap-utils` (Debian, Ubuntu), or pick another --source\n"
    )
    assert result.stdout == ""  # nothing was started


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    source = demo("--source", "okta-ish")
    assert source.exit_code == 1
    assert source.stderr == (
        "error: demo: no source 'okta-ish' "
        "(choose from file, ldap, okta, entra, google, onelogin, keycloak, scim)\n"
    )
    target = demo("--target", "jira", "--target", "bamboo")
    assert target.exit_code == 1
    assert "no target 'bamboo' (choose from jira, confluence, atlassian-cloud, all)" in target.stderr


def test_an_error_midway_stops_every_server_and_removes_the_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    need_slapd()

    def broken(*args: object, **kwargs: object) -> None:
        raise ScimsyncError("jira: read users: the planner broke")

    monkeypatch.setattr(api, "make_plan", broken)
    result = demo("--source", "ldap")
    assert result.exit_code == 1
    assert result.stderr == "error: jira: read users: the planner broke\n"
    started = ports(result.stdout, "ldap") + ports(result.stdout, "http")
    assert len(started) == 3, result.stdout  # slapd, Jira, Confluence
    assert all(closed(port) for port in started)
    assert not demo_folder(result.stdout).exists()


@pytest.fixture
def keep_run(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    """Run ``scimsync demo --keep`` in a process of its own (the signals are real)."""
    source = request.param
    if source == "ldap":
        need_slapd()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "scimsync", "demo", "--keep", "--source", source]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        watchdog = threading.Timer(60, process.kill)  # a hung demo fails the test, never the session
        watchdog.start()
        try:
            yield process
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize(
    ("keep_run", "signum"),
    [("ldap", signal.SIGTERM), ("file", signal.SIGINT)],
    indirect=["keep_run"],
    ids=["ldap-SIGTERM", "file-SIGINT"],
)
def test_keep_serves_until_a_signal_then_stops_everything(
    keep_run: subprocess.Popen[str], signum: signal.Signals
) -> None:
    assert keep_run.stdout is not None
    seen: list[str] = []
    for line in keep_run.stdout:
        seen.append(line)
        if "keep running until Ctrl-C" in line:
            break
    output = "".join(seen)
    folder, started = demo_folder(output), ports(output, "ldap") + ports(output, "http")
    assert folder.is_dir() and started and not any(closed(p) for p in started), output

    keep_run.send_signal(signum)
    rest, errors = keep_run.communicate(timeout=30)
    assert keep_run.returncode == 0, errors
    assert rest.strip() == f"Stopped the simulators and removed {folder}.", seen[-3:]
    assert all(closed(port) for port in started)
    assert not folder.exists()
