"""The Okta simulator over a loopback socket, checked against idp-apis §1, §8 and §9 with plain requests."""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from scimsync.sim.company import make_people
from scimsync.sim.okta import OktaSim
from scimsync.sim.server import SimServer

TOKEN = "sim-okta-token"
DAY = 86400.0
ERROR_KEYS = {"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}


class Clock:
    """A wall clock that moves only when told."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Org:
    """A simulator on loopback and a session speaking SSWS to it."""

    def __init__(self, sim: OktaSim, url: str) -> None:
        self.sim = sim
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"SSWS {TOKEN}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.url + path, params=params, timeout=10)

    def walk(self, path: str, **params: Any) -> list[requests.Response]:
        """Follow the next links from ``path`` to the end."""
        answers = [self.get(path, **params)]
        while "next" in answers[-1].links:
            answers.append(self.session.get(answers[-1].links["next"]["url"], timeout=10))
        return answers


@pytest.fixture
def clock() -> Clock:
    return Clock()


def serve(sim: OktaSim) -> Iterator[Org]:
    with SimServer(sim.app) as server:
        org = Org(sim, server.url)
        yield org
        org.session.close()


@pytest.fixture
def org(clock: Clock) -> Iterator[Org]:
    yield from serve(OktaSim(clock=clock, everyone=False))


def logins(response: requests.Response) -> list[str]:
    return [u["profile"]["login"] for u in response.json()]


def error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_KEYS and body["errorCode"] == code and body["errorLink"] == code, body
    return body


# --- paging -----------------------------------------------------------------------------


def test_users_come_in_pages_of_200_linked_by_two_link_headers(org: Org) -> None:
    for n in range(450):
        org.sim.add_user(f"u{n:03d}@acme.test")
    answers = org.walk("/api/v1/users", limit=200)
    assert [len(a.json()) for a in answers] == [200, 200, 50]
    first = answers[0]
    # §1.3: self and next are two separate headers (requests joins them with ", ").
    assert first.raw.headers.getlist("link") == [
        f'<{org.url}/api/v1/users?limit=200>; rel="self"',
        f'<{first.links["next"]["url"]}>; rel="next"',
    ]
    assert first.links["next"]["url"].startswith(f"{org.url}/api/v1/users?limit=200&after=")
    seen = [login for a in answers for login in logins(a)]
    assert seen == [f"u{n:03d}@acme.test" for n in range(450)]
    assert "next" not in answers[-1].links


def test_a_full_last_page_still_links_to_an_empty_one(org: Org) -> None:
    for n in range(4):
        org.sim.add_user(f"u{n}@acme.test")
    answers = org.walk("/api/v1/users", limit=2)
    assert [len(a.json()) for a in answers] == [2, 2, 0]


def test_limit_is_capped_at_the_org_maximum_and_must_be_a_positive_number(clock: Clock) -> None:
    sim = OktaSim(clock=clock, everyone=False, max_page=20)
    for n in range(30):
        sim.add_user(f"u{n:02d}@acme.test")
    for org in serve(sim):
        assert len(org.get("/api/v1/users", limit=500).json()) == 20
        assert len(org.get("/api/v1/users").json()) == 20
        error(org.get("/api/v1/users", limit=0), 400, "E0000001")
        error(org.get("/api/v1/users", limit="many"), 400, "E0000001")


def test_a_cursor_the_org_never_gave_out_is_refused(org: Org) -> None:
    org.sim.add_user("amara@acme.test")
    error(org.get("/api/v1/users", after="not-a-cursor"), 400, "E0000031")


def test_an_unknown_query_parameter_is_refused(org: Org) -> None:
    body = error(org.get("/api/v1/users", limits=200), 400, "E0000001")
    assert body["errorCauses"] == [{"errorSummary": "limits: unknown query parameter"}]


# --- which users ------------------------------------------------------------------------


def test_the_plain_list_hides_deprovisioned_users_and_filter_and_search_show_them(org: Org) -> None:
    org.sim.add_user("amara@acme.test", first="Amara")
    org.sim.add_user("bruno@acme.test", first="Bruno", status="DEPROVISIONED")
    org.sim.add_user("chen@acme.test", first="Chen", status="SUSPENDED")
    assert logins(org.get("/api/v1/users")) == ["amara@acme.test", "chen@acme.test"]
    gone = org.get("/api/v1/users", filter='status eq "DEPROVISIONED"')
    assert logins(gone) == ["bruno@acme.test"] and gone.json()[0]["status"] == "DEPROVISIONED"
    assert logins(org.get("/api/v1/users", search='status eq "deprovisioned"')) == ["bruno@acme.test"]
    assert logins(org.get("/api/v1/users", q="b")) == []  # q hides them too (§1.4)
    either = org.get("/api/v1/users", filter='status eq "ACTIVE" or status eq "DEPROVISIONED"')
    assert logins(either) == ["amara@acme.test", "bruno@acme.test"]


@pytest.mark.parametrize(
    ("expression", "cause"),
    [
        ('profile.department eq "x"', "filter: 'profile.department' cannot be filtered on"),
        ('status ne "ACTIVE"', "filter: unsupported operator 'ne'"),
        ('status sw "ACT"', "filter: 'sw' is not supported on 'status'"),
        ('not status eq "ACTIVE"', "filter: a property expected, not 'not'"),
        ("status eq ACTIVE", "filter: the value of status must be quoted"),
        ('(status eq "ACTIVE"', "filter: ')' expected at the end"),
    ],
)
def test_filter_accepts_only_what_okta_documents(org: Org, expression: str, cause: str) -> None:
    body = error(org.get("/api/v1/users", filter=expression), 400, "E0000031")
    assert body["errorSummary"] == "Invalid search criteria."
    assert body["errorCauses"] == [{"errorSummary": cause}]


def test_filter_compares_last_updated_and_search_lags_behind(clock: Clock) -> None:
    sim = OktaSim(clock=clock, everyone=False, search_lag=5.0)
    old = sim.add_user("old@acme.test")
    clock.now += 10
    sim.add_user("new@acme.test")
    for org in serve(sim):
        since = org.get("/api/v1/users", filter='lastUpdated gt "2027-01-15T08:00:05.000Z"')
        assert logins(since) == ["new@acme.test"]
        # The search index has not seen the new user, and shows the old one's last state.
        sim.set_status(old, "SUSPENDED")
        assert logins(org.get("/api/v1/users", search='profile.login sw "new"')) == []
        assert logins(org.get("/api/v1/users", search='status eq "ACTIVE"')) == ["old@acme.test"]
        clock.now += 5
        assert logins(org.get("/api/v1/users", search='profile.login sw "new"')) == ["new@acme.test"]
        assert logins(org.get("/api/v1/users", search='status eq "SUSPENDED"')) == ["old@acme.test"]


def test_a_user_object_has_the_shape_of_the_reference(org: Org) -> None:
    org.sim.add_user("amara@acme.test", "amara.k@acme.test", "Amara", "Koné", profile={"department": "R&D"})
    org.sim.add_user("bob@acme.test", status="STAGED")
    amara, bob = org.get("/api/v1/users").json()
    assert amara["status"] == "ACTIVE" and amara["created"] == "2027-01-15T08:00:00.000Z"
    assert amara["profile"] == {
        "login": "amara@acme.test",
        "email": "amara.k@acme.test",
        "firstName": "Amara",
        "lastName": "Koné",
        "secondEmail": None,
        "mobilePhone": None,
        "department": "R&D",
    }
    assert amara["_links"] == {"self": {"href": f"{org.url}/api/v1/users/{amara['id']}"}}
    assert "activated" not in bob and "passwordChanged" not in bob  # null properties left out (§1.2)


# --- groups -----------------------------------------------------------------------------


def test_groups_their_stats_and_their_members(clock: Clock) -> None:
    sim = OktaSim(clock=clock)
    ids = [sim.add_user(f"u{n}@acme.test", groups=["Finance"] if n < 3 else []) for n in range(5)]
    sim.add_group("AD Admins", type="APP_GROUP", members=[ids[4]])
    for org in serve(sim):
        groups = org.get("/api/v1/groups", limit=200, expand="stats").json()
        counts = {g["profile"]["name"]: (g["type"], g["_embedded"]["stats"]["usersCount"]) for g in groups}
        assert counts == {
            "Finance": ("OKTA_GROUP", 3),
            "AD Admins": ("APP_GROUP", 1),
            "Everyone": ("BUILT_IN", 5),
        }
        finance = next(g for g in groups if g["profile"]["name"] == "Finance")
        members = org.walk(f"/api/v1/groups/{finance['id']}/users", limit=2)
        assert [logins(a) for a in members] == [["u0@acme.test", "u1@acme.test"], ["u2@acme.test"]]
        mine = org.get(f"/api/v1/users/{ids[0]}/groups").json()
        assert {g["profile"]["name"] for g in mine} == {"Finance", "Everyone"}
        only = org.get("/api/v1/groups", filter='type eq "BUILT_IN"').json()
        assert [g["profile"]["name"] for g in only] == ["Everyone"]
        error(org.get("/api/v1/groups", filter='profile.name eq "Finance"'), 400, "E0000031")


def test_group_members_default_to_pages_of_1000(org: Org) -> None:
    group = org.sim.add_group("big")
    for n in range(1001):
        org.sim.add_user(f"u{n:04d}@acme.test", groups=["big"])
    answers = org.walk(f"/api/v1/groups/{group}/users")
    assert [len(a.json()) for a in answers] == [1000, 1]
    assert len(org.get(f"/api/v1/groups/{group}/users", limit=5000).json()) == 1000


def test_a_missing_object_is_404_e0000007(org: Org) -> None:
    body = error(org.get("/api/v1/groups/00gNOPE/users"), 404, "E0000007")
    assert body["errorSummary"] == "Not found: Resource not found: 00gNOPE (UserGroup)"
    error(org.get("/api/v1/users/00uNOPE"), 404, "E0000007")


# --- tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, f"Bearer {TOKEN}", "SSWS wrong-token", f"ssws {TOKEN}"])
def test_anything_but_the_ssws_token_is_401_e0000011(org: Org, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = requests.get(f"{org.url}/api/v1/users", headers=headers, timeout=10)
    assert error(response, 401, "E0000011")["errorSummary"] == "Invalid token provided"


def test_a_token_expires_30_days_after_its_last_use(org: Org, clock: Clock) -> None:
    clock.now += 29 * DAY
    assert org.get("/api/v1/users").status_code == 200  # each use pushes the expiry on (§1.1)
    clock.now += 29 * DAY
    assert org.get("/api/v1/users").status_code == 200
    clock.now += 30 * DAY + 1
    error(org.get("/api/v1/users"), 401, "E0000011")


def test_a_revoked_token_and_one_revoked_after_two_pages(org: Org) -> None:
    for n in range(5):
        org.sim.add_user(f"u{n}@acme.test")
    org.sim.expire_token_after(2)
    first = org.get("/api/v1/users", limit=2)
    second = org.session.get(first.links["next"]["url"], timeout=10)
    assert second.status_code == 200
    error(org.session.get(second.links["next"]["url"], timeout=10), 401, "E0000011")
    error(org.get("/api/v1/groups"), 401, "E0000011")
    org.sim.add_token("another-token")
    org.sim.revoke_token("another-token")
    other = {"Authorization": "SSWS another-token"}
    error(org.session.get(f"{org.url}/api/v1/users", headers=other, timeout=10), 401, "E0000011")


def test_an_admin_who_may_not_read_groups_gets_403_e0000006(org: Org) -> None:
    org.sim.add_token("users-only", permissions=["users"])
    headers = {"Authorization": "SSWS users-only"}
    assert requests.get(f"{org.url}/api/v1/users", headers=headers, timeout=10).status_code == 200
    error(requests.get(f"{org.url}/api/v1/groups", headers=headers, timeout=10), 403, "E0000006")


# --- rate limits ------------------------------------------------------------------------


def seconds(response: requests.Response) -> float:
    """Return X-Rate-Limit-Reset minus the response's Date, in seconds."""
    date = email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()
    return float(response.headers["X-Rate-Limit-Reset"]) - date


def test_every_answer_has_the_rate_limit_headers_and_an_empty_bucket_is_429_e0000047(clock: Clock) -> None:
    sim = OktaSim(clock=clock, rate_limits={"users": 6, "user": 6, "groups": 6, "group": 6, "other": 6})
    for org in serve(sim):
        answers = [org.get("/api/v1/users") for _ in range(4)]
        # An SSWS token gets half of each limit (§1.1): 3 of 6.
        assert [a.headers["X-Rate-Limit-Limit"] for a in answers] == ["3"] * 4
        assert [a.headers["X-Rate-Limit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        error(answers[3], 429, "E0000047")
        assert 59 <= seconds(answers[3]) <= 61
        assert len(answers[3].raw.headers.getlist("Date")) == 1  # the server's own, not a second one
        assert all(a.headers["X-Okta-Request-Id"] for a in answers)
        assert org.get("/api/v1/groups").status_code == 200  # another bucket
        clock.now += 60
        assert org.get("/api/v1/users").headers["X-Rate-Limit-Remaining"] == "2"


def test_a_throttled_page_says_when_to_come_back(org: Org) -> None:
    for n in range(3):
        org.sim.add_user(f"u{n}@acme.test")
    fault = org.sim.throttle_page("/api/v1/users", 2, reset_in=7)
    first = org.get("/api/v1/users", limit=2)
    throttled = org.session.get(first.links["next"]["url"], timeout=10)
    error(throttled, 429, "E0000047")
    assert throttled.headers["X-Rate-Limit-Remaining"] == "0" and seconds(throttled) == 7
    again = org.session.get(first.links["next"]["url"], timeout=10)
    assert logins(again) == ["u2@acme.test"]
    assert fault.answers == [429, 200]


def test_past_the_concurrency_limit_limit_and_remaining_read_zero(clock: Clock) -> None:
    for org in serve(OktaSim(clock=clock, max_concurrent=0)):
        response = org.get("/api/v1/users")
        error(response, 429, "E0000047")
        assert (response.headers["X-Rate-Limit-Limit"], response.headers["X-Rate-Limit-Remaining"]) == (
            "0",
            "0",
        )


def test_a_failing_page_fails_every_time_and_records_its_answers(org: Org) -> None:
    for n in range(3):
        org.sim.add_user(f"u{n}@acme.test")
    fault = org.sim.fail_page("/api/v1/users", 2, 503)
    next_url = org.get("/api/v1/users", limit=2).links["next"]["url"]
    for _ in range(3):
        error(org.session.get(next_url, timeout=10), 503, "E0000009")
    assert fault.answers == [503, 503, 503]
    # Only that page of that list: the same page of another list is served.
    assert org.get("/api/v1/users", limit=2, filter='status eq "ACTIVE"').status_code == 200


# --- the rest ---------------------------------------------------------------------------


def test_outside_the_api_the_org_answers_html_and_writes_are_405(org: Org) -> None:
    page = org.get("/admin/users")
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")
    error(org.session.post(f"{org.url}/api/v1/users", json={}, timeout=10), 405, "E0000022")
    error(org.get("/api/v1/apps"), 404, "E0000007")


def test_injected_faults_have_okta_bodies_and_every_request_is_logged(org: Org) -> None:
    org.sim.faults.inject(500, path="/api/v1/groups")
    error(org.get("/api/v1/groups"), 500, "E0000009")
    assert org.get("/api/v1/groups").status_code == 200
    assert [(e.path, e.status) for e in org.sim.log.entries] == [
        ("/api/v1/groups", 500),
        ("/api/v1/groups", 200),
    ]


def test_seed_company_makes_the_people_and_their_groups(clock: Clock) -> None:
    people = make_people(40)
    people[3]["active"] = False
    sim = OktaSim(clock=clock, everyone=False)
    sim.seed_company(people)
    for org in serve(sim):
        listed = org.get("/api/v1/users").json()
        gone = org.get("/api/v1/users", filter='status eq "DEPROVISIONED"').json()
        assert {u["id"] for u in listed} == {p["id"] for p in people} - {people[3]["id"]}
        assert [u["id"] for u in gone] == [people[3]["id"]]
        user = sim.user(people[0]["email"])
        assert user is not None and user["profile"]["department"] == people[0]["department"]
        names = {g["profile"]["name"] for g in org.get("/api/v1/groups").json()}
        assert names == {g for p in people for g in p["groups"]}
