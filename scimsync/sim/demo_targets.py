"""The targets ``scimsync demo --target NAME`` can start: name -> a seeded simulator on loopback.

Each entry of ``TARGETS`` is a context manager factory: given the company, it seeds its
simulator with the history of a company that synced before, serves it, and yields a
``DemoTarget``: the ``targets:`` entry of the demo's config and the simulator's request
log (for the "N write requests sent" lines). Leaving the ``with`` stops the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from scimsync.errors import ScimsyncError
from scimsync.sim.atlassian_cloud import AtlassianCloudSim
from scimsync.sim.confluence import ConfluenceSim
from scimsync.sim.faults import RequestLog
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

People = list[dict[str, Any]]
JIRA_VERSION = "10.3.1"
WIKI_VERSION = "9.4.0"  # cannot change names or emails over REST before 10.0: the plan says so

JIRA = """\
jira:
  type: jira
  url: {url}
  token: ${{SCIMSYNC_DEMO_TOKEN:-sim-jira-token}}
  default_groups: [jira-software-users]
  groups:
    - from: "atlassian-jira-*"
      to: "{{{{ group.name | replace('atlassian-', '') }}}}"
"""
CONFLUENCE = """\
confluence:
  type: confluence
  url: {url}
  username: admin
  password: ${{SCIMSYNC_DEMO_WIKI_PASSWORD:-sim-wiki-password}}
  default_groups: [confluence-users]
  groups:
    - from: "atlassian-confluence-users"
      to: [confluence-editors]
"""
CLOUD = """\
cloud:
  type: atlassian-cloud
  url: {url}                         # the directory's SCIM base
  token: ${{SCIMSYNC_DEMO_CLOUD_KEY:-sim-cloud-api-key}}
  groups:                            # product access is granted to these groups in Atlassian Administration
    - from: "atlassian-*"
      to: "{{{{ group.name | replace('atlassian-', '') }}}}"
"""


@dataclass(frozen=True)
class DemoTarget:
    """A running target: how the demo names it, its config entry and its request log."""

    label: str  # "Jira": in "N write requests sent to Jira"
    title: str  # "a simulated Jira Data Center 10.3 at http://..."
    block: str  # its entry under `targets:`, YAML, not indented
    log: RequestLog


Start = Callable[[People], AbstractContextManager[DemoTarget]]


def seed_jira(sim: JiraSim, people: People) -> None:
    """Give the simulated Jira the history of a company that synced before."""
    sim.add_group("scimsync-managed")
    jira_people = [p for p in people if "atlassian-jira-users" in p["groups"]]
    for i, person in enumerate(jira_people[:8]):
        name = person["username"]
        display = f"{person['first_name']} {person['last_name']}"
        email = person["email"]
        if i == 1:
            display = f"{person['first_name']} Oldname"  # a name change in the IdP
        if i == 2:
            email = f"{name}@old-acme.example"  # an email change
        sim.add_user(name, email, display, active=i != 3, groups=("jira-software-users", "scimsync-managed"))
    sim.add_user(
        "olga.former",
        "olga.former@acme.example",
        "Olga Former",
        groups=("jira-software-users", "scimsync-managed"),
    )
    sim.add_user("build-bot", "build-bot@acme.example", "Build Bot", groups=("jira-software-users",))


def seed_wiki(wiki: ConfluenceSim, people: People) -> None:
    """Give the simulated Confluence a few accounts of its own: some synced before, some not."""
    wiki.add_group("scimsync-managed")
    for person in [p for p in people if "atlassian-confluence-users" in p["groups"]][:4]:
        display = f"{person['first_name']} {person['last_name']}"
        wiki.add_user(
            person["username"], person["email"], display, groups=("confluence-users", "scimsync-managed")
        )
    wiki.add_user(
        "olga.former",
        "olga.former@acme.example",
        "Olga Former",
        groups=("confluence-users", "scimsync-managed"),
    )
    wiki.add_user("wiki-bot", "wiki-bot@acme.example", "Wiki Bot", groups=("confluence-users",))


def seed_cloud(cloud: AtlassianCloudSim, people: People) -> None:
    """Give the simulated Atlassian Cloud directory a former employee, a stranger and managed accounts."""
    # A non-empty externalId is scimsync's owner marker on SCIM targets: Olga was synced
    # before and has left; the admin account was made by hand and stays untouched.
    cloud.add_user("olga.former", "olga.former@acme.example", "Olga Former", external_id="00u09999")
    cloud.add_user("site-admin", "site-admin@acme.example", "Site Admin")
    for person in people[:3]:
        cloud.claim_managed_account(person["email"])  # §3.5: created users link to these accounts


@contextmanager
def jira(people: People) -> Iterator[DemoTarget]:
    """Serve a seeded Jira Data Center 10.3."""
    sim = JiraSim(version=JIRA_VERSION)
    seed_jira(sim, people)
    with SimServer(sim.app) as server:
        title = f"a simulated Jira Data Center 10.3 at {server.url}"
        yield DemoTarget("Jira", title, JIRA.format(url=server.url), sim.log)


@contextmanager
def confluence(people: People) -> Iterator[DemoTarget]:
    """Serve a seeded Confluence Data Center 9.4 under the context path /confluence."""
    wiki = ConfluenceSim(WIKI_VERSION, password="sim-wiki-password")
    seed_wiki(wiki, people)
    with SimServer(wiki.app, prefix="/confluence") as server:
        title = f"a simulated Confluence Data Center {WIKI_VERSION} at {server.url}"
        yield DemoTarget("Confluence", title, CONFLUENCE.format(url=server.url), wiki.log)


@contextmanager
def atlassian_cloud(people: People) -> Iterator[DemoTarget]:
    """Serve a seeded Atlassian Cloud user-provisioning directory (SCIM 2.0, reference §3)."""
    cloud = AtlassianCloudSim(directory_id="acme-demo-directory", token="sim-cloud-api-key")
    seed_cloud(cloud, people)
    with SimServer(cloud.app) as server:
        url = server.url + cloud.base_path
        title = f"a simulated Atlassian Cloud directory at {url}"
        yield DemoTarget("Atlassian Cloud", title, CLOUD.format(url=url), cloud.log)


TARGETS: dict[str, Start] = {"jira": jira, "confluence": confluence, "atlassian-cloud": atlassian_cloud}
DEFAULT = ("jira", "confluence")
ALL = "all"


def pick(names: Sequence[str]) -> list[str]:
    """Return the targets named (``all``: every one; none: the default), in order, each once."""
    unknown = [n for n in names if n != ALL and n not in TARGETS]
    if unknown:
        choices = ", ".join([*TARGETS, ALL])
        raise ScimsyncError(f"demo: no target '{unknown[0]}' (choose from {choices})")
    if ALL in names:
        return list(TARGETS)
    return list(dict.fromkeys(names or DEFAULT))
