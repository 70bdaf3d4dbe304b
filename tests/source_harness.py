"""One harness per source, so that one contract suite (test_source_contract.py) runs every source.

A harness puts a directory described neutrally (``Seed``: people and groups) into its real
system: a file, the test slapd (tests/slapd.py) or the real scim2-server (tests/scim_server.py),
and returns the ``source:`` block of a config that reads it. It can also break that system
the ways the suite needs (a refused credential, a throttled page, a page that keeps failing);
``cannot`` names the cases that do not apply to a kind of source, and why.

A new source (Okta, Entra, ...) joins by adding a harness to ``HARNESSES``.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest
from scim_server import ScimProxy, ScimServer, running_scim_server
from slapd import (
    CAPPED_DN,
    CAPPED_ENTRIES,
    CAPPED_PASSWORD,
    SERVICE_DN,
    SERVICE_PASSWORD,
    Attributes,
    Slapd,
    add_entries,
    fresh_ou,
)

from scimsync.http.scim import GROUP_SCHEMA, USER_SCHEMA
from scimsync.ldap_lib import ldap3
from scimsync.sim.server import SimServer

# --- the neutral description ---------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A person: ``groups`` are the groups they are directly in."""

    username: str
    email: str
    first: str
    last: str
    active: bool = True
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Team:
    """A group: its direct members (usernames) and the groups nested directly inside it."""

    name: str
    members: tuple[str, ...] = ()
    children: tuple[str, ...] = ()


@dataclass(frozen=True)
class Seed:
    """A directory to seed; a group named only by a person or as a child exists too."""

    people: tuple[Person, ...]
    teams: tuple[Team, ...] = ()

    def direct_members(self) -> dict[str, list[str]]:
        """Return every group's name -> its direct members, from both sides of the description."""
        members: dict[str, dict[str, None]] = {}
        for team in self.teams:
            members.setdefault(team.name, {}).update(dict.fromkeys(team.members))
            for child in team.children:
                members.setdefault(child, {})
        for person in self.people:
            for name in person.groups:
                members.setdefault(name, {})[person.username] = None
        return {name: list(users) for name, users in members.items()}

    def children(self) -> dict[str, tuple[str, ...]]:
        """Return group name -> the groups nested directly inside it."""
        return {team.name: team.children for team in self.teams if team.children}


# --- the interface --------------------------------------------------------------------

# Cases a harness may declare it cannot run (its `cannot` keys).
NESTING = "nesting"
CYCLES = "cycles"  # groups that contain each other (a directory that is not a tree)
RATE_LIMIT = "429"
AUTH = "auth"
FAILING_PAGE = "failing page"
TOKEN_EXPIRY = "token expiry"  # a harness that can expire its token mid-read has expire_token_after()


class SourceHarness(Protocol):
    """What the contract suite needs from a source's real system."""

    label: str  # test id
    type: str  # the config's source.type
    many: int  # people that take more than three pages (with page_size)
    page_size: int | None  # people per page the block asks for; None: read whole, no pages
    http: bool  # whether the source reads over HTTP (statuses, retries)
    check_hint: str  # what a refused credential tells the user to check
    cannot: Mapping[str, str]  # case -> why it does not apply to this kind of source

    def seed(self, seed: Seed) -> dict[str, Any]:
        """Put ``seed`` in the system (nothing else is there) and return the source block reading it."""
        ...

    def wrong_credentials(self, block: dict[str, Any]) -> dict[str, Any]:
        """Return ``block`` with a credential the system refuses."""
        ...

    def throttle_page(self, retry_after: int) -> str:
        """Answer the second page of users 429 with Retry-After once; return how errors name it."""
        ...

    def fail_page(self, block: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Make a later page of users fail on every attempt; return the block and how errors name it."""
        ...

    def answers(self) -> list[int]:
        """Return the HTTP statuses the broken page was answered with, attempt by attempt."""
        ...


# --- file -----------------------------------------------------------------------------


class FileHarness:
    """A CSV file of people with their groups, as an HR export holds them."""

    label = type = "file"
    page_size: int | None = None
    http = False
    check_hint = ""
    cannot: Mapping[str, str] = {
        NESTING: "a file lists each person's groups; it has no groups inside groups",
        RATE_LIMIT: "a file is read without HTTP",
        AUTH: "a file has no credentials",
        FAILING_PAGE: "a file is read whole, in one piece: it has no page that can fail",
    }

    def __init__(self, folder: Path, many: int) -> None:
        self.path = folder / "people.csv"
        self.many = many

    def seed(self, seed: Seed) -> dict[str, Any]:
        """Write people.csv: one row per person, the groups separated by ';'."""
        if seed.children():
            raise ValueError("a file source has no nested groups")
        groups: dict[str, list[str]] = {p.username: [] for p in seed.people}
        for name, members in seed.direct_members().items():
            for username in members:
                groups[username].append(name)
        fields = ["id", "username", "email", "first_name", "last_name", "active", "groups"]
        with self.path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            for n, p in enumerate(seed.people):
                row = [f"e{n:05d}", p.username, p.email, p.first, p.last, str(p.active).lower()]
                writer.writerow(dict(zip(fields, [*row, ";".join(groups[p.username])], strict=True)))
        return {"type": "file", "path": str(self.path)}

    def wrong_credentials(self, block: dict[str, Any]) -> dict[str, Any]:
        """A file has none."""
        raise NotImplementedError(self.cannot[AUTH])

    def throttle_page(self, retry_after: int) -> str:
        """A file has no page."""
        raise NotImplementedError(self.cannot[RATE_LIMIT])

    def fail_page(self, block: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """A file has no page."""
        raise NotImplementedError(self.cannot[FAILING_PAGE])

    def answers(self) -> list[int]:
        """A file has no HTTP."""
        return []


# --- ldap (the test slapd) ------------------------------------------------------------

DISABLED = "(employeeType=disabled)"


class LdapHarness:
    """The test slapd: each seed goes under a fresh OU, which is the block's base_dn."""

    label = type = "ldap"
    page_size: int | None = 20
    http = False
    check_hint = "check bind_dn and password"
    cannot: Mapping[str, str] = {RATE_LIMIT: "LDAP has no HTTP status and no rate-limit answer (idp-apis §7)"}

    def __init__(self, server: Slapd, many: int) -> None:
        self.server = server
        self.many = many
        self.base = ""
        self.people = 0

    def seed(self, seed: Seed) -> dict[str, Any]:
        """Add inetOrgPersons and groupOfNames (nested by member DN) under a new OU."""
        self.base = fresh_ou(self.server, f"contract-{uuid.uuid4().hex[:12]}")
        self.people = len(seed.people)
        people = {p.username: self._dn("uid", p.username) for p in seed.people}
        entries = [(people[p.username], self._person(p)) for p in seed.people]
        children = seed.children()
        for name, members in seed.direct_members().items():
            dns = [people[u] for u in members] + [self._dn("cn", c) for c in children.get(name, ())]
            # groupOfNames needs a member: an empty group holds the OU, which is no user.
            attributes = {"objectClass": "groupOfNames", "cn": name, "member": dns or [self.base]}
            entries.append((self._dn("cn", name), attributes))
        add_entries(self.server, entries)
        return {
            "type": "ldap",
            "url": self.server.url,
            "bind_dn": SERVICE_DN,
            "password": SERVICE_PASSWORD,
            "base_dn": self.base,
            "start_tls": False,  # the loopback test server's plain listener
            "disabled_filter": DISABLED,
            "page_size": self.page_size,
        }

    def _dn(self, kind: str, value: str) -> str:
        return f"{kind}={ldap3.utils.dn.escape_rdn(value)},{self.base}"

    @staticmethod
    def _person(p: Person) -> Attributes:
        attributes: dict[str, str | list[str]] = {
            "objectClass": "inetOrgPerson",
            "uid": p.username,
            "cn": f"{p.first} {p.last}",
            "givenName": p.first,
            "sn": p.last,
            "mail": p.email,
        }
        if not p.active:
            attributes["employeeType"] = "disabled"
        return attributes

    def wrong_credentials(self, block: dict[str, Any]) -> dict[str, Any]:
        """Return the block with a wrong password."""
        return {**block, "password": "not-the-Password-9"}

    def throttle_page(self, retry_after: int) -> str:
        """LDAP has no 429."""
        raise NotImplementedError(self.cannot[RATE_LIMIT])

    def fail_page(self, block: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Bind as CAPPED_DN, whose paged search the server stops after CAPPED_ENTRIES entries."""
        assert self.people > CAPPED_ENTRIES, "seed more people than CAPPED_ENTRIES"
        page = (
            f"search (objectClass=inetOrgPerson) under {self.base}: the server stopped at its "
            f"size limit after {CAPPED_ENTRIES} entries"
        )
        return {**block, "bind_dn": CAPPED_DN, "password": CAPPED_PASSWORD}, page

    def answers(self) -> list[int]:
        """LDAP has no HTTP."""
        return []


# --- scim (the real scim2-server, behind a fault-injecting proxy) -----------------------

SCIM_TOKEN = "contract-scim-token"
SCIM_PAGE_SIZE = 20


class ScimHarness:
    """scim2-server, emptied and seeded over HTTP; the source reads it through a ScimProxy."""

    label = type = "scim"
    page_size: int | None = SCIM_PAGE_SIZE
    http = True
    check_hint = "check source.token"
    cannot: Mapping[str, str] = {}

    def __init__(self, server: ScimServer, proxy: ScimProxy, proxy_url: str, many: int) -> None:
        self.server = server
        self.proxy = proxy
        self.url = proxy_url + urlsplit(server.url).path  # the proxy's /v2
        self.many = many
        self._users_path = urlsplit(server.url).path + "/Users"
        self._broken = 0

    def seed(self, seed: Seed) -> dict[str, Any]:
        """Create the users, then the groups with their users, then nest groups (cycles too)."""
        self.server.clear()
        ids = {p.username: self.server.post("/Users", _scim_user(p))["id"] for p in seed.people}
        direct = seed.direct_members()
        groups: dict[str, str] = {}
        for name, members in direct.items():
            body = {"schemas": [GROUP_SCHEMA], "displayName": name, "members": _refs(ids, members, "User")}
            groups[name] = self.server.post("/Groups", body)["id"]
        for name, children in seed.children().items():
            nested = _refs(ids, direct[name], "User") + _refs(groups, children, "Group")
            replaced = {"schemas": [GROUP_SCHEMA], "displayName": name, "members": nested}
            self.server.put(f"/Groups/{groups[name]}", replaced)
        return {"type": "scim", "url": self.url, "token": SCIM_TOKEN, "page_size": SCIM_PAGE_SIZE}

    def wrong_credentials(self, block: dict[str, Any]) -> dict[str, Any]:
        """Return the block with a token the server does not know."""
        return {**block, "token": "not-the-scim-token"}

    def throttle_page(self, retry_after: int) -> str:
        """Answer /Users startIndex=20 (the second page, overlapping the first by one) 429 once."""
        self._broken = SCIM_PAGE_SIZE
        self.proxy.fail(self._users_path, self._broken, 429, times=1, retry_after=retry_after)
        return f"GET /Users startIndex={self._broken}"

    def fail_page(self, block: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Answer /Users startIndex=20 (page 2, overlapping page 1 by one) 502 every time (retried)."""
        self._broken = SCIM_PAGE_SIZE
        self.proxy.fail(self._users_path, self._broken, 502)
        return block, f"GET /Users startIndex={self._broken}"

    def answers(self) -> list[int]:
        """Return what the proxy answered the broken page."""
        return self.proxy.statuses(self._users_path, self._broken)


def _scim_user(p: Person) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": p.username,
        "name": {"givenName": p.first, "familyName": p.last},
        "emails": [{"value": p.email, "type": "work", "primary": True}],
        "active": p.active,
    }


def _refs(ids: Mapping[str, str], names: Iterable[str], kind: str) -> list[dict[str, str]]:
    return [{"value": ids[n], "type": kind} for n in names]


@pytest.fixture(scope="session", name="scim2_server")
def scim2_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    """Start scim2-server once for the session; each ScimHarness empties it before seeding."""
    with running_scim_server(tmp_path_factory.mktemp("scim2-contract"), token=SCIM_TOKEN) as server:
        yield server


# --- the registry ----------------------------------------------------------------------

MANY = 70  # more than three pages of 20


@contextmanager
def file_harness(request: pytest.FixtureRequest, folder: Path) -> Iterator[SourceHarness]:
    """Yield a harness writing a file in ``folder``."""
    yield FileHarness(folder, MANY)


@contextmanager
def ldap_harness(request: pytest.FixtureRequest, folder: Path) -> Iterator[SourceHarness]:
    """Yield a harness on the session's slapd (the ``slapd`` fixture)."""
    yield LdapHarness(request.getfixturevalue("slapd"), MANY)


@contextmanager
def scim_harness(request: pytest.FixtureRequest, folder: Path) -> Iterator[SourceHarness]:
    """Yield a harness on the session's scim2-server, behind a fresh proxy."""
    server: ScimServer = request.getfixturevalue("scim2_server")
    proxy = ScimProxy(server.url)
    with SimServer(proxy) as front:
        yield ScimHarness(server, proxy, front.url, MANY)


HarnessFactory = Callable[[pytest.FixtureRequest, Path], AbstractContextManager[SourceHarness]]

HARNESSES: dict[str, HarnessFactory] = {
    "file": file_harness,
    "ldap": ldap_harness,
    "scim": scim_harness,
}


def _register_idps() -> None:
    """Add the cloud IdPs' harnesses (their modules import this one: registered after it loads)."""
    from source_harness_entra import entra_harness
    from source_harness_google import google_harness
    from source_harness_keycloak import keycloak_harness
    from source_harness_okta import okta_harness
    from source_harness_onelogin import onelogin_harness

    HARNESSES["entra"] = entra_harness
    HARNESSES["google"] = google_harness
    HARNESSES["keycloak"] = keycloak_harness
    HARNESSES["okta"] = okta_harness
    HARNESSES["onelogin"] = onelogin_harness


_register_idps()
