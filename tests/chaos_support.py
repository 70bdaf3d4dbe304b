"""A seeded chaos world: Jira and Atlassian Cloud simulators over sockets, a CSV source, churn, faults, kills.

Everything random is drawn from the seed: round ``r`` of seed ``s`` draws from streams named
``f"{s}/{r}/{what}"`` only (the shape of the round, each step's churn, faults and kill point),
so a world started at round ``r`` with that seed makes the same choices again. What scimsync
does under them can vary with thread timing, and so can the few choices that follow it (whom
the changes after a killed run concern).

The checks read the simulators' own state, never scimsync's output. Who an account belongs to
is learnt the same way: an account that appears during a run belongs to the person of the
source who had its username when the run started (scimsync creates with the source's username
and renames nothing it creates in the same run). Accounts scimsync must not touch (unowned,
protected) are frozen when they are seeded and compared after every run.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import yaml
from click.testing import CliRunner

from scimsync.audit import verify
from scimsync.cli import cli
from scimsync.sim.atlassian_cloud import AtlassianCloudSim
from scimsync.sim.faults import DROPPED, WRITES, Faults, RequestLog
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

REPO = Path(__file__).resolve().parent.parent
JIRA_TOKEN = "chaos-jira-token"
CLOUD_TOKEN = "chaos-cloud-key"
ENV = {"CHAOS_JIRA_TOKEN": JIRA_TOKEN, "CHAOS_CLOUD_TOKEN": CLOUD_TOKEN}

OWNER_GROUP = "scimsync-managed"
TEAMS = ("team-alpha", "team-beta", "team-gamma", "team-delta")
FIRST = ("Amara", "Bruno", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena")
LAST = ("Kowalski", "Rossi", "Nakamura", "Haddad", "Okafor", "Silva", "Novak", "Berg", "Ito", "Moreau")
# Known bugs the churn steers around so that the suite stays green (each pinned by an xfail test
# in test_chaos.py); SCIMSYNC_CHAOS_KNOWN_BUGS=1 lets the churn walk into them.
KNOWN_BUGS = os.environ.get("SCIMSYNC_CHAOS_KNOWN_BUGS", "") not in ("", "0")
MAX_PEOPLE = 60  # joiners stop here, so that a long run's rounds stay about as fast as the first

CHAOS_TIMEOUT = 1.0  # http.timeout of the chaotic runs: a slow answer costs little
CALM_TIMEOUT = 20.0  # the calm run must not trip on a busy machine
KILL_WAIT = 60.0  # a killed-round apply that neither reached its kill point nor ended by then hangs


# --- the source ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """One person of the IdP. ``kind``: staff, outsider (never in scope), service (excluded), protected."""

    id: str
    username: str
    email: str
    first: str
    last: str
    groups: tuple[str, ...]
    active: bool = True
    removed: bool = False  # not in the CSV at all
    kind: str = "staff"

    @property
    def display_name(self) -> str:
        """Return the mapped display name (the config maps first and last name)."""
        return f"{self.first} {self.last}"

    def in_scope(self) -> bool:
        """Tell whether the config syncs this person: active, in `staff`, not `svc-*` (our own rule)."""
        return (
            self.active
            and not self.removed
            and "staff" in self.groups
            and not self.username.lower().startswith("svc-")
        )


def write_csv(path: Path, people: Iterable[Person]) -> None:
    """Write the source file: every person not removed."""
    fields = ["id", "username", "email", "first_name", "last_name", "active", "groups"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for p in people:
            if not p.removed:
                writer.writerow(
                    {
                        "id": p.id,
                        "username": p.username,
                        "email": p.email,
                        "first_name": p.first,
                        "last_name": p.last,
                        "active": str(p.active).lower(),
                        "groups": ";".join(p.groups),
                    }
                )


# --- the targets, read back in one shape -----------------------------------------------------


@dataclass(frozen=True)
class Acct:
    """An account as a simulator holds it."""

    id: str  # Jira's key, the SCIM id
    username: str
    email: str
    display_name: str
    active: bool
    groups: frozenset[str]  # lower-case
    external_id: str | None = None


class Side(Protocol):
    """One target: its simulator, how to seed and read it, and what the config's rules give."""

    name: str
    faults: Faults
    log: RequestLog

    def accounts(self) -> dict[str, Acct]: ...
    def seed(self, p: Person, *, groups: Iterable[str], active: bool, marker: bool) -> str: ...
    def managed(self, group: str) -> bool: ...
    def expected(self, p: Person) -> frozenset[str]: ...
    def left(self) -> frozenset[str]: ...  # the managed groups a leaver's account keeps (the marker)
    def marked(self, acct: Acct) -> bool: ...  # whether it carries scimsync's owner marker (SPEC §5)
    def config(self) -> dict[str, Any]: ...


class JiraSide:
    """Jira Data Center: the owner marker is a group; groups `jira-<team>`."""

    name = "jira"

    def __init__(self, sim: JiraSim, url: str) -> None:
        self.sim, self.url = sim, url
        self.faults, self.log = sim.faults, sim.log

    def accounts(self) -> dict[str, Acct]:
        """Read every user straight from the simulated directory."""
        with self.sim._lock:  # the simulator serves from other threads
            d = self.sim.directory
            return {
                u.key: Acct(
                    u.key,
                    u.name,
                    u.email,
                    u.display_name,
                    u.active,
                    frozenset(g.name.lower() for g in d.groups_of(u)),
                )
                for u in d.users.values()
            }

    def seed(self, p: Person, *, groups: Iterable[str], active: bool, marker: bool) -> str:
        """Create an account by hand, as an admin would."""
        names = [*groups, *([OWNER_GROUP] if marker else [])]
        return self.sim.add_user(p.username, p.email, p.display_name, active=active, groups=names)

    def managed(self, group: str) -> bool:
        """Tell whether the config manages ``group`` (default group, owner group, the rule's pattern)."""
        return group in ("jira-software-users", OWNER_GROUP) or group.startswith("jira-team-")

    def expected(self, p: Person) -> frozenset[str]:
        """Return the managed groups an in-scope person's account must be in."""
        return frozenset({"jira-software-users", OWNER_GROUP, *(f"jira-{g}" for g in p.groups if g in TEAMS)})

    def left(self) -> frozenset[str]:
        """The owner marker stays on a leaver's account (SPEC §6)."""
        return frozenset({OWNER_GROUP})

    def marked(self, acct: Acct) -> bool:
        """The owner group (SPEC §5)."""
        return OWNER_GROUP in acct.groups

    def config(self) -> dict[str, Any]:
        """Return the target's block of the config."""
        return {
            "type": "jira",
            "url": self.url,
            "token": "${CHAOS_JIRA_TOKEN}",
            "default_groups": ["jira-software-users"],
            "groups": [{"from": "team-*", "to": "jira-{{ group.name }}"}],
        }


class CloudSide:
    """Atlassian Cloud (SCIM): the owner marker is the externalId; groups `cloud-<team>`."""

    name = "cloud"

    def __init__(self, sim: AtlassianCloudSim, url: str) -> None:
        self.sim, self.url = sim, url
        self.faults, self.log = sim.faults, sim.log

    def accounts(self) -> dict[str, Acct]:
        """Read every live user straight from the simulated directory."""
        with self.sim._lock:
            d = self.sim.directory
            found = {}
            for u in d.live_users():
                email = next((e["value"] for e in u.attrs.get("emails") or () if e.get("primary")), "")
                groups = frozenset(g.display_name.lower() for g in d.groups_of(u.id))
                found[u.id] = Acct(
                    u.id,
                    u.user_name,
                    email,
                    str(u.attrs.get("displayName", "")),
                    bool(u.attrs.get("active", True)),
                    groups,
                    u.attrs.get("externalId"),
                )
            return found

    def seed(self, p: Person, *, groups: Iterable[str], active: bool, marker: bool) -> str:
        """Create a user by hand; ``marker``: with the person's id as externalId."""
        external = p.id if marker else None
        return self.sim.add_user(
            p.username, p.email, p.display_name, active=active, external_id=external, groups=groups
        )

    def managed(self, group: str) -> bool:
        """Tell whether the config manages ``group``."""
        return group == "atlassian-users" or group.startswith("cloud-team-")

    def expected(self, p: Person) -> frozenset[str]:
        """Return the managed groups an in-scope person's account must be in."""
        return frozenset({"atlassian-users", *(f"cloud-{g}" for g in p.groups if g in TEAMS)})

    def left(self) -> frozenset[str]:
        """A leaver keeps no managed group here (the marker is the externalId)."""
        return frozenset()

    def marked(self, acct: Acct) -> bool:
        """A non-empty externalId (SPEC §5)."""
        return bool(acct.external_id)

    def config(self) -> dict[str, Any]:
        """Return the target's block of the config."""
        return {
            "type": "atlassian-cloud",
            "url": self.url,
            "token": "${CHAOS_CLOUD_TOKEN}",
            "default_groups": ["atlassian-users"],
            "groups": [{"from": "team-*", "to": "cloud-{{ group.name }}"}],
        }


# --- faults ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One fault to install on a simulator; ``kind`` names it in the figures."""

    kind: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def install(self, faults: Faults) -> None:
        """Queue the fault on ``faults``."""
        kw = dict(self.kwargs)
        method = getattr(faults, _FAULT_METHOD[self.kind])
        method(*self.args, **kw)

    def __str__(self) -> str:
        kw = ", ".join(f"{k}={v!r}" for k, v in self.kwargs)
        return f"{self.kind}({', '.join(map(repr, self.args))}{', ' if kw and self.args else ''}{kw})"


_FAULT_METHOD = {
    "429+retry-after": "rate_limit",
    "429-bare": "inject",
    "503-burst": "inject",
    "503-every": "every",
    "502": "inject",
    "502-html": "html",
    "504": "inject",
    "500": "inject",
    "drop-before-app": "drop",
    "drop-after-app": "drop",
    "first-time": "first_time",
    "truncate": "truncate",
    "slow": "slow",
}


def pick_faults(rng: random.Random, *, real_time: bool) -> list[Fault]:
    """Draw 0-3 faults for one simulator; ``real_time``: the run really sleeps (a subprocess)."""
    faults = []
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
        method = rng.choice((WRITES, WRITES, WRITES, None, "POST", "PUT", "PATCH", "GET"))
        many = rng.randint(1, 3 if real_time else 12)  # a subprocess waits for real: short storms
        wait = rng.choice((0, 1)) if real_time else rng.choice((1, 2, 5, 30))
        kind = rng.choice(sorted(_FAULT_METHOD))
        if kind == "slow" and real_time:
            kind = "drop-after-app"
        m = (("method", method),)
        if kind == "429+retry-after":
            fault = Fault(kind, (many,), (("retry_after", wait), *m))
        elif kind == "429-bare":
            fault = Fault(kind, (429,), (("count", many), *m))
        elif kind == "503-burst":
            headers = {"Retry-After": str(wait)} if rng.random() < 0.5 else None
            fault = Fault(kind, (503,), (("count", many), ("headers", headers), *m))
        elif kind == "503-every":  # real time: on writes only, or a subprocess backs off for long
            only = WRITES if real_time else rng.choice((None, WRITES))
            fault = Fault(kind, (rng.randint(3, 7), 503), (("method", only),))
        elif kind in ("502", "504", "500"):
            fault = Fault(kind, (int(kind),), (("count", rng.randint(1, 3)), *m))
        elif kind == "502-html":
            fault = Fault(kind, (502,), (("count", rng.randint(1, 3)), *m))
        elif kind == "drop-before-app":
            fault = Fault(kind, (rng.randint(1, 3),), m)
        elif kind == "drop-after-app":
            fault = Fault(kind, (rng.randint(1, 3),), (("method", WRITES), ("after_app", True)))
        elif kind == "first-time":
            status = rng.choice((0, 502, 504))
            after = status == 0 and rng.random() < 0.5
            fault = Fault(kind, (status,), (("method", WRITES), ("after_app", after)))
        elif kind == "truncate":
            fault = Fault(kind, (), (("count", rng.randint(1, 2)), ("method", WRITES)))
        else:  # slow: the answer comes after the client gave up, the server having acted
            fault = Fault(kind, (CHAOS_TIMEOUT + 0.3,), (("count", 1), ("method", WRITES)))
        faults.append(fault)
    return faults


# --- runs --------------------------------------------------------------------------------------


@dataclass
class Run:
    """One invocation of scimsync and what became of it."""

    label: str
    exit_code: int
    output: str
    killed: bool = False
    kill_point: str = ""


@dataclass
class Figures:
    """What a chaos run did, for the report."""

    seed: int = 0
    rounds: int = 0
    runs: int = 0
    kills: int = 0
    kills_before_writes: int = 0  # killed while reading or planning
    kills_while_writing: int = 0
    ended_before_kill: int = 0
    faults: Counter[str] = field(default_factory=Counter)  # faults installed, by kind
    answers: Counter[str] = field(default_factory=Counter)  # faulty answers the simulators gave
    churn: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    writes: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def count_log(self, log: RequestLog) -> None:
        """Add a simulator's request log to the figures (then the caller clears it)."""
        for entry in log.entries:
            self.requests += 1
            self.writes += entry.method not in ("GET", "HEAD")
            if entry.status == DROPPED:
                self.answers["dropped"] += 1
            elif entry.status in (429, 500, 502, 503, 504):
                self.answers[str(entry.status)] += 1

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-ready values."""
        return {
            "seed": self.seed,
            "rounds": self.rounds,
            "runs": self.runs,
            "kills": self.kills,
            "kills_before_writes": self.kills_before_writes,
            "kills_while_writing": self.kills_while_writing,
            "ended_before_kill": self.ended_before_kill,
            "faults_installed": dict(sorted(self.faults.items())),
            "faulty_answers": dict(sorted(self.answers.items())),
            "churn": dict(sorted(self.churn.items())),
            "requests": self.requests,
            "writes": self.writes,
            "seconds": round(self.seconds, 1),
            "failures": self.failures,
        }


class Inflight:
    """WSGI middleware that counts the requests a simulator is still serving."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, environ: Any, start_response: Any) -> Any:
        """Serve one request, counted while it runs (the body is built by then: simulators return lists)."""
        with self._lock:
            self.count += 1
        try:
            return self.app(environ, start_response)
        finally:
            with self._lock:
                self.count -= 1


class FakeClock:
    """The in-process runs' sleeps: recorded, not slept, and seen by the simulators' rate limiter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.offset = 0.0

    def sleep(self, seconds: float) -> None:
        """Advance the simulators' clock instead of sleeping."""
        with self._lock:
            self.offset += max(0.0, seconds)

    def now(self) -> float:
        """Real monotonic time plus what was slept."""
        return time.monotonic() + self.offset


class ChaosWorld:
    """Two simulators, a folder with the source, config, audit log, state and lock; the people."""

    def __init__(self, folder: Path, seed: int, first_round: int, clock: FakeClock, stack: ExitStack) -> None:
        self.folder = folder
        self.seed = seed
        self.clock = clock
        self.people: list[Person] = []
        self.owner: dict[tuple[str, str], str] = {}  # (side, account id) -> person id
        self.frozen: dict[tuple[str, str], Acct] = {}  # accounts scimsync must never touch
        # People whose accounts a killed run created, until a calm run has linked them: the
        # churn spares them the changes that orphan such an account (see KNOWN_BUGS).
        self.fragile: set[str] = set()
        # Accounts made by hand for a person, not yet adopted (no owner marker): until scimsync
        # adopts one, a person who leaves leaves it behind, as it was never scimsync's.
        self.handmade: set[tuple[str, str]] = set()
        self.recent: set[int] = set()  # indexes of the people changed this round
        self.only: int | None = None  # the one person the next change may pick (aftermath)
        self._serial = 0
        # Rate limited like a Data Center with limits on (atlassian §1.11): normal, not a fault.
        jira = JiraSim(token=JIRA_TOKEN, rate_limit=(30, 100.0), clock=clock.now)
        cloud = AtlassianCloudSim(token=CLOUD_TOKEN)
        self.inflight = [Inflight(jira.app), Inflight(cloud.app)]
        jira_url = stack.enter_context(SimServer(self.inflight[0])).url
        cloud_url = stack.enter_context(SimServer(self.inflight[1])).url + cloud.base_path
        self.sides: list[Side] = [JiraSide(jira, jira_url), CloudSide(cloud, cloud_url)]
        self._populate(random.Random(f"{seed}/{first_round}/world"))

    # -- the company --------------------------------------------------------------------------

    def _new_person(self, rng: random.Random, *, kind: str = "staff") -> Person:
        self._serial += 1
        n = self._serial
        first, last = rng.choice(FIRST), rng.choice(LAST)
        username = {"outsider": f"visitor{n}", "service": f"svc-bot{n}"}.get(kind, f"{first.lower()}{n}")
        teams = tuple(rng.sample(TEAMS, rng.randint(0, 2)))
        base = ("staff",) if kind in ("staff", "service") else ("guests",)
        extra = ("all-hands",) if rng.random() < 0.3 else ()
        return Person(
            f"u{n:04d}", username, f"{username}@acme.test", first, last, base + teams + extra, kind=kind
        )

    def _populate(self, rng: random.Random) -> None:
        """Start the company: staff, some with accounts from before scimsync; the untouchables."""
        for side in self.sides:  # Jira's administrator (scimsync's own account), protected
            self.frozen |= {(side.name, key): acct for key, acct in side.accounts().items()}
        self.people = [self._new_person(rng) for _ in range(rng.randint(10, 16))]
        for p in rng.sample(self.people, 3):  # accounts an admin made by hand: adopted by match
            for side in self.sides:
                key = side.seed(p, groups=[], active=rng.random() < 0.8, marker=False)
                self.owner[(side.name, key)] = p.id
                self.handmade.add((side.name, key))
        # Out of scope by group (outsider) or by exclude_users (service, in `staff` and a team),
        # each with an unowned account of the same username: never touched.
        for kind in ("outsider", "outsider", "service", "service"):
            p = self._new_person(rng, kind=kind)
            self.people.append(p)
            self._seed_frozen(p, groups=[f"{s}-team-alpha" for s in ("jira", "cloud")])
        # Protected, with the owner marker and managed groups, and in the source: never touched.
        root = Person("u-root", "root-ops", "root-ops@acme.test", "Root", "Ops", ("staff", "team-alpha"))
        self.people.append(replace(root, kind="protected"))
        self._seed_frozen(root, groups=["jira-team-alpha", "cloud-team-alpha"], marker=True)

    def release_handmade(self) -> None:
        """Freeze the hand-made accounts not adopted yet that their person no longer matches.

        Renamed (username and email) before scimsync ever adopted it, such an account is
        nobody's as far as scimsync can tell: it must stay as it is.
        """
        people = {p.id: p for p in self.people}
        accounts = self.snapshot()
        for side, key in sorted(self.handmade):
            p, acct = people[self.owner[(side, key)]], accounts[side][key]
            if acct.username.lower() != p.username.lower() and acct.email.lower() != p.email.lower():
                self.handmade.discard((side, key))
                del self.owner[(side, key)]
                self.frozen[(side, key)] = acct

    def _seed_frozen(self, p: Person, *, groups: Iterable[str], marker: bool = False) -> None:
        for side in self.sides:
            mine = [g for g in groups if g.startswith(side.name)]
            key = side.seed(p, groups=mine, active=True, marker=marker)
            self.frozen[(side.name, key)] = side.accounts()[key]

    def churn(self, rng: random.Random, figures: Figures, steps: int) -> list[str]:
        """Change the company ``steps`` times; return what changed."""
        done = []
        for _ in range(steps):
            what = rng.choices(list(_CHURN), weights=list(_CHURN.values()))[0]
            was = list(self.people)
            said = getattr(self, f"_churn_{what.replace('-', '_')}")(rng)
            if said:
                figures.churn[what] += 1
                done.append(f"{what}: {said}")
                self.recent |= {i for i, p in enumerate(self.people) if i >= len(was) or p is not was[i]}
        return done

    def aftermath(self, rng: random.Random, figures: Figures) -> list[str]:
        """Change someone whose account a killed run was working on: they leave, move or are renamed."""
        touched = [i for i, p in enumerate(self.people) if p.id in self.fragile and self._staff(p)]
        if not touched:
            return []
        self.only = rng.choice(touched)
        what = rng.choice(
            ("leave-removed", "scope-out", "rename-username", "leave-inactive", "rename-email", "move")
        )
        try:
            said = getattr(self, f"_churn_{what.replace('-', '_')}")(rng)
        finally:
            self.only = None
        if not said:
            return []
        figures.churn[f"{what} (after a kill)"] += 1
        return [f"{what} after the kill: {said}"]

    def _pick(self, rng: random.Random, test: Callable[[Person], bool]) -> int | None:
        if self.only is not None:
            return self.only if test(self.people[self.only]) else None
        chosen = [i for i, p in enumerate(self.people) if test(p)]
        # Often the people changed this round, or whose accounts a killed run touched, again (a
        # start cancelled, a name fixed the same day): what a half-done run left for them is
        # what the next change must cope with.
        again = [i for i in chosen if i in self.recent or self.people[i].id in self.fragile]
        if again and rng.random() < 0.6:
            return rng.choice(again)
        return rng.choice(chosen) if chosen else None

    def _change(self, rng: random.Random, test: Callable[[Person], bool], **how: Any) -> str:
        i = self._pick(rng, test)
        if i is None:
            return ""
        self.people[i] = replace(self.people[i], **how)
        return self.people[i].username

    def _staff(self, p: Person) -> bool:
        return p.kind == "staff" and not p.removed

    def _enough_left(self) -> bool:
        return sum(p.in_scope() for p in self.people) > 5  # never the empty-source guard

    def _churn_join(self, rng: random.Random) -> str:
        if len(self.people) >= MAX_PEOPLE:
            return ""
        p = self._new_person(rng)
        self.people.append(p)
        return p.username

    def _churn_leave_inactive(self, rng: random.Random) -> str:
        if not self._enough_left():
            return ""
        return self._change(rng, lambda p: self._staff(p) and p.active, active=False)

    def _churn_leave_removed(self, rng: random.Random) -> str:
        if not self._enough_left():
            return ""
        return self._change(rng, lambda p: self._staff(p) and self._sturdy(p), removed=True)

    def _sturdy(self, p: Person) -> bool:
        return KNOWN_BUGS or p.id not in self.fragile

    def _churn_return(self, rng: random.Random) -> str:
        return self._change(
            rng, lambda p: p.kind == "staff" and (p.removed or not p.active), active=True, removed=False
        )

    def _churn_rename_display(self, rng: random.Random) -> str:
        i = self._pick(rng, self._staff)
        if i is None:
            return ""
        self.people[i] = replace(self.people[i], last=rng.choice(LAST) + rng.choice(("", "-Berg", "-Ito")))
        return f"{self.people[i].username} -> {self.people[i].display_name}"

    def _churn_rename_username(self, rng: random.Random) -> str:
        # The same person (same id) under a new username, often with a new email too (SPEC §5).
        i = self._pick(rng, lambda p: self._staff(p) and self._sturdy(p))
        if i is None:
            return ""
        self._serial += 1
        p = self.people[i]
        if rng.random() < 0.15 and (KNOWN_BUGS or self._jira_has_name(p)):
            # The same name in another case: the targets compare case-insensitively (SPEC §4).
            name = p.username.capitalize() if p.username.islower() else p.username.lower()
        else:
            name = f"{p.first.lower()}.{p.last.lower()[:8]}{self._serial}"
        email = f"{name.lower()}@acme.test" if rng.random() < 0.6 else p.email
        self.people[i] = replace(p, username=name, email=email)
        return f"{p.username} -> {name} <{email}>"

    def _jira_has_name(self, p: Person) -> bool:
        # Jira refuses a username with capitals, on create and on rename (atlassian §1.3), and
        # scimsync sends it as mapped (test_a_username_with_capitals_converges_on_jira). Only
        # the case of a name the Jira account already has may change: it is the same name there.
        accounts = self.snapshot()["jira"]
        return any(
            side == "jira"
            and pid == p.id
            and key in accounts
            and accounts[key].username.lower() == p.username.lower()
            for (side, key), pid in self.owner.items()
        )

    def _churn_rename_email(self, rng: random.Random) -> str:
        i = self._pick(rng, self._staff)
        if i is None:
            return ""
        self._serial += 1
        p = self.people[i]
        self.people[i] = replace(p, email=f"{p.username}.{self._serial}@acme.test")
        return f"{p.username} -> {self.people[i].email}"

    def _churn_move(self, rng: random.Random) -> str:
        i = self._pick(rng, lambda p: p.kind in ("staff", "service", "outsider") and not p.removed)
        if i is None:
            return ""
        p = self.people[i]
        keep = tuple(g for g in p.groups if g not in TEAMS)
        teams = tuple(rng.sample(TEAMS, rng.randint(0, 3)))
        self.people[i] = replace(p, groups=keep + teams)
        return f"{p.username} -> {','.join(teams) or 'no team'}"

    def _churn_reorg(self, rng: random.Random) -> str:
        # A whole team moves to another: many membership changes in one run (batched where the
        # target can), so that a kill or a fault lands in the middle of a big phase.
        old, new = rng.sample(TEAMS, 2)
        moved = []
        for i, p in enumerate(self.people):
            if old in p.groups and not p.removed and p.kind == "staff":
                self.people[i] = replace(
                    p, groups=tuple(dict.fromkeys(new if g == old else g for g in p.groups))
                )
                moved.append(p.username)
        return f"{old} -> {new}: {len(moved)} people" if moved else ""

    def _churn_scope_out(self, rng: random.Random) -> str:
        if not self._enough_left():
            return ""
        i = self._pick(rng, lambda p: self._staff(p) and "staff" in p.groups and self._sturdy(p))
        if i is None:
            return ""
        p = self.people[i]
        self.people[i] = replace(p, groups=tuple(g for g in p.groups if g != "staff"))
        return p.username

    def _churn_scope_in(self, rng: random.Random) -> str:
        i = self._pick(rng, lambda p: self._staff(p) and "staff" not in p.groups)
        if i is None:
            return ""
        p = self.people[i]
        self.people[i] = replace(p, groups=("staff", *p.groups))
        return p.username

    def _churn_protected(self, rng: random.Random) -> str:
        # The source says the protected person left, moved or was renamed: scimsync must not care.
        i = self._pick(rng, lambda p: p.kind == "protected")
        assert i is not None
        p = self.people[i]
        self.people[i] = replace(
            p, active=not p.active, last=rng.choice(LAST), groups=("staff", *rng.sample(TEAMS, 2))
        )
        return f"{p.username} active={self.people[i].active}"

    def _churn_outsider_flip(self, rng: random.Random) -> str:
        return self._change(rng, lambda p: p.kind in ("outsider", "service"), active=rng.random() < 0.5)

    def _churn_unowned(self, rng: random.Random) -> str:
        # An account made by hand for someone scimsync does not know, maybe in a managed group.
        self._serial += 1
        p = Person(
            f"x{self._serial}",
            f"contractor{self._serial}",
            f"contractor{self._serial}@example.test",
            "Con",
            "Tractor",
            (),
            kind="outsider",
        )
        team = rng.choice(TEAMS)
        groups = [f"jira-{team}", f"cloud-{team}"] if rng.random() < 0.5 else []
        for side in self.sides:
            if rng.random() < 0.7:
                mine = [g for g in groups if g.startswith(side.name)]
                key = side.seed(p, groups=mine, active=rng.random() < 0.8, marker=False)
                self.frozen[(side.name, key)] = side.accounts()[key]
        return p.username

    # -- files --------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        """Return the config file's path."""
        return self.folder / "scimsync.yaml"

    def write(self, *, timeout: float, concurrency: int) -> None:
        """Write people.csv and scimsync.yaml."""
        write_csv(self.folder / "people.csv", self.people)
        config = {
            "version": 1,
            "source": {
                "type": "file",
                "path": "people.csv",
                "include_groups": ["staff"],
                "exclude_users": ["svc-*"],
            },
            "mapping": {"display_name": "{{ user.first_name }} {{ user.last_name }}"},
            "targets": {side.name: side.config() for side in self.sides},
            "policy": {
                "protected_users": ["admin", "root-*"],
                "max_deactivations": 1000,
                "sync_fields": ["username", "email", "display_name"],  # renames follow (SPEC §5)
            },
            "audit_log": "audit.jsonl",
            "lock_file": "run.lock",
            "state_file": "state.json",
            "http": {"retries": 2, "timeout": timeout, "concurrency": concurrency},
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.config_path.chmod(0o600)

    # -- running scimsync ---------------------------------------------------------------------

    def run_here(self, label: str, *args: str) -> Run:
        """Run the CLI in this process (its sleeps go to the fake clock)."""
        result = CliRunner().invoke(cli, ["-c", str(self.config_path), *args])
        output = result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            output += f"\nTraceback: {type(result.exception).__name__}: {result.exception}"
        return Run(label, result.exit_code, output)

    def run_killed(self, label: str, rng: random.Random) -> Run:
        """Run `python -m scimsync apply -y` and SIGKILL it after a delay or a count of writes."""
        by_writes = rng.random() < 0.6
        goal = rng.randint(1, 12) if by_writes else rng.uniform(0.3, 2.0)
        point = f"after {goal} writes" if by_writes else f"after {goal:.2f} s"
        writes = self.writes()
        env = {**os.environ, **ENV, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
        out = self.folder / f"{label}.out"
        with out.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "scimsync", "-c", str(self.config_path), "apply", "-y"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.folder,
            )
            started = time.monotonic()
            while proc.poll() is None:
                waited = time.monotonic() - started
                reached = self.writes() - writes >= goal if by_writes else waited >= goal
                if reached or waited > KILL_WAIT:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    point = point if reached else f"after {KILL_WAIT:g} s: the run hung"
                    break
                time.sleep(0.002)
        output = out.read_text(encoding="utf-8", errors="replace")
        killed = proc.returncode == -signal.SIGKILL
        return Run(label, proc.returncode, output, killed=killed, kill_point=point)

    def settle(self, quiet: float = 0.05, limit: float = 10.0) -> None:
        """Wait until no simulator has served a request for ``quiet`` seconds.

        A killed run leaves requests in flight, and a late answer (``slow``) is still being
        served after the client gave up: their effects must land before the state is read.
        """
        deadline = time.monotonic() + limit
        calm_since = time.monotonic()
        while time.monotonic() < deadline:
            if any(i.count for i in self.inflight):
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since >= quiet:
                return
            time.sleep(0.005)

    def writes(self) -> int:
        """Count the write requests the simulators received since their logs were cleared."""
        return sum(len(side.log.writes()) for side in self.sides)

    # -- what the simulators hold -------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, Acct]]:
        """Read every account of every target."""
        return {side.name: side.accounts() for side in self.sides}

    def learn(
        self, before: dict[str, dict[str, Acct]], after: dict[str, dict[str, Acct]], people: list[Person]
    ) -> list[str]:
        """Give each account that appeared to the person whose username it has; return problems."""
        problems = []
        by_name = {p.username.lower(): p for p in people if not p.removed}
        marked = {side.name: side.marked for side in self.sides}
        for side, accounts in after.items():
            for key, acct in accounts.items():
                if (side, key) in self.handmade and marked[side](acct):
                    self.handmade.discard((side, key))  # adopted
                if key in before[side] or (side, key) in self.owner or (side, key) in self.frozen:
                    continue
                p = by_name.get(acct.username.lower())
                if p is None or not p.in_scope():
                    problems.append(f"{side}: account {acct.username} was created for nobody in scope")
                    continue
                self.owner[(side, key)] = p.id
                if side == "cloud" and acct.external_id != p.id:
                    problems.append(f"{side}: {acct.username} created with externalId {acct.external_id}")
        return problems


_CHURN = {
    "join": 3.0,
    "leave-inactive": 2.0,
    "leave-removed": 1.5,
    "return": 2.0,
    "rename-display": 2.0,
    "rename-email": 1.5,
    "rename-username": 1.0,
    "move": 3.0,
    "reorg": 0.4,
    "scope-out": 0.7,
    "scope-in": 0.7,
    "protected": 0.5,
    "outsider-flip": 0.5,
    "unowned": 0.7,
}


# --- the checks --------------------------------------------------------------------------------


def wrong_writes(
    world: ChaosWorld,
    before: dict[str, dict[str, Acct]],
    after: dict[str, dict[str, Acct]],
    people: list[Person],
) -> list[str]:
    """Return what a run (complete or not) must never do, read from the simulators' state."""
    problems = []
    in_scope = {p.id for p in people if p.in_scope()}
    for (side, key), frozen in world.frozen.items():
        now = after[side].get(key)
        if now != frozen:
            problems.append(f"{side}: untouchable account {frozen.username} changed: {frozen} -> {now}")
    for side, accounts in after.items():
        for key, acct in accounts.items():
            was = before[side].get(key)
            owner = world.owner.get((side, key))
            if was is not None and was.active and not acct.active and owner in in_scope:
                problems.append(f"{side}: {acct.username} deactivated, but its person is in scope and active")
        mine: dict[str, list[str]] = {}
        for key, acct in accounts.items():
            if (side, key) in world.owner:
                mine.setdefault(world.owner[(side, key)], []).append(acct.username)
        problems += [
            f"{side}: person {pid} has {len(names)} accounts: {sorted(names)}"
            for pid, names in sorted(mine.items())
            if len(names) > 1
        ]
        emails = Counter(a.email.lower() for a in accounts.values() if a.email)
        problems += [f"{side}: {n} accounts with email {e}" for e, n in sorted(emails.items()) if n > 1]
        links = Counter(a.external_id for a in accounts.values() if a.external_id)
        problems += [f"{side}: {n} accounts with externalId {x}" for x, n in sorted(links.items()) if n > 1]
    problems += audit_problems(world.folder / "audit.jsonl")
    return problems


def audit_problems(path: Path) -> list[str]:
    """The audit log's chain verifies and no line is torn.

    AuditLog.record writes each line (a few hundred bytes) with one write(2) on an O_APPEND
    descriptor, so a SIGKILL lands before or after a line, never inside it: a torn last line
    is not accepted here.
    """
    if not path.exists():
        return []
    problems = []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        problems.append("audit log: the last line is torn (no newline at the end)")
    count, problem = verify(path)
    if problem is not None:
        problems.append(f"audit log does not verify after {count} lines: {problem}")
    return problems


def convergence(
    world: ChaosWorld, after: dict[str, dict[str, Acct]], people: list[Person] | None = None
) -> list[str]:
    """Return how the targets differ from what the source (``people``: as a run read it) says."""
    problems = []
    for side in world.sides:
        accounts = after[side.name]
        mine: dict[str, list[Acct]] = {}
        for key, acct in accounts.items():
            if (side.name, key) in world.owner:
                mine.setdefault(world.owner[(side.name, key)], []).append(acct)
        for p in world.people if people is None else people:
            if p.kind in ("protected", "outsider", "service"):
                continue
            found = mine.get(p.id, [])
            if p.in_scope():
                problems += _as_wanted(side, p, found)
                continue
            for acct in found:
                if (side.name, acct.id) in world.handmade:
                    continue  # never adopted: not scimsync's to deprovision
                kept = {g for g in acct.groups if side.managed(g)} - side.left()
                if acct.active or kept:
                    problems.append(
                        f"{side.name}: leaver {p.username}'s account {acct.username}: active={acct.active}, "
                        f"managed groups {sorted(kept)}"
                    )
    return problems


def _as_wanted(side: Side, p: Person, found: list[Acct]) -> list[str]:
    if len(found) != 1:
        return [f"{side.name}: {p.username} has {len(found)} accounts, wants 1"]
    acct = found[0]
    groups = frozenset(g for g in acct.groups if side.managed(g))
    wanted = side.expected(p)
    link = p.id if side.name == "cloud" else None  # SCIM: the externalId is the source id (SPEC §5)
    got = (
        acct.username.lower(),
        acct.email.lower(),
        acct.display_name,
        acct.active,
        groups,
        acct.external_id,
    )
    want = (p.username.lower(), p.email.lower(), p.display_name, True, wanted, link)
    if got == want:
        return []
    return [f"{side.name}: {p.username}: has {got}, wants {want}"]


# --- one round ------------------------------------------------------------------------------------


@dataclass
class Round:
    """What one round did, for the failure message."""

    number: int
    story: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def play_round(world: ChaosWorld, number: int, figures: Figures) -> Round:
    """Churn, a chaotic apply (maybe killed, maybe twice), the checks, a calm run, convergence.

    Each kind of choice has its own stream (``seed/round/what``), so that a choice that depends
    on what a run did (whom a killed run's accounts concern) never shifts the others.
    """
    seed = world.seed

    def draw(what: str) -> random.Random:
        return random.Random(f"{seed}/{number}/{what}")

    shape = draw("shape")
    kills = [shape.random() < 0.4]
    # After a killed run the next one often comes before anything is repaired (cron).
    if shape.random() < (0.6 if kills[0] else 0.25):
        kills.append(shape.random() < 0.4)
    record = Round(number)
    for side in world.sides:
        figures.count_log(side.log)
        side.log.clear()
    world.recent = set()
    for step, killed in enumerate(kills):
        churn, aftermath = draw(f"churn{step}"), draw("aftermath")
        if step and kills[0] and aftermath.random() < 0.8:
            record.story += world.aftermath(aftermath, figures)
        record.story += world.churn(churn, figures, churn.randint(1, 3) if step else churn.randint(1, 5))
        faults = draw(f"faults{step}")
        for side in world.sides:
            side.faults.clear()
            side.faults.latency = faults.choice((0.0, 0.002, 0.005, 0.01)) if killed else 0.0
            for fault in pick_faults(faults, real_time=killed):
                fault.install(side.faults)
                figures.faults[fault.kind] += 1
                record.story.append(f"{side.name} fault {fault}")
        world.release_handmade()
        world.write(timeout=CHAOS_TIMEOUT, concurrency=faults.choice((1, 2, 4, 8)))
        record.problems += _chaotic_run(
            world, f"r{number}s{step}", draw(f"kill{step}") if killed else None, record, figures
        )
        if record.problems:
            return record
    for side in world.sides:
        side.faults.clear()
        side.faults.latency = 0.0
    world.write(timeout=CALM_TIMEOUT, concurrency=4)
    people = list(world.people)
    before = world.snapshot()
    calm = world.run_here(f"r{number}calm", "apply", "-y")
    after = world.snapshot()
    record.problems += [f"calm: {p}" for p in world.learn(before, after, people)]
    record.problems += [f"calm: {p}" for p in wrong_writes(world, before, after, people)]
    record.problems += [f"calm: {p}" for p in _output_problems(calm, allowed=(0,))]
    writes = world.writes()
    plan = world.run_here(f"r{number}plan", "plan", "--detailed-exitcode")
    record.problems += [f"plan: {p}" for p in _output_problems(plan, allowed=(0,))]
    if world.writes() != writes:
        record.problems.append("plan: sent write requests")
    record.problems += [f"converged: {p}" for p in convergence(world, world.snapshot())]
    world.fragile.clear()
    return record


def _chaotic_run(
    world: ChaosWorld, label: str, kill: random.Random | None, record: Round, figures: Figures
) -> list[str]:
    """Apply under faults (``kill``: as a subprocess, to be killed); return what it did wrong."""
    people = list(world.people)
    before = world.snapshot()
    writes = world.writes()
    run = world.run_killed(label, kill) if kill else world.run_here(label, "apply", "-y")
    world.settle()
    after = world.snapshot()
    figures.runs += 1
    if kill:
        figures.kills += run.killed
        figures.ended_before_kill += not run.killed
        figures.kills_while_writing += run.killed and world.writes() > writes
        figures.kills_before_writes += run.killed and world.writes() == writes
    ended = f"killed {run.kill_point}" if run.killed else f"exit {run.exit_code}"
    record.story.append(f"{label}: {ended} ({world.writes() - writes} writes)")
    marked = {side.name: side.marked for side in world.sides}
    adopted = {(s, k) for s, k in world.handmade if marked[s](after[s][k])}
    problems = world.learn(before, after, people)
    if run.killed:  # the links of accounts a killed run created or adopted were never saved
        new = {(s, k) for s in after for k in after[s].keys() - before[s].keys()}
        world.fragile |= {world.owner[a] for a in new | adopted if a in world.owner}
    problems += wrong_writes(world, before, after, people)
    problems += _output_problems(run, allowed=(0, 1))
    if run.exit_code == 0:  # every operation done, whatever the faults said on the way
        problems += [f"exit 0, yet {p}" for p in convergence(world, after, people)]
    return [f"{label}: {p}" for p in problems]


def _output_problems(run: Run, *, allowed: tuple[int, ...]) -> list[str]:
    if run.killed:
        return [f"killed {run.kill_point}: {_tail(run.output)}"] if "hung" in run.kill_point else []
    problems = []
    if run.exit_code not in allowed:
        problems.append(f"exit {run.exit_code}, wanted {' or '.join(map(str, allowed))}: {_tail(run.output)}")
    if "Traceback" in run.output or "internal error" in run.output:
        problems.append(f"a traceback or an internal error: {_tail(run.output)}")
    return problems


def _tail(text: str, lines: int = 12) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def settings() -> tuple[int, int, int, bool, Path | None]:
    """Read seed, first round, rounds, keep-going and report path from the environment."""
    seed = int(os.environ.get("SCIMSYNC_CHAOS_SEED", "1"))
    first = int(os.environ.get("SCIMSYNC_CHAOS_START", "1"))
    rounds = int(os.environ.get("SCIMSYNC_CHAOS_ROUNDS", "0") or 0)
    keep_going = os.environ.get("SCIMSYNC_CHAOS_KEEP_GOING", "") not in ("", "0")
    report = os.environ.get("SCIMSYNC_CHAOS_REPORT")
    return seed, first, rounds, keep_going, Path(report) if report else None


def describe(seed: int, started: int, rnd: Round) -> str:
    """Say what failed, where, and how to replay it."""
    count = rnd.number - started + 1
    replay = (
        f"SCIMSYNC_CHAOS_SEED={seed} SCIMSYNC_CHAOS_START={started} SCIMSYNC_CHAOS_ROUNDS={count} "
        ".venv/bin/python -m pytest tests/test_chaos.py -x -q -k rounds"
    )
    story = "\n    ".join(rnd.story)
    problems = "\n    ".join(rnd.problems)
    return (
        f"chaos seed {seed} round {rnd.number} (world started at round {started}):\n"
        f"  problems:\n    {problems}\n  round:\n    {story}\n  replay: {replay}"
    )


def play(
    folder: Path, seed: int, first: int, rounds: int, clock: FakeClock, *, keep_going: bool
) -> Iterator[tuple[Figures, str | None]]:
    """Play ``rounds`` rounds from round ``first``; yield the figures and a failure after each round.

    With ``keep_going`` a failed round starts a fresh world at the next round; otherwise the
    game ends at the first failure.
    """
    figures = Figures(seed=seed)
    number, started = first, first
    while number < first + rounds:
        with ExitStack() as stack:
            home = folder / f"world{started}"
            home.mkdir()
            world = ChaosWorld(home, seed, started, clock, stack)
            while number < first + rounds:
                t0 = time.monotonic()
                rnd = play_round(world, number, figures)
                figures.rounds += 1
                figures.seconds += time.monotonic() - t0
                failure = describe(seed, started, rnd) if rnd.problems else None
                if failure:
                    figures.failures.append(failure)
                number += 1
                yield figures, failure
                if failure:
                    if not keep_going:
                        return
                    started = number
                    break
            for side in world.sides:
                figures.count_log(side.log)
                side.log.clear()


def save_figures(path: Path | None, figures: Figures) -> None:
    """Write the figures as JSON (long runs: SCIMSYNC_CHAOS_REPORT)."""
    if path is not None:
        path.write_text(json.dumps(figures.as_dict(), indent=1) + "\n", encoding="utf-8")
