"""What a run has to do, and the fewest requests and round trips the APIs allow for it.

Written apart from the engine, from the company and the page-size limits of the reference
docs (``../shared/reference/``): the benchmark compares the product against these numbers,
so they must not come from the product. ``work`` diffs a target's state (as seeded) with
the company; ``fewest`` turns the work into requests, phase by phase. A phase is a set of
requests that can only start when the one before has ended (the plan needs every read;
SPEC §6 orders the kinds of write); inside a phase, ``chain`` is the longest run of
requests that must go one after the other (a cursor, or a page that gives the total the
other pages need). The round-trip limit of a phase is ``max(chain, requests / C) x RTT``;
a run's is the sum over its phases.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from scimsync.sim.bench_company import GROUPS, Person
from scimsync.sim.bench_systems import DEFAULT_GROUPS, OWNER

JIRA_USER_PAGE = 2000  # §1.7: /user/list maxResults (default and most)
JIRA_MEMBER_PAGE = 50  # §1.8: /group/member
WIKI_PAGE = 200  # §2.6: /user/list and /group/{g}/member, at most 200
SCIM_PAGE = 100  # §3.4, §3.9: count <= 100
OKTA_PAGE = 200  # idp-apis §1.4-§1.6: users, groups and members, 200 a page
# Who the simulators start with (the administrator scimsync signs in as), and their groups.
STOCK = {
    "jira": ({"admin": ("jira-administrators", "jira-software-users")}, ("jira-core-users",)),
    "confluence": ({"admin": ("confluence-users", "confluence-administrators")}, ()),
    "cloud": ({}, ()),
}
# The group the target itself puts a new user in (so the membership costs no write):
# Jira's default application role (§1.3, §1.9), Confluence's default group (§2.4 [U]).
CREATION_GROUPS = {"jira": "jira-software-users", "confluence": "confluence-users"}
KINDS = (
    "create_group",
    "create_user",
    "reactivate_user",
    "update_user",
    "add_member",
    "remove_member",
    "deactivate_user",
)


@dataclass(frozen=True)
class Account:
    """An account as a target holds it."""

    username: str
    email: str
    display: str
    active: bool
    groups: frozenset[str]


@dataclass
class TargetState:
    """A target's accounts (by source id; stock accounts by username) and groups."""

    accounts: dict[str, Account]
    groups: set[str]


@dataclass
class Work:
    """The operations a run has to carry out on one target, by kind (SPEC §6 names)."""

    ops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    free_adds: int = 0  # memberships the target gives a new user by itself
    changed_groups: set[str] = field(default_factory=set)  # groups whose members change
    new_groups: set[str] = field(default_factory=set)
    both: int = 0  # users both reactivated and updated


@dataclass(frozen=True)
class Phase:
    """Requests that can start together; ``chain`` of them must go one after the other."""

    name: str
    requests: int
    chain: int
    formula: str

    def seconds(self, concurrency: int, rtt: float) -> float:
        """Return this phase's round-trip limit."""
        if self.requests == 0:
            return 0.0
        return max(self.chain, self.requests / concurrency) * rtt


def pages(count: int, size: int) -> int:
    """Return the requests a paged list of ``count`` items takes (an empty list is one page)."""
    return max(1, math.ceil(count / size))


def okta_pages(count: int) -> int:
    """Return the requests an Okta list takes: a full page links to a next one, maybe empty (§1.3)."""
    return count // OKTA_PAGE + 1


def managed(kind: str, people: Iterable[Person], remembered: Iterable[str] = ()) -> set[str]:
    """Return the managed groups: default groups, owner group, every group a rule produces or
    produced before (the state file remembers those, SPEC §5)."""
    extra = {OWNER} if kind != "cloud" else set()
    produced = {g for p in people for g in p.groups if g in GROUPS}
    return set(DEFAULT_GROUPS[kind]) | extra | produced | set(remembered)


def wanted_groups(kind: str, person: Person) -> frozenset[str]:
    """Return the managed groups an active person's account should be in."""
    extra = (OWNER,) if kind != "cloud" else ()
    return frozenset((*DEFAULT_GROUPS[kind], *extra, *person.groups))


def seeded(kind: str, people: Sequence[Person] | None) -> TargetState:
    """Return the state a target is seeded with: stock only (None), or converged for ``people``."""
    users, extra_groups = STOCK[kind]
    accounts = {
        name: Account(name, f"{name}@example.test", "Administrator", True, frozenset(groups))
        for name, groups in users.items()
    }
    groups = {g for gs in users.values() for g in gs} | set(extra_groups)
    if people is not None:
        for p in people:
            if p.active:
                accounts[p.id] = Account(p.username, p.email, p.display_name, True, wanted_groups(kind, p))
        groups |= managed(kind, people)
    return TargetState(accounts, groups)


def work(kind: str, before: TargetState, people: Sequence[Person], remembered: Iterable[str] = ()) -> Work:
    """Diff ``before`` with the company ``people`` (accounts linked by source id, SPEC §5)."""
    done = Work()
    scope = managed(kind, people, remembered)
    done.new_groups = scope - before.groups
    done.ops["create_group"] = len(done.new_groups)
    for p in people:
        have = before.accounts.get(p.id)
        if not p.active:
            if have is not None and have.active:
                done.ops["deactivate_user"] += 1
                gone = (have.groups & scope) - {OWNER}  # the owner marker stays (SPEC §5)
                done.ops["remove_member"] += len(gone)
                done.changed_groups |= gone
            continue
        want = wanted_groups(kind, p)
        if have is None:
            done.ops["create_user"] += 1
            free = CREATION_GROUPS.get(kind)
            done.free_adds += int(free in want)
            done.ops["add_member"] += len(want)
            done.changed_groups |= want
            continue
        fields = [have.email != p.email, have.display != p.display_name]
        if kind != "confluence":  # §2.5: no rename over Confluence REST: a username change cannot be made
            fields.append(have.username != p.username)
        updated = any(fields)
        done.ops["update_user"] += updated
        done.ops["reactivate_user"] += not have.active
        done.both += updated and not have.active
        adds, removes = want - have.groups, (have.groups & scope) - want
        done.ops["add_member"] += len(adds)
        done.ops["remove_member"] += len(removes)
        done.changed_groups |= adds | removes
    return done


def _sizes(state: TargetState) -> dict[str, int]:
    sizes = dict.fromkeys(state.groups, 0)
    for account in state.accounts.values():
        for group in account.groups:
            sizes[group] = sizes.get(group, 0) + 1
    return sizes


def read_phase(
    kind: str, before: TargetState, people: Sequence[Person], todo: Work, remembered: Iterable[str] = ()
) -> Phase:
    """Return the fewest reads that give a complete plan."""
    users, sizes, scope = len(before.accounts), _sizes(before), sorted(managed(kind, people, remembered))
    if kind == "jira":
        member = [pages(sizes[g], JIRA_MEMBER_PAGE) if g in sizes else 1 for g in scope]
        roles = int(todo.ops["create_user"] > 0)
        listed = pages(users, JIRA_USER_PAGE)
        chain = max(listed, 2 if max(member) > 1 else 1)
        formula = (
            f"1 serverInfo + ceil(users / {JIRA_USER_PAGE}) /user/list (a cursor: a chain) "
            f"+ for each managed group ceil(members / {JIRA_MEMBER_PAGE}) /group/member, inactive members "
            "included (the first page gives the total, the rest go in parallel; a missing group: one 404)"
            + (
                " + 1 /applicationrole when someone is created (the groups Jira gives a new user)"
                if roles
                else ""
            )
        )
        return Phase("read", 1 + listed + sum(member) + roles, chain, formula)
    if kind == "confluence":
        member = [pages(sizes[g], WIKI_PAGE) if g in sizes else 1 for g in scope]
        listed = pages(users, WIKI_PAGE)
        formula = (
            f"1 manifest + ceil(users / {WIKI_PAGE}) /user/list + for each managed group "
            f"ceil(members / {WIKI_PAGE}) /group/{{g}}/member; no totals, so every list is a chain of "
            "next links (the longest list is the chain)"
        )
        return Phase("read", 1 + listed + sum(member), max(listed, *member), formula)
    groups = len(before.groups)
    listed, grouped = pages(users, SCIM_PAGE), pages(groups, SCIM_PAGE)
    formula = (
        f"ceil(users / {SCIM_PAGE}) /Users + ceil(groups / {SCIM_PAGE}) /Groups (members embedded); "
        "totalResults comes with the first page, the other pages go in parallel; discovery "
        "(/ServiceProviderConfig, /Schemas) is not needed: the target type says what Atlassian supports"
    )
    return Phase("read", listed + grouped, 2 if max(listed, grouped) > 1 else 1, formula)


def write_phase(kind: str, todo: Work) -> Phase:
    """Return the fewest writes for ``todo``; the chain is its number of SPEC §6 kinds."""
    ops = todo.ops
    if kind == "cloud":
        users = ops["create_user"] + ops["update_user"] + ops["reactivate_user"] - todo.both
        users += ops["deactivate_user"]
        groups = len(todo.changed_groups | todo.new_groups)
        formula = (
            "1 POST /Users per new user, 1 PATCH /Users per changed, reactivated or deactivated user; "
            "1 request per group whose members change: POST /Groups with its members for a new group, "
            "one PATCH /Groups with every add and remove for an existing one (§3.7; no cap on the "
            "operations of a PATCH is documented). In apply's order (groups before users) a new "
            "group costs one more request: an empty POST, then a PATCH"
        )
        chain = int(users > 0) + int(groups > 0)
        return Phase("write", users + groups, chain, formula)
    merged = todo.both if kind == "jira" else 0  # Jira: one PUT /user both reactivates and updates
    adds = ops["add_member"] - todo.free_adds
    total = sum(ops.values()) - ops["add_member"] + adds - merged
    free = CREATION_GROUPS[kind]
    formula = (
        "1 request per group created, user created, updated, reactivated or deactivated, and per "
        f"membership added or removed (no bulk membership API); a new user's {free} membership is free "
        "(the target adds it itself)"
        + ("; one PUT /user both reactivates and updates" if kind == "jira" else "")
    )
    chain = sum(1 for k in ("create_group", "update_user", "remove_member", "deactivate_user") if ops[k])
    chain += int(ops["create_user"] + ops["reactivate_user"] > 0) + int(adds > 0)
    return Phase("write", total, chain, formula)


def source_phase(people: Sequence[Person]) -> Phase:
    """Return the fewest reads of an Okta org holding ``people`` (idp-apis §1.4-§1.6)."""
    listed = sum(1 for p in people if p.active)
    sizes: dict[str, int] = {}
    for p in people:
        for g in p.groups:
            sizes[g] = sizes.get(g, 0) + 1
    member = [okta_pages(n) for n in sizes.values()]
    users, gone = okta_pages(listed), okta_pages(len(people) - listed)
    grouped = okta_pages(len(sizes) + 1)  # the rule groups and Everyone
    formula = (
        f"floor(users / {OKTA_PAGE}) + 1 /users, the same for the deprovisioned (a filter), for /groups, "
        f"and for the members of each group a rule uses (Everyone's are not needed); every list a "
        "cursor chain, and a full page always has a next link (§1.3), hence the + 1"
    )
    return Phase("source", users + gone + grouped + sum(member), max(users, grouped + max(member)), formula)
