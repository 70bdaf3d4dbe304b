"""A made-up company: deterministic people and groups for the demo, tests and benchmark."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FIRST = (
    "Amara",
    "Bruno",
    "Chen",
    "Dalia",
    "Emeka",
    "Farah",
    "Goran",
    "Hana",
    "Ivo",
    "Jonas",
    "Keiko",
    "Lars",
    "Mei",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zofia",
)
LAST = (
    "Kowalski",
    "Rossi",
    "Nakamura",
    "Haddad",
    "Okafor",
    "Lindqvist",
    "Novak",
    "Schmidt",
    "Petrov",
    "Silva",
    "Tanaka",
    "Moreau",
    "Ivanova",
    "Costa",
    "Jensen",
    "Kaur",
    "Weber",
    "Dubois",
    "Ahmed",
    "Fischer",
)
DEPARTMENTS = ("engineering", "support", "finance", "sales", "design")
DOMAIN = "acme.example"


def make_people(count: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """Return ``count`` source-user records in the file-source format (SPEC §3)."""
    rng = random.Random(seed)
    people: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST) + i) % len(LAST)]
        local = f"{first}.{last}".lower()
        if local in seen:
            local = f"{local}{i}"  # namesakes get a number, as mail systems do
        seen.add(local)
        department = DEPARTMENTS[rng.randrange(len(DEPARTMENTS))]
        groups = [department]
        if department in ("engineering", "support"):
            groups.append("atlassian-jira-users")
        if department == "support":
            groups.append("atlassian-jira-servicedesk")
        if rng.random() < 0.3:
            groups.append("atlassian-confluence-users")
        people.append(
            {
                "id": f"00u{10000 + i}",
                "username": local,
                "email": f"{local}@{DOMAIN}",
                "first_name": first,
                "last_name": last,
                "active": True,
                "groups": groups,
                "department": department,
            }
        )
    return people


def write_csv(people: Sequence[dict[str, Any]], path: Path) -> None:
    """Write people as a file-source CSV (groups separated by ';')."""
    columns = ["id", "username", "email", "first_name", "last_name", "active", "groups", "department"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for person in people:
            row = dict(person)
            row["groups"] = ";".join(person["groups"])
            row["active"] = "true" if person["active"] else "false"
            writer.writerow(row)
