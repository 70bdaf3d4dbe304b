"""`scimsync explain USER`, end to end over the Jira simulator: what and why, and the same as `plan`.

The world: five people were provisioned; then scoping was switched on (include_groups
team-*, exclude_users svc-*), chen became inactive, dalia left the source, bruno changed
his name, fatima joined and a service account svc-build appeared. The expected answers
are written from that story, not from the code; the plan comparison reads `plan --format
json`, the product's own output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import STAFF, World, make_world, person

TOKEN = "explain-token-71c2"

SCOPING = '  path: people.csv\n  include_groups: ["team-*"]\n  exclude_users: ["svc-*"]\n'


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    for w in make_world(tmp_path, TOKEN, version="10.3.1"):
        w.max_deactivations = 10
        w.write()
        assert w.run("apply", "-y").exit_code == 0
        people = [dict(p) for p in STAFF if p["username"] != "dalia"]
        for p in people:
            if p["username"] == "chen":
                p["active"] = False
            if p["username"] == "bruno":
                p["last_name"] = "Rossi-Bianchi"
        people += [
            person("svc-build", "Build", "Bot", "team-alpha"),
            person("fatima", "Fatima", "Zahra", "team-gamma"),
        ]
        w.write(people)
        _scope(w)
        w.sim.log.clear()
        yield w


def _scope(world: World) -> None:
    text = world.config.read_text()
    world.config.write_text(text.replace("  path: people.csv\n", SCOPING, 1))


def explain(world: World, *args: str) -> dict[str, Any]:
    result = world.run("explain", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def only(world: World, user: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the one person `explain USER` finds and their answer on jira."""
    data = explain(world, user)
    assert data["query"] == user and len(data["people"]) == 1
    found = data["people"][0]
    assert [t["target"] for t in found["targets"]] == ["jira"]
    return found, found["targets"][0]


def plan_operations(world: World, account: str) -> list[dict[str, Any]]:
    """Return `plan --format json`'s operations on one account (group creations left out)."""
    result = world.run("plan", "--format", "json")
    assert result.exit_code in (0, 3), result.output
    (jira,) = json.loads(result.stdout)["targets"]
    return [op for op in jira["operations"] if op["account"] == account and op["op"] != "create_group"]


def kinds(ops: list[dict[str, Any]]) -> list[str]:
    return [op["op"] for op in ops]


# What the story says the plan does to each account (plan order: SPEC §6).
EXPECTED_KINDS = {
    "svc-build": [],
    "emeka": ["remove_member", "deactivate_user"],
    "fatima": ["create_user", "add_member", "add_member", "add_member"],
    "bruno": ["update_user"],
    "amara": [],
    "chen": ["remove_member", "remove_member", "deactivate_user"],
    "dalia": ["remove_member", "remove_member", "deactivate_user"],
    "admin": [],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_what_explain_says_the_plan_does_is_what_plan_does(world: World, name: str) -> None:
    _, jira = only(world, name)
    planned = plan_operations(world, name)
    assert kinds(planned) == EXPECTED_KINDS[name]
    assert jira["operations"] == planned


def test_out_of_scope_by_an_exclude_glob(world: World) -> None:
    found, jira = only(world, "svc-build")
    assert found["scope"] == {
        "in_source": True,
        "in_scope": False,
        "reason": "out of scope: 'svc-build' matches source.exclude_users 'svc-*'",
        "include": {"glob": "team-*", "group": "team-alpha"},
        "exclude": {"glob": "svc-*", "value": "svc-build"},
    }
    assert jira["planned"] is False and jira["account"] is None and jira["operations"] == []
    assert jira["summary"] == "nothing to do: no account on this target, and none is created"
    text = world.run("explain", "svc-build").stdout
    assert "scope: out of scope: 'svc-build' matches source.exclude_users 'svc-*'" in text


def test_out_of_scope_in_no_include_group_is_deprovisioned(world: World) -> None:
    found, jira = only(world, "emeka")
    assert found["scope"]["in_scope"] is False and found["scope"]["include"] is None
    assert found["scope"]["reason"] == (
        "out of scope: in none of source.include_groups (team-*); source groups: none"
    )
    account = jira["account"]
    assert account["username"] == "emeka" and account["owned"] is True
    assert "owner group 'scimsync-managed'" in account["ownership"]
    assert jira["summary"] == "plan: remove from jira-software-users; deactivate (left the source)"
    rule = next(r for r in jira["rules"] if r["rule"] == "rule 1 (from: team-*)")
    assert rule["source_groups"] == [] and rule["gives"] == []
    text = world.run("explain", "emeka").stdout
    assert "rule 1 (from: team-*): does not apply" in text


def test_new_joiner_is_created_with_the_groups_the_rules_give(world: World) -> None:
    found, jira = only(world, "fatima")
    assert found["scope"]["include"] == {"glob": "team-*", "group": "team-gamma"}
    assert found["scope"]["in_scope"] is True
    assert jira["account"] is None and jira["match"]["key"] is None
    assert [t["accounts"] for t in jira["match"]["tried"]] == [[], [], []]  # id, username, email
    assert {(g["group"], g["by"]) for g in jira["groups"]} == {
        ("jira-software-users", "default_groups"),
        ("jira-team-gamma", "rule 1 (from: team-*)"),
    }
    added = {op["group"]: op["reason"] for op in jira["operations"] if op["op"] == "add_member"}
    assert added == {
        "jira-software-users": "default_groups",
        "jira-team-gamma": "rule 1 (from: team-*)",
        "scimsync-managed": "owner marker",
    }
    assert [(op["op"], op["group"]) for op in jira["creates_groups"]] == [("create_group", "jira-team-gamma")]


def test_existing_person_matches_by_the_state_file_link(world: World) -> None:
    _, jira = only(world, "bruno")
    bruno = world.sim.user("bruno")
    assert bruno is not None
    assert jira["match"]["key"] == "id"
    assert jira["account"]["id"] == bruno["key"] and jira["account"]["owned"] is True
    (update,) = jira["operations"]
    assert update["changes"] == [
        {"field": "display_name", "old": "Bruno Rossi", "new": "Bruno Rossi-Bianchi"}
    ]
    _, amara = only(world, "amara")
    assert amara["operations"] == []
    assert amara["summary"] == "nothing to do: the account already agrees with the source"


def test_leaver_inactive_in_the_source(world: World) -> None:
    found, jira = only(world, "chen")
    assert found["source_user"]["active"] is False
    assert found["scope"]["in_scope"] is True
    assert "inactive in the source" in found["scope"]["reason"]
    assert jira["summary"].startswith(
        "plan: remove from jira-software-users; remove from jira-team-beta; deactivate"
    )
    assert {op["reason"] for op in jira["operations"]} == {"inactive in source"}


def test_leaver_gone_from_the_source(world: World) -> None:
    found, jira = only(world, "dalia")
    assert found["source_user"] is None
    assert found["scope"] == {
        "in_source": False,
        "in_scope": False,
        "reason": "not in the source",
        "include": None,
        "exclude": None,
    }
    assert jira["account"]["owned"] is True
    assert {op["reason"] for op in jira["operations"]} == {"left the source"}


def test_protected_account_is_never_changed(world: World) -> None:
    found, jira = only(world, "admin")
    assert found["source_user"] is None
    account = jira["account"]
    assert account["protected_by"] == "admin" and account["owned"] is False
    assert jira["summary"] == "never changed: protected by protected_users 'admin'"
    text = world.run("explain", "admin").stdout
    assert "protected: 'admin' matches policy.protected_users 'admin'" in text


@pytest.mark.parametrize("query", ["fatima@acme.test", "FATIMA", "id-fatima"])
def test_a_source_user_is_found_by_email_username_or_id(world: World, query: str) -> None:
    found, _ = only(world, query)
    assert found["source_user"]["id"] == "id-fatima"


def test_a_target_account_id_names_its_source_user(world: World) -> None:
    amara = world.sim.user("amara")
    assert amara is not None
    found, jira = only(world, amara["key"])
    assert found["source_user"]["username"] == "amara"
    assert jira["account"]["id"] == amara["key"]


def test_explain_never_writes(world: World) -> None:
    state = (world.folder / "scimsync-state.json").read_text()
    for name in EXPECTED_KINDS:
        assert world.run("explain", name).exit_code == 0
    assert world.sim.log.writes() == []
    assert (world.folder / "scimsync-state.json").read_text() == state


def test_unknown_user_exits_1_with_one_line(world: World) -> None:
    result = world.run("explain", "zed")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: explain zed: no source user has that id, username or email, "
        "and no target account has that username, email or id\n"
    )


def test_unreadable_target_exits_1_with_its_error(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2E_JIRA_TOKEN", "wrong-token-000")
    result = world.run("explain", "amara")
    assert result.exit_code == 1
    assert "jira (jira): not planned: jira: GET /rest/api/2/serverInfo: HTTP 401" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "error: jira: GET /rest/api/2/serverInfo: HTTP 401 Unauthorized: the credentials were rejected"
    )


def test_unknown_target_name(world: World) -> None:
    result = world.run("explain", "amara", "--target", "wiki")
    assert result.exit_code == 1
    assert result.stderr == "error: --target wiki: no such target (targets: jira)\n"


def test_a_guard_that_blocks_names_the_people_it_counts(world: World) -> None:
    world.max_deactivations = 2  # emeka, chen and dalia leave: 3
    world.write()
    _scope(world)
    _, chen = only(world, "chen")
    (guard,) = chen["guards"]
    assert (guard["guard"], guard["count"], guard["limit"], guard["counts_person"]) == (
        "max_deactivations",
        3,
        2,
        True,
    )
    assert "BLOCKED by safety guard max_deactivations" in chen["summary"]
    _, amara = only(world, "amara")
    assert [(g["guard"], g["counts_person"]) for g in amara["guards"]] == [("max_deactivations", False)]
    assert chen["operations"] == plan_operations(world, "chen")  # plan exits 3 with the same plan


def test_a_privileged_group_needs_a_privileged_rule(world: World) -> None:
    world.record("amara")["groups"] = ["team-alpha", "jira-admins"]
    world.write()
    _scope(world)
    team_rule = '        to: "jira-{{ group.name }}"\n'
    admin_rule = '      - from: "jira-admins"\n        to: jira-administrators\n'
    world.config.write_text(world.config.read_text().replace(team_rule, team_rule + admin_rule, 1))
    _, amara = only(world, "amara")
    (admins,) = [g for g in amara["groups"] if g["group"] == "jira-administrators"]
    assert admins == {
        "group": "jira-administrators",
        "by": "rule 2 (from: jira-admins)",
        "privileged": True,
        "privileged_ok": False,
        "member": False,
    }
    assert [(g["guard"], g["counts_person"]) for g in amara["guards"]] == [("privileged_group", True)]
    assert (
        "'jira-administrators' is a privileged group: needs a rule with privileged: true"
        in world.run("explain", "amara").stdout
    )


def test_json_form_is_stable(world: World) -> None:
    data = explain(world, "bruno")
    assert set(data) == {"format_version", "query", "people"} and data["format_version"] == 1
    (found,) = data["people"]
    assert set(found) == {"source_user", "scope", "targets"}
    (jira,) = found["targets"]
    assert set(jira) == {
        "target", "type", "summary", "error", "planned", "mapped", "account", "match", "groups", "rules",
        "operations", "creates_groups", "notices", "collisions", "guards",
    }  # fmt: skip
    assert set(jira["account"]) == {
        "id", "username", "email", "display_name", "active", "groups", "owned", "ownership",
        "protected_by", "manageable",
    }  # fmt: skip
    assert set(jira["match"]) == {"key", "reason", "tried"}


def test_a_collision_names_the_other_person(world: World) -> None:
    twin = person("amara2", "Amara", "Two", "team-alpha")
    twin["email"] = "amara@acme.test"
    world.write([*world.people, twin])
    _scope(world)
    _, jira = only(world, "amara2")
    assert jira["summary"] == (
        "collision on email 'amara@acme.test' with source user amara: neither is created or changed"
    )
    assert jira["collisions"] == [
        {"field": "email", "value": "amara@acme.test", "source_users": ["amara", "amara2"]}
    ]
    _, amara = only(world, "amara")
    assert amara["operations"] == [] == plan_operations(world, "amara")
    assert amara["summary"].startswith("collision on email 'amara@acme.test' with source user amara2")
