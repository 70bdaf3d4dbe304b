"""One harness per target simulator, so that one contract suite runs every target.

A harness starts its simulator on a loopback socket, seeds accounts and groups without
HTTP, reads them back in one neutral shape, and gives the target's block of the config.
The suite (test_target_contract.py) only talks to targets through scimsync's config, CLI
and API, and to simulators through this interface.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from scimsync.sim.confluence import ConfluenceSim
from scimsync.sim.faults import Faults, RequestLog
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

OWNER_GROUP = "scimsync-managed"


@dataclass(frozen=True)
class Seen:
    """An account as the simulator holds it, in one shape for every target."""

    username: str
    email: str | None  # None where the product never shows emails
    display_name: str
    active: bool
    groups: frozenset[str]


class TargetHarness(Protocol):
    """What the contract suite needs from a target's simulator."""

    label: str  # test id, e.g. "jira-10.3.1"
    type: str  # the config's target type
    url: str
    log: RequestLog
    faults: Faults
    many: int  # accounts that span several pages and pass the product's search caps
    update_fields: frozenset[str]  # the fields this version can change
    deletes: bool  # whether this version can delete a user
    creates: bool  # whether this version can create a user
    default_group: str  # a group every provisioned user gets (default_groups)

    def seed_user(
        self,
        username: str,
        email: str,
        display_name: str,
        *,
        active: bool = True,
        groups: Iterable[str] = (),
        read_only: bool = False,
    ) -> None:
        """Create an account by hand (as an admin or an LDAP sync would)."""
        ...

    def seed_group(self, name: str) -> None:
        """Create an empty group."""
        ...

    def account(self, username: str) -> Seen | None:
        """Return the account named ``username``, or None when it does not exist."""
        ...

    def members(self, group: str) -> set[str]:
        """Return the usernames in a group (lower-case)."""
        ...

    def config_block(self) -> dict[str, Any]:
        """Return the target's config keys: type, url, credentials."""
        ...


class JiraHarness:
    """The Jira Data Center simulator."""

    type = "jira"
    default_group = "jira-software-users"
    deletes = True
    creates = True
    update_fields = frozenset({"email", "display_name", "username"})

    def __init__(self, version: str, url: str, sim: JiraSim) -> None:
        self.label = f"jira-{version}"
        self.url = url
        self.sim = sim
        self.log = sim.log
        self.faults = sim.faults
        # 10.3: /user/list pages of 2,000; 9.x: group members 50 a page, search capped at 1,000.
        self.many = 4100 if sim.version_info >= (10, 3) else 1100

    def seed_user(
        self,
        username: str,
        email: str,
        display_name: str,
        *,
        active: bool = True,
        groups: Iterable[str] = (),
        read_only: bool = False,
    ) -> None:
        """Create an account directly in the simulator."""
        self.sim.add_user(username, email, display_name, active=active, groups=groups, read_only=read_only)

    def seed_group(self, name: str) -> None:
        """Create an empty group."""
        self.sim.add_group(name)

    def account(self, username: str) -> Seen | None:
        """Read an account back from the simulator."""
        bean = self.sim.user(username)
        if bean is None:
            return None
        groups = frozenset(g["name"].lower() for g in bean["groups"]["items"])
        return Seen(bean["name"], bean["emailAddress"], bean["displayName"], bean["active"], groups)

    def members(self, group: str) -> set[str]:
        """Return a group's direct members."""
        return {m.lower() for m in self.sim.members(group)}

    def config_block(self) -> dict[str, Any]:
        """Return the target's config keys."""
        return {"type": "jira", "url": self.url, "token": "contract-jira-token"}


@contextmanager
def jira_harness(version: str) -> Iterator[TargetHarness]:
    """Start a Jira simulator of ``version`` and yield its harness."""
    sim = JiraSim(version, token="contract-jira-token")
    with SimServer(sim.app) as server:
        yield JiraHarness(version, server.url, sim)


class ConfluenceHarness:
    """The Confluence Data Center simulator, mounted under /confluence as customers run it."""

    type = "confluence"
    default_group = "confluence-users"

    def __init__(self, version: str, url: str, sim: ConfluenceSim) -> None:
        self.label = f"confluence-{version}"
        self.url = url
        self.sim = sim
        self.log = sim.log
        self.faults = sim.faults
        numbers = tuple(int(n) for n in version.split(".")[:2])
        self.deletes = numbers >= (8, 2)  # reference §2.2
        self.creates = numbers >= (8, 4)
        self.update_fields = frozenset({"email", "display_name"}) if numbers >= (10, 0) else frozenset()
        # /user/list pages of at most 200 (§2.6); below 8.4, group members, 200 a page.
        self.many = 650

    def seed_user(
        self,
        username: str,
        email: str,
        display_name: str,
        *,
        active: bool = True,
        groups: Iterable[str] = (),
        read_only: bool = False,
    ) -> None:
        """Create an account directly in the simulator."""
        self.sim.add_user(username, email, display_name, active=active, groups=groups, read_only=read_only)

    def seed_group(self, name: str) -> None:
        """Create an empty group."""
        self.sim.add_group(name)

    def account(self, username: str) -> Seen | None:
        """Read an account back from the simulator."""
        user = self.sim.user(username)
        if user is None:
            return None
        groups = frozenset(g.lower() for g in user["groups"])
        return Seen(user["username"], user["email"], user["display_name"], user["active"], groups)

    def members(self, group: str) -> set[str]:
        """Return a group's members."""
        return {m.lower() for m in self.sim.members(group)}

    def config_block(self) -> dict[str, Any]:
        """Return the target's config keys (basic auth: the sync user's password)."""
        return {"type": "confluence", "url": self.url, "username": "admin", "password": "contract-wiki-pw"}


@contextmanager
def confluence_harness(version: str) -> Iterator[TargetHarness]:
    """Start a Confluence simulator of ``version`` under /confluence and yield its harness."""
    sim = ConfluenceSim(version, password="contract-wiki-pw")
    with SimServer(sim.app, prefix="/confluence") as server:
        yield ConfluenceHarness(version, server.url, sim)


HARNESSES = {
    "confluence-8.2.0": lambda: confluence_harness("8.2.0"),
    "confluence-8.5.6": lambda: confluence_harness("8.5.6"),
    "confluence-9.4.0": lambda: confluence_harness("9.4.0"),
    "confluence-10.0.1": lambda: confluence_harness("10.0.1"),
    "jira-9.12.0": lambda: jira_harness("9.12.0"),
    "jira-10.3.1": lambda: jira_harness("10.3.1"),
}
