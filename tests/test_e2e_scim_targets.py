"""SCIM-based targets end to end, through the CLI: the real scim2-server, and Jira with Atlassian Cloud.

scim2-server (PyPI) runs plain, and shaped the way Atlassian's directory behaves (pages
capped at 100, 1-based index). Each test reads the server's state over HTTP, never
scimsync's idea of it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner, Result
from scim_server import ScimServer, running_scim_server

from scimsync.cli import cli
from scimsync.sim.atlassian_cloud import AtlassianCloudSim
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

TOKEN = "e2e-scim-token-41c7"
EMPTY = "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes."
# Atlassian's directory: 100 a page (reference §3.4), no bulk, no sort, no ETags; PATCH.
ATLASSIAN_SHAPED = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
    "patch": {"supported": True},
    "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
    "filter": {"supported": True, "maxResults": 100},
    "changePassword": {"supported": False},
    "sort": {"supported": False},
    "etag": {"supported": False},
    "authenticationSchemes": [
        {"type": "oauthbearertoken", "name": "OAuth Bearer Token", "description": "directory API key"}
    ],
}
PEOPLE = [
    ("amara", "Amara", "Kowalski", "eng"),
    ("bruno", "Bruno", "Rossi", "eng;sales"),
    ("chen", "Chen", "Nakamura", "sales"),
]


def _record(username: str, first: str, last: str, groups: str) -> dict[str, Any]:
    return {
        "id": f"emp-{username}",
        "username": username,
        "email": f"{username}@acme.test",
        "first_name": first,
        "last_name": last,
        "active": "true",
        "groups": groups,
    }


class Folder:
    """people.csv and scimsync.yaml naming the given targets."""

    def __init__(self, path: Path, targets: dict[str, dict[str, Any]]) -> None:
        self.path = path
        self.targets = targets
        self.people = [_record(*p) for p in PEOPLE]
        self.policy: dict[str, Any] = {"protected_users": ["admin"]}

    def write(self) -> None:
        """Write the source and the config."""
        with (self.path / "people.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(self.people[0]))
            writer.writeheader()
            writer.writerows(self.people)
        config = {
            "version": 1,
            "source": {"type": "file", "path": "people.csv"},
            "mapping": {"display_name": "{{ user.first_name }} {{ user.last_name }}"},
            "targets": {
                name: {**block, "groups": [{"from": "*", "to": f"{name}-{{{{ group.name }}}}"}]}
                for name, block in self.targets.items()
            },
            "policy": self.policy,
            "audit_log": "audit.jsonl",
            "lock_file": "run.lock",
            "state_file": "state.json",
            "http": {"retries": 1, "timeout": 10},
        }
        (self.path / "scimsync.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    def run(self, *args: str) -> Result:
        """Run the CLI on this config."""
        return CliRunner().invoke(
            cli, ["-c", str(self.path / "scimsync.yaml"), *args], catch_exceptions=False
        )

    def apply(self) -> Result:
        """Apply without asking; it must succeed."""
        result = self.run("apply", "-y")
        assert result.exit_code == 0, result.output
        return result

    def plan_ops(self) -> list[dict[str, Any]]:
        """Return the operations of a fresh plan, for every target."""
        result = self.run("plan", "--format", "json")
        assert result.exit_code == 0, result.output
        return [op for t in json.loads(result.stdout)["targets"] for op in t["operations"]]


class ScimState:
    """What a SCIM server holds, read over HTTP."""

    def __init__(self, server: ScimServer) -> None:
        self.server = server

    def _list(self, kind: str) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        found: list[dict[str, Any]] = []
        while True:
            params = {"startIndex": len(found) + 1, "count": 100}
            body = requests.get(
                f"{self.server.url}/{kind}", params=params, headers=headers, timeout=10
            ).json()
            found += body.get("Resources", [])
            if len(found) >= body["totalResults"]:
                return found

    def users(self) -> dict[str, dict[str, Any]]:
        """Return the users by userName."""
        return {u["userName"]: u for u in self._list("Users")}

    def members(self, group: str) -> set[str]:
        """Return the userNames of a group's members."""
        ids = {u["id"]: name for name, u in self.users().items()}
        found = [g for g in self._list("Groups") if g["displayName"] == group]
        assert len(found) == 1, f"group {group}: {found}"
        return {ids[m["value"]] for m in found[0].get("members", [])}


@pytest.fixture(params=["plain", "atlassian-shaped"])
def scim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Folder, ScimState]]:
    """A scim2-server (plain, or shaped like Atlassian's directory) as the only target."""
    spc = ATLASSIAN_SHAPED if request.param == "atlassian-shaped" else None
    with running_scim_server(tmp_path / "server", token=TOKEN, service_provider_config=spc) as server:
        folder = Folder(tmp_path, {"app": {"type": "scim", "url": server.url, "token": TOKEN}})
        folder.write()
        yield folder, ScimState(server)


def test_a_scim_round_trip_converges_at_every_step(scim: tuple[Folder, ScimState]) -> None:
    folder, state = scim
    folder.apply()
    users = state.users()
    assert set(users) == {"amara", "bruno", "chen"}
    assert users["amara"]["externalId"] == "emp-amara"  # the owner marker (SPEC §5)
    assert users["amara"]["displayName"] == "Amara Kowalski" and users["amara"]["active"] is True
    assert state.members("app-eng") == {"amara", "bruno"}
    assert state.members("app-sales") == {"bruno", "chen"}
    assert folder.plan_ops() == []

    folder.people[0]["first_name"] = "Amaraa"  # update
    folder.people[1]["active"] = "false"  # deactivate
    folder.people[2]["groups"] = "eng"  # membership move
    folder.write()
    folder.apply()
    users = state.users()
    assert users["amara"]["displayName"] == "Amaraa Kowalski"
    assert users["bruno"]["active"] is False
    assert state.members("app-eng") == {"amara", "chen"}
    assert state.members("app-sales") == set()
    assert folder.plan_ops() == []

    folder.people[1]["active"] = "true"  # reactivate
    folder.write()
    folder.apply()
    assert state.users()["bruno"]["active"] is True
    assert state.members("app-sales") == {"bruno"}
    assert folder.plan_ops() == []


def test_a_person_renamed_and_re_emailed_stays_linked_through_external_id(
    scim: tuple[Folder, ScimState],
) -> None:
    folder, state = scim
    folder.apply()
    before = state.users()["amara"]["id"]
    folder.policy["sync_fields"] = ["email", "display_name", "username"]  # follow renames
    folder.people[0].update(username="amara.k", email="amara.kowalska@acme.test")
    folder.write()
    ops = folder.plan_ops()
    assert [(op["op"], op["account"]) for op in ops] == [("update_user", "amara")], ops
    folder.apply()
    users = state.users()
    assert "amara" not in users and users["amara.k"]["id"] == before
    assert [e["value"] for e in users["amara.k"]["emails"]] == ["amara.kowalska@acme.test"]
    assert folder.plan_ops() == []


def test_jira_and_atlassian_cloud_are_provisioned_in_one_apply(tmp_path: Path) -> None:
    jira = JiraSim("10.3.1", token="e2e-jira-token")
    cloud = AtlassianCloudSim(token="e2e-cloud-key")
    with SimServer(jira.app) as j, SimServer(cloud.app) as c:
        folder = Folder(
            tmp_path,
            {
                "jira": {"type": "jira", "url": j.url, "token": "e2e-jira-token"},
                "cloud": {
                    "type": "atlassian-cloud",
                    "url": c.url + cloud.base_path,
                    "token": "e2e-cloud-key",
                },
            },
        )
        folder.write()
        folder.apply()
        for name in ("amara", "bruno", "chen"):
            assert jira.user(name) is not None
            user = cloud.user(name)
            assert user is not None and user["active"] and user["external_id"] == f"emp-{name}"
        assert jira.members("jira-eng") == {"amara", "bruno"}
        assert cloud.members("cloud-sales") == {"bruno", "chen"}
        jira.log.clear()
        cloud.log.clear()
        result = folder.run("plan", "--detailed-exitcode")
        assert result.exit_code == 0 and EMPTY in result.stdout, result.output
        assert jira.log.writes() == [] and cloud.log.writes() == []
