"""The okta source's incremental mode against the Okta simulator over loopback (idp-apis §1.7).

The oracle is a plain full read of the same simulator by a source without ``incremental``,
compared field by field; the only difference allowed is the one the module documents: a
user deleted after the snapshot saw it inactive stays there, inactive and in no group.
The simulator's clock runs an hour behind for the seed, so that the seed is older than any
read's START and only the churn made after a read is "changed since".
"""

from __future__ import annotations

import json
import logging
import random
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import scimsync.http.client
from scimsync.config import OktaSourceConfig, load_config
from scimsync.errors import ConfigError
from scimsync.http import HttpSettings
from scimsync.models import SourceDirectory
from scimsync.sim.okta import OktaSim
from scimsync.sim.okta_common import INVALID_SEARCH, OktaError
from scimsync.sim.server import SimServer
from scimsync.sources import build_source
from scimsync.sources.okta import OktaSource
from scimsync.sources.okta_incremental import snapshot_path

TOKEN = "sim-okta-token"
USERS = "/api/v1/users"
GROUPS = "/api/v1/groups"
PAGE = 10  # the simulator's page: several pages in every list


@pytest.fixture(autouse=True)
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the HTTP layer's waits instead of sleeping."""
    waits: list[float] = []
    monkeypatch.setattr(scimsync.http.client, "_sleep", waits.append)
    return waits


class Org:
    """A simulated org seeded an hour ago, served over loopback; ``churn`` happens now."""

    def __init__(self, seed: int, people: int = 45, teams: int = 8) -> None:
        self.rng = random.Random(seed)
        self.shift = -3600.0
        self.sim = OktaSim(max_page=PAGE, rate_limits=None, clock=lambda: time.time() + self.shift)
        self.teams = [self.sim.add_group(f"team-{n}") for n in range(teams)]
        self.serial = 0
        for _ in range(people):
            self.join()
        self.deleted: set[str] = set()
        self.inactive: set[str] = set()
        self.shift = 0.0

    def join(self) -> str:
        self.serial += 1
        teams = self.rng.sample(self.teams, self.rng.randint(0, 3))
        return self.sim.add_user(f"p{self.serial:03d}@acme.test", groups=teams)

    def live(self) -> list[str]:
        return sorted(self.sim.directory.users)

    def churn(self) -> None:
        """Joiners, leavers, renames, membership moves, group renames and deletes, a deleted user."""
        rng, sim = self.rng, self.sim
        for _ in range(rng.randint(0, 3)):
            self.join()
        users = self.live()
        for uid in rng.sample(users, 2):
            sim.set_status(uid, "DEPROVISIONED")  # leavers
        for uid in rng.sample(users, 2):
            sim.update_profile(uid, lastName=f"Renamed{rng.randint(0, 999)}", department="Moved")
        for uid in rng.sample(users, 3):  # movers
            team = rng.choice(self.teams)
            if uid in sim.directory.groups[team].members:
                sim.remove_member(team, uid)
            else:
                sim.add_member(team, uid)
        # Deactivated in an earlier round: the last read saw it inactive (a user deactivated and
        # deleted between two reads makes a full read, test_a_user_deactivated_and_deleted...).
        gone = sorted(self.inactive)
        if gone and rng.random() < 0.7:
            uid = rng.choice(gone)
            self.inactive.discard(uid)
            if rng.random() < 0.5:
                sim.set_status(uid, "ACTIVE")  # rehired
            else:
                sim.delete_user(uid)  # an inactive user deleted
                self.deleted.add(uid)
        if rng.random() < 0.5:
            sim.rename_group(rng.choice(self.teams), f"renamed-{rng.randint(0, 999)}")
        if rng.random() < 0.3 and len(self.teams) > 2:
            team = rng.choice(self.teams)
            self.teams.remove(team)
            sim.delete_group(team)
        if rng.random() < 0.3:
            self.teams.append(sim.add_group(f"new-{rng.randint(0, 999)}", members=rng.sample(users, 3)))
        self.inactive = {u for u, user in sim.directory.users.items() if user.status == "DEPROVISIONED"}


@pytest.fixture
def served() -> Iterator[tuple[Org, str]]:
    org = Org(0)
    with SimServer(org.sim.app) as server:
        yield org, server.url


def source(url: str, snapshot: Path | None, *, concurrency: int = 4, full_every: str = "24h") -> OktaSource:
    keys: dict[str, Any] = {"incremental": {"full_every": full_every}} if snapshot is not None else {}
    config = OktaSourceConfig.model_validate({"type": "okta", "url": url, "token": TOKEN, **keys})
    settings = HttpSettings(retries=2, timeout=10, concurrency=concurrency)
    return OktaSource("source", config, settings, snapshot_file=snapshot)


def read(url: str, snapshot: Path | None, **keys: Any) -> SourceDirectory:
    src = source(url, snapshot, **keys)
    try:
        return src.read()
    finally:
        src.close()


def assert_same(incremental: SourceDirectory, full: SourceDirectory, deleted: set[str]) -> None:
    """Compare field by field; a deleted user may stay only as inactive and in no group."""
    mine = {u.id: u for u in incremental.users}
    theirs = {u.id: u for u in full.users}
    for uid in set(mine) - set(theirs):
        assert uid in deleted and not mine[uid].active and mine[uid].groups == (), mine[uid]
    assert set(theirs) <= set(mine), "a present user is missing"
    for uid, expected in theirs.items():
        got = mine[uid]
        assert got == expected, (got, expected)  # every field but attributes
        assert dict(got.attributes) == dict(expected.attributes), uid
    assert group_rows(incremental) == group_rows(full)


def group_rows(directory: SourceDirectory) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted((g.id, g.name, g.member_ids) for g in directory.groups)


def member_list_reads(sim: OktaSim) -> int:
    return sum(1 for e in sim.log.entries if e.path.startswith(f"{GROUPS}/") and e.path.endswith("/users"))


# --- equal to a full read ---------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("seed", range(6))
def test_after_random_churn_an_incremental_read_equals_a_full_read(
    tmp_path: Path, seed: int, concurrency: int
) -> None:
    org = Org(seed)
    snapshot = snapshot_path(tmp_path / "state.json")
    with SimServer(org.sim.app) as server:
        first = read(server.url, snapshot, concurrency=concurrency)
        assert_same(first, read(server.url, None), set())
        for _ in range(4):
            org.churn()
            org.sim.log.clear()
            got = read(server.url, snapshot, concurrency=concurrency)
            changed = [e for e in org.sim.log.entries if e.path == USERS]
            assert changed and all(e.query.get("filter", "").startswith("lastUpdated ge") for e in changed), (
                "read incrementally, not in full"
            )
            assert_same(got, read(server.url, None), org.deleted)


def test_a_user_deactivated_and_deleted_between_two_reads_makes_a_full_read(
    tmp_path: Path, served: tuple[Org, str], caplog: pytest.LogCaptureFixture
) -> None:
    org, url = served
    snapshot = snapshot_path(tmp_path / "state.json")
    read(url, snapshot)
    victim = org.live()[5]
    org.sim.set_status(victim, "DEPROVISIONED")
    org.sim.delete_user(victim)  # never seen inactive: the snapshot holds the user as active
    with caplog.at_level(logging.INFO, logger="scimsync.sources.okta"):
        got = read(url, snapshot)
    assert victim not in {u.id for u in got.users}
    assert "full read of the Okta org: 1 active user(s) left Everyone" in caplog.text
    assert_same(got, read(url, None), set())


def test_a_present_person_stays_present_and_active_through_reads_without_changes(
    tmp_path: Path, served: tuple[Org, str]
) -> None:
    _, url = served
    snapshot = snapshot_path(tmp_path / "state.json")
    first = read(url, snapshot)
    for _ in range(3):
        again = read(url, snapshot)
        assert {(u.id, u.active, u.groups) for u in again.users} == {
            (u.id, u.active, u.groups) for u in first.users
        }


# --- cost ---------------------------------------------------------------------------------


def test_an_incremental_read_without_changes_reads_one_page_of_changes_and_the_group_list(
    tmp_path: Path, served: tuple[Org, str]
) -> None:
    org, url = served
    snapshot = snapshot_path(tmp_path / "state.json")
    read(url, snapshot)
    full = len(org.sim.log.entries)
    org.sim.log.clear()
    read(url, snapshot)
    entries = org.sim.log.entries
    group_pages = -(-(len(org.sim.directory.groups)) // PAGE)  # 9 groups with Everyone: 1 page
    assert [e.path for e in entries if e.path == USERS] == [USERS]  # the (empty) change list
    assert sum(1 for e in entries if e.path == GROUPS) == group_pages
    assert member_list_reads(org.sim) == 0
    assert len(entries) == 1 + group_pages < full / 5


def test_a_membership_change_rereads_that_group_only(tmp_path: Path, served: tuple[Org, str]) -> None:
    org, url = served
    snapshot = snapshot_path(tmp_path / "state.json")
    read(url, snapshot)
    someone = org.live()[0]
    team = next(t for t in org.teams if someone not in org.sim.directory.groups[t].members)
    org.sim.add_member(team, someone)
    org.sim.log.clear()
    got = read(url, snapshot)
    reread = {e.path for e in org.sim.log.entries if e.path.endswith("/users") and e.path != USERS}
    assert reread == {f"{GROUPS}/{team}/users"}
    name = org.sim.directory.groups[team].name
    assert name in next(u for u in got.users if u.id == someone).groups


# --- fallbacks ----------------------------------------------------------------------------


def full_read_happened(org: Org) -> bool:
    """A full read lists every team's members; an incremental one none here."""
    return member_list_reads(org.sim) >= len(org.teams)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda body: "{not json", "is damaged or of another version"),
        (lambda body: json.dumps({**body, "format": 99}), "is damaged or of another version"),
        (lambda body: json.dumps({**body, "users": [{"id": 1}]}), "is damaged or of another version"),
        (lambda body: json.dumps({**body, "org": "https://other.okta.test"}), "is of another org"),
        (lambda body: json.dumps({**body, "full_at": body["full_at"] - 86401}), "h old (full_every)"),
        (lambda body: json.dumps({**body, "full_at": body["full_at"] + 3600}), "h old (full_every)"),
    ],
)
def test_an_odd_snapshot_makes_a_full_read_saying_why(
    tmp_path: Path,
    served: tuple[Org, str],
    caplog: pytest.LogCaptureFixture,
    damage: Any,
    why: str,
) -> None:
    org, url = served
    snapshot = snapshot_path(tmp_path / "state.json")
    expected = read(url, snapshot)
    snapshot.write_text(damage(json.loads(snapshot.read_text())))
    org.sim.log.clear()
    with caplog.at_level(logging.INFO, logger="scimsync.sources.okta"):
        got = read(url, snapshot)
    assert full_read_happened(org)
    assert "source: full read of the Okta org: " in caplog.text and why in caplog.text
    assert_same(got, expected, set())
    org.sim.log.clear()
    read(url, snapshot)  # the full read wrote a good snapshot again
    assert not full_read_happened(org)


def test_no_snapshot_makes_a_full_read(tmp_path: Path, served: tuple[Org, str]) -> None:
    org, url = served
    snapshot = snapshot_path(tmp_path / "state.json")
    read(url, snapshot)
    assert full_read_happened(org) and snapshot.exists()


def test_a_refused_change_filter_makes_a_full_read(
    tmp_path: Path, served: tuple[Org, str], caplog: pytest.LogCaptureFixture
) -> None:
    org, url = served
    snapshot = snapshot_path(tmp_path / "state.json")
    read(url, snapshot)

    def refuse(path: str, query: Any) -> None:
        if path == USERS and query.get("filter", "").startswith("lastUpdated ge"):
            raise OktaError(400, INVALID_SEARCH, causes=["filter: not supported"])

    org.sim.on_request(refuse)
    org.churn()
    org.sim.log.clear()
    with caplog.at_level(logging.INFO, logger="scimsync.sources.okta"):
        got = read(url, snapshot)
    assert "full read of the Okta org: the org refused the lastUpdated filter" in caplog.text
    assert full_read_happened(org)
    assert_same(got, read(url, None), set())


def test_without_the_everyone_group_every_read_is_full(tmp_path: Path) -> None:
    sim = OktaSim(max_page=PAGE, everyone=False, rate_limits=None)
    for n in range(12):
        sim.add_user(f"u{n}@acme.test", groups=["team"])
    snapshot = snapshot_path(tmp_path / "state.json")
    with SimServer(sim.app) as server:
        read(server.url, snapshot)
        sim.log.clear()
        read(server.url, snapshot)
    assert sim.log.count("GET", f"{GROUPS}/{sim.directory.find_group('team').id}/users") == 1  # type: ignore[union-attr]


# --- the snapshot file --------------------------------------------------------------------


def test_the_snapshot_is_private_and_holds_no_token(tmp_path: Path, served: tuple[Org, str]) -> None:
    _, url = served
    state = tmp_path / "state.json"
    snapshot = snapshot_path(state)
    assert snapshot == tmp_path / "state.json.okta.json"
    read(url, snapshot)
    read(url, snapshot)  # rewritten by an incremental read
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    text = snapshot.read_text()
    assert TOKEN not in text and "SSWS" not in text and "credentials" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json.okta.json"]  # no temp left


def test_a_snapshot_that_cannot_be_written_does_not_fail_the_read(
    tmp_path: Path, served: tuple[Org, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = served
    snapshot = snapshot_path(tmp_path / "missing-folder" / "state.json")
    with caplog.at_level(logging.WARNING, logger="scimsync.sources.okta"):
        got = read(url, snapshot)
    assert_same(got, read(url, None), set())
    assert f"the snapshot {snapshot} was not written" in caplog.text


# --- config -------------------------------------------------------------------------------


def test_incremental_is_off_by_default_and_full_every_is_a_duration() -> None:
    base = {"type": "okta", "url": "https://acme.okta.test", "token": TOKEN}
    assert OktaSourceConfig.model_validate(base).incremental is None
    every = {"7d": 604800.0, "24h": 86400.0, "30m": 1800.0, "90s": 90.0}
    for text, seconds in every.items():
        config = OktaSourceConfig.model_validate({**base, "incremental": {"full_every": text}})
        assert config.incremental is not None and config.incremental.full_every == seconds
    assert OktaSourceConfig.model_validate({**base, "incremental": {}}).incremental.full_every == 86400.0  # type: ignore[union-attr]
    for bad in ("soon", "0h", "24", "1.5h", 24, "-1d"):
        with pytest.raises(ValueError, match="must be a duration such as 30m, 24h or 7d"):
            OktaSourceConfig.model_validate({**base, "incremental": {"full_every": bad}})
    with pytest.raises(ValueError, match="cannot be combined with include_groups"):
        OktaSourceConfig.model_validate({**base, "incremental": {}, "include_groups": ["team-*"]})


def test_incremental_without_a_state_file_is_refused() -> None:
    config = OktaSourceConfig.model_validate(
        {"type": "okta", "url": "https://acme.okta.test", "token": TOKEN, "incremental": {}}
    )
    with pytest.raises(ConfigError, match=r"source\.incremental: needs state_file"):
        OktaSource("source", config, HttpSettings())


# --- from the config file --------------------------------------------------------------


def _config_file(tmp_path: Path, url: str, state_file: str) -> Path:
    path = tmp_path / "scimsync.yaml"
    path.write_text(
        f"""version: 1
source:
  type: okta
  url: {url}
  token: {TOKEN}
  incremental: {{full_every: 24h}}
targets:
  jira: {{type: jira, url: "https://jira.acme.test", token: jira-token-0123}}
state_file: {state_file}
""",
        encoding="utf-8",
    )
    return path


def test_a_config_with_incremental_keeps_the_snapshot_beside_the_state_file(
    tmp_path: Path, served: tuple[Org, str]
) -> None:
    org, url = served
    config = load_config(_config_file(tmp_path, url, "links.json"))
    for _ in range(2):
        source = build_source(config)
        try:
            source.read()
        finally:
            source.close()
    assert snapshot_path(tmp_path / "links.json") == tmp_path / "links.json.okta.json"
    assert (tmp_path / "links.json.okta.json").exists(), "the first read wrote the snapshot"
    org.sim.log.clear()
    source = build_source(config)
    try:
        source.read()
    finally:
        source.close()
    assert member_list_reads(org.sim) == 0, "the third read is incremental: no member list read"


def test_a_config_with_incremental_and_no_state_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"source\.incremental: needs state_file"):
        load_config(_config_file(tmp_path, "https://acme.okta.test", "null"))
