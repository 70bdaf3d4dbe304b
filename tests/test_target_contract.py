"""The behaviour every target must show against its simulator (one suite, every target).

Each test drives scimsync as a user does (a config, a file source, the CLI) and checks the
simulator's state and request log, never scimsync's own idea of what it did. Targets and
versions come from target_harness.HARNESSES; a new target joins by adding a harness.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from target_harness import HARNESSES, TargetHarness

import scimsync.http
from scimsync.cli import cli

EMPTY = "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes."


def person(
    username: str, *, first: str = "", last: str = "", active: bool = True, groups: Sequence[str] = ()
) -> dict[str, Any]:
    """Return one source record; the display name is first + last (default mapping)."""
    return {
        "id": f"id-{username}",
        "username": username,
        "email": f"{username}@acme.test",
        "first_name": first or username.capitalize(),
        "last_name": last or "Contract",
        "active": active,
        "groups": list(groups),
    }


class Contract:
    """A folder with a source CSV and a config naming one target, and the CLI to run on it."""

    def __init__(self, folder: Path, harness: TargetHarness) -> None:
        self.folder = folder
        self.h = harness
        self.people: list[dict[str, Any]] = []
        self.slept: list[float] = []  # the HTTP layer's waits, recorded instead of slept
        self.policy: dict[str, Any] = {"protected_users": ["admin"], "max_deactivations": 50}

    def write(self, people: Sequence[dict[str, Any]] | None = None, *, seed: bool = True) -> None:
        """Write people.csv and scimsync.yaml (and, where the target cannot create, seed accounts)."""
        if people is not None:
            self.people = [dict(p) for p in people]
        fields = ["id", "username", "email", "first_name", "last_name", "active", "groups"]
        with (self.folder / "people.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            for p in self.people:
                writer.writerow({**p, "groups": ";".join(p["groups"]), "active": str(p["active"]).lower()})
        config = {
            "version": 1,
            "source": {"type": "file", "path": "people.csv"},
            "mapping": {"display_name": "{{ user.first_name }} {{ user.last_name }}"},
            "targets": {
                "t": {
                    **self.h.config_block(),
                    "default_groups": [self.h.default_group],
                    "groups": [{"from": "team-*", "to": "c-{{ group.name }}"}],
                }
            },
            "policy": self.policy,
            "audit_log": "audit.jsonl",
            "lock_file": "run.lock",
            "state_file": "state.json",
            "http": {"retries": 3, "timeout": 10},
        }
        (self.folder / "scimsync.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        if seed and not self.h.creates:
            # A version that cannot create users over REST: their accounts come from elsewhere
            # (an admin, an LDAP sync); scimsync adopts them by username and does the rest.
            for p in self.people:
                if self.h.account(p["username"]) is None:
                    name = f"{p['first_name']} {p['last_name']}"
                    self.h.seed_user(p["username"], p["email"], name, active=p["active"])

    def run(self, *args: str) -> Result:
        """Run the CLI on this folder's config."""
        return CliRunner().invoke(
            cli, ["-c", str(self.folder / "scimsync.yaml"), *args], catch_exceptions=False
        )

    def apply(self, expect: int = 0) -> Result:
        """Apply without asking; assert the exit code."""
        result = self.run("apply", "-y")
        assert result.exit_code == expect, result.output
        return result

    def assert_converged(self) -> None:
        """A plan right after an apply shows no changes and sends no write."""
        self.h.log.clear()
        result = self.run("plan", "--detailed-exitcode")
        assert result.exit_code == 0, result.output
        assert EMPTY in result.stdout, result.stdout
        assert self.h.log.writes() == []

    def audit(self) -> list[dict[str, Any]]:
        """Return the audit log's entries."""
        path = self.folder / "audit.jsonl"
        return (
            [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            if path.exists()
            else []
        )


@pytest.fixture(params=sorted(HARNESSES))
def contract(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Contract]:
    """Yield a Contract around a fresh simulator of each target and version."""
    with HARNESSES[request.param]() as harness:
        world = Contract(tmp_path, harness)
        monkeypatch.setattr(scimsync.http.client, "_sleep", world.slept.append)  # Retry-After without waiting
        world.write(
            [person("amara", groups=["team-alpha"]), person("bruno", groups=["team-alpha", "team-beta"])]
        )
        yield world


def test_create_puts_the_account_in_its_groups_and_the_second_plan_is_empty(contract: Contract) -> None:
    contract.apply()
    amara = contract.h.account("amara")
    assert amara is not None
    assert amara.active and amara.display_name == "Amara Contract"
    assert amara.email in ("amara@acme.test", None)
    assert {"c-team-alpha", contract.h.default_group} <= amara.groups
    assert amara.owned()  # the owner marker: the group, or the externalId = the source id
    assert amara.external_id in (None, "id-amara")
    assert contract.h.members("c-team-beta") == {"bruno"}
    contract.assert_converged()


def test_a_version_that_cannot_create_names_it_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HARNESSES["confluence-8.2.0"]() as harness:
        assert not harness.creates
        world = Contract(tmp_path, harness)
        world.write([person("amara")], seed=False)
        result = world.apply()
        assert "cannot create accounts on this target (Confluence 8.2.0)" in result.output
        assert harness.account("amara") is None
        assert harness.log.writes() == []


def test_enumeration_reads_every_page(contract: Contract) -> None:
    # Owned accounts across several pages (and past any search cap), all in the source but two:
    # exactly those two are leavers. A page left unread would show up as a create (its person
    # in the source) or as a missing deactivation.
    names = [f"p{i:05d}" for i in range(contract.h.many)]
    for name in names:
        contract.h.seed_user(
            name, f"{name}@acme.test", f"{name.capitalize()} Contract", owned_by=f"id-{name}"
        )
    leavers = {names[len(names) // 2], names[-1]}
    contract.policy["max_deactivations"] = 5
    contract.write([person(n) for n in names if n not in leavers])
    result = contract.run("plan", "--format", "json")
    assert result.exit_code == 0, result.output
    ops = json.loads(result.stdout)["targets"][0]["operations"]
    assert {op["account"] for op in ops if op["op"] == "deactivate_user"} == leavers
    assert not [op for op in ops if op["op"] == "create_user"]


def test_update_changes_what_the_version_can_and_names_what_it_cannot(contract: Contract) -> None:
    contract.apply()
    contract.people[0]["first_name"] = "Amaraa"
    contract.people[0]["email"] = "amara.k@acme.test"
    contract.write()
    result = contract.apply()
    amara = contract.h.account("amara")
    assert amara is not None
    if "display_name" in contract.h.update_fields:
        assert amara.display_name == "Amaraa Contract"
    else:
        assert amara.display_name == "Amara Contract"
        assert "cannot update" in result.output
    if "email" in contract.h.update_fields:
        assert amara.email == "amara.k@acme.test"
    contract.assert_converged()


def test_leaver_is_deactivated_then_reactivated_on_return(contract: Contract) -> None:
    contract.apply()
    contract.people[1]["active"] = False
    contract.write()
    contract.apply()
    bruno = contract.h.account("bruno")
    assert bruno is not None and not bruno.active
    assert "bruno" not in contract.h.members("c-team-alpha")
    assert bruno.owned()  # the marker stays: the account stays owned
    contract.assert_converged()
    contract.people[1]["active"] = True
    contract.write()
    contract.apply()
    bruno = contract.h.account("bruno")
    assert bruno is not None and bruno.active
    assert {"c-team-alpha", "c-team-beta"} <= bruno.groups
    contract.assert_converged()


def test_delete_under_deprovision_delete(contract: Contract) -> None:
    contract.apply()
    contract.policy["deprovision"] = "delete"
    contract.write(contract.people[:1])
    result = contract.apply()
    if contract.h.deletes:
        assert contract.h.account("bruno") is None
        contract.assert_converged()
    else:
        assert contract.h.account("bruno") is not None
        assert "cannot" in result.output


def test_memberships_follow_the_source_groups(contract: Contract) -> None:
    contract.apply()
    contract.people[0]["groups"] = ["team-beta"]
    contract.people[1]["groups"] = ["team-alpha"]
    contract.write()
    contract.apply()
    assert contract.h.members("c-team-alpha") == {"bruno"}
    assert contract.h.members("c-team-beta") == {"amara"}
    contract.assert_converged()


def test_a_429_with_retry_after_is_ridden_out(contract: Contract) -> None:
    # The first writes are refused 429 (the server did not act): retried after Retry-After.
    contract.h.faults.rate_limit(2, retry_after=7, method="POST")
    contract.apply()
    assert contract.h.account("amara") is not None and contract.h.account("bruno") is not None
    assert [e.status for e in contract.h.log.entries if e.method == "POST"][:2] == [429, 429]
    # Each 429 waits its Retry-After (later requests may share the pause: the clock is real).
    assert sum(1 for s in contract.slept if s >= 6.5) >= 2, contract.slept
    contract.assert_converged()


def test_a_500_on_one_write_leaves_the_others_done_and_the_rerun_converges(contract: Contract) -> None:
    contract.apply()
    contract.people[0]["active"] = False  # amara leaves...
    contract.people += [person("chen", groups=["team-beta"]), person("dalia", groups=["team-beta"])]
    contract.write()
    before = len(contract.audit())
    # ...and her deactivation fails (a 500 is not retried: the server may have acted);
    # everything else lands.
    method, path = contract.h.deactivate_write("amara")
    contract.h.faults.inject(500, count=1, method=method, path=path)
    result = contract.apply(expect=1)
    assert "failed" in result.output.lower()
    entries = contract.audit()[before:]
    assert [(a["op"], a["account"]) for a in entries if a["result"] == "failed"] == [
        ("deactivate_user", "amara")
    ]
    amara = contract.h.account("amara")
    assert amara is not None and amara.active
    assert contract.h.members("c-team-beta") == {"bruno", "chen", "dalia"}
    contract.h.faults.clear()
    contract.apply()
    amara = contract.h.account("amara")
    assert amara is not None and not amara.active
    contract.assert_converged()


def _first_provisioning(contract: Contract, count: int = 50) -> list[dict[str, Any]]:
    teams = ["team-alpha", "team-beta", "team-gamma"]
    people = [person(f"p{i:03d}", groups=[teams[i % 3], teams[(i + 1) % 3]]) for i in range(count)]
    contract.write(people)
    return people


def _assert_each_once(contract: Contract, people: Sequence[dict[str, Any]], *, audited: bool = True) -> None:
    """Every person has one account, with the source's groups; no account was made twice."""
    for p in people:
        seen = contract.h.account(p["username"])  # the harness reads the simulator's own state
        assert seen is not None and seen.active, p["username"]
        assert {f"c-{g}" for g in p["groups"]} <= seen.groups, p["username"]
    created = [a for a in contract.audit() if a["op"] == "create_user" and a["result"] == "done"]
    if contract.h.creates and audited:
        assert sorted(a["account"] for a in created) == sorted(p["username"] for p in people)


@pytest.mark.parametrize("status", [503, 429])
def test_a_proxy_refusing_every_fifth_request_converges_in_one_run(contract: Contract, status: int) -> None:
    # SPEC §8: a 503 or 429 says the server did not act, so every write may go again; the
    # error budget counts only writes that failed after their retries (issue 11 acceptance).
    people = _first_provisioning(contract)
    contract.h.faults.every(5, status)
    contract.apply()
    contract.h.faults.clear()
    _assert_each_once(contract, people)
    contract.assert_converged()


@pytest.mark.parametrize("status", [502, 504, 0], ids=["502", "504", "dropped-before"])
def test_an_unknown_outcome_is_read_again_and_repeated_only_when_not_done(
    contract: Contract, status: int
) -> None:
    # Every write's first attempt is lost before the server acts (a 502, a 504, or a dropped
    # connection): the outcome is unknown, so the account or group is read again and the
    # write repeated because it did not take effect (SPEC §8). One run converges.
    people = _first_provisioning(contract, 12)
    contract.h.faults.first_time(status)
    contract.apply()
    contract.h.faults.clear()
    _assert_each_once(contract, people)
    contract.assert_converged()


def test_a_connection_dropped_after_the_server_acted_is_not_a_duplicate(contract: Contract) -> None:
    # Every write's first attempt reaches the server, which acts, and then the connection
    # drops: the read-back finds each write done and sends none of them again. Where reads
    # show no emails, an account found under the name cannot be told from a stranger's: the
    # create fails, naming the account, and the next run (a plan that shows it) takes it over.
    people = _first_provisioning(contract, 12)
    contract.h.faults.first_time(method=None, after_app=True)
    result = contract.run("apply", "-y")
    contract.h.faults.clear()
    if contract.h.shows_email or not contract.h.creates:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1, result.output
        failed = [
            a["account"] for a in contract.audit() if a["op"] == "create_user" and a["result"] == "failed"
        ]
        assert failed, result.output
        contract.apply()  # the plan takes the accounts over: no create, so none is audited as done
    _assert_each_once(contract, people, audited=contract.h.shows_email)
    # POSTs: PUT, DELETE and PATCH say what the state should be, so sending one twice is harmless.
    writes = [e for e in contract.h.log.writes() if e.status < 300 and e.method == "POST"]
    keys = [(e.method, e.path, str(sorted(e.query.items())), str(e.body)) for e in writes]
    assert len(keys) == len(set(keys)), "a write that took effect was sent again"
    contract.assert_converged()


def test_a_read_only_directory_user_is_reported_not_manageable(contract: Contract) -> None:
    if not contract.h.read_only_users:
        pytest.skip(f"{contract.h.label} has no read-only directory")
    contract.h.seed_user(
        "ldapuser", "ldapuser@acme.test", "Ldap User", owned_by="id-ldapuser", read_only=True
    )
    contract.write([*contract.people, person("ldapuser", active=False)])
    result = contract.apply()  # skipped with the reason, not a failure: nothing can be done there
    assert "skipped: t deactivate_user ldapuser: not manageable" in result.output, result.output
    ldapuser = contract.h.account("ldapuser")
    assert ldapuser is not None and ldapuser.active
    assert contract.h.account("amara") is not None  # the others are done
