"""The keycloak source against its simulator over loopback, and against exact request shapes (responses)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
import yaml
from click.testing import CliRunner

import scimsync.http.client
from scimsync.cli import cli
from scimsync.config import KeycloakSourceConfig, parse_config
from scimsync.errors import AuthError, ConnectorError, ResponseError
from scimsync.http import HttpSettings
from scimsync.models import SourceDirectory, User
from scimsync.secrets import Secret
from scimsync.sim.jira import JiraSim
from scimsync.sim.keycloak import SECRET, KeycloakSim
from scimsync.sim.keycloak_realm import QUERY_USERS
from scimsync.sim.server import SimServer
from scimsync.sources import build_source
from scimsync.sources.keycloak import KeycloakSource
from scimsync.sources.keycloak_model import GroupNode, group_node, inline_subgroups, to_user
from scimsync.sources.keycloak_paging import planned_starts

BASE = "https://sso.acme.test"


class Clock:
    """A clock the test moves; the HTTP layer's sleep moves it too, so nothing really waits."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> list[float]:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(scimsync.http.client, "_sleep", sleep)
    return waits


class Realm:
    """A simulator on loopback and a way to read it through the keycloak source."""

    def __init__(self, sim: KeycloakSim, url: str, clock: Clock) -> None:
        self.sim = sim
        self.url = url + sim.base_path
        self.clock = clock
        self.settings = HttpSettings(retries=2, timeout=5)

    def source(self, **keys: Any) -> KeycloakSource:
        block = {"type": "keycloak", "url": self.url, "realm": "acme", "client_id": "scimsync"}
        config = KeycloakSourceConfig(**{**block, "client_secret": SECRET, "page_size": 50, **keys})
        return KeycloakSource("source", config, self.settings, clock=self.clock)

    def read(self, **keys: Any) -> SourceDirectory:
        source = self.source(**keys)
        try:
            return source.read()
        finally:
            source.close()

    def failure(self, **keys: Any) -> ConnectorError:
        with pytest.raises(ConnectorError) as caught:
            self.read(**keys)
        message = str(caught.value)
        assert message.startswith("source: ") and "\n" not in message and SECRET not in message, message
        return caught.value

    def requests(self, path: str) -> list[dict[str, str]]:
        """Return the query of every GET of an admin path ("/users"), in order."""
        return [
            e.query for e in self.sim.log.entries if e.path == f"{self.sim.base_path}/admin/realms/acme{path}"
        ]


@pytest.fixture
def serve(clock: Clock, slept: list[float]) -> Iterator[Callable[..., Realm]]:
    servers: list[SimServer] = []

    def start(version: str = "26.0", **options: Any) -> Realm:
        sim = KeycloakSim(version, clock=clock, **options)
        server = SimServer(sim.app)
        servers.append(server)
        return Realm(sim, server.start(), clock)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def realm(serve: Callable[..., Realm]) -> Realm:
    return serve()


def people(directory: SourceDirectory) -> dict[str, tuple[bool, set[str]]]:
    return {u.username: (u.active, set(u.groups)) for u in directory.users}


def members(directory: SourceDirectory) -> dict[str, set[str]]:
    names = {u.id: u.username for u in directory.users}
    return {g.name: {names[i] for i in g.member_ids} for g in directory.groups}


def seed_company_tree(sim: KeycloakSim, count: int) -> None:
    """Seed users u000.. with a status each, in a tree of groups; the tests spell out what to expect."""
    sim.add_group("engineering")
    sim.add_group("platform", parent="/engineering")
    sim.add_group("sre", parent="/engineering/platform")
    sim.add_group("sales")
    sim.add_group("Équipe Design")
    home = {0: "/engineering", 1: "/engineering/platform", 2: "/engineering/platform/sre"}
    for i in range(count):
        groups = [home[i % 5]] if i % 5 in home else []
        groups += ["/sales"] * (i % 3 == 0) + ["/Équipe Design"] * (i % 11 == 0)
        name = f"u{i:03d}"
        sim.add_user(
            name,
            email=f"{name}@acme.test",
            first_name=f"Given{i}",
            last_name="Ng",
            enabled=i % 7 != 3,
            groups=groups,
        )


# --- a realm read whole ---------------------------------------------------------------------


def test_a_realm_of_260_users_across_six_pages_is_read_exactly(realm: Realm) -> None:
    seed_company_tree(realm.sim, 260)
    directory = realm.read()
    expected = {}
    for i in range(260):
        groups = {0: {"engineering"}, 1: {"engineering", "platform"}, 2: {"engineering", "platform", "sre"}}
        mine = set(groups.get(i % 5, set())) | ({"sales"} if i % 3 == 0 else set())
        mine |= {"Équipe Design"} if i % 11 == 0 else set()
        expected[f"u{i:03d}"] = (i % 7 != 3, mine)
    assert people(directory) == expected
    u5 = next(u for u in directory.users if u.username == "u005")
    assert (u5.email, u5.first_name, u5.last_name, u5.display_name) == (
        "u005@acme.test",
        "Given5",
        "Ng",
        "Given5 Ng",
    )
    # Pages of max=50 (asked at once), each starting on the last user of the one before.
    pages = realm.requests("/users")
    assert sorted((int(q["first"]), q["max"], q["briefRepresentation"]) for q in pages) == [
        (f, "50", "false") for f in (0, 49, 98, 147, 196, 245)
    ]
    assert len(realm.requests("/users/count")) == 2  # before and after the pages


def test_groups_are_named_by_name_identified_by_path_and_hold_their_subgroups_members(realm: Realm) -> None:
    seed_company_tree(realm.sim, 30)
    directory = realm.read()
    by_name = {g.name: g for g in directory.groups}
    assert {g.name: g.id for g in directory.groups} == {
        "engineering": "/engineering",
        "platform": "/engineering/platform",
        "sre": "/engineering/platform/sre",
        "sales": "/sales",
        "Équipe Design": "/Équipe Design",
    }
    sre = {f"u{i:03d}" for i in range(30) if i % 5 == 2}
    platform = sre | {f"u{i:03d}" for i in range(30) if i % 5 == 1}
    assert members(directory)["sre"] == sre
    assert members(directory)["platform"] == platform
    assert members(directory)["engineering"] == platform | {f"u{i:03d}" for i in range(30) if i % 5 == 0}
    assert len(by_name["Équipe Design"].member_ids) == 3  # u000, u011, u022


def test_every_status_enabled_is_active_and_temporary_states_stay_active(realm: Realm) -> None:
    sim = realm.sim
    sim.add_user("plain", email="plain@acme.test")
    sim.add_user("disabled", email="disabled@acme.test", enabled=False)
    sim.add_user("new-password", required_actions=["UPDATE_PASSWORD"])  # "password expired"
    sim.add_user("unverified", required_actions=["VERIFY_EMAIL"], email_verified=False)
    sim.add_user("otp", required_actions=["CONFIGURE_TOTP"])
    sim.add_user("ldap-off", federation_link="ldap-1", enabled=False)
    sim.add_user("ldap-on", federation_link="ldap-1")
    assert {u.username: u.active for u in realm.read().users} == {
        "plain": True,
        "disabled": False,
        "new-password": True,
        "unverified": True,
        "otp": True,
        "ldap-off": False,
        "ldap-on": True,
    }


def test_the_raw_profile_is_in_attributes_custom_ones_on_top_and_no_access_map(realm: Realm) -> None:
    realm.sim.add_user(
        "amara", attributes={"department": ["Finance"], "badge": ["1", "2"]}, email_verified=True
    )
    (amara,) = realm.read().users
    assert amara.attributes["department"] == "Finance" and amara.attributes["badge"] == ["1", "2"]
    assert amara.attributes["attributes"] == {"department": ["Finance"], "badge": ["1", "2"]}
    assert amara.attributes["emailVerified"] is True and amara.attributes["username"] == "amara"
    assert "access" not in amara.attributes and "credentials" not in amara.attributes


def test_names_in_any_script_and_a_group_of_thousands(realm: Realm) -> None:
    realm.sim.add_group("設計")
    realm.sim.add_user("józef.żółć", first_name="Józef", last_name="Żółć", groups=["/設計"])
    realm.sim.add_group("everyone")
    for n in range(1500):
        realm.sim.add_user(f"m{n:04d}", groups=["/everyone"])
    directory = realm.read(page_size=500)
    assert len(members(directory)["everyone"]) == 1500
    assert members(directory)["設計"] == {"józef.żółć"}
    assert next(u.display_name for u in directory.users if u.groups == ("設計",)) == "Józef Żółć"
    everyone = next(g for g in directory.groups if g.name == "everyone")
    pages = [
        q["first"] for q in realm.requests(f"/groups/{realm.sim.realm.find_group('/everyone').id}/members")
    ]
    # The short page (1497: 3 entries) is confirmed as the end from its last entry on (1499).
    assert (everyone.id, pages) == ("/everyone", ["0", "499", "998", "1497", "1499"])


def test_a_group_with_more_than_ten_subgroups_is_read_whole(realm: Realm) -> None:
    realm.sim.add_group("teams")
    for n in range(12):
        realm.sim.add_group(
            f"team-{n:02d}", parent="/teams", members=[realm.sim.add_user(f"t{n}") and f"t{n}"]
        )
    directory = realm.read()
    assert members(directory)["teams"] == {f"t{n}" for n in range(12)}
    children = realm.requests(f"/groups/{realm.sim.realm.find_group('/teams').id}/children")
    assert children == [{"briefRepresentation": "true", "first": "0", "max": "50"}]  # not /children's 10


@pytest.mark.parametrize("version", ["22.0.5", "16.1.1"])
def test_older_keycloaks_inline_tree_and_auth_prefix_read_the_same(
    serve: Callable[..., Realm], version: str
) -> None:
    realm = serve(version)
    seed_company_tree(realm.sim, 40)
    directory = realm.read()
    assert realm.url.endswith("/auth") == version.startswith("16")
    assert members(directory)["engineering"] == {f"u{i:03d}" for i in range(40) if i % 5 in (0, 1, 2)}
    assert all("/children" not in e.path for e in realm.sim.log.entries)


def test_two_groups_of_one_name_are_refused(realm: Realm) -> None:
    realm.sim.add_group("eng")
    realm.sim.add_group("platform", parent="/eng")
    realm.sim.add_group("sales")
    realm.sim.add_group("Platform", parent="/sales")
    assert str(realm.failure()) == (
        "source: group /sales/Platform: has the name 'Platform' of group /eng/platform: rules and scoping "
        "match group names (SPEC §4), so the two would merge; rename one"
    )


def test_a_service_account_in_a_group_is_not_a_user(realm: Realm) -> None:
    realm.sim.add_group("ops", members=["service-account-scimsync"])
    realm.sim.add_user("amara", groups=["/ops"])
    directory = realm.read()
    assert [u.username for u in directory.users] == ["amara"] and members(directory) == {"ops": {"amara"}}
    scoped = realm.read(include_groups=["ops"])
    assert [u.username for u in scoped.users] == ["amara"]


def test_check_counts_the_users(realm: Realm) -> None:
    for name in ("amara", "bruno"):
        realm.sim.add_user(name)
    source = realm.source()
    assert source.check() == "Keycloak realm 'acme' with 2 users"
    source.close()


# --- scoping --------------------------------------------------------------------------------


def test_include_groups_reads_only_the_matching_subtrees_members_in_detail(realm: Realm) -> None:
    seed_company_tree(realm.sim, 30)
    realm.sim.add_user("outsider", groups=["/sales"])
    directory = realm.read(include_groups=["Eng*"])
    assert realm.requests("/users") == [] and realm.requests("/users/count") == []
    wanted = {f"u{i:03d}" for i in range(30) if i % 5 in (0, 1, 2)}
    assert {u.username for u in directory.users} == wanted
    assert "sales" in next(u.groups for u in directory.users if u.username == "u000")  # its other groups too
    sim_groups = realm.sim.realm
    brief = {
        path: realm.requests(f"/groups/{sim_groups.find_group(path).id}/members")[0]["briefRepresentation"]
        for path in ("/engineering", "/engineering/platform/sre", "/sales")
    }
    assert brief == {"/engineering": "false", "/engineering/platform/sre": "false", "/sales": "true"}


# --- tokens, rate limits, failures ------------------------------------------------------------


def test_a_token_that_expires_mid_read_is_refreshed_once(realm: Realm) -> None:
    seed_company_tree(realm.sim, 200)
    realm.sim.expire_tokens_after(2)
    assert len(realm.read().users) == 200
    assert realm.sim.tokens_issued() == 2
    assert any(e.status == 401 for e in realm.sim.log.entries)


def test_a_token_is_refreshed_before_it_expires(serve: Callable[..., Realm], clock: Clock) -> None:
    realm = serve(token_lifetime=120)
    seed_company_tree(realm.sim, 60)

    def later(path: str, first: int) -> None:
        if (path, first) == ("/users", 0):
            clock.now += 70  # within a minute of the end: the next request fetches a new token

    realm.sim.before_page = later
    assert len(realm.read().users) == 60
    assert realm.sim.tokens_issued() == 2
    assert all(e.status != 401 for e in realm.sim.log.entries)


def test_a_429_from_a_proxy_is_waited_out(realm: Realm, slept: list[float]) -> None:
    seed_company_tree(realm.sim, 120)
    realm.sim.fail_page("/users", 49, 429, times=1, retry_after=4)
    assert len(realm.read().users) == 120
    assert realm.sim.answers("/users", 49) == [429, 200] and 4.0 in slept


def test_a_rate_limiting_proxy_is_followed_to_the_end(
    serve: Callable[..., Realm], slept: list[float]
) -> None:
    realm = serve(rate_limit=(4, 2.0))
    seed_company_tree(realm.sim, 120)
    assert len(realm.read().users) == 120
    assert slept and any(e.status == 429 for e in realm.sim.log.entries)


def test_a_page_that_keeps_failing_aborts_naming_the_source_and_the_page(realm: Realm) -> None:
    seed_company_tree(realm.sim, 120)
    realm.sim.fail_page("/users", 49, 502)
    assert str(realm.failure()) == "source: GET /users?first=49&max=50: HTTP 502 Bad Gateway (3 attempts)"
    assert realm.sim.answers("/users", 49) == [502, 502, 502]


def test_a_members_page_that_keeps_failing_names_the_group(realm: Realm) -> None:
    seed_company_tree(realm.sim, 10)
    sre = realm.sim.realm.find_group("/engineering/platform/sre").id
    realm.sim.fail_page(f"/groups/{sre}/members", 0, 502)
    assert str(realm.failure()) == (
        f"source: GET /groups/{sre}/members?first=0&max=50 (group /engineering/platform/sre): "
        "HTTP 502 Bad Gateway (3 attempts)"
    )


def test_a_refused_secret_is_one_line_saying_what_to_check(realm: Realm) -> None:
    error = realm.failure(client_secret="wrong-secret-value")
    assert isinstance(error, AuthError)
    assert str(error) == (
        "source: token endpoint: token refused (HTTP 401): unauthorized_client: Invalid client or Invalid "
        "client credentials; check the client id and secret, and that the app is allowed to use this grant; "
        "in Keycloak: source.client_id and source.client_secret of client 'scimsync' in realm 'acme', which "
        "needs Client authentication and Service accounts roles on (idp §5.1)"
    )


def test_a_service_account_without_view_users_is_told_which_role_to_get(serve: Callable[..., Realm]) -> None:
    realm = serve(roles=())
    error = realm.failure()
    assert isinstance(error, AuthError)
    assert str(error) == (
        "source: GET /users/count: HTTP 403 Forbidden; "
        "give the service account of client 'scimsync' the realm-management role view-users"
    )


def test_query_users_alone_lists_nobody_and_the_count_says_so(serve: Callable[..., Realm]) -> None:
    realm = serve(roles=[QUERY_USERS])
    realm.sim.add_user("amara")
    realm.sim.add_user("bruno")
    error = realm.failure()
    assert str(error).startswith(
        "source: GET /users: read 0 users but /users/count says 2: the service account"
    )


@pytest.mark.parametrize(
    ("version", "keys", "cause"),
    [
        ("26.0", {"realm": "nope"}, "token request failed (HTTP 404): Realm does not exist"),
        ("16.1.1", {"url": "ROOT"}, "token request failed (HTTP 404): HTTP 404 Not Found"),
    ],
)
def test_a_wrong_realm_or_url_says_to_check_both(
    serve: Callable[..., Realm], version: str, keys: dict[str, str], cause: str
) -> None:
    realm = serve(version)
    if keys.get("url") == "ROOT":
        keys = {"url": realm.url.removesuffix("/auth")}
    error = realm.failure(**keys)
    wanted = keys.get("realm", "acme")
    assert str(error) == (
        f"source: token endpoint: {cause}; "
        f"check source.url (with /auth before Keycloak 17) and source.realm '{wanted}'"
    )


# --- integrity: a list that moves under the read ---------------------------------------------


def test_a_user_removed_between_pages_makes_the_read_start_again(
    realm: Realm, caplog: pytest.LogCaptureFixture
) -> None:
    seed_company_tree(realm.sim, 120)
    removed: list[str] = []

    def remove_once(path: str, first: int) -> None:
        if (path, first) == ("/users", 98) and not removed:
            realm.sim.remove_user("u010")  # every offset after it moves by one
            removed.append("u010")

    realm.sim.before_page = remove_once
    with caplog.at_level(logging.WARNING):
        directory = realm.read()
    assert {u.username for u in directory.users} == {f"u{i:03d}" for i in range(120)} - {"u010"}
    assert "reading the users again" in caplog.text


def test_a_list_that_keeps_moving_aborts_naming_a_page(realm: Realm) -> None:
    seed_company_tree(realm.sim, 120)
    # One page at a time, in order: the pages before the rename are served before it.
    realm.settings = HttpSettings(retries=2, timeout=5, concurrency=1)
    renamed = iter(range(100))

    def rename(path: str, first: int) -> None:
        if (path, first) == ("/users", 98):
            user = next(u for u in realm.sim.realm.listed_users() if u.username.startswith("u0"))
            realm.sim.rename_user(user.username, f"zz{next(renamed)}")  # from the first page to the end

    realm.sim.before_page = rename
    assert str(realm.failure()) == (
        "source: GET /users?first=98&max=50: the page does not begin with the last entry of the page "
        "before: the list changed (added, removed or renamed) during the read"
    )


def test_a_realm_that_shrinks_during_the_read_is_refused(realm: Realm) -> None:
    seed_company_tree(realm.sim, 120)

    def remove_last(path: str, first: int) -> None:
        if (path, first) == ("/users", 49):
            realm.sim.remove_user(realm.sim.realm.listed_users()[-1].username)

    realm.sim.before_page = remove_last
    assert (
        str(realm.failure())
        == "source: GET /users/count: the realm went from 119 to 118 users during the read"
    )


def test_a_proxy_that_cuts_pages_short_is_noticed(serve: Callable[..., Realm]) -> None:
    realm = serve(page_cap=20)
    seed_company_tree(realm.sim, 120)
    message = str(realm.failure())
    assert message.startswith("source: GET /users?first=49&max=50: a page after a short page is not empty"), (
        message
    )


def test_a_subgroup_added_during_the_read_is_noticed(realm: Realm) -> None:
    seed_company_tree(realm.sim, 10)
    engineering = realm.sim.realm.find_group("/engineering").id

    def add_child(path: str, first: int) -> None:
        if path == f"/groups/{engineering}/children":
            realm.sim.add_group(f"new-{len(realm.sim.realm.groups)}", parent="/engineering")

    realm.sim.before_page = add_child
    assert str(realm.failure()).startswith(
        "source: group /engineering: subGroupCount says 1 subgroups but /children listed 2"
    )


# --- exact shapes and bad answers (responses) ---------------------------------------------------


def rep(n: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"id-{n:03d}", "username": f"user{n:03d}", "enabled": True, **fields}


class FakeKeycloak:
    """The token endpoint and the admin reads, served from lists by first/max with ``responses``."""

    def __init__(self, rsps: responses.RequestsMock, users: list[dict[str, Any]]) -> None:
        self.users = users
        self.page: Callable[[int, int], Any] = lambda first, size: self.users[first : first + size]
        self.count: Callable[[], Any] = lambda: len(self.users)
        admin = f"{BASE}/admin/realms/acme"
        rsps.add(
            responses.POST,
            f"{BASE}/realms/acme/protocol/openid-connect/token",
            json={"access_token": "at-1", "expires_in": 300},
        )
        rsps.add_callback(
            responses.GET, f"{admin}/users/count", callback=lambda r: (200, {}, json.dumps(self.count()))
        )
        rsps.add_callback(responses.GET, f"{admin}/users", callback=self._users)
        rsps.add(responses.GET, f"{admin}/groups", json=[])

    def _users(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlsplit(request.url or "").query)
        body = self.page(int(query["first"][0]), int(query["max"][0]))
        return (
            (200, {"Content-Type": "text/html"}, body)
            if isinstance(body, str)
            else (200, {}, json.dumps(body))
        )


def fake_read(
    users: list[dict[str, Any]], tamper: Callable[[FakeKeycloak], None] = lambda f: None
) -> SourceDirectory:
    config = KeycloakSourceConfig(
        type="keycloak",
        url=BASE,
        realm="acme",
        client_id="scimsync",
        client_secret=Secret(SECRET),
        page_size=10,
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeKeycloak(rsps, users)
        tamper(fake)
        source = KeycloakSource("source", config, HttpSettings(retries=0))
        try:
            directory = source.read()
        finally:
            source.close()
        token = next(c.request for c in rsps.calls if c.request.method == "POST")
        assert parse_qs(str(token.body)) == {
            "grant_type": ["client_credentials"],
            "client_id": ["scimsync"],
            "client_secret": [SECRET],
        }
        assert all(
            c.request.headers["Authorization"] == "Bearer at-1"
            for c in rsps.calls
            if c.request.method == "GET"
        )
    return directory


def test_request_shapes_token_form_bearer_and_overlapping_pages() -> None:
    directory = fake_read([rep(n) for n in range(25)])
    assert [u.username for u in directory.users] == [f"user{n:03d}" for n in range(25)]


@pytest.mark.parametrize(
    ("page", "cause"),
    [
        (lambda first, size: {"users": []}, "GET /users?first=0&max=10: expected a JSON array (idp §5.2)"),
        (
            lambda first, size: [{"username": "x"}],
            "GET /users?first=0&max=10: an entry is not an object with an id",
        ),
        (
            lambda first, size: "<html>Sign in</html>",
            "GET /users?first=0&max=10: expected JSON, got text/html: <html>Sign in</html>",
        ),
        (
            lambda first, size: [rep(n) for n in range(size + 1)],
            "GET /users?first=0&max=10: 11 entries on a page of max=10",
        ),
    ],
)
def test_a_page_of_another_shape_is_an_error_naming_it(page: Callable[[int, int], Any], cause: str) -> None:
    def tamper(fake: FakeKeycloak) -> None:
        fake.page = page

    with pytest.raises(ResponseError) as caught:
        fake_read([rep(n) for n in range(5)], tamper)
    assert str(caught.value) == f"source: {cause}"


@pytest.mark.parametrize("count", [{"count": 5}, "5", True, -1])
def test_a_count_that_is_not_a_number_is_an_error(count: Any) -> None:
    def tamper(fake: FakeKeycloak) -> None:
        fake.count = lambda: count

    with pytest.raises(ResponseError) as caught:
        fake_read([rep(n) for n in range(5)], tamper)
    assert str(caught.value) == "source: GET /users/count: expected a number of users (idp §5.2)"


def test_a_server_that_ignores_first_repeats_its_page_and_is_refused() -> None:
    def tamper(fake: FakeKeycloak) -> None:
        fake.page = lambda first, size: fake.users[:size]

    with pytest.raises(ResponseError, match=r"first=9&max=10: the page does not begin with the last entry"):
        fake_read([rep(n) for n in range(25)], tamper)


def test_an_id_listed_on_two_pages_is_refused() -> None:
    users = [rep(n) for n in range(25)]
    users[15] = {**users[3]}
    with pytest.raises(ResponseError, match=r"first=9&max=10: id 'id-003' is listed twice"):
        fake_read(users)


# --- mapping, pure ------------------------------------------------------------------------------


def test_an_enabled_user_needs_a_username_and_a_disabled_one_is_read_as_it_is() -> None:
    with pytest.raises(ResponseError, match=r"^source: user id 'k1': an enabled user without a username$"):
        to_user("source", {"id": "k1", "enabled": True, "email": "x@acme.test"})
    ghost = to_user("source", {"id": "k2", "enabled": False, "lastName": "Leaver"})
    assert ghost == User(
        id="k2", username="", email="", last_name="Leaver", display_name="Leaver", active=False
    )
    with pytest.raises(ResponseError, match=r"^source: user 'amara' \(id k3\): enabled is missing"):
        to_user("source", {"id": "k3", "username": "amara"})
    with pytest.raises(ResponseError, match=r"user 'amara' \(id k4\): email is not a string"):
        to_user("source", {"id": "k4", "username": "amara", "enabled": True, "email": ["a@b"]})


def test_subgroups_inline_before_23_counted_from_23(realm: Realm) -> None:
    node = GroupNode("g1", "eng", "/eng", None)
    child = {"id": "g2", "name": "platform"}
    assert inline_subgroups("source", {"subGroups": [child]}, node) == [child]  # < 23
    assert inline_subgroups("source", {"subGroups": [], "subGroupCount": 3}, node) == 3  # 23+: /children
    assert inline_subgroups("source", {"subGroups": [], "subGroupCount": 0}, node) == []
    with pytest.raises(ResponseError, match="has neither subGroups nor subGroupCount"):
        inline_subgroups("source", {}, node)


def test_a_group_without_a_name_or_with_a_bad_path_is_an_error() -> None:
    parent = GroupNode("g1", "eng", "/eng", None)
    with pytest.raises(ResponseError, match=r"^source: group id 'g2': has no name$"):
        group_node("source", {"id": "g2", "name": " "}, parent)
    with pytest.raises(ResponseError, match=r"^source: a group under /eng: has no id$"):
        group_node("source", {"name": "x"}, parent)
    with pytest.raises(ResponseError, match=r"group 'x' \(id g3\): its path is not a string"):
        group_node("source", {"id": "g3", "name": "x", "path": 7}, parent)
    assert group_node("source", {"id": "g4", "name": "platform"}, parent).path == "/eng/platform"


def test_planned_pages_overlap_by_one_and_end_on_a_short_page() -> None:
    assert planned_starts(0, 50) == [0]
    assert planned_starts(50, 50) == [0, 49]  # the second page holds only the overlap: the end
    assert planned_starts(260, 50) == [0, 49, 98, 147, 196, 245]


# --- end to end -------------------------------------------------------------------------------


def test_plan_and_apply_into_jira_converge(realm: Realm, tmp_path: Path) -> None:
    seed_company_tree(realm.sim, 40)
    jira = JiraSim("10.3.1", token="kc-jira-token")
    block = {
        "type": "keycloak",
        "url": realm.url,
        "realm": "acme",
        "client_id": "scimsync",
        "client_secret": SECRET,
        "page_size": 15,
        "include_groups": ["engineering", "équipe*"],
    }
    with SimServer(jira.app) as server:
        config = {
            "version": 1,
            "source": block,
            "targets": {
                "jira": {
                    "type": "jira",
                    "url": server.url,
                    "token": "kc-jira-token",
                    "groups": [{"from": "*", "to": "j-{{ group.name | slug }}"}],
                }
            },
            "audit_log": "audit.jsonl",
            "lock_file": "run.lock",
            "state_file": "state.json",
            "http": {"retries": 1, "timeout": 10},
        }
        path = tmp_path / "scimsync.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        parse_config(config, base_dir=tmp_path, env={})  # the block is a valid config
        first = CliRunner().invoke(cli, ["-c", str(path), "apply", "-y"], catch_exceptions=False)
        assert first.exit_code == 0, first.output
        wanted = {f"u{i:03d}" for i in range(40) if (i % 5 in (0, 1, 2) or i % 11 == 0) and i % 7 != 3}
        assert {u.name for u in jira.directory.users.values()} - {"admin"} == wanted
        u001 = jira.user("u001")
        assert u001 is not None
        assert {g["name"] for g in u001["groups"]["items"]} >= {"j-engineering", "j-platform"}
        jira.log.clear()
        again = CliRunner().invoke(
            cli, ["-c", str(path), "plan", "--detailed-exitcode"], catch_exceptions=False
        )
        assert again.exit_code == 0, again.output
        assert "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes." in again.stdout
        assert jira.log.writes() == []


def test_the_registry_builds_the_keycloak_source(tmp_path: Path) -> None:
    block = {
        "type": "keycloak",
        "url": BASE + "/",
        "realm": "acme",
        "client_id": "c",
        "client_secret": "s3cr3t-value",
    }
    jira = {"type": "jira", "url": "https://jira.acme.test", "token": "jira-token-value"}
    config = parse_config(
        {"version": 1, "source": block, "targets": {"jira": jira}}, base_dir=tmp_path, env={}
    )
    source = build_source(config)
    assert isinstance(source, KeycloakSource) and source.config.page_size == 500
    source.close()
