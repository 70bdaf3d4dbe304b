"""The Atlassian Cloud SCIM simulator over a loopback socket, checked against reference §3 with requests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from scimsync.sim.atlassian_cloud import AtlassianCloudSim
from scimsync.sim.faults import LoggedRequest
from scimsync.sim.server import SimServer

KEY = "sim-cloud-api-key"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
EXTERNAL = "urn:scim:schemas:extension:atlassian-external:1.0"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
NO_RESOURCE = "directory, group, or user does not exist"


class Cloud:
    """A tiny SCIM client: the directory base + path, the API key as a bearer token."""

    def __init__(self, root: str, base_path: str, key: str | None = KEY) -> None:
        self.root = root
        self.url = root + base_path
        self.session = requests.Session()
        if key is not None:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.url}{path}", timeout=10, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> dict[str, Any]:
        """Send a request, check its status, return the JSON body."""
        answer = self(method, path, **kwargs)
        assert answer.status_code == status, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def create_user(self, who: str = "amara.k", /, **extra: Any) -> dict[str, Any]:
        return self.ok("POST", "/Users", 201, json=user_body(who, **extra))

    def create_group(self, name: str = "team-alpha", members: tuple[str, ...] = ()) -> dict[str, Any]:
        body = {"schemas": [CORE_GROUP], "displayName": name, "members": [{"value": m} for m in members]}
        return self.ok("POST", "/Groups", 201, json=body)

    def patch(self, path: str, *ops: dict[str, Any], key: str = "Operations") -> requests.Response:
        return self("PATCH", path, json={"schemas": [PATCH_OP], key: list(ops)})


def user_body(who: str = "amara.k", /, **extra: Any) -> dict[str, Any]:
    """Return a valid POST body for ``who@example.test`` (``extra`` adds or replaces attributes)."""
    body = {
        "schemas": [CORE_USER],
        "userName": f"{who}@example.test",
        "emails": [{"value": f"{who}@example.test", "type": "work", "primary": True}],
        "displayName": who.title(),
    }
    return {**body, **extra}


def scim_error(answer: requests.Response, status: int, scim_type: str | None = None) -> str:
    """Check a §3.8 SCIM error (status a string) and return its detail."""
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/scim+json")
    body = answer.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert body.get("scimType") == scim_type
    detail: str = body["detail"]
    return detail


def failure(answer: requests.Response, status: int) -> str:
    """Check a §3.8 Failure body ``{error, traceId}`` and return its error."""
    assert answer.status_code == status
    body = answer.json()
    assert set(body) == {"error", "traceId"} and body["traceId"]
    error: str = body["error"]
    return error


@pytest.fixture
def sim() -> AtlassianCloudSim:
    return AtlassianCloudSim()


@pytest.fixture
def server(sim: AtlassianCloudSim) -> Iterator[SimServer]:
    with SimServer(sim.app) as running:
        yield running


@pytest.fixture
def cloud(sim: AtlassianCloudSim, server: SimServer) -> Iterator[Cloud]:
    client = Cloud(server.url, sim.base_path)
    yield client
    client.session.close()


@contextmanager
def serve(sim: AtlassianCloudSim) -> Iterator[Cloud]:
    """Serve another simulator than the fixture's and yield its client."""
    with SimServer(sim.app) as running:
        client = Cloud(running.url, sim.base_path)
        try:
            yield client
        finally:
            client.session.close()


# -- routing, authentication, content types ------------------------------------------------


def test_everything_lives_under_the_directory_base(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    assert sim.base_path == "/scim/directory/d0c5-sim-directory"
    assert cloud.ok("GET", "/Users")["totalResults"] == 0
    outside = cloud.session.get(f"{cloud.root}/scim/directory/other-directory/Users", timeout=10)
    assert scim_error(outside, 404) == NO_RESOURCE
    assert scim_error(cloud.session.get(f"{cloud.root}/Users", timeout=10), 404) == NO_RESOURCE
    assert "no endpoint" in scim_error(cloud("GET", "/Groupz"), 404)
    assert scim_error(cloud("GET", "/Users/"), 404)
    wrong = cloud("POST", "/ServiceProviderConfig", json={})
    assert scim_error(wrong, 405) and set(wrong.headers["Allow"].split(", ")) == {"GET", "HEAD"}
    with pytest.raises(ValueError, match="directory id"):
        AtlassianCloudSim(directory_id="a/b")


def test_only_the_directory_api_key_as_bearer_is_accepted(sim: AtlassianCloudSim, server: SimServer) -> None:
    anonymous = Cloud(server.url, sim.base_path, key=None)
    assert "Bearer" in failure(anonymous("GET", "/Users"), 401)
    assert failure(anonymous("GET", "/ServiceProviderConfig"), 401)  # [U] discovery needs the key too
    assert "not valid" in failure(Cloud(server.url, sim.base_path, key="wrong")("GET", "/Users"), 401)
    basic = anonymous("GET", "/Users", auth=("admin", KEY))
    assert failure(basic, 401) and "schemas" not in basic.json()
    assert failure(anonymous("GET", "/Users", headers={"Authorization": f"Token {KEY}"}), 401)
    lower = anonymous("GET", "/Users", headers={"Authorization": f"bearer {KEY}"})
    assert lower.status_code == 200
    assert failure(anonymous("POST", "/Users", json=user_body()), 401)
    assert sim.user("amara.k@example.test") is None
    other = AtlassianCloudSim(token="another-key")
    with SimServer(other.app) as running:
        assert Cloud(running.url, other.base_path, key="another-key")("GET", "/Users").status_code == 200
        assert failure(Cloud(running.url, other.base_path)("GET", "/Users"), 401)


def test_injected_faults_use_the_documented_bodies(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    sim.faults.inject(403, path=f"{sim.base_path}/Users")
    forbidden = cloud("GET", "/Users")
    assert failure(forbidden, 403) and forbidden.headers["Content-Type"].startswith("application/scim+json")
    sim.faults.inject(503, method="POST", count=2)
    for _ in range(2):
        assert scim_error(cloud("POST", "/Users", json=user_body()), 503) == "Injected fault: HTTP 503"
    assert sim.user("amara.k@example.test") is None  # injected answers change nothing
    sim.faults.inject(500)
    assert scim_error(cloud("GET", "/Groups"), 500)
    sim.faults.inject(401)
    assert failure(cloud("GET", "/Groups"), 401)
    sim.faults.rate_limit(1, retry_after=7)
    limited = cloud("GET", "/Users")
    assert scim_error(limited, 429) and limited.headers["Retry-After"] == "7"
    assert not [h for h in limited.headers if h.lower().startswith("x-ratelimit")]  # §3.9: none published


@pytest.mark.parametrize("content_type", ["application/scim+json", "application/json; charset=utf-8"])
def test_both_json_media_types_are_accepted(cloud: Cloud, content_type: str) -> None:
    answer = cloud("POST", "/Users", data=json.dumps(user_body()), headers={"Content-Type": content_type})
    assert answer.status_code == 201
    assert answer.headers["Content-Type"].split(";")[0] == "application/scim+json"


@pytest.mark.parametrize(
    ("data", "content_type", "status", "scim_type"),
    [
        ("{not json", "application/scim+json", 400, "invalidSyntax"),
        ('["a list"]', "application/json", 400, "invalidSyntax"),
        ('{"userName": "a", "userName": "b"}', "application/json", 400, "invalidSyntax"),
        ("", "application/json", 400, "invalidSyntax"),
        (b"\xff\xfe{", "application/json", 400, "invalidSyntax"),
        ("not json", "text/plain", 400, "invalidSyntax"),
        (json.dumps(user_body()), "text/plain", 415, None),
        (json.dumps(user_body()), None, 415, None),
    ],
)
def test_bodies_that_are_not_json_objects_are_refused(
    sim: AtlassianCloudSim,
    cloud: Cloud,
    data: Any,
    content_type: str | None,
    status: int,
    scim_type: str | None,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    scim_error(cloud("POST", "/Users", data=data, headers=headers), status, scim_type)
    assert sim.user("amara.k@example.test") is None


# -- discovery -----------------------------------------------------------------------------


def test_service_provider_config(cloud: Cloud) -> None:
    config = cloud.ok("GET", "/ServiceProviderConfig")
    assert config["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert config["patch"] == {"supported": True}
    assert config["bulk"]["supported"] is False
    assert config["filter"] == {"supported": True, "maxResults": 100}
    assert (config["sort"], config["etag"]) == ({"supported": False}, {"supported": False})
    assert [s["type"] for s in config["authenticationSchemes"]] == ["oauthbearertoken"]
    assert config["meta"]["location"] == f"{cloud.url}/ServiceProviderConfig"


def test_resource_types(cloud: Cloud) -> None:
    listed = cloud.ok("GET", "/ResourceTypes")
    assert listed["schemas"] == [LIST] and listed["totalResults"] == 2
    assert {r["id"]: r["endpoint"] for r in listed["Resources"]} == {"User": "/Users", "Group": "/Groups"}
    user = cloud.ok("GET", "/ResourceTypes/User")
    assert user["schema"] == CORE_USER
    assert [e["schema"] for e in user["schemaExtensions"]] == [ENTERPRISE, EXTERNAL]
    assert cloud.ok("GET", "/ResourceTypes/Group")["schema"] == CORE_GROUP
    scim_error(cloud("GET", "/ResourceTypes/Device"), 404)


def test_schemas_describe_what_is_enforced(cloud: Cloud) -> None:
    listed = cloud.ok("GET", "/Schemas")
    assert {s["id"] for s in listed["Resources"]} == {CORE_USER, CORE_GROUP, ENTERPRISE, EXTERNAL}
    user = {a["name"]: a for a in cloud.ok("GET", f"/Schemas/{CORE_USER}")["attributes"]}
    assert user["userName"]["required"] and user["userName"]["uniqueness"] == "server"
    assert user["emails"]["multiValued"] and user["emails"]["required"]
    assert user["groups"]["mutability"] == user["id"]["mutability"] == "readOnly"
    assert user["externalId"]["caseExact"] and {"timezone", "department"} <= set(user)
    group = {a["name"]: a for a in cloud.ok("GET", f"/Schemas/{CORE_GROUP}")["attributes"]}
    assert group["displayName"]["mutability"] == "immutable" and group["displayName"]["required"]
    assert [a["name"] for a in group["members"]["subAttributes"]] == ["value", "$ref", "display", "type"]
    enterprise = cloud.ok("GET", f"/Schemas/{ENTERPRISE}")
    assert {a["mutability"] for a in enterprise["attributes"]} == {"readOnly"}
    scim_error(cloud("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Device"), 404)


# -- creating users ------------------------------------------------------------------------


def test_create_user_answers_the_full_resource(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    body = user_body(
        externalId="00u1ABcd",
        name={"givenName": "Amara", "familyName": "K", "middleName": None},
        title="Engineer",
        department="Platform",
        organization="Acme",
        timezone="Europe/Warsaw",
        phoneNumbers=[{"value": "+48 1", "type": "work", "primary": True}],
        id="chosen-by-client",
        meta={"resourceType": "User"},
        groups=[{"value": "x"}],
    )
    answer = cloud("POST", "/Users", json=body)
    assert answer.status_code == 201
    user = answer.json()
    assert str(uuid.UUID(user["id"])) == user["id"]  # read-only id in the body: ignored
    assert answer.headers["Location"] == user["meta"]["location"] == f"{cloud.url}/Users/{user['id']}"
    assert user["schemas"] == [CORE_USER, ENTERPRISE, EXTERNAL]
    assert (user["active"], user["externalId"], user["groups"]) == (True, "00u1ABcd", [])
    assert user["emails"] == body["emails"]
    assert user["name"] == {"givenName": "Amara", "familyName": "K"}  # null: unassigned
    assert user[ENTERPRISE] == {"organization": "Acme", "department": "Platform"}
    assert EXTERNAL not in user  # no managed account was claimed for this email
    assert user["meta"]["resourceType"] == "User"
    assert user["meta"]["created"] == user["meta"]["lastModified"]
    assert user["meta"]["created"].endswith("Z")
    assert cloud.ok("GET", f"/Users/{user['id']}") == user
    assert sim.user(user["id"]) == {
        "id": user["id"],
        "userName": "amara.k@example.test",
        "email": "amara.k@example.test",
        "display_name": "Amara.K",
        "active": True,
        "external_id": "00u1ABcd",
        "groups": [],
    }
    inactive = cloud.create_user("ines", active=False)
    assert inactive["active"] is False


@pytest.mark.parametrize(
    ("change", "scim_type", "detail"),
    [
        ({"userName": None}, "invalidValue", "userName is required"),
        ({"userName": "  "}, "invalidValue", "userName is required"),
        ({"emails": None}, "invalidValue", "emails is required"),
        ({"emails": []}, "invalidValue", "emails is required"),
        ({"emails": [{"value": "a@example.test"}]}, "invalidValue", "primary"),
        (
            {
                "emails": [
                    {"value": "a@example.test", "primary": True},
                    {"value": "b@acme.test", "primary": True},
                ]
            },
            "invalidValue",
            "primary",
        ),
        ({"emails": [{"value": "not-an-email", "primary": True}]}, "invalidValue", "not an email"),
        ({"emails": [{"value": "a@corp.example", "primary": True}]}, "invalidValue", "not verified"),
        (
            {"emails": [{"value": "a@example.test", "primary": True}, {"value": "a@sub.acme.test"}]},
            "invalidValue",
            "not verified",
        ),
        ({"emails": {"value": "a@example.test"}}, "invalidValue", "JSON array"),
        ({"emails": [{"value": "a@example.test", "primary": "true"}]}, "invalidValue", "true or false"),
        (
            {"emails": [{"value": "a@example.test", "primary": True, "display": "A"}]},
            "invalidSyntax",
            "display",
        ),
        ({"active": "false"}, "invalidValue", "true or false"),
        ({"displayName": 7}, "invalidValue", "string"),
        ({"name": {"given": "A"}}, "invalidSyntax", "given"),
        ({"username": "x@example.test"}, "invalidSyntax", "unknown attribute 'username'"),
        ({"password": "S3cret"}, "invalidSyntax", "unknown attribute"),
        ({"schemas": []}, "invalidSyntax", CORE_USER),
        ({"schemas": "x"}, "invalidSyntax", "schemas"),
        ({"schemas": [CORE_USER, "urn:example:custom"]}, "invalidValue", "urn:example:custom"),
        (
            {"phoneNumbers": [{"value": "1", "primary": True}, {"value": "2", "primary": True}]},
            "invalidValue",
            "phone",
        ),
    ],
)
def test_create_user_refuses_invalid_users(
    sim: AtlassianCloudSim, cloud: Cloud, change: dict[str, Any], scim_type: str, detail: str
) -> None:
    body = {k: v for k, v in {**user_body(), **change}.items() if v is not None}
    assert detail in scim_error(cloud("POST", "/Users", json=body), 400, scim_type)
    assert cloud.ok("GET", "/Users")["totalResults"] == 0


def test_verified_domains_compare_case_insensitively() -> None:
    with serve(AtlassianCloudSim(verified_domains=("Corp.Example",))) as cloud:
        ok = user_body(emails=[{"value": "a@CORP.example", "primary": True}])
        assert cloud("POST", "/Users", json=ok).status_code == 201
        assert "not verified" in scim_error(cloud("POST", "/Users", json=user_body("b")), 400, "invalidValue")


def test_user_name_is_unique_in_any_case(cloud: Cloud) -> None:
    cloud.create_user("amara.k")
    clash = user_body("x", userName="AMARA.K@example.test")
    assert "already exists" in scim_error(cloud("POST", "/Users", json=clash), 409, "uniqueness")
    assert cloud.ok("GET", "/Users")["totalResults"] == 1


def test_a_claimed_managed_account_is_linked_once(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    sim.claim_managed_account("Amara.K@Example.test")
    linked = cloud.create_user("amara.k")
    account = linked[EXTERNAL]["atlassianAccountId"]
    assert account.startswith("712020:")
    again = user_body("amara.k", userName="amara.other@example.test")
    detail = scim_error(cloud("POST", "/Users", json=again), 409, "uniqueness")
    assert "managed account" in detail
    # Another address is no conflict and gets no link; moving onto the linked address is one.
    other = cloud.create_user("ines")
    assert EXTERNAL not in other
    move = [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "amara.k@example.test"}]
    assert "managed account" in scim_error(cloud.patch(f"/Users/{other['id']}", *move), 409, "uniqueness")
    assert cloud.ok("GET", f"/Users/{linked['id']}")[EXTERNAL]["atlassianAccountId"] == account


def test_seeded_managed_accounts_link_and_conflict(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    user_id = sim.add_user("amara.k", "amara.k@example.test", "Amara", managed_account=True)
    assert cloud.ok("GET", f"/Users/{user_id}")[EXTERNAL]["atlassianAccountId"]
    with pytest.raises(ValueError, match="managed account"):
        sim.add_user("amara.2", "amara.k@example.test", "Amara 2")
    assert "managed account" in scim_error(
        cloud("POST", "/Users", json=user_body("amara.k", userName="b")), 409, "uniqueness"
    )


def test_max_users_is_a_400_that_creates_nothing() -> None:
    sim = AtlassianCloudSim(max_users=2)
    with serve(sim) as cloud:
        cloud.create_user("a")
        sim.add_user("b", "b@acme.test", "B")
        assert "limit of 2 users" in scim_error(cloud("POST", "/Users", json=user_body("c")), 400)
        with pytest.raises(ValueError, match="limit"):
            sim.add_user("d", "d@acme.test", "D")
        assert cloud.ok("GET", "/Users")["totalResults"] == 2


# -- listing, paging, filters, attributes ------------------------------------------------------


def seed(sim: AtlassianCloudSim, count: int) -> list[str]:
    """Add ``count`` users u000..; return their ids in creation order."""
    return [sim.add_user(f"u{n:03d}", f"u{n:03d}@acme.test", f"User {n}") for n in range(count)]


def test_paging_is_one_based_and_capped_at_100(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    ids = seed(sim, 250)
    first = cloud.ok("GET", "/Users")
    assert first["schemas"] == [LIST]
    assert (first["totalResults"], first["startIndex"], first["itemsPerPage"]) == (250, 1, 100)
    assert [u["id"] for u in first["Resources"]] == ids[:100]
    big = cloud.ok("GET", "/Users", params={"startIndex": 101, "count": 500})
    assert (big["startIndex"], big["itemsPerPage"]) == (101, 100)
    assert [u["id"] for u in big["Resources"]] == ids[100:200]
    last = cloud.ok("GET", "/Users", params={"startIndex": 201, "count": 100})
    assert last["itemsPerPage"] == 50 and [u["id"] for u in last["Resources"]] == ids[200:]
    small = cloud.ok("GET", "/Users", params={"startIndex": 2, "count": 3})
    assert [u["id"] for u in small["Resources"]] == ids[1:4]
    for start in (0, -5):  # RFC 7644 §3.4.2.4: below 1 means 1
        low = cloud.ok("GET", "/Users", params={"startIndex": start, "count": 2})
        assert low["startIndex"] == 1 and [u["id"] for u in low["Resources"]] == ids[:2]
    for count in (0, -3):  # a negative count means 0
        none = cloud.ok("GET", "/Users", params={"count": count})
        assert (none["totalResults"], none["itemsPerPage"], none["Resources"]) == (250, 0, [])
    beyond = cloud.ok("GET", "/Users", params={"startIndex": 251})
    assert (beyond["totalResults"], beyond["itemsPerPage"], beyond["Resources"]) == (250, 0, [])


def test_walking_every_page_returns_each_user_once_in_creation_order(
    sim: AtlassianCloudSim, cloud: Cloud
) -> None:
    ids = seed(sim, 230)
    seen: list[str] = []
    start = 1
    while True:
        page = cloud.ok("GET", "/Users", params={"startIndex": start, "count": 100})
        seen += [u["id"] for u in page["Resources"]]
        start += page["itemsPerPage"]
        if start > page["totalResults"]:
            break
    assert seen == ids


def test_an_empty_list_has_no_resources_member(cloud: Cloud) -> None:
    # RFC 7644 §3.4.2: Resources is required only when totalResults is not 0.
    assert cloud.ok("GET", "/Groups") == {
        "schemas": [LIST],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
    }


@pytest.mark.parametrize(
    "params", [{"startIndex": "one"}, {"count": "1.5"}, {"sortBy": "userName"}, {"startindex": "2"}]
)
def test_bad_or_unknown_query_parameters_are_400(cloud: Cloud, params: dict[str, str]) -> None:
    scim_error(cloud("GET", "/Users", params=params), 400, "invalidValue")


def test_user_filters_that_are_accepted(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    amara = sim.add_user("Amara.K@example.test", "amara.k@example.test", "Amara", external_id="00uAbC")
    quoted = sim.add_user('o"brien\\x@acme.test', "obrien@acme.test", "O'Brien", external_id='ext"1')
    seed(sim, 3)

    def found(expression: str) -> list[str]:
        page = cloud.ok("GET", "/Users", params={"filter": expression})
        resources = page.get("Resources", [])  # left out when nothing matches
        assert page["totalResults"] == len(resources)
        return [u["id"] for u in resources]

    assert found('userName eq "amara.k@example.test"') == [amara]  # [U] case-insensitive
    assert found('userName eq "AMARA.K@EXAMPLE.TEST"') == [amara]
    assert found('USERNAME EQ "amara.k@example.test"') == [amara]  # names and operator: any case
    assert found('externalId eq "00uAbC"') == [amara]
    assert found('externalId eq "00uabc"') == []  # §3.3: externalId is case-sensitive
    assert found('userName eq "o\\"brien\\\\x@acme.test"') == [quoted]  # \" and \\ escapes
    assert found('externalId eq "ext\\"1"') == [quoted]
    assert found('userName eq "nobody@acme.test"') == []
    page = cloud.ok("GET", "/Users", params={"filter": 'userName eq "U001"', "count": 0})
    assert (page["totalResults"], page["itemsPerPage"]) == (1, 0)


USER_FILTERS_REFUSED = [
    'userName co "amara"',
    'userName sw "amara"',
    'userName ne "amara"',
    "userName pr",
    'userName eq "a@acme.test" and externalId eq "x"',
    'userName eq "a@acme.test" or userName eq "b@acme.test"',
    'not (userName eq "a@acme.test")',
    '(userName eq "a@acme.test")',
    'emails.value eq "a@acme.test"',
    'emails[value eq "a@acme.test"]',
    'displayName eq "Amara"',
    'id eq "x"',
    'urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a@acme.test"',
    "userName eq a@acme.test",
    "userName eq 'a@acme.test'",
    'userName  eq "a@acme.test"',
    'userName eq "a@acme.test" ',
    'userName eq "a@acme.test',
    'userName eq "a\\q"',
    "userName eq true",
    "externalId eq 12",
    "userName eq null",
    "",
]


@pytest.mark.parametrize("expression", USER_FILTERS_REFUSED)
def test_user_filters_that_are_refused(sim: AtlassianCloudSim, cloud: Cloud, expression: str) -> None:
    sim.add_user("a", "a@acme.test", "A")
    scim_error(cloud("GET", "/Users", params={"filter": expression}), 400, "invalidFilter")


def test_group_filters(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    alpha = sim.add_group("Team-Alpha")
    sim.add_group("team-beta")
    page = cloud.ok("GET", "/Groups", params={"filter": 'displayName eq "team-alpha"'})
    assert [g["id"] for g in page["Resources"]] == [alpha]  # [U] case-insensitive, as uniqueness
    for expression in ('userName eq "a"', 'displayName co "team"', 'members eq "x"', 'externalId eq "x"'):
        scim_error(cloud("GET", "/Groups", params={"filter": expression}), 400, "invalidFilter")


def test_attributes_and_excluded_attributes(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    user_id = cloud.create_user("amara.k", name={"givenName": "Amara", "familyName": "K"}, department="Ops")[
        "id"
    ]
    page = cloud.ok("GET", "/Users", params={"attributes": "userName,emails.value,Name.givenName"})
    assert page["Resources"] == [
        {
            "schemas": [CORE_USER, ENTERPRISE, EXTERNAL],
            "id": user_id,
            "userName": "amara.k@example.test",
            "name": {"givenName": "Amara"},
            "emails": [{"value": "amara.k@example.test"}],
        }
    ]
    one = cloud.ok("GET", f"/Users/{user_id}", params={"excludedAttributes": f"groups,meta,id,{ENTERPRISE}"})
    assert "groups" not in one and "meta" not in one and ENTERPRISE not in one
    assert one["id"] == user_id  # returned "always"
    assert cloud.ok("GET", f"/Users/{user_id}", params={"attributes": f"{ENTERPRISE}:department"})[
        ENTERPRISE
    ] == {"department": "Ops"}
    both = {"attributes": "userName", "excludedAttributes": "emails"}
    assert "mutually exclusive" in scim_error(cloud("GET", "/Users", params=both), 400, "invalidValue")
    for bad in ("nickname.first", "password", "emails.kind", ""):
        scim_error(cloud("GET", "/Users", params={"attributes": bad}), 400, "invalidValue")
    sim.add_group("team", members=("amara.k@example.test",))
    groups = cloud.ok("GET", "/Groups", params={"excludedAttributes": "members"})["Resources"]
    assert len(groups) == 1 and "members" not in groups[0] and groups[0]["displayName"] == "team"
    assert len(cloud.ok("GET", "/Groups")["Resources"][0]["members"]) == 1


# -- PUT, PATCH, DELETE of users -------------------------------------------------------------


def test_put_replaces_and_clears_what_it_does_not_send(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    created = cloud.create_user(
        "amara.k", externalId="00u1", nickName="Am", name={"givenName": "Amara"}, title="Eng", active=False
    )
    body = user_body("amara.k", userName="amara.kowalski@example.test", id="ignored", groups=[])
    del body["displayName"]
    replaced = cloud.ok("PUT", f"/Users/{created['id']}", json=body)
    assert replaced["id"] == created["id"] and replaced["userName"] == "amara.kowalski@example.test"
    for cleared in ("externalId", "nickName", "name", "title", "displayName"):
        assert cleared not in replaced
    assert replaced["active"] is True  # §3.5: cleared, and active defaults to true [U]
    assert replaced["meta"]["created"] == created["meta"]["created"]
    assert cloud.ok("GET", f"/Users/{created['id']}") == replaced
    assert sim.user("amara.k@example.test") is None and sim.user("AMARA.KOWALSKI@example.test")


def test_put_checks_like_a_create(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    first, second = cloud.create_user("a"), cloud.create_user("b")
    taken = user_body("b", userName="A@example.test")
    scim_error(cloud("PUT", f"/Users/{second['id']}", json=taken), 409, "uniqueness")
    scim_error(cloud("PUT", f"/Users/{second['id']}", json=user_body("b", emails=[])), 400, "invalidValue")
    assert cloud.ok("PUT", f"/Users/{first['id']}", json=user_body("a"))["userName"] == "a@example.test"
    assert scim_error(cloud("PUT", f"/Users/{first['id'].upper()}", json=user_body("a")), 404) == NO_RESOURCE


@pytest.mark.parametrize("key", ["Operations", "operations"])
def test_patch_accepts_both_spellings_of_operations(cloud: Cloud, key: str) -> None:
    user = cloud.create_user()
    answer = cloud.patch(f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": False}, key=key)
    assert answer.status_code == 200 and answer.json()["active"] is False
    assert answer.json()["userName"] == user["userName"]  # the full resource


def test_patch_paths(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    user = cloud.create_user(name={"givenName": "Amara", "familyName": "K"}, externalId="old")
    path = f"/Users/{user['id']}"
    ops = [
        {"op": "replace", "path": "displayName", "value": "Amara Kowalski"},
        {"op": "replace", "path": "name.givenName", "value": "Amra"},
        {"op": "add", "path": "nickName", "value": "Am"},
        {"op": "replace", "path": 'emails[type eq "WORK"].value', "value": "amara.kowalski@acme.test"},
        {"op": "replace", "path": "userName", "value": "amara.kowalski@acme.test"},
        {"op": "replace", "path": "externalId", "value": "00uNEW"},
        {"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:title", "value": "Lead"},
    ]
    patched = cloud.ok("PATCH", path, json={"schemas": [PATCH_OP], "Operations": ops})
    assert patched["displayName"] == "Amara Kowalski" and patched["nickName"] == "Am"
    assert patched["name"] == {"givenName": "Amra", "familyName": "K"}
    assert patched["emails"] == [{"value": "amara.kowalski@acme.test", "type": "work", "primary": True}]
    assert (patched["userName"], patched["externalId"], patched["title"]) == (
        "amara.kowalski@acme.test",
        "00uNEW",
        "Lead",
    )
    removed = cloud.patch(
        path,
        {"op": "remove", "path": "displayName"},
        {"op": "remove", "path": "name.familyName"},
        {"op": "remove", "path": "externalId"},
    ).json()
    assert (
        "displayName" not in removed
        and "externalId" not in removed
        and removed["name"] == {"givenName": "Amra"}
    )
    state = sim.user(user["id"])
    assert state is not None and state["external_id"] is None


def test_patch_without_path_and_multi_valued_forms(cloud: Cloud) -> None:
    user = cloud.create_user(name={"givenName": "Amara"})
    path = f"/Users/{user['id']}"
    value = {"active": False, "displayName": "A K", "name": {"familyName": "K"}}
    patched = cloud.patch(path, {"op": "replace", "value": value}).json()
    assert (patched["active"], patched["displayName"]) == (False, "A K")
    assert patched["name"] == {"givenName": "Amara", "familyName": "K"}  # RFC 7644 §3.5.2.3: merged
    added = cloud.patch(
        path, {"op": "add", "path": "emails", "value": [{"value": "ak@acme.test", "type": "home"}]}
    )
    assert [e["value"] for e in added.json()["emails"]] == ["amara.k@example.test", "ak@acme.test"]
    dropped = cloud.patch(path, {"op": "remove", "path": 'emails[value eq "ak@acme.test"]'}).json()
    assert [e["value"] for e in dropped["emails"]] == ["amara.k@example.test"]
    swapped = cloud.patch(
        path,
        {"op": "replace", "path": "emails", "value": [{"value": "amara@acme.test", "primary": True}]},
    ).json()
    assert swapped["emails"] == [{"value": "amara@acme.test", "primary": True}]
    reset = cloud.patch(path, {"op": "remove", "path": "active"}).json()
    assert reset["active"] is True  # unassigned active means true (§3.3)


@pytest.mark.parametrize(
    ("ops", "scim_type"),
    [
        ([{"op": "replace", "path": "nickname", "value": "x"}], "invalidPath"),
        ([{"op": "replace", "path": "emails.value", "value": "x@acme.test"}], "invalidPath"),
        ([{"op": "replace", "path": "name.nick", "value": "x"}], "invalidPath"),
        ([{"op": "replace", "path": 'emails[type eq "work"].label', "value": "x"}], "invalidPath"),
        ([{"op": "replace", "path": 'emails[type eq "home"].value', "value": "x@acme.test"}], "noTarget"),
        ([{"op": "replace", "path": 'emails[type co "w"].value', "value": "x@acme.test"}], "invalidFilter"),
        ([{"op": "replace", "path": 'displayName[type eq "x"]', "value": "x"}], "invalidFilter"),
        ([{"op": "replace", "path": "a b", "value": "x"}], "invalidPath"),
        ([{"op": "remove"}], "noTarget"),
        ([{"op": "replace", "value": "x"}], "invalidValue"),
        ([{"op": "replace", "value": {"name.givenName": "x"}}], "invalidPath"),
        ([{"op": "replace", "path": "groups", "value": []}], "mutability"),
        ([{"op": "replace", "path": "id", "value": "x"}], "mutability"),
        ([{"op": "replace", "value": {"meta": {}}}], "mutability"),
        ([{"op": "replace", "path": f"{ENTERPRISE}:department", "value": "x"}], "mutability"),
        ([{"op": "replace", "path": "active", "value": "false"}], "invalidValue"),
        ([{"op": "replace", "path": "active"}], "invalidValue"),
        ([{"op": "Replace", "path": "active", "value": False}], "invalidSyntax"),
        ([{"op": "replace", "path": "active", "value": False, "extra": 1}], "invalidSyntax"),
        ([{"op": "remove", "path": "emails"}], "invalidValue"),
        ([{"op": "remove", "path": "userName"}], "invalidValue"),
        (
            [{"op": "add", "path": "emails", "value": [{"value": "b@acme.test", "primary": True}]}],
            "invalidValue",
        ),
        (
            [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@corp.example"}],
            "invalidValue",
        ),
        ([], "invalidSyntax"),
        # Atomic: the first operation is valid, the second is not; nothing changes.
        (
            [
                {"op": "replace", "path": "active", "value": False},
                {"op": "replace", "path": "bogus", "value": 1},
            ],
            "invalidPath",
        ),
    ],
)
def test_patch_refusals_change_nothing(
    sim: AtlassianCloudSim, cloud: Cloud, ops: list[dict[str, Any]], scim_type: str
) -> None:
    user = cloud.create_user()
    scim_error(cloud.patch(f"/Users/{user['id']}", *ops), 400, scim_type)
    assert cloud.ok("GET", f"/Users/{user['id']}") == user


@pytest.mark.parametrize(
    "body",
    [
        {"Operations": [{"op": "replace", "path": "active", "value": False}]},
        {"schemas": [PATCH_OP], "Operations": [], "operations": []},
        {"schemas": [PATCH_OP]},
        {"schemas": [PATCH_OP], "Operations": {"op": "replace"}},
        {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}], "x": 1},
        {"schemas": [CORE_USER], "Operations": [{"op": "replace", "path": "active", "value": False}]},
    ],
)
def test_patch_bodies_that_are_not_patch_ops(cloud: Cloud, body: dict[str, Any]) -> None:
    user = cloud.create_user()
    scim_error(cloud("PATCH", f"/Users/{user['id']}", json=body), 400, "invalidSyntax")
    assert cloud.ok("GET", f"/Users/{user['id']}")["active"] is True


def test_delete_deactivates_and_hides_by_default(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    user = cloud.create_user()
    sim.add_group("team", members=("amara.k@example.test",))
    answer = cloud("DELETE", f"/Users/{user['id']}")
    assert answer.status_code == 204 and answer.content == b""
    path = f"/Users/{user['id']}"
    for method, kwargs in (("GET", {}), ("PUT", {"json": user_body()}), ("DELETE", {})):
        assert scim_error(cloud(method, path, **kwargs), 404) == NO_RESOURCE
    scim_error(cloud.patch(path, {"op": "replace", "path": "active", "value": True}), 404)
    assert cloud.ok("GET", "/Users")["totalResults"] == 0
    assert (
        cloud.ok("GET", "/Users", params={"filter": 'userName eq "amara.k@example.test"'})["totalResults"]
        == 0
    )
    state = sim.user(user["id"])
    assert state is not None and state["active"] is False and state["groups"] == []
    assert sim.members("team") == set()
    # [U] the deactivated record keeps its userName: a new POST is a conflict.
    scim_error(cloud("POST", "/Users", json=user_body()), 409, "uniqueness")


def test_delete_removes_the_record_when_configured() -> None:
    sim = AtlassianCloudSim(delete_removes=True)
    sim.claim_managed_account("amara.k@example.test")
    with serve(sim) as cloud:
        user = cloud.create_user()
        assert cloud("DELETE", f"/Users/{user['id']}").status_code == 204
        assert sim.user(user["id"]) is None and sim.user("amara.k@example.test") is None
        scim_error(cloud("GET", f"/Users/{user['id']}"), 404)
        again = cloud.create_user()
        assert again["id"] != user["id"]
        # §3.6: the SCIM record is gone, the Atlassian account is not: the new user links to it.
        assert again[EXTERNAL] == user[EXTERNAL]
        scim_error(cloud("DELETE", f"/Users/{uuid.uuid4()}"), 404)


# -- groups --------------------------------------------------------------------------------


def test_create_and_read_groups(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    a, b = cloud.create_user("a")["id"], cloud.create_user("b")["id"]
    answer = cloud(
        "POST",
        "/Groups",
        json={
            "schemas": [CORE_GROUP],
            "displayName": "Team-Alpha",
            "externalId": "g1",
            "members": [{"value": a}, {"value": b, "display": "B"}],
        },
    )
    assert answer.status_code == 201
    group = answer.json()
    assert answer.headers["Location"] == group["meta"]["location"] == f"{cloud.url}/Groups/{group['id']}"
    assert group["schemas"] == [CORE_GROUP] and group["externalId"] == "g1"
    assert [(m["value"], m["type"]) for m in group["members"]] == [(a, "User"), (b, "User")]
    assert group["members"][0]["$ref"] == f"{cloud.url}/Users/{a}"
    assert cloud.ok("GET", f"/Groups/{group['id']}") == group
    assert cloud.ok("GET", "/Groups")["Resources"] == [group]
    assert cloud.ok("GET", f"/Users/{a}")["groups"] == [
        {"value": group["id"], "display": "Team-Alpha", "type": "direct", "$ref": group["meta"]["location"]}
    ]
    assert sim.members("team-alpha") == {"a@example.test", "b@example.test"}
    assert sim.group_names() == {"Team-Alpha"}


@pytest.mark.parametrize(
    ("body", "status", "scim_type"),
    [
        ({"schemas": [CORE_GROUP], "displayName": "TEAM-alpha"}, 409, "uniqueness"),
        ({"schemas": [CORE_GROUP]}, 400, "invalidValue"),
        ({"schemas": [CORE_GROUP], "displayName": ""}, 400, "invalidValue"),
        ({"schemas": [CORE_USER], "displayName": "x"}, 400, "invalidSyntax"),
        ({"schemas": [CORE_GROUP], "displayName": "x", "owner": "me"}, 400, "invalidSyntax"),
        (
            {"schemas": [CORE_GROUP], "displayName": "x", "members": [{"value": "no-such-user"}]},
            400,
            "invalidValue",
        ),
        ({"schemas": [CORE_GROUP], "displayName": "x", "members": [{"display": "A"}]}, 400, "invalidValue"),
        ({"schemas": [CORE_GROUP], "displayName": "x", "members": "a"}, 400, "invalidValue"),
    ],
)
def test_create_group_refusals(
    sim: AtlassianCloudSim, cloud: Cloud, body: dict[str, Any], status: int, scim_type: str
) -> None:
    sim.add_group("team-alpha")
    scim_error(cloud("POST", "/Groups", json=body), status, scim_type)
    assert sim.group_names() == {"team-alpha"}


def test_group_name_is_immutable(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    group = cloud.create_group("team-alpha")
    path = f"/Groups/{group['id']}"
    for name in ("team-beta", "Team-Alpha"):
        body = {"schemas": [CORE_GROUP], "displayName": name}
        scim_error(cloud("PUT", path, json=body), 400, "mutability")
        scim_error(
            cloud.patch(path, {"op": "replace", "path": "displayName", "value": name}), 400, "mutability"
        )
        scim_error(cloud.patch(path, {"op": "replace", "value": {"displayName": name}}), 400, "mutability")
    scim_error(cloud.patch(path, {"op": "remove", "path": "displayName"}), 400, "mutability")
    same = cloud.patch(path, {"op": "replace", "path": "displayName", "value": "team-alpha"})
    assert same.status_code == 200 and same.json()["displayName"] == "team-alpha"
    assert sim.group_names() == {"team-alpha"}


def test_group_patch_membership_forms(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    a, b, c = (cloud.create_user(n)["id"] for n in ("a", "b", "c"))
    group = cloud.create_group("team", members=(a,))
    path = f"/Groups/{group['id']}"
    add = {
        "op": "add",
        "path": "members",
        "value": [{"value": b, "display": "B"}, {"value": a}, {"value": c}],
    }
    answer = cloud.patch(path, add)
    assert answer.status_code == 200  # the full group with members (§3.7)
    assert [m["value"] for m in answer.json()["members"]] == [a, b, c]  # adding a member again: no-op
    by_filter = cloud.patch(path, {"op": "remove", "path": f'members[value eq "{b}"]'}).json()
    assert [m["value"] for m in by_filter["members"]] == [a, c]
    by_value = cloud.patch(
        path, {"op": "remove", "path": "members", "value": [{"value": a}, {"value": b}]}
    ).json()
    assert [m["value"] for m in by_value["members"]] == [c]
    replaced = cloud.patch(path, {"op": "replace", "path": "members", "value": [{"value": a}]}).json()
    assert [m["value"] for m in replaced["members"]] == [a]
    external = cloud.patch(
        path, {"op": "replace", "value": {"externalId": "g-1", "members": [{"value": b}]}}
    ).json()
    assert external["externalId"] == "g-1" and [m["value"] for m in external["members"]] == [b]
    emptied = cloud.patch(path, {"op": "remove", "path": "members"}, key="operations").json()
    assert emptied["members"] == [] and sim.members("team") == set()


@pytest.mark.parametrize(
    "op",
    [
        {"op": "add", "path": "members", "value": [{"value": "MISSING"}]},
        {"op": "remove", "path": 'members[value eq "MISSING"]'},
        {"op": "remove", "path": "members", "value": [{"value": "MISSING"}]},
        {"op": "replace", "path": "members", "value": [{"value": "MISSING"}]},
    ],
)
def test_group_patch_with_an_unknown_user_is_404_and_atomic(
    sim: AtlassianCloudSim, cloud: Cloud, op: dict[str, Any]
) -> None:
    a, b = cloud.create_user("a")["id"], cloud.create_user("b")["id"]
    group = cloud.create_group("team", members=(a,))
    first = {"op": "add", "path": "members", "value": [{"value": b}]}
    assert scim_error(cloud.patch(f"/Groups/{group['id']}", first, op), 404) == NO_RESOURCE
    assert sim.members("team") == {"a@example.test"}


@pytest.mark.parametrize(
    ("op", "scim_type"),
    [
        ({"op": "add", "path": 'members[value eq "x"]', "value": [{"value": "x"}]}, "invalidPath"),
        ({"op": "remove", "path": 'members[display eq "A"]'}, "invalidPath"),
        ({"op": "replace", "path": "owners", "value": []}, "invalidPath"),
        ({"op": "replace", "path": "members.value", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": "id", "value": "x"}, "mutability"),
        ({"op": "add", "path": "members", "value": {"value": "x"}}, "invalidValue"),
        ({"op": "add", "path": "members", "value": [{"value": "x", "type": "Group"}]}, "invalidValue"),
        ({"op": "remove"}, "noTarget"),
    ],
)
def test_group_patch_refusals(
    sim: AtlassianCloudSim, cloud: Cloud, op: dict[str, Any], scim_type: str
) -> None:
    a = cloud.create_user("a")["id"]
    group = cloud.create_group("team", members=(a,))
    scim_error(cloud.patch(f"/Groups/{group['id']}", op), 400, scim_type)
    assert cloud.ok("GET", f"/Groups/{group['id']}") == group


def test_group_put_replaces_members(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    a, b = cloud.create_user("a")["id"], cloud.create_user("b")["id"]
    group = cloud.create_group("team", members=(a,))
    path = f"/Groups/{group['id']}"
    body = {"schemas": [CORE_GROUP], "displayName": "team", "members": [{"value": b}], "externalId": "g"}
    replaced = cloud.ok("PUT", path, json=body)
    assert [m["value"] for m in replaced["members"]] == [b] and replaced["externalId"] == "g"
    unknown = {"schemas": [CORE_GROUP], "displayName": "team", "members": [{"value": "MISSING"}]}
    assert "does not exist" in scim_error(cloud("PUT", path, json=unknown), 400, "invalidValue")
    assert sim.members("team") == {"b@example.test"}
    cleared = cloud.ok("PUT", path, json={"schemas": [CORE_GROUP], "displayName": "team"})
    assert cleared["members"] == [] and "externalId" not in cleared
    scim_error(cloud("PUT", f"/Groups/{uuid.uuid4()}", json=body), 404)


def test_delete_group(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    a = cloud.create_user("a")["id"]
    group = cloud.create_group("team", members=(a,))
    assert cloud("DELETE", f"/Groups/{group['id']}").status_code == 204
    assert scim_error(cloud("GET", f"/Groups/{group['id']}"), 404) == NO_RESOURCE
    scim_error(cloud("DELETE", f"/Groups/{group['id']}"), 404)
    assert cloud.ok("GET", f"/Users/{a}")["groups"] == [] and sim.group_names() == set()
    assert cloud.create_group("team")["id"] != group["id"]  # the name is free again


# -- rate limiting, dropped connections, request log ----------------------------------------


def test_rate_limit_answers_429_with_retry_after_only() -> None:
    now = [50.0]
    with serve(AtlassianCloudSim(rate_limit=(2, 0.5), clock=lambda: now[0])) as cloud:
        first, second, third = (cloud("GET", "/Users") for _ in range(3))
        assert [r.status_code for r in (first, second, third)] == [200, 200, 429]
        assert not [h for h in first.headers if h.lower().startswith(("x-ratelimit", "retry-after"))]
        assert "Too many requests" in scim_error(third, 429)
        assert third.headers["Retry-After"] == "2"
        now[0] += 2.0
        assert cloud("GET", "/Users").status_code == 200
        anonymous = Cloud(cloud.root, "/scim/directory/d0c5-sim-directory", key=None)
        assert anonymous("GET", "/Users").status_code == 401  # checked before any token is spent
        assert cloud("GET", "/Users").status_code == 429


def test_dropped_connections_and_request_log(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    sim.faults.drop(method="POST", after_app=True)
    with pytest.raises(requests.ConnectionError):
        cloud("POST", "/Users", json=user_body())
    assert sim.user("amara.k@example.test") is not None  # applied: a blind retry is a 409
    scim_error(cloud("POST", "/Users", json=user_body()), 409, "uniqueness")
    users = f"{sim.base_path}/Users"
    assert [(e.method, e.path, e.status) for e in sim.log.entries] == [
        ("POST", users, 0),
        ("POST", users, 409),
    ]
    sim.log.clear()
    cloud("GET", "/Users", params={"count": "1"})
    assert sim.log.entries == [LoggedRequest("GET", users, {"count": "1"}, 200, None)]


# -- seeding and inspection -----------------------------------------------------------------


def test_seeding_and_inspection_api(sim: AtlassianCloudSim, cloud: Cloud) -> None:
    user_id = sim.add_user(
        "Amara.K@acme.test",
        "amara.k@acme.test",
        "Amara",
        external_id="00u1",
        groups=("Team-A", "admins"),
        active=False,
    )
    assert str(uuid.UUID(user_id)) == user_id
    group_id = sim.add_group("TEAM-a", members=("amara.k@ACME.test",))  # extends the existing group
    assert cloud.ok("GET", f"/Groups/{group_id}")["displayName"] == "Team-A"
    assert sim.add_group("empty") != group_id
    assert sim.group_names() == {"Team-A", "admins", "empty"}
    assert sim.members("team-a") == {"Amara.K@acme.test"}
    expected = {
        "id": user_id,
        "userName": "Amara.K@acme.test",
        "email": "amara.k@acme.test",
        "display_name": "Amara",
        "active": False,
        "external_id": "00u1",
        "groups": ["Team-A", "admins"],
    }
    assert sim.user(user_id) == sim.user("amara.k@acme.TEST") == expected
    assert sim.user(user_id.upper()) is None and sim.user("ghost") is None
    assert cloud.ok("GET", f"/Users/{user_id}")["active"] is False
    with pytest.raises(ValueError, match="already exists"):
        sim.add_user("AMARA.K@acme.test", "x@acme.test", "X")
    with pytest.raises(ValueError, match="not verified"):
        sim.add_user("x", "x@elsewhere.example", "X")
    with pytest.raises(KeyError):
        sim.add_group("team", members=("ghost",))
    with pytest.raises(KeyError):
        sim.members("nope")
