"""The onelogin source against its simulator over loopback, and exact request shapes with responses."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
import yaml
from click.testing import CliRunner

import scimsync.http.client
from scimsync.cli import cli
from scimsync.config.sources import OneLoginSourceConfig
from scimsync.errors import AuthError, ConnectorError, ResponseError
from scimsync.http import HttpSettings
from scimsync.models import SourceDirectory
from scimsync.sim.company import make_people
from scimsync.sim.jira import JiraSim
from scimsync.sim.onelogin import GROUPS, ROLES, TOKEN, USERS, OneLoginSim
from scimsync.sim.onelogin_api import Paging
from scimsync.sim.server import SimServer
from scimsync.sources.onelogin import OneLoginSource
from scimsync.sources.onelogin_model import Assembler, Catalog

ID, SECRET = "test-onelogin-client", "test-onelogin-secret"
RETRIES = 2
CREDENTIALS = (
    "check source.client_id and source.client_secret: a OneLogin API credential "
    "(Administration > Developers > API Credentials) with the scope 'Read users' or more (idp §4.1)"
)


class Clock:
    """A clock the test (or the fake sleep) moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the HTTP layer's waits instead of sleeping."""
    waits: list[float] = []
    monkeypatch.setattr(scimsync.http.client, "_sleep", waits.append)
    return waits


@pytest.fixture
def sim() -> OneLoginSim:
    return OneLoginSim(client_id=ID, client_secret=SECRET)


@pytest.fixture
def url(sim: OneLoginSim) -> Iterator[str]:
    with SimServer(sim.app) as server:
        yield server.url


def make_source(url: str, clock: Callable[[], float] | None = None, **extra: Any) -> OneLoginSource:
    block = {"type": "onelogin", "url": url, "client_id": ID, "client_secret": SECRET, **extra}
    config = OneLoginSourceConfig.model_validate(block)
    settings = HttpSettings(retries=RETRIES, timeout=5)
    return OneLoginSource("source", config, settings, **({"clock": clock} if clock else {}))


def read(url: str, clock: Callable[[], float] | None = None, **extra: Any) -> SourceDirectory:
    source = make_source(url, clock, **extra)
    try:
        return source.read()
    finally:
        source.close()


def failure(url: str, **extra: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        read(url, **extra)
    assert "\n" not in str(caught.value)
    return caught.value


def people(directory: SourceDirectory) -> dict[str, tuple[bool, frozenset[str]]]:
    return {u.username: (u.active, frozenset(u.groups)) for u in directory.users}


def members(directory: SourceDirectory) -> dict[str, set[str]]:
    names = {u.id: u.username for u in directory.users}
    return {g.name: {names[i] for i in g.member_ids} for g in directory.groups}


def add_people(sim: OneLoginSim, count: int, **fields: Any) -> list[str]:
    names = [f"p{n:04d}" for n in range(count)]
    for name in names:
        sim.add_user(name, f"{name}@acme.test", "Given", name.upper(), **fields)
    return names


# --- a directory read whole ------------------------------------------------------------

GROUP_OF = ("Finance", "Sales", "Engineering")
STATUS_CYCLE = (1, 1, 1, 0, 2, 3, 4, 5, 7, 8)
# SPEC §4 and idp §4.3, written out: unactivated and suspended are inactive, the rest active.
ACTIVE = {0: False, 1: True, 2: False, 3: True, 4: True, 5: True, 7: True, 8: True}


def test_a_few_hundred_users_over_four_pages_are_read_exactly_as_seeded(
    sim: OneLoginSim, url: str, slept: list[float]
) -> None:
    expected: dict[str, tuple[bool, frozenset[str]]] = {}
    for n in range(345):
        name = f"p{n:03d}"
        roles = ["all", "even" if n % 2 == 0 else "odd", *(["fives"] if n % 5 == 0 else [])]
        group = GROUP_OF[n % 3] if n % 4 else None
        status = STATUS_CYCLE[n % len(STATUS_CYCLE)]
        sim.add_user(
            name, f"{name}@acme.test", f"Given{n}", f"Family{n}", status=status, group=group, roles=roles
        )
        expected[name] = (ACTIVE[status], frozenset(roles + ([group] if group else [])))
    events: list[tuple[str, int, int | None]] = []
    source = make_source(url)
    directory = source.read(progress=lambda what, done, total: events.append((what, done, total)))
    assert people(directory) == expected
    by_group: dict[str, set[str]] = {}
    for name, (_, groups) in expected.items():
        for group in groups:
            by_group.setdefault(group, set()).add(name)
    assert members(directory) == by_group
    assert [e for e in events if e[0] == "source: users"] == [
        ("source: users", 100, 345),
        ("source: users", 200, 345),
        ("source: users", 300, 345),
        ("source: users", 345, 345),
    ]
    # The largest page: every list asked for 100 (idp §4.2).
    assert {e.query.get("limit") for e in sim.log.entries if e.path.startswith("/api/2/")} == {"100"}
    user = next(u for u in directory.users if u.username == "p007")
    assert (user.first_name, user.last_name, user.display_name) == ("Given7", "Family7", "Given7 Family7")
    assert (user.email, user.id) == ("p007@acme.test", str(user.attributes["id"]))


def test_every_status_and_state_maps_to_active_as_spec_4_says(sim: OneLoginSim, url: str) -> None:
    table = [
        ("unactivated", 0, 1, False),
        ("active", 1, 1, True),
        ("suspended", 2, 1, False),
        ("locked", 3, 1, True),
        ("password-expired", 4, 1, True),
        ("awaiting-reset", 5, 1, True),
        ("password-pending", 7, 1, True),
        ("security-questions", 8, 1, True),
        ("unapproved", 1, 0, False),
        ("rejected", 1, 2, False),
        ("unlicensed", 1, 3, True),
        ("suspended-unlicensed", 2, 3, False),
    ]
    for name, status, state, _ in table:
        sim.add_user(name, f"{name}@acme.test", status=status, state=state)
    sim.add_user("no-state", "no-state@acme.test")
    sim.update_user("no-state", state=None)
    directory = read(url)
    expected = {name: active for name, _, _, active in table} | {"no-state": True}
    assert {u.username: u.active for u in directory.users} == expected


@pytest.mark.parametrize(
    ("field", "value", "cause"),
    [
        ("status", 6, "unknown status 6 (idp §4.3 knows 0, 1, 2, 3, 4, 5, 7, 8)"),
        ("status", "1", "unknown status '1' (idp §4.3 knows 0, 1, 2, 3, 4, 5, 7, 8)"),
        ("state", 4, "unknown state 4 (idp §4.3 knows 0, 1, 2, 3)"),
    ],
)
def test_a_status_the_reference_does_not_know_is_an_error_naming_the_user(
    sim: OneLoginSim, url: str, field: str, value: Any, cause: str
) -> None:
    uid = sim.add_user("odd", "odd@acme.test")
    sim.update_user("odd", **{field: value})
    error = failure(url)
    assert isinstance(error, ResponseError)
    assert str(error) == f"source: user id {uid}: {cause}"


# --- groups and roles ------------------------------------------------------------------


def test_roles_and_the_group_are_both_groups_named_as_in_onelogin_and_same_names_merge(
    sim: OneLoginSim, url: str
) -> None:
    sim.add_user("alice", "alice@acme.test", "Alice", "Ng", roles=["Engineering", "設計"])
    sim.add_user("bob", "bob@acme.test", "Bob", "Ode", group="engineering")
    sim.add_user("chloé", "chloe@acme.test", "Chloé", "Ørsted", group="Équipe Ünïcode", roles=["設計"])
    directory = read(url)
    assert people(directory) == {
        "alice": (True, frozenset({"Engineering", "設計"})),
        "bob": (True, frozenset({"Engineering"})),  # the role's spelling: one scimsync group
        "chloé": (True, frozenset({"設計", "Équipe Ünïcode"})),
    }
    groups = {g.name: g for g in directory.groups}
    assert set(groups) == {"Engineering", "設計", "Équipe Ünïcode"}
    assert groups["Engineering"].id == "role:9001+group:7001"
    assert members(directory)["Engineering"] == {"alice", "bob"}


def test_a_role_with_thousands_of_members_is_read_whole(sim: OneLoginSim, url: str) -> None:
    names = add_people(sim, 2500, group="Staff")
    sim.add_role("everyone", names)
    directory = read(url)
    assert members(directory) == {"everyone": set(names), "Staff": set(names)}
    assert sim.log.count("GET", f"{ROLES}/9001/users") == 25


def test_a_group_id_the_group_list_did_not_show_is_an_error_naming_the_user(
    sim: OneLoginSim, url: str
) -> None:
    uid = sim.add_user("amara", "amara@acme.test", group="Finance")
    sim.users[uid].group_id = 7999
    error = failure(url)
    assert str(error) == (
        f"source: user id {uid}: group_id 7999 is not among the groups /api/1/groups listed: run again"
    )


# --- bad records -----------------------------------------------------------------------


def test_an_active_user_without_username_or_email_is_an_error_naming_them(sim: OneLoginSim, url: str) -> None:
    uid = sim.add_user(None, None, "Ghost", "Writer")
    error = failure(url)
    assert (
        str(error) == f"source: user id {uid} (Ghost Writer): an active user with neither username nor email"
    )


def test_an_inactive_user_without_username_or_email_is_read_with_what_it_has(
    sim: OneLoginSim, url: str
) -> None:
    sim.add_user(None, None, "Gone", "Person", status=2)
    sim.add_user(None, "mail.only@acme.test", "Mail", "Only")  # an email login: a model, the mapping decides
    directory = read(url)
    assert [(u.username, u.email, u.display_name, u.active) for u in directory.users] == [
        ("", "", "Gone Person", False),
        ("", "mail.only@acme.test", "Mail Only", True),
    ]


def test_attributes_are_the_raw_record_with_custom_attributes_on_top_and_no_credential() -> None:
    record = {
        "id": 42,
        "username": "amara",
        "email": "amara@acme.test",
        "status": 1,
        "state": 1,
        "department": "Sales",
        "password": "hunter2-never",
        "custom_attributes": {"department": "shadowed", "cost_center": "F100"},
    }
    (user,) = Assembler("source", Catalog({}, {})).build([record]).users
    assert user.attributes["cost_center"] == "F100"
    assert user.attributes["department"] == "Sales"  # a core field wins
    assert "password" not in user.attributes
    assert user.attributes["custom_attributes"] == record["custom_attributes"]


# --- tokens ----------------------------------------------------------------------------


def test_a_token_that_expires_mid_read_is_refreshed_once(sim: OneLoginSim, url: str) -> None:
    names = add_people(sim, 250)
    sim.expire_token_after(2)
    directory = read(url)
    assert sorted(u.username for u in directory.users) == names
    assert sim.page_statuses(USERS, 3) == [401, 200]
    assert sim.log.count("POST", TOKEN) == 2


def test_tokens_are_renewed_through_a_read_longer_than_their_life() -> None:
    clock = Clock()
    sim = OneLoginSim(client_id=ID, client_secret=SECRET, token_lifetime=200, clock=clock)
    add_people(sim, 450)

    def ticking(environ: Any, start_response: Any) -> Iterable[bytes]:
        clock.now += 50  # every request takes 50 s of the token's 200
        return sim.app(environ, start_response)

    with SimServer(ticking) as server:
        directory = read(server.url, clock)
    assert len(directory.users) == 450
    log = [(e.method, e.status) for e in sim.log.entries]
    refused = [n for n, entry in enumerate(log) if entry == ("GET", 401)]
    # §4.1: the endpoint hands out the same token until it expires, so a token fetched in its
    # last minute can still run out on the way; each such 401 is followed by a new token and
    # the same page again.
    assert all(log[n + 1 : n + 3] == [("POST", 200), ("GET", 200)] for n in refused), log
    assert sim.tokens.issued >= 3
    # Fetched before expiry too, not only after a 401.
    assert sim.log.count("POST", TOKEN) > 1 + len(refused)


def test_request_shapes_basic_token_request_then_bearer_reads_at_100() -> None:
    base = "https://acme.onelogin.test"
    with responses.RequestsMock() as rsps:
        rsps.post(
            base + TOKEN, json={"access_token": "tok-123456", "expires_in": 36000, "token_type": "bearer"}
        )
        rsps.get(base + GROUPS, json={"status": {"error": False}, "pagination": {}, "data": []})
        rsps.get(
            base + ROLES, json=[{"id": 9, "name": "Staff"}], headers={"Total-Count": "1", "After-Cursor": ""}
        )
        rsps.get(base + f"{ROLES}/9/users", json=[{"id": 1}], headers={"Total-Count": "1"})
        user = {"id": 1, "username": "amara", "email": "amara@acme.test", "status": 1, "state": 1}
        rsps.get(base + USERS, json=[user], headers={"Total-Count": "1", "After-Cursor": ""})
        directory = read(base)
        token_call, *api_calls = rsps.calls
    assert people(directory) == {"amara": (True, frozenset({"Staff"}))}
    sent = token_call.request
    assert sent.headers["Authorization"] == "Basic " + base64.b64encode(f"{ID}:{SECRET}".encode()).decode()
    assert sent.body == "grant_type=client_credentials"
    assert {c.request.headers["Authorization"] for c in api_calls} == {"Bearer tok-123456"}
    queries = [c.request.url.removeprefix(base) for c in api_calls]
    assert queries == [GROUPS, f"{ROLES}?limit=100", f"{ROLES}/9/users?limit=100", f"{USERS}?limit=100"]


# --- failures: auth, URL, retries, rate limits -----------------------------------------------


def test_a_refused_secret_is_one_line_naming_the_token_endpoint_and_what_to_check(url: str) -> None:
    error = failure(url, client_secret="not-the-secret")
    assert isinstance(error, AuthError)
    assert str(error) == f"source: token endpoint: token refused (HTTP 401); {CREDENTIALS}"


def test_a_credential_without_read_scope_says_what_to_check() -> None:
    sim = OneLoginSim(client_id=ID, client_secret=SECRET, scope="authentication_only")
    with SimServer(sim.app) as server:
        error = failure(server.url)
    assert isinstance(error, AuthError)
    assert str(error) == f"source: GET {GROUPS} page 1: HTTP 403 Forbidden: Forbidden; {CREDENTIALS}"


def test_a_deleted_credential_owner_is_named_as_the_likely_cause(sim: OneLoginSim, url: str) -> None:
    sim.owner_deleted = True
    assert str(failure(url)) == (
        "source: token endpoint: token request failed (HTTP 500): HTTP 500; OneLogin answers 500 when "
        "the admin who created the API credential was deleted (idp §4.1)"
    )


def test_a_wrong_url_says_to_check_the_url(url: str) -> None:
    assert str(failure(url + "/onelogin")) == (
        "source: token endpoint: token request failed (HTTP 404): HTTP 404; check source.url: "
        "the OneLogin account URL, such as https://acme.onelogin.com"
    )


def test_a_page_that_keeps_failing_aborts_the_read_naming_the_page(
    sim: OneLoginSim, url: str, slept: list[float]
) -> None:
    add_people(sim, 250)
    sim.fail_page(USERS, 2, 502)
    assert str(failure(url)) == (f"source: GET {USERS} page 2: HTTP 502 Bad Gateway: error (3 attempts)")
    assert sim.page_statuses(USERS, 2) == [502] * (RETRIES + 1)


def test_a_429_is_waited_out_for_x_ratelimit_reset_seconds(
    sim: OneLoginSim, url: str, slept: list[float]
) -> None:
    names = add_people(sim, 250)
    sim.fail_page(USERS, 2, 429, times=1, reset=9)
    directory = read(url)
    assert sorted(u.username for u in directory.users) == names
    assert sim.page_statuses(USERS, 2) == [429, 200]
    assert 9.0 in slept, slept


def test_a_spent_hourly_budget_holds_every_request_until_the_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(scimsync.http.client, "_sleep", sleep)
    sim = OneLoginSim(client_id=ID, client_secret=SECRET, hourly_limit=4, clock=clock)
    names = add_people(sim, 250)
    with SimServer(sim.app) as server:
        token = requests.post(
            server.url + TOKEN, data={"grant_type": "client_credentials"}, auth=(ID, SECRET)
        )
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        requests.get(server.url + GROUPS, headers=bearer, timeout=5)  # opens the hour: 1 of 4
        clock.now += 3590  # 10 s of the hour left
        directory = read(server.url, clock)
    assert sorted(u.username for u in directory.users) == names
    # groups, roles, page 1 spend the budget; page 2 waits the 10 s the reset said, no 429.
    assert 10.0 in slept, slept
    assert 429 not in {e.status for e in sim.log.entries}


# --- integrity (exact pages with responses) ------------------------------------------------

BASE = "https://acme.onelogin.test"


def user(n: int) -> dict[str, Any]:
    return {"id": n, "username": f"u{n}", "email": f"u{n}@acme.test", "status": 1, "state": 1}


def page(items: Any, total: int | None, cursor: str = "", **kwargs: Any) -> dict[str, Any]:
    headers = {"After-Cursor": cursor, **({"Total-Count": str(total)} if total is not None else {})}
    body = items if isinstance(items, str) else json.dumps(items)
    return {"body": body, "headers": headers, "content_type": kwargs.get("content_type", "application/json")}


def account(rsps: responses.RequestsMock, user_pages: list[dict[str, Any]]) -> None:
    rsps.post(BASE + TOKEN, json={"access_token": "tok-abcdef", "expires_in": 36000})
    rsps.get(
        BASE + GROUPS, json={"status": {"error": False}, "pagination": {"after_cursor": None}, "data": []}
    )
    rsps.get(BASE + ROLES, json=[], headers={"Total-Count": "0", "After-Cursor": ""})
    for spec in user_pages:
        rsps.get(BASE + USERS, **spec)


@pytest.mark.parametrize(
    ("pages", "message"),
    [
        (
            [page([user(1)], 3, "c1"), page([user(2)], 3, "c1")],
            "page 2: pagination loop: After-Cursor 'c1' came twice",
        ),
        (
            [page([user(1)], 3, "c1"), page([user(2)], 2, "c2")],
            "page 2: Total-Count went down from 3 to 2 during the read: run again",
        ),
        ([page([user(1)], 2)], "page 1: the last page (no After-Cursor) leaves 1 of 2 users unread"),
        ([page([user(1)], 2, "c1"), page([user(1)], 2)], "page 2: user id 1 came twice (pages 1 and 2): "),
        ([page([user(1)], 2, "c1"), page([], 2, "c2")], "page 2: an empty page that names a next page"),
        ([page([user(1)], None)], "page 1: no valid Total-Count header (got none; idp §4.2)"),
        ([page({"users": [user(1)]}, 1)], "page 1: expected a JSON array of users (idp §4.2), got dict"),
        ([page([user(1), {"name": "x"}], 2)], "page 1: user 2 of the page has no id"),
        (
            [page([user(1)], 2, "c1"), page('[{"id": 2, "usern', 2)],
            'page 2: expected JSON, got application/json: [{"id": 2, "usern',
        ),
        (
            [page("<html><body>Sign in</body></html>", 1, content_type="text/html")],
            "page 1: expected JSON, got text/html: <html><body>Sign in</body></html>",
        ),
    ],
    ids=["cursor-repeats", "count-shrinks", "short", "duplicate", "empty-page", "no-count", "object", "no-id",
         "truncated", "html"],
)  # fmt: skip
def test_a_page_that_cannot_be_trusted_aborts_the_read_naming_it(
    pages: list[dict[str, Any]], message: str
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        account(rsps, pages)
        error = failure(BASE)
    assert isinstance(error, ResponseError)
    assert str(error).startswith(f"source: GET {USERS} {message}"), str(error)


def test_a_user_ids_filter_the_server_ignored_aborts_a_scoped_read() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(BASE + TOKEN, json={"access_token": "tok-abcdef", "expires_in": 36000})
        rsps.get(BASE + GROUPS, json={"status": {"error": False}, "data": []})
        rsps.get(BASE + ROLES, json=[{"id": 9, "name": "atlassian-users"}], headers={"Total-Count": "1"})
        rsps.get(BASE + f"{ROLES}/9/users", json=[{"id": 1}], headers={"Total-Count": "1"})
        rsps.get(BASE + USERS, json=[user(1), user(2)], headers={"Total-Count": "2"})
        error = failure(BASE, include_groups=["atlassian-*"])
    assert str(error) == (
        f"source: GET {USERS} (user_ids batch 1) page 1: user id 2 was not asked for: "
        "the user_ids filter was not applied"
    )


def test_a_v1_group_page_without_its_envelope_aborts_the_read() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(BASE + TOKEN, json={"access_token": "tok-abcdef", "expires_in": 36000})
        rsps.get(BASE + GROUPS, json=[{"id": 1, "name": "Finance"}])
        error = failure(BASE)
    assert str(error) == (
        f"source: GET {GROUPS} page 1: expected the v1 envelope {{status, pagination, data}} (idp §4.4)"
    )


def test_a_server_that_serves_50_a_page_is_read_whole(slept: list[float]) -> None:
    sim = OneLoginSim(client_id=ID, client_secret=SECRET, paging=Paging(max_limit=50, clamp=True))
    names = add_people(sim, 180)
    with SimServer(sim.app) as server:
        directory = read(server.url)
    assert sorted(u.username for u in directory.users) == names
    assert sim.log.count("GET", USERS) == 4


# --- scoping -----------------------------------------------------------------------------


def scoped_sim(sim: OneLoginSim) -> None:
    sim.add_user("amara", "amara@acme.test", roles=["atlassian-jira"], group="Finance")
    sim.add_user("bruno", "bruno@acme.test", roles=["atlassian-confluence", "engineering"], status=2)
    sim.add_user("chen", "chen@acme.test", roles=["engineering"], group="Finance")
    sim.add_user("dora", "dora@acme.test", group="Sales")


def test_include_groups_naming_roles_reads_only_their_members_in_detail(sim: OneLoginSim, url: str) -> None:
    scoped_sim(sim)
    directory = read(url, include_groups=["Atlassian-*"])
    assert people(directory) == {
        "amara": (True, frozenset({"atlassian-jira", "Finance"})),
        "bruno": (False, frozenset({"atlassian-confluence", "engineering"})),
    }
    listed = [e.query for e in sim.log.entries if e.path == USERS]
    assert listed and all("user_ids" in q for q in listed)


def test_include_groups_naming_a_group_reads_every_user(
    sim: OneLoginSim, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    scoped_sim(sim)
    with caplog.at_level(logging.INFO, logger="scimsync.sources.onelogin"):
        directory = read(url, include_groups=["fin*"])
    assert {u.username for u in directory.users} == {"amara", "bruno", "chen", "dora"}
    assert [e.query for e in sim.log.entries if e.path == USERS] == [{"limit": "100"}]
    assert "matches the OneLogin group 'Finance': reading every user" in caplog.text


def test_include_groups_matching_nothing_reads_no_user(sim: OneLoginSim, url: str) -> None:
    scoped_sim(sim)
    assert read(url, include_groups=["nothing-*"]).users == ()
    assert sim.log.count("GET", USERS) == 0


def test_check_reads_one_user_for_the_count(sim: OneLoginSim, url: str) -> None:
    add_people(sim, 3)
    source = make_source(url)
    assert source.check() == "OneLogin account with 3 users"
    assert [e.query for e in sim.log.entries if e.path == USERS] == [{"limit": "1"}]


# --- end to end into Jira ------------------------------------------------------------------

EMPTY = "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes."


def test_apply_into_jira_converges_and_the_second_plan_writes_nothing(
    sim: OneLoginSim, url: str, tmp_path: Path
) -> None:
    company = make_people(60)
    for person in company[::7]:
        person["active"] = False
    sim.seed_company(company)
    jira = JiraSim("10.3.1", token="e2e-jira-token")
    with SimServer(jira.app) as server:
        config = {
            "version": 1,
            "source": {"type": "onelogin", "url": url, "client_id": ID, "client_secret": SECRET,
                       "include_groups": ["atlassian-*"]},
            "targets": {"jira": {"type": "jira", "url": server.url, "token": "e2e-jira-token", "groups": [
                {"from": "atlassian-jira-*", "to": "{{ group.name | replace('atlassian-', '') }}"},
                {"from": "engineering", "to": ["jira-developers"]},
            ]}},
            "audit_log": "audit.jsonl", "lock_file": "run.lock", "state_file": "state.json",
        }  # fmt: skip
        path = tmp_path / "scimsync.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        first = CliRunner().invoke(cli, ["-c", str(path), "apply", "-y"], catch_exceptions=False)
        assert first.exit_code == 0, first.output
        wanted = [p for p in company if p["active"] and any(g.startswith("atlassian-") for g in p["groups"])]
        assert {u.name for u in jira.directory.users.values()} - {"admin"} == {p["username"] for p in wanted}
        developers = {p["username"] for p in wanted if p["department"] == "engineering"}
        assert jira.members("jira-developers") == developers
        assert jira.members("jira-servicedesk") == {
            p["username"] for p in wanted if p["department"] == "support"
        }
        jira.log.clear()
        second = CliRunner().invoke(
            cli, ["-c", str(path), "plan", "--detailed-exitcode"], catch_exceptions=False
        )
    assert second.exit_code == 0, second.output
    assert EMPTY in second.stdout
    assert jira.log.writes() == []
