"""The Entra ID simulator over a loopback socket, checked against idp-apis §2 with plain requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from scimsync.sim.company import make_people
from scimsync.sim.entra import CLIENT_ID, CLIENT_SECRET, TENANT_ID, EntraSim
from scimsync.sim.server import SimServer


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Graph:
    """A tiny client: a token from the simulator's token endpoint, then GETs under /v1.0."""

    def __init__(self, url: str, *, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> None:
        self.url = url
        self.session = requests.Session()
        answer = token_request(url, client_id=client_id, client_secret=secret)
        assert answer.status_code == 200, answer.text
        self.token = answer.json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def get(self, path: str, **params: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.url}/v1.0{path}"
        return self.session.get(url, params=params or None, timeout=10)

    def all(self, path: str, **params: Any) -> list[list[dict[str, Any]]]:
        """Follow @odata.nextLink verbatim; return the pages."""
        pages, url, query = [], path, params
        while True:
            response = self.get(url, **query)
            assert response.status_code == 200, response.text
            body = response.json()
            pages.append(body["value"])
            if "@odata.nextLink" not in body:
                return pages
            url, query = body["@odata.nextLink"], {}


def token_request(url: str, tenant: str = TENANT_ID, **overrides: str | None) -> requests.Response:
    form: dict[str, str | None] = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": "https://graph.microsoft.com/.default",
        **overrides,
    }
    data = {k: v for k, v in form.items() if v is not None}
    return requests.post(f"{url}/{tenant}/oauth2/v2.0/token", data=data, timeout=10)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> EntraSim:
    return EntraSim(clock=clock)


@pytest.fixture
def url(sim: EntraSim) -> Iterator[str]:
    with SimServer(sim.app) as server:
        yield server.url


@pytest.fixture
def graph(url: str) -> Graph:
    return Graph(url)


def error(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    assert set(body["innerError"]) == {"date", "request-id", "client-request-id"}
    return response.status_code, body["code"], body["message"]


# --- the token endpoint (§2.1) ----------------------------------------------------------


def test_client_credentials_give_a_bearer_token_of_the_configured_lifetime(clock: Clock) -> None:
    sim = EntraSim(token_lifetime=1200, clock=clock, domain="contoso.example")
    with SimServer(sim.app) as server:
        for tenant in (TENANT_ID, "contoso.example"):  # the tenant id or its domain
            answer = token_request(server.url, tenant=tenant, scope=f"{server.url}/.default")
            assert answer.status_code == 200
            body = answer.json()
            assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
            assert (body["token_type"], body["expires_in"]) == ("Bearer", 1200)
            assert "no-store" in answer.headers["Cache-Control"]


@pytest.mark.parametrize(
    ("overrides", "status", "error_code", "aadsts"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"client_secret": None}, 401, "invalid_client", 7000218),
        ({"client_id": "someone-else"}, 400, "unauthorized_client", 700016),
        ({"tenant": "other-tenant"}, 400, "invalid_request", 90002),
        ({"scope": None}, 400, "invalid_request", 900144),
        ({"scope": "https://graph.microsoft.com/User.Read.All"}, 400, "invalid_scope", 1002012),
        ({"scope": "https://vault.azure.net/.default"}, 400, "invalid_resource", 500011),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({"grant_type": None}, 400, "invalid_request", 900144),
    ],
)
def test_a_refused_token_request_has_the_identity_platform_error_shape(
    url: str, overrides: dict[str, str | None], status: int, error_code: str, aadsts: int
) -> None:
    tenant = str(overrides.pop("tenant", TENANT_ID))
    answer = token_request(url, tenant=tenant, **overrides)
    body = answer.json()
    assert (answer.status_code, body["error"], body["error_codes"]) == (status, error_code, [aadsts])
    # The description's lines end in CRLF, trace lines after the message.
    first, *rest = body["error_description"].split("\r\n")
    assert first.startswith(f"AADSTS{aadsts}: ")
    assert [line.split(":")[0] for line in rest] == ["Trace ID", "Correlation ID", "Timestamp"]


def test_the_token_endpoint_wants_a_form_and_a_post(url: str, sim: EntraSim) -> None:
    as_json = requests.post(
        f"{url}/{TENANT_ID}/oauth2/v2.0/token",
        json={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        timeout=10,
    )
    assert (as_json.status_code, as_json.json()["error_codes"]) == (400, [900144])
    assert requests.get(f"{url}/{TENANT_ID}/oauth2/v2.0/token", timeout=10).status_code == 405
    sim.expire_secret(CLIENT_ID)
    assert token_request(url).json()["error_codes"] == [7000222]


# --- tokens at Graph --------------------------------------------------------------------


def test_graph_refuses_a_missing_an_unknown_and_an_expired_token(url: str, clock: Clock) -> None:
    bare = requests.get(f"{url}/v1.0/users", timeout=10)
    assert error(bare) == (401, "InvalidAuthenticationToken", "Access token is empty.")
    assert "authorization_uri" in bare.headers["WWW-Authenticate"]
    forged = requests.get(f"{url}/v1.0/users", headers={"Authorization": "Bearer forged"}, timeout=10)
    assert error(forged)[:2] == (401, "InvalidAuthenticationToken")
    graph = Graph(url)
    clock.now += 3598
    assert graph.get("/users").status_code == 200
    clock.now += 1  # 3599 s: the token's lifetime is over
    assert error(graph.get("/users")) == (
        401,
        "InvalidAuthenticationToken",
        "Lifetime validation failed, the token is expired.",
    )
    assert Graph(url).get("/users").status_code == 200  # a new token works


def test_an_app_without_group_permission_reads_users_but_not_groups(url: str, sim: EntraSim) -> None:
    sim.add_app("users-only", "users-only-secret", roles={"User.Read.All"})
    graph = Graph(url, client_id="users-only", secret="users-only-secret")
    assert graph.get("/users").status_code == 200
    denied = ("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    assert error(graph.get("/groups")) == (403, *denied)
    assert error(graph.get(f"/groups/{sim.add_group('g')}/transitiveMembers")) == (403, *denied)
    assert error(Graph(url).session.post(f"{url}/v1.0/users", json={}, timeout=10)) == (403, *denied)


# --- lists and paging (§2.2, §2.3) --------------------------------------------------------


def seed_users(sim: EntraSim, count: int) -> set[str]:
    return {sim.add_user(f"u{n:04d}@acme.example", mail=f"u{n:04d}@acme.example") for n in range(count)}


def test_users_come_100_per_page_by_default_and_up_to_999_with_top(sim: EntraSim, graph: Graph) -> None:
    ids = seed_users(sim, 1050)
    default = graph.all("/users")
    assert [len(p) for p in default] == [100] * 10 + [50]
    largest = graph.all("/users", **{"$top": 999, "$select": "id,accountEnabled"})
    assert [len(p) for p in largest] == [999, 51]
    for pages in (default, largest):
        read = [u["id"] for page in pages for u in page]
        assert len(read) == len(set(read)) and set(read) == ids


def test_a_next_link_is_absolute_and_carries_every_option_and_a_skiptoken(
    sim: EntraSim, graph: Graph, url: str
) -> None:
    seed_users(sim, 3)
    body = graph.get("/users", **{"$top": 2, "$select": "id,userPrincipalName"}).json()
    link = urlsplit(body["@odata.nextLink"])
    assert f"{link.scheme}://{link.netloc}" == url and link.path == "/v1.0/users"
    query = parse_qs(link.query)
    assert query["$top"] == ["2"] and query["$select"] == ["id,userPrincipalName"]
    assert len(query["$skiptoken"]) == 1
    assert body["@odata.context"].endswith("$metadata#users(id,userPrincipalName)")
    last = graph.get(body["@odata.nextLink"]).json()
    assert len(last["value"]) == 1 and "@odata.nextLink" not in last


def test_the_simulator_may_serve_fewer_than_top(sim: EntraSim, graph: Graph) -> None:
    sim.graph.max_page_size = 7
    seed_users(sim, 20)
    assert [len(p) for p in graph.all("/users", **{"$top": 999})] == [7, 7, 6]


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"$top": "1000"}, 400, "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."),
        ({"$top": "0"}, 400, "Invalid page size specified: '0'. Must be between 1 and 999 inclusive."),
        ({"$top": "ten"}, 400, "Invalid value 'ten' for the query option '$top'."),
        ({"$skip": "10"}, 400, "'$skip' is not supported by the service."),
        (
            {"$filter": "accountEnabled eq true"},
            400,
            "The simulator does not implement the query option '$filter'.",
        ),
        ({"$skiptoken": "made-up"}, 400, "The specified page token value has expired"),
        (
            {"$select": "id,colour"},
            400,
            "Could not find a property named 'colour' on type 'microsoft.graph.user'.",
        ),
        ({"$select": "id,hireDate"}, 501, "This operation target is not yet supported."),
    ],
)
def test_query_options_graph_refuses_are_refused(
    graph: Graph, params: dict[str, str], status: int, message: str
) -> None:
    answer = graph.get("/users", **params)
    assert answer.status_code == status
    assert message in answer.json()["error"]["message"]


def test_a_repeated_option_is_refused(graph: Graph, url: str) -> None:
    answer = graph.session.get(f"{url}/v1.0/users?$top=5&$top=6", timeout=10)
    assert error(answer)[0] == 400 and "specified more than once" in error(answer)[2]


def test_a_skiptoken_is_valid_only_for_its_own_list(sim: EntraSim, graph: Graph) -> None:
    seed_users(sim, 3)
    link = graph.get("/users", **{"$top": 1}).json()["@odata.nextLink"]
    token = parse_qs(urlsplit(link).query)["$skiptoken"][0]
    assert error(graph.get("/groups", **{"$skiptoken": token}))[1] == "Directory_ExpiredPageToken"


def test_account_enabled_comes_only_when_selected(sim: EntraSim, graph: Graph) -> None:
    sim.add_user("ada@acme.example", mail=None, given_name="Ada", display_name="Ada L", enabled=False)
    plain = graph.get("/users").json()["value"][0]
    assert "accountEnabled" not in plain
    assert set(plain) == {
        "id",
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
    }
    assert plain["mail"] is None and "@odata.type" not in plain
    chosen = graph.get("/users", **{"$select": "accountEnabled,userType"}).json()["value"][0]
    assert chosen == {"id": plain["id"], "accountEnabled": False, "userType": "Member"}


def test_unknown_paths_answer_as_graph_does(graph: Graph, url: str) -> None:
    assert error(graph.get("/userz")) == (400, "BadRequest", "Resource not found for the segment 'userz'.")
    missing = graph.get("/groups/00000000-0000-4000-8000-000000000000/members")
    assert error(missing)[:2] == (404, "Request_ResourceNotFound")
    assert requests.get(f"{url}/v2.0/users", timeout=10).status_code == 404


# --- groups and members (§2.5) ----------------------------------------------------------


def test_transitive_members_are_flattened_typed_and_list_nested_groups(sim: EntraSim, graph: Graph) -> None:
    amara, bruno, chen = (sim.add_user(f"{n}@acme.example") for n in ("amara", "bruno", "chen"))
    sre = sim.add_group("sre", members=[chen])
    platform = sim.add_group("platform", members=[bruno, sre])
    engineering = sim.add_group("engineering", members=[amara, platform])
    sim.add_member(sre, engineering)  # a cycle
    laptop = sim.add_object("device", "laptop-7", groups=[sre])

    def members(group: str, kind: str) -> dict[str, str]:
        pages = graph.all(f"/groups/{group}/{kind}", **{"$select": "id"})
        return {m["id"]: m["@odata.type"] for page in pages for m in page}

    user, group, device = ("#microsoft.graph." + k for k in ("user", "group", "device"))
    assert members(engineering, "members") == {amara: user, platform: group}
    assert members(engineering, "transitiveMembers") == {
        amara: user,
        bruno: user,
        chen: user,
        platform: group,
        sre: group,
        laptop: device,
    }
    # The cycle ends, and a group is never listed as its own member.
    assert members(sre, "transitiveMembers") == {
        chen: user,
        laptop: device,
        engineering: group,
        amara: user,
        platform: group,
        bruno: user,
    }


def test_member_lists_page_like_every_list(sim: EntraSim, graph: Graph) -> None:
    ids = seed_users(sim, 2500)
    everyone = sim.add_group("everyone", members=sorted(ids))
    pages = graph.all(f"/groups/{everyone}/transitiveMembers", **{"$top": 999, "$select": "id"})
    assert [len(p) for p in pages] == [999, 999, 502]
    assert {m["id"] for page in pages for m in page} == ids


def test_a_deleted_user_leaves_users_and_groups(sim: EntraSim, graph: Graph) -> None:
    gone = sim.add_user("gone@acme.example")
    stays = sim.add_user("stays@acme.example")
    group = sim.add_group("team", members=[gone, stays])
    sim.delete(gone)
    assert [u["id"] for u in graph.get("/users").json()["value"]] == [stays]
    assert [m["id"] for m in graph.get(f"/groups/{group}/members").json()["value"]] == [stays]


def test_seed_company_creates_the_people_and_their_groups(sim: EntraSim, graph: Graph) -> None:
    people = make_people(30)
    ids = sim.seed_company(people)
    fields = "id,userPrincipalName,mail,displayName,accountEnabled,employeeId,department"
    users = {u["id"]: u for page in graph.all("/users", **{"$select": fields}) for u in page}
    for person in people:
        user = users[ids[person["username"]]]
        assert (user["userPrincipalName"], user["mail"], user["employeeId"]) == (
            person["email"],
            person["email"],
            person["id"],
        )
        assert user["displayName"] == f"{person['first_name']} {person['last_name']}"
        assert user["department"] == person["department"]
    for name in {g for p in people for g in p["groups"]}:
        listed = graph.get(f"/groups/{sim.group_id(name)}/members", **{"$select": "id"}).json()["value"]
        assert {m["id"] for m in listed} == {ids[p["username"]] for p in people if name in p["groups"]}


# --- throttling (§2.7) and faults ---------------------------------------------------------


def test_resource_units_are_counted_per_app_and_tenant_and_throttled_with_retry_after(clock: Clock) -> None:
    sim = EntraSim(rate_limit=10, clock=clock)  # 10 units per 10 s
    sim.add_app("other-app", "other-secret")
    seed_users(sim, 3)
    with SimServer(sim.app) as server:
        graph, other = Graph(server.url), Graph(server.url, client_id="other-app", secret="other-secret")
        costs = [graph.get("/users", **q).headers["x-ms-resource-unit"] for q in ({}, {"$select": "id"})]
        assert costs == ["2", "1"]  # GET users 2, $select -1
        assert graph.get("/users", **{"$select": "id", "$top": 5}).headers["x-ms-resource-unit"] == "1"
        spent = 4
        while spent < 10:
            answer = graph.get("/users")
            spent += 2
        assert answer.headers["x-ms-throttle-limit-percentage"] == "1.0"
        throttled = graph.get("/users")
        assert error(throttled) == (429, "TooManyRequests", "Too many requests. Please try again later.")
        assert throttled.headers["Retry-After"] == "2"  # two units at one unit per second
        assert throttled.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
        assert (
            throttled.headers["x-ms-throttle-scope"]
            == f"Tenant_Application/ReadWrite/{CLIENT_ID}/{TENANT_ID}"
        )
        assert other.get("/users").status_code == 200  # another app: its own bucket
        clock.now += 2
        assert graph.get("/users").status_code == 200


def test_a_page_fault_hits_only_that_page_and_is_recorded(sim: EntraSim, graph: Graph) -> None:
    seed_users(sim, 5)
    sim.fail_page("users", 2, 429, times=1, retry_after=7)
    first = graph.get("/users", **{"$top": 2}).json()
    throttled = graph.get(first["@odata.nextLink"])
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    assert graph.get(first["@odata.nextLink"]).status_code == 200
    assert sim.page_answers("users", 2) == [429, 200]
    assert sim.page_answers("users", 1) == [200]


def test_tokens_expire_after_the_pages_asked_for(sim: EntraSim, graph: Graph) -> None:
    seed_users(sim, 5)
    sim.expire_tokens_after(2)
    first = graph.get("/users", **{"$top": 2}).json()
    second = graph.get(first["@odata.nextLink"]).json()
    expired = graph.get(second["@odata.nextLink"])
    assert error(expired)[2] == "Lifetime validation failed, the token is expired."


def test_injected_faults_use_graph_bodies_and_are_logged(sim: EntraSim, graph: Graph) -> None:
    sim.faults.inject(503, path="/v1.0/users")
    answer = graph.get("/users")
    assert error(answer) == (503, "UnknownError", "Injected fault: HTTP 503")
    assert answer.headers["Content-Type"].startswith("application/json;odata.metadata=minimal")
    assert [(e.path, e.status) for e in sim.log.entries][-1] == ("/v1.0/users", 503)
