"""Adaptive pressure (issue 12 item 4): one in-flight gate per system, AIMD on what the server says.

The gate's arithmetic is checked with answers built by hand; the client's use of it over
loopback (connections, requests in flight) and against a rate-limited Jira simulator.
No timing is asserted: counts of requests, connections and 429s only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
import requests
import responses

from scimsync.http import BearerAuth, HttpClient, HttpSettings
from scimsync.http.pressure import Answer, InFlight
from scimsync.http.ratelimit import Pacer, ServerRate
from scimsync.secrets import Secret
from scimsync.sim.bench_company import make_company
from scimsync.sim.bench_systems import SYSTEMS
from scimsync.sim.jira import JiraSim
from scimsync.sim.ratelimit import RateLimited
from scimsync.sim.server import SimServer
from scimsync.targets.jira import JiraTarget, parse_error

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

BASE = "https://jira.example"
TOKEN = "sim-jira-token"
OK = Answer(200, 0.02)


def answered(gate: InFlight, answer: Answer) -> None:
    """Send one request through the gate and give it ``answer``."""
    gate.leave(gate.enter(), answer)


# -- the gate ----------------------------------------------------------------------------


def test_a_429_halves_the_gate_once_per_round_and_good_answers_widen_it_again() -> None:
    gate = InFlight(8)
    tickets = [gate.enter() for _ in range(8)]  # eight in flight when the server says 429
    assert gate.limit == 8

    gate.leave(tickets[0], Answer(429, 0.02))
    assert gate.limit == 4
    for ticket in tickets[1:]:  # sent before the cut: the same pressure, no second cut
        gate.leave(ticket, Answer(429, 0.02))
    assert gate.limit == 4
    answered(gate, Answer(429, 0.02))  # sent after the cut: the pressure goes on
    assert gate.limit == 2

    # Additive increase: 1 / limit per answer without pressure, about one more per round.
    answered(gate, OK)
    answered(gate, OK)
    assert gate.limit == 2  # 2.5, then 2.9
    answered(gate, OK)
    assert gate.limit == 3
    for _ in range(40):
        answered(gate, OK)
    assert gate.limit == 8  # never past the configured concurrency


@pytest.mark.parametrize("status", [503, 504])
def test_overload_statuses_are_pressure_and_other_errors_are_not(status: int) -> None:
    gate = InFlight(8)
    for other in (400, 404, 500, 502):
        answered(gate, Answer(other, 0.02))
    answered(gate, Answer(None, 30.0))  # a transport failure: its retry backs off, no signal
    assert gate.limit == 8
    answered(gate, Answer(status, 0.02))
    assert gate.limit == 4


def test_remaining_running_low_narrows_the_gate_to_what_the_fill_rate_keeps_busy() -> None:
    gate = InFlight(8)
    # atlassian §1.11: a bucket of 40 refilled at 100 a second, 0.02 s a round trip.
    plenty = ServerRate(limit=40, interval=0.01, remaining=30)
    low = ServerRate(limit=40, interval=0.01, remaining=10)  # a quarter left
    answered(gate, Answer(200, 0.02, plenty))
    assert gate.limit == 8
    for _ in range(5):
        tickets = [gate.enter() for _ in range(gate.limit)]
        for ticket in tickets:
            gate.leave(ticket, Answer(200, 0.02, low))
    # 100 a second x 0.02 s = 2 in flight keep the rate busy; the gate keeps twice that.
    assert gate.limit == 4
    for _ in range(30):
        answered(gate, Answer(200, 0.02, plenty))  # the bucket filled up again
    assert gate.limit == 8


def test_answers_far_slower_than_usual_narrow_the_gate_and_one_big_page_does_not() -> None:
    gate = InFlight(8)
    for _ in range(30):
        answered(gate, Answer(200, 0.02))
    answered(gate, Answer(200, 0.8))  # one big page
    assert gate.limit == 8
    for _ in range(10):  # the server is struggling: seconds per answer
        answered(gate, Answer(200, 3.0))
    assert gate.limit < 8


def test_a_full_gate_holds_the_next_request_until_one_leaves() -> None:
    gate = InFlight(2)
    first, _ = gate.enter(), gate.enter()
    entered = threading.Event()

    def third() -> None:
        gate.enter()
        entered.set()

    thread = threading.Thread(target=third)
    thread.start()
    assert not entered.wait(0.2)
    gate.leave(first, OK)
    assert entered.wait(5)
    thread.join()
    assert gate.busy == 2


# -- the client --------------------------------------------------------------------------


class Counting:
    """WSGI middleware: the most requests in flight at once."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.busy = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.busy += 1
            self.most = max(self.most, self.busy)
        try:
            return list(self.app(environ, start_response))
        finally:
            with self._lock:
                self.busy -= 1


def test_nested_parallel_calls_keep_to_the_concurrency_and_to_the_pooled_connections(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    sim = JiraSim(token=TOKEN)
    sim.faults.latency = 0.005
    counting = Counting(sim.app)
    with SimServer(counting) as server, caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        client = HttpClient(
            "jira", server.url, auth=BearerAuth(Secret(TOKEN)), settings=HttpSettings(concurrency=4)
        )

        def outer(_: int) -> list[Any]:
            return client.map_parallel(lambda _: client.get_json("/rest/api/2/myself"), range(12))

        # Four callers, each with its own pool of four threads: sixteen threads, one session.
        with ThreadPoolExecutor(4) as pool:
            assert len([a for answers in pool.map(outer, range(4)) for a in answers]) == 48
        client.close()

    assert len(sim.log.entries) == 48
    assert counting.most <= 4
    # Without the gate, each thread beyond the pool made a connection of its own and threw it
    # away ("Connection pool is full"). (The simulator's server closes every connection after
    # its answer, so the pooled ones reconnect: "Resetting dropped connection".)
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "pool is full" in m]
    assert len([m for m in messages if m.startswith("Starting new HTTP connection")]) <= 4


@responses.activate
def test_a_429_slows_the_whole_client_and_it_speeds_up_again() -> None:
    sleeps: list[float] = []
    client = HttpClient(
        "jira", BASE, settings=HttpSettings(concurrency=8), sleep=sleeps.append, rng=lambda: 0.0
    )
    url = f"{BASE}/rest/api/2/myself"
    responses.get(url, status=429, headers={"Retry-After": "1"})
    responses.get(url, json={})

    client.get_json("/rest/api/2/myself")
    assert client._gate.limit == 4
    assert sleeps == [1.0]
    for _ in range(30):
        client.get_json("/rest/api/2/myself")
    assert client._gate.limit == 8


@responses.activate
def test_proxy_and_ca_bundle_of_the_environment_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    # Read once when the client is made, not on every request; the same settings requests would use.
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/bundle.pem")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    responses.get(f"{BASE}/rest/api/2/myself", json={})

    HttpClient("jira", BASE).get_json("/rest/api/2/myself")
    HttpClient("jira", BASE, settings=HttpSettings(ca_bundle="/etc/own-ca.pem")).get_json(
        "/rest/api/2/myself"
    )
    monkeypatch.setenv("NO_PROXY", "jira.example")
    HttpClient("jira", BASE).get_json("/rest/api/2/myself")

    sent = [call.request.req_kwargs for call in responses.calls]
    assert sent[0]["proxies"] == {"https": "http://proxy.corp.example:3128"}
    assert sent[0]["verify"] == "/etc/corp/bundle.pem"
    assert sent[1]["verify"] == "/etc/own-ca.pem"
    assert "https" not in sent[2]["proxies"]


# -- the rate-limited simulator ----------------------------------------------------------


def limited_jira(people: int, bucket: int, fill: float, **kwargs: Any) -> tuple[JiraSim, RateLimited]:
    """Return a Jira holding ``people`` (as scimsync leaves them) behind a token bucket (§1.11)."""
    sim = JiraSim(token=TOKEN)
    SYSTEMS["jira"].seed(sim, make_company(people))
    return sim, RateLimited(sim.app, capacity=bucket, fill_per_second=fill, **kwargs)


def test_the_bucket_answers_with_the_five_headers_and_429_when_empty() -> None:
    now = [0.0]
    sim, front = limited_jira(0, 2, 1.0, clock=lambda: now[0])
    with SimServer(front) as server:
        url = f"{server.url}/rest/api/2/myself"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        answers = [requests.get(url, headers=auth, timeout=10) for _ in range(3)]
        anonymous = requests.get(f"{server.url}/rest/api/2/serverInfo", timeout=10)

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["X-RateLimit-Limit"] == "2"
    assert answers[0].headers["X-RateLimit-Remaining"] == "1"
    assert answers[0].headers["X-RateLimit-FillRate"] == "1"
    assert answers[0].headers["X-RateLimit-Interval-Seconds"] == "1"
    assert answers[0].headers["retry-after"] == "0"
    assert answers[2].headers["retry-after"] == "1"
    assert answers[2].json() == {"errorMessages": ["Rate limit exceeded."], "errors": {}}
    assert anonymous.status_code == 200 and "X-RateLimit-Limit" not in anonymous.headers
    assert front.refusals == 1 and len(sim.log.entries) == 3  # the 429 never reached Jira


def test_an_unpaced_client_is_refused_again_and_again() -> None:
    # The bucket of the scimsync run below, on a clock that stands still: what an unpaced
    # client sending faster than the fill rate meets.
    _, front = limited_jira(0, 60, 100.0, clock=lambda: 0.0)
    with SimServer(front) as server, requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        url = f"{server.url}/rest/api/2/myself"
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: session.get(url, timeout=10).status_code, range(100)))

    assert statuses.count(429) == front.refusals == 40


def test_a_read_of_a_rate_limited_jira_meets_at_most_one_429(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    company = make_company(150)
    groups = sorted({g for p in company for g in p.groups} | {"jira-software-users", "scimsync-managed"})
    sim, front = limited_jira(150, 60, 100.0)
    sim.faults.latency = 0.01
    with SimServer(front) as server:
        client = HttpClient(
            "jira",
            server.url,
            auth=BearerAuth(Secret(TOKEN)),
            settings=HttpSettings(concurrency=8),
            error_parser=parse_error,
        )
        directory = JiraTarget("jira", client).read(groups, wanted=[])
        client.close()

    assert len(directory.accounts) == 151  # the company and the administrator
    served = len(sim.log.entries)
    assert served > 120  # more than twice the bucket: the rate, not the bucket, decided
    assert front.refusals <= 1


def test_the_pacer_keeps_a_tenth_of_a_big_bucket_in_reserve() -> None:
    now, sleeps = [0.0], []

    def sleep(seconds: float) -> None:  # parked threads: the clock stands still
        sleeps.append(round(seconds, 6))

    pacer = Pacer(None, lambda: now[0], sleep)
    # A full bucket of 20, refilled at 10 a second (atlassian §1.11): 18 go at once, two stay
    # for requests that reach the server closer together than they left.
    pacer.follow(ServerRate(limit=20, interval=0.1, remaining=20))
    for _ in range(21):
        pacer.wait_turn()
    assert [s for s in sleeps if s > 0] == [0.1, 0.2, 0.3]  # (a 0.0: float noise at the 18th)
