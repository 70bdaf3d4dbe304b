"""The benchmark's company: N people in 500 groups, about 3 groups each, and 1 % churn.

Deterministic (a seeded ``random.Random``), so that the simulator process and the
benchmark's own bookkeeping build the same company from its size alone. Ten departments
(``dept-00`` ... ``dept-09``, large) and 490 teams (``team-000`` ..., small): each person is
in one department and two teams.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

FIRST = ("Amara", "Bruno", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jonas", "Keiko")
LAST = ("Kowalski", "Rossi", "Nakamura", "Haddad", "Okafor", "Lindqvist", "Novak", "Schmidt", "Silva")
DOMAIN = "acme.example"
DEPARTMENTS = tuple(f"dept-{i:02}" for i in range(10))
TEAMS = tuple(f"team-{i:03}" for i in range(490))
GROUPS = DEPARTMENTS + TEAMS
FORMATS = ("csv", "json", "yaml")


@dataclass(frozen=True)
class Person:
    """One source record (SPEC §3 file source fields)."""

    id: str
    username: str
    email: str
    first_name: str
    last_name: str
    groups: tuple[str, ...]
    active: bool = True

    @property
    def display_name(self) -> str:
        """Return the display name the benchmark's mapping gives: first and last name."""
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class Churn:
    """The company after 1 % churn, and who churned how (source ids)."""

    people: tuple[Person, ...]
    joiners: tuple[str, ...]
    leavers: tuple[str, ...]
    movers: tuple[str, ...]
    renames: tuple[str, ...]


def _groups(rng: random.Random) -> tuple[str, ...]:
    return (rng.choice(DEPARTMENTS), *rng.sample(TEAMS, 2))


def _person(number: int, rng: random.Random, *, last: str | None = None) -> Person:
    first = FIRST[number % len(FIRST)]
    last = last or LAST[(number // len(FIRST)) % len(LAST)]
    username = f"{first}.{last}.{number}".lower()
    return Person(f"e{number:06}", username, f"{username}@{DOMAIN}", first, last, _groups(rng))


def make_company(size: int, *, seed: int = 12) -> tuple[Person, ...]:
    """Return ``size`` active people, each in one department and two teams."""
    rng = random.Random(seed)
    return tuple(_person(i, rng) for i in range(size))


def churn(people: Sequence[Person], *, rate: float = 0.01, seed: int = 13) -> Churn:
    """Return the company after ``rate`` of its size churned: a quarter each of joiners,
    leavers (made inactive, as an HR export shows them), movers (another department and one
    team changed) and renames (a new last name, hence a new username and email, same id)."""
    rng = random.Random(seed)
    count = max(4, round(len(people) * rate))
    quarter = count // 4
    picked = rng.sample(range(len(people)), count - quarter)  # the joiners are new
    leavers = set(picked[:quarter])
    renames = set(picked[quarter : 2 * quarter])
    movers = set(picked[2 * quarter :])
    after: list[Person] = []
    for index, person in enumerate(people):
        if index in leavers:
            person = replace(person, active=False)
        elif index in renames:
            number = int(person.id[1:])
            renamed = _person(number, rng, last=f"{person.last_name}-Marsh")
            person = replace(
                person, username=renamed.username, email=renamed.email, last_name=renamed.last_name
            )
        elif index in movers:
            department = rng.choice([d for d in DEPARTMENTS if d != person.groups[0]])
            team = rng.choice([t for t in TEAMS if t not in person.groups])
            person = replace(person, groups=(department, person.groups[1], team))
        after.append(person)
    joiners = [_person(len(people) + i, rng) for i in range(quarter)]
    return Churn(
        tuple(after + joiners),
        tuple(p.id for p in joiners),
        tuple(people[i].id for i in sorted(leavers)),
        tuple(people[i].id for i in sorted(movers)),
        tuple(people[i].id for i in sorted(renames)),
    )


def _record(person: Person) -> dict[str, object]:
    return {
        "id": person.id,
        "username": person.username,
        "email": person.email,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "active": person.active,
        "groups": list(person.groups),
    }


def write_source(people: Sequence[Person], path: Path) -> None:
    """Write people as a file source: CSV, JSON or YAML by the path's suffix (SPEC §3)."""
    kind = path.suffix.lstrip(".")
    if kind == "csv":
        columns = ["id", "username", "email", "first_name", "last_name", "active", "groups"]
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for person in people:
                row = _record(person)
                row["groups"] = ";".join(person.groups)
                row["active"] = "true" if person.active else "false"
                writer.writerow(row)
    elif kind == "json":
        path.write_text(json.dumps([_record(p) for p in people], indent=1), encoding="utf-8")
    elif kind == "yaml":
        # Written by hand, not by a YAML library: the file must not depend on what is installed.
        lines = []
        for p in people:
            lines.append(f"- id: {json.dumps(p.id)}")
            for field in ("username", "email", "first_name", "last_name"):
                lines.append(f"  {field}: {json.dumps(getattr(p, field))}")
            lines.append(f"  active: {'true' if p.active else 'false'}")
            lines.append(f"  groups: [{', '.join(json.dumps(g) for g in p.groups)}]")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        raise ValueError(f"not a file-source format: {path.name}")
