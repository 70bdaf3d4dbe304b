"""The Jira simulator's group/member pages: sorted once per change, answers as before (issue 12 item 6)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from scimsync.sim.jira import JiraSim
from scimsync.sim.jira_directory import JiraDirectory, JiraGroup
from scimsync.sim.server import SimServer

TOKEN = "sim-jira-token"


@pytest.fixture
def served() -> Iterator[tuple[JiraSim, requests.Session, str]]:
    sim = JiraSim()
    with SimServer(sim.app) as server, requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield sim, session, f"{server.url}/rest/api/2/group/member"


def expected_page(sim: JiraSim, group: str, start_at: int, include_inactive: bool) -> dict[str, Any]:
    """The page as the simulator answered it before the cache: every member, sorted on each call."""
    directory = sim.directory
    found = directory.find_group(group)
    assert found is not None
    keys: set[str] = set()
    todo, seen = [found], {found.name.lower()}
    while todo:  # the group and its nested groups, written here without the directory's closure
        current = todo.pop()
        keys |= set(current.members)
        for child in current.children:
            if child not in seen and child in directory.groups:
                seen.add(child)
                todo.append(directory.groups[child])
    users = sorted(
        (directory.users[k] for k in keys if directory.users[k].active or include_inactive),
        key=lambda u: u.name.lower(),
    )
    page = users[start_at : start_at + 50]
    return {
        "names": [u.name for u in page],
        "total": len(users),
        "isLast": start_at + 50 >= len(users),
        "active": [u.active for u in page],
    }


def answered(
    session: requests.Session, url: str, group: str, start_at: int, inactive: bool
) -> dict[str, Any]:
    params = {"groupname": group, "startAt": start_at, "includeInactiveUsers": str(inactive).lower()}
    body = session.get(url, params=params, timeout=10).json()
    values = body["values"]
    return {
        "names": [v["name"] for v in values],
        "total": body["total"],
        "isLast": body["isLast"],
        "active": [v["active"] for v in values],
    }


def test_pages_follow_every_kind_of_change(served: tuple[JiraSim, requests.Session, str]) -> None:
    sim, session, url = served
    rng = random.Random(12)
    for i in range(150):
        sim.add_user(f"user{i:03}", f"u{i}@example.test", f"User {i}", groups=("big",))
    sim.add_group("small", parent="big")
    names = [f"user{i:03}" for i in range(150)]
    renamed = 0

    def mutate(step: int) -> None:
        nonlocal renamed
        directory = sim.directory
        group = directory.find_group(rng.choice(["big", "small"]))
        assert group is not None
        name = rng.choice(names)
        user = directory.find_user(name)
        assert user is not None
        match step % 7:
            case 0:  # a member added through the HTTP handler's path: the set itself
                group.members.add(user.key)
            case 1:
                group.members.discard(user.key)
            case 2:  # a rename moves the user in the order
                renamed += 1
                new = f"a-renamed{renamed:03}" if rng.random() < 0.5 else f"zz-renamed{renamed:03}"
                sim.update_user(name, name=new)
                names[names.index(name)] = new
            case 3:  # deactivation filters the user out unless inactive ones are asked for
                sim.update_user(name, active=not user.active)
            case 4:
                sim.add_user(f"new{step:03}", f"n{step}@example.test", "New", groups=("small",))
                names.append(f"new{step:03}")
            case 5:  # a whole set put in place, as a test might do
                small = directory.find_group("small")
                assert small is not None
                small.members = {k for k in small.members if rng.random() < 0.8}
            case _:
                directory.delete_user(user)
                names.remove(name)

    for step in range(60):
        for inactive in (False, True):
            for start_at in (0, 50, 100):
                want = expected_page(sim, "big", start_at, inactive)
                assert answered(session, url, "big", start_at, inactive) == want, (step, inactive, start_at)
        mutate(step)


def test_a_group_deleted_and_created_again_is_not_served_from_the_old_list(
    served: tuple[JiraSim, requests.Session, str],
) -> None:
    sim, session, url = served
    sim.add_user("amara", "a@example.test", "Amara", groups=("team",))
    assert answered(session, url, "team", 0, True)["names"] == ["amara"]
    group = sim.directory.find_group("team")
    assert group is not None
    sim.directory.delete_group(group)
    sim.add_group("TEAM")
    assert answered(session, url, "team", 0, True) == {"names": [], "total": 0, "isLast": True, "active": []}


def test_paging_a_group_sorts_it_once(
    served: tuple[JiraSim, requests.Session, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, session, url = served
    for i in range(500):
        sim.add_user(f"user{i:03}", f"u{i}@example.test", f"User {i}", groups=("big",))
    walks: list[str] = []
    closure = JiraDirectory.effective_members

    def counted(self: JiraDirectory, group: JiraGroup) -> set[str]:
        walks.append(group.name)
        return closure(self, group)

    monkeypatch.setattr(JiraDirectory, "effective_members", counted)
    pages = [answered(session, url, "big", start, True) for start in range(0, 500, 50)]
    assert [n for p in pages for n in p["names"]] == [f"user{i:03}" for i in range(500)]
    assert walks == ["big"], "ten pages, one walk of the group"
    sim.add_user("late", "late@example.test", "Late", groups=("big",))
    assert answered(session, url, "big", 500, True)["names"] == ["user499"], "'late' sorts first"
    assert walks == ["big", "big"], "a change makes the next page walk the group again"


def test_the_answer_bytes_are_unchanged(served: tuple[JiraSim, requests.Session, str]) -> None:
    sim, session, url = served
    sim.add_user("Zed", "z@example.test", "Zed", groups=("g",))
    sim.add_user("amy", "a@example.test", "Amy", active=False, groups=("g",))
    body = session.get(url, params={"groupname": "g", "includeInactiveUsers": "true"}, timeout=10).text
    decoded = json.loads(body)
    assert list(decoded) == ["self", "maxResults", "startAt", "total", "isLast", "values"]
    assert [v["name"] for v in decoded["values"]] == ["amy", "Zed"], "sorted case-insensitively"
    assert (decoded["total"], decoded["isLast"], decoded["maxResults"]) == (2, True, 50)
