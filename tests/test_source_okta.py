"""The okta source against the Okta simulator over loopback (and `responses` for exact shapes).

Expected values are written from the seed: the status table below by hand from SPEC §4 and
idp-apis §1.4 (PROVISIONED: active, the module's documented choice), the groups from the
rule each seed follows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from click.testing import CliRunner

import scimsync.http.client
from scimsync.cli import cli
from scimsync.config import OktaSourceConfig
from scimsync.errors import AuthError, ConnectorError, NotFoundError, ResponseError
from scimsync.http import BearerAuth, HttpClient, HttpSettings
from scimsync.models import SourceDirectory, User
from scimsync.secrets import Secret
from scimsync.sim.company import make_people
from scimsync.sim.jira import JiraSim
from scimsync.sim.okta import OktaSim
from scimsync.sim.server import SimServer
from scimsync.sources.okta import OktaSource
from scimsync.sources.okta_model import newest, parse_group, parse_user
from scimsync.sources.okta_read import OktaReader
from scimsync.targets.base import no_progress

TOKEN = "sim-okta-token"
USERS = "/api/v1/users"
STATUSES = (
    "STAGED",
    "PROVISIONED",
    "ACTIVE",
    "RECOVERY",
    "LOCKED_OUT",
    "PASSWORD_EXPIRED",
    "SUSPENDED",
    "DEPROVISIONED",
)
ACTIVE = {
    "STAGED": False,
    "PROVISIONED": True,
    "ACTIVE": True,
    "RECOVERY": True,
    "LOCKED_OUT": True,
    "PASSWORD_EXPIRED": True,
    "SUSPENDED": False,
    "DEPROVISIONED": False,
}
OKTA = "https://acme.okta.test"


@pytest.fixture(autouse=True)
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the HTTP layer's waits instead of sleeping."""
    waits: list[float] = []
    monkeypatch.setattr(scimsync.http.client, "_sleep", waits.append)
    return waits


def served(sim: OktaSim) -> Iterator[str]:
    with SimServer(sim.app) as server:
        yield server.url


def source(url: str, token: str = TOKEN, *, concurrency: int = 8, **keys: Any) -> OktaSource:
    config = OktaSourceConfig(type="okta", url=url, token=token, **keys)
    return OktaSource("source", config, HttpSettings(retries=2, timeout=10, concurrency=concurrency))


def read(url: str, **keys: Any) -> SourceDirectory:
    src = source(url, **keys)
    try:
        return src.read()
    finally:
        src.close()


def failure(url: str, **keys: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        read(url, **keys)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("source: "), message
    return caught.value


def by_name(directory: SourceDirectory) -> dict[str, User]:
    return {u.username: u for u in directory.users}


# --- a whole org ------------------------------------------------------------------------


def groups_of(n: int) -> list[str]:
    """The seed's rule: five teams, the even ones, and one in fifty in no group."""
    if n % 50 == 49:
        return []
    return [f"team-{n % 5}", *(["evens"] if n % 2 == 0 else [])]


@pytest.fixture(scope="module")
def big_org() -> Iterator[tuple[OktaSim, str]]:
    sim = OktaSim()  # Okta's page of 200, and the Everyone group
    for n in range(700):
        login = f"p{n:03d}@acme.test"
        sim.add_user(login, f"mail{n}@acme.test", f"Given{n}", f"Family{n}", status=STATUSES[n % 8])
        for name in groups_of(n):
            if sim.directory.find_group(name) is None:
                sim.add_group(name)
            sim.add_member(name, login)
    for url in served(sim):
        yield sim, url


def test_seven_hundred_users_of_every_status_are_read_with_their_groups(big_org: tuple[OktaSim, str]) -> None:
    sim, url = big_org
    sim.log.clear()
    events: list[tuple[str, int]] = []
    src = source(url)
    directory = src.read(progress=lambda what, done, total: events.append((what, done)))
    src.close()
    people = by_name(directory)
    assert len(directory.users) == 700
    for n in range(700):
        user = people[f"p{n:03d}@acme.test"]
        assert (user.email, user.first_name, user.last_name) == (
            f"mail{n}@acme.test",
            f"Given{n}",
            f"Family{n}",
        )
        assert user.display_name == f"Given{n} Family{n}"
        assert user.active is ACTIVE[STATUSES[n % 8]], (n, STATUSES[n % 8])
        assert set(user.groups) == {*groups_of(n), "Everyone"}
    members = {g.name: {people_id for people_id in g.member_ids} for g in directory.groups}
    ids = {n: people[f"p{n:03d}@acme.test"].id for n in range(700)}
    assert members["evens"] == {ids[n] for n in range(0, 700, 2)}
    assert members["team-4"] == {ids[n] for n in range(700) if n % 5 == 4 and n % 50 != 49}
    assert members["Everyone"] == set(ids.values())

    lists = [e for e in sim.log.entries if e.path == USERS]
    # 613 listed (87 DEPROVISIONED hidden, §1.4) in four pages of 200, the 87 in one more.
    assert len([e for e in lists if "filter" not in e.query]) == 4
    assert [e.query["filter"] for e in lists if "filter" in e.query] == ['status eq "DEPROVISIONED"']
    assert all(e.query["limit"] == "200" for e in sim.log.entries), "every page at the largest size"
    assert sum(1 for e in sim.log.entries if e.path.endswith("/users") and e.path != USERS) == 5 + 2 + 4
    user_pages = sorted({done for what, done in events if what == "source: users"})
    assert len(user_pages) == 5 and user_pages[-1] == 700


def test_check_counts_the_org_through_everyone(big_org: tuple[OktaSim, str]) -> None:
    _, url = big_org
    assert source(url).check() == "Okta org with 700 users"
    for other in served(OktaSim(everyone=False)):
        assert "not the Everyone group" in source(other).check()


@pytest.mark.parametrize(
    ("status", "transitioning", "active"),
    [
        ("ACTIVE", "DEPROVISIONED", False),  # a deactivation under way already ends access
        ("STAGED", "ACTIVE", False),  # an activation counts once it is done
        ("PROVISIONED", "ACTIVE", True),
    ],
)
def test_a_user_in_transition(status: str, transitioning: str, active: bool) -> None:
    sim = OktaSim(everyone=False)
    sim.add_user("amara@acme.test", status=status)
    sim.set_status("amara@acme.test", status, transitioning=transitioning)
    for url in served(sim):
        assert [u.active for u in read(url).users] == [active]


def test_attributes_hold_the_profile_and_the_status_never_credentials() -> None:
    sim = OktaSim(everyone=False)
    sim.add_user(
        "amara@acme.test", first="Amara", last="Koné", profile={"department": "R&D", "displayName": "Ama"}
    )
    for url in served(sim):
        (user,) = read(url).users
    assert user.display_name == "Ama"
    assert user.attributes["department"] == "R&D" and user.attributes["status"] == "ACTIVE"
    assert user.attributes["secondEmail"] is None and user.attributes["login"] == "amara@acme.test"
    assert not {"credentials", "_links", "profile"} & set(user.attributes)


def test_a_group_with_thousands_of_members() -> None:
    sim = OktaSim(everyone=False)
    sim.add_group("all-hands")
    for n in range(2100):
        sim.add_user(f"u{n:04d}@acme.test", groups=["all-hands"])
    for url in served(sim):
        directory = read(url)
    assert len(directory.users) == 2100 and {u.groups for u in directory.users} == {("all-hands",)}
    (group,) = directory.groups
    assert len(group.member_ids) == 2100
    assert sim.log.count("GET", f"/api/v1/groups/{group.id}/users") == 11  # pages of 200


# --- scoping ----------------------------------------------------------------------------


def test_scoping_reads_the_included_groups_members_and_each_ones_groups() -> None:
    sim = OktaSim(everyone=False)
    for login in ("amara", "bruno", "chen", "ivan", "zoe", "svc-build"):
        sim.add_user(f"{login}@acme.test")
    sim.add_user("dora@acme.test", status="DEPROVISIONED")
    sim.add_group("Eng-Platform", members=["amara@acme.test", "bruno@acme.test", "dora@acme.test"])
    sim.add_group("eng-web", members=["bruno@acme.test", "chen@acme.test", "svc-build@acme.test"])
    sim.add_group("sales", members=["bruno@acme.test", "ivan@acme.test"])
    sim.add_group("design", members=["zoe@acme.test"])
    for n in range(30):
        sim.add_group(f"club-{n}", members=["bruno@acme.test"] if n == 1 else [])
    for url in served(sim):
        directory = read(url, include_groups=["eng-*"], exclude_users=["svc-*"])
    people = by_name(directory)
    assert set(people) == {"amara@acme.test", "bruno@acme.test", "chen@acme.test", "dora@acme.test"}
    assert set(people["bruno@acme.test"].groups) == {"Eng-Platform", "eng-web", "sales", "club-1"}
    assert people["dora@acme.test"].active is False
    paths = [e.path for e in sim.log.entries]
    assert USERS not in paths  # nobody read from the whole list
    # Four people cost fewer requests than 32 other groups: one /users/{id}/groups each.
    assert sorted(p for p in paths if p.endswith("/groups") and p != "/api/v1/groups") == sorted(
        f"{USERS}/{u.id}/groups" for u in directory.users
    )
    member_lists = {p for p in paths if p.endswith("/users")}
    assert len(member_lists) == 2  # the two included groups only


def test_scoping_with_many_people_reads_the_other_groups_member_lists_instead() -> None:
    sim = OktaSim(everyone=False)
    eng = [sim.add_user(f"e{n:02d}@acme.test") for n in range(40)]
    sales = [sim.add_user(f"s{n}@acme.test") for n in range(3)]
    sim.add_group("eng", members=eng)
    sim.add_group("sales", members=[*sales, eng[0], eng[1]])
    for url in served(sim):
        directory = read(url, include_groups=["eng"])
    people = by_name(directory)
    assert set(people) == {f"e{n:02d}@acme.test" for n in range(40)}
    assert people["e00@acme.test"].groups == ("eng", "sales") and people["e02@acme.test"].groups == ("eng",)
    assert {g.name: len(g.member_ids) for g in directory.groups} == {"eng": 40, "sales": 2}
    assert not [e for e in sim.log.entries if re.fullmatch(r"/api/v1/users/[^/]+/groups", e.path)]


def test_a_group_or_user_deleted_during_the_read_is_read_as_gone(caplog: pytest.LogCaptureFixture) -> None:
    sim = OktaSim(everyone=False)
    amara = sim.add_user("amara@acme.test", groups=["eng", "gone"])
    bruno = sim.add_user("bruno@acme.test", groups=["eng"])
    gone = sim.add_group("was-here", members=[amara])
    for n in range(5):
        sim.add_group(f"club-{n}")
    # Okta's own 404 (E0000007) for what was listed a moment ago: deleted meanwhile.
    sim.faults.inject(404, path=f"/api/v1/groups/{gone}/users")
    sim.faults.inject(404, path=f"{USERS}/{bruno}/groups")
    for url in served(sim):
        whole = read(url)
        scoped = read(url, include_groups=["eng"])
    assert set(by_name(whole)["amara@acme.test"].groups) == {"eng", "gone"}
    assert [(u.username, set(u.groups)) for u in scoped.users] == [
        ("amara@acme.test", {"eng", "gone", "was-here"})
    ]
    assert "group was-here was deleted during the read" in caplog.text
    assert f"user {bruno} was deleted during the read" in caplog.text


def test_a_404_that_is_not_okta_s_fails_the_read() -> None:
    sim = OktaSim(everyone=False)
    sim.add_user("amara@acme.test", groups=["eng"])
    group = sim.directory.find_group("eng")
    assert group is not None
    sim.faults.inject(404, path=f"/api/v1/groups/{group.id}/users", body={"message": "no such route"})
    for url in served(sim):
        error = failure(url)
    assert isinstance(error, NotFoundError)
    assert str(error).startswith(f"source: GET /api/v1/groups/{group.id}/users (group eng) page 1: HTTP 404")


# --- failures ---------------------------------------------------------------------------

TOKEN_CHECK = "check source.token"


def test_a_wrong_token_is_one_line_naming_okta_s_answer_and_what_to_check() -> None:
    for url in served(OktaSim()):
        error = failure(url, token="not-the-token")
        with pytest.raises(AuthError) as checked:
            source(url, token="not-the-token").check()
    assert isinstance(error, AuthError) and error.status == 401
    assert re.fullmatch(
        r"source: GET /api/v1/\S+( \(DEPROVISIONED\))? page 1: HTTP 401 Unauthorized: .*", str(error)
    )
    assert TOKEN_CHECK in str(error) and "not-the-token" not in str(error)
    assert str(checked.value).startswith("source: GET /api/v1/users: HTTP 401 Unauthorized: ")


def test_an_admin_without_the_groups_permission_is_told_which_role_to_give() -> None:
    sim = OktaSim()
    sim.add_token("users-only", permissions=["users"])
    for url in served(sim):
        error = failure(url, token="users-only")
    assert isinstance(error, AuthError) and error.status == 403
    assert "(E0000006, errorId oaeSIM" in str(error) and "Read-Only Administrator" in str(error)


def test_a_token_revoked_mid_read_fails_the_read_naming_the_page() -> None:
    sim = OktaSim(max_page=10, everyone=False)
    for n in range(25):
        sim.add_user(f"u{n:02d}@acme.test")
    sim.expire_token_after(1)  # SSWS: nothing to refresh (idp-apis §1.1)
    for url in served(sim):
        error = failure(url, concurrency=1)
    assert isinstance(error, AuthError)
    assert str(error).startswith("source: GET /api/v1/users page 2: HTTP 401 Unauthorized: ")
    assert TOKEN_CHECK in str(error)


def test_a_429_with_okta_s_headers_is_waited_out(slept: list[float]) -> None:
    sim = OktaSim(max_page=10, everyone=False)
    for n in range(25):
        sim.add_user(f"u{n:02d}@acme.test")
    fault = sim.throttle_page(USERS, 2, reset_in=7)
    for url in served(sim):
        directory = read(url)
    assert len(directory.users) == 25
    assert fault.answers == [429, 200]
    assert 7.0 in slept  # X-Rate-Limit-Reset minus the server's Date (idp-apis §1.8)


def test_an_exhausted_bucket_holds_every_request_until_the_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    # The org's clock: the real one, plus every wait the HTTP layer recorded instead of sleeping.
    start, skipped = time.monotonic(), [1_800_000_000.0]
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        skipped[0] += seconds

    def clock() -> float:
        return skipped[0] + time.monotonic() - start

    monkeypatch.setattr(scimsync.http.client, "_sleep", wait)
    limits = {"users": 6, "user": 100, "groups": 100, "group": 100, "other": 100}
    sim = OktaSim(max_page=10, everyone=False, rate_limits=limits, clock=clock)  # 3 a minute
    for n in range(35):
        sim.add_user(f"u{n:02d}@acme.test")
    for url in served(sim):
        directory = read(url, concurrency=1)
    assert len(directory.users) == 35
    # Remaining 0 on the third answer: the next one waited for X-Rate-Limit-Reset (~60 s),
    # so the bucket never ran dry (idp-apis §1.8).
    assert waits and 59 <= waits[0] <= 61, waits
    assert {e.status for e in sim.log.entries} == {200}
    assert sim.log.count("GET", USERS) == 5


def test_a_page_that_keeps_failing_aborts_the_read_naming_the_page() -> None:
    sim = OktaSim(max_page=10, everyone=False)
    for n in range(25):
        sim.add_user(f"u{n:02d}@acme.test")
    # A 502 counts against http.retries (a 503 is waited out on a time budget instead).
    fault = sim.fail_page(USERS, 2, 502)
    for url in served(sim):
        error = failure(url)
    assert re.fullmatch(
        r"source: GET /api/v1/users page 2: HTTP 502 Bad Gateway: .* \(3 attempts\)", str(error)
    ), str(error)
    assert fault.answers == [502, 502, 502]


def test_okta_s_error_body_is_in_the_message() -> None:
    sim = OktaSim()
    body = {
        "errorCode": "E0000031",
        "errorSummary": "Invalid search criteria.",
        "errorLink": "E0000031",
        "errorId": "oaeABC",
        "errorCauses": [{"errorSummary": "limit: too large"}],
    }
    sim.faults.inject(400, path="/api/v1/groups", body=body)
    for url in served(sim):
        error = failure(url)
    assert str(error) == (
        "source: GET /api/v1/groups page 1: HTTP 400 Bad Request: "
        "Invalid search criteria. (E0000031, errorId oaeABC): limit: too large"
    )


def test_a_url_that_is_not_the_org_gets_html_and_a_hint() -> None:
    for url in served(OktaSim()):
        error = failure(url + "/admin")
    assert isinstance(error, NotFoundError) and "Page not found" in str(error)
    assert str(error).endswith(
        "check source.url: it must be the Okta org URL, such as https://acme.okta.com (no /api/v1)"
    )


@responses.activate
def test_an_html_answer_is_one_line_naming_the_page() -> None:
    html = "<html>\n<body>Sign in to Acme</body></html>"
    for path in (USERS, "/api/v1/groups"):
        responses.add(responses.GET, OKTA + path, body=html, content_type="text/html")
    error = failure(OKTA)
    assert isinstance(error, ResponseError)
    assert (
        "page 1: expected JSON, got text/html: <html> <body>Sign in to Acme</body></html>; check source.url"
        in str(error)
    )


@responses.activate
def test_check_sends_the_ssws_token() -> None:
    responses.add(responses.GET, OKTA + USERS, json=[])
    responses.add(responses.GET, OKTA + "/api/v1/groups", json=[])
    source(OKTA, token="s3cret-token").check()
    first = responses.calls[0].request
    assert first.url == f"{OKTA}{USERS}?limit=1"
    assert first.headers["Authorization"] == "SSWS s3cret-token"


# --- integrity of one list (the reader over `responses`) -----------------------------------


def reader() -> OktaReader:
    client = HttpClient("source", OKTA, auth=BearerAuth(Secret("tok-12345"), scheme="SSWS"))
    return OktaReader(client, no_progress)


def user(uid: str, status: str = "ACTIVE", **profile: Any) -> dict[str, Any]:
    return {
        "id": uid,
        "status": status,
        "profile": {"login": f"{uid}@x.test", "email": f"{uid}@x.test", **profile},
    }


def page(items: Any, next_after: str | None = None, *, after: str | None = None) -> None:
    url = OKTA + USERS + (f"?after={after}&limit=200" if after else "?limit=200")
    headers = {"link": f'<{OKTA}{USERS}?after={next_after}&limit=200>; rel="next"'} if next_after else {}
    responses.add(
        responses.GET,
        url,
        json=items,
        headers=headers,
        match=[responses.matchers.query_string_matcher(url.split("?")[1])],
    )


def list_error() -> str:
    with pytest.raises(ResponseError) as caught:
        reader().users({"limit": 200}, "GET /api/v1/users")
    return str(caught.value)


@responses.activate
def test_a_link_that_repeats_is_a_loop() -> None:
    page([user("00u1")], "c2")
    page([user("00u2")], "c2", after="c2")
    assert list_error().startswith("source: GET /api/v1/users page 3: pagination loop: the server sent link")


@responses.activate
def test_a_cursor_that_goes_back_hands_out_a_user_twice() -> None:
    page([user("00u1"), user("00u2")], "c2")
    page([user("00u2")], after="c2")
    assert (
        list_error() == "source: GET /api/v1/users page 2: user 00u2 was already listed: the paging went back"
    )


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        ({"users": []}, "expected a JSON array in the response"),
        ([user("00u1"), "00u2"], "a user that is not a JSON object"),
        ([user("00u1"), {"status": "ACTIVE"}], "a user without an id"),
    ],
)
@responses.activate
def test_a_malformed_page_names_the_page(body: Any, cause: str) -> None:
    page([user("00u0")], "c2")
    page(body, after="c2")
    assert list_error() == f"source: GET /api/v1/users page 2: {cause}"


@responses.activate
def test_a_truncated_page_names_the_page() -> None:
    responses.add(responses.GET, OKTA + USERS, body='[{"id": "00u1", "sta', content_type="application/json")
    assert list_error() == (
        'source: GET /api/v1/users page 1: expected JSON, got application/json: [{"id": "00u1", "sta'
    )


# --- mapping one object -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (user("00u1", "WEIRD"), "user 00u1 (00u1@x.test): unknown status 'WEIRD'"),
        (
            user("00u1", email=None),
            "user 00u1 (00u1@x.test): a user whose status is ACTIVE has no profile.email",
        ),
        (
            user("00u1", "LOCKED_OUT", login=None),
            "user 00u1: a user whose status is LOCKED_OUT has no profile.login",
        ),
        (user("00u1", firstName=7), "user 00u1 (00u1@x.test): profile.firstName is not a string"),
        ({"id": "00u1", "status": "ACTIVE"}, "user 00u1: no profile object"),
        (
            {**user("00u1"), "transitioningToStatus": "GONE"},
            "user 00u1 (00u1@x.test): unknown transitioningToStatus 'GONE'",
        ),
    ],
)
def test_a_user_the_reference_does_not_describe_is_an_error_naming_it(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ResponseError) as caught:
        parse_user("source", "GET /api/v1/users page 1", raw)
    assert str(caught.value).startswith(f"source: {message}")


def test_an_inactive_user_without_email_or_login_is_read_as_it_is() -> None:
    found = parse_user(
        "source", "page", user("00u9", "DEPROVISIONED", login=None, email=None, firstName="Zoë")
    )
    assert (found.username, found.email, found.active, found.display_name) == ("", "", False, "Zoë")


def test_a_group_needs_a_name_and_a_known_type() -> None:
    assert (
        parse_group("source", "p", {"id": "00g1", "type": "APP_GROUP", "profile": {"name": "設計"}}).name
        == "設計"
    )
    with pytest.raises(ResponseError, match=r"group 00g1: no profile\.name"):
        parse_group("source", "p", {"id": "00g1", "type": "OKTA_GROUP", "profile": {}})
    with pytest.raises(ResponseError, match=r"group 00g1 \(x\): unknown type 'ROLE_GROUP'"):
        parse_group("source", "p", {"id": "00g1", "type": "ROLE_GROUP", "profile": {"name": "x"}})


def test_a_user_in_both_lists_is_taken_as_last_updated() -> None:
    # Deactivated (or reactivated) between the plain list and the DEPROVISIONED list.
    earlier = parse_user("s", "p", {**user("00u1"), "lastUpdated": "2026-01-01T10:00:00.000Z"})
    later = parse_user("s", "p", {**user("00u1", "DEPROVISIONED"), "lastUpdated": "2026-01-01T10:00:01.000Z"})
    assert newest(earlier, later).active is False and newest(later, earlier).active is False


# --- end to end -------------------------------------------------------------------------


def test_plan_and_apply_into_jira_converge(tmp_path: Path) -> None:
    people = make_people(60)
    people[5]["active"] = False
    okta = OktaSim()
    okta.seed_company(people)
    jira = JiraSim("10.3.1", token="e2e-jira-token")
    with SimServer(okta.app) as idp, SimServer(jira.app) as target:
        config = {
            "version": 1,
            "source": {"type": "okta", "url": idp.url, "token": TOKEN, "include_groups": ["atlassian-*"]},
            "mapping": {
                "username": "{{ user.email | localpart | lower }}",
                "email": "{{ user.email | lower }}",
                "display_name": "{{ user.first_name }} {{ user.last_name }}",
            },
            "targets": {
                "jira": {
                    "type": "jira",
                    "url": target.url,
                    "token": "e2e-jira-token",
                    "groups": [
                        {"from": "atlassian-jira-*", "to": "{{ group.name | replace('atlassian-', '') }}"}
                    ],
                }
            },
            "audit_log": "audit.jsonl",
            "lock_file": "run.lock",
            "state_file": "state.json",
        }
        path = tmp_path / "scimsync.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        applied = CliRunner().invoke(cli, ["-c", str(path), "apply", "-y"], catch_exceptions=False)
        assert applied.exit_code == 0, applied.output
        wanted = {
            p["username"]
            for p in people
            if p["active"] and any(g.startswith("atlassian-") for g in p["groups"])
        }
        assert {u.name for u in jira.directory.users.values()} - {"admin"} == wanted
        servicedesk = {
            p["username"] for p in people if p["active"] and "atlassian-jira-servicedesk" in p["groups"]
        }
        assert jira.members("jira-servicedesk") == servicedesk
        jira.log.clear()
        again = CliRunner().invoke(
            cli, ["-c", str(path), "plan", "--detailed-exitcode"], catch_exceptions=False
        )
    assert again.exit_code == 0, again.output
    assert "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes." in again.stdout
    assert jira.log.writes() == []
