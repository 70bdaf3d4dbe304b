"""JiraTarget against exact request shapes (reference §1, §6, §7), with ``responses``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from scimsync import secrets
from scimsync.config import TargetConfig
from scimsync.errors import (
    AuthError,
    ConfigError,
    ConnectorError,
    NotFoundError,
    NotManageableError,
    ResponseError,
)
from scimsync.http import Auth, BasicAuth, BearerAuth, HttpClient, HttpSettings
from scimsync.models import Account
from scimsync.secrets import Secret
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer
from scimsync.targets import TARGET_TYPES, auth_from, build_target, implemented_target_types
from scimsync.targets.jira import BASIC_AUTH_HINT, JiraTarget, parse_error

BASE = "https://acme.test/jira"  # with a context path (SPEC §3)
API = BASE + "/rest/api/2"
AMARA = Account(id="JIRAUSER10412", username="amara.k", email="amara.k@example.test", display_name="Amara K")
Callback = Callable[[requests.PreparedRequest], tuple[int, dict[str, str], str]]


@pytest.fixture(autouse=True)
def _own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # redact() scrubs every Secret value ever made, process-wide: keep other tests' short
    # values ("a", "pw") out of these messages, and ours out of theirs.
    monkeypatch.setattr(secrets, "_known", set())


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


PAT = BearerAuth(Secret("pat-0123456789"))


def make_target(concurrency: int = 4, *, auth: Auth = PAT, url: str = BASE) -> JiraTarget:
    client = HttpClient(
        "jira",
        url,
        auth=auth,
        settings=HttpSettings(retries=2, concurrency=concurrency),
        error_parser=parse_error,
        sleep=lambda _: None,
    )
    return JiraTarget("jira", client)


def bean(name: str, *, key: str | None = None, active: bool = True) -> dict[str, Any]:
    return {
        "self": f"{API}/user?username={name}",
        "key": key or f"K-{name}",
        "name": name,
        "emailAddress": f"{name}@example.test",
        "displayName": name.title(),
        "active": active,
    }


def jira_error(*messages: str, **errors: str) -> dict[str, Any]:
    return {"errorMessages": list(messages), "errors": errors}


def server_info(rsps: responses.RequestsMock, version: str) -> None:
    numbers = [int(p) for p in version.split(".")]
    rsps.get(
        f"{API}/serverInfo", json={"version": version, "versionNumbers": numbers, "deploymentType": "Server"}
    )


def query(request: requests.PreparedRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url or "").query).items()}


def calls_to(rsps: responses.RequestsMock, path: str) -> list[dict[str, str]]:
    full = urlsplit(API + path).path
    return [query(c.request) for c in rsps.calls if urlsplit(c.request.url or "").path == full]


def search_server(users: list[dict[str, Any]], cap: int) -> Callback:
    """Answer /user/search like Jira: prefix match in no particular order, cut at ``cap`` (§1.7).

    The users come back in list order (creation order, say), never sorted by username.
    """

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        q = query(request)
        assert (q["includeActive"], q["includeInactive"]) == ("true", "true")
        text, start, size = q["username"].lower(), int(q["startAt"]), int(q["maxResults"])
        found = [u for u in users if text == "." or any(w.startswith(text) for w in words(u))]
        return 200, {}, json.dumps(found[:cap][start : start + size])

    return answer


def words(user: dict[str, Any]) -> list[str]:
    """Return what /user/search matches a prefix against: username, email, display-name words."""
    return [user["name"].lower(), user["emailAddress"].lower(), *user["displayName"].lower().split()]


def user_server(users: list[dict[str, Any]]) -> Callback:
    """Answer GET /user?username= like Jira: the exact (case-insensitive) username, else 404 (§1.4)."""

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        name = query(request)["username"].lower()
        found = [u for u in users if u["name"].lower() == name]
        if not found:
            return 404, {}, json.dumps(jira_error(f"The user named '{name}' does not exist"))
        return 200, {}, json.dumps(found[0])

    return answer


def roles(rsps: responses.RequestsMock, *groups: str) -> None:
    """Answer /applicationrole with one role granted through ``groups`` (§1.9)."""
    role = {"key": "jira-software", "name": "Jira Software", "groups": list(groups), "defaultGroups": []}
    rsps.get(f"{API}/applicationrole", json=[role, {"key": "jira-core", "groups": [], "defaultGroups": []}])


def searchable(
    rsps: responses.RequestsMock,
    version: str,
    users: list[dict[str, Any]],
    *,
    cap: int,
    groups: dict[str, list[dict[str, Any]]] | None = None,
) -> None:
    """Serve a Jira <= 10.2: serverInfo, roles over ``groups``, members, search and exact lookups."""
    server_info(rsps, version)
    roles(rsps, *(groups or {}))
    rsps.add_callback(responses.GET, f"{API}/group/member", callback=member_server(groups or {}))
    rsps.add_callback(responses.GET, f"{API}/user/search", callback=search_server(users, cap))
    rsps.add_callback(responses.GET, f"{API}/user", callback=user_server(users))


def member_server(
    groups: dict[str, list[dict[str, Any]]], on_first_page: Callable[[], Any] = lambda: None
) -> Callback:
    """Answer /group/member like Jira: 404 for unknown groups, at most 50 per page (§1.8)."""

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        q = query(request)
        assert q["includeInactiveUsers"] == "true"
        members = groups.get(q["groupname"].lower())
        if members is None:
            return 404, {}, json.dumps(jira_error(f"The group '{q['groupname']}' does not exist."))
        start, size = int(q["startAt"]), min(int(q["maxResults"]), 50)
        if start == 0:
            on_first_page()
        page = members[start : start + size]
        body = {
            "startAt": start,
            "maxResults": size,
            "total": len(members),
            "isLast": start + size >= len(members),
        }
        return 200, {}, json.dumps({**body, "values": page})

    return answer


# -- version, capabilities, check ------------------------------------------------------


def test_capabilities_follow_the_version_and_read_server_info_once(rsps: responses.RequestsMock) -> None:
    server_info(rsps, "10.3.1")
    target = make_target()
    caps = target.capabilities()
    assert caps.deactivate and caps.delete and caps.create_groups and caps.shows_email
    assert caps.update_fields == {"email", "display_name", "username"}
    assert (caps.owner_marker, caps.reason) == ("group", "Jira 10.3.1")
    target.capabilities()
    assert len(rsps.calls) == 1


def test_no_deactivation_before_8_3_and_version_string_fallback(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{API}/serverInfo", json={"version": "8.2.4", "baseUrl": BASE})
    caps = make_target(auth=BasicAuth("bot", Secret("password-value"))).capabilities()
    assert not caps.deactivate
    assert caps.reason == "Jira 8.2.4"


def test_check_reads_the_version_then_proves_the_credentials_with_myself(
    rsps: responses.RequestsMock,
) -> None:
    rsps.get(
        f"{API}/myself",
        json=bean("admin"),
        match=[matchers.header_matcher({"Authorization": "Bearer pat-0123456789"})],
    )
    server_info(rsps, "10.3.1")
    assert make_target().check() == "Jira 10.3.1, signed in as admin"
    assert [urlsplit(c.request.url or "").path for c in rsps.calls] == [
        "/jira/rest/api/2/serverInfo",
        "/jira/rest/api/2/myself",
    ]


@pytest.mark.parametrize("version", ["8.13.2", "8.5.0"])
def test_a_token_on_jira_before_8_14_fails_with_a_hint(rsps: responses.RequestsMock, version: str) -> None:
    # §1.1: no personal access tokens before 8.14; the Bearer header is ignored there, so
    # /myself would only say "not authenticated".
    server_info(rsps, version)
    rsps.get(f"{API}/myself", status=401, body="")
    target = make_target()
    for call in (target.check, target.capabilities, lambda: target.read([])):
        with pytest.raises(AuthError) as err:
            call()
        assert str(err.value) == (
            f"jira: Jira {version} has no personal access tokens (8.14+); use username + password"
        )
    assert not calls_to(rsps, "/myself")


def test_basic_auth_on_jira_before_8_14_is_fine(rsps: responses.RequestsMock) -> None:
    server_info(rsps, "8.13.2")
    rsps.get(f"{API}/myself", json=bean("bot"))
    assert (
        make_target(auth=BasicAuth("bot", Secret("password-value"))).check()
        == "Jira 8.13.2, signed in as bot"
    )


def test_401_is_an_auth_error(rsps: responses.RequestsMock) -> None:
    server_info(rsps, "10.3.1")
    rsps.get(f"{API}/myself", status=401, body="")
    with pytest.raises(AuthError) as err:
        make_target().check()
    assert err.value.system == "jira" and err.value.status == 401


def test_403_basic_auth_disabled_gives_the_pat_hint(rsps: responses.RequestsMock) -> None:
    server_info(rsps, "10.3.1")
    rsps.get(
        f"{API}/myself",
        status=403,
        json={"message": "Basic Authentication has been disabled on this instance."},
    )
    with pytest.raises(AuthError) as err:
        make_target().check()
    assert "Basic Authentication has been disabled" in str(err.value)
    assert BASIC_AUTH_HINT in str(err.value)


def test_html_from_a_proxy_is_a_response_error(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{API}/serverInfo", body="<html><body>Login</body></html>", content_type="text/html")
    with pytest.raises(ResponseError) as err:
        make_target().capabilities()
    assert err.value.system == "jira"


# -- read -------------------------------------------------------------------------------


def test_read_on_10_3_uses_the_user_list_cursor_and_never_search(rsps: responses.RequestsMock) -> None:
    server_info(rsps, "10.3.1")
    first = {"maxResults": 2000, "isLast": False, "nextCursor": "c2", "values": [bean("amara.k"), bean("bo")]}
    last = {"maxResults": 2000, "isLast": True, "values": [bean("old", active=False)]}
    rsps.get(f"{API}/user/list", json=first, match=[matchers.query_param_matcher({"maxResults": "2000"})])
    rsps.get(
        f"{API}/user/list",
        json=last,
        match=[matchers.query_param_matcher({"maxResults": "2000", "cursor": "c2"})],
    )
    groups = {"jira-devs": [bean("amara.k"), bean("old", active=False)], "scimsync-managed": []}
    rsps.add_callback(responses.GET, f"{API}/group/member", callback=member_server(groups))
    roles(rsps)  # no `wanted`: anyone may be new, so what Jira gives new users is read
    seen: list[tuple[str, int, int | None]] = []

    directory = make_target().read(
        ["Jira-Devs", "jira-devs", "scimsync-managed", "ghosts"], progress=lambda *a: seen.append(a)
    )

    assert not calls_to(rsps, "/user/search")
    by_name = {a.username: a for a in directory.accounts}
    assert set(by_name) == {"amara.k", "bo", "old"}
    assert by_name["amara.k"].groups == {"Jira-Devs"}  # the configured spelling
    assert by_name["old"] == Account(
        "K-old", "old", "old@example.test", "Old", active=False, groups=frozenset({"Jira-Devs"})
    )
    assert by_name["bo"].groups == frozenset()
    assert directory.groups == {"Jira-Devs", "scimsync-managed"}  # "ghosts" answered 404
    assert ("jira: users", 3, None) in seen
    assert ("jira: groups", 3, 3) in seen


def test_read_falls_back_to_the_access_groups_and_search_when_user_list_is_missing(
    rsps: responses.RequestsMock,
) -> None:
    searchable(rsps, "10.3.0", [bean("amara.k")], cap=100, groups={"jira-software-users": [bean("bo")]})
    rsps.get(f"{API}/user/list", status=404, json=jira_error("null for uri"))
    directory = make_target().read([])
    assert sorted(a.username for a in directory.accounts) == ["amara.k", "bo"]
    assert calls_to(rsps, "/user/search")[0]["maxResults"] == "100"


def test_read_before_10_3_walks_every_access_group_with_the_managed_ones(
    rsps: responses.RequestsMock,
) -> None:
    # §7: members of every group that grants product access, read in the same parallel
    # batch as the managed groups; the search only supplements them.
    members = [bean(f"m{i:03d}") for i in range(120)]
    groups = {
        "jira-software-users": members,
        "jira-administrators": [bean("admin")],
        "jira-devs": [bean("m001")],
    }
    searchable(rsps, "10.2.0", [bean("loner")], cap=100, groups=groups)

    directory = make_target().read(["Jira-Devs", "scimsync-managed"])

    by_name = {a.username: a for a in directory.accounts}
    assert set(by_name) == {"loner", "admin", *(m["name"] for m in members)}
    assert by_name["m001"].groups == {"Jira-Devs"}  # only managed groups give memberships
    assert by_name["m002"].groups == frozenset() and by_name["admin"].groups == frozenset()
    assert directory.groups == {"Jira-Devs"}  # scimsync-managed answered 404
    pages = [(q["groupname"], q["startAt"]) for q in calls_to(rsps, "/group/member")]
    assert sorted(pages) == sorted(
        [("jira-software-users", s) for s in ("0", "50", "100")]
        + [("jira-administrators", "0"), ("Jira-Devs", "0"), ("scimsync-managed", "0")]
    )
    assert len(calls_to(rsps, "/applicationrole")) == 1


def test_read_on_10_3_walks_no_access_group(rsps: responses.RequestsMock) -> None:
    server_info(rsps, "10.3.1")
    rsps.get(f"{API}/user/list", json={"isLast": True, "values": [bean("a")]})
    assert [a.username for a in make_target().read([], wanted=[("A", "a@x")]).accounts] == ["a"]
    assert not calls_to(rsps, "/applicationrole") and not calls_to(rsps, "/group/member")


def test_read_with_someone_new_names_the_groups_jira_gives_new_users(rsps: responses.RequestsMock) -> None:
    # §1.3, §1.9: the default groups of the roles selected by default, so that the plan can
    # show (and undo) what Jira would add on its own.
    server_info(rsps, "10.3.1")
    rsps.get(f"{API}/user/list", json={"isLast": True, "values": [bean("a")]})
    software = {
        "key": "jira-software",
        "groups": ["jsw"],
        "defaultGroups": ["jsw"],
        "selectedByDefault": True,
    }
    core = {"key": "jira-core", "groups": ["jc"], "defaultGroups": ["jc"], "selectedByDefault": False}
    rsps.get(f"{API}/applicationrole", json=[software, core])
    directory = make_target().read([], wanted=[("a", "a@x"), ("new", "new@x")])
    assert directory.creation_groups == {"jsw"}
    assert len(calls_to(rsps, "/applicationrole")) == 1


def test_read_on_9_12_shards_a_full_1000_window_and_finds_users_past_the_cap(
    rsps: responses.RequestsMock,
) -> None:
    users = [bean(f"s.{i:04d}") for i in range(1200)] + [
        bean(f"{c}user{i}") for c in "abz09_" for i in range(60)
    ]
    searchable(rsps, "9.12.2", users, cap=1000)

    directory = make_target().read([])

    assert sorted(a.username for a in directory.accounts) == sorted(u["name"] for u in users)
    assert len({a.id for a in directory.accounts}) == len(users)  # deduplicated by key
    searches = calls_to(rsps, "/user/search")
    assert not calls_to(rsps, "/user/list")
    assert {(q["startAt"], q["maxResults"]) for q in searches} == {("0", "1000")}  # one request each
    texts = [q["username"] for q in searches]
    assert len(texts) == len(set(texts))
    assert {".", "s", "s.", "s.0", "s.00"} <= set(texts)  # each full shard narrowed again
    assert "a0" not in texts  # a shard under the window is not narrowed
    # Every cut query but "." is also looked up as an exact username (§1.4), and no other.
    exact = [q["username"] for q in calls_to(rsps, "/user")]
    matches = {t: [u for u in users if t == "." or any(w.startswith(t) for w in words(u))] for t in texts}
    cut = {t for t, found in matches.items() if min(len(found), 1000) in (100, 1000)}
    assert sorted(exact) == sorted(cut - {"."}) and {"s", "s.", "s.0", "s.00"} <= set(exact)


def test_read_on_10_0_shards_the_100_window(rsps: responses.RequestsMock) -> None:
    users = [bean(f"u{i:03d}", active=i % 7 != 0) for i in range(250)]
    searchable(rsps, "10.0.1", users, cap=100)

    directory = make_target().read([])

    assert len(directory.accounts) == 250
    assert sum(not a.active for a in directory.accounts) == 36
    assert {q["maxResults"] for q in calls_to(rsps, "/user/search")} == {"100"}


@pytest.mark.parametrize(("version", "cap", "count"), [("10.1.0", 100, 150), ("9.12.2", 1000, 1100)])
def test_a_cut_search_reaches_a_username_equal_to_it_and_characters_outside_the_alphabet(
    rsps: responses.RequestsMock, version: str, cap: int, count: int
) -> None:
    # Users in no group, found only by searching. "jo" equals the cut query "jo", so no
    # narrower query matches it by username, and its email's '+' is outside the default
    # alphabet; "jo'donnell" sorts after the window and needs the "'" seen in "jo'connor".
    users = [
        bean("jo'connor"),
        *(bean(f"jo{i:04d}") for i in range(count)),
        {**bean("jo", key="K-jo"), "emailAddress": "jo+jira@x.test", "displayName": "Jo"},
        {**bean("jo'donnell"), "displayName": "Jo"},
    ]
    searchable(rsps, version, users, cap=cap)

    directory = make_target().read([])

    assert sorted(a.username for a in directory.accounts) == sorted(u["name"] for u in users)
    texts = {q["username"] for q in calls_to(rsps, "/user/search")}
    assert {"jo", "jo'"} <= texts  # "'" was seen at position 2 in the window of "jo"
    assert "jo" in {q["username"] for q in calls_to(rsps, "/user")}  # the exact lookup


def test_search_that_ignores_its_query_is_refused_not_sharded_forever(rsps: responses.RequestsMock) -> None:
    server_info(rsps, "9.4.0")
    roles(rsps)
    same = json.dumps([bean(f"x{i}") for i in range(1000)])
    rsps.add_callback(
        responses.GET,
        f"{API}/user/search",
        callback=lambda r: (200, {}, same if query(r)["startAt"] == "0" else "[]"),
    )
    with pytest.raises(ResponseError, match="ignored"):
        make_target().read([])
    assert len(calls_to(rsps, "/user/search")) < 200


@pytest.mark.parametrize(("version", "count"), [("10.1.0", 150), ("9.12.2", 1100)])
def test_read_against_the_simulator_finds_a_user_hidden_behind_a_cut_window(version: str, count: int) -> None:
    sim = JiraSim(version)
    for i in range(count):
        sim.add_user(f"jo{i:04d}", f"jo{i:04d}@x.test", f"Jo {i}")
    sim.add_user("jo", "jo+jira@x.test", "Jo")  # in no group: only the search can find it
    with SimServer(sim.app) as server:
        target = make_target(url=server.url, auth=BearerAuth(Secret("sim-jira-token")))
        directory = target.read(["jira-software-users"])
        target.close()
    assert {a.username for a in directory.accounts} == {"admin", "jo", *(f"jo{i:04d}" for i in range(count))}
    assert sim.log.count("GET", "/rest/api/2/applicationrole") == 1


@pytest.mark.parametrize("version", ["10.1.0", "9.12.2"])
def test_read_with_wanted_users_looks_up_only_the_unseen_ones(version: str) -> None:
    # Below 10.3 there is no complete listing: a steady-state plan must not pay the sharded
    # search (~10,000 requests on 10.0-10.2) when every wanted user was seen in the groups.
    sim = JiraSim(version)
    for i in range(300):
        sim.add_user(f"u{i:04d}", f"u{i:04d}@x.test", f"U {i}", groups=("jira-software-users",))
    sim.add_user("loner", "loner@x.test", "Lone Wolf")  # in no group at all
    sim.add_user("other.name", "by-email@x.test", "By Email")  # in no group, found by email
    wanted = [(f"u{i:04d}", f"u{i:04d}@x.test") for i in range(300)]
    with SimServer(sim.app) as server:
        target = make_target(url=server.url, auth=BearerAuth(Secret("sim-jira-token")))
        steady = target.read(["jira-software-users"], wanted=wanted)
        assert sim.log.count("GET", "/rest/api/2/user/search") == 0
        assert sim.log.count("GET", "/rest/api/2/user") == 0
        sim.log.clear()
        more = target.read(
            ["jira-software-users"],
            wanted=[
                *wanted,
                ("loner", "loner@x.test"),
                ("newbie", "newbie@x.test"),
                ("by.email", "by-email@x.test"),
            ],
        )
        target.close()
    assert len(steady.accounts) == 301  # the 300 and admin
    assert {"loner", "other.name"} <= {a.username for a in more.accounts}
    # One exact lookup per unseen username, one email search per unseen email.
    assert sim.log.count("GET", "/rest/api/2/user/search") == 3
    assert sim.log.count("GET", "/rest/api/2/user") == 3


@pytest.mark.parametrize("version", ["10.1.0", "9.12.2"])
def test_read_with_wanted_users_sees_every_holder_of_an_unseen_users_email(version: str) -> None:
    # john.d has product access; jdoe.old (same email) is in no group. The source user jdoe
    # is unseen by username, so the plan may match by email: both holders must be read, or
    # the email looks unambiguous and another person's account gets adopted.
    sim = JiraSim(version)
    sim.add_user("john.d", "jdoe@acme.test", "John D", groups=("jira-software-users",))
    sim.add_user("jdoe.old", "jdoe@acme.test", "John Doe (old)", active=False)
    with SimServer(sim.app) as server:
        target = make_target(url=server.url, auth=BearerAuth(Secret("sim-jira-token")))
        directory = target.read(["jira-software-users"], wanted=[("jdoe", "jdoe@acme.test")])
        target.close()
    assert {a.username for a in directory.accounts if a.email == "jdoe@acme.test"} == {"john.d", "jdoe.old"}


def test_sharded_fallback_reaches_the_characters_of_the_wanted_users() -> None:
    from scimsync.targets.jira_read import MAX_LOOKUPS

    sim = JiraSim("10.1.0")
    for i in range(150):
        sim.add_user(f"jo{i:04d}", f"jo{i:04d}@x.test", f"Jo {i}")
    sim.add_user("\u00f8yvind", "\u00f8yvind@acme.test", "\u00d8yvind \u00c5s")  # in no group, 'ø' first
    wanted = [(f"n{i}", f"n{i}@x.test") for i in range(MAX_LOOKUPS + 1)] + [
        ("oyvind", "\u00f8yvind@acme.test")
    ]
    with SimServer(sim.app) as server:
        target = make_target(url=server.url, auth=BearerAuth(Secret("sim-jira-token")))
        directory = target.read([], wanted=wanted)
        target.close()
    assert "\u00f8yvind" in {a.username for a in directory.accounts}


def test_read_with_many_unseen_wanted_users_falls_back_to_the_sharded_search() -> None:
    from scimsync.targets.jira_read import MAX_LOOKUPS

    sim = JiraSim("10.1.0")
    with SimServer(sim.app) as server:
        target = make_target(url=server.url, auth=BearerAuth(Secret("sim-jira-token")))
        target.read([], wanted=[(f"n{i}", f"n{i}@x.test") for i in range(MAX_LOOKUPS + 1)])
        target.close()
    # One sharded walk (the directory holds only the admin: one uncut query), not 2,002 lookups.
    assert sim.log.count("GET", "/rest/api/2/user/search") == 1
    assert sim.log.count("GET", "/rest/api/2/user") == 0


def test_group_members_page_by_50_and_unseen_members_are_added(rsps: responses.RequestsMock) -> None:
    server_info(rsps, "10.3.1")
    rsps.get(f"{API}/user/list", json={"isLast": True, "values": [bean("m000")]})
    members = [bean(f"m{i:03d}") for i in range(123)]
    rsps.add_callback(
        responses.GET, f"{API}/group/member", callback=member_server({"jira-software-users": members})
    )

    directory = make_target().read(["jira-software-users"], wanted=[])

    pages = calls_to(rsps, "/group/member")
    assert [(q["startAt"], q["maxResults"]) for q in pages] == [("0", "50"), ("50", "50"), ("100", "50")]
    assert all(q == {**q, "groupname": "jira-software-users", "includeInactiveUsers": "true"} for q in pages)
    assert len(directory.accounts) == 123
    assert all(a.groups == {"jira-software-users"} for a in directory.accounts)


def test_group_members_are_read_in_parallel(rsps: responses.RequestsMock) -> None:
    server_info(rsps, "10.3.1")
    rsps.get(f"{API}/user/list", json={"isLast": True, "values": []})
    barrier = threading.Barrier(2, timeout=5)  # breaks unless both groups are in flight at once
    groups = {"g1": [bean("a")], "g2": [bean("b")]}
    rsps.add_callback(responses.GET, f"{API}/group/member", callback=member_server(groups, barrier.wait))
    directory = make_target(concurrency=2).read(["g1", "g2"], wanted=[])
    assert {a.username: a.groups for a in directory.accounts} == {"a": {"g1"}, "b": {"g2"}}


def test_a_user_bean_without_key_is_a_response_error(rsps: responses.RequestsMock) -> None:
    server_info(rsps, "10.3.1")
    rsps.get(f"{API}/user/list", json={"isLast": True, "values": [{"name": "amara.k"}]})
    with pytest.raises(ResponseError) as err:
        make_target().read([])
    assert err.value.obj == "GET /rest/api/2/user/list"
    assert "key" in err.value.cause


# -- single reads ----------------------------------------------------------------------


def test_get_account_has_all_its_groups(rsps: responses.RequestsMock) -> None:
    groups = {"size": 2, "items": [{"name": "jira-devs"}, {"name": "Other"}]}
    rsps.get(
        f"{API}/user",
        json={**bean("amara.k", key="JIRAUSER10412"), "groups": groups},
        match=[matchers.query_param_matcher({"username": "amara.k", "expand": "groups"})],
    )
    account = make_target().get_account("amara.k")
    assert account is not None
    assert (account.id, account.groups) == ("JIRAUSER10412", frozenset({"jira-devs", "Other"}))


@pytest.mark.parametrize("size", [3, 1, None, "2", True])
def test_get_account_with_a_cut_group_expansion_is_a_response_error(
    rsps: responses.RequestsMock, size: object
) -> None:
    # A cut expansion would make a saved plan's re-check take memberships for gone.
    groups = {"size": size, "items": [{"name": "jira-devs"}, {"name": "Other"}]}
    rsps.get(f"{API}/user", json={**bean("amara.k"), "groups": groups})
    with pytest.raises(ResponseError, match=r"lists 2 of .* groups"):
        make_target().get_account("amara.k")


def test_get_account_404_is_none(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{API}/user", status=404, json=jira_error("The user named 'nobody' does not exist"))
    assert make_target().get_account("nobody") is None


def test_group_exists(rsps: responses.RequestsMock) -> None:
    rsps.get(
        f"{API}/group/member",
        json={"isLast": True, "values": []},
        match=[matchers.query_param_matcher({"groupname": "jira-devs", "maxResults": "1"})],
    )
    rsps.get(
        f"{API}/group/member",
        status=404,
        json=jira_error("no group"),
        match=[matchers.query_param_matcher({"groupname": "x", "maxResults": "1"})],
    )
    target = make_target()
    assert target.group_exists("jira-devs")
    assert not target.group_exists("x")


# -- writes ----------------------------------------------------------------------------


def test_create_user_sends_no_password_and_notification_false(rsps: responses.RequestsMock) -> None:
    # applicationKeys []: no default product access behind the plan's back (§1.3, §1.9).
    body = {
        "name": "amara.k",
        "emailAddress": "amara.k@example.test",
        "displayName": "Amara K",
        "notification": "false",
        "applicationKeys": [],
    }
    rsps.post(
        f"{API}/user",
        status=201,
        json=bean("amara.k", key="JIRAUSER10412"),
        match=[matchers.json_params_matcher(body, strict_match=True)],
    )
    account = make_target().create_user("amara.k", "amara.k@example.test", "Amara K")
    assert (account.id, account.username, account.active) == ("JIRAUSER10412", "amara.k", True)


def test_create_user_answering_html_is_a_response_error(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{API}/user", status=201, body="<html>ok</html>", content_type="text/html")
    with pytest.raises(ResponseError):
        make_target().create_user("amara.k", "amara.k@example.test", "Amara K")


def test_create_user_rejected_names_the_user_and_the_cause(rsps: responses.RequestsMock) -> None:
    rsps.post(
        f"{API}/user", status=400, json=jira_error(username="A user with that username already exists.")
    )
    with pytest.raises(ConnectorError) as err:
        make_target().create_user("amara.k", "amara.k@example.test", "Amara K")
    assert (
        str(err.value)
        == "jira: user amara.k: HTTP 400 Bad Request: username: A user with that username already exists."
    )


@pytest.mark.parametrize(
    ("fields", "body"),
    [
        ({"email": "a@new.test"}, {"emailAddress": "a@new.test"}),
        ({"display_name": "Amara N", "username": "amara.n"}, {"displayName": "Amara N", "name": "amara.n"}),
    ],
)
def test_update_user_by_key(
    rsps: responses.RequestsMock, fields: dict[str, str], body: dict[str, str]
) -> None:
    rsps.put(
        f"{API}/user",
        json=bean("amara.k"),
        match=[
            matchers.query_param_matcher({"key": "JIRAUSER10412"}),
            matchers.json_params_matcher(body, strict_match=True),
        ],
    )
    make_target().update_user(AMARA, fields)
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("active", [False, True])
def test_set_active_uses_the_key(rsps: responses.RequestsMock, active: bool) -> None:
    rsps.put(
        f"{API}/user",
        json=bean("amara.k"),
        match=[
            matchers.query_param_matcher({"key": "JIRAUSER10412"}),
            matchers.json_params_matcher({"active": active}, strict_match=True),
        ],
    )
    make_target().set_active(AMARA, active)
    assert len(rsps.calls) == 1


def test_delete_user_uses_the_key(rsps: responses.RequestsMock) -> None:
    rsps.delete(f"{API}/user", status=204, match=[matchers.query_param_matcher({"key": "JIRAUSER10412"})])
    make_target().delete_user(AMARA)
    assert len(rsps.calls) == 1


def test_delete_user_already_gone_is_done(rsps: responses.RequestsMock) -> None:
    # §6: deleting a missing user answers 404, and a missing user is what delete wants.
    gone = jira_error("The user with the key 'JIRAUSER10412' does not exist")
    rsps.delete(f"{API}/user", status=404, json=gone)
    make_target().delete_user(AMARA)
    assert len(rsps.calls) == 1


def test_delete_user_404_from_something_else_than_jira_is_a_response_error(
    rsps: responses.RequestsMock,
) -> None:
    rsps.delete(f"{API}/user", status=404, body="<html>Not Found</html>", content_type="text/html")
    with pytest.raises(ResponseError):
        make_target().delete_user(AMARA)


READ_ONLY = "Cannot edit user, the user directory is read-only."
USER_WRITES = [
    ("PUT", lambda t: t.set_active(AMARA, False)),
    ("PUT", lambda t: t.update_user(AMARA, {"email": "x@y.test"})),
    ("DELETE", lambda t: t.delete_user(AMARA)),
    ("POST", lambda t: t.create_user("amara.k", "amara.k@example.test", "Amara K")),
]


@pytest.mark.parametrize("status", [400, 403])
@pytest.mark.parametrize(("method", "write"), USER_WRITES)
def test_read_only_directory_is_not_manageable(
    rsps: responses.RequestsMock, method: str, write: Callable[[JiraTarget], None], status: int
) -> None:
    # §1.5 step 3: refused with a 400 or, per object, a 403; both are classified alike.
    rsps.add(method, f"{API}/user", status=status, json=jira_error(READ_ONLY))
    with pytest.raises(NotManageableError) as err:
        write(make_target())
    assert (err.value.system, err.value.obj, err.value.status) == ("jira", "user amara.k", status)


@pytest.mark.parametrize(("method", "write"), USER_WRITES)
def test_a_per_object_403_is_a_failure_of_that_write_not_an_auth_error(
    rsps: responses.RequestsMock, method: str, write: Callable[[JiraTarget], None]
) -> None:
    # §1.5 step 4: a Jira administrator who is no system administrator editing a sysadmin.
    refusal = jira_error("You do not have the permission to edit a system administrator.")
    rsps.add(method, f"{API}/user", status=403, json=refusal)
    with pytest.raises(ConnectorError) as err:
        write(make_target())
    assert type(err.value) is ConnectorError
    assert err.value.cause == (
        "HTTP 403 Forbidden: You do not have the permission to edit a system administrator."
    )


@pytest.mark.parametrize(("method", "write"), USER_WRITES)
def test_a_basic_auth_disabled_403_on_a_write_stays_an_auth_error(
    rsps: responses.RequestsMock, method: str, write: Callable[[JiraTarget], None]
) -> None:
    rsps.add(method, f"{API}/user", status=403, json={"message": "Basic Authentication has been disabled."})
    with pytest.raises(AuthError) as err:
        write(make_target())
    assert err.value.status == 403 and BASIC_AUTH_HINT in err.value.cause


def test_read_only_403_from_the_simulator_is_not_manageable() -> None:
    sim = JiraSim("10.3.1", read_only_status=403)
    key = sim.add_user("ldap.user", "l@example.test", "LDAP User", read_only=True)
    account = Account(id=key, username="ldap.user", email="l@example.test", display_name="LDAP User")
    with SimServer(sim.app) as server:
        target = make_target(url=server.url, auth=BearerAuth(Secret("sim-jira-token")))
        for write in (lambda: target.set_active(account, False), lambda: target.delete_user(account)):
            with pytest.raises(NotManageableError) as err:
                write()
            assert err.value.status == 403 and "read-only directory" in err.value.cause
        target.close()


def test_create_group_that_exists_is_success_whatever_the_language(rsps: responses.RequestsMock) -> None:
    match = [matchers.json_params_matcher({"name": "jira-devs"}, strict_match=True)]
    rsps.post(f"{API}/group", status=201, json={"name": "jira-devs"}, match=match)
    exists = jira_error(groupName="Eine Gruppe oder ein Benutzer mit diesem Namen existiert bereits.")
    rsps.post(f"{API}/group", status=400, json=exists, match=match)
    rsps.get(f"{API}/group/member", json={"isLast": True, "total": 0, "values": []})
    target = make_target()
    target.create_group("jira-devs")
    target.create_group("jira-devs")
    assert len(calls_to(rsps, "/group")) == 2 and len(calls_to(rsps, "/group/member")) == 1


def test_create_group_refused_and_missing_fails(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{API}/group", status=400, json=jira_error(groupName="Nom de groupe invalide."))
    rsps.get(f"{API}/group/member", status=404, json=jira_error("Le groupe n'existe pas."))
    with pytest.raises(ConnectorError) as err:
        make_target().create_group("jira-devs")
    assert err.value.cause == "HTTP 400 Bad Request: groupName: Nom de groupe invalide."


def member_groups(rsps: responses.RequestsMock, *groups: str, status: int = 200) -> None:
    """Answer the re-read of AMARA's groups, by her key (§1.2: expand=groups)."""
    items = [{"name": g, "self": f"{API}/group?groupname={g}"} for g in groups]
    body = {**bean("amara.k", key=AMARA.id), "groups": {"size": len(items), "items": items}}
    rsps.get(
        f"{API}/user",
        status=status,
        json=body if status == 200 else jira_error("no such user"),
        match=[matchers.query_param_matcher({"key": AMARA.id, "expand": "groups"})],
    )


def test_add_member_sends_the_username(rsps: responses.RequestsMock) -> None:
    match = [
        matchers.query_param_matcher({"groupname": "jira-devs"}),
        matchers.json_params_matcher({"name": "amara.k"}, strict_match=True),
    ]
    rsps.post(f"{API}/group/user", status=201, json={"name": "jira-devs"}, match=match)
    make_target().add_member(AMARA, "jira-devs")
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("status", [400, 403, 404])
def test_add_member_refused_but_a_member_now_is_done_whatever_the_language(
    rsps: responses.RequestsMock, status: int
) -> None:
    # §1.8: "already a member" is a 400 that Jira words in the caller's language.
    already = jira_error("Impossible d'ajouter l'utilisateur 'amara.k' : il est déjà membre de 'jira-devs'")
    rsps.post(f"{API}/group/user", status=status, json=already)
    member_groups(rsps, "Jira-Devs", "other")
    make_target().add_member(AMARA, "jira-devs")
    assert len(calls_to(rsps, "/user")) == 1


@pytest.mark.parametrize(("status", "kind"), [(400, ConnectorError), (404, NotFoundError)])
def test_add_member_refused_and_not_a_member_fails_with_jiras_message(
    rsps: responses.RequestsMock, status: int, kind: type[ConnectorError]
) -> None:
    rsps.post(f"{API}/group/user", status=status, json=jira_error("Benutzer 'amara.k' existiert nicht"))
    member_groups(rsps, "other")
    with pytest.raises(ConnectorError) as err:
        make_target().add_member(AMARA, "jira-devs")
    assert type(err.value) is kind
    assert err.value.obj == "membership amara.k in jira-devs"
    assert err.value.cause.endswith(": Benutzer 'amara.k' existiert nicht")


def test_add_member_re_reads_by_username_when_there_is_no_key(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{API}/group/user", status=400, json=jira_error("déjà membre"))
    body = {**bean("amara.k"), "groups": {"size": 1, "items": [{"name": "jira-devs"}]}}
    rsps.get(
        f"{API}/user",
        json=body,
        match=[matchers.query_param_matcher({"username": "amara.k", "expand": "groups"})],
    )
    make_target().add_member(Account(id="", username="amara.k", email=None, display_name=""), "jira-devs")


def test_remove_member_sends_the_username(rsps: responses.RequestsMock) -> None:
    match = [matchers.query_param_matcher({"groupname": "jira-devs", "username": "amara.k"})]
    rsps.delete(f"{API}/group/user", status=200, match=match)
    member_groups(rsps, "other")  # §1.8: re-read, since a nested membership would survive
    make_target().remove_member(AMARA, "jira-devs")
    assert len(rsps.calls) == 2


def test_remove_member_accepted_but_still_a_nested_member_fails(rsps: responses.RequestsMock) -> None:
    rsps.delete(f"{API}/group/user", status=200)
    member_groups(rsps, "jira-devs")
    with pytest.raises(ConnectorError, match="still a member of jira-devs through a nested group"):
        make_target().remove_member(AMARA, "jira-devs")


@pytest.mark.parametrize("status", [400, 403, 404])
def test_remove_member_refused_and_no_longer_a_member_is_done(
    rsps: responses.RequestsMock, status: int
) -> None:
    # Not a member, removed meanwhile, or the group is gone: whatever Jira's words, the
    # re-read user's groups decide.
    rsps.delete(f"{API}/group/user", status=status, json=jira_error("Benutzer ist kein Mitglied der Gruppe."))
    member_groups(rsps, "other")
    make_target().remove_member(AMARA, "jira-devs")


def test_remove_member_of_a_user_that_is_gone_is_done(rsps: responses.RequestsMock) -> None:
    rsps.delete(f"{API}/group/user", status=404, json=jira_error("L'utilisateur n'existe pas."))
    member_groups(rsps, status=404)
    make_target().remove_member(AMARA, "jira-devs")


def test_remove_member_still_a_member_through_a_nested_group_fails(rsps: responses.RequestsMock) -> None:
    # §1.8: a membership through a nested group cannot be removed over REST; the person
    # keeps the access, so it is a failure, never "done" and never merely skipped.
    message = "Cannot remove user 'amara.k' from group 'jira-devs' since user is not a member of 'jira-devs'"
    rsps.delete(f"{API}/group/user", status=400, json=jira_error(message))
    member_groups(rsps, "JIRA-DEVS", "contractors")
    with pytest.raises(ConnectorError) as err:
        make_target().remove_member(AMARA, "jira-devs")
    assert type(err.value) is ConnectorError and err.value.status == 400
    assert err.value.obj == "membership amara.k in jira-devs"
    assert err.value.cause == (
        "still a member of jira-devs through a nested group; remove the nesting in Jira "
        f"(Jira answered HTTP 400 Bad Request: {message})"
    )


def test_remove_member_refused_as_read_only_and_still_a_member_is_not_manageable(
    rsps: responses.RequestsMock,
) -> None:
    rsps.delete(f"{API}/group/user", status=403, json=jira_error("The group directory is read-only."))
    member_groups(rsps, "jira-devs")
    with pytest.raises(NotManageableError):
        make_target().remove_member(AMARA, "jira-devs")


def test_nested_membership_against_the_simulator_fails_and_a_removed_one_is_done() -> None:
    sim = JiraSim("10.3.1")
    sim.add_user("dalia", "dalia@example.test", "Dalia H", groups=("jira-devs",))
    sim.add_group("contractors", members=("dalia",), parent="jira-devs")
    dalia = Account(id=sim.user("dalia")["key"], username="dalia", email=None, display_name="")  # type: ignore[index]
    with SimServer(sim.app) as server:
        target = make_target(url=server.url, auth=BearerAuth(Secret("sim-jira-token")))
        with pytest.raises(ConnectorError, match="through a nested group after the direct"):
            target.remove_member(dalia, "jira-devs")  # the direct membership goes, the nested stays
        with pytest.raises(ConnectorError, match="through a nested group"):
            target.remove_member(dalia, "jira-devs")  # and every later attempt says so
        target.remove_member(dalia, "contractors")
        target.remove_member(dalia, "jira-devs")  # no membership left: done
        target.add_member(dalia, "jira-devs")
        target.add_member(dalia, "jira-devs")  # already a member: done
        target.close()
    assert sim.members("jira-devs", nested=True) == {"dalia"}


def test_write_refused_with_an_html_body_is_a_response_error(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{API}/group/user", status=400, body="<html>Bad Request</html>", content_type="text/html")
    with pytest.raises(ResponseError) as err:
        make_target().add_member(AMARA, "jira-devs")
    assert err.value.obj == "POST /rest/api/2/group/user"
    assert "text/html" in err.value.cause


# -- error parser and registry ---------------------------------------------------------


def _response(status: int, body: str, content_type: str = "application/json") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers["Content-Type"] = content_type
    return response


def test_parse_error_joins_messages_and_field_errors() -> None:
    body = json.dumps(jira_error("First.", "Second\nline.", email="Invalid email."))
    assert parse_error(_response(400, body)) == "First.; Second line.; email: Invalid email."
    assert parse_error(_response(502, "<html/>", "text/html")) == "the body is not a Jira error (text/html)"


def test_registry_and_build_target() -> None:
    assert (
        implemented_target_types() == {"jira", "confluence", "atlassian-cloud", "scim"} == set(TARGET_TYPES)
    )
    config = TargetConfig.model_validate({"type": "jira", "url": BASE, "token": "pat-0123456789"})
    target = build_target("jira", config, HttpSettings())
    assert isinstance(target, JiraTarget) and target.name == "jira"
    target.close()
    other = TargetConfig.model_validate(
        {"type": "scim", "url": BASE, "username": "bot", "password": "password-value"}
    )
    crowd = other.model_copy(update={"type": "crowd"})  # a type a newer config may name
    with pytest.raises(ConfigError) as err:
        build_target("app", crowd, HttpSettings())
    assert err.value.problems == [
        "targets.app.type: 'crowd' is not available in this version "
        "(available: atlassian-cloud, confluence, jira, scim)"
    ]


def test_auth_from() -> None:
    assert auth_from(Secret("token-value"), None, None) == BearerAuth(Secret("token-value"))
    assert auth_from(None, "bot", Secret("password-value")) == BasicAuth("bot", Secret("password-value"))
    assert auth_from(None, None, None) is None
