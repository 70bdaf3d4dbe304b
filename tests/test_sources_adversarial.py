"""Adversarial review of the source connectors: each attacked through its own simulator.

The contract every source must keep: the exact directory, or a ConnectorError naming the
source and the page. A partial directory returned as if whole makes the engine deprovision
everyone missing; a person read inactive loses access; a lost membership lets a rule take
access away. Each attack below is either defended (a normal test) or a finding: a test that
fails today, marked ``xfail(strict=True)`` with the severity and the reason, so that the
fix turns it into an unexpected pass.

The attacks go through the simulators (scimsync.sim.*), scim2-server (tests/scim_server.py)
and the test slapd (tests/slapd.py); ``Tamper`` below stands for a proxy or a misbehaving
server in front of any of them: it rewrites chosen answers or changes the directory
between two pages. Expected values come from each seed, never from the code under test.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from scim_server import ScimServer, running_scim_server
from slapd import (
    SERVICE_DN,
    SERVICE_PASSWORD,
    add_entries,
    fresh_ou,
    slapd_fixture,  # noqa: F401 (the session fixture `slapd`)
)

import scimsync.http.client
from scimsync.config import (
    EntraSourceConfig,
    GoogleSourceConfig,
    KeycloakSourceConfig,
    LdapSourceConfig,
    OktaSourceConfig,
    OneLoginSourceConfig,
    ScimSourceConfig,
)
from scimsync.errors import ConnectorError
from scimsync.http import HttpSettings
from scimsync.ldap_lib import ldap3
from scimsync.models import SourceDirectory, User
from scimsync.secrets import Secret
from scimsync.sim.entra import CLIENT_ID, CLIENT_SECRET, TENANT_ID, EntraSim
from scimsync.sim.google import GoogleSim
from scimsync.sim.keycloak import SECRET as KEYCLOAK_SECRET
from scimsync.sim.keycloak import KeycloakSim
from scimsync.sim.okta import OktaSim
from scimsync.sim.onelogin import OneLoginSim
from scimsync.sim.onelogin_api import Paging
from scimsync.sim.server import SimServer
from scimsync.sim.slapd import Slapd
from scimsync.sources.entra import EntraSource
from scimsync.sources.google import GoogleSource
from scimsync.sources.keycloak import KeycloakSource
from scimsync.sources.ldap import LdapSource
from scimsync.sources.ldap_conn import Entry, LdapDirectory
from scimsync.sources.okta import OktaSource
from scimsync.sources.onelogin import OneLoginSource
from scimsync.sources.scim import ScimSource

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SETTINGS = HttpSettings(retries=2, timeout=5, concurrency=4)
Headers = list[tuple[str, str]]
Answer = tuple[int, Headers, bytes]
Change = Callable[[int, Headers, bytes], Answer]
Query = Callable[[Mapping[str, str]], bool]


@pytest.fixture(autouse=True)
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the HTTP layer's waits instead of sleeping (429 storms cost no time)."""
    waits: list[float] = []
    monkeypatch.setattr(scimsync.http.client, "_sleep", waits.append)
    return waits


# --- a proxy that misbehaves ---------------------------------------------------------------


@dataclass
class _Rule:
    path: str
    change: Change
    when: Query
    skip: int  # matching requests answered untouched first
    times: int | None  # None: every matching request after the skipped ones


class Tamper:
    """WSGI middleware in front of a simulator: rewrites the answers of chosen requests.

    The simulator answers first (its state changes as it would), then ``change`` gets the
    status, headers and body and returns what the client sees; a change may also alter the
    directory, which then moved "between two pages".
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self.seen: list[tuple[str, dict[str, str]]] = []

    def on(
        self,
        path: str,
        change: Change,
        *,
        when: Query = lambda q: True,
        skip: int = 0,
        times: int | None = 1,
    ) -> None:
        """Change the answer to requests of ``path`` (exact) whose query ``when`` accepts."""
        with self._lock:
            self._rules.append(_Rule(path, change, when, skip, times))

    def count(self, path: str) -> int:
        """Return how many requests of ``path`` came in."""
        with self._lock:
            return sum(1 for p, _ in self.seen if p == path)

    def _take(self, path: str, query: Mapping[str, str]) -> Change | None:
        with self._lock:
            self.seen.append((path, dict(query)))
            for rule in self._rules:
                if rule.path != path or not rule.when(query):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    return None
                if rule.times is not None:
                    if rule.times == 0:
                        continue
                    rule.times -= 1
                return rule.change
        return None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request through the simulator, then through the matching rule."""
        path = environ.get("PATH_INFO", "") or "/"
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        change = self._take(path, query)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: Headers, exc_info: Any = None) -> Callable[[bytes], object]:
            captured["status"], captured["headers"] = status, list(headers)
            return lambda data: None

        chunks = self.app(environ, capture)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status, headers = int(captured["status"].split()[0]), captured["headers"]
        if change is not None:
            status, headers, body = change(status, headers, body)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Tampered"
        start_response(f"{status} {reason}", headers)
        return [body]


def json_change(edit: Callable[[Any], Any]) -> Change:
    """Return a change that rewrites the JSON body with ``edit`` (which may also act on the world)."""

    def change(status: int, headers: Headers, body: bytes) -> Answer:
        return status, headers, json.dumps(edit(json.loads(body))).encode()

    return change


def side_effect(action: Callable[[], object]) -> Change:
    """Return a change that leaves the answer alone and runs ``action`` once it is made."""

    def change(status: int, headers: Headers, body: bytes) -> Answer:
        action()
        return status, headers, body

    return change


def html(status: int) -> Change:
    """Return a change answering ``status`` with an HTML page, as a load balancer or proxy does."""

    def change(_: int, headers: Headers, body: bytes) -> Answer:
        page = b"<html><body><h1>404 Not Found</h1>nginx</body></html>"
        return status, [("Content-Type", "text/html")], page

    return change


def header(headers: Headers, name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name.lower()), None)


def with_header(headers: Headers, name: str, value: str) -> Headers:
    return [(k, v) for k, v in headers if k.lower() != name.lower()] + [(name, value)]


# --- reading -----------------------------------------------------------------------------


def read(source: Any) -> SourceDirectory:
    """Read a source whole and close it."""
    try:
        directory: SourceDirectory = source.read()
        return directory
    finally:
        source.close()


def failure(source: Any) -> ConnectorError:
    """Read a source that must fail; the message is one line naming the source."""
    with pytest.raises(ConnectorError) as caught:
        read(source)
    message = str(caught.value)
    assert message.startswith("source: ") and "\n" not in message, message
    return caught.value


def exact_or_error(source: Any) -> SourceDirectory | None:
    """Read a source that may refuse (None: it raised a ConnectorError naming the source)."""
    try:
        return read(source)
    except ConnectorError as exc:
        assert str(exc).startswith("source: "), str(exc)
        return None


def people(directory: SourceDirectory) -> dict[str, tuple[bool, frozenset[str]]]:
    """Return username -> (active, group names) of every user read."""
    return {u.username: (u.active, frozenset(u.groups)) for u in directory.users}


def by_username(directory: SourceDirectory) -> dict[str, User]:
    return {u.username: u for u in directory.users}


def members_of(directory: SourceDirectory, group: str) -> set[str]:
    names = {u.id: u.username for u in directory.users}
    found = next(g for g in directory.groups if g.name == group)
    return {names[i] for i in found.member_ids}


# --- okta ----------------------------------------------------------------------------------

OKTA_TOKEN = "adversarial-okta-token"
OKTA_USERS = "/api/v1/users"


@dataclass
class OktaWorld:
    sim: OktaSim
    tamper: Tamper
    url: str

    def source(self, **keys: Any) -> OktaSource:
        config = OktaSourceConfig(type="okta", url=self.url, token=Secret(OKTA_TOKEN), **keys)
        return OktaSource("source", config, SETTINGS)


@pytest.fixture
def okta() -> Iterator[OktaWorld]:
    """An org of pages of 2: engineering (five, one SUSPENDED, one LOCKED_OUT), Sales, one loner."""
    sim = OktaSim(token=OKTA_TOKEN, max_page=2, everyone=False)
    status = {"e3": "SUSPENDED", "e4": "LOCKED_OUT"}
    for name in ("e0", "e1", "e2", "e3", "e4", "s0", "s1", "o0"):
        sim.add_user(f"{name}@acme.test", first=name, last="X", status=status.get(name, "ACTIVE"))
    sim.add_group("engineering", members=[f"e{n}@acme.test" for n in range(5)])
    sim.add_group("Sales", members=["s0@acme.test", "s1@acme.test", "e0@acme.test"])
    tamper = Tamper(sim.app)
    with SimServer(tamper) as server:
        yield OktaWorld(sim, tamper, server.url)


def _plain_first_page(query: Mapping[str, str]) -> bool:
    return "filter" not in query and "after" not in query


def test_okta_a_next_link_to_another_host_is_refused_not_followed_with_the_token(okta: OktaWorld) -> None:
    def elsewhere(status: int, headers: Headers, body: bytes) -> Answer:
        moved = [
            (k, re.sub(r"https?://[^/>]+", "http://203.0.113.7:8080", v) if k.lower() == "link" else v)
            for k, v in headers
        ]
        return status, moved, body

    okta.tamper.on(OKTA_USERS, elsewhere, when=_plain_first_page)
    error = failure(okta.source())
    assert "refusing to follow a link to 203.0.113.7:8080" in str(error)


def test_okta_a_group_s_member_list_failing_after_the_users_were_read_names_its_page(
    okta: OktaWorld,
) -> None:
    engineering = okta.sim.directory.find_group("engineering")
    assert engineering is not None
    path = f"/api/v1/groups/{engineering.id}/users"
    okta.sim.fail_page(path, 1, 503)  # asked after both user lists: it never answers
    message = str(failure(okta.source()))
    assert f"GET {path} (group engineering) page 1" in message and "503" in message, message


def test_okta_a_429_storm_on_an_included_group_is_an_error_never_a_smaller_scope(okta: OktaWorld) -> None:
    engineering = okta.sim.directory.find_group("engineering")
    assert engineering is not None
    path = f"/api/v1/groups/{engineering.id}/users"
    okta.sim.throttle_page(path, 1, reset_in=45, count=1000)
    error = failure(okta.source(include_groups=["engineering"]))
    assert error.status == 429 and f"{path} (group engineering) page 1" in str(error), str(error)


def test_okta_a_scoped_read_keeps_every_included_person_whatever_the_glob_s_case(okta: OktaWorld) -> None:
    directory = read(okta.source(include_groups=["ENGINEER*"]))
    assert people(directory) == {
        "e0@acme.test": (True, frozenset({"engineering", "Sales"})),
        "e1@acme.test": (True, frozenset({"engineering"})),
        "e2@acme.test": (True, frozenset({"engineering"})),
        "e3@acme.test": (False, frozenset({"engineering"})),  # SUSPENDED
        "e4@acme.test": (True, frozenset({"engineering"})),  # LOCKED_OUT is temporary (SPEC §4)
    }


def test_okta_a_page_that_is_an_error_object_with_200_names_the_page(okta: OktaWorld) -> None:
    error_body = {"errorCode": "E0000009", "errorSummary": "Internal Server Error", "errorCauses": []}
    okta.tamper.on(
        OKTA_USERS,
        json_change(lambda body: error_body),
        when=lambda q: "after" in q and "filter" not in q,
    )
    message = str(failure(okta.source()))
    assert f"GET {OKTA_USERS} page 2" in message and "JSON array" in message, message


# --- entra ---------------------------------------------------------------------------------

ENTRA_USERS = "/v1.0/users"


@dataclass
class EntraWorld:
    sim: EntraSim
    tamper: Tamper
    url: str

    def source(self, **keys: Any) -> EntraSource:
        config = EntraSourceConfig(
            type="entra",
            tenant_id=TENANT_ID,
            client_id=CLIENT_ID,
            client_secret=Secret(CLIENT_SECRET),
            login_url=self.url,
            graph_url=self.url,
            **keys,
        )
        return EntraSource("source", config, SETTINGS)


CHAIN = 12  # groups nested in a chain below "top", the last one holding "top" again (a cycle)


@pytest.fixture
def entra() -> Iterator[EntraWorld]:
    """A tenant of pages of 2: top > l1 > ... > l12 > top; deep (l12), off (l12, disabled), mid (l5)."""
    sim = EntraSim(max_page_size=2)
    ids = {
        name: sim.add_user(f"{name}@acme.test", mail=f"{name}@acme.test", display_name=name, enabled=on)
        for name, on in (("deep", True), ("off", False), ("mid", True), ("out", True), ("solo", True))
    }
    chain = [sim.add_group("top")] + [sim.add_group(f"l{n}") for n in range(1, CHAIN + 1)]
    for parent, child in itertools.pairwise(chain):
        sim.add_member(parent, child)
    sim.add_member(chain[-1], chain[0])
    for name, level in (("deep", CHAIN), ("off", CHAIN), ("mid", 5)):
        sim.add_member(chain[level], ids[name])
    sim.add_group("other", members=[ids["out"]])
    tamper = Tamper(sim.app)
    with SimServer(tamper) as server:
        yield EntraWorld(sim, tamper, server.url)


CHAIN_NAMES = frozenset({"top", *(f"l{n}" for n in range(1, CHAIN + 1))})


def test_entra_a_scoped_read_through_a_deep_chain_and_a_cycle_keeps_everyone_in_scope(
    entra: EntraWorld,
) -> None:
    directory = read(entra.source(include_groups=["TOP"]))
    # The cycle puts every group of the chain inside every other: each person is in all 13.
    assert people(directory) == {
        "deep@acme.test": (True, CHAIN_NAMES),
        "off@acme.test": (False, CHAIN_NAMES),
        "mid@acme.test": (True, CHAIN_NAMES),
    }


def test_entra_a_next_link_that_loses_select_is_refused_not_read_as_enabled(entra: EntraWorld) -> None:
    def drop_select(body: dict[str, Any]) -> dict[str, Any]:
        parts = urlsplit(body["@odata.nextLink"])
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "$select"]
        body["@odata.nextLink"] = urlunsplit(parts._replace(query=urlencode(query, safe="$,")))
        return body

    entra.tamper.on(ENTRA_USERS, json_change(drop_select), when=lambda q: "$skiptoken" not in q)
    message = str(failure(entra.source()))
    assert "accountEnabled is missing" in message, message


def test_entra_transitive_members_failing_on_a_later_page_names_the_group(entra: EntraWorld) -> None:
    top = entra.sim.group_id("top")
    entra.sim.fail_page(f"groups/{top}/transitiveMembers", 3, 503)
    message = str(failure(entra.source()))
    assert f"/groups/{top}/transitiveMembers page 3 (group 'top')" in message and "503" in message, message


def test_entra_a_user_repeated_on_a_later_page_is_refused(entra: EntraWorld) -> None:
    first: list[Any] = []

    def remember(body: dict[str, Any]) -> dict[str, Any]:
        first.append(body["value"][0])
        return body

    def repeat(body: dict[str, Any]) -> dict[str, Any]:
        body["value"].append(first[0])  # the cursor went back by one
        return body

    entra.tamper.on(ENTRA_USERS, json_change(remember), when=lambda q: "$skiptoken" not in q)
    entra.tamper.on(ENTRA_USERS, json_change(repeat), when=lambda q: "$skiptoken" in q)
    message = str(failure(entra.source()))
    assert "page 2" in message and "was already read on page 1" in message, message


def test_entra_an_enabled_user_without_a_sign_in_name_is_an_error_naming_it(entra: EntraWorld) -> None:
    def anonymous(body: dict[str, Any]) -> dict[str, Any]:
        enabled = next(u for u in body["value"] if u["accountEnabled"])
        enabled["userPrincipalName"] = None
        return body

    entra.tamper.on(ENTRA_USERS, json_change(anonymous), when=lambda q: "$skiptoken" not in q)
    message = str(failure(entra.source()))
    assert "an enabled user without a userPrincipalName" in message, message


def test_entra_an_endless_chain_of_empty_pages_is_refused(entra: EntraWorld) -> None:
    served = iter(range(10_000))

    def empty(status: int, headers: Headers, body: bytes) -> Answer:
        n = next(served)
        if n >= 300:  # the test's own brake, so that the finding cannot hang the suite
            return 400, headers, json.dumps({"error": {"code": "Brake", "message": "test brake"}}).encode()
        link = f"{entra.url}{ENTRA_USERS}?$top=999&$skiptoken=empty{n}"
        return 200, headers, json.dumps({"value": [], "@odata.nextLink": link}).encode()

    entra.tamper.on(ENTRA_USERS, empty, when=lambda q: "$skiptoken" in q, times=None)
    error = failure(entra.source())
    assert "test brake" not in str(error), "the source followed 300 empty pages and had to be stopped"


# --- google --------------------------------------------------------------------------------

GOOGLE_API = "/admin/directory/v1"
ADMIN = "admin@acme.test"


@dataclass
class GoogleWorld:
    sim: GoogleSim
    tamper: Tamper
    url: str
    credentials: Path

    def source(self, **keys: Any) -> GoogleSource:
        config = GoogleSourceConfig(
            type="google",
            credentials_file=self.credentials,
            subject=ADMIN,
            url=self.url,
            token_url=f"{self.url}/token",
            **keys,
        )
        return GoogleSource("source", config, SETTINGS)


@pytest.fixture
def google(tmp_path: Path) -> Iterator[GoogleWorld]:
    """A customer of pages of 2: engineering (e0-e3, e3 suspended) inside top; a chain with a cycle."""
    sim = GoogleSim(domains=("acme.test",), page_limit=2, key_bits=1024)
    sim.add_user(ADMIN, "Ada", "Admin", admin=True)
    for n in range(4):
        sim.add_user(f"e{n}@acme.test", f"E{n}", "Eng", suspended=n == 3)
    sim.add_user("deep@acme.test", "Deep", "Down")
    sim.add_user("out@acme.test", "Out", "Side")
    sim.add_group("engineering", members=[f"e{n}@acme.test" for n in range(4)])
    sim.add_group("Others", members=["out@acme.test"])
    sim.add_group(f"l{CHAIN}", members=["deep@acme.test"])
    for n in range(CHAIN - 1, 0, -1):
        sim.add_group(f"l{n}", children=[f"l{n + 1}"])
    sim.add_group("top", children=["l1", "engineering"])
    sim.add_member(f"l{CHAIN}", "top")  # the cycle
    tamper = Tamper(sim.app)
    with SimServer(tamper) as server:
        credentials = sim.write_credentials_file(tmp_path / "sa.json", f"{server.url}/token")
        yield GoogleWorld(sim, tamper, server.url, credentials)


def test_google_a_deep_chain_with_a_cycle_puts_everyone_below_in_every_group_above(
    google: GoogleWorld,
) -> None:
    everywhere = CHAIN_NAMES | {"engineering"}
    assert people(read(google.source())) == {
        ADMIN: (True, frozenset()),
        "e0@acme.test": (True, everywhere),
        "e1@acme.test": (True, everywhere),
        "e2@acme.test": (True, everywhere),
        "e3@acme.test": (False, everywhere),  # suspended: inactive, its groups kept
        "deep@acme.test": (True, CHAIN_NAMES),
        "out@acme.test": (True, frozenset({"Others"})),
    }


def test_google_a_200_that_is_not_a_page_of_users_names_the_page(google: GoogleWorld) -> None:
    error = {"error": {"code": 503, "message": "Backend Error", "errors": [{"reason": "backendError"}]}}
    google.sim.tamper_page("users", 2, lambda body: error)
    message = str(failure(google.source()))
    assert "GET /users page 2" in message and "admin#directory#users" in message, message


def test_google_a_quota_storm_on_one_group_s_members_is_an_error_naming_the_page(google: GoogleWorld) -> None:
    google.sim.break_page("members", 2, 429, group="engineering", retry_after=40)
    error = failure(google.source(include_groups=["top"]))
    assert error.status == 429 and "/members page 2" in str(error), str(error)


def test_google_a_proxy_404_on_one_in_scope_person_is_an_error_not_a_leaver(google: GoogleWorld) -> None:
    e1 = google.sim.directory.find_user("e1@acme.test")
    assert e1 is not None
    google.tamper.on(f"{GOOGLE_API}/users/{e1.id}", html(404), times=None)
    directory = exact_or_error(google.source(include_groups=["engineering"]))
    if directory is not None:
        assert "e1@acme.test" in people(directory), "an in-scope, active person was dropped from the read"


def test_google_a_user_deleted_before_its_single_read_is_gone_and_no_one_else(google: GoogleWorld) -> None:
    # Google's own 404 (notFound) for a member deleted between the member list and its read.
    engineering = google.sim.directory.find_group("engineering@acme.test")
    assert engineering is not None
    google.tamper.on(
        f"{GOOGLE_API}/groups/{engineering.id}/members",
        side_effect(lambda: google.sim.delete_user("e1@acme.test")),
        when=lambda q: "pageToken" in q,
    )
    directory = read(google.source(include_groups=["engineering"]))
    assert set(people(directory)) == {"e0@acme.test", "e2@acme.test", "e3@acme.test"}


# --- onelogin ------------------------------------------------------------------------------

OL_CLIENT, OL_SECRET = "adversarial-onelogin", "adversarial-onelogin-secret"
OL_USERS = "/api/2/users"


@dataclass
class OneLoginWorld:
    sim: OneLoginSim
    tamper: Tamper
    url: str

    def source(self, **keys: Any) -> OneLoginSource:
        config = OneLoginSourceConfig(
            type="onelogin", url=self.url, client_id=OL_CLIENT, client_secret=Secret(OL_SECRET), **keys
        )
        return OneLoginSource("source", config, SETTINGS)


def _onelogin(paging: Paging | None) -> Iterator[OneLoginWorld]:
    sim = OneLoginSim(client_id=OL_CLIENT, client_secret=OL_SECRET, paging=paging, hourly_limit=None)
    for n in range(5):
        sim.add_user(f"e{n}", f"e{n}@acme.test", f"E{n}", "Eng", status=2 if n == 4 else 1, roles=["eng"])
    for n in range(3):
        sim.add_user(f"s{n}", f"s{n}@acme.test", f"S{n}", "Sales", group="Field", roles=["sales"])
    tamper = Tamper(sim.app)
    with SimServer(tamper) as server:
        yield OneLoginWorld(sim, tamper, server.url)


@pytest.fixture
def onelogin() -> Iterator[OneLoginWorld]:
    """Five engineers (role eng, e4 suspended), three in the group Field and the role sales."""
    yield from _onelogin(None)


@pytest.fixture
def onelogin_clamped() -> Iterator[OneLoginWorld]:
    """The same account behind a server that serves 3 a page whatever ``limit`` asks."""
    yield from _onelogin(Paging(max_limit=3, clamp=True))


ONELOGIN_EVERYONE = {
    **{f"e{n}": (n != 4, frozenset({"eng"})) for n in range(5)},
    **{f"s{n}": (True, frozenset({"sales", "Field"})) for n in range(3)},
}


def test_onelogin_a_server_that_clamps_the_page_size_is_read_whole(onelogin_clamped: OneLoginWorld) -> None:
    assert people(read(onelogin_clamped.source())) == ONELOGIN_EVERYONE


def test_onelogin_someone_deleted_between_pages_is_refused_not_a_shorter_list(
    onelogin_clamped: OneLoginWorld,
) -> None:
    world = onelogin_clamped
    world.tamper.on(
        OL_USERS,
        side_effect(lambda: world.sim.remove_user("e0")),  # already read: every later page moves
        when=lambda q: "cursor" not in q and "user_ids" not in q,
    )
    message = str(failure(world.source()))
    assert "Total-Count went down from 8 to 7" in message and f"GET {OL_USERS} page 2" in message, message


def test_onelogin_an_undocumented_status_is_an_error_not_a_guess(onelogin: OneLoginWorld) -> None:
    def status_six(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body[0]["status"] = 6  # §4.3 documents 0-5, 7, 8
        return body

    onelogin.tamper.on(OL_USERS, json_change(status_six))
    message = str(failure(onelogin.source()))
    assert "unknown status 6" in message, message


def test_onelogin_a_role_member_missing_from_the_user_ids_answer_is_an_error(onelogin: OneLoginWorld) -> None:
    e2 = str(onelogin.sim.find("e2").id)

    def lose_e2(status: int, headers: Headers, body: bytes) -> Answer:
        records = [r for r in json.loads(body) if str(r["id"]) != e2]
        headers = with_header(headers, "Total-Count", str(len(records)))
        return status, headers, json.dumps(records).encode()

    onelogin.tamper.on(OL_USERS, lose_e2, when=lambda q: "user_ids" in q)
    directory = exact_or_error(onelogin.source(include_groups=["eng"]))
    if directory is not None:
        assert "e2" in people(directory), "an in-scope, active role member was dropped from the read"


# --- keycloak ------------------------------------------------------------------------------


@dataclass
class KeycloakWorld:
    sim: KeycloakSim
    tamper: Tamper
    url: str

    def source(self, **keys: Any) -> KeycloakSource:
        config = KeycloakSourceConfig(
            type="keycloak",
            url=self.url,
            realm="acme",
            client_id="scimsync",
            client_secret=Secret(KEYCLOAK_SECRET),
            **keys,
        )
        return KeycloakSource("source", config, SETTINGS)


def _keycloak(**options: Any) -> Iterator[KeycloakWorld]:
    sim = KeycloakSim(**options)
    tamper = Tamper(sim.app)
    with SimServer(tamper) as server:
        yield KeycloakWorld(sim, tamper, server.url + sim.base_path)


@pytest.fixture
def keycloak() -> Iterator[KeycloakWorld]:
    yield from _keycloak()


@pytest.fixture
def keycloak_cut() -> Iterator[KeycloakWorld]:
    """A realm behind a proxy that cuts every page to 5 entries (the simulator's ``page_cap``)."""
    yield from _keycloak(page_cap=5)


def test_keycloak_a_scoped_read_walks_a_deep_subgroup_chain(keycloak: KeycloakWorld) -> None:
    sim = keycloak.sim
    path = sim.add_group("top")
    chain = ["top"]
    for n in range(1, CHAIN + 1):
        path = sim.add_group(f"l{n}", parent=path)
        chain.append(f"l{n}")
    sim.add_user("deep", email="deep@acme.test", groups=[path])
    sim.add_user("off", email="off@acme.test", enabled=False, groups=["/top/l1/l2/l3/l4/l5"])
    sim.add_user("out", email="out@acme.test")
    directory = read(keycloak.source(include_groups=["TOP"], page_size=2))
    assert people(directory) == {
        "deep": (True, frozenset(chain)),
        "off": (False, frozenset(chain[:6])),
    }


def test_keycloak_a_member_removed_between_scoped_pages_is_refused(keycloak: KeycloakWorld) -> None:
    sim = keycloak.sim
    group = sim.add_group("engineering")
    for n in range(8):
        sim.add_user(f"u{n}", email=f"u{n}@acme.test", groups=[group])
    gid = sim.realm.find_group(group).id

    def remove_first(path: str, first: int) -> None:
        if (path, first) == (f"/groups/{gid}/members", 2):
            sim.remove_user("u0")  # read on the first page: every later offset moves by one

    sim.before_page = remove_first
    message = str(failure(keycloak.source(include_groups=["engineering"], page_size=3)))
    assert f"GET /groups/{gid}/members?first=2&max=3 (group /engineering)" in message, message
    assert "the list changed" in message, message


def test_keycloak_a_token_refused_mid_scoped_read_is_refreshed_and_nobody_is_lost(
    keycloak: KeycloakWorld,
) -> None:
    sim = keycloak.sim
    group = sim.add_group("engineering")
    for n in range(6):
        sim.add_user(f"u{n}", email=f"u{n}@acme.test", groups=[group])
    gid = sim.realm.find_group(group).id

    def expired(status: int, headers: Headers, body: bytes) -> Answer:
        return 401, [("Content-Type", "application/json")], b'{"error": "HTTP 401 Unauthorized"}'

    path = f"/admin/realms/acme/groups/{gid}/members"
    keycloak.tamper.on(path, expired, when=lambda q: q.get("first") == "2")
    directory = read(keycloak.source(include_groups=["engineering"], page_size=3))
    assert set(people(directory)) == {f"u{n}" for n in range(6)}
    assert sim.tokens_issued() == 2  # fetched again once, after the 401


def test_keycloak_a_cut_member_page_in_a_scoped_read_is_an_error(keycloak_cut: KeycloakWorld) -> None:
    sim = keycloak_cut.sim
    group = sim.add_group("engineering")
    for n in range(12):
        sim.add_user(f"u{n:02d}", email=f"u{n:02d}@acme.test", groups=[group])
    directory = exact_or_error(keycloak_cut.source(include_groups=["engineering"], page_size=50))
    if directory is not None:
        assert set(people(directory)) == {f"u{n:02d}" for n in range(12)}, "in-scope people were dropped"


def test_keycloak_a_cut_top_level_group_page_is_an_error(keycloak_cut: KeycloakWorld) -> None:
    sim = keycloak_cut.sim
    names = [f"g{n}" for n in range(8)]
    paths = [sim.add_group(name) for name in names]
    sim.add_user("ada", email="ada@acme.test", groups=paths)
    sim.add_user("bob", email="bob@acme.test")
    directory = exact_or_error(keycloak_cut.source(page_size=50))
    if directory is not None:
        assert people(directory)["ada"] == (True, frozenset(names)), "group memberships were lost"


# --- scim (the real scim2-server, behind the tests' ScimProxy and a Tamper) ----------------

SCIM_TOKEN = "adversarial-scim-token"
SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture(scope="module")
def scim2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    with running_scim_server(tmp_path_factory.mktemp("scim2-adversarial"), token=SCIM_TOKEN) as server:
        yield server


@dataclass
class ScimWorld:
    server: ScimServer
    tamper: Tamper
    url: str

    def source(self, **keys: Any) -> ScimSource:
        config = ScimSourceConfig(type="scim", url=self.url, token=Secret(SCIM_TOKEN), page_size=2, **keys)
        return ScimSource("source", config, SETTINGS)

    def add_user(self, name: str) -> str:
        body = {"schemas": [SCIM_USER], "userName": name, "active": True}
        created: str = self.server.post("/Users", body)["id"]
        return created

    def delete_user(self, uid: str) -> None:
        self.server._send("DELETE", f"/Users/{uid}", None, 204)

    def user_ids(self) -> list[str]:
        """Return the ids in the order the service lists them."""
        listing = self.server._send("GET", "/Users?count=1000", None, 200)
        return [r["id"] for r in listing.get("Resources") or []]


@pytest.fixture
def scim(scim2: ScimServer) -> Iterator[ScimWorld]:
    """scim2-server emptied, six people p1-p6, read two a page through a proxy."""
    from scim_server import ScimProxy

    scim2.clear()
    proxy = ScimProxy(scim2.url)
    tamper = Tamper(proxy)
    with SimServer(tamper) as front:
        world = ScimWorld(scim2, tamper, front.url + urlsplit(scim2.url).path)
        for n in range(1, 7):
            world.add_user(f"p{n}")
        yield world


def _first_users_page(query: Mapping[str, str]) -> bool:
    return query.get("startIndex") == "1"


def test_scim_someone_added_during_the_read_restarts_it_and_everyone_is_read(scim: ScimWorld) -> None:
    scim.tamper.on("/v2/Users", side_effect(lambda: scim.add_user("late")), when=_first_users_page)
    assert set(people(read(scim.source()))) == {"p1", "p2", "p3", "p4", "p5", "p6", "late"}


def test_scim_html_with_200_on_a_later_page_names_the_page(scim: ScimWorld) -> None:
    scim.tamper.on(
        "/v2/Users", html(200), when=lambda q: q.get("startIndex") == "3" and q.get("count") == "2"
    )
    message = str(failure(scim.source()))
    assert "GET /Users startIndex=3" in message and "expected JSON, got text/html" in message, message


def test_scim_a_deep_chain_of_groups_with_a_cycle_is_flattened(scim: ScimWorld) -> None:
    deep = scim.user_ids()[0]
    top = scim.server.post("/Groups", {"schemas": [SCIM_GROUP], "displayName": "top"})["id"]
    chain = [("top", top)]
    for n in range(1, CHAIN + 1):
        body = {"schemas": [SCIM_GROUP], "displayName": f"l{n}"}
        gid = scim.server.post("/Groups", body)["id"]
        chain.append((f"l{n}", gid))
    for (name, gid), (_, child) in itertools.pairwise(chain):
        members = [{"value": child, "type": "Group"}]
        scim.server.put(f"/Groups/{gid}", {"schemas": [SCIM_GROUP], "displayName": name, "members": members})
    last_name, last = chain[-1]
    members = [{"value": top, "type": "Group"}, {"value": deep, "type": "User"}]
    scim.server.put(
        f"/Groups/{last}", {"schemas": [SCIM_GROUP], "displayName": last_name, "members": members}
    )
    directory = read(scim.source())
    deep_user = next(u for u in directory.users if u.id == deep)
    assert (deep_user.active, frozenset(deep_user.groups)) == (True, CHAIN_NAMES)


def test_scim_one_leaver_and_one_hire_during_the_read_never_lose_a_third_person(scim: ScimWorld) -> None:
    skipped: list[str] = []

    def leave_and_hire() -> None:
        before = scim.user_ids()
        scim.delete_user(before[0])  # already read on the first page
        for attempt in range(200):
            new = scim.add_user(f"hire{attempt}")
            now = scim.user_ids()
            if now.index(before[2]) == 1:  # the hire sorts after the third person: it moves back one
                skipped.append(before[2])
                return
            scim.delete_user(new)
        raise AssertionError("no hire sorted after the third person")

    scim.tamper.on("/v2/Users", side_effect(leave_and_hire), when=_first_users_page)
    directory = exact_or_error(scim.source())
    if directory is not None:
        assert skipped[0] in {u.id for u in directory.users}, "a person who never left was not read"


# --- ldap: the test slapd, and Active Directory's ranges over ldap3's mock ----------------


@pytest.fixture(scope="module")
def ldap_tree(slapd: Slapd) -> tuple[Slapd, str]:
    """A fresh OU: three people whose DNs the groups spell otherwise, and a deep chain with a cycle."""
    base = fresh_ou(slapd, f"adversarial-{uuid.uuid4().hex[:10]}")
    upper = base.upper()

    def person(uid: str, dn: str, **extra: str) -> tuple[str, dict[str, Any]]:
        attributes = {"objectClass": "inetOrgPerson", "uid": uid, "cn": uid, "sn": "X", **extra}
        return dn, attributes

    entries = [
        person("jürgen", f"uid=jürgen,{base}", mail="j@acme.test"),
        person("smith,john", f"uid=smith\\,john,{base}", mail="s@acme.test"),
        person("ann", f"uid=ann,{base}", mail="a@acme.test"),
        person("deep", f"uid=deep,{base}", mail="d@acme.test"),
        person("gone", f"uid=gone,{base}", mail="g@acme.test", employeeType="disabled"),
    ]
    # One group names them otherwise: upper case with hex-escaped UTF-8 (Ü), a hex-escaped comma, a space.
    variants = [f"UID=J\\C3\\9CRGEN,{upper}", f"uid=smith\\2Cjohn,{base}", f"uid=ann, {base}"]
    entries.append(
        (f"cn=variants,{base}", {"objectClass": "groupOfNames", "cn": "variants", "member": variants})
    )
    chain = ["top", *(f"l{n}" for n in range(1, CHAIN + 1))]
    for name, child in zip(chain, [*chain[1:], None], strict=True):
        member = (
            [f"cn={child},{base}"] if child else [f"cn=top,{base}", f"uid=deep,{base}", f"uid=gone,{base}"]
        )
        entries.append((f"cn={name},{base}", {"objectClass": "groupOfNames", "cn": name, "member": member}))
    add_entries(slapd, entries)
    return slapd, base


def ldap(server: Slapd, base: str) -> LdapSource:
    config = LdapSourceConfig(
        type="ldap",
        url=server.url,
        bind_dn=SERVICE_DN,
        password=Secret(SERVICE_PASSWORD),
        base_dn=base,
        start_tls=False,
        disabled_filter="(employeeType=disabled)",
        page_size=2,
    )
    return LdapSource("source", config, SETTINGS)


def test_ldap_member_dns_spelled_otherwise_still_name_their_people(ldap_tree: tuple[Slapd, str]) -> None:
    directory = read(ldap(*ldap_tree))
    assert members_of(directory, "variants") == {"jürgen", "smith,john", "ann"}


def test_ldap_a_deep_chain_with_a_cycle_keeps_each_person_in_every_group(
    ldap_tree: tuple[Slapd, str],
) -> None:
    found = people(read(ldap(*ldap_tree)))
    assert found["deep"] == (True, CHAIN_NAMES)
    assert found["gone"] == (False, CHAIN_NAMES)  # disabled: read inactive, never left out


AD_BASE = "DC=acme,DC=example"
AD_SERVICE, AD_PASSWORD = f"CN=svc,OU=Service,{AD_BASE}", "svc-Secret-42"
AD_GROUP = f"CN=Big,OU=Groups,{AD_BASE}"
RANGE = 5  # MaxValRange, small: AD's is 1500 (idp-apis §7)


def _ad_person(n: int) -> tuple[str, dict[str, Any]]:
    return f"CN=M{n} Crowd,OU=People,{AD_BASE}", {
        "objectClass": ["top", "person", "organizationalPerson", "user"],
        "objectCategory": "person",
        "cn": f"M{n} Crowd",
        "sAMAccountName": f"m{n}",
        "objectGUID": uuid.UUID(int=n + 1).bytes_le,
        "userAccountControl": 512,
    }


class ShiftingRanges(LdapDirectory):
    """AD answering a big group's ``member`` in ranges, while one member leaves between two range reads.

    Range retrieval is by position (``member;range=5-*``), like offset paging: a value
    removed from the first range moves every later value back by one.
    """

    def __init__(self, connection: Any, members: Sequence[bytes]) -> None:
        super().__init__("source", connection, page_size=1000)
        self.members = list(members)
        self.left = False

    def search(self, base: str, search_filter: str, attributes: Sequence[str]) -> Iterator[list[Entry]]:
        for page in super().search(base, search_filter, attributes):
            yield [self._first_range(e) for e in page]

    def _first_range(self, entry: Entry) -> Entry:
        if entry.dn != AD_GROUP:
            return entry
        raw = {k: v for k, v in entry.raw.items() if k.lower() != "member"}
        return Entry(entry.dn, {**raw, f"member;range=0-{RANGE - 1}": self.members[:RANGE]})

    def read(
        self, dn: str, attributes: Sequence[str], *, base_dn: bool = False
    ) -> Mapping[str, Sequence[bytes]]:
        if dn != AD_GROUP:
            return super().read(dn, attributes, base_dn=base_dn)
        (selector,) = attributes
        start = int(selector.split("=")[1].split("-")[0])
        if start > 0 and not self.left:
            self.left = True
            self.members.pop(0)  # m0 leaves the group after the first range was read
        chunk = self.members[start : start + RANGE]
        end = "*" if start + RANGE >= len(self.members) else str(start + RANGE - 1)
        return {f"member;range={start}-{end}": chunk}


def test_ldap_ad_a_member_leaving_between_two_ranges_loses_no_one_else() -> None:
    people_entries = [_ad_person(n) for n in range(2 * RANGE)]
    server = ldap3.Server("dc1.acme.example", get_info=ldap3.OFFLINE_AD_2012_R2)
    connection = ldap3.Connection(
        server, user=AD_SERVICE, password=AD_PASSWORD, client_strategy=ldap3.MOCK_SYNC, check_names=False
    )
    group = {"objectClass": ["top", "group"], "cn": "Big", "objectGUID": uuid.UUID(int=999).bytes_le}
    for dn, attributes in [
        (AD_BASE, {"objectClass": ["top", "domain"], "dc": "acme"}),
        (AD_SERVICE, {"objectClass": ["top", "user"], "cn": "svc", "userPassword": AD_PASSWORD}),
        *people_entries,
        (AD_GROUP, {**group, "member": [dn for dn, _ in people_entries]}),
    ]:
        connection.strategy.add_entry(dn, dict(attributes))
    assert connection.bind()
    directory = ShiftingRanges(connection, [dn.encode() for dn, _ in people_entries])
    config = LdapSourceConfig(
        type="ldap",
        url="ldaps://dc1.acme.example",
        bind_dn=AD_SERVICE,
        password=Secret(AD_PASSWORD),
        base_dn=AD_BASE,
    )
    found = exact_or_error(LdapSource("source", config, connect=lambda: directory))
    if found is not None:
        stayed = {f"m{n}" for n in range(1, 2 * RANGE)}
        assert stayed <= members_of(found, "Big"), "a person who stayed in the group lost it"
