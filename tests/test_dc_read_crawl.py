"""The Data Center reads as one bounded pool (issue 12): chains overlap, counts stay the fewest.

``Crawl`` runs page reads with at most ``http.concurrency`` in flight, a chain's next page
ahead of pages not started. Against the Jira and Confluence simulators: the user-list chain
and the member reads overlap (a hook holds the first user-list page until a member request
arrives), no more requests go out than the APIs need, ``wanted`` is not iterated before the
reads are done, and the simulators' caches never serve a stale page.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from scimsync.http import BearerAuth, HttpClient, HttpSettings
from scimsync.http.pagination import Crawl
from scimsync.secrets import Secret
from scimsync.sim.confluence import ConfluenceSim
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer
from scimsync.targets.confluence import ConfluenceTarget
from scimsync.targets.confluence_errors import parse_error as confluence_error
from scimsync.targets.jira import JiraTarget
from scimsync.targets.jira import parse_error as jira_error

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

HOLD = 10.0  # seconds a held request waits for the one it waits for; only reached on failure


def client(concurrency: int = 4, url: str = "http://unused.test", system: str = "jira") -> HttpClient:
    settings = HttpSettings(retries=0, concurrency=concurrency)
    parser = jira_error if system == "jira" else confluence_error
    token = f"sim-{system}-token"
    return HttpClient(system, url, auth=BearerAuth(Secret(token)), settings=settings, error_parser=parser)


# -- Crawl ------------------------------------------------------------------------------


def test_crawl_keeps_concurrency_jobs_in_flight_and_never_more() -> None:
    crawl = Crawl(client(concurrency=3))
    barrier = threading.Barrier(3, timeout=HOLD)  # passes only when 3 jobs run at once
    lock = threading.Lock()
    running, most = [0], [0]

    def job() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        barrier.wait()
        with lock:
            running[0] -= 1

    for _ in range(9):
        crawl.add(job)
    crawl.run()

    assert most[0] == 3


def test_crawl_runs_a_chains_next_page_before_jobs_not_started() -> None:
    crawl = Crawl(client(concurrency=1))
    order: list[str] = []

    def chain(step: int) -> None:
        order.append(f"chain{step}")
        if step < 3:
            crawl.add(lambda: chain(step + 1), urgent=True)

    crawl.add(lambda: chain(1))
    for name in ("a", "b"):
        crawl.add(lambda name=name: order.append(name))  # type: ignore[misc]
    crawl.run()

    assert order == ["chain1", "chain2", "chain3", "a", "b"]


def test_crawl_uses_every_worker_for_jobs_added_later() -> None:
    # One first job that adds the rest (a list's remaining pages once its total is known).
    crawl = Crawl(client(concurrency=4))
    barrier = threading.Barrier(4, timeout=HOLD)

    def meet() -> None:
        barrier.wait()

    def first() -> None:
        for _ in range(4):
            crawl.add(meet)

    crawl.add(first)
    crawl.run()  # the barrier breaks (and run raises) unless 4 run at once


def test_crawl_raises_the_first_failure_and_starts_nothing_after_it() -> None:
    crawl = Crawl(client(concurrency=1))
    ran: list[int] = []

    def fail() -> None:
        ran.append(1)
        raise ValueError("page 1 is garbage")

    crawl.add(fail)
    crawl.add(lambda: ran.append(2))
    with pytest.raises(ValueError, match="garbage"):
        crawl.run()
    assert ran == [1]


def test_crawl_chain_hands_each_page_in_order() -> None:
    crawl = Crawl(client(concurrency=4))
    seen: list[list[int]] = []
    crawl.chain(iter([[1, 2], [3], [4, 5]]), seen.append)
    crawl.run()
    assert seen == [[1, 2], [3], [4, 5]]


# -- the simulators, with a hook ----------------------------------------------------------


class Hook:
    """WSGI middleware: holds the first request to ``held`` until one to ``awaited`` arrives.

    Records whether that happened (the two overlapped) and the most requests in flight.
    """

    def __init__(self, app: WSGIApplication, held: str, awaited: str) -> None:
        self.app = app
        self.held = held
        self.awaited = awaited
        self.arrived = threading.Event()
        self.overlapped: bool | None = None
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            hold = path.endswith(self.held) and self.overlapped is None
            if hold:
                self.overlapped = False
        try:
            if self.awaited in path:
                self.arrived.set()
            if hold:
                self.overlapped = self.arrived.wait(HOLD)
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.in_flight -= 1


class LazyWanted:
    """A ``wanted`` iterable that notes how many requests the simulator had seen when first iterated."""

    def __init__(self, sim: Any, pairs: list[tuple[str, str]]) -> None:
        self.sim = sim
        self.pairs = pairs
        self.seen_at: int | None = None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        if self.seen_at is None:
            self.seen_at = self.sim.log.count()
        return iter(self.pairs)


def jira_company(people: int, groups: int) -> tuple[JiraSim, list[str]]:
    sim = JiraSim("10.3.1")
    names = [f"g{i:02}" for i in range(groups)]
    for name in ("owners", *names):
        sim.add_group(name)
    for n in range(people):
        sim.add_user(f"p{n:04}", f"p{n:04}@x.test", f"P {n}", groups=(names[n % groups], "owners"))
    return sim, names


def test_jira_user_list_and_member_reads_overlap_with_the_fewest_requests() -> None:
    sim, names = jira_company(people=130, groups=3)
    hook = Hook(sim.app, held="/rest/api/2/user/list", awaited="/rest/api/2/group/member")
    with SimServer(hook) as server:
        target = JiraTarget("jira", client(concurrency=3, url=server.url))
        wanted = LazyWanted(sim, [(f"p{n:04}", f"p{n:04}@x.test") for n in range(130)])
        directory = target.read(["owners", *names], wanted=wanted)
        target.close()

    assert hook.overlapped is True, "a member page went out while the user list was read"
    assert hook.most <= 3
    by_name = {a.username: a for a in directory.accounts}
    assert set(by_name) == {"admin", *(f"p{n:04}" for n in range(130))}
    assert by_name["p0004"].groups == frozenset({"g01", "owners"})
    assert by_name["admin"].groups == frozenset()
    assert directory.groups == frozenset({"owners", *names})
    # The fewest: serverInfo, one /user/list page (2,000 a page), 50 members a page.
    assert sim.log.count("GET", "/rest/api/2/user/list") == 1
    members = math.ceil(130 / 50) + sum(math.ceil(len(range(i, 130, 3)) / 50) for i in range(3))
    assert sim.log.count("GET", "/rest/api/2/group/member") == members
    assert sim.log.count("GET", "/rest/api/2/applicationrole") == 0  # nobody to create
    # wanted was first looked at after every read had gone out (the roles check, at the end).
    assert wanted.seen_at == sim.log.count()


def test_jira_below_10_3_reads_wanted_only_after_walking_the_groups() -> None:
    sim = JiraSim("10.1.0")
    sim.add_group("team", members=())
    sim.add_user("amara", "amara@x.test", "Amara", groups=("team", "jira-software-users"))
    with SimServer(sim.app) as server:
        target = JiraTarget("jira", client(url=server.url))
        wanted = LazyWanted(sim, [("amara", "amara@x.test")])
        directory = target.read(["team"], wanted=wanted)
        target.close()
    assert {a.username for a in directory.accounts} >= {"amara"}
    walked = sim.log.count("GET", "/rest/api/2/group/member")
    assert walked >= 2  # team and the access groups
    assert wanted.seen_at is not None and wanted.seen_at == sim.log.count()  # and no look-up was needed
    assert sim.log.count("GET", "/rest/api/2/user/search") == 0


def confluence_company(people: int) -> ConfluenceSim:
    sim = ConfluenceSim("10.2.0")
    sim.add_group("owners")
    sim.add_group("big")
    sim.add_group("small")
    for n in range(people):
        groups = ("owners", "big" if n % 5 else "small")
        sim.add_user(f"p{n:04}", f"p{n:04}@x.test", f"P {n}", groups=groups)
    return sim


def test_confluence_user_list_and_member_chains_run_at_once_with_the_fewest_requests() -> None:
    people = 450  # 2 default users besides: the lists have 3 pages of 200
    sim = confluence_company(people)
    hook = Hook(sim.app, held="/rest/api/user/list", awaited="/rest/api/group/owners/member")
    with SimServer(hook) as server:
        target = ConfluenceTarget("confluence", client(concurrency=3, url=server.url, system="confluence"))
        wanted = LazyWanted(sim, [])
        directory = target.read(["owners", "big", "small", "missing"], wanted=wanted)
        target.close()

    assert hook.overlapped is True, "a member page went out while the user list was read"
    assert hook.most <= 3
    everyone = sim.log.count("GET", "/rest/api/user/list")
    registered = len(sim.directory.users)
    assert everyone == math.ceil(registered / 200)
    assert sim.log.count("GET", "/rest/api/group/owners/member") == math.ceil(people / 200)
    assert sim.log.count("GET", "/rest/api/group/big/member") == math.ceil(360 / 200)
    assert sim.log.count("GET", "/rest/api/group/small/member") == 1
    assert sim.log.count("GET", "/rest/api/group/missing/member") == 1  # 404, then:
    assert sim.log.count("GET", "/rest/api/group/missing") == 1  # the group decides
    assert wanted.seen_at is None, "8.4+ lists every user: wanted is never needed"
    by_name = {a.username: a for a in directory.accounts}
    assert len(by_name) == registered
    assert by_name["p0005"].groups == frozenset({"owners", "small"})
    assert by_name["p0006"].groups == frozenset({"owners", "big"})
    assert by_name["p0006"].email == "p0006@x.test"
    assert directory.groups == frozenset({"owners", "big", "small"})


def test_confluence_members_of_a_missing_group_are_none() -> None:
    sim = confluence_company(3)
    with SimServer(sim.app) as server:
        target = ConfluenceTarget("confluence", client(url=server.url, system="confluence"))
        reader = target._reader
        assert reader.members("missing") is None
        assert {a.username for a in reader.members("owners") or ()} == {"p0000", "p0001", "p0002"}
        target.close()


# -- the simulators' caches never serve a stale page ----------------------------------------


def test_jira_sim_list_and_member_pages_follow_every_change() -> None:
    sim, _ = jira_company(people=3, groups=1)
    with SimServer(sim.app) as server:
        http = client(url=server.url)
        first = http.get_json("/rest/api/2/user/list")
        members = http.get_json("/rest/api/2/group/member", params={"groupname": "g00"})
        sim.add_user("p0003", "p0003@x.test", "P 3", groups=("g00",))
        sim.update_user("p0000", emailAddress="new@x.test", displayName="Renamed")
        again = http.get_json("/rest/api/2/user/list")
        members_again = http.get_json("/rest/api/2/group/member", params={"groupname": "g00"})
        http.close()
    assert len(again["values"]) == len(first["values"]) + 1
    assert [u["name"] for u in members["values"]] == ["p0000", "p0001", "p0002"]
    assert [u["name"] for u in members_again["values"]] == ["p0000", "p0001", "p0002", "p0003"]
    changed = next(u for u in again["values"] if u["name"] == "p0000")
    assert (changed["emailAddress"], changed["displayName"]) == ("new@x.test", "Renamed")
    assert members_again["values"][0]["emailAddress"] == "new@x.test"


def test_jira_sim_user_list_cursor_pages_by_key_after_a_delete() -> None:
    sim, _ = jira_company(people=5, groups=1)
    with SimServer(sim.app) as server:
        http = client(url=server.url)
        page = http.get_json("/rest/api/2/user/list", params={"maxResults": 2})
        gone = sim.directory.find_user("p0001")
        assert gone is not None
        sim.directory.delete_user(gone)  # on the next page
        rest = http.get_json("/rest/api/2/user/list", params={"maxResults": 10, "cursor": page["nextCursor"]})
        http.close()
    assert [u["name"] for u in page["values"]] == ["admin", "p0000"]
    assert [u["name"] for u in rest["values"]] == ["p0002", "p0003", "p0004"]
    assert rest["isLast"] is True


def test_confluence_sim_member_pages_follow_renames_and_memberships() -> None:
    sim = confluence_company(3)
    with SimServer(sim.app) as server:
        http = client(url=server.url, system="confluence")
        path = "/rest/api/group/owners/member"
        before = http.get_json(path, params={"limit": 2})
        renamed = sim.directory.find_user("p0000")
        assert renamed is not None
        renamed.name = "zed"  # sorts last now
        sim.add_user("a-new", "a@x.test", "A", groups=("owners",))
        after = http.get_json(path, params={"limit": 200})
        users = http.get_json("/rest/api/user/list", params={"limit": 200})
        http.close()
    assert [u["username"] for u in before["results"]] == ["p0000", "p0001"]
    assert [u["username"] for u in after["results"]] == ["a-new", "p0001", "p0002", "zed"]
    assert [u["username"] for u in users["results"]][-1] == "a-new"  # creation order


def test_confluence_sim_user_pages_follow_field_changes_and_who_asks() -> None:
    sim = confluence_company(2)
    sim.add_account("viewer", token="viewer-token")  # no administrator: sees no emails (§2.2)
    with SimServer(sim.app) as server:
        http = client(url=server.url, system="confluence")
        params = {"limit": 200, "expand": "status"}
        before = http.get_json("/rest/api/user/list", params=params)
        sim.update_user("p0000", email="new@x.test", display_name="Renamed", active=False)
        after = http.get_json("/rest/api/user/list", params=params)
        bare = http.get_json("/rest/api/user/list", params={"limit": 200})
        http.close()
        viewer = HttpClient("confluence", server.url, auth=BearerAuth(Secret("viewer-token")))
        seen = viewer.get_json("/rest/api/user/list", params=params)
        viewer.close()

    def p0(body: dict[str, Any]) -> dict[str, Any]:
        return next(u for u in body["results"] if u["username"] == "p0000")

    assert (p0(before)["email"], p0(before)["status"]) == ("p0000@x.test", "Active")
    assert (p0(after)["email"], p0(after)["displayName"], p0(after)["status"]) == (
        "new@x.test",
        "Renamed",
        "Deactivated",
    )
    assert "status" not in p0(bare) and p0(bare)["_expandable"] == {"status": ""}
    assert "email" not in p0(seen) and p0(seen)["status"] == "Deactivated"


def test_jira_sim_admin_check_follows_a_membership_change() -> None:
    sim = JiraSim("10.3.1")
    sim.add_account("boss", token="boss-token", admin=True)
    with SimServer(sim.app) as server:
        settings = HttpSettings(retries=0)
        boss = HttpClient(
            "jira",
            server.url,
            auth=BearerAuth(Secret("boss-token")),
            settings=settings,
            error_parser=jira_error,
        )
        assert boss.request("GET", "/rest/api/2/user/list", ok=(200, 403)).status_code == 200
        admins, user = sim.directory.find_group("jira-administrators"), sim.directory.find_user("boss")
        assert admins is not None and user is not None
        admins.members.discard(user.key)
        assert boss.request("GET", "/rest/api/2/user/list", ok=(200, 403)).status_code == 403
        boss.close()
