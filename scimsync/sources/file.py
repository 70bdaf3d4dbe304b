"""A source that reads user records from a CSV, JSON or YAML file (SPEC §3, "file").

Records use the §4 field names; ``id`` defaults to ``username``, ``active`` to true,
and any other field goes to ``attributes``. Groups are the names the records list.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml

from scimsync.config import FileSourceConfig
from scimsync.errors import ConnectorError
from scimsync.models import Group, SourceDirectory, User, key
from scimsync.targets.base import Progress, no_progress

FIELDS = ("id", "username", "email", "first_name", "last_name", "display_name", "active", "groups")
REQUIRED = ("username", "email")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


class FileSource:
    """Read users from a file; for demos, tests and IdPs that can only export."""

    type = "file"

    def __init__(self, name: str, config: FileSourceConfig) -> None:
        self.name = name
        self.path: Path = config.path

    def check(self) -> str:
        """Read and validate the whole file; describe what it holds."""
        users = self.read().users
        return f"file with {len(users)} user{'' if len(users) == 1 else 's'}"

    def read(self, *, progress: Progress = no_progress) -> SourceDirectory:
        """Read every user record and derive the groups from them."""
        users: list[User] = []
        first_seen: dict[str, str] = {}
        for where, record in self._records():
            user = self._user(where, record)
            if user.id in first_seen:
                self._fail(where, f"duplicate id '{user.id}' (also in {first_seen[user.id]})")
            first_seen[user.id] = where
            users.append(user)
        progress("users", len(users), len(users))
        return _with_groups(users)

    def close(self) -> None:
        """Release nothing: the file is read whole and closed."""

    def _fail(self, where: str, cause: str) -> NoReturn:
        raise ConnectorError(self.name, f"{self.path} {where}".rstrip(), cause)

    def _records(self) -> Iterator[tuple[str, Any]]:
        suffix = self.path.suffix.lower()
        if suffix not in (".csv", ".json", ".yaml", ".yml"):
            self._fail("", f"unsupported file type '{suffix}' (use .csv, .json, .yaml or .yml)")
        try:
            # utf-8-sig: spreadsheet programs start their CSV exports with a byte order mark.
            text = self.path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            self._fail("", f"cannot read: {exc.strerror or exc}")
        except UnicodeDecodeError:
            self._fail("", "not UTF-8 text")
        if suffix == ".csv":
            yield from self._csv_records(text)
        else:
            yield from self._document_records(self._load(text, suffix))

    def _csv_records(self, text: str) -> Iterator[tuple[str, Any]]:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        header = reader.fieldnames or []
        missing = [f for f in REQUIRED if f not in header]
        if missing:
            self._fail("line 1", f"missing column '{missing[0]}'")
        try:
            for row in reader:
                if None in row:
                    self._fail(f"line {reader.line_num}", "more values than columns")
                if None in row.values():
                    # A half-written export: guessing the rest could deprovision someone.
                    self._fail(f"line {reader.line_num}", "fewer values than columns (a truncated file?)")
                yield f"line {reader.line_num}", row
        except csv.Error as exc:
            # line_num still points at the end of the last good record.
            self._fail(f"line {reader.line_num + 1}", f"invalid CSV: {exc}")

    def _load(self, text: str, suffix: str) -> Any:
        try:
            return json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except json.JSONDecodeError as exc:
            self._fail(f"line {exc.lineno}", f"invalid JSON: {exc.msg}")
        except yaml.MarkedYAMLError as exc:
            line = f"line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
            self._fail(line, f"invalid YAML: {exc.problem or exc.context}")
        except yaml.YAMLError as exc:
            self._fail("", f"invalid YAML: {exc}")

    def _document_records(self, data: Any) -> Iterator[tuple[str, Any]]:
        if isinstance(data, dict) and set(data) == {"users"}:
            data = data["users"]
        if not isinstance(data, list):
            self._fail("", "expected a list of user records, or {users: [...]}")
        for number, record in enumerate(data, start=1):
            if not isinstance(record, dict):
                self._fail(f"record {number}", "must be a mapping of field names to values")
            yield f"record {number}", record

    def _user(self, where: str, record: Mapping[str, Any]) -> User:
        text = {f: self._text(where, record, f) for f in FIELDS if f not in ("active", "groups")}
        for name in REQUIRED:
            if not text[name]:
                self._fail(where, f"missing field '{name}'")
        first, last = text["first_name"], text["last_name"]
        return User(
            id=text["id"] or text["username"],
            username=text["username"],
            email=text["email"],
            first_name=first,
            last_name=last,
            display_name=text["display_name"] or f"{first} {last}".strip(),
            active=self._active(where, record.get("active")),
            groups=self._groups(where, record.get("groups")),
            attributes={str(k): v for k, v in record.items() if k not in FIELDS},
        )

    def _text(self, where: str, record: Mapping[str, Any], field: str) -> str:
        value = record.get(field)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int):
            self._fail(where, f"field '{field}' must be text")
        return str(value).strip()

    def _active(self, where: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        word = "" if value is None else str(value).strip().lower()
        if word in _TRUE or not word:
            return True
        if word in _FALSE:
            return False
        self._fail(where, "field 'active' must be true or false (or yes/no, 1/0)")

    def _groups(self, where: str, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = value.split(";")
        if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
            self._fail(where, "field 'groups' must be a list of group names, or names separated by ';'")
        return tuple(g.strip() for g in value if g.strip())


def _with_groups(users: list[User]) -> SourceDirectory:
    """Name each group as first spelled (names compare case-insensitively, SPEC §4)."""
    spelling: dict[str, str] = {}
    for name in (g for u in users for g in u.groups):
        spelling.setdefault(key(name), name)
    canonical = [
        dataclasses.replace(u, groups=tuple(dict.fromkeys(spelling[key(g)] for g in u.groups))) for u in users
    ]
    members: dict[str, list[str]] = {k: [] for k in spelling}
    for user in canonical:
        for name in user.groups:
            members[key(name)].append(user.id)
    groups = tuple(
        Group(id=spelling[k], name=spelling[k], member_ids=tuple(ids)) for k, ids in members.items()
    )
    return SourceDirectory(users=tuple(canonical), groups=groups)
