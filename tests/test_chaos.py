"""Seeded chaos (issue 11 item 5): churn, faults and `kill -9` against two simulated targets.

Each round changes the company (joiners, leavers inactive or removed, returners, renames of
display name, email and username, moves, people leaving or entering the config's scope, new
unowned accounts), breaks the Jira and Atlassian Cloud simulators at random (429 storms with and
without Retry-After, 503 bursts and every-nth 503s, 500/502/504, HTML proxy pages, connections
dropped before or after the server acted, first attempts lost, truncated and late answers) and
applies; in some rounds the apply runs as `python -m scimsync ... apply -y` and is killed with
SIGKILL after a random delay or a random count of writes. After every run: nothing unowned or
protected changed, no person in scope lost an active account, no account twice, the audit log
verifies with no torn line. Then a calm run exits 0, a plan finds nothing, and the simulators
hold exactly what the source says.

SCIMSYNC_CHAOS_ROUNDS (default: a few), SCIMSYNC_CHAOS_SEED (default 1), SCIMSYNC_CHAOS_START
(first round number), SCIMSYNC_CHAOS_KEEP_GOING=1 (a failed round starts a fresh world and the
run goes on), SCIMSYNC_CHAOS_REPORT=FILE (the figures as JSON), SCIMSYNC_CHAOS_KNOWN_BUGS=1
(the churn no longer steers around the bugs pinned by the xfail tests below). A failure names
its seed and round and the command that replays its choices.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaos_support import (
    CALM_TIMEOUT,
    ENV,
    JIRA_TOKEN,
    OWNER_GROUP,
    REPO,
    Acct,
    ChaosWorld,
    FakeClock,
    JiraSide,
    Person,
    audit_problems,
    convergence,
    play,
    save_figures,
    settings,
    write_csv,
    wrong_writes,
)
from click.testing import CliRunner, Result

import scimsync.http.client
from scimsync.cli import cli
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

DEFAULT_ROUNDS = 15  # 30 to 40 s on two cores


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """In-process runs wait out Retry-After and backoff on a clock the simulators share."""
    fake = FakeClock()
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(scimsync.http.client, "_sleep", fake.sleep)
    return fake


def test_chaos_rounds(tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    seed, first, rounds, keep_going, report = settings()
    figures = None
    for figures, _failure in play(
        tmp_path, seed, first, rounds or DEFAULT_ROUNDS, clock, keep_going=keep_going
    ):
        save_figures(report, figures)
    assert figures is not None
    save_figures(report, figures)
    if rounds:  # a long run: show its figures
        with capsys.disabled():
            print(f"\nchaos: {figures.as_dict() | {'failures': len(figures.failures)}}")
    assert not figures.failures, "\n\n".join(figures.failures)


# --- the checks find what they look for ---------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[ChaosWorld]:
    """A chaos world after one calm apply: everyone in scope provisioned, accounts learnt."""
    with ExitStack() as stack:
        w = ChaosWorld(tmp_path, 1, 1, clock, stack)
        w.write(timeout=CALM_TIMEOUT, concurrency=4)
        before = w.snapshot()
        run = w.run_here("calm", "apply", "-y")
        assert run.exit_code == 0, run.output
        assert w.learn(before, w.snapshot(), w.people) == []
        yield w


def _jira(world: ChaosWorld) -> JiraSim:
    side = world.sides[0]
    assert isinstance(side, JiraSide)
    return side.sim


def _staff_in_scope(world: ChaosWorld) -> list[tuple[Person, Acct]]:
    """Return the people in scope with their Jira accounts."""
    accounts = world.snapshot()["jira"]
    people = {p.id: p for p in world.people if p.kind == "staff" and p.in_scope()}
    return [
        (people[pid], accounts[key])
        for (side, key), pid in sorted(world.owner.items())
        if side == "jira" and pid in people
    ]


def test_the_checks_see_wrong_writes(world: ChaosWorld) -> None:
    assert convergence(world, world.snapshot()) == []  # the calm run did its job
    before = world.snapshot()
    jira = _jira(world)
    (_, acct), (other, _) = _staff_in_scope(world)[:2]
    jira.update_user(acct.id, active=False)  # a person in scope deactivated
    untouchable = next(a for (side, _), a in world.frozen.items() if side == "jira" and a.username != "admin")
    jira.update_user(untouchable.id, displayName="Changed By Sync")  # an unowned account changed
    jira.add_user("twin", other.email, "Twin", groups=[OWNER_GROUP])  # a second account, same email
    problems = wrong_writes(world, before, world.snapshot(), world.people)
    text = "\n".join(problems)
    assert f"jira: {acct.username} deactivated, but its person is in scope and active" in text
    assert f"jira: untouchable account {untouchable.username} changed" in text
    assert f"jira: 2 accounts with email {other.email}" in text
    assert world.learn(before, world.snapshot(), world.people) == [
        "jira: account twin was created for nobody in scope"
    ]
    twin = next(a for a in world.snapshot()["jira"].values() if a.username == "twin")
    world.owner[("jira", twin.id)] = other.id  # as if made for `other` under an old name
    problems = wrong_writes(world, before, world.snapshot(), world.people)
    assert f"jira: person {other.id} has 2 accounts: {sorted([other.username, 'twin'])}" in problems


def test_the_checks_see_a_target_that_differs_from_the_source(world: ChaosWorld) -> None:
    jira = _jira(world)
    person, acct = _staff_in_scope(world)[0]
    group = next(g for g in acct.groups if g.startswith("jira-"))
    jira.directory.find_group(group).members.discard(acct.id)  # type: ignore[union-attr]
    i = world.people.index(person)
    world.people[i] = replace(person, active=False)  # now a leaver whose account is still active
    problems = convergence(world, world.snapshot())
    assert [p for p in problems if p.startswith(f"jira: leaver {person.username}'s account")], problems
    world.people[i] = person
    problems = convergence(world, world.snapshot())
    assert len(problems) == 1 and problems[0].startswith(f"jira: {person.username}: has"), problems
    assert group not in problems[0].split("wants")[0]


def test_the_checks_see_a_changed_or_torn_audit_log(world: ChaosWorld) -> None:
    path = world.folder / "audit.jsonl"
    assert audit_problems(path) == []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) > 3
    path.write_text("".join([*lines[:-1], lines[-1][: len(lines[-1]) // 2]]), encoding="utf-8")
    problems = audit_problems(path)
    assert problems[0] == "audit log: the last line is torn (no newline at the end)"
    assert f"does not verify after {len(lines) - 1} lines: line {len(lines)}: not JSON" in problems[1]
    path.write_text("".join([lines[0], lines[1].replace('"done"', '"failed"'), *lines[2:]]), encoding="utf-8")
    assert audit_problems(path) == [
        "audit log does not verify after 1 lines: line 2: content changed after it was written"
    ]


# --- bugs the chaos found: each pinned by a minimal test --------------------------------------


class Hold:
    """WSGI middleware: once ``trigger`` says so, hold every request until released, then answer 503.

    A held request never reaches the simulator. ``trigger(method, path, status)`` is asked before
    the app with status 0 (True: hold this request too) and after it with the answer's status.
    """

    def __init__(self, app: Any, trigger: Callable[[str, str, int], bool]) -> None:
        self.app = app
        self.trigger = trigger
        self.armed = False
        self.holding = threading.Event()
        self.released = threading.Event()

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if self.armed or self.trigger(method, path, 0):
            self.armed = True
            self.holding.set()
            self.released.wait(60)
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"errorMessages": ["held"], "errors": {}}']
        status: list[int] = []

        def start(line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(int(line.split()[0]))
            return start_response(line, headers, exc_info)

        body: Iterable[bytes] = self.app(environ, start)
        if status and self.trigger(method, path, status[0]):
            self.armed = True
        return body


def _after_a_create(method: str, path: str, status: int) -> bool:
    return (method, path, status) == ("POST", "/rest/api/2/user", 201)


def _at_a_deactivation(method: str, path: str, status: int) -> bool:
    return (method, path, status) == ("PUT", "/rest/api/2/user", 0)  # the plan has no update


class KillWorld:
    """A Jira simulator behind a Hold, a CSV source and a config: apply, or apply and be killed."""

    def __init__(self, folder: Path, trigger: Callable[[str, str, int], bool], stack: ExitStack) -> None:
        self.folder = folder
        self.sim = JiraSim(token=JIRA_TOKEN)
        self.hold = Hold(self.sim.app, lambda m, p, s: self.armable and trigger(m, p, s))
        self.armable = False
        self.side = JiraSide(self.sim, stack.enter_context(SimServer(self.hold)).url)
        self.config = folder / "scimsync.yaml"
        config = {
            "version": 1,
            "source": {"type": "file", "path": "people.csv", "include_groups": ["staff"]},
            "mapping": {"display_name": "{{ user.first_name }} {{ user.last_name }}"},
            "targets": {"jira": self.side.config()},
            "policy": {"protected_users": ["admin"], "sync_fields": ["username", "email", "display_name"]},
            "audit_log": "audit.jsonl",
            "lock_file": "run.lock",
            "state_file": "state.json",
        }
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.config.chmod(0o600)

    def run(self, people: list[Person], *args: str) -> Result:
        """Write the source and run the CLI in this process."""
        write_csv(self.folder / "people.csv", people)
        return CliRunner().invoke(cli, ["-c", str(self.config), *args])

    def apply(self, people: list[Person]) -> None:
        """Apply calmly, in this process."""
        result = self.run(people, "apply", "-y")
        assert result.exit_code == 0, result.output

    def apply_killed(self, people: list[Person]) -> None:
        """Run `python -m scimsync apply -y` and SIGKILL it at the trigger; the held requests get 503."""
        write_csv(self.folder / "people.csv", people)
        self.armable = True
        env = {**os.environ, **ENV, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "scimsync", "-c", str(self.config), "apply", "-y"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            assert self.hold.holding.wait(60), "the run never reached the kill point"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            self.armable = self.hold.armed = False
            self.hold.released.set()

    def accounts(self) -> dict[str, Acct]:
        """Every account but the administrator, by username."""
        return {a.username: a for a in self.side.accounts().values() if a.username != "admin"}


AMARA = Person("u1", "amara", "amara@acme.test", "Amara", "Kowalski", ("staff", "team-alpha"))
BRUNO = Person("u2", "bruno", "bruno@acme.test", "Bruno", "Rossi", ("staff", "team-alpha"))
CHEN = Person("u3", "chen", "chen@acme.test", "Chen", "Nakamura", ("staff", "team-beta"))


@pytest.fixture
def kill_world(tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[KillWorld]:
    """A KillWorld whose kill point is the test's parameter (default: right after a create)."""
    trigger = getattr(request, "param", _after_a_create)
    with ExitStack() as stack:
        yield KillWorld(tmp_path, trigger, stack)


@pytest.mark.xfail(
    strict=True,
    reason="a run killed after creating a Jira account and before adding the owner group leaves "
    "an account nobody owns: the person leaves, the account stays active for good",
)
def test_a_leaver_whose_account_a_killed_run_created_is_deprovisioned(kill_world: KillWorld) -> None:
    kill_world.apply([AMARA])
    kill_world.apply_killed([AMARA, BRUNO])  # killed right after Jira created bruno
    bruno = kill_world.accounts()["bruno"]
    assert bruno.active and OWNER_GROUP not in bruno.groups  # the kill point is what it should be
    kill_world.apply([AMARA])  # bruno's start was cancelled before the next run
    assert not kill_world.accounts()["bruno"].active, "the account scimsync created for bruno is active"


@pytest.mark.xfail(
    strict=True,
    reason="a run killed before it saved its links forgets the accounts it created (state.json is "
    "written only after the apply): a rename in the IdP then makes a second account",
)
@pytest.mark.parametrize(
    "kill_world",
    [_after_a_create, _at_a_deactivation],
    ids=["after-create", "before-last-phase"],
    indirect=True,
)
def test_a_person_renamed_after_a_killed_run_keeps_one_account(kill_world: KillWorld) -> None:
    kill_world.apply([AMARA, CHEN])
    kill_world.apply_killed([AMARA, BRUNO, replace(CHEN, active=False)])
    key = kill_world.accounts()["bruno"].id
    renamed = replace(BRUNO, username="bruno.rossi", email="bruno.rossi@acme.test")
    kill_world.apply([AMARA, renamed, replace(CHEN, active=False)])  # SPEC §5: an update, not a create
    accounts = kill_world.accounts()
    assert sorted(accounts) == ["amara", "bruno.rossi", "chen"], "bruno has two accounts"
    assert accounts["bruno.rossi"].id == key and accounts["bruno.rossi"].active


@pytest.mark.parametrize("change", ["joiner", "rename"])
def test_a_username_with_capitals_converges_on_jira(kill_world: KillWorld, change: str) -> None:
    # Found by seed 9 round 16 and seed 12 round 62 (a joiner `chen40` renamed `Chen40` before
    # the run that would create the account), and by seed 3 round 88 of the long run (a rename
    # `hana42` -> `Hana.berg117`). Jira compares usernames lower-cased (SPEC §4), so either
    # the account gets the name in lower case or the plan says it cannot: a write that fails
    # on every run is neither.
    kill_world.apply([AMARA] if change == "joiner" else [AMARA, BRUNO])
    people = [AMARA, replace(BRUNO, username="Bruno.Rossi" if change == "rename" else "Bruno")]
    applied = kill_world.run(people, "apply", "-y")
    assert applied.exit_code == 0, applied.output
    planned = kill_world.run(people, "plan", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
