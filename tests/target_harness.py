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

from scimsync.sim.atlassian_cloud import AtlassianCloudSim
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
    external_id: str | None = None

    def owned(self) -> bool:
        """Tell whether the account carries scimsync's owner marker (SPEC §5)."""
        return OWNER_GROUP in self.groups or bool(self.external_id)


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
    read_only_users: bool  # whether the product has accounts of a read-only directory
    marker: str  # the owner marker: "group" (server/DC) or "external_id" (SCIM, SPEC §5)
    shows_email: bool  # whether reads show accounts' emails (Confluence before 10.0 does not, §2.3)

    def seed_user(
        self,
        username: str,
        email: str,
        display_name: str,
        *,
        active: bool = True,
        groups: Iterable[str] = (),
        read_only: bool = False,
        owned_by: str | None = None,
    ) -> None:
        """Create an account by hand (as an admin or an LDAP sync would).

        ``owned_by`` (a source user id): give it scimsync's owner marker, as if scimsync had
        created it for that person: the owner group, or the externalId on SCIM targets.
        """
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

    def deactivate_write(self, username: str) -> tuple[str, str]:
        """Return the (method, path) of the request that deactivates ``username``, to fault it."""
        ...


class ServerSim(Protocol):
    """What the Jira and Confluence simulators both offer for seeding and inspection."""

    def add_user(
        self,
        name: str,
        email: str,
        display_name: str,
        *,
        active: bool = True,
        groups: Iterable[str] = (),
        read_only: bool = False,
    ) -> str: ...

    def add_group(self, name: str, *, members: Iterable[str] = ()) -> None: ...

    def members(self, group: str) -> set[str]: ...


class ServerHarness:
    """Seeding shared by the server (Data Center) simulators: the marker is the owner group."""

    sim: ServerSim

    def seed_user(
        self,
        username: str,
        email: str,
        display_name: str,
        *,
        active: bool = True,
        groups: Iterable[str] = (),
        read_only: bool = False,
        owned_by: str | None = None,
    ) -> None:
        """Create an account directly in the simulator."""
        marker = [OWNER_GROUP] if owned_by else []
        self.sim.add_user(
            username, email, display_name, active=active, groups=[*groups, *marker], read_only=read_only
        )

    def seed_group(self, name: str) -> None:
        """Create an empty group."""
        self.sim.add_group(name)

    def members(self, group: str) -> set[str]:
        """Return a group's direct members (lower-case)."""
        return {m.lower() for m in self.sim.members(group)}


class JiraHarness(ServerHarness):
    """The Jira Data Center simulator."""

    sim: JiraSim

    type = "jira"
    default_group = "jira-software-users"
    deletes = True
    creates = True
    read_only_users = True
    marker = "group"
    shows_email = True
    update_fields = frozenset({"email", "display_name", "username"})

    def __init__(self, version: str, url: str, sim: JiraSim) -> None:
        self.label = f"jira-{version}"
        self.url = url
        self.sim = sim
        self.log = sim.log
        self.faults = sim.faults
        # 10.3: /user/list pages of 2,000; 9.x: group members 50 a page, search capped at 1,000.
        self.many = 4100 if sim.version_info >= (10, 3) else 1100

    def account(self, username: str) -> Seen | None:
        """Read an account back from the simulator."""
        bean = self.sim.user(username)
        if bean is None:
            return None
        groups = frozenset(g["name"].lower() for g in bean["groups"]["items"])
        return Seen(bean["name"], bean["emailAddress"], bean["displayName"], bean["active"], groups)

    def config_block(self) -> dict[str, Any]:
        """Return the target's config keys."""
        return {"type": "jira", "url": self.url, "token": "contract-jira-token"}

    def deactivate_write(self, username: str) -> tuple[str, str]:
        """PUT /user {"active": false} (reference §1.5)."""
        return ("PUT", "/rest/api/2/user")


@contextmanager
def jira_harness(version: str) -> Iterator[TargetHarness]:
    """Start a Jira simulator of ``version`` and yield its harness."""
    sim = JiraSim(version, token="contract-jira-token")
    with SimServer(sim.app) as server:
        yield JiraHarness(version, server.url, sim)


class ConfluenceHarness(ServerHarness):
    """The Confluence Data Center simulator, mounted under /confluence as customers run it."""

    sim: ConfluenceSim

    type = "confluence"
    default_group = "confluence-users"
    read_only_users = True
    marker = "group"

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
        self.shows_email = numbers >= (10, 0)  # reference §2.3
        # /user/list pages of at most 200 (§2.6); below 8.4, group members, 200 a page.
        self.many = 650

    def account(self, username: str) -> Seen | None:
        """Read an account back from the simulator."""
        user = self.sim.user(username)
        if user is None:
            return None
        groups = frozenset(g.lower() for g in user["groups"])
        return Seen(user["username"], user["email"], user["display_name"], user["active"], groups)

    def config_block(self) -> dict[str, Any]:
        """Return the target's config keys (basic auth: the sync user's password)."""
        return {"type": "confluence", "url": self.url, "username": "admin", "password": "contract-wiki-pw"}

    def deactivate_write(self, username: str) -> tuple[str, str]:
        """PUT /admin/user/{username}/disable (reference §2.5)."""
        return ("PUT", f"/rest/api/admin/user/{username}/disable")


@contextmanager
def confluence_harness(version: str) -> Iterator[TargetHarness]:
    """Start a Confluence simulator of ``version`` under /confluence and yield its harness."""
    sim = ConfluenceSim(version, password="contract-wiki-pw")
    with SimServer(sim.app, prefix="/confluence") as server:
        yield ConfluenceHarness(version, server.url, sim)


class CloudHarness:
    """The Atlassian Cloud user-provisioning simulator, read as `atlassian-cloud` or as plain `scim`."""

    default_group = "atlassian-users"
    read_only_users = False
    marker = "external_id"
    shows_email = True
    creates = True
    deletes = True
    update_fields = frozenset({"email", "display_name", "username"})
    many = 260  # pages of at most 100 (reference §3.4)

    def __init__(self, kind: str, url: str, sim: AtlassianCloudSim) -> None:
        self.label = kind
        self.type = kind
        self.url = url
        self.sim = sim
        self.log = sim.log
        self.faults = sim.faults
        sim.add_group(self.default_group)

    def seed_user(
        self,
        username: str,
        email: str,
        display_name: str,
        *,
        active: bool = True,
        groups: Iterable[str] = (),
        read_only: bool = False,
        owned_by: str | None = None,
    ) -> None:
        """Create a user directly in the simulated directory."""
        if read_only:
            raise ValueError("Atlassian Cloud has no read-only directory")
        for group in groups:
            if group.lower() not in {g.lower() for g in self.sim.group_names()}:
                self.sim.add_group(group)
        self.sim.add_user(username, email, display_name, active=active, external_id=owned_by, groups=groups)

    def seed_group(self, name: str) -> None:
        """Create an empty group."""
        self.sim.add_group(name)

    def account(self, username: str) -> Seen | None:
        """Read a user back from the simulator."""
        user = self.sim.user(username)
        if user is None or self.sim.directory.live_user(user["id"]) is None:
            return None  # §3.6: a deleted record answers 404 from then on
        groups = frozenset(g.lower() for g in user["groups"])
        return Seen(
            user["userName"], user["email"], user["display_name"], user["active"], groups, user["external_id"]
        )

    def members(self, group: str) -> set[str]:
        """Return a group's members."""
        return {m.lower() for m in self.sim.members(group)}

    def config_block(self) -> dict[str, Any]:
        """Return the target's config keys (the directory API key, §3.1)."""
        return {"type": self.type, "url": self.url, "token": "contract-cloud-key"}

    def deactivate_write(self, username: str) -> tuple[str, str]:
        """PATCH /Users/{id} replacing active (reference §3.5)."""
        user = self.sim.user(username)
        assert user is not None
        return ("PATCH", f"{self.sim.base_path}/Users/{user['id']}")


@contextmanager
def cloud_harness(kind: str) -> Iterator[TargetHarness]:
    """Start an Atlassian Cloud directory simulator and yield its harness."""
    sim = AtlassianCloudSim(token="contract-cloud-key")
    with SimServer(sim.app) as server:
        yield CloudHarness(kind, server.url + sim.base_path, sim)


HARNESSES = {
    "atlassian-cloud": lambda: cloud_harness("atlassian-cloud"),
    "scim-on-cloud-sim": lambda: cloud_harness("scim"),
    "confluence-8.2.0": lambda: confluence_harness("8.2.0"),
    "confluence-8.5.6": lambda: confluence_harness("8.5.6"),
    "confluence-9.4.0": lambda: confluence_harness("9.4.0"),
    "confluence-10.0.1": lambda: confluence_harness("10.0.1"),
    "jira-9.12.0": lambda: jira_harness("9.12.0"),
    "jira-10.3.1": lambda: jira_harness("10.3.1"),
}
