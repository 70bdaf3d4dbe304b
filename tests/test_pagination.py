"""Paginators: exact request shapes per paging style, stop rules, loop and garbage guards."""

from __future__ import annotations

from typing import Any

import pytest
import responses
from responses import matchers

from scimsync.errors import ResponseError
from scimsync.http import HttpClient
from scimsync.http.pagination import (
    OffsetList,
    cursor_pages,
    link_header_pages,
    next_link_pages,
    offset_pages,
    read_offset_lists,
)

JIRA = "https://jira.example"
OKTA = "https://acme.okta.example"
GRAPH = "https://graph.microsoft.com"


def client_for(base_url: str, system: str = "jira") -> HttpClient:
    return HttpClient(system, base_url, sleep=lambda s: None, clock=lambda: 0.0, rng=lambda: 0.0)


def query(**params: Any) -> list[Any]:
    return [matchers.query_param_matcher(params)]


def users(*names: str) -> list[dict[str, str]]:
    return [{"name": n} for n in names]


# -- cursor ----------------------------------------------------------------------------


@responses.activate
def test_cursor_omits_the_cursor_first_then_follows_next_cursor_until_is_last() -> None:
    url = f"{JIRA}/rest/api/2/user/list"
    responses.get(
        url, json={"values": users("a", "b"), "nextCursor": "c1", "isLast": False}, match=query(maxResults=2)
    )
    last = {"values": users("c"), "nextCursor": "c2", "isLast": True}
    responses.get(url, json=last, match=query(maxResults=2, cursor="c1"))

    pages = list(cursor_pages(client_for(JIRA), "/rest/api/2/user/list", params={"maxResults": 2}))

    assert pages == [users("a", "b"), users("c")]
    assert len(responses.calls) == 2


@responses.activate
def test_cursor_stops_when_no_next_cursor_comes_back_from_a_server_without_is_last() -> None:
    responses.get(f"{JIRA}/rest/api/2/user/list", json={"values": users("a")})

    assert list(cursor_pages(client_for(JIRA), "/rest/api/2/user/list")) == [users("a")]


@responses.activate
def test_cursor_is_last_true_ends_the_walk_even_with_a_cursor() -> None:
    body = {"values": users("a"), "nextCursor": "c1", "isLast": True}
    responses.get(f"{JIRA}/rest/api/2/user/list", json=body)

    assert list(cursor_pages(client_for(JIRA), "/rest/api/2/user/list")) == [users("a")]
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    ("second", "cause"),
    [
        ({"values": [], "isLast": False}, "page says isLast=false but has no nextCursor"),
        ({"values": [], "isLast": False, "nextCursor": ""}, "page says isLast=false but has no nextCursor"),
        ({"values": []}, "page has neither isLast=true nor a nextCursor"),
    ],
    ids=["no-cursor", "empty-cursor", "flag-gone"],
)
@responses.activate
def test_cursor_page_that_is_not_last_without_a_cursor_is_an_error(
    second: dict[str, Any], cause: str
) -> None:
    # Stopping here would return a short directory, and the engine would deprovision the rest.
    url = f"{JIRA}/rest/api/2/user/list"
    responses.get(url, json={"values": users("a"), "nextCursor": "c1", "isLast": False}, match=query())
    responses.get(url, json=second, match=query(cursor="c1"))

    with pytest.raises(ResponseError) as caught:
        list(cursor_pages(client_for(JIRA), "/rest/api/2/user/list"))

    assert str(caught.value) == f"jira: GET /rest/api/2/user/list: {cause}"


@responses.activate
def test_cursor_first_page_not_last_without_a_cursor_names_the_object() -> None:
    responses.get(f"{JIRA}/rest/api/2/user/list", json={"values": users("a"), "isLast": False})

    with pytest.raises(ResponseError) as caught:
        list(cursor_pages(client_for(JIRA), "/rest/api/2/user/list", obj="user list"))

    assert str(caught.value) == "jira: user list: page says isLast=false but has no nextCursor"


@responses.activate
def test_cursor_sent_twice_is_a_loop() -> None:
    url = f"{JIRA}/rest/api/2/user/list"
    responses.get(url, json={"values": users("a"), "nextCursor": "c1", "isLast": False}, match=query())
    responses.get(
        url, json={"values": users("b"), "nextCursor": "c1", "isLast": False}, match=query(cursor="c1")
    )

    with pytest.raises(ResponseError) as caught:
        list(cursor_pages(client_for(JIRA), "/rest/api/2/user/list", obj="user list"))

    assert str(caught.value) == "jira: user list: pagination loop: the server sent cursor 'c1' twice"


@responses.activate
def test_cursor_body_without_items_is_a_response_error() -> None:
    responses.get(f"{JIRA}/rest/api/2/user/list", json={"users": [], "isLast": True})

    with pytest.raises(ResponseError) as caught:
        list(cursor_pages(client_for(JIRA), "/rest/api/2/user/list"))

    assert str(caught.value) == (
        "jira: GET /rest/api/2/user/list: expected an object with a 'values' list in the response"
    )


# -- offset ----------------------------------------------------------------------------


@responses.activate
def test_offset_advances_by_the_items_returned_when_the_server_clamps_the_page() -> None:
    url = f"{JIRA}/rest/api/2/group/member"
    base = {"groupname": "devs", "maxResults": 100}
    # Jira clamps group/member pages to 50 whatever maxResults says (atlassian §1.8).
    page1 = {"values": users(*(f"u{i}" for i in range(50))), "isLast": False}
    page2 = {"values": users(*(f"u{i}" for i in range(50, 100))), "isLast": False}
    page3 = {"values": users("u100"), "isLast": True}
    responses.get(url, json=page1, match=query(**base, startAt=0))
    responses.get(url, json=page2, match=query(**base, startAt=50))
    responses.get(url, json=page3, match=query(**base, startAt=100))

    pages = list(
        offset_pages(
            client_for(JIRA), "/rest/api/2/group/member", params={"groupname": "devs"}, page_size=100
        )
    )

    assert [len(p) for p in pages] == [50, 50, 1]
    assert len(responses.calls) == 3


@responses.activate
def test_offset_bare_array_stops_on_a_short_page() -> None:
    url = f"{JIRA}/rest/api/2/user/search"
    responses.get(url, json=users("a", "b", "c"), match=query(username=".", startAt=0, maxResults=3))
    responses.get(url, json=users("d"), match=query(username=".", startAt=3, maxResults=3))

    pages = list(
        offset_pages(
            client_for(JIRA),
            "/rest/api/2/user/search",
            params={"username": "."},
            page_size=3,
            items_field=None,
            last_field=None,
        )
    )

    assert pages == [users("a", "b", "c"), users("d")]


@responses.activate
def test_offset_bare_array_ignores_the_default_last_field() -> None:
    url = f"{JIRA}/rest/api/2/user/search"
    responses.get(url, json=users("a"), match=query(startAt=0, maxResults=2))

    pages = list(offset_pages(client_for(JIRA), "/rest/api/2/user/search", page_size=2, items_field=None))

    assert pages == [users("a")]


@responses.activate
def test_offset_stops_on_an_empty_page_when_no_last_flag_comes_back() -> None:
    url = f"{JIRA}/rest/api/2/group/member"
    responses.get(url, json={"values": users("a", "b")}, match=query(startAt=0, maxResults=5))
    responses.get(url, json={"values": []}, match=query(startAt=2, maxResults=5))

    pages = list(offset_pages(client_for(JIRA), "/rest/api/2/group/member", page_size=5))

    assert pages == [users("a", "b")]
    assert len(responses.calls) == 2


@responses.activate
def test_offset_custom_parameter_names_and_start() -> None:
    url = "https://wiki.example/rest/api/group/devs/member"
    responses.get(url, json={"results": users("a")}, match=query(start=10, limit=2))

    pages = offset_pages(
        client_for("https://wiki.example", "confluence"),
        "/rest/api/group/devs/member",
        start_param="start",
        size_param="limit",
        page_size=2,
        start=10,
        items_field="results",
        last_field=None,
    )

    assert list(pages) == [users("a")]


@responses.activate
def test_offset_server_that_ignores_the_offset_is_a_loop() -> None:
    responses.get(f"{JIRA}/rest/api/2/group/member", json={"values": users("a", "b"), "isLast": False})

    with pytest.raises(ResponseError) as caught:
        list(offset_pages(client_for(JIRA), "/rest/api/2/group/member", page_size=2, obj="group devs"))

    assert (
        str(caught.value)
        == "jira: group devs: pagination loop: the server sent the same page at startAt=2 twice"
    )


@responses.activate
def test_offset_bare_array_expected_but_object_came() -> None:
    responses.get(f"{JIRA}/rest/api/2/user/search", json={"values": []})

    with pytest.raises(ResponseError, match="expected a JSON array in the response"):
        list(offset_pages(client_for(JIRA), "/rest/api/2/user/search", items_field=None))


# -- Link header -----------------------------------------------------------------------


@responses.activate
def test_link_header_follows_next_verbatim_across_repeated_link_headers() -> None:
    url = f"{OKTA}/api/v1/users"
    first_links = [
        ("Link", f'<{url}?limit=2>; rel="self"'),
        ("Link", f'<{url}?after=00uB%2Fx&limit=2>; rel="next"'),
    ]
    responses.get(url, json=users("a", "b"), headers=first_links, match=query(limit=2))
    responses.get(
        url,
        json=users("c"),
        headers=[("Link", f'<{url}?after=00uB%2Fx&limit=2>; rel="self"')],
        match=query(after="00uB/x", limit=2),
    )

    pages = list(link_header_pages(client_for(OKTA, "okta"), "/api/v1/users", params={"limit": 2}))

    assert pages == [users("a", "b"), users("c")]
    assert responses.calls[1].request.url == f"{url}?after=00uB%2Fx&limit=2"


@responses.activate
def test_link_header_next_listed_first_and_relative_target() -> None:
    url = f"{OKTA}/api/v1/groups"
    links = '</api/v1/groups?after=g2>; rel="next", <https://acme.okta.example/api/v1/groups>; rel="self"'
    responses.get(url, json=[{"id": "g1"}], headers={"Link": links}, match=query())
    responses.get(url, json=[{"id": "g2"}], match=query(after="g2"))

    pages = list(link_header_pages(client_for(OKTA, "okta"), "/api/v1/groups"))

    assert pages == [[{"id": "g1"}], [{"id": "g2"}]]


@responses.activate
def test_link_header_pointing_back_is_a_loop() -> None:
    url = f"{OKTA}/api/v1/users"
    responses.get(url, json=users("a"), headers={"Link": f'<{url}?after=x>; rel="next"'})

    with pytest.raises(ResponseError) as caught:
        list(link_header_pages(client_for(OKTA, "okta"), "/api/v1/users"))

    assert str(caught.value) == (
        f"okta: GET /api/v1/users: pagination loop: the server sent link '{url}?after=x' twice"
    )
    assert len(responses.calls) == 2


@responses.activate
def test_link_header_to_another_host_is_refused() -> None:
    responses.get(f"{OKTA}/api/v1/users", json=[], headers={"Link": '<https://evil.example/x>; rel="next"'})

    with pytest.raises(ResponseError, match=r"refusing to follow a link to evil\.example"):
        list(link_header_pages(client_for(OKTA, "okta"), "/api/v1/users"))


@responses.activate
def test_link_header_body_must_be_an_array() -> None:
    responses.get(f"{OKTA}/api/v1/users", json={"errorSummary": "odd"})

    with pytest.raises(ResponseError, match="expected a JSON array in the response"):
        list(link_header_pages(client_for(OKTA, "okta"), "/api/v1/users"))


# -- body next link --------------------------------------------------------------------


@responses.activate
def test_next_link_follows_the_absolute_link_in_the_body() -> None:
    url = f"{GRAPH}/v1.0/users"
    next_url = f"{url}?$select=id&$top=2&$skiptoken=X1"
    responses.get(
        url, json={"value": users("a", "b"), "@odata.nextLink": next_url}, match=query(**{"$top": 2})
    )
    responses.get(
        url, json={"value": users("c")}, match=query(**{"$select": "id", "$top": 2, "$skiptoken": "X1"})
    )

    pages = list(next_link_pages(client_for(GRAPH, "entra"), "/v1.0/users", params={"$top": 2}))

    assert pages == [users("a", "b"), users("c")]


@responses.activate
def test_next_link_sent_twice_is_a_loop() -> None:
    url = f"{GRAPH}/v1.0/users"
    responses.get(url, json={"value": [], "@odata.nextLink": f"{url}?$skiptoken=X"})

    with pytest.raises(ResponseError, match=r"pagination loop: the server sent link '.*skiptoken=X' twice"):
        list(next_link_pages(client_for(GRAPH, "entra"), "/v1.0/users"))


@responses.activate
def test_next_link_body_without_items_is_a_response_error() -> None:
    responses.get(f"{GRAPH}/v1.0/users", json={"values": []})

    with pytest.raises(ResponseError) as caught:
        list(next_link_pages(client_for(GRAPH, "entra"), "/v1.0/users", obj="users"))

    assert str(caught.value) == "entra: users: expected an object with a 'value' list in the response"


# -- several offset lists at once ------------------------------------------------------------


@responses.activate
def test_offset_lists_ask_every_remaining_page_from_the_first_pages_total() -> None:
    url = f"{JIRA}/rest/api/2/group/member"
    # devs: 120 members in clamped 50-pages; ops: one page; gone: 404 (atlassian §1.8).
    responses.get(
        url,
        json={"values": users(*(f"d{i}" for i in range(50))), "isLast": False, "total": 120},
        match=query(groupname="devs", startAt=0, maxResults=50),
    )
    for start, end in ((50, 100), (100, 120)):
        responses.get(
            url,
            json={"values": users(*(f"d{i}" for i in range(start, end))), "isLast": end == 120, "total": 120},
            match=query(groupname="devs", startAt=start, maxResults=50),
        )
    responses.get(
        url,
        json={"values": users("o1"), "isLast": True, "total": 1},
        match=query(groupname="ops", startAt=0, maxResults=50),
    )
    responses.get(
        url,
        status=404,
        json={"errorMessages": ["no"], "errors": {}},
        match=query(groupname="gone", startAt=0, maxResults=50),
    )

    lists = [OffsetList("/rest/api/2/group/member", {"groupname": g}) for g in ("devs", "ops", "gone")]
    found = read_offset_lists(client_for(JIRA), lists, page_size=50, missing_ok=True)

    assert found[0] is not None and [u["name"] for u in found[0]] == [f"d{i}" for i in range(120)]
    assert found[1] == users("o1")
    assert found[2] is None
    assert len(responses.calls) == 5  # 3 first pages + 2 remaining pages, none asked twice


@responses.activate
def test_offset_lists_without_a_total_are_walked() -> None:
    url = f"{JIRA}/items"
    responses.get(url, json={"values": [1, 2], "isLast": False}, match=query(startAt=0, maxResults=2))
    responses.get(url, json={"values": [3], "isLast": True}, match=query(startAt=2, maxResults=2))

    found = read_offset_lists(client_for(JIRA), [OffsetList("/items", {})], page_size=2)

    assert found == [[1, 2, 3]]


@responses.activate
def test_offset_lists_404_is_an_error_unless_missing_is_ok() -> None:
    from scimsync.errors import NotFoundError

    responses.get(f"{JIRA}/items", status=404, json={"errorMessages": ["gone"], "errors": {}})
    with pytest.raises(NotFoundError):
        read_offset_lists(client_for(JIRA), [OffsetList("/items", {})])


def member_page(start: int, end: int, *, total: int, last: bool) -> dict[str, Any]:
    return {"values": users(*(f"d{i}" for i in range(start, end))), "total": total, "isLast": last}


@responses.activate
def test_offset_lists_read_on_when_members_were_added_during_the_read() -> None:
    url = f"{JIRA}/rest/api/2/group/member"
    # The first page says 100; by the second page 130 are there, and its isLast is false.
    responses.get(url, json=member_page(0, 50, total=100, last=False), match=query(startAt=0, maxResults=50))
    responses.get(
        url, json=member_page(50, 100, total=130, last=False), match=query(startAt=50, maxResults=50)
    )
    responses.get(
        url, json=member_page(100, 130, total=130, last=True), match=query(startAt=100, maxResults=50)
    )

    found = read_offset_lists(client_for(JIRA), [OffsetList("/rest/api/2/group/member", {})], page_size=50)

    assert found[0] is not None and [u["name"] for u in found[0]] == [f"d{i}" for i in range(130)]
    assert len(responses.calls) == 3


@responses.activate
def test_offset_lists_read_on_when_a_single_page_total_is_not_last() -> None:
    url = f"{JIRA}/rest/api/2/group/member"
    responses.get(url, json=member_page(0, 2, total=2, last=False), match=query(startAt=0, maxResults=2))
    responses.get(url, json=member_page(2, 3, total=3, last=True), match=query(startAt=2, maxResults=2))

    found = read_offset_lists(client_for(JIRA), [OffsetList("/rest/api/2/group/member", {})], page_size=2)

    assert found == [users("d0", "d1", "d2")]


@responses.activate
def test_offset_lists_fewer_items_than_the_total_on_an_is_last_page_are_whole() -> None:
    url = f"{JIRA}/rest/api/2/group/member"
    # Members removed while the list was read: the total said 120, the last page ends at 95.
    responses.get(url, json=member_page(0, 50, total=120, last=False), match=query(startAt=0, maxResults=50))
    responses.get(url, json=member_page(50, 95, total=95, last=True), match=query(startAt=50, maxResults=50))
    responses.get(url, json=member_page(95, 95, total=95, last=True), match=query(startAt=100, maxResults=50))

    found = read_offset_lists(client_for(JIRA), [OffsetList("/rest/api/2/group/member", {})], page_size=50)

    assert found[0] is not None and len(found[0]) == 95
    assert len(responses.calls) == 3  # no walk after an isLast page


def _endless_empty_links(request: Any) -> tuple[int, dict[str, str], str]:
    """Answer an empty page that links on to a fresh, never-seen page (a broken server)."""
    after = int(request.params.get("after") or 0) + 1
    link = f'<{OKTA}/api/v1/users?after={after}>; rel="next"'
    return 200, {"Link": link, "Content-Type": "application/json"}, "[]"


@responses.activate
def test_link_header_endless_empty_pages_with_fresh_links_are_refused() -> None:
    responses.add_callback(responses.GET, f"{OKTA}/api/v1/users", callback=_endless_empty_links)

    with pytest.raises(ResponseError) as caught:
        list(link_header_pages(client_for(OKTA, "okta"), "/api/v1/users"))

    assert str(caught.value) == (
        "okta: GET /api/v1/users: pages 1-3 are empty but each links to a next page: an endless list"
    )
    assert len(responses.calls) == 3


@responses.activate
def test_next_link_two_empty_pages_then_items_are_read_whole() -> None:
    url = f"{GRAPH}/v1.0/users"
    responses.get(url, json={"value": [], "@odata.nextLink": f"{url}?t=1"}, match=query())
    responses.get(url, json={"value": [], "@odata.nextLink": f"{url}?t=2"}, match=query(t="1"))
    responses.get(url, json={"value": [{"id": "a"}]}, match=query(t="2"))

    pages = list(next_link_pages(client_for(GRAPH, "entra"), "/v1.0/users"))

    assert pages == [[], [], [{"id": "a"}]]
