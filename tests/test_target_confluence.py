"""ConfluenceTarget against exact request shapes (reference §2, §6, §7), with ``responses``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from scimsync import secrets
from scimsync.config import TargetConfig
from scimsync.errors import AuthError, ConnectorError, NotFoundError, NotManageableError, ResponseError
from scimsync.http import Auth, BasicAuth, BearerAuth, HttpClient, HttpSettings
from scimsync.models import Account
from scimsync.secrets import Secret
from scimsync.targets import TARGET_TYPES, build_target
from scimsync.targets.confluence import ConfluenceTarget
from scimsync.targets.confluence_errors import BASIC_AUTH_HINT, parse_error

BASE = "https://acme.test/wiki"  # with a context path (SPEC §3)
API = BASE + "/rest/api"
MANIFEST = BASE + "/rest/applinks/1.0/manifest"
BASIC = BasicAuth("sync-bot", Secret("conf-s3cret-pass"))
PAT = BearerAuth(Secret("pat-0123456789"))
AMARA = Account(id="K-amara.k", username="amara.k", email=None, display_name="Amara K")
Answer = tuple[int, dict[str, str], str]


@pytest.fixture(autouse=True)
def _own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # redact() scrubs every Secret ever made, process-wide: keep other tests' values out.
    monkeypatch.setattr(secrets, "_known", set())


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


class Clock:
    """A fake clock that moves only when the target sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_target(*, auth: Auth = BASIC, clock: Clock | None = None) -> ConfluenceTarget:
    client = HttpClient(
        "confluence",
        BASE,
        auth=auth,
        settings=HttpSettings(retries=2, concurrency=4),
        error_parser=parse_error,
        sleep=lambda _: None,
    )
    clock = clock or Clock()
    return ConfluenceTarget("confluence", client, sleep=clock.sleep, clock=lambda: clock.now)


def manifest(rsps: responses.RequestsMock, version: str, type_id: str = "confluence") -> None:
    body = {"id": "abc", "name": "Confluence", "typeId": type_id, "version": version, "buildNumber": 9012}
    rsps.get(MANIFEST, json=body)


def bean(name: str, *, status: str = "Active", email: str | None = None) -> dict[str, Any]:
    user = {"type": "known", "username": name, "userKey": f"K-{name}", "displayName": name.title()}
    user["status"] = status
    if email:
        user["email"] = email
    return user


def conf_error(status: int, message: str) -> dict[str, Any]:
    """Return a §2.8 error body."""
    data = {
        "authorized": True,
        "valid": False,
        "allowedInReadOnlyMode": True,
        "errors": [],
        "successful": False,
    }
    return {"statusCode": status, "data": data, "message": message, "reason": "Bad Request"}


def query(request: requests.PreparedRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url or "").query).items()}


def paths(rsps: responses.RequestsMock) -> list[str]:
    """Return the method and raw (still quoted) path of every request sent."""
    return [f"{c.request.method} {urlsplit(c.request.url or '').path}" for c in rsps.calls]


def calls_to(rsps: responses.RequestsMock, path: str) -> list[dict[str, str]]:
    full = urlsplit(API + path).path
    return [query(c.request) for c in rsps.calls if urlsplit(c.request.url or "").path == full]


def body_of(call: Any) -> Any:
    return json.loads(call.request.body)


def list_server(items: list[Any], *, cap: int = 200, drop: int | None = None) -> Callable[..., Answer]:
    """Answer a §2.6 start/limit list: cap the limit, and link the next page while more remain.

    ``drop``: leave the item at this index out of its page (a filtered page), keeping the links.
    """

    def answer(request: requests.PreparedRequest) -> Answer:
        q = query(request)
        start, limit = int(q["start"]), min(int(q["limit"]), cap)
        page = [item for i, item in enumerate(items[start : start + limit], start) if i != drop]
        links: dict[str, str] = {"base": BASE, "context": "/wiki"}
        if start + limit < len(items):
            path = urlsplit(request.url or "").path.removeprefix("/wiki")
            links["next"] = f"{path}?expand=status&limit={limit}&start={start + limit}"
        body = {"results": page, "start": start, "limit": limit, "size": len(page), "_links": links}
        return 200, {}, json.dumps(body)

    return answer


def envelope(
    results: list[Any], *, start: int = 0, limit: int = 200, next_: str | None = None
) -> dict[str, Any]:
    links = {"base": BASE, "context": "/wiki", **({"next": next_} if next_ else {})}
    return {"results": results, "start": start, "limit": limit, "size": len(results), "_links": links}


def memberof(rsps: responses.RequestsMock, key: str, groups: list[str]) -> None:
    rsps.get(
        f"{API}/user/memberof",
        json=envelope([{"type": "group", "name": g} for g in groups]),
        match=[responses.matchers.query_param_matcher({"key": key, "start": "0", "limit": "200"})],
    )


def user_lookup(rsps: responses.RequestsMock, user: dict[str, Any] | None, **who: str) -> None:
    params = {**who, "expand": "status"}
    match = [responses.matchers.query_param_matcher(params)]
    if user is None:
        rsps.get(f"{API}/user", status=404, json=conf_error(404, "No user found"), match=match)
    else:
        rsps.get(f"{API}/user", json=user, match=match)


def confirmed(rsps: responses.RequestsMock, name: str = "amara.k", *, status: str = "Active") -> None:
    """Answer the lookup a first write makes: the username still names userKey K-<name>."""
    user_lookup(rsps, bean(name, status=status), username=name)


def lookups(rsps: responses.RequestsMock) -> list[dict[str, str]]:
    """Return the queries of the GET /user requests sent (by username or by key)."""
    return calls_to(rsps, "/user")


# -- version discovery (§2.1a) ---------------------------------------------------------------


def test_version_from_the_json_manifest_asked_for_with_accept_json(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    target = make_target()
    assert target.capabilities().reason == "Confluence 8.5.6"
    assert target.capabilities().create_user is True
    assert len(rsps.calls) == 1, "the manifest is read once"
    assert rsps.calls[0].request.headers["Accept"] == "application/json"


def test_version_from_an_xml_manifest(rsps: responses.RequestsMock) -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><manifest><id>abc</id>'
        "<name>Confluence</name><typeId>confluence</typeId><version>9.2.1</version>"
        "<buildNumber>9107</buildNumber></manifest>"
    )
    rsps.get(MANIFEST, body=xml, content_type="application/xml")
    assert make_target().capabilities().reason == "Confluence 9.2.1"


def test_an_xml_manifest_with_a_dtd_is_refused(rsps: responses.RequestsMock) -> None:
    dtd = '<!DOCTYPE m [<!ENTITY a "aaaa">]>'
    xml = f'<?xml version="1.0"?>{dtd}<manifest><typeId>confluence</typeId></manifest>'
    rsps.get(MANIFEST, body=xml, content_type="application/xml")
    with pytest.raises(ResponseError, match="DTD"):
        make_target().capabilities()


def test_an_html_manifest_is_a_one_line_error_naming_the_target(rsps: responses.RequestsMock) -> None:
    page = "<!DOCTYPE html>\n<html><head><title>Log in</title></head>\n<body>SSO</body></html>"
    rsps.get(MANIFEST, body=page, content_type="text/html")
    with pytest.raises(ResponseError) as caught:
        make_target().capabilities()
    assert str(caught.value).startswith(
        "confluence: GET /rest/applinks/1.0/manifest: got an HTML page (text/html)"
    )
    assert "\n" not in str(caught.value)


def test_a_manifest_of_another_product_is_refused(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "9.12.0", type_id="jira")
    with pytest.raises(ResponseError, match="not Confluence's \\(typeId 'jira'\\)"):
        make_target().capabilities()


def test_no_manifest_hints_at_the_url(rsps: responses.RequestsMock) -> None:
    rsps.get(MANIFEST, status=404, body="<html>Not Found</html>", content_type="text/html")
    with pytest.raises(ResponseError, match="is url the Confluence base URL"):
        make_target().capabilities()


@pytest.mark.parametrize("version", ["11.0", "6.15.10"])
def test_an_unknown_version_is_a_clear_error(rsps: responses.RequestsMock, version: str) -> None:
    manifest(rsps, version)
    with pytest.raises(ConnectorError) as caught:
        make_target().capabilities()
    assert (
        str(caught.value) == f"confluence: Confluence {version} is not a version scimsync knows (7.x to 10.x)"
    )


def test_a_personal_access_token_before_7_9_is_an_auth_error(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "7.8.3")
    with pytest.raises(AuthError, match=r"Confluence 7\.8\.3 has no personal access tokens \(7\.9\+\)"):
        make_target(auth=PAT).capabilities()


def test_personal_access_tokens_work_from_7_9_and_basic_auth_before(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "7.9.0")
    assert make_target(auth=PAT).capabilities().reason == "Confluence 7.9.0"
    rsps.replace(responses.GET, MANIFEST, json={"typeId": "confluence", "version": "7.8.3"})
    assert make_target().capabilities().reason == "Confluence 7.8.3"


def test_a_401_on_the_manifest_says_what_to_check(rsps: responses.RequestsMock) -> None:
    rsps.get(MANIFEST, status=401, body="")
    with pytest.raises(AuthError) as caught:
        make_target().capabilities()
    assert "HTTP 401 Unauthorized: the credentials were rejected" in str(caught.value)
    assert "check targets.confluence token, or username and password" in str(caught.value)
    assert "conf-s3cret-pass" not in str(caught.value)


# -- capabilities (§2.2) ---------------------------------------------------------------------

NONE: frozenset[str] = frozenset()
BOTH = frozenset({"email", "display_name"})


@pytest.mark.parametrize(
    ("version", "create", "admin", "fields", "emails"),
    [
        ("7.19.20", False, False, NONE, False),
        ("8.1.4", False, False, NONE, False),
        ("8.2.0", False, True, NONE, False),
        ("8.4.0", True, True, NONE, False),
        ("9.3.2", True, True, NONE, False),
        ("10.0.1", True, True, BOTH, True),
    ],
)
def test_capabilities_follow_the_version(
    rsps: responses.RequestsMock,
    version: str,
    create: bool,
    admin: bool,
    fields: frozenset[str],
    emails: bool,
) -> None:
    manifest(rsps, version)
    caps = make_target().capabilities()
    assert caps.create_user is create
    assert (caps.deactivate, caps.delete, caps.manage_groups, caps.create_groups) == (admin,) * 4
    assert caps.update_fields == fields and "username" not in caps.update_fields
    assert caps.shows_email is emails
    assert caps.owner_marker == "group"
    assert caps.reason == f"Confluence {version}"


def test_check_reads_the_signed_in_user_and_says_what_the_version_can_do(
    rsps: responses.RequestsMock,
) -> None:
    manifest(rsps, "9.2.1")
    rsps.get(f"{API}/user/current", json=bean("sync-bot"))
    assert make_target().check() == (
        "Confluence 9.2.1, signed in as sync-bot "
        "(can: create, deactivate, delete, groups; cannot: update email/display name, see emails)"
    )
    rsps.replace(responses.GET, MANIFEST, json={"typeId": "confluence", "version": "10.0.1"})
    assert make_target().check() == (
        "Confluence 10.0.1, signed in as sync-bot "
        "(can: create, deactivate, delete, groups, update email/display name, see emails)"
    )


def test_check_refuses_an_anonymous_session(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "9.2.1")
    rsps.get(f"{API}/user/current", json={"type": "anonymous", "displayName": "Anonymous"})
    with pytest.raises(AuthError, match=r"signed in as anonymous; check targets\.confluence"):
        make_target().check()


def test_check_names_what_to_check_on_401_and_the_message_on_403(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "9.2.1")
    rsps.get(f"{API}/user/current", status=401, body="")
    with pytest.raises(AuthError, match=r"the credentials were rejected; check targets\.confluence token"):
        make_target().check()
    rsps.replace(responses.GET, f"{API}/user/current", status=403, json=conf_error(403, "Not permitted"))
    with pytest.raises(AuthError) as caught:
        make_target().check()
    assert str(caught.value) == "confluence: GET /rest/api/user/current: HTTP 403 Forbidden: Not permitted"


# -- enumeration (§2.6, §7) ------------------------------------------------------------------


def test_every_user_is_read_across_pages_at_the_limit_the_server_caps(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    users = [bean(f"user{i:03}", status="Deactivated" if i % 7 == 0 else "Active") for i in range(250)]
    rsps.add_callback(responses.GET, f"{API}/user/list", callback=list_server(users, cap=100))
    progress: list[tuple[str, int, int | None]] = []
    directory = make_target().read([], progress=lambda *a: progress.append(a), wanted=[])
    assert sorted(a.username for a in directory.accounts) == [u["username"] for u in users]
    asked = [(q["start"], q["limit"], q["expand"]) for q in calls_to(rsps, "/user/list")]
    assert asked == [("0", "200", "status"), ("100", "100", "status"), ("200", "100", "status")]
    by_name = {a.username: a for a in directory.accounts}
    assert by_name["user007"].active is False and by_name["user008"].active is True
    assert by_name["user008"].id == "K-user008" and by_name["user008"].email is None
    assert ("confluence: users", 250, None) in progress


def test_a_short_page_with_a_next_link_is_not_the_end(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "9.3.2")
    users = [bean(f"u{i:03}") for i in range(300)]
    # The first page comes back one short (filtered), but links to the next one.
    rsps.add_callback(responses.GET, f"{API}/user/list", callback=list_server(users, drop=5))
    directory = make_target().read([], wanted=[])
    assert len(directory.accounts) == 299
    assert [q["start"] for q in calls_to(rsps, "/user/list")] == ["0", "200"]


def test_without_links_a_full_page_is_followed_and_a_short_one_ends(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.4.0")
    first = {"results": [bean("a"), bean("b")], "start": 0, "limit": 2, "size": 2}
    last = {"results": [bean("c")], "start": 2, "limit": 2, "size": 1}
    rsps.get(
        f"{API}/user/list",
        json=first,
        match=[responses.matchers.query_param_matcher({"start": "0"}, strict_match=False)],
    )
    rsps.get(
        f"{API}/user/list",
        json=last,
        match=[responses.matchers.query_param_matcher({"start": "2"}, strict_match=False)],
    )
    directory = make_target().read([], wanted=[])
    assert sorted(a.username for a in directory.accounts) == ["a", "b", "c"]
    assert [(q["start"], q["limit"]) for q in calls_to(rsps, "/user/list")] == [("0", "200"), ("2", "2")]


def test_a_page_that_repeats_is_refused(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")

    def ignores_start(request: requests.PreparedRequest) -> Answer:
        start = int(query(request)["start"])
        next_ = f"/rest/api/user/list?limit=2&start={start + 2}"
        return 200, {}, json.dumps(envelope([bean("a"), bean("b")], start=start, limit=2, next_=next_))

    rsps.add_callback(responses.GET, f"{API}/user/list", callback=ignores_start)
    with pytest.raises(ResponseError, match="the same page again at start=2"):
        make_target().read([], wanted=[])


def test_a_next_link_that_goes_back_is_refused(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    body = envelope([bean("a")], start=0, limit=1, next_="/rest/api/user/list?limit=1&start=0")
    rsps.get(f"{API}/user/list", json=body)
    with pytest.raises(ResponseError, match="a next link back to start=0"):
        make_target().read([], wanted=[])


@pytest.mark.parametrize(
    ("results", "next_start"),
    [(["a", "b"], 4), (["a"], 3)],  # a full page, and a short one whose link skips past its limit
    ids=["full-page", "short-page"],
)
def test_a_next_link_that_skips_users_is_refused(
    rsps: responses.RequestsMock, results: list[str], next_start: int
) -> None:
    manifest(rsps, "8.5.6")
    next_ = f"/rest/api/user/list?limit=2&start={next_start}"
    rsps.get(f"{API}/user/list", json=envelope([bean(n) for n in results], limit=2, next_=next_))
    with pytest.raises(ResponseError) as caught:
        make_target().read([], wanted=[])
    assert str(caught.value) == (
        f"confluence: GET /rest/api/user/list: unexpected response: a next link to start={next_start} "
        f"skips past the page at start=0 ({len(results)} users)"
    )
    assert len(calls_to(rsps, "/user/list")) == 1


def test_an_unknown_status_is_refused_not_guessed(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    rsps.get(f"{API}/user/list", json=envelope([bean("a", status="Unlicensed")]))
    with pytest.raises(ResponseError, match="user a has status 'Unlicensed'"):
        make_target().read([], wanted=[])


def test_managed_group_memberships_and_existence(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "10.0.1")
    amara, ben = bean("amara.k", email="amara.k@example.test"), bean("ben")
    rsps.get(f"{API}/user/list", json=envelope([amara, ben]))
    # A name with a space, '+' and '@': quoted as one path segment.
    rsps.get(f"{API}/group/team%20alpha%2Bops%40x/member", json=envelope([amara]))
    rsps.get(f"{API}/group/scimsync-managed/member", json=envelope([amara, ben]))
    rsps.get(f"{API}/group/empty/member", json=envelope([]))
    rsps.get(f"{API}/group/empty", json={"type": "group", "name": "empty"})
    rsps.get(f"{API}/group/gone/member", status=404, json=conf_error(404, "No group found"))
    rsps.get(f"{API}/group/gone", status=404, json=conf_error(404, "No group found"))
    rsps.get(f"{API}/group/silent/member", json=envelope([]))  # an empty answer for a missing group
    rsps.get(f"{API}/group/silent", status=404, json=conf_error(404, "No group found"))
    managed = ["team alpha+ops@x", "scimsync-managed", "empty", "gone", "silent"]
    directory = make_target().read(managed, wanted=[])
    assert directory.groups == {"team alpha+ops@x", "scimsync-managed", "empty"}
    by_name = {a.username: a for a in directory.accounts}
    assert by_name["amara.k"].groups == {"team alpha+ops@x", "scimsync-managed"}
    assert by_name["ben"].groups == {"scimsync-managed"}
    assert by_name["amara.k"].email == "amara.k@example.test"
    assert calls_to(rsps, "/group/team%20alpha%2Bops%40x/member")[0]["limit"] == "200"


def test_below_8_4_walks_the_access_groups_and_looks_up_the_wanted_usernames(
    rsps: responses.RequestsMock,
) -> None:
    manifest(rsps, "8.3.0")
    rsps.get(f"{API}/group/confluence-users/member", json=envelope([bean("amara.k"), bean("ben")]))
    rsps.get(f"{API}/group/confluence-administrators/member", json=envelope([bean("admin")]))
    rsps.get(
        f"{API}/group/scimsync-managed/member",
        json=envelope([bean("ben"), bean("old", status="Deactivated")]),
    )
    user_lookup(rsps, bean("chen"), username="Chen")
    user_lookup(rsps, None, username="dalia")
    wanted = [("Amara.K", "amara.k@example.test"), ("Chen", "chen@example.test"), ("dalia", "d@example.test")]
    directory = make_target().read(["scimsync-managed"], wanted=wanted)
    by_name = {a.username: a for a in directory.accounts}
    assert set(by_name) == {"amara.k", "ben", "admin", "old", "chen"}
    assert by_name["old"].active is False and by_name["old"].groups == {"scimsync-managed"}
    assert by_name["amara.k"].groups == frozenset(), "confluence-users is walked, not managed"
    assert directory.groups == {"scimsync-managed"}
    assert calls_to(rsps, "/user/list") == []
    # Only the usernames no group showed are looked up, exactly.
    assert sorted(q["username"] for q in calls_to(rsps, "/user")) == ["Chen", "dalia"]


def test_get_account_by_key_with_every_group(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    user_lookup(rsps, bean("amara.k"), key="K-amara.k")
    rsps.get(
        f"{API}/user/memberof",
        json=envelope(
            [{"type": "group", "name": "a"}], limit=1, next_="/rest/api/user/memberof?key=K-amara.k&start=1"
        ),
        match=[responses.matchers.query_param_matcher({"key": "K-amara.k", "start": "0", "limit": "200"})],
    )
    rsps.get(
        f"{API}/user/memberof",
        json=envelope([{"type": "group", "name": "scimsync-managed"}], start=1, limit=1),
        match=[responses.matchers.query_param_matcher({"key": "K-amara.k", "start": "1", "limit": "1"})],
    )
    account = make_target().get_account("renamed", account_id="K-amara.k")
    assert account is not None and account.username == "amara.k"
    assert account.groups == {"a", "scimsync-managed"}


def test_get_account_by_username_and_none_when_missing(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    user_lookup(rsps, bean("amara.k", status="Deactivated"), username="amara.k")
    memberof(rsps, "K-amara.k", [])
    user_lookup(rsps, None, username="ghost")
    account = make_target().get_account("amara.k")
    assert account is not None and account.active is False and account.groups == frozenset()
    assert make_target().get_account("ghost") is None


@pytest.mark.parametrize(("version", "shown"), [("9.4.0", None), ("10.0.1", "amara@example.test")])
def test_an_email_is_kept_only_from_the_version_that_shows_emails(
    rsps: responses.RequestsMock, version: str, shown: str | None
) -> None:
    # §2.2: a Confluence before 10.0 shows no emails; one it sends anyway must never match anyone.
    manifest(rsps, version)
    amara = bean("amara.k", email="amara@example.test")
    rsps.get(f"{API}/user/list", json=envelope([amara]))
    rsps.get(f"{API}/group/scimsync-managed/member", json=envelope([amara]))
    user_lookup(rsps, amara, key="K-amara.k")
    memberof(rsps, "K-amara.k", [])
    target = make_target()
    assert [a.email for a in target.read(["scimsync-managed"], wanted=[]).accounts] == [shown]
    account = target.get_account("amara.k", account_id="K-amara.k")
    assert account is not None and account.email == shown


# -- writes ----------------------------------------------------------------------------------


def test_create_user_sends_a_lower_case_name_a_random_password_and_no_email(
    rsps: responses.RequestsMock,
) -> None:
    manifest(rsps, "9.3.2")
    rsps.post(f"{API}/admin/user", status=201, json={"userKey": "8a80cb81"})
    target = make_target()
    account = target.create_user("Amara.K", "amara.k@example.test", "Amara Kowalski")
    target.create_user("ben", "ben@example.test", "Ben")
    first, second = (body_of(c) for c in rsps.calls if c.request.method == "POST")
    password = first.pop("password")
    assert first == {
        "userName": "amara.k",
        "fullName": "Amara Kowalski",
        "email": "amara.k@example.test",
        "notifyViaEmail": False,
    }
    assert isinstance(password, str) and len(password) >= 40 and password != second["password"]
    assert account == Account(id="8a80cb81", username="amara.k", email=None, display_name="Amara Kowalski")


def test_create_user_on_10_returns_the_email_it_will_show(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "10.0.1")
    rsps.post(f"{API}/admin/user", status=201, json={"userKey": "8a80cb81"})
    assert make_target().create_user("ben", "ben@example.test", "Ben").email == "ben@example.test"


@pytest.mark.parametrize(
    ("status", "message", "error", "said"),
    [
        (409, "A user with userName ben already exists", ConnectorError, "already exists (HTTP 409 Conflict"),
        (402, "Licence limit reached", ConnectorError, "no licence seats left (HTTP 402 Payment Required"),
        (400, "Invalid email", ConnectorError, "HTTP 400 Bad Request: Invalid email"),
        (400, "The user directory is read-only", NotManageableError, "read-only directory"),
    ],
)
def test_create_user_refusals(
    rsps: responses.RequestsMock, status: int, message: str, error: type[ConnectorError], said: str
) -> None:
    manifest(rsps, "9.3.2")
    rsps.post(f"{API}/admin/user", status=status, json=conf_error(status, message))
    with pytest.raises(error) as caught:
        make_target().create_user("ben", "ben", "Ben")
    assert type(caught.value) is error
    assert str(caught.value).startswith(f"confluence: user ben: {said}")


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (409, "A user with the username 'readonly.kim' already exists.", ConnectorError),
        (404, "No user found with username: readonly.kim", NotFoundError),
        (400, "User 'read-only.bot' has an invalid email", ConnectorError),
        (400, 'Group "read only team" cannot be used', ConnectorError),
        (403, "Can't create 'kim': the user's directory is read-only", NotManageableError),
    ],
)
def test_read_only_wording_counts_only_in_a_refusal_and_outside_quoted_names(
    rsps: responses.RequestsMock, status: int, message: str, error: type[ConnectorError]
) -> None:
    # A name echoed in the message ('readonly.kim') says nothing about the directory (§2.8, §2.10).
    manifest(rsps, "9.3.2")
    rsps.post(f"{API}/admin/user", status=status, json=conf_error(status, message))
    with pytest.raises(ConnectorError) as caught:
        make_target().create_user("kim", "kim@example.test", "Kim")
    assert type(caught.value) is error


def echo_password(status: int, pad: int = 0) -> Callable[..., Answer]:
    def answer(request: requests.PreparedRequest) -> Answer:
        password = json.loads(request.body or "{}")["password"]
        return status, {}, json.dumps(conf_error(status, "x" * pad + f"bad password {password} given"))

    return answer


@pytest.mark.parametrize(
    "answer",
    [
        echo_password(400),
        echo_password(500),
        echo_password(500, pad=275),  # cut short inside the password by the message length limit
    ],
)
def test_the_password_never_appears_in_an_error(
    rsps: responses.RequestsMock, answer: Callable[..., Answer]
) -> None:
    manifest(rsps, "9.3.2")
    rsps.add_callback(responses.POST, f"{API}/admin/user", callback=answer)
    with pytest.raises(ConnectorError) as caught:
        make_target().create_user("ben", "ben@example.test", "Ben")
    password = body_of(rsps.calls[-1])["password"]
    message = str(caught.value)
    assert "bad password" in message and password[:8] not in message
    assert caught.value.__suppress_context__, "the unscrubbed error is not chained into a traceback"


def test_the_password_never_appears_when_the_created_answer_is_garbage(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "9.3.2")

    def answer(request: requests.PreparedRequest) -> Answer:
        return 201, {"Content-Type": "text/plain"}, "created " + json.loads(request.body or "{}")["password"]

    rsps.add_callback(responses.POST, f"{API}/admin/user", callback=answer)
    with pytest.raises(ResponseError) as caught:
        make_target().create_user("ben", "ben@example.test", "Ben")
    assert body_of(rsps.calls[-1])["password"][:8] not in str(caught.value)


def test_create_user_is_refused_locally_before_8_4_and_for_bad_names(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.3.0")
    with pytest.raises(ConnectorError, match=r"cannot create users on this target \(Confluence 8.3.0\)"):
        make_target().create_user("ben", "ben@example.test", "Ben")
    rsps.replace(responses.GET, MANIFEST, json={"typeId": "confluence", "version": "8.4.0"})
    with pytest.raises(ConnectorError, match="does not allow this username"):
        make_target().create_user("ben smith", "ben@example.test", "Ben")
    assert not any(c.request.method == "POST" for c in rsps.calls)


@pytest.mark.parametrize(("active", "verb"), [(False, "disable"), (True, "enable")])
def test_set_active_puts_disable_or_enable_on_the_quoted_username(
    rsps: responses.RequestsMock, active: bool, verb: str
) -> None:
    manifest(rsps, "8.2.0")
    name = "o'neil k@x+y"
    confirmed(rsps, name)
    user_lookup(rsps, bean(name, status="Active" if active else "Deactivated"), key=f"K-{name}")
    rsps.put(f"{API}/admin/user/o%27neil%20k%40x%2By/{verb}", status=204)
    make_target().set_active(Account(id=f"K-{name}", username=name, email=None, display_name=""), active)
    assert paths(rsps)[1:] == [
        "GET /wiki/rest/api/user",  # the name still names the planned userKey
        f"PUT /wiki/rest/api/admin/user/o%27neil%20k%40x%2By/{verb}",
        "GET /wiki/rest/api/user",  # the status, read back
    ]
    assert lookups(rsps) == [
        {"username": name, "expand": "status"},
        {"key": f"K-{name}", "expand": "status"},
    ]


def test_a_read_only_directory_refusal_is_not_manageable(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    message = "Cannot disable user amara.k: the user directory is read-only"
    confirmed(rsps)
    rsps.put(f"{API}/admin/user/amara.k/disable", status=400, json=conf_error(400, message))
    with pytest.raises(NotManageableError) as caught:
        make_target().set_active(AMARA, False)
    assert (
        str(caught.value)
        == f"confluence: user amara.k: read-only directory (HTTP 400 Bad Request: {message})"
    )


def test_the_site_read_only_mode_is_not_the_accounts_directory(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    message = "Confluence is in read-only mode"
    confirmed(rsps)
    rsps.put(f"{API}/admin/user/amara.k/disable", status=403, json=conf_error(403, message))
    with pytest.raises(ConnectorError) as caught:
        make_target().set_active(AMARA, False)
    assert type(caught.value) is ConnectorError


def test_update_user_sends_both_fields_of_section_2_5(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "10.0.1")
    confirmed(rsps)
    rsps.put(f"{API}/admin/user/amara.k", status=204)
    account = Account(id="K-amara.k", username="amara.k", email="old@example.test", display_name="Amara K")
    make_target().update_user(account, {"display_name": "Amara Kowalski"})
    assert body_of(rsps.calls[-1]) == {"email": "old@example.test", "fullName": "Amara Kowalski"}


def test_update_user_reads_the_other_field_when_the_plan_does_not_know_it(
    rsps: responses.RequestsMock,
) -> None:
    manifest(rsps, "10.0.1")
    confirmed(rsps)
    user_lookup(rsps, bean("amara.k", email="now@example.test"), key="K-amara.k")
    rsps.put(f"{API}/admin/user/amara.k", status=204)
    make_target().update_user(AMARA, {"display_name": "Amara Kowalski"})
    assert body_of(rsps.calls[-1]) == {"email": "now@example.test", "fullName": "Amara Kowalski"}


def test_update_user_before_10_or_of_the_username_is_refused_locally(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "9.3.2")
    with pytest.raises(ConnectorError, match=r"cannot update email on this target \(Confluence 9.3.2\)"):
        make_target().update_user(AMARA, {"email": "new@example.test"})
    rsps.replace(responses.GET, MANIFEST, json={"typeId": "confluence", "version": "10.0.1"})
    with pytest.raises(ConnectorError, match="cannot update username on this target"):
        make_target().update_user(AMARA, {"username": "amara.new"})
    assert not any(c.request.method == "PUT" for c in rsps.calls)


def task_status(finished: bool, successful: bool = False, message: str = "") -> dict[str, Any]:
    messages = [{"translation": message, "args": []}] if message else []
    return {
        "id": "42",
        "percentageComplete": 100 if finished else 40,
        "finished": finished,
        "successful": successful,
        "messages": messages,
    }


def test_delete_user_waits_for_its_long_task(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    submission = {"id": "42", "links": {"status": "/wiki/rest/api/longtask/42"}}
    confirmed(rsps)
    rsps.delete(f"{API}/admin/user/amara.k", status=202, json=submission)
    rsps.get(f"{API}/longtask/42", json=task_status(False))
    rsps.get(f"{API}/longtask/42", json=task_status(False))
    rsps.get(f"{API}/longtask/42", json=task_status(True, successful=True))
    clock = Clock()
    make_target(clock=clock).delete_user(AMARA)
    assert clock.sleeps == [0.5, 1.0], "backs off from 0.5 s"
    assert paths(rsps)[1:] == [
        "GET /wiki/rest/api/user",
        "DELETE /wiki/rest/api/admin/user/amara.k",
        *["GET /wiki/rest/api/longtask/42"] * 3,
    ]


def test_delete_user_polls_the_longtask_path_when_no_link_is_given(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    confirmed(rsps)
    rsps.delete(f"{API}/admin/user/amara.k", status=202, json={"id": 42})
    rsps.get(f"{API}/longtask/42", json=task_status(True, successful=True))
    make_target().delete_user(AMARA)
    assert paths(rsps)[-1] == "GET /wiki/rest/api/longtask/42"


def test_a_failed_delete_task_names_the_task_and_its_message(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    confirmed(rsps)
    rsps.delete(
        f"{API}/admin/user/amara.k",
        status=202,
        json={"id": "42", "links": {"status": "/rest/api/longtask/42"}},
    )
    rsps.get(f"{API}/longtask/42", json=task_status(True, message="User is the owner of a space"))
    with pytest.raises(ConnectorError) as caught:
        make_target().delete_user(AMARA)
    assert (
        str(caught.value) == "confluence: user amara.k: delete task 42 failed: User is the owner of a space"
    )


def test_a_delete_task_that_never_finishes_is_given_up_after_the_wait(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    confirmed(rsps)
    rsps.delete(
        f"{API}/admin/user/amara.k",
        status=202,
        json={"id": "42", "links": {"status": "/rest/api/longtask/42"}},
    )
    rsps.get(f"{API}/longtask/42", json=task_status(False))
    clock = Clock()
    with pytest.raises(ConnectorError) as caught:
        make_target(clock=clock).delete_user(AMARA)
    assert str(caught.value) == "confluence: user amara.k: delete task 42 did not finish within 120 s"
    assert clock.now == 120.0 and max(clock.sleeps) == 10.0, "bounded wait, gaps capped"


def test_deleting_a_user_already_gone_is_done_without_a_delete(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    user_lookup(rsps, None, username="amara.k")
    user_lookup(rsps, None, key="K-amara.k")
    make_target().delete_user(AMARA)
    assert [c.request.method for c in rsps.calls] == ["GET"] * 3


def test_a_user_deleted_between_the_lookup_and_the_delete_is_done(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    confirmed(rsps)
    rsps.delete(f"{API}/admin/user/amara.k", status=404, json=conf_error(404, "No user found"))
    user_lookup(rsps, None, key="K-amara.k")
    make_target().delete_user(AMARA)
    assert paths(rsps)[-2:] == ["DELETE /wiki/rest/api/admin/user/amara.k", "GET /wiki/rest/api/user"]


def test_a_user_renamed_away_is_not_deleted_nor_done(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    user_lookup(rsps, None, username="amara.k")
    renamed = {**bean("amara.renamed"), "userKey": "K-amara.k"}  # the userKey lives on, renamed
    user_lookup(rsps, renamed, key="K-amara.k")
    with pytest.raises(NotFoundError, match=r"no user is named amara\.k any more; nothing was written"):
        make_target().delete_user(AMARA)
    assert not any(c.request.method == "DELETE" for c in rsps.calls)


def test_create_group_sends_only_the_name(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.2.0")
    rsps.post(f"{API}/admin/group", status=201, json={"type": "group", "name": "team alpha"})
    make_target().create_group("team alpha")
    assert body_of(rsps.calls[-1]) == {"name": "team alpha"}


def test_create_group_that_exists_is_done_and_a_missing_one_fails(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.2.0")
    rsps.post(f"{API}/admin/group", status=400, json=conf_error(400, "Group already exists"))
    rsps.get(f"{API}/group/team", json={"type": "group", "name": "team"})
    make_target().create_group("team")
    rsps.replace(responses.GET, f"{API}/group/team", status=404, json=conf_error(404, "No group found"))
    with pytest.raises(ConnectorError, match="group team: HTTP 400 Bad Request: Group already exists"):
        make_target().create_group("team")


@pytest.mark.parametrize(("method", "call"), [("PUT", "add_member"), ("DELETE", "remove_member")])
def test_memberships_are_one_idempotent_request_on_quoted_names_then_one_read(
    rsps: responses.RequestsMock, method: str, call: str
) -> None:
    manifest(rsps, "8.2.0")
    confirmed(rsps)
    memberof(rsps, "K-amara.k", ["Team A+B"] if method == "PUT" else ["other"])
    rsps.add(method, f"{API}/user/amara.k/group/team%20a%2Bb", status=204)
    target = make_target()
    getattr(target, call)(AMARA, "team a+b")
    getattr(target, call)(AMARA, "team a+b")  # again: Confluence answers 204 again (§2.7)
    write, read = (
        f"{method} /wiki/rest/api/user/amara.k/group/team%20a%2Bb",
        "GET /wiki/rest/api/user/memberof",
    )
    # The username is confirmed once per run; each write is read back once.
    assert paths(rsps)[1:] == ["GET /wiki/rest/api/user", write, read, write, read]


def test_a_refused_membership_change_is_decided_by_re_reading_it(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.2.0")
    odd = conf_error(400, "Something odd")
    rsps.put(f"{API}/user/amara.k/group/team", status=400, json=odd)
    rsps.delete(f"{API}/user/amara.k/group/other", status=400, json=odd)
    confirmed(rsps)
    memberof(rsps, "K-amara.k", ["Team"])
    target = make_target()
    target.add_member(AMARA, "team")  # already a member (names compare lower-cased)
    target.remove_member(AMARA, "other")  # not a member
    rsps.put(f"{API}/user/amara.k/group/other", status=400, json=odd)
    rsps.get(f"{API}/group/other", json={"type": "group", "name": "other"})
    with pytest.raises(ConnectorError, match="HTTP 400 Bad Request: Something odd"):
        target.add_member(AMARA, "other")


def test_a_404_on_a_membership_tells_a_missing_user_from_a_missing_group(
    rsps: responses.RequestsMock,
) -> None:
    manifest(rsps, "8.2.0")
    missing = conf_error(404, "Not found")
    rsps.put(f"{API}/user/amara.k/group/gone", status=404, json=missing)
    confirmed(rsps)
    memberof(rsps, "K-amara.k", [])
    rsps.get(f"{API}/group/gone", status=404, json=missing)
    with pytest.raises(NotFoundError, match=r"membership amara\.k in gone: group gone does not exist"):
        make_target().add_member(AMARA, "gone")
    # Deleted between the lookup and the write: its groups cannot be read any more.
    ghost = Account(id="K-ghost", username="ghost", email=None, display_name="")
    confirmed(rsps, "ghost")
    rsps.put(f"{API}/user/ghost/group/team", status=404, json=missing)
    rsps.get(f"{API}/user/memberof", status=404, json=missing)
    with pytest.raises(NotFoundError, match="user ghost does not exist \\(Confluence answered HTTP 404\\)"):
        make_target().add_member(ghost, "team")


# -- the account behind a username, and writes read back (§2.3, §2.5, §2.7) -------------------

WRITES: dict[str, Callable[[ConfluenceTarget, Account], None]] = {
    "update_user": lambda t, a: t.update_user(a, {"display_name": "Amara Kowalski"}),
    "set_active": lambda t, a: t.set_active(a, False),
    "delete_user": lambda t, a: t.delete_user(a),
    "add_member": lambda t, a: t.add_member(a, "team"),
    "remove_member": lambda t, a: t.remove_member(a, "team"),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=list(WRITES))
def test_no_write_reaches_a_stranger_who_took_the_username(
    rsps: responses.RequestsMock, write: Callable[[ConfluenceTarget, Account], None]
) -> None:
    # §2.5 writes address users by username: a name freed since the plan may be someone else's.
    manifest(rsps, "10.0.1")
    user_lookup(rsps, {**bean("amara.k"), "userKey": "K-newhire"}, username="amara.k")
    with pytest.raises(ConnectorError) as caught:
        write(make_target(), AMARA)
    assert type(caught.value) is ConnectorError
    assert caught.value.cause == (
        "the username now belongs to another account (userKey K-newhire, planned K-amara.k); "
        "nothing was written: plan again"
    )
    assert "amara.k" in caught.value.obj
    assert paths(rsps)[1:] == ["GET /wiki/rest/api/user"], "the lookup only"


@pytest.mark.parametrize("write", [w for n, w in WRITES.items() if n != "delete_user"])
def test_a_write_on_a_username_no_one_holds_is_not_found_and_not_sent(
    rsps: responses.RequestsMock, write: Callable[[ConfluenceTarget, Account], None]
) -> None:
    manifest(rsps, "10.0.1")
    user_lookup(rsps, None, username="amara.k")
    with pytest.raises(NotFoundError, match=r"no user is named amara\.k any more; nothing was written"):
        write(make_target(), AMARA)
    assert paths(rsps)[1:] == ["GET /wiki/rest/api/user"]


def test_a_username_is_confirmed_once_per_run_and_a_created_user_not_at_all(
    rsps: responses.RequestsMock,
) -> None:
    manifest(rsps, "8.5.6")
    confirmed(rsps)
    user_lookup(rsps, bean("amara.k", status="Deactivated"), key="K-amara.k")
    memberof(rsps, "K-amara.k", [])
    rsps.delete(f"{API}/user/amara.k/group/team", status=204)
    rsps.put(f"{API}/admin/user/amara.k/disable", status=204)
    rsps.post(f"{API}/admin/user", status=201, json={"userKey": "K-ben"})
    rsps.put(f"{API}/user/ben/group/team", status=204)
    memberof(rsps, "K-ben", ["team"])
    target = make_target()
    target.remove_member(AMARA, "team")
    target.set_active(AMARA, False)
    target.add_member(target.create_user("Ben", "ben@example.test", "Ben"), "team")
    assert paths(rsps)[1:] == [
        "GET /wiki/rest/api/user",  # amara.k still names K-amara.k
        "DELETE /wiki/rest/api/user/amara.k/group/team",
        "GET /wiki/rest/api/user/memberof",
        "PUT /wiki/rest/api/admin/user/amara.k/disable",  # confirmed already
        "GET /wiki/rest/api/user",  # the status, read back
        "POST /wiki/rest/api/admin/user",
        "PUT /wiki/rest/api/user/ben/group/team",  # made in this run: known
        "GET /wiki/rest/api/user/memberof",
    ]


def test_a_deleted_username_is_looked_up_again(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    confirmed(rsps)
    rsps.delete(f"{API}/admin/user/amara.k", status=204)
    target = make_target()
    target.delete_user(AMARA)
    rsps.replace(responses.GET, f"{API}/user", status=404, json=conf_error(404, "No user found"))
    with pytest.raises(NotFoundError, match=r"no user is named amara\.k any more"):
        target.add_member(AMARA, "team")
    assert len(lookups(rsps)) == 2 and not any(c.request.method == "PUT" for c in rsps.calls)


def test_without_a_planned_user_key_the_user_must_exist(rsps: responses.RequestsMock) -> None:
    # [U] a plan that never knew the userKey: the name is all there is; it must name someone.
    manifest(rsps, "8.5.6")
    confirmed(rsps)
    memberof(rsps, "K-amara.k", ["team"])
    rsps.put(f"{API}/user/amara.k/group/team", status=204)
    make_target().add_member(Account(id="", username="amara.k", email=None, display_name=""), "team")
    assert calls_to(rsps, "/user/memberof") == [{"key": "K-amara.k", "start": "0", "limit": "200"}]
    user_lookup(rsps, None, username="ghost")
    with pytest.raises(NotFoundError, match="no user is named ghost any more"):
        make_target().add_member(Account(id="", username="ghost", email=None, display_name=""), "team")
    assert [c.request.method for c in rsps.calls].count("PUT") == 1


@pytest.mark.parametrize(
    ("active", "verb", "left", "still"),
    [
        (False, "disable", "Active", "still enabled (§2.5: CONFSERVER-54928, disable fails on 8.5.16)"),
        (True, "enable", "Deactivated", "still disabled"),
    ],
)
def test_a_status_change_answered_success_that_did_not_take_is_a_failure(
    rsps: responses.RequestsMock, active: bool, verb: str, left: str, still: str
) -> None:
    manifest(rsps, "8.5.16")
    confirmed(rsps)
    user_lookup(rsps, bean("amara.k", status=left), key="K-amara.k")
    rsps.put(f"{API}/admin/user/amara.k/{verb}", status=204)
    with pytest.raises(ConnectorError) as caught:
        make_target().set_active(AMARA, active)
    assert type(caught.value) is ConnectorError
    assert str(caught.value) == (
        f"confluence: user amara.k: Confluence answered success to {verb} "
        f"but the state did not change: {still}"
    )


@pytest.mark.parametrize(
    ("method", "call", "groups", "still"),
    [
        ("PUT", "add_member", [], "still not a member"),
        ("DELETE", "remove_member", ["Team"], "still a member (through a nested group? §2.7)"),
    ],
)
def test_a_membership_change_answered_204_that_did_not_take_is_a_failure(
    rsps: responses.RequestsMock, method: str, call: str, groups: list[str], still: str
) -> None:
    manifest(rsps, "8.5.16")
    confirmed(rsps)
    memberof(rsps, "K-amara.k", groups)
    rsps.add(method, f"{API}/user/amara.k/group/team", status=204)
    with pytest.raises(ConnectorError) as caught:
        getattr(make_target(), call)(AMARA, "team")
    assert str(caught.value) == (
        "confluence: membership amara.k in team: Confluence answered success (HTTP 204) but the state "
        f"did not change: {still}"
    )


DOTS = Account(id="K-..", username="..", email=None, display_name="Dots")
USERNAME, GROUP = "a username", "a group name"
DOT_WRITES: list[tuple[str, str, Callable[[ConfluenceTarget], object]]] = [
    ("user .", USERNAME, lambda t: t.create_user(".", "dot@example.test", "Dot")),
    ("user ..", USERNAME, lambda t: t.set_active(DOTS, False)),
    ("user ..", USERNAME, lambda t: t.delete_user(DOTS)),
    ("user ..", USERNAME, lambda t: t.update_user(DOTS, {"display_name": "Dot Dot"})),
    ("membership .. in team", USERNAME, lambda t: t.add_member(DOTS, "team")),
    ("membership amara.k in ..", GROUP, lambda t: t.remove_member(AMARA, "..")),
    ("group ..", GROUP, lambda t: t.create_group("..")),
    ("group .", GROUP, lambda t: t.group_exists(".")),
]


@pytest.mark.parametrize(("obj", "what", "call"), DOT_WRITES)
def test_dot_names_are_refused_before_any_request(
    rsps: responses.RequestsMock, obj: str, what: str, call: Callable[[ConfluenceTarget], object]
) -> None:
    # requests removes dot segments: /user/../group/g would reach /group/g, another resource.
    manifest(rsps, "10.0.1")
    with pytest.raises(ConnectorError) as caught:
        call(make_target())
    assert str(caught.value) == f"confluence: {obj}: {what} of '.' or '..' cannot be addressed in a REST path"
    assert [c.request.url for c in rsps.calls] in ([], [MANIFEST])


def test_a_managed_group_named_dot_dot_is_never_read(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "9.4.0")
    rsps.get(f"{API}/user/list", json=envelope([]))
    with pytest.raises(ConnectorError, match=r"group \.\.: a group name of '\.' or '\.\.' cannot"):
        make_target().read([".."], wanted=[])
    assert not any("/group" in c.request.url for c in rsps.calls if c.request.url)


# -- errors and rate limits ------------------------------------------------------------------


def test_parse_error_reads_the_section_2_8_body_on_one_line() -> None:
    body = conf_error(400, "Invalid user")
    body["data"]["errors"] = [
        {"message": {"key": "k", "translation": "email is\ninvalid", "args": []}},
        "Invalid user",
    ]
    response = requests.Response()
    response.status_code, response._content = 400, json.dumps(body).encode()
    assert parse_error(response) == "Invalid user; email is invalid"


def test_an_html_error_body_is_named_as_such(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    rsps.get(f"{API}/user/list", status=500, body=page, content_type="text/html")
    with pytest.raises(ConnectorError) as caught:
        make_target().read([], wanted=[])
    assert str(caught.value) == (
        "confluence: GET /rest/api/user/list: HTTP 500 Internal Server Error: "
        "the body is not a Confluence error (text/html)"
    )
    confirmed(rsps)
    rsps.put(f"{API}/admin/user/amara.k/disable", status=400, body=page, content_type="text/html")
    with pytest.raises(ResponseError, match="HTTP 400: the body is not a Confluence error \\(text/html\\)"):
        make_target().set_active(AMARA, False)


def test_401_and_403_on_writes_are_auth_errors(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    confirmed(rsps)
    rsps.put(f"{API}/admin/user/amara.k/disable", status=401, body="")
    with pytest.raises(AuthError, match="HTTP 401 Unauthorized: the credentials were rejected"):
        make_target().set_active(AMARA, False)
    disabled = {"message": "Basic Authentication has been disabled on this instance."}
    rsps.replace(responses.PUT, f"{API}/admin/user/amara.k/disable", status=403, json=disabled)
    with pytest.raises(AuthError) as caught:
        make_target().set_active(AMARA, False)
    assert str(caught.value).endswith(f"(hint: {BASIC_AUTH_HINT})")
    # A 403 in Confluence's own body refuses this one object: the run goes on.
    rsps.replace(
        responses.PUT, f"{API}/admin/user/amara.k/disable", status=403, json=conf_error(403, "Not permitted")
    )
    with pytest.raises(ConnectorError) as refused:
        make_target().set_active(AMARA, False)
    assert type(refused.value) is ConnectorError


def test_rate_limited_writes_go_through_the_http_client_and_are_retried(rsps: responses.RequestsMock) -> None:
    manifest(rsps, "8.5.6")
    url = f"{API}/user/amara.k/group/team"
    confirmed(rsps)
    memberof(rsps, "K-amara.k", ["team"])
    rsps.put(url, status=429, headers={"Retry-After": "1"}, json=conf_error(429, "Too many requests"))
    rsps.put(url, status=204)
    make_target().add_member(AMARA, "team")
    assert [c.response.status_code for c in rsps.calls if c.request.method == "PUT"] == [429, 204]


def test_the_confluence_type_is_registered(rsps: responses.RequestsMock) -> None:
    assert TARGET_TYPES["confluence"].error_parser is parse_error
    config = TargetConfig(
        type="confluence", url=BASE, username="sync-bot", password=Secret("conf-s3cret-pass")
    )
    target = build_target("wiki", config, HttpSettings())
    assert isinstance(target, ConfluenceTarget) and target.name == "wiki" and target.type == "confluence"
    target.close()
