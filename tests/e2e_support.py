"""A world for end-to-end tests: a Jira simulator on a loopback socket, a file source, a config."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from scimsync.cli import cli
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

CONFIG = """\
version: 1
source:
  type: file
  path: people.csv
mapping:
  username: "{{{{ user.username }}}}"
  email: "{{{{ user.email }}}}"
  display_name: "{{{{ user.first_name }}}} {{{{ user.last_name }}}}"
targets:
  jira:
    type: jira
    url: {url}
    token: ${{E2E_JIRA_TOKEN}}
    default_groups: [jira-software-users]
    groups:
      - from: "team-*"
        to: "jira-{{{{ group.name }}}}"
policy:
  protected_users: [admin]
  max_deactivations: {max_deactivations}
audit_log: audit.jsonl
lock_file: run.lock
http:
  retries: {retries}
  timeout: 5
"""


def person(username: str, first: str, last: str, *groups: str, active: bool = True) -> dict[str, Any]:
    """Return one source record."""
    return {
        "id": f"id-{username}",
        "username": username,
        "email": f"{username}@acme.test",
        "first_name": first,
        "last_name": last,
        "active": active,
        "groups": list(groups),
    }


STAFF = [
    person("amara", "Amara", "Kowalski", "team-alpha"),
    person("bruno", "Bruno", "Rossi", "team-alpha"),
    person("chen", "Chen", "Nakamura", "team-beta"),
    person("dalia", "Dalia", "Haddad", "team-beta"),
    person("emeka", "Emeka", "Okafor"),
]


@dataclass
class World:
    """The simulator, its server, and a folder with people.csv and scimsync.yaml."""

    sim: JiraSim
    url: str
    folder: Path
    people: list[dict[str, Any]] = field(default_factory=list)
    max_deactivations: int = 3
    retries: int = 2

    @property
    def config(self) -> Path:
        """Return the config file's path."""
        return self.folder / "scimsync.yaml"

    def write(self, people: Sequence[dict[str, Any]] | None = None) -> None:
        """Write the source CSV and the config."""
        if people is not None:
            self.people = [dict(p) for p in people]
        with (self.folder / "people.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(
                fh, fieldnames=["id", "username", "email", "first_name", "last_name", "active", "groups"]
            )
            writer.writeheader()
            for p in self.people:
                writer.writerow({**p, "groups": ";".join(p["groups"]), "active": str(p["active"]).lower()})
        self.config.write_text(
            CONFIG.format(url=self.url, max_deactivations=self.max_deactivations, retries=self.retries),
            encoding="utf-8",
        )

    def run(self, *args: str) -> Result:
        """Run the CLI with this world's config; stdin is not a terminal."""
        return CliRunner().invoke(cli, ["-c", str(self.config), *args], catch_exceptions=False)

    def record(self, username: str) -> dict[str, Any]:
        """Return a source record by username (to edit it)."""
        return next(p for p in self.people if p["username"] == username)


def make_world(tmp_path: Path, token: str, **sim_args: Any) -> Iterator[World]:
    """Start a Jira simulator and yield a World around it."""
    sim = JiraSim(token=token, **sim_args)
    with SimServer(sim.app) as server:
        world = World(sim=sim, url=server.url, folder=tmp_path)
        world.write(STAFF)
        yield world


Snapshot = dict[str, tuple[bool, frozenset[str]]]


def snapshot(world: World) -> Snapshot:
    """Every user of the simulator: active, and the groups it is a direct member of."""
    directory = world.sim.directory
    return {
        user.name: (
            user.active,
            frozenset(g.name for g in directory.groups.values() if user.key in g.members),
        )
        for user in directory.users.values()
    }


def audit_runs(folder: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """The audit log's runs in order, read as plain JSON (not through revert's reader)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for line in (folder / "audit.jsonl").read_text().splitlines():
        entry = json.loads(line)
        found.setdefault(entry["run"], []).append(entry)
    return list(found.items())
