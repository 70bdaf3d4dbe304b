"""The systems the benchmark runs: each simulator, how it is seeded, and its config entry.

A ``System`` builds its simulator, seeds it in memory (never through HTTP: 50,000 people
seed in seconds), names its endpoints in the request log, and says what a bare
``requests`` loop should ask it for. Targets are seeded either empty (a first
provisioning) or converged: exactly what scimsync itself leaves behind for the company
(every active person with the managed groups of the benchmark's config).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from scimsync.sim.atlassian_cloud import AtlassianCloudSim
from scimsync.sim.bench_company import Person
from scimsync.sim.confluence import ConfluenceSim
from scimsync.sim.jira import JiraSim
from scimsync.sim.okta import OktaSim

JIRA_VERSION = "10.3.1"  # /user/list (§1.7) and PATs
CONFLUENCE_VERSION = "10.2.1"  # /user/list (8.4+) and PUT /admin/user (10.0+), §2.2
OWNER = "scimsync-managed"
# The simulators' own made-up credentials.
JIRA_TOKEN = "sim-jira-token"
WIKI_TOKEN = "sim-confluence-token"
CLOUD_TOKEN = "sim-cloud-api-key"
OKTA_TOKEN = "sim-okta-token"
DIRECTORY = "bench-directory"

# The state file's memory of what each templated rule produced (SPEC §5): "from -> to".
RULE_MEMORY = {"dept-": "dept-* -> {{ group.name }}", "team-": "team-* -> {{ group.name }}"}
GROUP_RULES = """\
    groups:
      - {{from: "dept-*", to: "{{{{ group.name }}}}"}}
      - {{from: "team-*", to: "{{{{ group.name }}}}"}}
"""
TARGET_BLOCKS = {
    "jira": "  jira:\n    type: jira\n    url: {url}\n    token: " + JIRA_TOKEN + "\n"
    "    default_groups: [jira-software-users]\n" + GROUP_RULES,
    "confluence": "  confluence:\n    type: confluence\n    url: {url}\n    token: " + WIKI_TOKEN + "\n"
    "    default_groups: [confluence-users]\n" + GROUP_RULES,
    "cloud": "  cloud:\n    type: atlassian-cloud\n    url: {url}\n    token: "
    + CLOUD_TOKEN
    + "\n"
    + GROUP_RULES,
}
DEFAULT_GROUPS = {"jira": ("jira-software-users",), "confluence": ("confluence-users",), "cloud": ()}


@dataclass(frozen=True)
class Bare:
    """What the bare ``requests`` loop asks a system for: a small answer and a full page."""

    headers: dict[str, str]
    small: str  # path + query
    page: str


@dataclass(frozen=True)
class System:
    """One simulated system of the benchmark."""

    kind: str
    label: str
    build: Callable[[int], Any]  # size -> simulator
    seed: Callable[[Any, Sequence[Person]], dict[str, str]]  # converged; returns source id -> account id
    endpoints: tuple[tuple[re.Pattern[str], str], ...]  # raw path -> endpoint label
    bare: Bare
    base_path: str = ""  # appended to the server URL in the config

    def endpoint(self, path: str) -> str:
        """Return the endpoint label of a logged path (ids and names replaced by placeholders)."""
        for pattern, label in self.endpoints:
            path = pattern.sub(label, path)
        return path


def _jira_seed(sim: JiraSim, people: Sequence[Person]) -> dict[str, str]:
    sim.add_group(OWNER)
    for name in sorted({g for p in people for g in p.groups}):
        sim.add_group(name)
    return {
        p.id: sim.add_user(
            p.username, p.email, p.display_name, groups=("jira-software-users", OWNER, *p.groups)
        )
        for p in people
        if p.active
    }


def _wiki_seed(sim: ConfluenceSim, people: Sequence[Person]) -> dict[str, str]:
    sim.add_group(OWNER)
    for name in sorted({g for p in people for g in p.groups}):
        sim.add_group(name)
    return {
        p.id: sim.add_user(p.username, p.email, p.display_name, groups=("confluence-users", OWNER, *p.groups))
        for p in people
        if p.active
    }


def _cloud_seed(sim: AtlassianCloudSim, people: Sequence[Person]) -> dict[str, str]:
    links: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for p in people:
        if p.active:
            links[p.id] = sim.add_user(p.username, p.email, p.display_name, external_id=p.id)
            for group in p.groups:
                members.setdefault(group, []).append(p.username)
    for name in sorted(members):  # one set of members per group, not one copy per member
        sim.add_group(name, members=members[name])
    return links


def _okta_seed(sim: OktaSim, people: Sequence[Person]) -> dict[str, str]:
    ids = {name: sim.add_group(name) for name in sorted({g for p in people for g in p.groups})}
    for p in people:
        status = "ACTIVE" if p.active else "DEPROVISIONED"
        sim.add_user(p.email, p.email, p.first_name, p.last_name, id=p.id, status=status)
        for group in p.groups:
            sim.add_member(ids[group], p.id)
    return {}


def _patterns(*pairs: tuple[str, str]) -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(p), label) for p, label in pairs)


SYSTEMS: dict[str, System] = {
    "jira": System(
        "jira",
        "Jira DC 10.3",
        lambda size: JiraSim(version=JIRA_VERSION, token=JIRA_TOKEN),
        _jira_seed,
        _patterns((r"/applicationrole/[^/]+$", "/applicationrole/{key}")),
        Bare(
            {"Authorization": f"Bearer {JIRA_TOKEN}"},
            "/rest/api/2/myself",
            "/rest/api/2/group/member?groupname=jira-software-users&includeInactiveUsers=true&maxResults=50",
        ),
    ),
    "confluence": System(
        "confluence",
        "Confluence DC 10.2",
        lambda size: ConfluenceSim(CONFLUENCE_VERSION, token=WIKI_TOKEN),
        _wiki_seed,
        _patterns(
            (r"^/rest/api/user/[^/]+/group/[^/]+$", "/rest/api/user/{username}/group/{group}"),
            (r"^/rest/api/admin/user/[^/]+", "/rest/api/admin/user/{username}"),
            (r"^/rest/api/admin/group/[^/]+$", "/rest/api/admin/group/{group}"),
            (r"^/rest/api/group/[^/]+/member$", "/rest/api/group/{group}/member"),
            (r"^/rest/api/group/(?!\{)[^/]+$", "/rest/api/group/{group}"),
            (r"^/rest/api/longtask/[^/]+$", "/rest/api/longtask/{id}"),
        ),
        Bare(
            {"Authorization": f"Bearer {WIKI_TOKEN}"},
            "/rest/api/user/current",
            "/rest/api/group/confluence-users/member?limit=200",
        ),
    ),
    "cloud": System(
        "cloud",
        "Atlassian Cloud SCIM",
        lambda size: AtlassianCloudSim(directory_id=DIRECTORY, token=CLOUD_TOKEN, max_users=2 * size + 1000),
        _cloud_seed,
        _patterns(
            (r"^/scim/directory/[^/]+", ""),
            (r"^/(Users|Groups)/[^/]+$", r"/\1/{id}"),
        ),
        Bare(
            {"Authorization": f"Bearer {CLOUD_TOKEN}"},
            f"/scim/directory/{DIRECTORY}/ServiceProviderConfig",
            f"/scim/directory/{DIRECTORY}/Users?startIndex=1&count=100",
        ),
        base_path=f"/scim/directory/{DIRECTORY}",
    ),
    "okta": System(
        "okta",
        "Okta",
        lambda size: OktaSim(token=OKTA_TOKEN, rate_limits=None),
        _okta_seed,
        _patterns((r"^/api/v1/(users|groups)/(?!\{)[^/]+", r"/api/v1/\1/{id}")),
        Bare({"Authorization": f"SSWS {OKTA_TOKEN}"}, "/api/v1/users/me", "/api/v1/users?limit=200"),
    ),
}
TARGETS = ("jira", "confluence", "cloud")
SOURCES = ("file", "okta")


def rule_groups(people: Sequence[Person]) -> dict[str, tuple[str, ...]]:
    """Return what a run that provisioned ``people`` remembers its rules produced."""
    groups = sorted({g for p in people for g in p.groups})
    return {
        memory: tuple(g for g in groups if g.startswith(prefix)) for prefix, memory in RULE_MEMORY.items()
    }


def source_block(source: str, *, path: str = "", url: str = "") -> str:
    """Return the ``source:`` entry of the config."""
    if source == "okta":
        return f"source: {{type: okta, url: {url}, token: {OKTA_TOKEN}}}\n"
    return f"source: {{type: file, path: {path}}}\n"


def config_text(
    source: str, target: str, url: str, *, concurrency: int, source_path: str = "", source_url: str = ""
) -> str:
    """Return a whole config: one source, one target, the benchmark's mapping and policy."""
    return (
        "version: 1\n" + source_block(source, path=source_path, url=source_url) + "mapping:\n"
        '  username: "{{ user.email | localpart | lower }}"\n'
        '  email: "{{ user.email | lower }}"\n'
        '  display_name: "{{ user.first_name }} {{ user.last_name }}"\n'
        "targets:\n"
        + TARGET_BLOCKS[target].format(url=url)
        + 'policy: {max_deactivations: "5%"}\n'
        + f"http: {{concurrency: {concurrency}}}\n"
        + "audit_log: null\n"
        + "state_file: state.json\n"
    )
