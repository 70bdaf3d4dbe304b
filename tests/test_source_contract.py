"""The behaviour every source must show against its real system (one suite, every source).

Each test seeds a directory described neutrally (source_harness.Seed) through the source's
harness, reads it through scimsync (the config parser and the source registry, or the CLI),
and compares what was read with a model this module computes from the description itself:
its own walk of nested groups, its own scoping rule, its own table of target group names.
Sources come from source_harness.HARNESSES; a new source joins by adding a harness.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from slapd import slapd_fixture  # noqa: F401 (the session fixture `slapd`, for the ldap harness)
from source_harness import (
    AUTH,
    CYCLES,
    FAILING_PAGE,
    HARNESSES,
    NESTING,
    RATE_LIMIT,
    TOKEN_EXPIRY,
    Person,
    Seed,
    SourceHarness,
    Team,
    scim2_server_fixture,  # noqa: F401 (the session fixture `scim2_server`, for the scim harness)
)

import scimsync.http
from scimsync.cli import cli
from scimsync.config import Config, parse_config
from scimsync.errors import AuthError, ConnectorError
from scimsync.mapping import in_scope
from scimsync.models import SourceDirectory
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer
from scimsync.sources import build_source
from scimsync.targets.base import Progress, no_progress

RETRIES = 2  # http.retries: a page that keeps failing is asked 3 times
JIRA_TOKEN = "contract-jira-token"
OWNER_GROUP = "scimsync-managed"
EMPTY = "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes."

# A person as the suite compares them: email, first, last, display name, active, every group.
Row = tuple[str, str, str, str, bool, frozenset[str]]


# --- the expected model, computed here from the description ---------------------------


def flattened(seed: Seed) -> dict[str, set[str]]:
    """Return group name -> usernames in it directly or through nested groups (cycles end)."""
    direct: dict[str, set[str]] = {}
    inside: dict[str, set[str]] = {}
    for team in seed.teams:
        direct.setdefault(team.name, set()).update(team.members)
        inside.setdefault(team.name, set()).update(team.children)
        for child in team.children:
            direct.setdefault(child, set())
    for person in seed.people:
        for name in person.groups:
            direct.setdefault(name, set()).add(person.username)
    result = {}
    for name in direct:
        seen, todo, members = {name}, [name], set()
        while todo:
            current = todo.pop()
            members |= direct[current]
            for child in inside.get(current, set()) - seen:
                seen.add(child)
                todo.append(child)
        result[name] = members
    return result


def expected_people(seed: Seed) -> dict[str, Row]:
    groups = flattened(seed)
    return {
        p.username: (
            p.email,
            p.first,
            p.last,
            f"{p.first} {p.last}",
            p.active,
            frozenset(g for g, members in groups.items() if p.username in members),
        )
        for p in seed.people
    }


def expected_groups(seed: Seed) -> dict[str, set[str]]:
    """Return the groups with members (an empty group is not every source's to list)."""
    return {name: members for name, members in flattened(seed).items() if members}


def scoped(seed: Seed, include: Sequence[str], exclude: Sequence[str]) -> set[str]:
    """Return the usernames the scoping globs keep (case-insensitive, SPEC §3; inactive stay)."""

    def matches(value: str, patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)

    groups = flattened(seed)
    return {
        p.username
        for p in seed.people
        if (not include or any(matches(g, include) for g, m in groups.items() if p.username in m))
        and not matches(p.username, exclude)
        and not matches(p.email, exclude)
    }


def read_people(directory: SourceDirectory) -> dict[str, Row]:
    ids = [u.id for u in directory.users]
    assert all(ids) and len(set(ids)) == len(ids), ids
    return {
        u.username: (u.email, u.first_name, u.last_name, u.display_name, u.active, frozenset(u.groups))
        for u in directory.users
    }


def read_groups(directory: SourceDirectory) -> dict[str, set[str]]:
    username = {u.id: u.username for u in directory.users}
    assert len({g.id for g in directory.groups}) == len(directory.groups)
    return {g.name: {username[i] for i in g.member_ids} for g in directory.groups if g.member_ids}


def assert_read_as_seeded(directory: SourceDirectory, seed: Seed) -> None:
    # Ids and attributes are each source's own: ids are only checked to be there and unique.
    assert read_people(directory) == expected_people(seed)
    assert read_groups(directory) == expected_groups(seed)


# --- reading through scimsync ----------------------------------------------------------


def config_data(block: dict[str, Any], jira_url: str = "http://127.0.0.1:9") -> dict[str, Any]:
    """Return a whole config around a source block (the Jira target is used by the CLI tests only)."""
    return {
        "version": 1,
        "source": block,
        "targets": {
            "jira": {
                "type": "jira",
                "url": jira_url,
                "token": JIRA_TOKEN,
                "groups": [{"from": "*", "to": "j-{{ group.name | slug }}"}],
                # Google's usernames are addresses (idp §3.2); the others' have no '@'.
                "mapping": {"username": "{{ user.username | localpart }}"},
            }
        },
        "audit_log": "audit.jsonl",
        "lock_file": "run.lock",
        "state_file": "state.json",
        "http": {"retries": RETRIES, "timeout": 10},
    }


class World:
    """A source harness, the folder its configs go in, and the HTTP layer's recorded waits."""

    def __init__(self, harness: SourceHarness, folder: Path, slept: list[float]) -> None:
        self.h = harness
        self.folder = folder
        self.seeded: Seed | None = None
        self.slept = slept

    def config(self, block: dict[str, Any]) -> Config:
        """Parse a config around ``block`` as the product does."""
        return parse_config(config_data(block), base_dir=self.folder, env={})

    def seed(self, seed: Seed) -> dict[str, Any]:
        """Seed the harness's system and remember the seed (to name what is read back)."""
        self.seeded = seed
        return self.h.seed(seed)

    def read(self, block: dict[str, Any], progress: Progress = no_progress) -> SourceDirectory:
        """Build the source from a parsed config through the registry, and read it.

        A source whose usernames are the people's addresses (Google, idp §3.2) says so with
        ``username_of``: what it reads is named back by the seed's usernames.
        """
        source = build_source(self.config(block))
        try:
            directory = source.read(progress=progress)
        finally:
            source.close()
        username_of = getattr(self.h, "username_of", None)
        if username_of is None or self.seeded is None:
            return directory
        back = {username_of(p): p.username for p in self.seeded.people}
        users = tuple(
            dataclasses.replace(u, username=back.get(u.username, u.username)) for u in directory.users
        )
        return dataclasses.replace(directory, users=users)

    def failure(self, block: dict[str, Any]) -> ConnectorError:
        with pytest.raises(ConnectorError) as caught:
            self.read(block)
        return caught.value

    def cli(self, block: dict[str, Any], jira_url: str, *args: str) -> Result:
        """Write scimsync.yaml around ``block`` and run the CLI on it."""
        path = self.folder / "scimsync.yaml"
        text = yaml.safe_dump(config_data(block, jira_url), sort_keys=False, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        return CliRunner().invoke(cli, ["-c", str(path), *args], catch_exceptions=False)

    def skip_unless(self, case: str) -> None:
        if case in self.h.cannot:
            pytest.skip(f"{self.h.label}: {self.h.cannot[case]}")


@pytest.fixture(params=sorted(HARNESSES))
def world(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Yield a World around each source's harness; the HTTP layer records its waits, never sleeps."""
    slept: list[float] = []
    monkeypatch.setattr(scimsync.http.client, "_sleep", slept.append)
    with HARNESSES[request.param](request, tmp_path) as harness:
        # A misspelt case in `cannot` would skip nothing and fail the case instead of naming why.
        assert set(harness.cannot) <= {NESTING, CYCLES, RATE_LIMIT, AUTH, FAILING_PAGE, TOKEN_EXPIRY}, (
            harness.cannot
        )
        yield World(harness, tmp_path, slept)


@pytest.fixture
def jira() -> Iterator[tuple[JiraSim, str]]:
    """Yield a Jira 10.3.1 simulator (token auth) and its loopback URL."""
    sim = JiraSim("10.3.1", token=JIRA_TOKEN)
    with SimServer(sim.app) as server:
        yield sim, server.url


# --- directories -----------------------------------------------------------------------


def person(username: str, *groups: str, active: bool = True, first: str = "", last: str = "") -> Person:
    return Person(
        username, f"{username}@acme.test", first or username.capitalize(), last or "Doe", active, groups
    )


def many(count: int) -> Seed:
    """Return ``count`` people in overlapping groups, every tenth inactive."""
    people = tuple(
        Person(
            f"p{i:03d}",
            f"p{i:03d}@acme.test",
            f"Given{i}",
            f"Family{i}",
            active=i % 10 != 9,
            groups=("all", "even" if i % 2 == 0 else "odd", *(("thirds",) if i % 3 == 0 else ())),
        )
        for i in range(count)
    )
    return Seed(people)


TREE = Seed(
    people=(person("amara"), person("bruno"), person("chen"), person("dora")),
    teams=(
        Team("engineering", members=("amara",), children=("platform",)),
        Team("platform", members=("bruno",), children=("sre",)),
        Team("sre", members=("chen",)),
        Team("sales", members=("dora",)),
    ),
)
NESTED = Seed(
    people=(person("amara"), person("bruno"), person("chen"), person("dora"), person("emeka"), person("fay")),
    teams=(
        Team("engineering", members=("amara",), children=("platform",)),
        Team("platform", members=("bruno",), children=("sre",)),
        Team("sre", members=("chen",)),
        Team("ring-a", members=("dora",), children=("ring-b",)),
        Team("ring-b", members=("emeka",), children=("ring-a",)),
        Team("mirror", members=("fay",), children=("mirror",)),  # a group inside itself
    ),
)


def scoping_seed(*, nested: bool) -> Seed:
    """Return a directory to scope with include ["Eng*"] and exclude ["svc-*"].

    Where the source has nesting, bruno is in engineering only through platform; a file
    lists both of his groups itself, as an HR export of a nested directory does.
    """
    people = (
        person("amara", "engineering"),
        person("bruno", *(("platform",) if nested else ("platform", "engineering"))),
        person("svc-build", "engineering"),
        Person("kim", "svc-kim@acme.test", "Kim", "Doe", groups=("engineering",)),
        person("dora", "engineering", active=False),
        person("ivan", "sales"),
        person("jin"),
    )
    teams = (Team("engineering", children=("platform",)),) if nested else ()
    return Seed(people, teams)


def e2e_seed(*, nested: bool) -> Seed:
    """Return the end-to-end directory: in scope are amara, bruno and zoe (include, exclude below)."""
    people = (
        person("amara", "engineering", first="Amara", last="Koné"),
        person("bruno", *(("platform",) if nested else ("platform", "engineering"))),
        person("zoe", "Équipe Design", first="Zoë", last="Ørsted"),
        person("dora", "engineering", active=False),
        person("svc-build", "engineering"),
        person("ivan", "sales"),
    )
    teams = (Team("engineering", children=("platform",)),) if nested else ()
    return Seed(people, teams)


E2E_INCLUDE, E2E_EXCLUDE = ["engineering", "équipe*"], ["svc-*"]
# The rule maps each source group to "j-" + its slug: written out here, not computed.
JIRA_GROUP = {"engineering": "j-engineering", "platform": "j-platform", "Équipe Design": "j-equipe-design"}


# --- the cases -------------------------------------------------------------------------


def test_a_directory_of_more_than_three_pages_is_read_whole(world: World) -> None:
    seed = many(world.h.many)
    events: list[tuple[str, int, int | None]] = []
    directory = world.read(world.seed(seed), lambda what, done, total: events.append((what, done, total)))
    assert_read_as_seeded(directory, seed)
    if world.h.page_size is not None:
        # One progress report per page of users read (the sources' progress bars).
        pages = {done for what, done, _ in events if what.rsplit(": ", 1)[-1] == "users"}
        assert len(pages) == math.ceil(world.h.many / world.h.page_size) > 3, events


def test_every_status_is_read(world: World) -> None:
    seed = Seed(
        (
            person("amara", "team-a"),
            person("bruno", "team-a", active=False),
            person("chen", active=False),
            person("dalia"),
        )
    )
    directory = world.read(world.seed(seed))
    assert {u.username: u.active for u in directory.users} == {
        "amara": True,
        "bruno": False,
        "chen": False,
        "dalia": True,
    }
    assert_read_as_seeded(directory, seed)


def _read_within(world: World, block: dict[str, Any], seconds: float = 30) -> SourceDirectory:
    done: list[SourceDirectory] = []
    reader = threading.Thread(target=lambda: done.append(world.read(block)), daemon=True)
    reader.start()
    reader.join(timeout=seconds)
    assert done, f"the read did not end within {seconds:.0f} s: a cycle of groups is walked forever"
    return done[0]


def test_nested_groups_are_flattened_into_each_person(world: World) -> None:
    world.skip_unless(NESTING)
    directory = _read_within(world, world.seed(TREE))
    groups = {u.username: set(u.groups) for u in directory.users}
    assert groups["chen"] == {"sre", "platform", "engineering"}
    assert groups["bruno"] == {"platform", "engineering"}
    assert_read_as_seeded(directory, TREE)


def test_a_cycle_of_groups_ends(world: World) -> None:
    world.skip_unless(NESTING)
    world.skip_unless(CYCLES)
    directory = _read_within(world, world.seed(NESTED))
    groups = {u.username: set(u.groups) for u in directory.users}
    assert groups["chen"] == {"sre", "platform", "engineering"}
    assert groups["dora"] == groups["emeka"] == {"ring-a", "ring-b"}
    assert groups["fay"] == {"mirror"}
    assert_read_as_seeded(directory, NESTED)


def test_a_person_in_twelve_groups_is_in_all_of_them(world: World) -> None:
    names = [f"guild-{n:02d}" for n in range(1, 13)]
    seed = Seed((person("polly", *names), person("quinn", names[0]), person("rana", names[-1])))
    directory = world.read(world.seed(seed))
    assert {u.username: len(u.groups) for u in directory.users} == {"polly": 12, "quinn": 1, "rana": 1}
    assert_read_as_seeded(directory, seed)


def test_non_ascii_names_are_read_unchanged(world: World) -> None:
    seed = Seed(
        (
            Person("józef.żółć", "jozef@acme.test", "Józef", "Żółć", groups=("Équipe Ünïcode",)),
            Person("zoë", "zoe@acme.test", "Zoë", "Ørsted", groups=("Équipe Ünïcode", "設計")),
            Person("li", "li@acme.test", "小龍", "李", groups=("設計",)),
        )
    )
    directory = world.read(world.seed(seed))
    assert {u.display_name for u in directory.users} == {"Józef Żółć", "Zoë Ørsted", "小龍 李"}
    assert_read_as_seeded(directory, seed)


def test_scoping_keeps_the_included_people_and_only_them(world: World) -> None:
    seed = scoping_seed(nested=NESTING not in world.h.cannot)
    include, exclude = ["Eng*"], ["svc-*"]
    block = {**world.seed(seed), "include_groups": include, "exclude_users": exclude}
    scope = world.config(block).source
    directory = world.read(block)
    kept = in_scope(directory, include_groups=scope.include_groups, exclude_users=scope.exclude_users)
    assert {u.username for u in kept} == scoped(seed, include, exclude) == {"amara", "bruno", "dora"}


def test_a_429_with_retry_after_is_waited_out(world: World) -> None:
    world.skip_unless(RATE_LIMIT)
    seed = many(world.h.many)
    block = world.seed(seed)
    world.h.throttle_page(retry_after=7)
    directory = world.read(block)
    assert_read_as_seeded(directory, seed)
    assert world.h.answers() == [429, 200]
    # Retry-After 7 was waited out: the hold is measured on the real clock, so on a busy
    # machine the sleep that ends it can be a little shorter than the full 7 s.
    assert any(6.5 <= s <= 7.0 for s in world.slept), world.slept


def test_a_token_that_expires_mid_read_is_refreshed_and_the_read_completes(world: World) -> None:
    # Only sources whose credential is a token that expires can show this (the OAuth IdPs).
    expire = getattr(world.h, "expire_token_after", None)
    if expire is None or TOKEN_EXPIRY in world.h.cannot:
        reason = world.h.cannot.get(TOKEN_EXPIRY, "its credential is not a token that expires")
        pytest.skip(f"{world.h.label}: {reason}")
    seed = many(world.h.many)
    block = world.seed(seed)
    expire(1)
    assert_read_as_seeded(world.read(block), seed)


def test_a_refused_credential_is_one_line_naming_the_source_and_what_to_check(world: World) -> None:
    world.skip_unless(AUTH)
    block = world.seed(Seed((person("amara", "team-a"),)))
    error = world.failure(world.h.wrong_credentials(block))
    assert isinstance(error, AuthError)
    message = str(error)
    assert message.startswith("source: ") and "\n" not in message, message
    assert world.h.check_hint in message, message


def test_a_page_that_keeps_failing_aborts_the_read_naming_the_page(world: World) -> None:
    world.skip_unless(FAILING_PAGE)
    block, page = world.h.fail_page(world.seed(many(world.h.many)))
    message = str(world.failure(block))
    assert message.startswith(f"source: {page}") and "\n" not in message, message
    if world.h.http:
        assert world.h.answers() == [502] * (RETRIES + 1)  # retried http.retries times


def test_apply_with_a_page_that_keeps_failing_exits_1_and_writes_nothing(
    world: World, jira: tuple[JiraSim, str]
) -> None:
    world.skip_unless(FAILING_PAGE)
    sim, url = jira
    block, page = world.h.fail_page(world.seed(many(world.h.many)))
    result = world.cli(block, url, "apply", "-y")
    assert result.exit_code == 1, result.output
    assert f"source: {page}" in result.output, result.output
    assert sim.log.writes() == []


def test_apply_creates_the_active_people_in_scope_with_their_groups_and_then_converges(
    world: World, jira: tuple[JiraSim, str]
) -> None:
    sim, url = jira
    seed = e2e_seed(nested=NESTING not in world.h.cannot)
    block = {**world.seed(seed), "include_groups": E2E_INCLUDE, "exclude_users": E2E_EXCLUDE}
    result = world.cli(block, url, "apply", "-y")
    assert result.exit_code == 0, result.output

    wanted = {p for p in seed.people if p.active and p.username in scoped(seed, E2E_INCLUDE, E2E_EXCLUDE)}
    groups = flattened(seed)
    created = {u.name for u in sim.directory.users.values()} - {"admin"}
    assert created == {p.username for p in wanted} == {"amara", "bruno", "zoe"}
    for p in wanted:
        bean = sim.user(p.username)
        assert bean is not None and bean["active"]
        assert (bean["emailAddress"], bean["displayName"]) == (p.email, f"{p.first} {p.last}")
        mapped = {g["name"] for g in bean["groups"]["items"] if g["name"].startswith("j-")}
        assert mapped == {JIRA_GROUP[g] for g, members in groups.items() if p.username in members}
        assert OWNER_GROUP in {g["name"] for g in bean["groups"]["items"]}

    sim.log.clear()
    again = world.cli(block, url, "plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert EMPTY in again.stdout, again.stdout
    assert sim.log.writes() == []
