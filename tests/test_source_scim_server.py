"""The scim source reading a real scim2-server (subprocess on loopback), seeded over HTTP.

The seed: 180 people (more than three pages of 50), one of them inactive, non-ASCII names,
enterprise attributes, groups nested two deep, a cycle of groups, members sent without a
type, an empty group. The expected tables below are written by hand from the seed, not
computed by the code under test.

What scim2-server does (0.8): it honours ``count`` up to ``filter.maxResults`` (1000 by
default, clamped silently), orders resources by id (random hex, not creation order),
serves ``/ServiceProviderConfig`` without authentication, keeps a member's ``type`` only
when the client sent one, accepts members that reference nothing, accepts a cycle of
groups, and never fills ``User.groups``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from scim_server import ScimServer, running_scim_server

from scimsync.config import ScimSourceConfig
from scimsync.errors import AuthError
from scimsync.http import HttpSettings
from scimsync.http.scim import ENTERPRISE_USER
from scimsync.models import SourceDirectory
from scimsync.sources.scim import ScimSource

TOKEN = "scim2-server-test-token"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PEOPLE = 180


def person(n: int) -> dict[str, Any]:
    """Return the seed resource of person ``n`` (1..180)."""
    resource: dict[str, Any] = {
        "schemas": [USER],
        "userName": f"p{n:03d}@acme.test",
        "name": {"givenName": f"Given{n}", "familyName": f"Family{n}"},
        "emails": [{"value": f"p{n:03d}@acme.test", "type": "work", "primary": True}],
    }
    resource.update(SPECIAL.get(n, {}))
    return resource


SPECIAL: dict[int, dict[str, Any]] = {
    1: {
        "schemas": [USER, ENTERPRISE_USER],
        "userName": "zoë.ørsted@acme.test",
        "externalId": "emp-00001",
        "name": {"givenName": "Zoë", "familyName": "Ørsted"},
        "emails": [{"value": "zoe@acme.test", "type": "work", "primary": True}],
        ENTERPRISE_USER: {"department": "R&D", "employeeNumber": "00001"},
    },
    2: {
        "userName": "jose.nunez@acme.test",
        "name": {"givenName": "José", "familyName": "Núñez"},
        "emails": [{"value": "jose@home.test", "type": "home"}, {"value": "jose@acme.test", "type": "work"}],
    },
    3: {"userName": "li.xiaolong@acme.test", "name": None, "displayName": "李小龍", "emails": None},
    4: {"active": False},
    6: {
        "emails": [
            {"value": "p006@other.test", "type": "other"},
            {"value": "p006@home.test", "type": "home", "primary": True},
        ]
    },
}


def seed(server: ScimServer) -> None:
    """Create the people and the groups over HTTP, the way an IdP's admin would."""
    ids = {n: server.post("/Users", _without_none(person(n)))["id"] for n in range(1, PEOPLE + 1)}

    def users(*numbers: int, typed: bool = True) -> list[dict[str, Any]]:
        return [{"value": ids[n], **({"type": "User"} if typed else {})} for n in numbers]

    def create(name: str, members: list[dict[str, Any]]) -> str:
        gid: str = server.post("/Groups", {"schemas": [GROUP], "displayName": name, "members": members})["id"]
        return gid

    platform = create("platform", users(*range(61, 71), 5))
    engineering = create("engineering", [*users(*range(1, 61)), {"value": platform, "type": "Group"}])
    sales = create("sales", users(*range(71, 121), 5))
    # Members without a type: the source tells users and groups apart by id.
    create("all-staff", [{"value": engineering}, {"value": sales}, *users(*range(121, 131), typed=False)])
    create("Ünïcode-Gruppe", users(1, 2, 3))
    create("leavers", users(4))
    create("empty-group", [])
    ring_a = create("ring-a", users(150))
    ring_b = create("ring-b", [*users(151), {"value": ring_a, "type": "Group"}])
    ring = {
        "schemas": [GROUP],
        "displayName": "ring-a",
        "members": [*users(150), {"value": ring_b, "type": "Group"}],
    }
    server.put(f"/Groups/{ring_a}", ring)  # closes the cycle


def _without_none(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if v is not None}


def usernames(*numbers: int) -> set[str]:
    return {EXPECTED_USERNAME.get(n, f"p{n:03d}@acme.test") for n in numbers}


EXPECTED_USERNAME = {1: "zoë.ørsted@acme.test", 2: "jose.nunez@acme.test", 3: "li.xiaolong@acme.test"}

# username -> (email, first, last, display name, active, groups)
EXPECTED_PEOPLE: dict[str, tuple[str, str, str, str, bool, set[str]]] = {
    "zoë.ørsted@acme.test": (
        "zoe@acme.test",
        "Zoë",
        "Ørsted",
        "Zoë Ørsted",
        True,
        {"engineering", "all-staff", "Ünïcode-Gruppe"},
    ),
    "jose.nunez@acme.test": (
        "jose@acme.test",
        "José",
        "Núñez",
        "José Núñez",
        True,
        {"engineering", "all-staff", "Ünïcode-Gruppe"},
    ),
    "li.xiaolong@acme.test": ("", "", "", "李小龍", True, {"engineering", "all-staff", "Ünïcode-Gruppe"}),
    "p004@acme.test": (
        "p004@acme.test",
        "Given4",
        "Family4",
        "Given4 Family4",
        False,
        {"engineering", "all-staff", "leavers"},
    ),
    "p005@acme.test": (
        "p005@acme.test",
        "Given5",
        "Family5",
        "Given5 Family5",
        True,
        {"engineering", "platform", "sales", "all-staff"},
    ),
    "p006@acme.test": (
        "p006@home.test",
        "Given6",
        "Family6",
        "Given6 Family6",
        True,
        {"engineering", "all-staff"},
    ),
    "p065@acme.test": (
        "p065@acme.test",
        "Given65",
        "Family65",
        "Given65 Family65",
        True,
        {"platform", "engineering", "all-staff"},
    ),
    "p100@acme.test": (
        "p100@acme.test",
        "Given100",
        "Family100",
        "Given100 Family100",
        True,
        {"sales", "all-staff"},
    ),
    "p125@acme.test": ("p125@acme.test", "Given125", "Family125", "Given125 Family125", True, {"all-staff"}),
    "p131@acme.test": ("p131@acme.test", "Given131", "Family131", "Given131 Family131", True, set()),
    "p150@acme.test": (
        "p150@acme.test",
        "Given150",
        "Family150",
        "Given150 Family150",
        True,
        {"ring-a", "ring-b"},
    ),
    "p151@acme.test": (
        "p151@acme.test",
        "Given151",
        "Family151",
        "Given151 Family151",
        True,
        {"ring-a", "ring-b"},
    ),
    "p180@acme.test": ("p180@acme.test", "Given180", "Family180", "Given180 Family180", True, set()),
}

# group -> its members (flattened), by username
EXPECTED_GROUPS: dict[str, set[str]] = {
    "platform": usernames(*range(61, 71), 5),
    "engineering": usernames(*range(1, 71)),
    "sales": usernames(*range(71, 121), 5),
    "all-staff": usernames(*range(1, 131)),
    "Ünïcode-Gruppe": usernames(1, 2, 3),
    "leavers": usernames(4),
    "empty-group": set(),
    "ring-a": usernames(150, 151),
    "ring-b": usernames(150, 151),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    with running_scim_server(tmp_path_factory.mktemp("scim2-server"), token=TOKEN) as running:
        seed(running)
        yield running


def scim_source(server: ScimServer, **keys: Any) -> ScimSource:
    config = ScimSourceConfig.model_validate({"type": "scim", "url": server.url, "token": TOKEN, **keys})
    return ScimSource("source", config, HttpSettings(timeout=10, retries=1))


def read(server: ScimServer, **keys: Any) -> SourceDirectory:
    source = scim_source(server, **keys)
    try:
        return source.read()
    finally:
        source.close()


def list_pages(server: ScimServer, since: int, path: str) -> list[tuple[int, int]]:
    """Return (startIndex, count) of each list request the server logged after the first ``since``."""
    pages = []
    for logged in server.requested()[since:]:
        parts = urlsplit(logged)
        if parts.path == f"/v2{path}":
            query = parse_qs(parts.query)
            pages.append((int(query["startIndex"][0]), int(query["count"][0])))
    return sorted(pages)


def test_every_person_and_group_is_read_as_seeded(server: ScimServer) -> None:
    before = len(server.requested())
    directory = read(server, page_size=50)
    by_name = {u.username: u for u in directory.users}
    assert len(directory.users) == PEOPLE == len(by_name) == len({u.id for u in directory.users})
    assert set(by_name) == usernames(*range(1, PEOPLE + 1))
    assert [u.username for u in directory.users if not u.active] == ["p004@acme.test"]
    got_people = {
        name: (u.email, u.first_name, u.last_name, u.display_name, u.active, set(u.groups))
        for name, u in by_name.items()
        if name in EXPECTED_PEOPLE
    }
    assert got_people == EXPECTED_PEOPLE
    names = {u.id: u.username for u in directory.users}
    got_groups = {g.name: {names[i] for i in g.member_ids} for g in directory.groups}
    assert got_groups == EXPECTED_GROUPS
    # 180 people in pages of 50: four pages, each starting on the last person of the one before.
    assert list_pages(server, before, "/Users") == [(1, 50), (50, 50), (99, 50), (148, 50)]
    assert list_pages(server, before, "/Groups") == [(1, 50)]


def test_the_raw_resource_and_the_enterprise_extension_are_in_attributes(server: ScimServer) -> None:
    zoe = next(u for u in read(server).users if u.username == "zoë.ørsted@acme.test")
    assert zoe.attributes["externalId"] == "emp-00001"
    assert zoe.attributes["id"] == zoe.id
    assert zoe.attributes[ENTERPRISE_USER] == {"department": "R&D", "employeeNumber": "00001"}
    assert (zoe.attributes["department"], zoe.attributes["employeeNumber"]) == ("R&D", "00001")
    assert "meta" not in zoe.attributes and "schemas" not in zoe.attributes


def test_one_page_holds_everyone_at_the_service_maximum(server: ScimServer) -> None:
    before = len(server.requested())
    assert len(read(server).users) == PEOPLE
    # No page_size: the count is the service's filter.maxResults (1000 by default).
    assert list_pages(server, before, "/Users") == [(1, 1000)]


def test_check_counts_the_users(server: ScimServer) -> None:
    source = scim_source(server)
    assert source.check() == f"SCIM service with {PEOPLE} users"
    source.close()


def test_a_wrong_token_is_an_auth_error_naming_the_token(server: ScimServer) -> None:
    config = ScimSourceConfig.model_validate({"type": "scim", "url": server.url, "token": "not-the-token"})
    source = ScimSource("source", config, HttpSettings(timeout=10, retries=0))
    with pytest.raises(AuthError) as caught:
        source.read()
    source.close()
    assert str(caught.value) == (
        "source: GET /Users startIndex=1: HTTP 401 Unauthorized: "
        "the credentials were rejected; check source.token"
    )


def test_the_page_size_comes_from_the_service_provider_config(tmp_path: Path) -> None:
    spc = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": 40},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
    }
    with running_scim_server(tmp_path, token=TOKEN, service_provider_config=spc) as small:
        for n in range(1, 101):
            small.post("/Users", _without_none(person(n)))
        directory = read(small, page_size=50)  # asks for more than the service allows
        assert {u.username for u in directory.users} == usernames(*range(1, 101))
        assert list_pages(small, 0, "/Users") == [(1, 40), (40, 40), (79, 40)]  # overlapping by one
