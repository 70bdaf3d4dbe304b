"""The Keycloak simulator over a loopback socket, checked against idp-apis §5 with plain requests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from scimsync.sim.company import make_people
from scimsync.sim.keycloak import SECRET, KeycloakSim
from scimsync.sim.keycloak_realm import QUERY_USERS
from scimsync.sim.server import SimServer

UNAUTHORIZED = {"error": "HTTP 401 Unauthorized"}
FORBIDDEN = {"error": "HTTP 403 Forbidden"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Keycloak:
    """A tiny client: a token from the realm, then GETs under /admin/realms/{realm}."""

    def __init__(self, url: str, realm: str = "acme") -> None:
        self.url = url
        self.realm = realm
        self.session = requests.Session()

    def token(self, client_id: str = "scimsync", secret: str = SECRET, **form: str) -> requests.Response:
        data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, **form}
        return self.session.post(f"{self.url}/realms/{self.realm}/protocol/openid-connect/token", data=data)

    def login(self, client_id: str = "scimsync", secret: str = SECRET) -> str:
        response = self.token(client_id, secret)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"
        return token

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(f"{self.url}/admin/realms/{self.realm}{path}", params=params, timeout=10)

    def json(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()


@contextmanager
def served(sim: KeycloakSim) -> Iterator[Keycloak]:
    with SimServer(sim.app) as server:
        client = Keycloak(server.url + sim.base_path)
        try:
            yield client
        finally:
            client.session.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> KeycloakSim:
    return KeycloakSim(clock=clock)


@pytest.fixture
def kc(sim: KeycloakSim) -> Iterator[Keycloak]:
    with served(sim) as client:
        client.login()
        yield client


def names(users: list[dict[str, Any]]) -> list[str]:
    return [u["username"] for u in users]


# --- the token endpoint (§5.1) ------------------------------------------------------------


def test_client_credentials_give_a_bearer_token_with_its_lifetime(clock: Clock) -> None:
    sim = KeycloakSim(clock=clock, token_lifetime=120)
    with served(sim) as kc:
        body = kc.token().json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 120 and body["access_token"]
    assert sim.tokens_issued() == 1


@pytest.mark.parametrize(
    ("client_id", "secret", "form", "status", "body"),
    [
        (
            "scimsync",
            "wrong",
            {},
            401,
            ("unauthorized_client", "Invalid client or Invalid client credentials"),
        ),
        ("nobody", SECRET, {}, 401, ("invalid_client", "Invalid client or Invalid client credentials")),
        (
            "scimsync",
            SECRET,
            {"grant_type": "password"},
            400,
            ("unsupported_grant_type", "Unsupported grant_type"),
        ),
    ],
)
def test_the_token_endpoint_refuses_with_oauth_errors(
    sim: KeycloakSim, client_id: str, secret: str, form: dict[str, str], status: int, body: tuple[str, str]
) -> None:
    with served(sim) as kc:
        response = kc.token(client_id, secret, **form)
    assert response.status_code == status
    assert response.json() == {"error": body[0], "error_description": body[1]}


def test_a_client_without_service_accounts_gets_no_token(sim: KeycloakSim) -> None:
    sim.add_client("plain", "plain-secret", service_accounts=False)
    with served(sim) as kc:
        response = kc.token("plain", "plain-secret")
    assert response.status_code == 401
    assert response.json()["error_description"] == "Client not enabled to retrieve service account"


def test_basic_client_authentication_works_and_json_is_refused(sim: KeycloakSim) -> None:
    with served(sim) as kc:
        url = f"{kc.url}/realms/acme/protocol/openid-connect/token"
        basic = kc.session.post(url, data={"grant_type": "client_credentials"}, auth=("scimsync", SECRET))
        as_json = kc.session.post(url, json={"grant_type": "client_credentials"})
        unknown_realm = kc.session.post(url.replace("/acme/", "/other/"), data={"grant_type": "x"})
    assert basic.status_code == 200
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    assert unknown_realm.status_code == 404


def test_an_expired_token_gets_keycloaks_401_and_a_fresh_one_works(sim: KeycloakSim, clock: Clock) -> None:
    with served(sim) as kc:
        kc.login()
        assert kc.get("/users/count").status_code == 200
        clock.now += 299
        assert kc.get("/users/count").status_code == 200
        clock.now += 1  # the default lifetime is 300 s
        expired = kc.get("/users/count")
        assert (expired.status_code, expired.json()) == (401, UNAUTHORIZED)
        kc.login()
        assert kc.get("/users/count").status_code == 200


def test_no_token_or_an_unknown_one_is_401(sim: KeycloakSim) -> None:
    with served(sim) as kc:
        assert kc.get("/users").status_code == 401
        kc.session.headers["Authorization"] = "Bearer eyJnot-issued"
        response = kc.get("/users")
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


def test_tokens_expire_after_a_number_of_user_pages(sim: KeycloakSim, kc: Keycloak) -> None:
    for n in range(3):
        sim.add_user(f"u{n}")
    sim.expire_tokens_after(2)
    assert kc.get("/users", first=0, max=1).status_code == 200
    assert kc.get("/users/count").status_code == 200  # not a page of users
    assert kc.get("/users", first=1, max=1).status_code == 200
    assert kc.get("/users", first=2, max=1).status_code == 401
    kc.login()
    assert kc.get("/users", first=2, max=1).status_code == 200


# --- users (§5.2) ------------------------------------------------------------------------------


def test_users_are_paged_by_first_and_max_ordered_by_username_default_100(
    sim: KeycloakSim, kc: Keycloak
) -> None:
    for n in reversed(range(130)):
        sim.add_user(f"user{n:03d}")
    assert len(kc.json("/users")) == 100
    page = kc.json("/users", first=125, max=10)
    assert names(page) == [f"user{n:03d}" for n in range(125, 130)]
    assert kc.json("/users/count") == 130


def test_service_accounts_are_in_neither_the_list_nor_the_count(sim: KeycloakSim, kc: Keycloak) -> None:
    sim.add_user("amara")
    assert names(kc.json("/users", max=10)) == ["amara"]
    assert kc.json("/users/count") == 1


def test_usernames_and_emails_are_lower_cased_and_unique(sim: KeycloakSim, kc: Keycloak) -> None:
    sim.add_user("Amara.K", email="Amara@Acme.Test")
    with pytest.raises(ValueError, match="exists"):
        sim.add_user("amara.k")
    with pytest.raises(ValueError, match="taken"):
        sim.add_user("other", email="AMARA@acme.test")
    (amara,) = kc.json("/users")
    assert (amara["username"], amara["email"]) == ("amara.k", "amara@acme.test")


def test_the_full_representation_has_attributes_and_the_brief_one_not(sim: KeycloakSim, kc: Keycloak) -> None:
    sim.add_user(
        "amara",
        first_name="Amara",
        attributes={"department": ["Finance"]},
        required_actions=["UPDATE_PASSWORD"],
    )
    sim.add_user("dan", enabled=False)
    full, dan = kc.json("/users")
    brief = kc.json("/users", briefRepresentation="true")[0]
    assert full["attributes"] == {"department": ["Finance"]} and full["requiredActions"] == [
        "UPDATE_PASSWORD"
    ]
    assert "attributes" not in brief and "requiredActions" not in brief and brief["firstName"] == "Amara"
    assert dan["enabled"] is False and "email" not in dan and "firstName" not in dan


def test_query_users_alone_lists_nobody_while_the_count_says_everyone(clock: Clock) -> None:
    sim = KeycloakSim(clock=clock, roles=[QUERY_USERS])
    sim.add_user("amara")
    with served(sim) as kc:
        kc.login()
        assert kc.json("/users") == []
        assert kc.json("/users/count") == 1
        members = kc.get("/groups")
    assert (members.status_code, members.json()) == (403, FORBIDDEN)


def test_parameters_the_simulator_does_not_implement_are_refused(kc: Keycloak) -> None:
    response = kc.get("/users", search="amara")
    assert response.status_code == 400 and "search" in response.json()["errorMessage"]
    assert kc.get("/users", first="x").status_code == 404  # JAX-RS cannot convert it


# --- groups (§5.3) --------------------------------------------------------------------------------


def seed_tree(sim: KeycloakSim) -> None:
    sim.add_user("amara")
    sim.add_user("bruno")
    sim.add_group("engineering", members=["amara"])
    sim.add_group("platform", parent="/engineering", members=["bruno"])
    sim.add_group("sre", parent="/engineering/platform")
    sim.add_group("finance")


def test_groups_from_23_list_the_top_level_with_a_subgroup_count(sim: KeycloakSim, kc: Keycloak) -> None:
    seed_tree(sim)
    top = kc.json("/groups")
    assert [(g["name"], g["path"], g["subGroupCount"], g["subGroups"]) for g in top] == [
        ("engineering", "/engineering", 1, []),
        ("finance", "/finance", 0, []),
    ]
    platform = kc.json(f"/groups/{top[0]['id']}/children")
    assert [(g["path"], g["subGroupCount"], g["parentId"]) for g in platform] == [
        ("/engineering/platform", 1, top[0]["id"])
    ]
    assert kc.json("/groups/count") == {"count": 4}


def test_children_default_to_ten_per_page(sim: KeycloakSim, kc: Keycloak) -> None:
    sim.add_group("parent")
    for n in range(12):
        sim.add_group(f"child{n:02d}", parent="/parent")
    parent = kc.json("/groups")[0]["id"]
    assert len(kc.json(f"/groups/{parent}/children")) == 10
    assert [g["name"] for g in kc.json(f"/groups/{parent}/children", first=10, max=10)] == [
        "child10",
        "child11",
    ]


def test_before_23_groups_come_as_a_whole_tree_and_there_is_no_children_walk(clock: Clock) -> None:
    sim = KeycloakSim("22.0.5", clock=clock)
    seed_tree(sim)
    with served(sim) as kc:
        kc.login()
        top = kc.json("/groups")
        children = kc.get(f"/groups/{top[0]['id']}/children")
    engineering = top[0]
    assert "subGroupCount" not in engineering
    platform = engineering["subGroups"][0]
    assert (platform["path"], platform["subGroups"][0]["path"]) == (
        "/engineering/platform",
        "/engineering/platform/sre",
    )
    assert children.status_code == 404


def test_before_17_everything_is_under_auth(clock: Clock) -> None:
    sim = KeycloakSim("16.1.1", clock=clock)
    with SimServer(sim.app) as server:
        assert sim.base_path == "/auth"
        assert Keycloak(server.url).token().status_code == 404
        kc = Keycloak(server.url + "/auth")
        kc.login()
        assert kc.json("/users/count") == 0


def test_members_are_direct_only_by_username_and_brief_on_request(sim: KeycloakSim, kc: Keycloak) -> None:
    seed_tree(sim)
    engineering = kc.json("/groups")[0]["id"]
    members = kc.json(f"/groups/{engineering}/members")
    assert names(members) == ["amara"]  # bruno is in platform, below it
    brief = kc.json(f"/groups/{engineering}/members", briefRepresentation="true")
    assert "requiredActions" not in brief[0] and "requiredActions" in members[0]


def test_members_default_to_100_per_page(sim: KeycloakSim, kc: Keycloak) -> None:
    sim.add_group("big")
    for n in range(105):
        sim.add_user(f"m{n:03d}", groups=["/big"])
    big = kc.json("/groups")[0]["id"]
    assert len(kc.json(f"/groups/{big}/members")) == 100
    assert names(kc.json(f"/groups/{big}/members", first=100)) == [f"m{n:03d}" for n in range(100, 105)]


def test_an_unknown_group_and_a_sibling_of_the_same_name(sim: KeycloakSim, kc: Keycloak) -> None:
    sim.add_group("eng")
    sim.add_group("platform", parent="/eng")
    sim.add_group("platform")  # the same name elsewhere in the tree is allowed
    with pytest.raises(ValueError, match="sibling"):
        sim.add_group("platform", parent="/eng")
    response = kc.get("/groups/no-such-id/members")
    assert (response.status_code, response.json()) == (404, {"error": "Could not find group by id"})


# --- faults, rate limits and seeding -------------------------------------------------------------


def test_a_page_fault_hits_only_that_page_and_answers_are_recorded(sim: KeycloakSim, kc: Keycloak) -> None:
    for n in range(4):
        sim.add_user(f"u{n}")
    sim.fail_page("/users", 2, 429, times=1, retry_after=3)
    assert kc.get("/users", first=0, max=2).status_code == 200
    throttled = kc.get("/users", first=2, max=2)
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")
    assert kc.get("/users", first=2, max=2).status_code == 200
    assert sim.answers("/users", 2) == [429, 200]
    assert sim.answers("/users", 0) == [200]


def test_a_proxy_rate_limit_answers_429_with_retry_after(clock: Clock) -> None:
    sim = KeycloakSim(clock=clock, rate_limit=(2, 1.0))
    with served(sim) as kc:
        kc.login()  # the token request spends one
        assert kc.get("/users/count").status_code == 200
        limited = kc.get("/users/count")
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
        assert limited.headers["Content-Type"].startswith("text/html")
        clock.now += 1
        assert kc.get("/users/count").status_code == 200


def test_a_page_cap_cuts_every_page(clock: Clock) -> None:
    sim = KeycloakSim(clock=clock, page_cap=3)
    for n in range(5):
        sim.add_user(f"u{n}")
    with served(sim) as kc:
        kc.login()
        assert len(kc.json("/users", max=100)) == 3


def test_seed_company_creates_the_people_and_their_groups(sim: KeycloakSim, kc: Keycloak) -> None:
    people = make_people(30)
    sim.seed_company(people)
    users = kc.json("/users", max=100)
    assert sorted(names(users)) == sorted(p["username"] for p in people)
    alice = next(u for u in users if u["username"] == people[0]["username"])
    assert alice["attributes"] == {"department": [people[0]["department"]]}
    groups = {g["name"]: g["id"] for g in kc.json("/groups")}
    assert set(groups) == {g for p in people for g in p["groups"]}
    jira = kc.json(f"/groups/{groups['atlassian-jira-users']}/members", max=100)
    assert sorted(names(jira)) == sorted(
        p["username"] for p in people if "atlassian-jira-users" in p["groups"]
    )
