"""The OneLogin simulator is as strict as idp-apis §4 says: tokens, paging, caps, errors, budget."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from scimsync.sim.company import make_people
from scimsync.sim.onelogin import GROUPS, ROLES, TOKEN, USERS, OneLoginSim
from scimsync.sim.onelogin_api import Paging
from scimsync.sim.server import SimServer

ID, SECRET = "sim-onelogin-client", "sim-onelogin-secret"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> OneLoginSim:
    return OneLoginSim(clock=clock)


@pytest.fixture
def url(sim: OneLoginSim) -> Iterator[str]:
    with SimServer(sim.app) as server:
        yield server.url


def token(url: str) -> str:
    response = requests.post(
        url + TOKEN, data={"grant_type": "client_credentials"}, auth=(ID, SECRET), timeout=5
    )
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


def get(url: str, path: str, bearer: str, **params: Any) -> requests.Response:
    return requests.get(url + path, params=params, headers={"Authorization": f"Bearer {bearer}"}, timeout=5)


def envelope(code: int, kind: str, message: str) -> dict[str, Any]:
    return {"status": {"error": True, "code": code, "type": kind, "message": message}}


def seed_users(sim: OneLoginSim, count: int) -> list[int]:
    return [sim.add_user(f"u{n:03d}", f"u{n:03d}@acme.test", "Given", f"Family{n}") for n in range(count)]


# --- token endpoint (§4.1) -------------------------------------------------------------


def test_the_token_endpoint_takes_each_documented_form_of_the_credentials(url: str) -> None:
    pair = f"client_id:{ID}, client_secret:{SECRET}"
    documented = requests.post(
        url + TOKEN, json={"grant_type": "client_credentials"}, headers={"Authorization": pair}, timeout=5
    )
    basic = requests.post(
        url + TOKEN, data={"grant_type": "client_credentials"}, auth=(ID, SECRET), timeout=5
    )
    form = {"grant_type": "client_credentials", "client_id": ID, "client_secret": SECRET}
    in_body = requests.post(url + TOKEN, data=form, timeout=5)
    bodies = [r.json() for r in (documented, basic, in_body)]
    assert [r.status_code for r in (documented, basic, in_body)] == [200, 200, 200]
    # §4.1: the same token until it expires, 10 hours by default.
    assert len({b["access_token"] for b in bodies}) == 1
    assert bodies[0]["expires_in"] == 36000
    assert bodies[0]["token_type"] == "bearer"
    assert set(bodies[0]) == {
        "access_token",
        "created_at",
        "expires_in",
        "refresh_token",
        "token_type",
        "account_id",
    }


def test_the_token_endpoint_refuses_a_wrong_secret_and_a_missing_grant_type(url: str) -> None:
    wrong = requests.post(
        url + TOKEN, data={"grant_type": "client_credentials"}, auth=(ID, "nope"), timeout=5
    )
    no_grant = requests.post(url + TOKEN, data={"grant": "x"}, auth=(ID, SECRET), timeout=5)
    plain = requests.post(url + TOKEN, json={"grant_type": "client_credentials"}, timeout=5)
    assert (wrong.status_code, wrong.json()) == (401, envelope(401, "Unauthorized", "Authentication Failure"))
    assert (no_grant.status_code, no_grant.json()) == (
        400,
        envelope(400, "bad request", "grant_type is incorrect/absent"),
    )
    assert plain.status_code == 401


def test_a_token_expires_after_its_lifetime_and_the_next_request_gets_a_new_one(
    url: str, clock: Clock
) -> None:
    first = token(url)
    assert get(url, USERS, first).status_code == 200
    clock.now += 36000
    refused = get(url, USERS, first)
    assert (refused.status_code, refused.json()) == (
        401,
        envelope(401, "Unauthorized", "Authentication Failure"),
    )
    second = token(url)
    assert second != first
    assert get(url, USERS, second).status_code == 200


def test_the_api_takes_bearer_and_the_v1_bearer_colon_form_and_refuses_anything_else(url: str) -> None:
    value = token(url)
    v1 = requests.get(url + USERS, headers={"Authorization": f"bearer:{value}"}, timeout=5)
    assert v1.status_code == 200
    for header in ("", f"Basic {value}", "Bearer not-a-token", f"SSWS {value}"):
        refused = requests.get(url + USERS, headers={"Authorization": header}, timeout=5)
        assert refused.status_code == 401, header


def test_a_credential_without_read_scope_is_forbidden() -> None:
    sim = OneLoginSim(scope="authentication_only")
    with SimServer(sim.app) as server:
        refused = get(server.url, USERS, token(server.url))
    assert (refused.status_code, refused.json()) == (403, envelope(403, "Forbidden", "Forbidden"))


def test_a_deleted_credential_owner_makes_every_call_fail_with_500(sim: OneLoginSim, url: str) -> None:
    value = token(url)
    sim.owner_deleted = True
    assert get(url, USERS, value).status_code == 500
    assert (
        requests.post(url + TOKEN, data={"grant_type": "client_credentials"}, auth=(ID, SECRET)).status_code
        == 500
    )


# --- header paging (§4.2) ----------------------------------------------------------------


def test_users_come_50_a_page_by_default_with_the_paging_headers(sim: OneLoginSim, url: str) -> None:
    seed_users(sim, 120)
    response = get(url, USERS, token(url))
    assert isinstance(response.json(), list) and len(response.json()) == 50
    headers = response.headers
    assert (headers["Total-Count"], headers["Total-Pages"], headers["Current-Page"]) == ("120", "3", "1")
    assert headers["Page-Items"] == "50"
    assert headers["Before-Cursor"] == ""
    assert headers["After-Cursor"]
    assert 'rel="next"' in headers["Link"]


def test_walking_the_after_cursor_gives_every_user_once_in_id_order(sim: OneLoginSim, url: str) -> None:
    ids = seed_users(sim, 250)
    value = token(url)
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        response = get(url, USERS, value, **params)
        assert response.status_code == 200, response.text
        pages += 1
        seen += [u["id"] for u in response.json()]
        cursor = response.headers["After-Cursor"]
        if not cursor:
            break
    assert seen == ids
    assert pages == 3
    assert response.headers["Current-Page"] == "3" and response.headers["Before-Cursor"]


def test_a_limit_above_100_is_refused_or_clamped_when_configured_so(clock: Clock) -> None:
    strict = OneLoginSim(clock=clock)
    lenient = OneLoginSim(clock=clock, paging=Paging(max_limit=50, clamp=True))
    for sim in (strict, lenient):
        seed_users(sim, 120)
    with SimServer(strict.app) as a, SimServer(lenient.app) as b:
        refused = get(a.url, USERS, token(a.url), limit=101)
        assert (refused.status_code, refused.json()) == (
            400,
            envelope(400, "bad request", "limit must be 100 or less"),
        )
        assert len(get(a.url, USERS, token(a.url), limit=100).json()) == 100
        clamped = get(b.url, USERS, token(b.url), limit=100)
        assert len(clamped.json()) == 50 and clamped.headers["Total-Pages"] == "3"
        for bad in ("0", "ten"):
            assert get(a.url, USERS, token(a.url), limit=bad).status_code == 400


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cursor": "garbage"}, "Invalid cursor"),
        ({"colour": "red"}, "Unsupported query parameter: colour"),
        ({"cursor": "x", "page": "2"}, "Use either cursor or page, not both"),
        ({"user_ids": "1,two"}, "user_ids must be a comma-separated list of integers"),
    ],
)
def test_a_malformed_list_request_is_a_400_in_the_envelope(
    sim: OneLoginSim, url: str, params: dict[str, str], message: str
) -> None:
    seed_users(sim, 3)
    response = get(url, USERS, token(url), **params)
    assert (response.status_code, response.json()) == (400, envelope(400, "bad request", message))


def test_a_cursor_serves_only_its_own_list_and_query(sim: OneLoginSim, url: str) -> None:
    ids = seed_users(sim, 30)
    role = sim.add_role("staff", [f"u{n:03d}" for n in range(30)])
    value = token(url)
    users_cursor = get(url, USERS, value, limit=10).headers["After-Cursor"]
    other_list = get(url, f"{ROLES}/{role}/users", value, cursor=users_cursor)
    assert (other_list.status_code, other_list.json()["status"]["message"]) == (400, "Invalid cursor")
    filtered = get(url, USERS, value, limit=2, user_ids=",".join(map(str, ids[:5])))
    moved = get(url, USERS, value, cursor=filtered.headers["After-Cursor"], user_ids=str(ids[0]))
    assert (moved.status_code, moved.json()["status"]["message"]) == (
        400,
        "The cursor was made for another query",
    )
    same = get(
        url, USERS, value, cursor=filtered.headers["After-Cursor"], user_ids=",".join(map(str, ids[:5]))
    )
    assert [u["id"] for u in same.json()] == ids[2:4]


def test_user_ids_filters_the_list(sim: OneLoginSim, url: str) -> None:
    ids = seed_users(sim, 10)
    response = get(url, USERS, token(url), user_ids=f"{ids[7]},{ids[2]},99")
    assert [u["id"] for u in response.json()] == [ids[2], ids[7]]
    assert response.headers["Total-Count"] == "2"


# --- users, roles, groups (§4.2-§4.4) -------------------------------------------------------


def test_a_user_has_the_documented_shape_with_numeric_status_state_and_one_group(
    sim: OneLoginSim, url: str
) -> None:
    sim.add_user("alice.ng", "alice.ng@acme.example", "Alice", "Ng", status=3, state=1, group="Finance")
    sim.assign("Admins", "alice.ng")
    sim.assign("Staff", "alice.ng")
    (user,) = get(url, USERS, token(url)).json()
    assert (user["status"], user["state"]) == (3, 1)
    assert user["group_id"] == 7001 and user["role_ids"] == [9001, 9002]
    assert {"username", "email", "firstname", "lastname", "custom_attributes", "locked_until"} <= set(user)
    with pytest.raises(ValueError, match=r"§4\.3"):
        sim.add_user("bob", "bob@acme.example", status=6)


def test_roles_and_their_users_are_header_paged_and_an_unknown_role_is_404(
    sim: OneLoginSim, url: str
) -> None:
    seed_users(sim, 130)
    role = sim.add_role("everyone", [f"u{n:03d}" for n in range(130)])
    sim.add_role("nobody")
    value = token(url)
    roles = get(url, ROLES, value)
    assert roles.json() == [{"id": role, "name": "everyone"}, {"id": role + 1, "name": "nobody"}]
    first = get(url, f"{ROLES}/{role}/users", value, limit=100)
    rest = get(url, f"{ROLES}/{role}/users", value, cursor=first.headers["After-Cursor"])
    assert len(first.json()) + len(rest.json()) == 130 and rest.headers["After-Cursor"] == ""
    assert first.headers["Total-Count"] == "130"
    missing = get(url, f"{ROLES}/1/users", value)
    assert (missing.status_code, missing.json()["status"]["code"]) == (404, 404)


def test_v1_groups_come_in_the_envelope_50_a_page_with_after_cursor(sim: OneLoginSim, url: str) -> None:
    for n in range(60):
        sim.add_group(f"group-{n:02d}")
    value = token(url)
    first = get(url, GROUPS, value).json()
    assert first["status"] == {"error": False, "code": 200, "type": "success", "message": "Success"}
    assert len(first["data"]) == 50 and first["data"][0] == {
        "id": 7001,
        "name": "group-00",
        "reference": None,
    }
    after = first["pagination"]["after_cursor"]
    second = get(url, GROUPS, value, after_cursor=after).json()
    assert [g["name"] for g in second["data"]] == [f"group-{n}" for n in range(50, 60)]
    assert second["pagination"]["after_cursor"] is None
    assert get(url, GROUPS, value, limit=100).status_code == 400


def test_seed_company_makes_departments_groups_other_groups_roles_and_leavers_suspended(
    sim: OneLoginSim,
) -> None:
    people = make_people(30)
    people[3]["active"] = False
    sim.seed_company(people)
    for person in (people[0], people[3]):
        user = sim.user(person["username"])
        assert user["status"] == (1 if person["active"] else 2)
        assert sim.groups[user["group_id"]].name == person["department"]
        roles = {sim.roles[r].name for r in user["role_ids"]}
        assert roles == set(person["groups"]) - {person["department"]}
        assert user["external_id"] == person["id"]


# --- rate limits (§4.6) and faults --------------------------------------------------------


def test_every_call_carries_the_budget_and_a_spent_budget_is_429_until_the_hour_ends(clock: Clock) -> None:
    sim = OneLoginSim(hourly_limit=3, clock=clock)
    with SimServer(sim.app) as server:
        value = token(server.url)
        answers = [get(server.url, USERS, value) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
        assert answers[0].headers["X-RateLimit-Limit"] == "3"
        assert answers[3].json() == envelope(429, "Too Many Requests", "Rate limit exceeded")
        clock.now += 3000
        # §4.6: X-RateLimit-Reset is the seconds left in the hour, not an epoch time.
        assert get(server.url, USERS, value).headers["X-RateLimit-Reset"] == "600"
        clock.now += 600
        assert get(server.url, USERS, value).status_code == 200
        body = get(server.url, "/auth/rate_limit", value).json()
        assert body["data"]["X-RateLimit-Limit"] == 3 and body["data"]["X-RateLimit-Remaining"] == 1


def test_a_page_fault_answers_that_page_only_and_is_logged(sim: OneLoginSim, url: str) -> None:
    seed_users(sim, 250)
    sim.fail_page(USERS, 2, 429, times=1, reset=7)
    value = token(url)
    first = get(url, USERS, value, limit=100)
    cursor = first.headers["After-Cursor"]
    throttled = get(url, USERS, value, cursor=cursor)
    assert throttled.status_code == 429
    assert (throttled.headers["X-RateLimit-Remaining"], throttled.headers["X-RateLimit-Reset"]) == ("0", "7")
    assert get(url, USERS, value, cursor=cursor).status_code == 200
    assert sim.page_statuses(USERS, 2) == [429, 200]
    assert sim.page_statuses(USERS, 1) == [200]


def test_faults_answer_in_the_onelogin_envelope(sim: OneLoginSim, url: str) -> None:
    sim.faults.inject(503, path=USERS)
    response = get(url, USERS, token(url))
    assert (response.status_code, response.json()) == (
        503,
        envelope(503, "Service Unavailable", "Injected fault: HTTP 503"),
    )


def test_expire_token_after_refuses_the_token_once_that_many_pages_are_served(
    sim: OneLoginSim, url: str
) -> None:
    seed_users(sim, 250)
    sim.expire_token_after(2)
    value = token(url)
    first = get(url, USERS, value, limit=100)
    second = get(url, USERS, value, cursor=first.headers["After-Cursor"])
    assert second.status_code == 200
    assert get(url, USERS, value, cursor=second.headers["After-Cursor"]).status_code == 401
    assert token(url) != value


def test_the_basic_header_must_be_valid_base64(url: str) -> None:
    header = "Basic " + base64.b64encode(f"{ID}{SECRET}".encode()).decode()  # no colon
    response = requests.post(
        url + TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": header}
    )
    assert response.status_code == 401
