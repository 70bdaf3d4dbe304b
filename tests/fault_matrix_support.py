"""The fault matrix's worlds: one IdP and one Atlassian target over real sockets, a story, the checks.

A ``Rig`` syncs a small company (``BEFORE``) calmly, then changes it (``AFTER``: a joiner in
a new team, a leaver, a mover, a rename), breaks one system with a ``Case`` and runs
``apply -y``. Whatever scimsync says, the simulators' own state is what is checked
(``wrong_writes``): nobody in the source deactivated, no account twice, nothing unowned
changed. ``render`` turns the recorded outcomes into docs/reliability.md.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest
import yaml
from click.testing import CliRunner, Result
from target_harness import CloudHarness, ConfluenceHarness, JiraHarness, Seen

from scimsync.cli import cli
from scimsync.sim.atlassian_cloud import AtlassianCloudSim
from scimsync.sim.confluence import ConfluenceSim
from scimsync.sim.entra import CLIENT_ID, CLIENT_SECRET, TENANT_ID, EntraSim
from scimsync.sim.faults import WRITES, Faults, LoggedRequest
from scimsync.sim.jira import JiraSim
from scimsync.sim.okta import OktaSim
from scimsync.sim.server import SimServer

# http.timeout of the timeout cases, and how late their slow answers come.
SHORT_TIMEOUT = 1.0
SLOW_ANSWER = 1.5
RETRIES = 3
STORM = 6  # refusals in a row: more than RETRIES, so only a time budget rides them out
PAGE = 2  # the IdP simulators' page cap, so that five people take three pages

# --- the story ------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """One person of the IdP; the email is ``username@acme.test``."""

    username: str
    first: str
    last: str
    groups: tuple[str, ...] = ()
    active: bool = True

    @property
    def email(self) -> str:
        """Return the work email."""
        return f"{self.username}@acme.test"


BEFORE = (
    Person("amara", "Amara", "Kowalski", ("team-alpha",)),
    Person("bruno", "Bruno", "Rossi", ("team-alpha", "team-beta")),
    Person("chen", "Chen", "Nakamura", ("team-alpha",)),
    Person("dalia", "Dalia", "Haddad", ("team-beta",)),
)
AFTER = (
    BEFORE[0],
    Person("bruno", "Bruno", "Rossi-Ferri", ("team-alpha", "team-beta")),  # renamed
    Person("chen", "Chen", "Nakamura", ("team-beta",)),  # moved
    Person("dalia", "Dalia", "Haddad", ("team-beta",), active=False),  # left
    Person("emeka", "Emeka", "Okafor", ("team-gamma",)),  # joined, in a new team
)


# --- sources --------------------------------------------------------------------------


class Source(Protocol):
    """The IdP side of a rig."""

    name: str  # how the matrix names it
    faults: Faults | None  # None: a file, which has no HTTP to break
    endpoint: Endpoint | None
    config_name: str  # how errors name it
    refreshes: bool  # whether an expired credential is fetched again (OAuth) or final (a static token)
    users_path: str  # the path of the list of users, for faults aimed at it
    list_query: dict[str, str | None]  # picks that list among the GETs of users_path

    def publish(self, people: Sequence[Person]) -> dict[str, Any]:
        """Make the IdP hold exactly ``people``; return the config's source block."""
        ...

    def expire_token(self) -> None:
        """Make the credential expire after the first page of users."""
        ...

    def heal(self) -> None:
        """Undo what ``expire_token`` did that a new run cannot undo by itself."""
        ...


class Endpoint:
    """A simulator served on loopback that can go away mid-run and come back on the same port."""

    def __init__(self, app: Any, *, prefix: str = "") -> None:
        self.server = SimServer(app, prefix=prefix)
        self.url = self.server.start()
        self.port = urlsplit(self.url).port

    def stop(self) -> None:
        """Stop listening: new connections are refused."""
        self.server.stop()

    def restart(self) -> None:
        """Listen again on the same port (no-op while serving)."""
        self.server.port = self.port or 0
        self.server.start()


class FileSource:
    """A CSV export: the source of every target case."""

    name = "file"
    config_name = "source"
    refreshes = False
    faults: Faults | None = None
    endpoint: Endpoint | None = None
    users_path = ""
    list_query: dict[str, str | None] = {}

    def __init__(self, folder: Path) -> None:
        self.path = folder / "people.csv"

    def publish(self, people: Sequence[Person]) -> dict[str, Any]:
        """Write people.csv."""
        fields = ["id", "username", "email", "first_name", "last_name", "active", "groups"]
        with self.path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            for p in people:
                values = [f"id-{p.username}", p.username, p.email, p.first, p.last, str(p.active).lower()]
                writer.writerow(dict(zip(fields, [*values, ";".join(p.groups)], strict=True)))
        return {"type": "file", "path": self.path.name}

    def expire_token(self) -> None:
        """A file has no token."""
        raise NotImplementedError

    def heal(self) -> None:
        """Nothing to undo."""


class OktaSource:
    """The Okta simulator (SSWS token), pages of ``PAGE`` users."""

    name = "okta"
    config_name = "source"
    refreshes = False
    users_path = "/api/v1/users"
    list_query: dict[str, str | None] = {"filter": None}  # not the list of DEPROVISIONED users
    token = "matrix-okta-token"

    def __init__(self) -> None:
        self.sim = OktaSim(token=self.token, max_page=PAGE, everyone=False)
        self.faults: Faults | None = self.sim.faults
        self.endpoint: Endpoint | None = Endpoint(self.sim.app)

    def publish(self, people: Sequence[Person]) -> dict[str, Any]:
        """Add, suspend, rename and regroup users until the org holds ``people``."""
        groups = {g for p in people for g in p.groups}
        known = {g.name for g in self.sim.directory.groups.values()}
        for name in sorted(groups - known):
            self.sim.add_group(name)
        for p in people:
            if self.sim.user(p.email) is None:
                self.sim.add_user(p.email, p.email, p.first, p.last)
            self.sim.update_profile(p.email, firstName=p.first, lastName=p.last)
            self.sim.set_status(p.email, "ACTIVE" if p.active else "SUSPENDED")
            for name in groups:
                if name in p.groups:
                    self.sim.add_member(name, p.email)
                else:
                    self.sim.remove_member(name, p.email)
        assert self.endpoint is not None
        return {"type": "okta", "url": self.endpoint.url, "token": self.token}

    def expire_token(self) -> None:
        """Revoke the token after one page: an SSWS token is not refreshed (idp-apis §1.1)."""
        self.sim.expire_token_after(1)

    def heal(self) -> None:
        """Issue the token again, as an admin replacing a revoked one would."""
        self.sim.add_token(self.token)


class EntraSource:
    """The Entra ID simulator (client credentials: a token that expires and is fetched again)."""

    name = "entra"
    config_name = "source"
    refreshes = True
    users_path = "/v1.0/users"
    list_query: dict[str, str | None] = {}

    def __init__(self) -> None:
        self.sim = EntraSim(max_page_size=PAGE)
        self.faults: Faults | None = self.sim.faults
        self.endpoint: Endpoint | None = Endpoint(self.sim.app)
        self.ids: dict[str, str] = {}

    def publish(self, people: Sequence[Person]) -> dict[str, Any]:
        """Add, disable, rename and regroup users until the tenant holds ``people``."""
        for p in people:
            props = {"givenName": p.first, "surname": p.last, "displayName": f"{p.first} {p.last}"}
            if p.username not in self.ids:
                self.ids[p.username] = self.sim.add_user(p.email, mail=p.email)
            self.sim.update_user(self.ids[p.username], accountEnabled=p.active, **props)
        groups = sorted({g for p in people for g in p.groups})
        for name in groups:
            found = self.sim.directory.find_groups(name)
            group = found[0].id if found else self.sim.add_group(name)
            members = self.sim.directory.get(group, "group").members
            for p in people:
                if name in p.groups:
                    self.sim.add_member(group, self.ids[p.username])
                else:
                    members.pop(self.ids[p.username], None)
        assert self.endpoint is not None
        url = self.endpoint.url
        return {
            "type": "entra",
            "tenant_id": TENANT_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "login_url": url,
            "graph_url": url,
        }

    def expire_token(self) -> None:
        """Expire the access token once one page of users was served: fetched again (idp §2.1)."""
        self.sim.expire_tokens_after(1)

    def heal(self) -> None:
        """Nothing to undo: a new token is fetched with the client secret."""


# --- targets --------------------------------------------------------------------------


class Target(Protocol):
    """The Atlassian side of a rig."""

    name: str  # also its name in the config, so how errors name it
    faults: Faults
    endpoint: Endpoint
    users_path: str  # the paged list of accounts a read walks
    list_query: dict[str, str | None]
    harness: JiraHarness | ConfluenceHarness | CloudHarness
    untouchable: tuple[str, ...]  # accounts scimsync must never change

    def block(self) -> dict[str, Any]:
        """Return the target's config block, rules included."""
        ...

    def accounts(self) -> list[Seen]:
        """Return every account the simulator holds."""
        ...

    def small_pages(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Cap the list of accounts at ``PAGE`` a page, so that it takes several pages."""
        ...


def _rules(default_group: str) -> dict[str, Any]:
    return {"default_groups": [default_group], "groups": [{"from": "team-*", "to": "c-{{ group.name }}"}]}


class JiraTarget:
    """Jira Data Center 10.3 (/user/list cursor pages, atlassian §1.7)."""

    name = "jira"
    users_path = "/rest/api/2/user/list"
    list_query: dict[str, str | None] = {}
    untouchable = ("admin", "contractor")
    token = "matrix-jira-token"

    def __init__(self) -> None:
        sim = JiraSim("10.3.1", token=self.token)
        sim.add_user("contractor", "contractor@partner.test", "Outside Contractor", groups=["partners"])
        self.sim = sim
        self.faults = sim.faults
        self.endpoint = Endpoint(sim.app)
        self.harness = JiraHarness("10.3.1", self.endpoint.url, sim)

    def block(self) -> dict[str, Any]:
        """Bearer PAT."""
        return {
            "type": "jira",
            "url": self.endpoint.url,
            "token": self.token,
            **_rules("jira-software-users"),
        }

    def accounts(self) -> list[Seen]:
        """Every user of the simulated Jira."""
        names = [u.name for u in self.sim.directory.users.values()]
        return [seen for n in names if (seen := self.harness.account(n)) is not None]

    def small_pages(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """/user/list pages of PAGE users."""
        monkeypatch.setattr("scimsync.sim.jira_users.LIST_MAX", PAGE)


class ConfluenceTarget:
    """Confluence Data Center 10.0 under /confluence (start/limit pages, atlassian §2.6)."""

    name = "confluence"
    users_path = "/rest/api/user/list"
    list_query: dict[str, str | None] = {}
    untouchable = ("admin", "contractor")
    password = "matrix-wiki-pw"

    def __init__(self) -> None:
        sim = ConfluenceSim("10.0.1", password=self.password)
        sim.add_user("contractor", "contractor@partner.test", "Outside Contractor", groups=["partners"])
        self.sim = sim
        self.faults = sim.faults
        self.endpoint = Endpoint(sim.app, prefix="/confluence")
        self.harness = ConfluenceHarness("10.0.1", self.endpoint.url, sim)

    def block(self) -> dict[str, Any]:
        """Basic auth as the admin."""
        return {
            "type": "confluence",
            "url": self.endpoint.url,
            "username": "admin",
            "password": self.password,
            **_rules("confluence-users"),
        }

    def accounts(self) -> list[Seen]:
        """Every user of the simulated Confluence."""
        names = [u.name for u in self.sim.directory.users.values()]
        return [seen for n in names if (seen := self.harness.account(n)) is not None]

    def small_pages(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every collection capped at PAGE."""
        monkeypatch.setattr("scimsync.sim.confluence_common.PAGE_MAX", PAGE)


class CloudTarget:
    """Atlassian Cloud user provisioning (SCIM, startIndex pages, atlassian §3.4)."""

    name = "atlassian-cloud"
    untouchable = ("contractor",)
    list_query: dict[str, str | None] = {"filter": None}
    token = "matrix-cloud-key"

    def __init__(self) -> None:
        sim = AtlassianCloudSim(token=self.token)
        sim.add_user("contractor", "contractor@acme.test", "Outside Contractor")  # no externalId: unowned
        self.sim = sim
        self.faults = sim.faults
        self.users_path = sim.base_path + "/Users"
        self.endpoint = Endpoint(sim.app)
        self.harness = CloudHarness("atlassian-cloud", self.endpoint.url + sim.base_path, sim)

    def block(self) -> dict[str, Any]:
        """The directory's API key."""
        url = self.endpoint.url + self.sim.base_path
        return {"type": "atlassian-cloud", "url": url, "token": self.token, **_rules("atlassian-users")}

    def accounts(self) -> list[Seen]:
        """Every live user of the simulated directory."""
        names = [u.user_name for u in self.sim.directory.live_users()]
        return [seen for n in names if (seen := self.harness.account(n)) is not None]

    def small_pages(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Pages of PAGE resources."""
        monkeypatch.setattr("scimsync.sim.atlassian_cloud_common.PAGE_MAX", PAGE)


# --- cases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One fault: what it is, in which phase, and how to arm it on the faulted system."""

    id: str
    phase: str  # "read" or "write"
    title: str
    arm: Callable[[Rig], None]
    timeout: float = 10.0
    only: str = ""  # "source": a fault only an IdP can show (token expiry)
    fails: bool = False  # the run must end with a one-line error (no way to recover in the run)

    def expect_error(self, source: Source) -> bool:
        """Tell whether the run must end in an error rather than recover."""
        return not source.refreshes if self.id == "token-expiry" else self.fails


def _method(rig: Rig) -> str:
    return "GET" if rig.case.phase == "read" else WRITES


def _list(rig: Rig) -> str | None:
    """Aim a body fault of the read phase at the list of users (the first GET is a version probe)."""
    return rig.system.users_path if rig.case.phase == "read" else None


def _query(rig: Rig) -> dict[str, str | None] | None:
    return rig.system.list_query if rig.case.phase == "read" else None


def _rate_limit(rig: Rig) -> None:
    faults = rig.faults
    if rig.target_faulted:
        faults.rate_limit(STORM, retry_after=1, method=_method(rig))
    else:
        faults.inject(429, count=STORM, method=_method(rig), headers={"Retry-After": "1"})


def _gone(rig: Rig) -> None:
    endpoint = rig.system.endpoint
    assert endpoint is not None
    if rig.case.phase == "read" and rig.target_faulted:
        # Accounts on several pages, so that the server goes away mid-read: Atlassian Cloud
        # reads no discovery endpoint, and two GETs (/Users, /Groups) can be its whole read.
        rig.target.small_pages(rig.monkeypatch)
    rig.faults.go_away(2 if rig.case.phase == "read" else 3, method=_method(rig), on_gone=endpoint.stop)


def _cursor(rig: Rig) -> None:
    if rig.target_faulted:
        rig.target.small_pages(rig.monkeypatch)
    rig.faults.repeat_page(rig.system.users_path, query=rig.system.list_query, page=2)


def _token(rig: Rig) -> None:
    rig.source.expire_token()


def _cases(phase: str) -> list[Case]:
    storms: list[Case] = [
        Case("429-retry-after", phase, f"429 storm ({STORM} in a row) with Retry-After", _rate_limit),
        Case(
            "429-bare",
            phase,
            f"429 storm ({STORM} in a row) without Retry-After",
            lambda r: r.faults.inject(429, count=STORM, method=_method(r)),
        ),
        Case(
            "503-burst",
            phase,
            f"503 burst ({STORM} in a row)",
            lambda r: r.faults.inject(503, count=STORM, method=_method(r)),
        ),
        Case(
            "read-timeout",
            phase,
            f"an answer slower than http.timeout ({SHORT_TIMEOUT:g} s)",
            lambda r: r.faults.slow(SLOW_ANSWER, count=1, method=_method(r)),
            timeout=SHORT_TIMEOUT,
        ),
        Case(
            "dropped-before",
            phase,
            "connections dropped before the server acted",
            lambda r: r.faults.drop(2, method=_method(r)),
        ),
    ]
    if phase == "write":
        storms.append(
            Case(
                "dropped-after",
                phase,
                "connections dropped after the server acted",
                lambda r: r.faults.drop(2, method=WRITES, after_app=True),
            )
        )
    # Reads: one bad page fails the read (a body is not retried); writes: two in a row, which the
    # engine's read-back rides out (SPEC §8).
    count = 1 if phase == "read" else 2
    bodies = [
        Case(
            "truncated-json",
            phase,
            "truncated JSON body" + (" (the server acted)" if phase == "write" else ""),
            lambda r: r.faults.truncate(count=count, method=_method(r), path=_list(r), query=_query(r)),
            fails=phase == "read",
        ),
        Case(
            "proxy-html-200",
            phase,
            "a proxy's HTML page with status 200",
            lambda r: r.faults.html(200, count=count, method=_method(r), path=_list(r), query=_query(r)),
            fails=phase == "read",
        ),
        Case(
            "proxy-html-502",
            phase,
            "a proxy's HTML page with status 502",
            lambda r: r.faults.html(502, count=2, method=_method(r), path=_list(r)),
        ),
    ]
    mid = "read" if phase == "read" else "apply"
    ends = [Case("gone", phase, f"the server goes away mid-{mid} (connections refused)", _gone, fails=True)]
    if phase == "read":
        ends += [
            Case(
                "repeated-cursor",
                phase,
                "the second page repeats the first page's cursor",
                _cursor,
                fails=True,
            ),
            Case(
                "token-expiry", phase, "the access token expires after the first page", _token, only="source"
            ),
        ]
    return storms + bodies + ends


READ_CASES = _cases("read")
WRITE_CASES = _cases("write")
SOURCES: dict[str, Callable[[], Source]] = {"okta": OktaSource, "entra": EntraSource}
TARGETS: dict[str, Callable[[], Target]] = {
    "jira": JiraTarget,
    "confluence": ConfluenceTarget,
    "atlassian-cloud": CloudTarget,
}


def matrix() -> list[tuple[str, Case]]:
    """Return every (system, case) the matrix runs: reads on the IdPs, reads and writes on the targets."""
    rows = [(s, c) for s in SOURCES for c in READ_CASES]
    rows += [(t, c) for t in TARGETS for c in [*READ_CASES, *WRITE_CASES] if c.only != "source"]
    return rows


# --- a rig ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one case did, for the assertions and for docs/reliability.md."""

    system: str
    case: Case
    exit_code: int
    errors: list[str]  # the error lines on stderr ("error: ...", "failed: ...")
    wrong_writes: list[str] = field(default_factory=list)
    converged: bool = False

    @property
    def text(self) -> str:
        """Say "recovered", or quote the first error line (and count the others)."""
        if self.exit_code == 0:
            return "recovered"
        first = _stable(self.errors[0]) if self.errors else f"(no error line, exit {self.exit_code})"
        more = len(self.errors) - 1
        return f"one-line error: `{first}`" + (f" and {more} more like it" if more else "")


_PORT = re.compile(r"127\.0\.0\.1:\d+")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?Z?")


def _stable(line: str) -> str:
    """Take what changes from run to run (loopback ports, timestamps) out of an error line."""
    return _TIME.sub("<time>", _PORT.sub("127.0.0.1:<port>", line))


class Rig:
    """One source, one target, a folder with the config, and the CLI."""

    def __init__(self, folder: Path, system: str, case: Case) -> None:
        self.folder = folder
        self.case = case
        self.monkeypatch = pytest.MonkeyPatch()  # undone when the fault is cleared
        self.name = system
        self.target_faulted = system in TARGETS
        self.source: Source = SOURCES[system]() if system in SOURCES else FileSource(folder)
        self.target: Target = TARGETS[system]() if self.target_faulted else JiraTarget()
        self.system: Source | Target = self.target if self.target_faulted else self.source
        faults = self.system.faults
        assert faults is not None
        self.faults = faults
        self.people: Sequence[Person] = ()
        self.unfired = 0  # faulty answers still queued when the faulted run ended
        self.before: dict[str, Seen | None] = {}  # the untouchable accounts before the faulted run
        self.faulted_writes: list[LoggedRequest] = []  # the writes the target got in the faulted run

    def close(self) -> None:
        """Stop both simulators."""
        for endpoint in (self.source.endpoint, self.target.endpoint):
            if endpoint is not None:
                endpoint.stop()

    def publish(self, people: Sequence[Person], *, timeout: float = 10.0) -> None:
        """Put ``people`` in the IdP and write the config."""
        self.people = people
        config = {
            "version": 1,
            "source": self.source.publish(people),
            "mapping": {
                "username": "{{ user.email | localpart | lower }}",
                "email": "{{ user.email | lower }}",
                "display_name": "{{ user.first_name }} {{ user.last_name }}",
            },
            "targets": {self.target.name: self.target.block()},
            "policy": {"protected_users": ["admin"], "max_deactivations": 5},
            "audit_log": "audit.jsonl",
            "lock_file": "run.lock",
            "state_file": "state.json",
            "http": {"retries": RETRIES, "timeout": timeout},
        }
        text = yaml.safe_dump(config, sort_keys=False)
        path = self.folder / "scimsync.yaml"
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)  # it holds the simulators' literal credentials

    def run(self, *args: str) -> Result:
        """Run the CLI on the rig's config (stdin is no terminal)."""
        config = str(self.folder / "scimsync.yaml")
        return CliRunner().invoke(cli, ["-c", config, *args], catch_exceptions=False)

    def untouchable(self) -> dict[str, Seen | None]:
        """Return the accounts scimsync must never change, as the simulator holds them."""
        return {name: self.target.harness.account(name) for name in self.target.untouchable}

    def wrong_writes(self, before: dict[str, Seen | None]) -> list[str]:
        """List what the target holds that no run may ever produce (empty: nothing wrong)."""
        wrong = []
        present = {p.username for p in self.people if p.active}
        accounts = self.target.accounts()
        for seen in accounts:
            if seen.username.lower() in present and not seen.active:
                wrong.append(f"{seen.username} is in the source but was deactivated")
        for kind, keys in (
            ("username", [a.username for a in accounts]),
            ("email", [a.email for a in accounts]),
        ):
            folded = [k.lower() for k in keys if k]
            wrong += [f"two accounts with the {kind} {k}" for k in sorted(set(folded)) if folded.count(k) > 1]
        after = self.untouchable()
        wrong += [f"{name} (not ours) was changed" for name in before if before[name] != after[name]]
        return wrong

    def converged(self) -> tuple[bool, str]:
        """Plan with --detailed-exitcode: tell whether it exits 0 and sends no write."""
        self.target.harness.log.clear()
        result = self.run("plan", "--detailed-exitcode")
        quiet = not self.target.harness.log.writes()
        return result.exit_code == 0 and quiet, result.output


def error_lines(result: Result) -> list[str]:
    """Return the lines of stderr that report an error: a run that failed, an operation that did."""
    return [line for line in result.stderr.splitlines() if line.startswith(("error: ", "failed: "))]


def run_case(rig: Rig) -> tuple[Outcome, Result]:
    """Sync BEFORE calmly, break the system, apply AFTER; check the target; clear the fault."""
    rig.publish(BEFORE)
    calm = rig.run("apply", "-y")
    assert calm.exit_code == 0, calm.output
    rig.publish(AFTER, timeout=rig.case.timeout)
    rig.before = before = rig.untouchable()
    rig.case.arm(rig)
    rig.target.harness.log.clear()
    result = rig.run("apply", "-y")
    rig.faulted_writes = rig.target.harness.log.writes()
    rig.unfired = rig.faults.pending()
    rig.faults.clear()
    rig.source.heal()
    endpoint = rig.system.endpoint
    if endpoint is not None:
        endpoint.restart()
    rig.monkeypatch.undo()
    outcome = Outcome(rig.name, rig.case, result.exit_code, error_lines(result))
    outcome.wrong_writes = rig.wrong_writes(before)
    return outcome, result


# --- docs/reliability.md --------------------------------------------------------------

COMMAND = "SCIMSYNC_RELIABILITY_DOC=docs/reliability.md .venv/bin/python -m pytest tests/test_fault_matrix.py"
HEADER = f"""# Reliability: the fault matrix

Generated by `{COMMAND}` from the outcomes the test run recorded; do not edit by hand.

Each case syncs a small company calmly, then changes it (a joiner in a new team, a leaver,
a mover, a rename), breaks one system as below and runs `scimsync apply -y` against the
simulators over real sockets (`http.retries: {RETRIES}`; `http.timeout: {SHORT_TIMEOUT:g}` s in
the timeout cases). **Outcome**: *recovered* (exit 0 and a plan right after shows no changes)
or the one line the run ended with (exit 1, no traceback). **Wrong writes**: what the
simulator holds afterwards that must never happen, read from the simulator itself: a person
who is in the source deactivated, an account twice, an account scimsync does not own
changed. **Next run converged**: with the fault cleared, `scimsync plan --detailed-exitcode`
exits 0 and sends no write: right away after a recovered run, after one calm `scimsync apply -y`
after an error.

IdP cases read through that IdP into Jira; target cases read a CSV export. An error line
shows the first failed operation when several failed alike (which of several parallel reads
reports a refused connection first varies from run to run); loopback ports and timestamps in
it are replaced by placeholders.
"""


def render(outcomes: Iterable[Outcome]) -> str:
    """Return docs/reliability.md: one table per system, in matrix order."""
    order = {(s, c.id, c.phase): n for n, (s, c) in enumerate(matrix())}
    rows = sorted(outcomes, key=lambda o: order[(o.system, o.case.id, o.case.phase)])
    out = [HEADER]
    for system in dict.fromkeys(o.system for o in rows):
        kind = "IdP source" if system in SOURCES else "target"
        out += [f"\n## {system} ({kind})\n", "| case | phase | outcome | wrong writes | next run converged |"]
        out.append("|---|---|---|---|---|")
        for o in (o for o in rows if o.system == system):
            text = o.text.replace("|", "\\|")
            converged = "yes" if o.converged else "no"
            out.append(f"| {o.case.title} | {o.case.phase} | {text} | {len(o.wrong_writes)} | {converged} |")
    return "\n".join(out) + "\n"


def documented_cases(text: str) -> list[tuple[str, str, str]]:
    """Return the (system, case title, phase) rows of a rendered docs/reliability.md."""
    rows, system = [], ""
    for line in text.splitlines():
        if line.startswith("## "):
            system = line[3:].split(" (")[0]
        elif line.startswith("| ") and not line.startswith("| case ") and system:
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows.append((system, cells[0], cells[1]))
    return rows
