"""The scim source and scim_protocol against exact request shapes and failure modes, with ``responses``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from scimsync.config import ScimSourceConfig, parse_config
from scimsync.errors import AuthError, ConfigError, ConnectorError, NotFoundError, ResponseError
from scimsync.http import HttpSettings
from scimsync.http.scim import (
    ENTERPRISE_USER,
    ERROR,
    LIST_RESPONSE,
    ScimError,
    ServiceConfig,
    eq_filter,
    filter_value,
    page_size,
    parse_error,
    read_error,
)
from scimsync.models import Group
from scimsync.sources import build_source
from scimsync.sources.scim import ScimSource, to_directory

BASE = "https://idp.example/scim/v2"
TOKEN = "scim-t0ken-value"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SCIM_JSON = "application/scim+json"

Body = dict[str, Any]
Reply = tuple[int, dict[str, str], str]
# (path, startIndex, the page about to be served) -> the page to serve instead
Tamper = Callable[[str, int, Body], Body]
# (path, startIndex) -> a reply to send instead of the page, or None
Intercept = Callable[[str, int], Reply | None]


def user(n: int, **fields: Any) -> Body:
    """Return a SCIM user resource, numbered."""
    resource: Body = {
        "schemas": [USER],
        "id": f"u{n}",
        "userName": f"user{n}@acme.test",
        "name": {"givenName": f"Given{n}", "familyName": f"Family{n}"},
        "emails": [{"value": f"user{n}@acme.test", "type": "work", "primary": True}],
        "active": True,
        "meta": {"resourceType": "User", "location": f"{BASE}/Users/u{n}"},
    }
    resource.update(fields)
    return resource


def group(gid: str, name: str, *members: tuple[str, str | None]) -> Body:
    """Return a SCIM group resource; each member is (value, type or None)."""
    listed = [{"value": v, **({"type": t} if t else {})} for v, t in members]
    return {"schemas": [GROUP], "id": gid, "displayName": name, "members": listed}


class FakeScim:
    """/Users and /Groups served by startIndex and count, with knobs for the faults of real services."""

    def __init__(
        self,
        rsps: responses.RequestsMock,
        users: list[Body],
        groups: list[Body] | None = None,
        *,
        max_results: int | None = 10,
        serve_at_most: Callable[[int], int] | None = None,
        tamper: Tamper | None = None,
        intercept: Intercept | None = None,
    ) -> None:
        self.lists = {"/Users": users, "/Groups": groups or []}
        self.serve_at_most = serve_at_most  # startIndex -> how many to serve, whatever count says
        self.tamper = tamper
        self.intercept = intercept
        self.asked: dict[str, list[tuple[int, int]]] = {"/Users": [], "/Groups": []}
        self._lock = threading.Lock()
        if max_results is None:
            rsps.add(
                responses.GET, f"{BASE}/ServiceProviderConfig", status=404, json=scim_error(404, "", "no")
            )
        else:
            spc = {"filter": {"supported": True, "maxResults": max_results}, "authenticationSchemes": []}
            rsps.add(responses.GET, f"{BASE}/ServiceProviderConfig", json=spc)
        for path in self.lists:
            rsps.add_callback(responses.GET, f"{BASE}{path}", callback=self._serve(path))

    def _serve(self, path: str) -> Callable[[requests.PreparedRequest], Reply]:
        def serve(request: requests.PreparedRequest) -> Reply:
            query = parse_qs(urlsplit(str(request.url)).query)
            start, count = int(query["startIndex"][0]), int(query["count"][0])
            with self._lock:
                self.asked[path].append((start, count))
            reply = self.intercept(path, start) if self.intercept else None
            if reply is not None:
                return reply
            size = min(count, self.serve_at_most(start)) if self.serve_at_most else count
            everything = self.lists[path]
            body: Body = list_page(everything[start - 1 : start - 1 + size], len(everything), start)
            if self.tamper is not None:
                body = self.tamper(path, start, body)
            return 200, {"Content-Type": SCIM_JSON}, json.dumps(body)

        return serve

    def starts(self, path: str = "/Users") -> list[int]:
        return sorted(s for s, _ in self.asked[path])


def list_page(resources: list[Body], total: int, start: int) -> Body:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def scim_error(status: int, scim_type: str, detail: str) -> Body:
    body: Body = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


class FakeSleep:
    """A sleep that only moves its own clock (so the client's pacing sees the time pass)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(round(seconds, 3))
            self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def source(
    *, sleep: FakeSleep | None = None, concurrency: int = 8, retries: int = 2, **keys: Any
) -> ScimSource:
    config = ScimSourceConfig.model_validate({"type": "scim", "url": BASE, "token": TOKEN, **keys})
    settings = HttpSettings(retries=retries, concurrency=concurrency)
    sleep = sleep or FakeSleep()
    return ScimSource("source", config, settings, sleep=sleep, clock=sleep.clock)


def users_of(n: int) -> list[Body]:
    return [user(i) for i in range(1, n + 1)]


# --- request shapes and mapping ---------------------------------------------------------


def test_requests_carry_the_scim_media_type_the_token_and_the_paging(rsps: responses.RequestsMock) -> None:
    fake = FakeScim(rsps, users_of(2), max_results=50)
    source().read()
    lists = [c.request for c in rsps.calls if "/Users" in str(c.request.url)]
    assert [parse_qs(urlsplit(str(r.url)).query) for r in lists] == [{"startIndex": ["1"], "count": ["50"]}]
    assert all(c.request.headers["Accept"] == SCIM_JSON for c in rsps.calls)
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in rsps.calls)
    assert str(rsps.calls[0].request.url) == f"{BASE}/ServiceProviderConfig"  # read first
    assert fake.starts("/Groups") == [1]


def test_a_user_is_mapped_field_by_field(rsps: responses.RequestsMock) -> None:
    amara = {
        "schemas": [USER, ENTERPRISE_USER],
        "id": "2819c223",
        "externalId": "emp-0042",
        "userName": "amara.k@acme.test",
        "name": {"givenName": "Amara", "familyName": "Koné", "formatted": "Ms Amara Koné"},
        "displayName": "Amara K.",
        "emails": [{"value": "amara.k@acme.test", "type": "work", "primary": True}],
        "active": True,
        "title": "Staff Engineer",
        ENTERPRISE_USER: {"department": "R&D", "employeeNumber": "00701", "manager": {"value": "u9"}},
        "meta": {"resourceType": "User", "lastModified": "2026-01-09T17:30:00Z"},
    }
    FakeScim(rsps, [amara])
    (got,) = source().read().users
    assert (got.id, got.username, got.email) == ("2819c223", "amara.k@acme.test", "amara.k@acme.test")
    assert (got.first_name, got.last_name, got.display_name, got.active) == (
        "Amara",
        "Koné",
        "Amara K.",
        True,
    )
    # The raw resource minus schemas and meta; the enterprise fields also at the top.
    assert got.attributes == {
        "id": "2819c223",
        "externalId": "emp-0042",
        "userName": "amara.k@acme.test",
        "name": {"givenName": "Amara", "familyName": "Koné", "formatted": "Ms Amara Koné"},
        "displayName": "Amara K.",
        "emails": [{"value": "amara.k@acme.test", "type": "work", "primary": True}],
        "active": True,
        "title": "Staff Engineer",
        ENTERPRISE_USER: {"department": "R&D", "employeeNumber": "00701", "manager": {"value": "u9"}},
        "department": "R&D",
        "employeeNumber": "00701",
        "manager": {"value": "u9"},
    }


def test_a_core_attribute_wins_over_the_enterprise_field_of_the_same_name() -> None:
    resource = user(1, department="core", **{ENTERPRISE_USER: {"department": "ext", "costCenter": "4130"}})
    (got,) = to_directory("source", [resource], []).users
    assert (got.attributes["department"], got.attributes["costCenter"]) == ("core", "4130")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"displayName": "Shown"}, "Shown"),
        ({"name": {"givenName": "Ana", "familyName": "Lima", "formatted": "Dr Ana Lima"}}, "Dr Ana Lima"),
        ({"name": {"givenName": "Ana", "familyName": "Lima"}}, "Ana Lima"),
        ({"name": {"familyName": "Lima"}}, "Lima"),
    ],
)
def test_display_name_falls_back_to_formatted_then_first_and_last(fields: Body, expected: str) -> None:
    (got,) = to_directory("source", [user(1, **fields)], []).users
    assert got.display_name == expected


def test_active_absent_is_active_and_false_is_inactive() -> None:
    absent = user(1)
    del absent["active"]
    got = to_directory("source", [absent, user(2, active=False)], []).users
    assert [u.active for u in got] == [True, False]


def test_active_that_is_not_a_boolean_is_refused() -> None:
    with pytest.raises(ResponseError) as caught:
        to_directory("source", [user(1, active="false")], [])
    assert str(caught.value) == "source: user id 'u1': active is not true or false"


@pytest.mark.parametrize(
    ("emails", "expected"),
    [
        (
            [
                {"value": "w@x.test", "type": "work"},
                {"value": "h@x.test", "type": "home", "primary": True},
            ],
            "h@x.test",
        ),
        ([{"value": "h@x.test", "type": "home"}, {"value": "w@x.test", "type": "Work"}], "w@x.test"),
        ([{"value": "h@x.test", "type": "home"}, {"value": "o@x.test", "type": "other"}], "h@x.test"),
        ([{"type": "work", "primary": True}, {"value": "h@x.test", "type": "home"}], "h@x.test"),
        ([], ""),
        (None, ""),
    ],
    ids=["primary-first", "work-next", "else-first", "no-value-skipped", "empty", "absent"],
)
def test_the_email_is_the_primary_then_work_then_the_first(emails: Any, expected: str) -> None:
    (got,) = to_directory("source", [user(1, emails=emails)], []).users
    assert got.email == expected


def test_two_primary_emails_are_refused() -> None:
    emails = [{"value": "a@x.test", "primary": True}, {"value": "b@x.test", "primary": True}]
    with pytest.raises(ResponseError) as caught:
        to_directory("source", [user(1, emails=emails)], [])
    assert str(caught.value) == "source: user id 'u1': 2 emails are marked primary"


def test_non_ascii_names_survive_a_utf8_body_without_charset(rsps: responses.RequestsMock) -> None:
    zoe = user(1, userName="zoë.ørsted@acme.test", name={"givenName": "Zoë", "familyName": "Ørsted"})
    li = user(2, userName="li.xiaolong", displayName="李小龍")
    body = json.dumps(list_page([zoe, li], 2, 1), ensure_ascii=False).encode()
    rsps.add(responses.GET, f"{BASE}/ServiceProviderConfig", status=404)
    rsps.add(responses.GET, f"{BASE}/Users", body=body, content_type=SCIM_JSON)
    rsps.add(
        responses.GET, f"{BASE}/Groups", json=list_page([group("g1", "Ünïcode-Gruppe", ("u1", "User"))], 1, 1)
    )
    directory = source().read()
    assert [(u.username, u.display_name, u.groups) for u in directory.users] == [
        ("zoë.ørsted@acme.test", "Zoë Ørsted", ("Ünïcode-Gruppe",)),
        ("li.xiaolong", "李小龍", ()),
    ]


def test_an_active_user_without_username_is_an_error_naming_the_resource() -> None:
    nameless = user(7, externalId="emp-7")
    del nameless["userName"]
    with pytest.raises(ResponseError) as caught:
        to_directory("source", [user(1), nameless], [])
    assert str(caught.value) == "source: user id 'u7' (externalId 'emp-7'): an active user without a userName"


def test_an_inactive_user_without_username_is_still_read() -> None:
    leaver = user(7, active=False)
    del leaver["userName"]
    (got,) = to_directory("source", [leaver], []).users
    assert (got.id, got.username, got.active) == ("u7", "", False)


def test_a_username_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ResponseError, match=r"^source: user id 'u1': userName is not a string$"):
        to_directory("source", [user(1, userName=12)], [])


# --- groups -------------------------------------------------------------------------------


def test_nested_groups_are_flattened_and_a_cycle_is_safe() -> None:
    users = users_of(4)
    groups = [
        group("ga", "all-staff", ("gb", "Group"), ("u1", "User")),
        group("gb", "engineering", ("gc", "Group"), ("u2", "User")),
        group("gc", "platform", ("ga", "Group"), ("u3", "User")),  # back to all-staff: a cycle
        group("gd", "sales", ("u4", "User"), ("u3", "User")),
    ]
    directory = to_directory("source", users, groups)
    in_all = ("all-staff", "engineering", "platform")
    assert {u.id: u.groups for u in directory.users} == {
        "u1": in_all,
        "u2": in_all,
        "u3": (*in_all, "sales"),
        "u4": ("sales",),
    }
    assert directory.groups == (
        Group("ga", "all-staff", ("u1", "u2", "u3")),
        Group("gb", "engineering", ("u1", "u2", "u3")),
        Group("gc", "platform", ("u1", "u2", "u3")),
        Group("gd", "sales", ("u3", "u4")),
    )


def test_a_chain_of_nesting_flows_only_downwards() -> None:
    groups = [group("top", "top", ("mid", "Group")), group("mid", "mid", ("u1", "User"), ("low", "Group"))]
    groups.append(group("low", "low", ("u2", "User")))
    directory = to_directory("source", users_of(3), groups)
    assert {u.id: u.groups for u in directory.users} == {
        "u1": ("top", "mid"),
        "u2": ("top", "mid", "low"),
        "u3": (),
    }


def test_members_without_a_type_are_told_apart_by_their_id() -> None:
    groups = [group("g1", "outer", ("g2", None), ("u1", None)), group("g2", "inner", ("u2", None))]
    directory = to_directory("source", users_of(2), groups)
    assert [u.groups for u in directory.users] == [("outer",), ("outer", "inner")]


def test_a_member_that_is_no_user_read_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    groups = [group("g1", "team", ("u1", "User"), ("gone", "User"), ("ghost", None))]
    directory = to_directory("source", users_of(1), groups)
    assert directory.groups == (Group("g1", "team", ("u1",)),)
    assert "group id 'g1' lists member 'gone', not among the users read; ignored" in caplog.text
    assert "'ghost'" in caplog.text


def test_a_nested_group_that_groups_did_not_list_is_an_error() -> None:
    # Its members could not be flattened: reading on would drop memberships.
    with pytest.raises(ResponseError) as caught:
        to_directory("source", users_of(1), [group("g1", "team", ("g-missing", "Group"))])
    assert str(caught.value) == (
        "source: group id 'g1': nested group 'g-missing' is not among the groups /Groups listed"
    )


@pytest.mark.parametrize(
    ("resource", "cause"),
    [
        ({"schemas": [GROUP], "id": "g1", "members": []}, "no displayName"),
        ({**group("g1", "x"), "members": [{"type": "User"}]}, "a member without a value"),
        (
            {**group("g1", "x"), "members": [{"value": "u1", "type": "Device"}]},
            "member 'u1' has the type 'Device'",
        ),
        ({**group("g1", "x"), "members": {"value": "u1"}}, "members is not a list"),
    ],
)
def test_a_malformed_group_is_an_error_naming_it(resource: Body, cause: str) -> None:
    with pytest.raises(ResponseError) as caught:
        to_directory("source", users_of(1), [resource])
    assert str(caught.value).startswith(f"source: group id 'g1': {cause}")


def test_groups_from_the_user_resource_and_from_groups_are_reconciled() -> None:
    # /Groups lists u1 in "eng" only; u1's own groups add "staff" (indirect) and "eng" again.
    own = [{"value": "g2", "display": "staff", "type": "indirect"}, {"value": "g1", "type": "direct"}]
    users = [user(1, groups=own), user(2)]
    groups = [group("g1", "eng", ("u1", "User")), group("g2", "staff", ("u2", "User"))]
    directory = to_directory("source", users, groups)
    assert [u.groups for u in directory.users] == [("eng", "staff"), ("staff",)]
    assert directory.groups == (Group("g1", "eng", ("u1",)), Group("g2", "staff", ("u1", "u2")))


def test_a_user_in_a_group_groups_did_not_list_is_an_error() -> None:
    users = [user(1, groups=[{"value": "g-hidden", "display": "admins"}])]
    with pytest.raises(ResponseError) as caught:
        to_directory("source", users, [])
    assert (
        str(caught.value)
        == "source: user id 'u1': its groups name group 'g-hidden', which /Groups did not list"
    )


def test_group_names_that_differ_only_in_case_are_named_once_on_the_user() -> None:
    groups = [group("g1", "Engineering", ("u1", "User")), group("g2", "engineering", ("u1", "User"))]
    directory = to_directory("source", users_of(1), groups)
    assert directory.users[0].groups == ("Engineering",)
    assert [g.member_ids for g in directory.groups] == [("u1",), ("u1",)]


# --- paging -------------------------------------------------------------------------------


def test_short_pages_never_end_the_read_and_each_page_starts_on_the_last_one_read(
    rsps: responses.RequestsMock,
) -> None:
    # count is 10, but the service serves 2 + startIndex % 5: each page starts on the last
    # user of the page before (pages overlap by one), and only totalResults ends the read.
    fake = FakeScim(rsps, users_of(23), serve_at_most=lambda start: 2 + start % 5)
    directory = source(concurrency=1).read()
    assert [u.id for u in directory.users] == [f"u{i}" for i in range(1, 24)]
    assert fake.asked["/Users"] == [(s, 10) for s in (1, 3, 7, 10, 11, 13, 17, 20, 21)]


def test_short_pages_read_in_parallel_waves_still_give_every_user_once(rsps: responses.RequestsMock) -> None:
    fake = FakeScim(rsps, users_of(40), serve_at_most=lambda start: 4 if start % 3 else 2)
    directory = source(concurrency=4).read()
    assert [u.id for u in directory.users] == [f"u{i}" for i in range(1, 41)]
    starts = set(fake.starts())
    chain, at, last = [], 1, 0  # the pages kept: each starts on the last user the kept ones read
    while last < 40:
        chain.append(at)
        last = at + min(10, 4 if at % 3 else 2) - 1
        at = last
    assert set(chain) <= starts


def test_full_pages_after_the_first_are_asked_for_at_once(rsps: responses.RequestsMock) -> None:
    fake = FakeScim(rsps, users_of(35), max_results=10)
    directory = source(concurrency=8).read()
    assert len(directory.users) == 35
    assert fake.starts() == [1, 10, 19, 28]  # overlapping by one; no page past totalResults, none twice


def test_a_service_that_serves_fewer_than_count_is_paged_by_what_it_serves(
    rsps: responses.RequestsMock,
) -> None:
    # An unannounced cap of 5: the waves step by 4 (5 less the overlap), so no request is wasted.
    fake = FakeScim(rsps, users_of(20), serve_at_most=lambda start: 5)
    assert len(source(concurrency=8).read().users) == 20
    assert fake.starts() == [1, 5, 9, 13, 17]


def test_the_page_size_is_the_service_maximum_or_100_and_never_above_it(rsps: responses.RequestsMock) -> None:
    fake = FakeScim(rsps, users_of(3), max_results=7)
    source(page_size=50).read()
    source(page_size=2).read()
    source().read()
    assert [c for _, c in fake.asked["/Users"]][:1] == [7]
    assert {c for _, c in fake.asked["/Users"]} == {7, 2}
    assert page_size(None) == 100
    assert page_size(None, 30) == 30
    assert page_size(ServiceConfig(max_results=1000)) == 1000
    assert page_size(ServiceConfig(max_results=40), 50) == 40


def test_a_missing_service_provider_config_is_not_fatal(rsps: responses.RequestsMock) -> None:
    fake = FakeScim(rsps, users_of(3), max_results=None)
    assert len(source().read().users) == 3
    assert fake.asked["/Users"] == [(1, 100)]


def test_a_total_that_moves_once_restarts_the_read(rsps: responses.RequestsMock) -> None:
    everyone = users_of(25)
    calls = {"n": 0}

    def grow(path: str, start: int, body: Body) -> Body:
        # A user is added while page 2 is read; the second read sees 26 throughout.
        if path == "/Users" and start == 10 and calls["n"] == 0:
            calls["n"] += 1
            everyone.append(user(26))
            return list_page(everyone[9:19], 26, 10)
        return body

    fake = FakeScim(rsps, everyone, tamper=grow)
    directory = source(concurrency=1).read()
    assert [u.id for u in directory.users] == [f"u{i}" for i in range(1, 27)]
    assert fake.starts()[:3] == [1, 1, 10]  # restarted from the first page


def test_a_total_that_keeps_moving_fails_naming_the_source_and_list(rsps: responses.RequestsMock) -> None:
    moved = {"n": 0}

    def churn(path: str, start: int, body: Body) -> Body:
        if start > 1:
            moved["n"] += 1
            body["totalResults"] += moved["n"]
        return body

    FakeScim(rsps, users_of(25), tamper=churn)
    with pytest.raises(ResponseError) as caught:
        source(concurrency=1).read()
    assert str(caught.value) == (
        "source: GET /Users: totalResults changed while reading, twice (25 -> 27 at startIndex 10): "
        "the directory is changing; run again later"
    )


def test_an_empty_page_before_the_total_is_a_truncated_list(rsps: responses.RequestsMock) -> None:
    def cut(path: str, start: int, body: Body) -> Body:
        return {**body, "Resources": []} if start == 19 else body

    FakeScim(rsps, users_of(30), tamper=cut)
    with pytest.raises(ResponseError) as caught:
        source().read()
    assert str(caught.value) == (
        "source: GET /Users startIndex=19: an empty page after 19 of 30 users: the list is truncated"
    )


def test_a_resource_read_twice_fails_naming_the_pages(rsps: responses.RequestsMock) -> None:
    def repeat(path: str, start: int, body: Body) -> Body:
        if start == 10:
            body["Resources"][3] = user(2)
        return body

    FakeScim(rsps, users_of(25), tamper=repeat)
    with pytest.raises(ResponseError) as caught:
        source().read()
    assert str(caught.value) == (
        "source: GET /Users startIndex=10: user id 'u2' was already read in the page at startIndex 1: "
        "the paging is inconsistent"
    )


def test_a_resource_twice_in_one_page_fails(rsps: responses.RequestsMock) -> None:
    FakeScim(rsps, [user(1), user(2), user(1)])
    with pytest.raises(ResponseError, match="user id 'u1' was already read in this page"):
        source().read()


def test_a_page_that_ignores_start_index_is_refused(rsps: responses.RequestsMock) -> None:
    def first_page_again(path: str, start: int, body: Body) -> Body:
        return {**body, "startIndex": 1} if start > 1 else body

    FakeScim(rsps, users_of(15), tamper=first_page_again)
    with pytest.raises(ResponseError) as caught:
        source().read()
    assert str(caught.value) == (
        "source: GET /Users startIndex=10: asked for startIndex 10, got a page that says startIndex 1"
    )


def test_more_resources_than_the_total_is_an_error(rsps: responses.RequestsMock) -> None:
    def undercount(path: str, start: int, body: Body) -> Body:
        return {**body, "totalResults": 2} if path == "/Users" else body

    FakeScim(rsps, users_of(3), tamper=undercount)
    with pytest.raises(ResponseError, match=r"startIndex=1: 3 users received, more than totalResults \(2\)$"):
        source().read()


def test_an_empty_directory_may_leave_out_resources(rsps: responses.RequestsMock) -> None:
    def bare(path: str, start: int, body: Body) -> Body:
        return {"schemas": [LIST_RESPONSE], "totalResults": 0}

    FakeScim(rsps, [], tamper=bare)
    assert source().read().users == ()


def test_progress_reports_each_page(rsps: responses.RequestsMock) -> None:
    FakeScim(rsps, users_of(12), [group("g1", "team")])
    seen: list[tuple[str, int, int | None]] = []
    source(concurrency=1).read(progress=lambda what, done, total: seen.append((what, done, total)))
    assert seen == [("users", 10, 12), ("users", 12, 12), ("groups", 1, 1)]


# --- answers that are not what SCIM documents ---------------------------------------------


def test_an_html_answer_names_the_page(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, f"{BASE}/ServiceProviderConfig", status=404)
    html = "<html><head><title>Sign in</title></head><body>Corporate proxy</body></html>"
    rsps.add(responses.GET, f"{BASE}/Users", body=html, content_type="text/html")
    with pytest.raises(ResponseError) as caught:
        source().read()
    assert str(caught.value) == (
        "source: GET /Users startIndex=1: expected JSON, got text/html: "
        "<html><head><title>Sign in</title></head><body>Corporate proxy</body></html>"
    )


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        ({"users": []}, f"not a SCIM ListResponse (its schemas do not name {LIST_RESPONSE})"),
        ([user(1)], "not a SCIM ListResponse: a JSON array"),
        ({"schemas": [LIST_RESPONSE], "Resources": []}, "a ListResponse without a valid totalResults"),
        ({"schemas": [LIST_RESPONSE], "totalResults": "3"}, "a ListResponse without a valid totalResults"),
        (
            {"schemas": [LIST_RESPONSE], "totalResults": 3},
            "a ListResponse without a Resources list (totalResults is 3)",
        ),
        (
            {"schemas": [LIST_RESPONSE], "totalResults": 1, "Resources": [{"userName": "x"}]},
            "resource 1 of the page has no id",
        ),
        (
            scim_error(400, "invalidFilter", "Filter attribute 'foo' is not supported"),
            "a SCIM error instead of a ListResponse: status 400, scimType invalidFilter: "
            "Filter attribute 'foo' is not supported",
        ),
    ],
    ids=["no-schemas", "array", "no-total", "string-total", "no-resources", "no-id", "error-body-200"],
)
def test_a_body_that_is_not_a_list_response_names_the_page_and_cause(
    rsps: responses.RequestsMock, body: Any, cause: str
) -> None:
    rsps.add(responses.GET, f"{BASE}/ServiceProviderConfig", status=404)
    rsps.add(responses.GET, f"{BASE}/Users", json=body)
    with pytest.raises(ResponseError) as caught:
        source().read()
    assert str(caught.value) == f"source: GET /Users startIndex=1: {cause}"


def test_a_scim_error_status_names_scim_type_and_detail(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, f"{BASE}/ServiceProviderConfig", status=404)
    rsps.add(responses.GET, f"{BASE}/Users", status=400, json=scim_error(400, "tooMany", "Too many results"))
    with pytest.raises(ConnectorError) as caught:
        source().read()
    assert (
        str(caught.value)
        == "source: GET /Users startIndex=1: HTTP 400 Bad Request: scimType tooMany: Too many results"
    )


def test_a_page_that_fails_after_retries_aborts_the_whole_read(rsps: responses.RequestsMock) -> None:
    # Pages 1 and 2 are fine, the third keeps failing: an exception, never 19 users.
    busy = (502, {"Content-Type": "text/plain"}, "busy")  # a 503 would be waited out on a time budget
    FakeScim(rsps, users_of(25), intercept=lambda path, start: busy if start == 19 else None)
    sleep = FakeSleep()
    with pytest.raises(ConnectorError) as caught:
        source(sleep=sleep, retries=2).read()
    assert str(caught.value) == (
        "source: GET /Users startIndex=19: HTTP 502 Bad Gateway: "
        "not a SCIM error body (text/plain): busy (3 attempts)"
    )
    assert len(sleep.sleeps) == 2


def test_429_with_retry_after_is_waited_out_and_the_read_completes(rsps: responses.RequestsMock) -> None:
    limited: list[int] = []

    def once_limited(path: str, start: int) -> Reply | None:
        if start != 10 or limited:
            return None
        limited.append(start)
        return (
            429,
            {"Retry-After": "7", "Content-Type": SCIM_JSON},
            json.dumps(scim_error(429, "", "slow down")),
        )

    FakeScim(rsps, users_of(15), intercept=once_limited)
    sleep = FakeSleep()
    directory = source(sleep=sleep).read()
    assert [u.id for u in directory.users] == [f"u{i}" for i in range(1, 16)]
    assert (limited, sleep.sleeps) == ([10], [7.0])  # waited exactly what Retry-After said


# --- credentials ----------------------------------------------------------------------------


def test_401_is_an_auth_error_saying_to_check_the_token(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, f"{BASE}/ServiceProviderConfig", status=404)
    rsps.add(responses.GET, f"{BASE}/Users", status=401, json=scim_error(401, "", f"bad token {TOKEN}"))
    with pytest.raises(AuthError) as caught:
        source().read()
    assert str(caught.value) == (
        "source: GET /Users startIndex=1: HTTP 401 Unauthorized: "
        "the credentials were rejected; check source.token"
    )


def test_401_names_the_schemes_the_service_announces_when_ours_is_not_one(
    rsps: responses.RequestsMock,
) -> None:
    spc = {"filter": {"maxResults": 10}, "authenticationSchemes": [{"type": "httpbasic", "name": "Basic"}]}
    rsps.add(responses.GET, f"{BASE}/ServiceProviderConfig", json=spc)
    rsps.add(responses.GET, f"{BASE}/Users", status=401)
    with pytest.raises(AuthError, match=r"check source.token; the service announces: httpbasic$"):
        source().read()


def test_403_says_the_token_must_allow_reading(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, f"{BASE}/ServiceProviderConfig", status=403, json={"error": "forbidden"})
    with pytest.raises(AuthError) as caught:
        source().read()
    assert str(caught.value) == (
        "source: GET /ServiceProviderConfig: HTTP 403 Forbidden: forbidden; "
        "check source.token (it must allow reading Users and Groups)"
    )
    assert TOKEN not in repr(caught.value.args)


def test_basic_credentials_are_sent_as_basic_auth(rsps: responses.RequestsMock) -> None:
    FakeScim(rsps, users_of(1))
    config = ScimSourceConfig.model_validate(
        {"type": "scim", "url": BASE, "username": "sync", "password": "pa55word"}
    )
    ScimSource("source", config, HttpSettings()).read()
    assert rsps.calls[-1].request.headers["Authorization"] == "Basic c3luYzpwYTU1d29yZA=="


def test_a_wrong_url_says_to_check_it(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, f"{BASE}/ServiceProviderConfig", status=404)
    rsps.add(responses.GET, f"{BASE}/Users", status=404, body="Not Found", content_type="text/plain")
    with pytest.raises(NotFoundError, match=r"check source.url: it must be the SCIM base URL"):
        source().read()


def test_check_reads_one_user_for_the_total(rsps: responses.RequestsMock) -> None:
    fake = FakeScim(rsps, users_of(3))
    assert source().check() == "SCIM service with 3 users"
    assert fake.asked["/Users"] == [(1, 1)]


# --- config and registry -----------------------------------------------------------------------


def scim_config(**keys: Any) -> Any:
    data = {
        "version": 1,
        "source": {"type": "scim", "url": BASE, **keys},
        "targets": {"jira": {"type": "jira", "url": "https://jira.example", "token": "t0ken"}},
    }
    return parse_config(data, base_dir=Path("/srv"), env={})


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({}, "source: credentials missing: set token, or username and password"),
        (
            {"token": "t0ken", "password": "p4ss"},
            "source: set either token, or username and password, not both",
        ),
        ({"username": "sync"}, "source.password: required when username is set"),
        ({"token": "t0ken", "page_size": 0}, "source.page_size"),
    ],
)
def test_scim_credentials_and_page_size_are_validated(keys: Body, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        scim_config(**keys)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_the_registry_builds_the_scim_source() -> None:
    built = build_source(scim_config(token="t0ken", page_size=50))
    assert isinstance(built, ScimSource) and (built.name, built.type) == ("source", "scim")
    built.close()


# --- scim_protocol pieces -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("amara.k@example.test", 'userName eq "amara.k@example.test"'),
        ('o"brien', 'userName eq "o\\"brien"'),
        ("back\\slash", 'userName eq "back\\\\slash"'),
        ("zoë", 'userName eq "zoë"'),
        ("tab\there", 'userName eq "tab\\there"'),
    ],
)
def test_filter_values_are_json_strings(value: str, expected: str) -> None:
    assert eq_filter("userName", value) == expected
    assert json.loads(filter_value(value)) == value


def test_a_filter_attribute_must_be_an_attribute_path() -> None:
    assert eq_filter("emails.value", "a@b") == 'emails.value eq "a@b"'
    with pytest.raises(ValueError, match="not a SCIM attribute path"):
        eq_filter('userName eq "x" or userName', "y")


def scim_response(status: int, body: Any, content_type: str = SCIM_JSON) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers["Content-Type"] = content_type
    response._content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return response


@pytest.mark.parametrize(
    ("response", "line"),
    [
        (
            scim_response(409, scim_error(409, "uniqueness", "userName\n taken")),
            "scimType uniqueness: userName taken",
        ),
        (scim_response(400, scim_error(409, "", "odd")), "status 409: odd"),
        (scim_response(500, {"schemas": [ERROR], "status": "500"}), "a SCIM error without detail"),
        (
            scim_response(401, {"error": "invalid api key", "traceId": "t1"}, "application/json"),
            "invalid api key",
        ),
        (
            scim_response(502, "<html>Bad gateway</html>", "text/html"),
            "not a SCIM error body (text/html): <html>Bad gateway</html>",
        ),
        (scim_response(503, "", "text/plain"), "an empty body (text/plain)"),
    ],
    ids=["scim", "status-differs", "no-detail", "atlassian-401", "html", "empty"],
)
def test_error_bodies_become_one_line(response: requests.Response, line: str) -> None:
    assert parse_error(response) == line


def test_read_error_recognises_only_scim_error_bodies() -> None:
    assert read_error({"status": "400", "detail": "x"}) is None
    assert read_error(scim_error(400, "invalidValue", "bad")) == ScimError("400", "invalidValue", "bad")
    assert read_error({"schemas": [ERROR], "status": 404}) == ScimError("404", "", "")


def test_a_leaver_and_a_hire_between_pages_restart_the_read_and_nobody_is_skipped(
    rsps: responses.RequestsMock,
) -> None:
    everyone = users_of(25)
    moved: list[int] = []

    def leave_and_hire(path: str, start: int, body: Body) -> Body:
        # u1 (read on page 1) leaves and u26 joins: totalResults stays 25, every later user moves
        # back by one, and a page asked at startIndex 11 would skip u11.
        if path == "/Users" and start == 10 and not moved:
            moved.append(start)
            everyone[:] = [*everyone[1:], user(26)]
            return list_page(everyone[9:19], 25, 10)
        return body

    fake = FakeScim(rsps, everyone, tamper=leave_and_hire)
    directory = source(concurrency=1).read()
    assert [u.id for u in directory.users] == [f"u{i}" for i in range(2, 27)]
    assert fake.starts().count(1) == 2  # the moved page was seen, and the read began again


def test_pages_that_keep_moving_fail_naming_the_page(rsps: responses.RequestsMock) -> None:
    def shifted(path: str, start: int, body: Body) -> Body:
        if path == "/Users" and start > 1:
            body["Resources"] = [*body["Resources"][1:], user(99)]  # one further on every time
        return body

    FakeScim(rsps, users_of(25), tamper=shifted)
    with pytest.raises(ResponseError) as caught:
        source(concurrency=1).read()
    assert str(caught.value) == (
        "source: GET /Users startIndex=10: the page does not begin with the last user of the page before "
        "('u10'): users were added or removed during the read"
    )
