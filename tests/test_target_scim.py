"""ScimTarget against exact request shapes (RFC 7644, reference §3, §6), with ``responses``.

The helpers at the top (a faked SCIM service: discovery, paged and filtered lists) are
shared with test_target_atlassian_cloud.py. Writes are registered by each test, so that
their exact shapes stay visible where they are asserted.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from scimsync import secrets
from scimsync.config import TargetConfig
from scimsync.errors import AuthError, ConnectorError, NotFoundError, ResponseError
from scimsync.http import Auth, BasicAuth, BearerAuth, HttpClient, HttpSettings
from scimsync.http.scim import parse_error
from scimsync.models import Account
from scimsync.secrets import Secret
from scimsync.targets import TARGET_TYPES, build_target
from scimsync.targets.base import BatchMembers, Target
from scimsync.targets.scim import ScimTarget

TOKEN = "scim-target-t0ken"
BASE = "https://apps.acme.test/scim/v2"
SCIM_JSON = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"

Body = dict[str, Any]
Reply = tuple[int, dict[str, str], str]
# `attr eq "value"` and `attr[sub eq "value"]`: the only filters the fake evaluates.
_EQ = re.compile(r'^(?P<attr>[\w.]+)(?:\[(?P<sub>\w+))? eq (?P<value>".*")(?P<close>\]?)$')


def user(n: int, **fields: Any) -> Body:
    """Return User resource ``u<n>``; ``fields`` override or add attributes (None removes one)."""
    resource: Body = {
        "schemas": [USER],
        "id": f"u{n}",
        "userName": f"user{n}@acme.test",
        "displayName": f"User {n}",
        "emails": [{"value": f"user{n}@acme.test", "type": "work", "primary": True}],
        "active": True,
        "meta": {"resourceType": "User", "location": f"{BASE}/Users/u{n}", "version": 'W/"1"'},
    }
    resource.update(fields)
    return {k: v for k, v in resource.items() if v is not None}


def group(gid: str, name: str, *member_ids: str) -> Body:
    """Return a Group resource with these direct members."""
    return {
        "schemas": [GROUP],
        "id": gid,
        "displayName": name,
        "members": [{"value": m, "type": "User"} for m in member_ids],
        "meta": {"resourceType": "Group"},
    }


def scim_error(status: int, scim_type: str, detail: str) -> Body:
    """Return a SCIM error body; ``status`` a string, as RFC 7644 §3.12 says."""
    body: Body = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


def page(resources: list[Body], total: int, start: int) -> Body:
    """Return a ListResponse page."""
    return {
        "schemas": [LIST],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def discovery(
    rsps: responses.RequestsMock,
    *,
    patch: bool | None = True,
    max_results: int | None = 1000,
    filtering: bool = True,
    types: list[Body] | None = None,
    schemas: list[Body] | None = None,
) -> None:
    """Serve /ServiceProviderConfig (404 when ``max_results`` is None), /ResourceTypes, /Schemas."""
    if max_results is None:
        rsps.get(f"{BASE}/ServiceProviderConfig", status=404, json=scim_error(404, "", "not here"))
    else:
        spc: Body = {
            "schemas": [SPC],
            "filter": {"supported": filtering, "maxResults": max_results},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "etag": {"supported": True},
            "sort": {"supported": False},
            "changePassword": {"supported": False},
        }
        if patch is not None:
            spc["patch"] = {"supported": patch}
        rsps.get(f"{BASE}/ServiceProviderConfig", json=spc)
    for path, listed in (("/ResourceTypes", types), ("/Schemas", schemas)):
        if listed is None:
            rsps.get(f"{BASE}{path}", status=404, json=scim_error(404, "", "not here"))
        else:
            rsps.get(f"{BASE}{path}", json=page(listed, len(listed), 1))


def query(request: requests.PreparedRequest) -> dict[str, str]:
    """Return the query parameters of a request, one value each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}


def matches(resource: Body, expression: str) -> bool:
    """Evaluate the two filter shapes the targets send; anything else is a test failure."""
    found = _EQ.match(expression)
    assert found and bool(found["sub"]) == bool(found["close"]), f"unexpected filter {expression!r}"
    wanted = json.loads(found["value"])
    if found["sub"]:
        values = resource.get(found["attr"]) or []
        return any(v.get(found["sub"]) == wanted for v in values)
    value = resource.get(found["attr"])
    if found["attr"] == "externalId":
        return bool(value == wanted)
    return isinstance(value, str) and value.lower() == wanted.lower()


class ListServer:
    """GET ``path`` served page by page from ``resources``, filters evaluated, requests recorded."""

    def __init__(
        self,
        rsps: responses.RequestsMock,
        path: str,
        resources: list[Body],
        *,
        serve_at_most: Callable[[int], int] | None = None,
    ) -> None:
        self.path, self.resources, self.serve_at_most = path, resources, serve_at_most
        self.asked: list[dict[str, str]] = []
        self._lock = threading.Lock()
        rsps.add_callback(responses.GET, f"{BASE}{path}", callback=self._serve)

    def _serve(self, request: requests.PreparedRequest) -> Reply:
        asked = query(request)
        with self._lock:
            self.asked.append(asked)
        chosen = [r for r in self.resources if "filter" not in asked or matches(r, asked["filter"])]
        start, count = int(asked["startIndex"]), int(asked["count"])
        size = min(count, self.serve_at_most(start)) if self.serve_at_most else count
        body = page(chosen[start - 1 : start - 1 + size], len(chosen), start)
        return 200, {"Content-Type": SCIM_JSON}, json.dumps(body)

    def starts(self) -> list[tuple[int, int]]:
        """Return (startIndex, count) of the unfiltered page requests, sorted."""
        return sorted((int(a["startIndex"]), int(a["count"])) for a in self.asked if "filter" not in a)

    def filters(self) -> list[str]:
        """Return the filters asked for, in order."""
        return [a["filter"] for a in self.asked if "filter" in a]


def sent(call: Any) -> Any:
    """Return the JSON body a recorded call sent."""
    return json.loads(call.request.body)


def make_target(kind: str = "scim", *, auth: Auth = None, concurrency: int = 2, retries: int = 0) -> Target:
    """Build a target the way the registry does (its headers and error parser), without sleeping."""
    registered = TARGET_TYPES[kind]
    client = HttpClient(
        "app",
        BASE,
        auth=auth or BearerAuth(Secret(TOKEN)),
        settings=HttpSettings(retries=retries, concurrency=concurrency),
        error_parser=registered.error_parser,
        headers=registered.headers,
        sleep=lambda _: None,
    )
    return registered.factory("app", client)


@pytest.fixture(autouse=True)
def _own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # redact() scrubs every Secret value ever made, process-wide: keep other tests' values out.
    monkeypatch.setattr(secrets, "_known", set())


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def writes(rsps: responses.RequestsMock) -> list[tuple[str, str]]:
    """Return (method, path) of every request that is not a GET."""
    return [
        (str(c.request.method), urlsplit(str(c.request.url)).path.removeprefix("/scim/v2"))
        for c in rsps.calls
        if c.request.method != "GET"
    ]


AMARA = Account(id="u1", username="user1@acme.test", email="user1@acme.test", display_name="User 1")


# --- discovery, capabilities, check ---------------------------------------------------------------


USER_SCHEMA_FIXED = {
    "id": USER,
    "name": "User",
    "attributes": [
        {"name": "userName", "type": "string", "mutability": "immutable"},
        {"name": "displayName", "type": "string", "mutability": "readWrite"},
    ],
}


def test_capabilities_come_from_the_discovery_endpoints_read_once(rsps: responses.RequestsMock) -> None:
    types = [{"id": "User", "endpoint": "/Users", "schema": USER}]
    discovery(rsps, patch=True, max_results=200, types=types, schemas=[USER_SCHEMA_FIXED])
    target = make_target()
    caps = target.capabilities()
    assert caps == target.capabilities()
    assert [urlsplit(str(c.request.url)).path for c in rsps.calls] == [
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/ResourceTypes",
        "/scim/v2/Schemas",
    ]
    # userName immutable, no `active`, no Group resource type: each capability follows.
    assert caps.update_fields == {"email", "display_name"}
    assert (caps.deactivate, caps.manage_groups, caps.create_groups) == (False, False, False)
    assert (caps.create_user, caps.delete, caps.shows_email) == (True, True, True)
    assert caps.owner_marker == "external_id"
    assert caps.name_key("Straße") == "straße"
    assert caps.reason == ("SCIM service (patch: yes, filter: yes, 200 per page, bulk: no, etag: yes)")


def test_without_discovery_endpoints_everything_is_assumed_and_pages_hold_100(
    rsps: responses.RequestsMock,
) -> None:
    discovery(rsps, max_results=None)
    users = ListServer(rsps, "/Users", [user(n) for n in range(1, 151)])
    ListServer(rsps, "/Groups", [])
    target = make_target()
    caps = target.capabilities()
    assert caps.update_fields == {"email", "display_name", "username"}
    assert (caps.deactivate, caps.manage_groups, caps.create_groups) == (True, True, True)
    assert caps.reason == (
        "SCIM service (patch: not announced, filter: not announced, 100 per page, "
        "bulk: not announced, etag: not announced)"
    )
    assert len(target.read([]).accounts) == 150
    # Pages overlap by one: each later page starts on the last user read (a shift shows).
    assert users.starts() == [(1, 100), (100, 100)]


def test_a_discovery_endpoint_that_is_not_scim_is_an_error(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.replace(responses.GET, f"{BASE}/Schemas", body="<html>login</html>", content_type="text/html")
    with pytest.raises(ResponseError, match=r"^app: GET /Schemas: expected JSON, got text/html"):
        make_target().capabilities()


def test_check_is_one_authenticated_read_with_scim_headers(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/Users", json=page([user(1)], 3, 1))
    assert make_target().check() == "SCIM service with 3 users"
    (call,) = rsps.calls
    assert query(call.request) == {"startIndex": "1", "count": "1"}
    assert call.request.headers["Accept"] == SCIM_JSON
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_check_with_a_wrong_token_names_the_cause_and_what_to_check(rsps: responses.RequestsMock) -> None:
    body = scim_error(401, "", "Authorization failure. The authorization header is invalid")
    rsps.get(f"{BASE}/Users", status=401, json=body)
    with pytest.raises(AuthError) as caught:
        make_target().check()
    assert str(caught.value) == (
        "app: GET /Users startIndex=1: HTTP 401 Unauthorized: Authorization failure. The authorization "
        "header is invalid; check the credentials of targets.app"
    )


def test_a_wrong_url_on_read_says_to_check_the_url(rsps: responses.RequestsMock) -> None:
    discovery(rsps, max_results=None)
    rsps.get(f"{BASE}/Users", status=404, body="<html>no</html>", content_type="text/html")
    with pytest.raises(NotFoundError) as caught:
        make_target().read([])
    assert str(caught.value).endswith(
        "check targets.app.url: it must be the SCIM base URL (the one /Users is under)"
    )


def test_basic_auth_and_the_scim_media_type_on_writes(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Users", status=201, json=user(1, externalId="src-1"))
    target = make_target(auth=BasicAuth("sync-bot", Secret("pa55word-value")))
    target.create_user("user1@acme.test", "user1@acme.test", "User 1")
    call = rsps.calls[-1]
    assert call.request.headers["Content-Type"] == SCIM_JSON
    assert call.request.headers["Accept"] == SCIM_JSON
    assert str(call.request.headers["Authorization"]).startswith("Basic ")


def test_the_registry_builds_both_scim_based_targets() -> None:
    config = TargetConfig.model_validate({"type": "scim", "url": BASE, "username": "bot", "password": "pw-1"})
    built = build_target("app", config, HttpSettings())
    assert isinstance(built, ScimTarget) and (built.name, built.type) == ("app", "scim")
    built.close()
    assert TARGET_TYPES["scim"].error_parser is parse_error
    assert TARGET_TYPES["scim"].headers == {"Accept": SCIM_JSON, "Content-Type": SCIM_JSON}


# --- read ---------------------------------------------------------------------------------------


def test_read_maps_every_account_and_its_direct_groups(rsps: responses.RequestsMock) -> None:
    discovery(rsps, max_results=2)
    people = [
        user(1, externalId="src-1"),
        # No primary: the work address wins over the first one.
        user(
            2, emails=[{"value": "two@home.test", "type": "home"}, {"value": "two@acme.test", "type": "work"}]
        ),
        # No displayName: name.formatted; no `active`: active; an empty externalId is no marker.
        user(3, displayName=None, name={"formatted": "Third Person"}, active=None, externalId=""),
        user(4, active=False, emails=None),
    ]
    users = ListServer(rsps, "/Users", people, serve_at_most=lambda start: 1 if start == 3 else 2)
    nested = {"value": "g1", "type": "Group"}
    groups = [group("g1", "Team-A", "u1", "u2"), {**group("g2", "team-b", "u2"), "members": [nested]}]
    # g3 is listed without members (idp §6.3): it is read by id.
    groups.append({"schemas": [GROUP], "id": "g3", "displayName": "big"})
    ListServer(rsps, "/Groups", groups)
    rsps.get(f"{BASE}/Groups/g3", json=group("g3", "big", "u4"))
    directory = make_target().read(["team-a"])
    got = {
        a.id: (a.username, a.email, a.display_name, a.active, set(a.groups), a.external_id)
        for a in directory.accounts
    }
    assert got == {
        "u1": ("user1@acme.test", "user1@acme.test", "User 1", True, {"Team-A"}, "src-1"),
        "u2": ("user2@acme.test", "two@acme.test", "User 2", True, {"Team-A"}, None),
        "u3": ("user3@acme.test", "user3@acme.test", "Third Person", True, set(), None),
        "u4": ("user4@acme.test", "", "User 4", False, {"big"}, None),
    }
    assert directory.groups == {"Team-A", "team-b", "big"}
    # A short page (one of two at startIndex 3) never ends the read: the next starts at 4.
    assert users.starts() == [(1, 2), (2, 2), (3, 2), (4, 2)]  # overlapping pages


def test_a_users_own_direct_groups_count_too(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    memberships = [
        {"value": "g1", "display": "Team-A", "type": "direct"},
        {"value": "g2", "type": "indirect"},
    ]
    ListServer(rsps, "/Users", [user(1, groups=memberships)])
    ListServer(rsps, "/Groups", [group("g1", "Team-A"), group("g2", "outer")])
    (account,) = make_target().read([]).accounts
    assert account.groups == {"Team-A"}


@pytest.mark.parametrize(
    ("body", "content_type", "cause"),
    [
        ("<html><body>Sign in</body></html>", "text/html", "expected JSON, got text/html"),
        (json.dumps({"users": []}), SCIM_JSON, "not a SCIM ListResponse"),
        (json.dumps(page([], 3, 1)), SCIM_JSON, "an empty page after 0 of 3 users: the list is truncated"),
    ],
    ids=["html", "not-a-list-response", "empty-page"],
)
def test_an_answer_that_is_not_a_complete_list_fails_the_read(
    rsps: responses.RequestsMock, body: str, content_type: str, cause: str
) -> None:
    discovery(rsps)
    rsps.get(f"{BASE}/Users", body=body, content_type=content_type)
    with pytest.raises(ResponseError) as caught:
        make_target().read([])
    assert str(caught.value).startswith("app: GET /Users startIndex=1: ")
    assert cause in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "cause"),
    [
        ({"userName": None}, "user id 'u1': a User resource without a userName"),
        ({"active": "yes"}, "user id 'u1': active is not true or false"),
        (
            {"emails": [{"value": "a@x.test", "primary": True}, {"value": "b@x.test", "primary": True}]},
            "user id 'u1': 2 emails are marked primary",
        ),
    ],
)
def test_a_user_that_cannot_be_mapped_fails_the_read(
    rsps: responses.RequestsMock, fields: Body, cause: str
) -> None:
    discovery(rsps)
    ListServer(rsps, "/Users", [user(1, **fields)])
    ListServer(rsps, "/Groups", [])
    with pytest.raises(ResponseError) as caught:
        make_target().read([])
    assert str(caught.value) == f"app: {cause}"


# --- get_account, group_exists --------------------------------------------------------------------


def test_get_account_by_id_takes_groups_from_the_user(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    memberships = [{"value": "g1", "display": "Team-A"}, {"value": "g9", "type": "indirect", "display": "x"}]
    rsps.get(f"{BASE}/Users/u%2F1", json=user(1, id="u/1", groups=memberships))
    account = make_target().get_account("whatever", account_id="u/1")
    assert account is not None and account.id == "u/1" and account.groups == {"Team-A"}
    assert [c.request.url for c in rsps.calls][-1] == f"{BASE}/Users/u%2F1"


def test_get_account_of_a_missing_id_is_none(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.get(f"{BASE}/Users/u1", status=404, json=scim_error(404, "", "User 'u1' not found"))
    assert make_target().get_account("user1@acme.test", account_id="u1") is None


def test_a_404_page_that_is_not_scim_is_no_proof_the_user_is_gone(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.get(f"{BASE}/Users/u1", status=404, body="<html>Not here</html>", content_type="text/html")
    with pytest.raises(ResponseError) as caught:
        make_target().get_account("user1@acme.test", account_id="u1")
    assert str(caught.value) == (
        "app: user user1@acme.test: HTTP 404 Not Found: not a SCIM error body (text/html): "
        "<html>Not here</html>"
    )
    # Nor is a delete answered so done.
    rsps.delete(f"{BASE}/Users/u1", status=404, body="<html>Not here</html>", content_type="text/html")
    with pytest.raises(ResponseError):
        make_target().delete_user(AMARA)


def test_get_account_by_username_escapes_the_filter_and_asks_for_groups(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    name = 'o"brien\\x@acme.test'
    users = ListServer(rsps, "/Users", [user(1), user(2, userName=name.upper())])
    groups = ListServer(rsps, "/Groups", [group("g1", "Team-A", "u2"), group("g2", "other", "u1")])
    account = make_target().get_account(name)
    assert account is not None and account.id == "u2" and account.groups == {"Team-A"}
    assert users.filters() == ['userName eq "o\\"brien\\\\x@acme.test"']
    assert groups.filters() == ['members[value eq "u2"]']
    assert make_target().get_account("nobody@acme.test") is None


def test_a_service_that_ignores_the_filter_never_picks_a_stranger(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.get(f"{BASE}/Users", json=page([user(1), user(2)], 2, 1))
    rsps.get(f"{BASE}/Groups", json=page([group("g1", "Team-A", "u1")], 1, 1))
    account = make_target().get_account("user2@acme.test")
    # The filter came back unapplied: user 2 is picked out here, and g1 does not list it.
    assert account is not None and account.id == "u2" and account.groups == frozenset()


def test_a_refused_members_filter_falls_back_to_reading_every_group_once(
    rsps: responses.RequestsMock,
) -> None:
    discovery(rsps)
    ListServer(rsps, "/Users", [user(1), user(2)])
    refusals = []

    def groups(request: requests.PreparedRequest) -> Reply:
        asked = query(request)
        if "filter" in asked:
            refusals.append(asked["filter"])
            return 400, {}, json.dumps(scim_error(400, "invalidFilter", "members is not filterable"))
        return 200, {}, json.dumps(page([group("g1", "Team-A", "u1", "u2")], 1, 1))

    rsps.add_callback(responses.GET, f"{BASE}/Groups", callback=groups)
    target = make_target()
    for name in ("user1@acme.test", "user2@acme.test"):
        account = target.get_account(name)
        assert account is not None and account.groups == {"Team-A"}
    assert refusals == ['members[value eq "u1"]']


def test_without_filtering_a_lookup_reads_the_whole_list(rsps: responses.RequestsMock) -> None:
    discovery(rsps, filtering=False)
    users = ListServer(rsps, "/Users", [user(1), user(2)])
    ListServer(rsps, "/Groups", [group("g1", "Team-A", "u2")])
    account = make_target().get_account("USER2@acme.test")
    assert account is not None and account.id == "u2"
    assert users.filters() == [] and users.starts() == [(1, 1000)]


def test_group_exists_asks_by_display_name(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    groups = ListServer(rsps, "/Groups", [group("g1", "Team-A")])
    target = make_target()
    assert target.group_exists("team-a") is True
    assert target.group_exists("team-b") is False
    assert groups.filters() == ['displayName eq "team-a"', 'displayName eq "team-b"']


# --- create_user ----------------------------------------------------------------------------------


def test_create_user_sends_the_full_resource_with_our_external_id(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Users", status=201, json=user(7, externalId="src-7", userName="Amara.K"))
    account = make_target().create_user("Amara.K", "amara@acme.test", "Amara Kowalski", external_id="src-7")
    assert sent(rsps.calls[-1]) == {
        "schemas": [USER],
        "userName": "Amara.K",
        "externalId": "src-7",
        "displayName": "Amara Kowalski",
        "name": {"formatted": "Amara Kowalski"},
        "emails": [{"value": "amara@acme.test", "type": "work", "primary": True}],
        "active": True,
    }
    assert (account.id, account.username, account.external_id, account.groups) == (
        "u7",
        "Amara.K",
        "src-7",
        frozenset(),
    )


def test_a_conflict_with_our_own_unlisted_user_fails_as_an_incomplete_listing(
    rsps: responses.RequestsMock,
) -> None:
    # The plan created it because the read did not list it: adopting would hide a partial read.
    discovery(rsps)
    rsps.post(f"{BASE}/Users", status=409, json=scim_error(409, "uniqueness", "userName is taken"))
    ListServer(rsps, "/Users", [user(1, externalId="src-1", userName="Amara.K")])
    ListServer(rsps, "/Groups", [group("g1", "Team-A", "u1")])
    with pytest.raises(ConnectorError) as caught:
        make_target().create_user("amara.k", "a@acme.test", "A", external_id="src-1")
    assert str(caught.value) == (
        "app: user amara.k: exists with our externalId src-1, but the read of /Users did not list it: "
        "the listing was incomplete (or the user was created since); plan again"
    )
    assert writes(rsps) == [("POST", "/Users")]


def test_a_conflict_with_our_own_deactivated_user_names_it(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Users", status=409, json=scim_error(409, "uniqueness", "userName is taken"))
    ListServer(rsps, "/Users", [user(1, externalId="src-1", userName="amara.k", active=False)])
    ListServer(rsps, "/Groups", [])
    with pytest.raises(ConnectorError, match=r"exists, deactivated, .*reactivate it or plan again$"):
        make_target().create_user("amara.k", "a@acme.test", "A", external_id="src-1")
    assert writes(rsps) == [("POST", "/Users")]


@pytest.mark.parametrize(
    ("theirs", "ours", "said"),
    [
        ("src-2", "src-1", "externalId src-2, not ours"),
        ("SRC-1", "src-1", "externalId SRC-1, not ours"),  # case-exact (reference §3.3)
        (None, "src-1", "no externalId, not ours"),
        (None, None, "no externalId, not ours"),
        ("src-1", None, "externalId src-1, not ours"),
    ],
)
def test_a_conflict_with_someone_elses_user_is_a_failure_naming_it(
    rsps: responses.RequestsMock, theirs: str | None, ours: str | None, said: str
) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Users", status=409, json=scim_error(409, "uniqueness", "userName is taken"))
    ListServer(rsps, "/Users", [user(1, externalId=theirs)])
    ListServer(rsps, "/Groups", [])
    with pytest.raises(ConnectorError) as caught:
        make_target().create_user("user1@acme.test", "a@acme.test", "A", external_id=ours)
    assert str(caught.value) == f"app: user user1@acme.test: already exists ({said})"
    assert writes(rsps) == [("POST", "/Users")]


def test_a_conflict_on_another_unique_value_is_a_failure(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Users", status=409, json=scim_error(409, "uniqueness", "email is taken"))
    ListServer(rsps, "/Users", [user(1)])
    with pytest.raises(ConnectorError) as caught:
        make_target().create_user("new@acme.test", "user1@acme.test", "N", external_id="src-9")
    assert str(caught.value) == (
        "app: user new@acme.test: HTTP 409 Conflict: scimType uniqueness: email is taken; "
        "no user has this userName, so another unique value is taken"
    )


@pytest.mark.parametrize(
    ("status", "body", "content_type", "kind", "line"),
    [
        (
            400,
            json.dumps(scim_error(400, "invalidValue", "emails[0].value\nis not an email")),
            SCIM_JSON,
            ConnectorError,
            "HTTP 400 Bad Request: scimType invalidValue: emails[0].value is not an email",
        ),
        (
            400,
            "<html><h1>Bad request</h1></html>",
            "text/html",
            ResponseError,
            "HTTP 400 Bad Request: not a SCIM error body (text/html): <html><h1>Bad request</h1></html>",
        ),
        (
            403,
            json.dumps(scim_error(403, "", "the token may not write users")),
            SCIM_JSON,
            AuthError,
            "HTTP 403 Forbidden: the token may not write users",
        ),
        (
            401,
            json.dumps(scim_error(401, "", "expired")),
            SCIM_JSON,
            AuthError,
            "HTTP 401 Unauthorized: expired; check the credentials of targets.app",
        ),
    ],
    ids=["scim-400", "html-400", "403", "401"],
)
def test_a_refused_create_is_one_line_naming_the_account(
    rsps: responses.RequestsMock,
    status: int,
    body: str,
    content_type: str,
    kind: type[Exception],
    line: str,
) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Users", status=status, body=body, content_type=content_type)
    with pytest.raises(ConnectorError) as caught:
        make_target().create_user("bad@acme.test", "bad", "Bad", external_id="src-1")
    assert type(caught.value) is kind
    assert str(caught.value) == f"app: user bad@acme.test: {line}"


def test_a_created_user_answered_in_html_is_an_error(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Users", status=201, body="<html>ok</html>", content_type="text/html")
    with pytest.raises(ResponseError, match="expected JSON, got text/html"):
        make_target().create_user("x@acme.test", "x@acme.test", "X", external_id="src-1")


# --- update_user, set_active, delete_user -----------------------------------------------------------


def test_update_user_patches_each_field(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.patch(f"{BASE}/Users/u1", status=204)
    fields = {
        "username": "amara.new@acme.test",
        "display_name": "Amara New",
        "email": "amara.new@acme.test",
        "external_id": "src-1",
    }
    make_target().update_user(AMARA, fields)
    assert sent(rsps.calls[-1]) == {
        "schemas": [PATCH],
        "Operations": [
            {"op": "replace", "path": "userName", "value": "amara.new@acme.test"},
            {"op": "replace", "path": "displayName", "value": "Amara New"},
            {"op": "replace", "path": "name.formatted", "value": "Amara New"},
            {
                "op": "replace",
                "path": "emails",
                "value": [{"value": "amara.new@acme.test", "type": "work", "primary": True}],
            },
            {"op": "replace", "path": "externalId", "value": "src-1"},
        ],
    }
    assert rsps.calls[-1].request.headers["Content-Type"] == SCIM_JSON


def test_update_user_refuses_a_field_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="scim cannot update groups"):
        make_target().update_user(AMARA, {"groups": "x"})


def test_an_account_without_an_id_is_found_by_username_first(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    ListServer(rsps, "/Users", [user(1)])
    rsps.patch(f"{BASE}/Users/u1", status=200, json=user(1, displayName="New"))
    make_target().update_user(Account("", "USER1@acme.test", None, ""), {"display_name": "New"})
    assert writes(rsps) == [("PATCH", "/Users/u1")]


def test_a_rename_taken_by_someone_else_is_a_failure_of_that_account(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.patch(f"{BASE}/Users/u1", status=409, json=scim_error(409, "uniqueness", "userName in use"))
    with pytest.raises(ConnectorError) as caught:
        make_target().update_user(AMARA, {"username": "taken@acme.test"})
    assert str(caught.value) == (
        "app: user user1@acme.test: HTTP 409 Conflict: scimType uniqueness: userName in use"
    )


@pytest.mark.parametrize("active", [False, True])
def test_set_active_replaces_active(rsps: responses.RequestsMock, active: bool) -> None:
    discovery(rsps)
    rsps.patch(f"{BASE}/Users/u1", status=204)
    make_target().set_active(AMARA, active)
    assert sent(rsps.calls[-1]) == {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "active", "value": active}],
    }


def test_patch_answered_501_falls_back_to_put_once_and_says_so(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    discovery(rsps)  # the service announces PATCH, then does not implement it
    rsps.patch(f"{BASE}/Users/u1", status=501, json=scim_error(501, "", "not implemented"))
    stored = user(1, externalId="src-1", groups=[{"value": "g1"}], title="Engineer")
    rsps.get(f"{BASE}/Users/u1", json=stored)
    rsps.put(f"{BASE}/Users/u1", json=stored)
    target = make_target()
    with caplog.at_level(logging.WARNING, logger="scimsync.targets.scim"):
        target.update_user(AMARA, {"display_name": "Amara K", "email": "a.k@acme.test"})
        target.set_active(AMARA, False)
    assert writes(rsps) == [("PATCH", "/Users/u1"), ("PUT", "/Users/u1"), ("PUT", "/Users/u1")]
    first_put = sent(next(c for c in rsps.calls if c.request.method == "PUT"))
    # Everything read is sent back (PUT clears what it leaves out, §3.5) but the read-only parts.
    assert first_put == {
        "schemas": [USER],
        "id": "u1",
        "userName": "user1@acme.test",
        "displayName": "Amara K",
        "name": {"formatted": "Amara K"},
        "emails": [{"value": "a.k@acme.test", "type": "work", "primary": True}],
        "active": True,
        "externalId": "src-1",
        "title": "Engineer",
    }
    assert sent(rsps.calls[-1])["active"] is False
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "app: PATCH answered HTTP 501: using PUT (read, change, write back) for the rest of this run"
    ]


def test_a_service_without_patch_gets_put_from_the_start(rsps: responses.RequestsMock) -> None:
    discovery(rsps, patch=False)
    rsps.get(f"{BASE}/Users/u1", json=user(1))
    rsps.put(f"{BASE}/Users/u1", status=200, json=user(1, active=False))
    make_target().set_active(AMARA, False)
    assert writes(rsps) == [("PUT", "/Users/u1")]


def test_patch_answered_405_falls_back_too(rsps: responses.RequestsMock) -> None:
    discovery(rsps, patch=None)
    rsps.patch(f"{BASE}/Users/u1", status=405, body="")
    rsps.get(f"{BASE}/Users/u1", json=user(1))
    rsps.put(f"{BASE}/Users/u1", status=200, json=user(1))
    make_target().update_user(AMARA, {"username": "renamed@acme.test"})
    assert sent(rsps.calls[-1])["userName"] == "renamed@acme.test"


def test_delete_user(rsps: responses.RequestsMock) -> None:
    rsps.delete(f"{BASE}/Users/u1", status=204)
    make_target().delete_user(AMARA)
    assert writes(rsps) == [("DELETE", "/Users/u1")]


def test_deleting_a_user_that_is_gone_is_done(rsps: responses.RequestsMock) -> None:
    rsps.delete(f"{BASE}/Users/u1", status=404, json=scim_error(404, "", "not found"))
    rsps.get(f"{BASE}/Users/u1", status=404, json=scim_error(404, "", "not found"))
    make_target().delete_user(AMARA)


def test_a_delete_answered_404_while_the_user_is_still_there_fails(rsps: responses.RequestsMock) -> None:
    rsps.delete(f"{BASE}/Users/u1", status=404, json=scim_error(404, "", "not found"))
    rsps.get(f"{BASE}/Users/u1", json=user(1))
    with pytest.raises(NotFoundError, match=r"^app: user user1@acme.test: HTTP 404 Not Found: not found$"):
        make_target().delete_user(AMARA)


# --- groups ---------------------------------------------------------------------------------------


def test_create_group_then_add_a_member_by_the_new_id(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Groups", status=201, json=group("g7", "Team-C"))
    rsps.patch(f"{BASE}/Groups/g7", status=204)
    target = make_target()
    target.create_group("Team-C")
    target.add_member(AMARA, "team-c")
    assert [sent(c) for c in rsps.calls if c.request.method != "GET"] == [
        {"schemas": [GROUP], "displayName": "Team-C", "members": []},
        {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "u1"}]}]},
    ]


def test_create_group_answered_409_is_done_when_the_group_exists(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Groups", status=409, json=scim_error(409, "uniqueness", "name taken"))
    groups = ListServer(rsps, "/Groups", [group("g1", "TEAM-C")])
    make_target().create_group("team-c")
    assert groups.filters() == ['displayName eq "team-c"']


def test_create_group_answered_409_without_such_a_group_fails(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Groups", status=409, json=scim_error(409, "uniqueness", "name reserved"))
    ListServer(rsps, "/Groups", [])
    with pytest.raises(ConnectorError) as caught:
        make_target().create_group("team-c")
    assert str(caught.value) == "app: group team-c: HTTP 409 Conflict: scimType uniqueness: name reserved"


def test_members_are_removed_by_a_value_filter(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    ListServer(rsps, "/Groups", [group("g1", "Team-A", 'u"1')])
    rsps.patch(f"{BASE}/Groups/g1", status=200, json=group("g1", "Team-A"))
    make_target().remove_member(Account('u"1', "x@acme.test", None, ""), "team-a")
    assert sent(rsps.calls[-1]) == {
        "schemas": [PATCH],
        "Operations": [{"op": "remove", "path": 'members[value eq "u\\"1"]'}],
    }


@pytest.mark.parametrize(
    ("add", "members", "ok"),
    [
        (True, ["u1"], True),  # refused, but a member already: done
        (True, [], False),
        (False, [], True),  # refused, but no member: done
        (False, ["u1"], False),
    ],
)
def test_a_refused_membership_change_is_decided_by_the_groups_members(
    rsps: responses.RequestsMock, add: bool, members: list[str], ok: bool
) -> None:
    discovery(rsps)
    ListServer(rsps, "/Groups", [group("g1", "Team-A")])
    rsps.patch(f"{BASE}/Groups/g1", status=400, json=scim_error(400, "invalidValue", "no can do"))
    rsps.get(f"{BASE}/Groups/g1", json=group("g1", "Team-A", *members))
    target = make_target()
    change = target.add_member if add else target.remove_member
    if ok:
        change(AMARA, "Team-A")
        return
    with pytest.raises(ConnectorError) as caught:
        change(AMARA, "Team-A")
    assert str(caught.value) == (
        "app: membership user1@acme.test in Team-A: HTTP 400 Bad Request: scimType invalidValue: no can do"
    )


def last_put(rsps: responses.RequestsMock) -> Any:
    """Return the last PUT sent (a read follows each PUT)."""
    return [c for c in rsps.calls if c.request.method == "PUT"][-1]


def test_membership_by_put_where_patch_is_not_supported(rsps: responses.RequestsMock) -> None:
    discovery(rsps, patch=False)
    ListServer(rsps, "/Groups", [group("g1", "Team-A", "u2")])
    # Read before the PUT, read again after it (the change shows), read before the removal.
    for members in (["u2"], ["u2", "u1"], ["u2"]):
        rsps.get(f"{BASE}/Groups/g1", json=group("g1", "Team-A", *members))
    rsps.put(f"{BASE}/Groups/g1", json=group("g1", "Team-A", "u2", "u1"))
    target = make_target()
    target.add_member(AMARA, "Team-A")
    body = sent(last_put(rsps))
    assert body["members"] == [{"value": "u2", "type": "User"}, {"value": "u1"}]
    assert "meta" not in body and body["displayName"] == "Team-A"
    # Removing u1, not a member of the group as it is read now: nothing is sent.
    target.remove_member(AMARA, "Team-A")
    assert writes(rsps) == [("PUT", "/Groups/g1")]


def test_two_groups_of_one_name_make_membership_changes_fail(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    ListServer(rsps, "/Users", [user(1)])
    ListServer(rsps, "/Groups", [group("g1", "Team"), group("g2", "TEAM")])
    target = make_target()
    target.read(["team"])
    with pytest.raises(ConnectorError) as caught:
        target.add_member(AMARA, "team")
    assert str(caught.value) == (
        "app: membership user1@acme.test in team: 2 groups are named team (names compare lower-cased): "
        "which one is unclear"
    )
    assert writes(rsps) == []


def test_a_missing_group_is_a_failure_of_that_membership(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    ListServer(rsps, "/Groups", [])
    with pytest.raises(NotFoundError) as caught:
        make_target().add_member(AMARA, "nowhere")
    assert str(caught.value) == "app: membership user1@acme.test in nowhere: group nowhere does not exist"


def test_memberships_run_in_parallel_against_one_group_map(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    ListServer(rsps, "/Users", [user(n) for n in range(1, 9)])
    groups = ListServer(rsps, "/Groups", [group("g1", "Team-A")])
    rsps.patch(f"{BASE}/Groups/g1", status=204)
    target = make_target(concurrency=4)
    accounts = target.read(["team-a"]).accounts
    done: list[str] = []
    lock = threading.Lock()

    def add(account: Account) -> None:
        target.add_member(account, "TEAM-A")
        with lock:
            done.append(account.id)

    threads = [threading.Thread(target=add, args=(a,)) for a in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(done) == [f"u{n}" for n in range(1, 9)]
    # The id came from the read: no lookup by name.
    assert groups.filters() == []
    added = sorted(
        sent(c)["Operations"][0]["value"][0]["value"] for c in rsps.calls if c.request.method == "PATCH"
    )
    assert added == sorted(done)


# --- many members per request (BatchMembers, issue 7) ---------------------------------------------

TRIO = [Account(f"u{n}", f"user{n}@acme.test", f"user{n}@acme.test", f"User {n}") for n in (1, 2, 3)]


def test_a_scim_target_changes_many_members_per_request() -> None:
    target = make_target()
    assert isinstance(target, BatchMembers)
    assert target.member_batch_size(add=True) == target.member_batch_size(add=False) == 50


def test_add_members_sends_one_patch_with_every_member(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    ListServer(rsps, "/Groups", [group("g1", "Team-A")])
    rsps.patch(f"{BASE}/Groups/g1", status=200, json=group("g1", "Team-A", "u1", "u2", "u3"))
    make_target().add_members("team-a", [*TRIO, TRIO[0]])  # one value per user, even if named twice
    assert writes(rsps) == [("PATCH", "/Groups/g1")]
    assert sent(rsps.calls[-1]) == {
        "schemas": [PATCH],
        "Operations": [
            {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}, {"value": "u3"}]}
        ],
    }


def test_remove_members_sends_one_value_filter_per_member_in_one_patch(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    ListServer(rsps, "/Groups", [group("g1", "Team-A", "u1", 'u"2')])
    rsps.patch(f"{BASE}/Groups/g1", status=204)
    quoted = Account('u"2', "q@acme.test", None, "")
    make_target().remove_members("Team-A", [TRIO[0], quoted])
    # Never `remove` of `members` with a value list: RFC 7644 §3.5.2.2 reads it as every member.
    assert writes(rsps) == [("PATCH", "/Groups/g1")]
    assert sent(rsps.calls[-1]) == {
        "schemas": [PATCH],
        "Operations": [
            {"op": "remove", "path": 'members[value eq "u1"]'},
            {"op": "remove", "path": 'members[value eq "u\\"2"]'},
        ],
    }


@pytest.mark.parametrize(("members", "ok"), [(["u1", "u2", "u3", "u9"], True), (["u1", "u3"], False)])
def test_a_refused_batch_is_decided_by_the_groups_members(
    rsps: responses.RequestsMock, members: list[str], ok: bool
) -> None:
    discovery(rsps)
    ListServer(rsps, "/Groups", [group("g1", "Team-A")])
    rsps.patch(f"{BASE}/Groups/g1", status=404, json=scim_error(404, "", "user does not exist"))
    rsps.get(f"{BASE}/Groups/g1", json=group("g1", "Team-A", *members))
    target = make_target()
    if ok:
        target.add_members("Team-A", TRIO)
        return
    with pytest.raises(NotFoundError) as caught:
        target.add_members("Team-A", TRIO)
    assert str(caught.value) == "app: membership 3 users in Team-A: HTTP 404 Not Found: user does not exist"


@pytest.mark.parametrize(("members", "ok"), [(["u1", "u2", "u3"], True), ([], False)])
def test_a_batch_answered_500_is_read_again_before_anything_is_repeated(
    rsps: responses.RequestsMock, members: list[str], ok: bool
) -> None:
    discovery(rsps)
    ListServer(rsps, "/Groups", [group("g1", "Team-A")])
    rsps.patch(f"{BASE}/Groups/g1", status=500, json=scim_error(500, "", "try again"))
    reread = rsps.get(f"{BASE}/Groups/g1", json=group("g1", "Team-A", *members))
    target = make_target()
    if ok:
        target.add_members("Team-A", TRIO)  # it took effect: done, nothing sent again
    else:
        with pytest.raises(ConnectorError) as caught:
            target.add_members("Team-A", TRIO)
        assert caught.value.status == 500
    assert reread.call_count == 1 and writes(rsps) == [("PATCH", "/Groups/g1")]
    # One member alone is never re-read nor repeated: its failure is reported (SPEC §8).
    with pytest.raises(ConnectorError):
        target.add_member(TRIO[0], "Team-A")
    assert reread.call_count == 1


def test_members_by_one_put_where_patch_is_not_supported(rsps: responses.RequestsMock) -> None:
    discovery(rsps, patch=False)
    ListServer(rsps, "/Groups", [group("g1", "Team-A", "u2", "u7")])
    # Each PUT is preceded by a read and followed by one (the change shows).
    for members in (["u2", "u7"], ["u2", "u7", "u1", "u3"], ["u2", "u7", "u1", "u3"], ["u7"]):
        rsps.get(f"{BASE}/Groups/g1", json=group("g1", "Team-A", *members))
    rsps.put(f"{BASE}/Groups/g1", json=group("g1", "Team-A", "u2", "u7", "u1", "u3"))
    rsps.put(f"{BASE}/Groups/g1", json=group("g1", "Team-A", "u7"))
    target = make_target()
    target.add_members("Team-A", TRIO)
    assert sent(last_put(rsps))["members"] == [
        {"value": "u2", "type": "User"},
        {"value": "u7", "type": "User"},
        {"value": "u1"},
        {"value": "u3"},
    ]
    target.remove_members("Team-A", TRIO)
    assert sent(last_put(rsps))["members"] == [{"value": "u7", "type": "User"}]
    assert writes(rsps) == [("PUT", "/Groups/g1"), ("PUT", "/Groups/g1")]


def test_a_member_the_put_lost_is_put_back(rsps: responses.RequestsMock) -> None:
    # Read: u2 and u7; after our PUT adding u1, a concurrent writer's stale PUT has dropped u7 and u1.
    discovery(rsps, patch=False)
    ListServer(rsps, "/Groups", [group("g1", "Team-A", "u2", "u7")])
    for members in (["u2", "u7"], ["u2"], ["u2", "u1", "u7"]):
        rsps.get(f"{BASE}/Groups/g1", json=group("g1", "Team-A", *members))
    rsps.put(f"{BASE}/Groups/g1", json=group("g1", "Team-A", "u2", "u7", "u1"))
    make_target().add_member(AMARA, "Team-A")
    assert writes(rsps) == [("PUT", "/Groups/g1"), ("PUT", "/Groups/g1")]
    assert sent(last_put(rsps))["members"] == [
        {"value": "u2", "type": "User"},
        {"value": "u1"},
        {"value": "u7"},
    ]


def test_a_membership_answered_200_with_no_group_is_read_again(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    ListServer(rsps, "/Groups", [group("g1", "Team-A")])
    rsps.patch(f"{BASE}/Groups/g1", json={"message": "maintenance in progress"})
    rsps.get(f"{BASE}/Groups/g1", json=group("g1", "Team-A"))
    with pytest.raises(ConnectorError, match="HTTP 200, but the group read again does not show the change"):
        make_target().add_members("Team-A", TRIO)
