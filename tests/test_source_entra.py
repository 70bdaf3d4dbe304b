"""The entra source against its simulator over loopback, and against ``responses`` for exact shapes.

Expected users, statuses and memberships are written from each seed's own description,
never computed by the code under test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
import yaml
from click.testing import CliRunner

import scimsync.http.client
from scimsync.cli import cli
from scimsync.config import EntraSourceConfig, parse_config
from scimsync.errors import AuthError, ConnectorError, NotFoundError, ResponseError
from scimsync.http import HttpSettings
from scimsync.sim.company import make_people
from scimsync.sim.entra import CLIENT_ID, CLIENT_SECRET, TENANT_ID, EntraSim
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer
from scimsync.sources.entra import EntraSource

JIRA_TOKEN = "entra-e2e-jira-token"
EMPTY_PLAN = "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes."


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def block(url: str, **more: Any) -> dict[str, Any]:
    return {
        "type": "entra",
        "tenant_id": TENANT_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "login_url": url,
        "graph_url": url,
        **more,
    }


def config_data(source: dict[str, Any], jira_url: str = "http://127.0.0.1:9") -> dict[str, Any]:
    return {
        "version": 1,
        "source": source,
        "mapping": {
            "username": "{{ user.email | localpart | lower }}",
            "email": "{{ user.email | lower }}",
            "display_name": "{{ user.first_name }} {{ user.last_name }}",
        },
        "targets": {
            "jira": {
                "type": "jira",
                "url": jira_url,
                "token": JIRA_TOKEN,
                "groups": [{"from": "atlassian-*", "to": "{{ group.name | replace('atlassian-', '') }}"}],
            }
        },
        "http": {"retries": 2, "timeout": 5},
        "audit_log": "audit.jsonl",
        "lock_file": "run.lock",
        "state_file": "state.json",
    }


def make_source(source: dict[str, Any], **kw: Any) -> EntraSource:
    config = parse_config(config_data(source), base_dir=Path("."), env={}).source
    assert isinstance(config, EntraSourceConfig)
    return EntraSource("source", config, HttpSettings(retries=2, timeout=5), **kw)


@pytest.fixture(autouse=True)
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the HTTP layer's waits instead of sleeping."""
    waits: list[float] = []
    monkeypatch.setattr(scimsync.http.client, "_sleep", waits.append)
    return waits


@pytest.fixture
def sim() -> EntraSim:
    return EntraSim(max_page_size=50)


@pytest.fixture
def url(sim: EntraSim) -> Iterator[str]:
    with SimServer(sim.app) as server:
        yield server.url


def read(source: dict[str, Any], **kw: Any) -> Any:
    entra = make_source(source, **kw)
    try:
        return entra.read()
    finally:
        entra.close()


def failure(source: dict[str, Any], **kw: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        read(source, **kw)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message and CLIENT_SECRET not in message, message
    return caught.value


# --- a few hundred users --------------------------------------------------------------------

PEOPLE = 300


def expected_groups(n: int) -> set[str]:
    """Every group person n is in, by the seed's definition below (directly or nested)."""
    groups = {"even" if n % 2 == 0 else "odd", "company"}
    if n % 25 == 0:
        groups |= {"leads", "managers"}
    if n % 50 == 1:
        groups.add("managers")
    if n < 3:
        groups.add("設計チーム")
    return groups


def seed_company(sim: EntraSim) -> dict[int, str]:
    """Seed PEOPLE people: every 7th disabled; company holds even and odd; managers holds leads."""
    ids = {
        n: sim.add_user(
            f"u{n:03d}@acme.example",
            mail=f"u{n:03d}@acme.example",
            given_name=f"Given{n}",
            surname="Ørsted" if n % 2 else "Doe",
            display_name=f"Given{n} Family",
            enabled=n % 7 != 3,
            department="R&D",
        )
        for n in range(PEOPLE)
    }
    even = sim.add_group("even", members=[ids[n] for n in ids if n % 2 == 0])
    odd = sim.add_group("odd", members=[ids[n] for n in ids if n % 2])
    company = sim.add_group("company", members=[even, odd])
    leads = sim.add_group("leads", members=[ids[n] for n in ids if n % 25 == 0])
    sim.add_group("managers", members=[leads] + [ids[n] for n in ids if n % 50 == 1])
    sim.add_group("設計チーム", members=[ids[0], ids[1], ids[2]])
    sim.add_object("device", "kiosk-1", groups=[company])
    sim.add_object("servicePrincipal", "build-bot", groups=[leads])
    sim.add_group("empty")
    return ids


def test_a_few_hundred_users_over_many_pages_are_read_exactly(sim: EntraSim, url: str) -> None:
    ids = seed_company(sim)
    events: list[tuple[str, int, int | None]] = []
    entra = make_source(block(url))
    directory = entra.read(progress=lambda what, done, total: events.append((what, done, total)))
    entra.close()

    by_id = {u.id: u for u in directory.users}
    assert set(by_id) == set(ids.values())
    for n, uid in ids.items():
        user = by_id[uid]
        assert (user.username, user.email, user.first_name) == (f"u{n:03d}@acme.example",) * 2 + (
            f"Given{n}",
        )
        assert user.display_name == f"Given{n} Family"
        assert user.active is (n % 7 != 3)
        assert set(user.groups) == expected_groups(n), n
        assert user.attributes["department"] == "R&D" and user.attributes["id"] == uid
        assert not any(k.startswith("@odata") for k in user.attributes)
    members = {g.name: set(g.member_ids) for g in directory.groups}
    assert members["managers"] == {ids[n] for n in ids if n % 25 == 0 or n % 50 == 1}
    assert members["company"] == set(ids.values())
    assert members["empty"] == set()
    # Six pages of users at the simulator's 50, each asked at $top=999 with accountEnabled selected.
    user_pages = [e for e in sim.log.entries if e.path == "/v1.0/users"]
    assert len(user_pages) == 6
    assert all(e.query["$top"] == "999" and "accountEnabled" in e.query["$select"] for e in user_pages)
    assert sorted({done for what, done, _ in events if what == "source: users"}) == [
        50,
        100,
        150,
        200,
        250,
        300,
    ]


def test_enabled_and_disabled_users_and_guests_without_mail(sim: EntraSim, url: str) -> None:
    sim.add_user("ana@acme.example", mail="ana@acme.example", given_name="Ana", surname="Lima", enabled=True)
    sim.add_user("ben@acme.example", mail="ben@acme.example", display_name="Ben", enabled=False)
    guest = "guest_partner.example#EXT#@acme.onmicrosoft.com"
    sim.add_user(guest, display_name="Gus (guest)", user_type="Guest")
    users = {u.username: u for u in read(block(url)).users}
    assert {name: u.active for name, u in users.items()} == {
        "ana@acme.example": True,
        "ben@acme.example": False,
        guest: True,
    }
    assert users["ana@acme.example"].display_name == "Ana Lima"  # no displayName: first and last
    assert (users[guest].email, users[guest].display_name) == ("", "Gus (guest)")
    assert users[guest].attributes["userType"] == "Guest"


def test_a_group_of_thousands_is_read_at_999_per_page(url: str) -> None:
    sim = EntraSim()  # the real cap: 999
    with SimServer(sim.app) as server:
        ids = [sim.add_user(f"p{n}@acme.example", mail=f"p{n}@acme.example") for n in range(2100)]
        sim.add_group("everyone", members=ids)
        directory = read(block(server.url))
        assert len(directory.users) == 2100
        assert {g.name: len(g.member_ids) for g in directory.groups} == {"everyone": 2100}
        member_pages = [e for e in sim.log.entries if e.path.endswith("/transitiveMembers")]
        assert len(member_pages) == 3 and all(e.query["$top"] == "999" for e in member_pages)


# --- scoping ----------------------------------------------------------------------------------


def test_include_groups_reads_only_the_members_of_matching_groups_in_detail(sim: EntraSim, url: str) -> None:
    amara = sim.add_user("amara@acme.example", mail="amara@acme.example", given_name="Amara")
    bruno = sim.add_user("bruno@acme.example", mail="bruno@acme.example")
    carla = sim.add_user("carla@acme.example", mail="carla@acme.example")
    platform = sim.add_group("platform", members=[bruno])
    jira = sim.add_group("Atlassian-Jira", members=[amara, platform])
    engineering = sim.add_group("engineering", members=[amara, bruno, carla])

    directory = read(block(url, include_groups=["atlassian-*"]))
    users = {u.username: u for u in directory.users}
    assert set(users) == {"amara@acme.example", "bruno@acme.example"}  # carla is in no atlassian-* group
    assert set(users["amara@acme.example"].groups) == {"Atlassian-Jira", "engineering"}
    assert set(users["bruno@acme.example"].groups) == {"Atlassian-Jira", "platform", "engineering"}
    assert users["amara@acme.example"].first_name == "Amara"
    assert sim.log.count("GET", "/v1.0/users") == 0
    selects = {e.path: e.query["$select"] for e in sim.log.entries if e.path.endswith("transitiveMembers")}
    assert "accountEnabled" in selects[f"/v1.0/groups/{jira}/transitiveMembers"]
    assert selects[f"/v1.0/groups/{engineering}/transitiveMembers"] == "id"
    assert selects[f"/v1.0/groups/{platform}/transitiveMembers"] == "id"


def test_include_groups_matching_no_group_warns_and_reads_no_one(
    sim: EntraSim, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_group("sales", members=[sim.add_user("ivan@acme.example")])
    with caplog.at_level("WARNING", logger="scimsync.sources.entra"):
        directory = read(block(url, include_groups=["atlassain-*"]))
    assert directory.users == ()
    assert "no group matches include_groups ['atlassain-*']" in caplog.text


# --- tokens and throttling ------------------------------------------------------------------


def token_posts(sim: EntraSim) -> int:
    return sim.log.count("POST", f"/{TENANT_ID}/oauth2/v2.0/token")


def test_a_token_is_refreshed_before_it_expires_without_a_401(url: str) -> None:
    clock = Clock()
    sim = EntraSim(max_page_size=50, clock=clock)
    with SimServer(sim.app) as server:
        seed_company(sim)
        entra = make_source(block(server.url), clock=clock)

        def later(what: str, done: int, total: int | None) -> None:
            if what == "source: users" and done == 100:
                clock.now += 3560  # 39 s left of 3599: inside the refresh margin

        directory = entra.read(progress=later)
        entra.close()
    assert len(directory.users) == PEOPLE
    assert token_posts(sim) == 2
    assert [e for e in sim.log.entries if e.status == 401] == []


def test_a_token_that_expires_mid_read_is_refreshed_once(sim: EntraSim, url: str) -> None:
    seed_company(sim)
    sim.expire_tokens_after(2)
    directory = read(block(url))
    assert len(directory.users) == PEOPLE
    refused = [e for e in sim.log.entries if e.status == 401]
    assert len(refused) == 1 and refused[0].path == "/v1.0/users"
    assert token_posts(sim) == 2


def test_throttling_per_app_and_tenant_is_waited_out(slept: list[float]) -> None:
    clock = Clock()
    slept_clock: list[float] = []

    def sleep(seconds: float) -> None:
        slept_clock.append(seconds)
        clock.now += seconds

    sim = EntraSim(max_page_size=50, rate_limit=12, clock=clock)  # 12 resource units per 10 s
    with SimServer(sim.app) as server:
        seed_company(sim)
        directory = read(block(server.url), clock=clock, sleep=sleep)
    assert len(directory.users) == PEOPLE
    throttled = [e for e in sim.log.entries if e.status == 429]
    assert throttled, "the quota was never reached"
    assert all(wait >= 1 for wait in slept_clock) and len(slept_clock) >= len(throttled)


def test_a_429_with_retry_after_on_one_page_is_waited_out(
    sim: EntraSim, url: str, slept: list[float]
) -> None:
    seed_company(sim)
    sim.fail_page("users", 3, 429, times=1, retry_after=9)
    assert len(read(block(url)).users) == PEOPLE
    assert sim.page_answers("users", 3) == [429, 200]
    assert 9.0 in slept


# --- failures: one line, naming the source, the object and what to check ----------------------


def test_a_wrong_secret_names_the_token_endpoint_and_the_keys_to_check(url: str) -> None:
    error = failure(block(url, client_secret="a-wrong-secret-value"))
    assert isinstance(error, AuthError)
    message = str(error)
    assert message.startswith(
        "source: token endpoint: token refused (HTTP 401): invalid_client: AADSTS7000215"
    )
    assert "check source.tenant_id, source.client_id and source.client_secret" in message
    assert "Trace ID" not in message and "a-wrong-secret-value" not in message


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"tenant_id": "no-such-tenant"}, ["AADSTS90002", "Tenant 'no-such-tenant' not found"]),
        ({"client_id": "no-such-app"}, ["AADSTS700016", "source.client_id"]),
        ({"graph_url": "https://graph.example.invalid"}, ["AADSTS500011", "check source.graph_url"]),
    ],
)
def test_other_refused_token_requests_say_what_to_check(
    url: str, change: dict[str, str], words: list[str]
) -> None:
    message = str(failure(block(url, **change)))
    assert all(w in message for w in words), message


def test_an_expired_secret_is_named(sim: EntraSim, url: str) -> None:
    sim.expire_secret(CLIENT_ID)
    assert "AADSTS7000222" in str(failure(block(url)))


def test_a_missing_permission_names_the_permissions_to_grant(sim: EntraSim, url: str) -> None:
    sim.add_app("users-only", "users-only-secret", roles={"User.Read.All"})
    error = failure(block(url, client_id="users-only", client_secret="users-only-secret"))
    assert isinstance(error, AuthError) and error.status == 403
    assert str(error).startswith(
        "source: GET /v1.0/groups page 1: HTTP 403 Forbidden: Authorization_RequestDenied"
    )
    assert "User.Read.All and GroupMember.Read.All, with admin consent" in str(error)
    entra = make_source(block(url, client_id="users-only", client_secret="users-only-secret"))
    with pytest.raises(AuthError, match=r"GroupMember\.Read\.All"):
        entra.check()


def test_check_makes_two_cheap_reads(sim: EntraSim, url: str) -> None:
    seed_company(sim)
    entra = make_source(block(url))
    assert entra.check() == f"Entra ID tenant {TENANT_ID}: users and groups readable"
    reads = [(e.path, e.query) for e in sim.log.entries if e.method == "GET"]
    assert reads == [(f"/v1.0/{p}", {"$select": "id", "$top": "1"}) for p in ("users", "groups")]


def test_a_users_page_that_keeps_failing_aborts_naming_it(sim: EntraSim, url: str) -> None:
    seed_company(sim)
    sim.fail_page("users", 2, 502)
    message = str(failure(block(url)))
    assert message == (
        "source: GET /v1.0/users page 2: HTTP 502 Bad Gateway: UnknownError: "
        "Injected fault: HTTP 502 (3 attempts)"
    )
    assert sim.page_answers("users", 2) == [502, 502, 502]


def test_a_member_page_that_keeps_failing_names_the_group(url: str) -> None:
    sim = EntraSim(max_page_size=20)
    with SimServer(sim.app) as server:
        group = sim.add_group("big", members=[sim.add_user(f"b{n}@acme.example") for n in range(50)])
        sim.fail_page(f"groups/{group}/transitiveMembers", 2, 502)
        message = str(failure(block(server.url)))
    assert message.startswith(
        f"source: GET /v1.0/groups/{group}/transitiveMembers page 2 (group 'big'): HTTP 502"
    )


# --- bad answers, with responses ---------------------------------------------------------------

GRAPH = "https://graph.test"
LOGIN = "https://login.test"
USERS = f"{GRAPH}/v1.0/users"
GROUPS = f"{GRAPH}/v1.0/groups"


def user(uid: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": uid,
        "userPrincipalName": f"{uid}@acme.test",
        "mail": None,
        "accountEnabled": True,
        **fields,
    }


def page(items: list[Any], link: str | None = None) -> dict[str, Any]:
    return {"value": items, **({"@odata.nextLink": link} if link else {})}


def offline(*user_pages: Any, groups: Any = None) -> dict[str, Any]:
    """Register the token endpoint, pages of /users and one page of /groups; return the block."""
    responses.post(
        f"{LOGIN}/{TENANT_ID}/oauth2/v2.0/token",
        json={"token_type": "Bearer", "expires_in": 3599, "access_token": "offline-token"},
    )
    for body in user_pages:
        if isinstance(body, str):
            responses.get(USERS, body=body, content_type="application/json")
        else:
            responses.get(USERS, json=body)
    responses.get(GROUPS, json=groups if groups is not None else page([]))
    return block(GRAPH, login_url=LOGIN)


@responses.activate
def test_the_requests_have_the_documented_shape() -> None:
    source = offline(page([user("u1")]), groups=page([{"id": "g1", "displayName": "team"}]))
    responses.get(
        f"{GROUPS}/g1/transitiveMembers",
        json=page([{"@odata.type": "#microsoft.graph.user", "id": "u1"}]),
    )
    directory = read(source)
    assert [(u.id, u.groups) for u in directory.users] == [("u1", ("team",))]
    token, users, groups, members = responses.calls
    assert parse_qs(token.request.body) == {
        "grant_type": ["client_credentials"],
        "scope": [f"{GRAPH}/.default"],
        "client_id": [CLIENT_ID],
        "client_secret": [CLIENT_SECRET],
    }
    assert users.request.headers["Authorization"] == "Bearer offline-token"
    query = parse_qs(users.request.url.split("?", 1)[1])
    assert query["$top"] == ["999"] and "accountEnabled" in query["$select"][0].split(",")
    assert parse_qs(groups.request.url.split("?", 1)[1])["$select"] == ["id,displayName"]
    assert parse_qs(members.request.url.split("?", 1)[1])["$select"] == ["id"]


@pytest.mark.parametrize(
    ("pages", "where", "cause"),
    [
        (['{"value": [{"id": "u1", "accountEnabled": tr'], "page 1", "expected JSON"),
        (
            [page([user("u1")], f"{USERS}?$skiptoken=a"), "<html><body>Sign in</body></html>"],
            "page 2",
            "expected JSON",
        ),
        ([page([user("u1")], f"{USERS}?$skiptoken=a"), {"values": []}], "page 2", "a 'value' list"),
        (
            [page([user("u1")], f"{USERS}?$skiptoken=a"), page([user("u1")])],
            "page 2",
            "already read on page 1",
        ),
        ([page([{"userPrincipalName": "x"}])], "page 1", "item 1 of the page has no id"),
        ([page([user("u1")], "https://evil.test/v1.0/users?$skiptoken=a")], "page 2", "refusing to follow"),
        (
            [page([user("u1")], f"{USERS}?$skiptoken=a"), page([user("u2")], f"{USERS}?$skiptoken=a")],
            "page 3",
            "pagination loop",
        ),
    ],
)
@responses.activate
def test_a_broken_users_page_aborts_naming_it(pages: list[Any], where: str, cause: str) -> None:
    error = failure(offline(*pages))
    assert isinstance(error, ResponseError)
    assert str(error).startswith(f"source: GET /v1.0/users {where}: "), error
    assert cause in str(error)


@pytest.mark.parametrize(
    ("item", "cause"),
    [
        (user("u1", accountEnabled=None), "user id 'u1': accountEnabled is missing"),
        ({"id": "u1", "userPrincipalName": "u1@acme.test"}, "user id 'u1': accountEnabled is missing"),
        (user("u1", accountEnabled="true"), "accountEnabled is missing or not true/false"),
        (
            user("u1", userPrincipalName=None, displayName="Zoë"),
            "user id 'u1' (Zoë): an enabled user without",
        ),
        (user("u1", mail=["a@b"]), "user id 'u1': mail is not a string"),
        (user("u1", **{"@odata.type": "#microsoft.graph.group"}), "has the @odata.type"),
    ],
)
@responses.activate
def test_a_user_the_reference_does_not_describe_is_an_error_naming_it(
    item: dict[str, Any], cause: str
) -> None:
    error = failure(offline(page([item])))
    assert cause in str(error), error


@responses.activate
def test_a_disabled_user_without_a_upn_is_read_with_what_it_has() -> None:
    directory = read(
        offline(page([user("u1", userPrincipalName=None, accountEnabled=False, mail="x@acme.test")]))
    )
    assert [(u.username, u.email, u.active) for u in directory.users] == [("", "x@acme.test", False)]


@pytest.mark.parametrize(
    ("members", "cause"),
    [
        ([{"id": "m1", "@odata.type": "#microsoft.graph.printer"}], "member 'm1' has the @odata.type"),
        ([{"id": "m1"}], "member 'm1' has the @odata.type None"),
    ],
)
@responses.activate
def test_a_member_of_an_unknown_type_is_an_error_naming_the_group_page(
    members: list[Any], cause: str
) -> None:
    source = offline(page([user("u1")]), groups=page([{"id": "g1", "displayName": "team"}]))
    responses.get(f"{GROUPS}/g1/transitiveMembers", json=page(members))
    message = str(failure(source))
    assert message.startswith("source: GET /v1.0/groups/g1/transitiveMembers page 1 (group 'team'): ")
    assert cause in message


@responses.activate
def test_a_group_without_a_name_and_a_group_deleted_meanwhile_are_errors() -> None:
    nameless = offline(page([user("u1")]), groups=page([{"id": "g1", "displayName": None}]))
    assert "group id 'g1' has no displayName" in str(failure(nameless))
    responses.reset()
    deleted = offline(page([user("u1")]), groups=page([{"id": "g1", "displayName": "team"}]))
    body = {"error": {"code": "Request_ResourceNotFound", "message": "Resource 'g1' does not exist."}}
    responses.get(f"{GROUPS}/g1/transitiveMembers", json=body, status=404)
    error = failure(deleted)
    assert isinstance(error, NotFoundError)
    assert "group 'team'" in str(error) and "deleted during the read" in str(error)


@responses.activate
def test_graph_refusing_a_fresh_token_too_is_one_line_saying_what_to_check() -> None:
    source = offline()
    responses.get(USERS, json={"error": {"code": "InvalidAuthenticationToken"}}, status=401)
    error = failure(source)
    assert isinstance(error, AuthError)
    assert str(error) == (
        "source: GET /v1.0/users page 1: HTTP 401 Unauthorized: the credentials were rejected; Microsoft "
        "Graph refused a fresh token: check that source.login_url and source.graph_url are one cloud"
    )
    posts = [c for c in responses.calls if c.request.method == "POST"]
    assert len(posts) == 2  # the first 401 fetched a new token, once


@responses.activate
def test_an_html_token_endpoint_says_to_check_the_login_url() -> None:
    responses.post(
        f"{LOGIN}/{TENANT_ID}/oauth2/v2.0/token", body="<html>proxy</html>", content_type="text/html"
    )
    message = str(failure(block(GRAPH, login_url=LOGIN)))
    assert message.startswith(
        "source: token endpoint: expected JSON, got text/html; check source.login_url"
    ), message


# --- end to end: plan and apply into Jira, then converge ---------------------------------------


def test_apply_into_jira_converges(sim: EntraSim, url: str, tmp_path: Path) -> None:
    people = make_people(60)
    people[5]["active"] = False
    sim.seed_company(people)
    jira = JiraSim("10.3.1", token=JIRA_TOKEN)
    with SimServer(jira.app) as jira_server:
        config = config_data(block(url, include_groups=["atlassian-*"]), jira_server.url)
        path = tmp_path / "scimsync.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        runner = CliRunner()
        applied = runner.invoke(cli, ["-c", str(path), "apply", "-y"], catch_exceptions=False)
        assert applied.exit_code == 0, applied.output

        wanted = [p for p in people if p["active"] and any(g.startswith("atlassian-") for g in p["groups"])]
        created = {u.name for u in jira.directory.users.values()} - {"admin"}
        assert created == {p["username"] for p in wanted}
        for p in wanted:
            groups = {g["name"] for g in jira.user(p["username"])["groups"]["items"]}  # type: ignore[index]
            expected = {g.removeprefix("atlassian-") for g in p["groups"] if g.startswith("atlassian-")}
            assert groups - {"scimsync-managed", "jira-software-users"} == expected

        jira.log.clear()
        again = runner.invoke(cli, ["-c", str(path), "plan", "--detailed-exitcode"], catch_exceptions=False)
        assert again.exit_code == 0, again.output
        assert EMPTY_PLAN in again.stdout
        assert jira.log.writes() == []
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert audit, "the apply wrote no audit lines"
