"""How many requests a read of an Atlassian Cloud directory costs, counted by the simulator.

The expected counts are worked out here from the reference, not from the code: Atlassian
serves at most 100 resources a page (reference §3.4), and the pager starts each page after
the first on the last resource of the page before (the overlap that shows a list moving),
so the first page brings 100 and every later one 99 new. ``atlassian-cloud`` knows what
Atlassian supports (§3.2-§3.5) and reads no discovery endpoint; the generic ``scim`` type
reads each of the three once. No page starts past ``totalResults`` (RFC 7644 §3.4.2.4).
"""

from __future__ import annotations

import csv
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from scimsync import api
from scimsync.http import BearerAuth, HttpClient
from scimsync.secrets import Secret
from scimsync.sim import atlassian_cloud_common
from scimsync.sim.atlassian_cloud import AtlassianCloudSim
from scimsync.sim.server import SimServer
from scimsync.targets.atlassian_cloud import FEATURES
from scimsync.targets.scim_service import discover

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

TOKEN = "requests-cloud-key-5d2a"
# 11 pages: 100 + 10 x 99 = 1090 (the fewest too, ceil(1090 / 100)); the 11th page ends
# on the last user exactly, so a pager that asks for startIndex 1090 reads past the end.
PEOPLE = 1090
TEAMS, DEPARTMENTS = 120, 10
GROUPS = TEAMS + DEPARTMENTS  # 2 pages: 100 + 99 >= 130
PAGE = 100  # §3.4: "first max 100 users at once"
DISCOVERY = ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas")


def pages(total: int, size: int = PAGE) -> int:
    """Return the pages a list of ``total`` takes: one of ``size``, then ``size - 1`` new each."""
    return 1 if total <= size else 1 + math.ceil((total - size) / (size - 1))


def group_of(n: int) -> list[str]:
    """Return person ``n``'s two groups: a team and a department."""
    return [f"team-{n % TEAMS:03d}", f"dept-{n % DEPARTMENTS}"]


class Directory:
    """A converged company: the simulator holds exactly what the CSV source maps to."""

    def __init__(self, tmp_path: Path, sim: AtlassianCloudSim, url: str, kind: str) -> None:
        self.sim, self.path = sim, tmp_path
        rows = []
        for n in range(PEOPLE):
            name, email = f"p{n:04d}", f"p{n:04d}@acme.test"
            sim.add_user(name, email, f"Person {n:04d}", external_id=f"emp-{n}", groups=group_of(n))
            first, last = "Person", f"{n:04d}"
            groups = ";".join(group_of(n))
            rows.append(
                {"id": f"emp-{n}", "username": name, "email": email, "first_name": first}
                | {
                    "last_name": last,
                    "active": "true",
                    "groups": groups,
                }
            )
        with (tmp_path / "people.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        config = {
            "version": 1,
            "source": {"type": "file", "path": "people.csv"},
            "mapping": {"display_name": "{{ user.first_name }} {{ user.last_name }}"},
            "targets": {
                "cloud": {
                    "type": kind,
                    "url": url,
                    "token": TOKEN,
                    "groups": [{"from": "*", "to": "{{ group.name }}"}],
                }
            },
            "audit_log": None,
            "state_file": "state.json",
            "http": {"concurrency": 8, "retries": 0, "timeout": 10},
        }
        (tmp_path / "scimsync.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    def plan(self) -> int:
        """Make a plan from scratch; return how many operations it holds (a failed read fails here)."""
        plan = api.make_plan(api.load(self.path / "scimsync.yaml"))
        (target,) = plan.targets
        assert target.error is None, target.error
        return len(target.operations)

    def requests(self) -> Counter[str]:
        """Return how many requests each method and path received."""
        base = len(self.sim.base_path)
        return Counter(f"{e.method} {e.path[base:]}" for e in self.sim.log.entries)

    def starts(self, path: str) -> list[int]:
        """Return the startIndex of every page of ``path`` asked for, sorted."""
        wanted = self.sim.base_path + path
        return sorted(int(e.query["startIndex"]) for e in self.sim.log.entries if e.path == wanted)


@contextmanager
def served(
    tmp_path: Path, kind: str, wrap: Callable[[WSGIApplication], WSGIApplication] | None = None
) -> Iterator[Directory]:
    """Serve a converged simulator (its app wrapped by ``wrap``) to a config of target type ``kind``."""
    sim = AtlassianCloudSim(token=TOKEN)
    app = sim.app if wrap is None else wrap(sim.app)
    with SimServer(app) as server:
        directory = Directory(tmp_path, sim, server.url + sim.base_path, kind)
        sim.log.clear()
        yield directory


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Directory]:
    with served(tmp_path, "atlassian-cloud") as directory:
        yield directory


def test_a_no_change_plan_reads_each_page_once_and_nothing_else(cloud: Directory) -> None:
    assert cloud.plan() == 0
    assert cloud.requests() == {"GET /Users": pages(PEOPLE), "GET /Groups": pages(GROUPS)}
    assert (pages(PEOPLE), pages(GROUPS)) == (11, 2)  # the fewest (ceil(n / 100)) at these sizes
    # Every page starts on the last resource of the one before; none past the end.
    assert cloud.starts("/Users") == [1, *range(PAGE, PEOPLE, PAGE - 1)]
    assert cloud.starts("/Groups") == [1, 100]
    assert max(cloud.starts("/Users")) < PEOPLE


def test_the_generic_scim_type_reads_the_discovery_endpoints_once_each(tmp_path: Path) -> None:
    with served(tmp_path, "scim") as scim:
        assert scim.plan() == 0
        expected = {"GET /Users": pages(PEOPLE), "GET /Groups": pages(GROUPS)}
        assert scim.requests() == expected | {f"GET {path}": 1 for path in DISCOVERY}


def test_a_service_serving_fewer_than_asked_is_paged_by_what_it_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory that clamps pages to 40 (§3.4 only says "max 100"): later pages step by 39.
    monkeypatch.setattr(atlassian_cloud_common, "PAGE_MAX", 40)
    with served(tmp_path, "atlassian-cloud") as clamped:
        assert clamped.plan() == 0
        assert clamped.requests() == {"GET /Users": pages(PEOPLE, 40), "GET /Groups": pages(GROUPS, 40)}
        assert clamped.starts("/Users") == [1, *range(40, PEOPLE, 39)]
        assert clamped.starts("/Groups") == [1, 40, 79, 118]


class _Gate:
    """Hold the first ``width`` later pages of /Users until all of them are in flight at once."""

    def __init__(self, app: WSGIApplication, width: int) -> None:
        self.app, self.width = app, width
        self.barrier = threading.Barrier(width, timeout=10)
        self.lock = threading.Lock()
        self.held = 0
        self.broken = False

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        later = environ["PATH_INFO"].endswith("/Users") and "startIndex=1&" not in environ["QUERY_STRING"]
        with self.lock:
            hold = later and self.held < self.width
            self.held += hold
        if hold:
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                self.broken = True
        return self.app(environ, start_response)


def test_the_pages_after_the_first_are_asked_for_concurrency_at_a_time(tmp_path: Path) -> None:
    gates: list[_Gate] = []

    def gate(app: Any) -> Any:
        gates.append(_Gate(app, 8))
        return gates[-1]

    with served(tmp_path, "atlassian-cloud", gate) as cloud:
        assert cloud.plan() == 0
    # Eight later pages were in flight together (http.concurrency), or the barrier broke.
    assert gates[0].held == 8 and not gates[0].broken


def test_a_slow_page_holds_up_no_other_request(tmp_path: Path) -> None:
    # The first later page (startIndex 100) is answered only once the ninth (892) was asked
    # for: with eight in flight at most, that needs a request sent while page 100 waits.
    ninth = threading.Event()
    waited: list[bool] = []  # whether page 100 saw the ninth page asked for (False: it timed out)

    def gate(app: Any) -> Any:
        def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            query = environ["QUERY_STRING"]
            if environ["PATH_INFO"].endswith("/Users"):
                if query.startswith("startIndex=892&"):
                    ninth.set()
                elif query.startswith("startIndex=100&"):
                    waited.append(ninth.wait(timeout=5))
            result: Iterable[bytes] = app(environ, start_response)
            return result

        return serve

    with served(tmp_path, "atlassian-cloud", gate) as cloud:
        assert cloud.plan() == 0
        assert waited == [True]
        assert cloud.requests() == {"GET /Users": pages(PEOPLE), "GET /Groups": pages(GROUPS)}


def test_what_the_target_type_states_is_what_the_discovery_endpoints_announce() -> None:
    # The simulator's discovery endpoints follow §3.2-§3.5; the target states the same without asking.
    sim = AtlassianCloudSim(token=TOKEN)
    with SimServer(sim.app) as server:
        client = HttpClient("cloud", server.url + sim.base_path, auth=BearerAuth(Secret(TOKEN)))
        assert discover(client, page_cap=PAGE) == FEATURES
        assert sim.log.count() == len(DISCOVERY)
