"""The okta source reads a big user list as lastUpdated ranges in parallel (issue 12 item 5).

Against the Okta simulator over loopback. What must hold, whatever the ranges: every user of
the org is read (a missed one would look like a leaver), each in its newest state; users
changed while the ranges are read are not lost between two ranges; a server that refuses the
filter gets the single walk; the request count stays near one request a page.
Expected values come from the seed (the status table by hand from idp-apis §1.4), never from
the code under test.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import scimsync.sources.okta_read as okta_read
from scimsync.config import OktaSourceConfig
from scimsync.errors import ConnectorError
from scimsync.http import HttpSettings
from scimsync.models import SourceDirectory
from scimsync.sim.okta import OktaSim
from scimsync.sim.okta_common import INVALID_SEARCH, OktaError
from scimsync.sim.server import SimServer
from scimsync.sources.okta import OktaSource

TOKEN = "sim-okta-token"
USERS = "/api/v1/users"
STATUSES = ("ACTIVE", "ACTIVE", "SUSPENDED", "ACTIVE", "DEPROVISIONED", "LOCKED_OUT", "STAGED", "ACTIVE")
ACTIVE = {"ACTIVE": True, "SUSPENDED": False, "DEPROVISIONED": False, "LOCKED_OUT": True, "STAGED": False}
PAGE = 20  # the org's page cap: many pages from few users (the source asks for 200, §1.4)


class Timeline:
    """The org's clock: one second per user while seeding, two days ago; then the real clock."""

    def __init__(self) -> None:
        self.seeding: float | None = time.time() - 2 * 86400

    def __call__(self) -> float:
        if self.seeding is None:
            return time.time()
        self.seeding += 1.0
        return self.seeding


def org(count: int, *, everyone: bool = True) -> OktaSim:
    """An org of ``count`` users created one second apart in id order, of mixed statuses."""
    timeline = Timeline()
    sim = OktaSim(max_page=PAGE, everyone=everyone, clock=timeline)
    for n in range(count):
        sim.add_user(f"u{n:04d}@acme.test", status=STATUSES[n % len(STATUSES)], groups=[f"team-{n % 3}"])
    timeline.seeding = None
    return sim


def served(sim: OktaSim) -> Iterator[str]:
    with SimServer(sim.app) as server:
        yield server.url


def read(url: str, concurrency: int = 8) -> SourceDirectory:
    config = OktaSourceConfig.model_validate({"type": "okta", "url": url, "token": TOKEN})
    source = OktaSource("source", config, HttpSettings(retries=2, timeout=10, concurrency=concurrency))
    try:
        return source.read()
    finally:
        source.close()


def user_lists(sim: OktaSim) -> dict[str, int]:
    """Return the requests to /api/v1/users by list: "plain", "newest" or the filter."""
    counts: dict[str, int] = {}
    for entry in sim.log.entries:
        if entry.path == USERS:
            name = entry.query.get("filter") or ("newest" if "search" in entry.query else "plain")
            counts[name] = counts.get(name, 0) + 1
    return counts


def assert_everyone_read(directory: SourceDirectory, count: int) -> None:
    people = {u.username: u for u in directory.users}
    assert len(directory.users) == len(people) == count
    for n in range(count):
        user = people[f"u{n:04d}@acme.test"]
        assert user.active is ACTIVE[STATUSES[n % len(STATUSES)]], n
        assert set(user.groups) >= {f"team-{n % 3}"}


def test_a_big_org_is_read_in_parallel_ranges_with_about_one_request_a_page() -> None:
    sim = org(2000)
    for url in served(sim):
        directory = read(url)
    assert_everyone_read(directory, 2000)  # DEPROVISIONED included, from the ranges themselves

    lists = user_lists(sim)
    ranges = {f: n for f, n in lists.items() if f.startswith("lastUpdated") and f != catch_up(lists)}
    pages = math.ceil(2000 / PAGE)  # 100: the single walk's chain
    assert len(ranges) == 8  # http.concurrency
    # The ranges meet: each lower bound is the upper bound of the one before, the ends are open.
    bounds = sorted(f.split('"')[1] for f in ranges if "ge" in f)
    assert sorted(ranges) == sorted(
        [f'lastUpdated lt "{bounds[0]}"']
        + [f'lastUpdated ge "{a}" and lastUpdated lt "{b}"' for a, b in itertools.pairwise(bounds)]
        + [f'lastUpdated ge "{bounds[-1]}"']
    )
    # Each range costs its share plus at most one partial page; planning costs three requests.
    assert pages <= sum(ranges.values()) <= pages + len(ranges)
    assert lists["plain"] == 1 and lists["newest"] == 1 and lists[catch_up(lists)] == 1
    assert 'status eq "DEPROVISIONED"' not in lists  # the ranges hold them (§1.4)
    # The chain: users were created at an even pace, so the ranges come out about even.
    assert max(ranges.values()) <= 2 * pages / len(ranges), ranges


def catch_up(lists: Mapping[str, int]) -> str:
    """The catch-up is the open-ended range that does not continue another (ranges meet)."""
    uppers = {f.split(' lt "')[1].rstrip('"') for f in lists if ' lt "' in f}
    (found,) = [
        f for f in lists if f.startswith('lastUpdated ge "') and " and " not in f and f[16:-1] not in uppers
    ]
    return found


@pytest.mark.parametrize("without_catch_up", [False, True], ids=["catch-up", "no-catch-up"])
def test_users_changed_while_the_ranges_are_read_are_not_lost_between_them(
    monkeypatch: pytest.MonkeyPatch, without_catch_up: bool
) -> None:
    # Two ranges (http.concurrency 2), the lower one holding the lower ids. Once the lower
    # range has read its page 1 and the upper one its page 1, the users of the lower range it
    # has not reached yet change: their lastUpdated jumps into the upper range, whose cursor is
    # already past their ids. Neither range lists them; only the catch-up can.
    sim = org(400)
    live = sorted(uid for uid, u in sim.directory.users.items() if u.status != "DEPROVISIONED")
    sampled = set(live[:PAGE])  # page 1 of the plain list, read before the ranges
    lower_at_page_2 = threading.Event()
    moved: list[str] = []
    done = threading.Event()

    def race(path: str, query: Mapping[str, Any]) -> None:
        expression = str(query.get("filter", ""))
        if path != USERS or "after" not in query or "lastUpdated" not in expression:
            return
        if expression.startswith("lastUpdated lt"):  # the lower range asks for its page 2
            lower_at_page_2.set()
            assert done.wait(10), "the upper range never asked for its page 2"
        elif " and " not in expression and not done.is_set():  # the upper range's page 2
            assert lower_at_page_2.wait(10), "the lower range never asked for its page 2"
            bound = expression.split('"')[1]
            reached = sorted(uid for uid in sim.directory.users if okta_time_of(sim, uid) < bound)[PAGE - 1]
            for uid in sorted(sim.directory.users):
                if reached < uid and okta_time_of(sim, uid) < bound and uid not in sampled:
                    sim.update_profile(uid, department="moved")
                    moved.append(uid)
            done.set()

    sim.on_request(race)
    if without_catch_up:  # what the test catches: without the catch-up, the movers are missed
        monkeypatch.setattr(okta_read, "since", lambda start: 'lastUpdated ge "2999-01-01T00:00:00.000Z"')
    for url in served(sim):
        directory = read(url, concurrency=2)
    assert len(moved) > 100
    if without_catch_up:
        assert {u.id for u in directory.users} == set(sim.directory.users) - set(moved)
        return
    assert_everyone_read(directory, 400)
    people = {u.id: u for u in directory.users}
    assert all(people[uid].attributes["department"] == "moved" for uid in moved)  # the newest state


def okta_time_of(sim: OktaSim, uid: str) -> str:
    found = sim.user(uid)
    assert found is not None
    return str(found["lastUpdated"])


@pytest.mark.parametrize("refused", ["every range", "the catch-up"])
def test_a_server_that_refuses_the_filter_gets_the_single_walk(refused: str) -> None:
    sim = org(400)
    ranges: set[str] = set()  # 400 users in pages of 20: five ranges, then the catch-up

    def refuse(path: str, query: Mapping[str, Any]) -> None:
        expression = str(query.get("filter", ""))
        if "lastUpdated" in expression:
            ranges.add(expression)
            if refused == "every range" or len(ranges) > 5:
                raise OktaError(400, INVALID_SEARCH, causes=["filter: lastUpdated cannot be filtered on"])

    sim.on_request(refuse)
    for url in served(sim):
        directory = read(url)
    assert_everyone_read(directory, 400)
    lists = user_lists(sim)
    live = sum(1 for n in range(400) if STATUSES[n % len(STATUSES)] != "DEPROVISIONED")
    assert lists["plain"] == live // PAGE + 1  # the whole plain list (a full last page links on)
    assert lists['status eq "DEPROVISIONED"'] == (400 - live) // PAGE + 1
    assert len(ranges) == (5 if refused == "every range" else 6)


def test_a_range_page_that_keeps_failing_fails_the_read_naming_it() -> None:
    # Only a refusal (400) means "no filter here": any other error fails the read as before.
    sim = org(400)

    def broken(path: str, query: Mapping[str, Any]) -> None:
        if path == USERS and str(query.get("filter", "")).startswith("lastUpdated lt") and "after" in query:
            raise OktaError(500, ("E0000009", "Internal Server Error"))

    sim.on_request(broken)
    for url in served(sim):
        with pytest.raises(ConnectorError) as caught:
            read(url)
    # 400 users are 20 pages of 20: five ranges of at least four pages (not http.concurrency's 8).
    assert str(caught.value).startswith("source: GET /api/v1/users (range 1 of 5) page 2: HTTP 500")


def test_an_org_without_a_visible_everyone_or_with_one_request_at_a_time_is_walked_once() -> None:
    # Without Everyone's count (a Group Administrator's token, §1.5) the size is unknown.
    for sim, concurrency in ((org(400, everyone=False), 8), (org(400), 1)):
        for url in served(sim):
            directory = read(url, concurrency=concurrency)
        assert_everyone_read(directory, 400)
        lists = user_lists(sim)
        assert set(lists) == {"plain", 'status eq "DEPROVISIONED"'}, lists
