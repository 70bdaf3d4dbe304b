"""Planning reads each target while the users are mapped, and reads again when the mapping names more.

The target read waits on the network and the mapping on the CPU, so ``api._plan_target``
starts the read with the groups the rules name without rendering anyone. A rule naming
groups from ``user`` can add groups that read did not cover: then the target is read again
with them, so the plan is what a read after the mapping would give.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_trust_support import TOKEN, TrustWorld, make_trust_world

from scimsync import api

MEMBERS = "/rest/api/2/group/member"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrustWorld]:
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    yield from make_trust_world(tmp_path, TOKEN)


def _member_reads(world: TrustWorld) -> list[str]:
    return [e.query.get("groupname", "") for e in world.sim.log.entries if e.path.endswith(MEMBERS)]


def test_the_target_is_read_while_the_users_are_mapped(
    world: TrustWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.provision()
    reading = threading.Event()
    mapped_after_read_began: list[bool] = []

    def desired(*args: Any, **kwargs: Any) -> Any:
        # The mapping waits (bounded) for the target read to begin: it only begins if the
        # read does not wait for the mapping.
        mapped_after_read_began.append(reading.wait(timeout=20))
        return real_desired(*args, **kwargs)

    def read_target(*args: Any, **kwargs: Any) -> Any:
        reading.set()
        return real_read(*args, **kwargs)

    real_desired, real_read = api._desired, api._read_target
    monkeypatch.setattr(api, "_desired", desired)
    monkeypatch.setattr(api, "_read_target", read_target)
    result = world.run("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert mapped_after_read_began == [True]


def test_rules_that_name_no_group_from_the_user_read_each_group_once(world: TrustWorld) -> None:
    world.provision()
    world.sim.log.clear()
    world.assert_converged()
    reads = _member_reads(world)
    assert sorted(reads) == sorted(set(reads)), "a group's members were read twice"
    assert {"jira-team-alpha", "jira-team-beta", "scimsync-managed"} <= set(reads)


def test_a_group_named_from_a_user_attribute_is_read_before_it_is_planned(world: TrustWorld) -> None:
    world.rules = [{"from": "team-*", "to": "dept-{{ user.attributes.department | slug }}"}]
    departments = {"amara": "Sales", "bruno": "Engineering", "chen": "Engineering", "dalia": "Support"}
    world.write([{**p, "department": departments.get(p["username"], "Finance")} for p in world.people])
    world.provision()
    # Someone in the UI made 'dept-legal' meanwhile, and put amara (owned) in it: nothing
    # remembers that group, only amara's new department names it.
    world.sim.add_group("dept-legal", members=["amara"])
    world.record("amara")["department"] = "Legal"
    world.write()
    world.sim.log.clear()
    data = world.plan_json()
    ops = [(op["op"], op["group"], op["account"]) for t in data["targets"] for op in t["operations"]]
    assert ("add_member", "dept-legal", "amara") not in ops, "the plan did not read dept-legal"
    assert not [op for op in ops if op[0] == "create_group" and op[1] == "dept-legal"]
    assert ("remove_member", "dept-sales", "amara") in ops
    assert "dept-legal" in _member_reads(world)
