"""One source into Jira and Confluence in one run (over loopback sockets, through the CLI).

A leaver must lose both at once; a target that fails never stops the other; the plan,
the summary and the exit code cover them all.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from scimsync.cli import cli
from scimsync.sim.confluence import ConfluenceSim
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

EMPTY = "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes."
PEOPLE = [
    ("amara", "Amara", "Kowalski", "eng"),
    ("bruno", "Bruno", "Rossi", "eng"),
    ("chen", "Chen", "Nakamura", "sales"),
    ("dalia", "Dalia", "Haddad", "sales"),
    ("emeka", "Emeka", "Okafor", ""),
]


@dataclass
class Both:
    """A Jira and a Confluence simulator, a source file and a config naming both."""

    jira: JiraSim
    confluence: ConfluenceSim
    folder: Path
    urls: dict[str, str]
    people: list[dict[str, Any]]

    def write(self) -> None:
        """Write people.csv and scimsync.yaml."""
        with (self.folder / "people.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(self.people[0]))
            writer.writeheader()
            writer.writerows(self.people)
        config = {
            "version": 1,
            "source": {"type": "file", "path": "people.csv"},
            "mapping": {"display_name": "{{ user.first_name }} {{ user.last_name }}"},
            "targets": {
                "jira": {
                    "type": "jira",
                    "url": self.urls["jira"],
                    "token": "multi-jira-token",
                    "default_groups": ["jira-software-users"],
                    "groups": [{"from": "*", "to": "jira-{{ group.name }}"}],
                },
                "confluence": {
                    "type": "confluence",
                    "url": self.urls["confluence"],
                    "username": "admin",
                    "password": "multi-wiki-password",
                    "default_groups": ["confluence-users"],
                    "groups": [{"from": "*", "to": "wiki-{{ group.name }}"}],
                },
            },
            "policy": {"protected_users": ["admin"]},
            "audit_log": "audit.jsonl",
            "lock_file": "run.lock",
            "state_file": "state.json",
            "http": {"retries": 1, "timeout": 5},
        }
        (self.folder / "scimsync.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    def run(self, *args: str) -> Result:
        """Run the CLI on this config."""
        return CliRunner().invoke(
            cli, ["-c", str(self.folder / "scimsync.yaml"), *args], catch_exceptions=False
        )

    def clear_logs(self) -> None:
        """Forget the requests seen so far."""
        self.jira.log.clear()
        self.confluence.log.clear()


def _record(username: str, first: str, last: str, group: str) -> dict[str, Any]:
    return {
        "id": f"id-{username}",
        "username": username,
        "email": f"{username}@acme.test",
        "first_name": first,
        "last_name": last,
        "active": "true",
        "groups": group,
    }


def _both(tmp_path: Path, confluence_version: str) -> Iterator[Both]:
    jira = JiraSim("10.3.1", token="multi-jira-token")
    confluence = ConfluenceSim(confluence_version, password="multi-wiki-password")
    with SimServer(jira.app) as j, SimServer(confluence.app, prefix="/confluence") as c:
        world = Both(jira, confluence, tmp_path, {"jira": j.url, "confluence": c.url}, [])
        world.people = [_record(*p) for p in PEOPLE]
        world.write()
        yield world


@pytest.fixture(params=["8.5.6", "10.0.1"])
def both(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Both]:
    """Jira 10.3 with a Confluence that cannot update users (8.5) and one that can (10.0)."""
    yield from _both(tmp_path, request.param)


def test_one_apply_provisions_both_and_the_next_plan_writes_nothing(both: Both) -> None:
    result = both.run("apply", "-y")
    assert result.exit_code == 0, result.output
    for name in ("amara", "bruno", "chen", "dalia", "emeka"):
        jira_user, wiki_user = both.jira.user(name), both.confluence.user(name)
        assert jira_user is not None and jira_user["active"]
        assert wiki_user is not None and wiki_user["active"]
    assert both.jira.members("jira-eng") == {"amara", "bruno"}
    assert both.confluence.members("wiki-eng") == {"amara", "bruno"}
    assert both.confluence.members("wiki-sales") == {"chen", "dalia"}
    assert {"amara", "emeka"} <= both.confluence.members("confluence-users")
    both.clear_logs()
    again = both.run("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert EMPTY in again.stdout
    assert both.jira.log.writes() == [] and both.confluence.log.writes() == []


def test_a_leaver_loses_both_accounts_in_one_run(both: Both) -> None:
    assert both.run("apply", "-y").exit_code == 0
    both.people[2]["active"] = "false"
    both.write()
    result = both.run("apply", "-y")
    assert result.exit_code == 0, result.output
    jira_user, wiki_user = both.jira.user("chen"), both.confluence.user("chen")
    assert jira_user is not None and not jira_user["active"]
    assert wiki_user is not None and not wiki_user["active"]
    assert "chen" not in both.confluence.members("wiki-sales")


def test_a_display_name_change_is_applied_where_the_version_can(both: Both) -> None:
    assert both.run("apply", "-y").exit_code == 0
    both.people[0]["first_name"] = "Amaraa"
    both.write()
    result = both.run("apply", "-y")
    assert result.exit_code == 0, result.output
    jira_user, wiki_user = both.jira.user("amara"), both.confluence.user("amara")
    assert jira_user is not None and jira_user["displayName"] == "Amaraa Kowalski"
    assert wiki_user is not None
    if both.confluence.version.startswith("8."):
        assert wiki_user["display_name"] == "Amara Kowalski"
        assert "cannot update display_name on this target" in result.output
    else:
        assert wiki_user["display_name"] == "Amaraa Kowalski"


def test_with_confluence_down_jira_is_still_synced_and_the_run_exits_1(tmp_path: Path) -> None:
    for world in _both(tmp_path, "9.2.1"):
        world.urls["confluence"] = "http://127.0.0.1:9/confluence"  # discard port: refused
        world.write()
        result = world.run("apply", "-y")
        assert result.exit_code == 1, result.output
        assert "confluence" in result.stderr
        assert world.jira.members("jira-eng") == {"amara", "bruno"}
        assert world.confluence.log.entries == []


def test_a_failing_target_is_named_and_the_other_is_synced(tmp_path: Path) -> None:
    for world in _both(tmp_path, "9.2.1"):
        world.jira.faults.inject(401, count=1000)
        result = world.run("apply", "-y")
        assert result.exit_code == 1, result.output
        assert "jira" in result.stderr
        assert world.confluence.members("wiki-eng") == {"amara", "bruno"}
        plan = world.run("plan", "--format", "json")
        targets = {t["target"]: t for t in json.loads(plan.stdout)["targets"]}
        assert targets["jira"]["error"] and targets["confluence"]["error"] is None


def test_target_option_limits_the_run_to_one_target(both: Both) -> None:
    result = both.run("apply", "-y", "--target", "jira")
    assert result.exit_code == 0, result.output
    assert both.jira.user("amara") is not None
    assert both.confluence.user("amara") is None
    assert both.confluence.log.entries == []


def test_check_names_the_confluence_version_and_what_it_cannot_do(both: Both) -> None:
    result = both.run("check")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if "confluence" in x and "Confluence" in x)
    assert f"Confluence {both.confluence.version}" in line
    if both.confluence.version.startswith("8."):
        assert "cannot" in line and "display name" in line


def test_matching_by_email_is_reported_unavailable_where_emails_are_hidden(both: Both) -> None:
    result = both.run("plan")
    warned = "target 'confluence': matching by email is unavailable" in result.stderr
    assert warned is both.confluence.version.startswith("8."), result.stderr
    assert "target 'jira'" not in result.stderr


def _serve_text(status: str, content_type: str, body: bytes) -> Any:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app


@pytest.mark.parametrize(
    ("content_type", "body", "cause"),
    [
        ("text/html", b"<html><body>Sign in to Acme SSO</body></html>", "text/html"),
        ("application/json", b'{"typeId": "confluence", "version": "11.0.0"}', "11.0.0"),
    ],
    ids=["proxy-login-page", "unknown-version"],
)
def test_a_confluence_that_is_not_one_we_know_is_one_line_and_jira_goes_on(
    tmp_path: Path, content_type: str, body: bytes, cause: str
) -> None:
    for world in _both(tmp_path, "9.2.1"):
        with SimServer(_serve_text("200 OK", content_type, body)) as impostor:
            world.urls["confluence"] = impostor.url
            world.write()
            result = world.run("apply", "-y")
        assert result.exit_code == 1, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "confluence" in errors[0] and cause in errors[0], result.stderr
        assert "Traceback" not in result.output
        assert world.jira.members("jira-eng") == {"amara", "bruno"}


def test_a_group_name_confluence_refuses_fails_that_group_only(tmp_path: Path) -> None:
    for world in _both(tmp_path, "9.2.1"):
        world.people[0]["groups"] = "r&d/ops"  # Confluence refuses '/' in a group name
        world.write()
        result = world.run("apply", "-y")
        assert result.exit_code == 1, result.output
        failed = [line for line in result.output.splitlines() if "wiki-r&d/ops" in line and "fail" in line]
        assert failed, result.output
        assert "wiki-r&d/ops" not in world.confluence.group_names()
        assert world.confluence.user("amara") is not None  # the account itself was made
        assert world.confluence.members("wiki-sales") == {"chen", "dalia"}
        assert world.jira.user("amara") is not None
