"""World helpers for the trust end-to-end tests: config variants, other source files, hand edits.

``TrustWorld`` is ``e2e_support.World`` with a config built from ``e2e_support.CONFIG`` (loaded,
then changed key by key), a CSV with any extra columns, and raw source files (YAML, JSON, a
hand-written CSV). The sim helpers edit the Jira simulator's state the way an admin would in
the UI, between CLI runs (the server is idle then, so no lock is needed).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result
from e2e_support import CONFIG, STAFF, World

from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

TOKEN = "trust-token-4c2a"  # the simulator's token; the configs read it from E2E_JIRA_TOKEN
BASE_COLUMNS = ["id", "username", "email", "first_name", "last_name", "active", "groups"]
SUMMARY_EMPTY = "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes."


@dataclass
class TrustWorld(World):
    """A World whose config can vary: match, rules, default groups, policy, source file."""

    match: list[str] | None = None
    default_groups: list[str] | None = field(default_factory=lambda: ["jira-software-users"])
    rules: list[dict[str, Any]] | None = None  # None: CONFIG's own rule (team-* -> jira-{{ group.name }})
    policy: dict[str, Any] = field(default_factory=dict)  # merged over CONFIG's policy
    source_file: str = "people.csv"

    def config_data(self) -> dict[str, Any]:
        """Return CONFIG, loaded, with this world's variations."""
        data: dict[str, Any] = yaml.safe_load(
            CONFIG.format(url=self.url, max_deactivations=self.max_deactivations, retries=self.retries)
        )
        data["source"]["path"] = self.source_file
        jira = data["targets"]["jira"]
        if self.default_groups is None:
            del jira["default_groups"]
        else:
            jira["default_groups"] = list(self.default_groups)
        if self.rules is not None:
            jira["groups"] = [dict(r) for r in self.rules]
        if self.match is not None:
            data["match"] = list(self.match)
        data["policy"].update(self.policy)
        return data

    def write_config(self) -> None:
        """Write scimsync.yaml only."""
        self.config.write_text(yaml.safe_dump(self.config_data(), sort_keys=False), encoding="utf-8")

    def write(self, people: Sequence[dict[str, Any]] | None = None) -> None:
        """Write people.csv (extra record keys become extra columns) and the config."""
        if people is not None:
            self.people = [dict(p) for p in people]
        columns = list(BASE_COLUMNS)
        for p in self.people:
            columns += [k for k in p if k not in columns]
        with (self.folder / "people.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, restval="")
            writer.writeheader()
            for p in self.people:
                writer.writerow({**p, "groups": ";".join(p["groups"]), "active": str(p["active"]).lower()})
        self.source_file = "people.csv"
        self.write_config()

    def write_source(self, name: str, text: str) -> Path:
        """Write a raw source file (YAML, JSON, hand-made CSV) and point source.path at it."""
        path = self.folder / name
        path.write_text(text, encoding="utf-8")
        self.source_file = name
        self.write_config()
        return path

    def plan_json(self, *args: str) -> dict[str, Any]:
        """Run ``plan --format json`` and return the parsed plan (exit 0 expected)."""
        result = self.run("plan", "--format", "json", *args)
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def provision(self) -> None:
        """Apply the current source, expect success, forget the requests it made."""
        result = self.run("apply", "-y")
        assert result.exit_code == 0, result.output
        self.sim.log.clear()

    def assert_converged(self) -> None:
        """A plan right after an apply shows no changes and writes nothing."""
        self.sim.log.clear()
        result = self.run("plan", "--detailed-exitcode")
        assert result.exit_code == 0, result.output
        assert SUMMARY_EMPTY in result.stdout
        assert self.sim.log.writes() == []


def make_trust_world(tmp_path: Path, token: str, **sim_args: Any) -> Iterator[TrustWorld]:
    """Start a Jira simulator and yield a TrustWorld around it (source: STAFF)."""
    sim = JiraSim(token=token, **sim_args)
    with SimServer(sim.app) as server:
        world = TrustWorld(sim=sim, url=server.url, folder=tmp_path)
        world.write(STAFF)
        yield world


# -- plan JSON --------------------------------------------------------------------------


def operations(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every operation of every target of a plan's JSON form."""
    return [op for t in plan["targets"] for op in t["operations"]]


def ops_on(plan: dict[str, Any], account: str) -> list[dict[str, Any]]:
    """Return the operations that name ``account`` (exactly, as the target spells it)."""
    return [op for op in operations(plan) if op["account"] == account]


def notices(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every notice of every target."""
    return [n for t in plan["targets"] for n in t["notices"]]


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write a JSON file (a hand-edited plan)."""
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


# -- simulator edits (as an admin in the Jira UI) ----------------------------------------


def key_of(sim: JiraSim, username: str) -> str:
    """Return a user's stable key (JIRAUSER...)."""
    bean = sim.user(username)
    assert bean is not None, f"no user {username!r}"
    return str(bean["key"])


def remove_member(sim: JiraSim, group: str, username: str) -> None:
    """Take a user out of a group directly (JiraSim has no helper for it)."""
    found = sim.directory.find_group(group)
    assert found is not None, f"no group {group!r}"
    found.members.discard(key_of(sim, username))


def snapshot(sim: JiraSim, username: str) -> tuple[str, str, bool, frozenset[str]]:
    """Return (email, display name, active, groups) of a user, to compare before and after."""
    bean = sim.user(username)
    assert bean is not None, f"no user {username!r}"
    groups = frozenset(g["name"] for g in bean["groups"]["items"])
    return bean["emailAddress"], bean["displayName"], bean["active"], groups


# -- output -------------------------------------------------------------------------------


def error_lines(result: Result) -> list[str]:
    """Return the stderr lines that start with 'error:'."""
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_clean_error(result: Result) -> None:
    """Exit 1 with one 'error: ...' line on stderr (warnings aside): no traceback, no internal error."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
