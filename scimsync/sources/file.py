"""A source that reads user records from a CSV, JSON or YAML file (SPEC §3, "file").

Records use the §4 field names, or the file's own column names through ``columns``.
A record needs a username or an email (an inactive one, an id at least): ``username``
defaults to the email, ``id`` to the username, ``active`` to true; every column not
mapped to a field goes to ``attributes``. Every value is read as text. Groups are the names the records list
in ``groups`` and in the ``group_columns``. Parsing itself lives in ``file_formats``.
"""

from __future__ import annotations

import dataclasses
import difflib
import gc
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from scimsync.config import FileSourceConfig
from scimsync.errors import ConnectorError
from scimsync.http import HttpSettings
from scimsync.models import Group, SourceDirectory, User, key
from scimsync.sources.file_formats import (
    FormatError,
    csv_rows,
    decode,
    document_records,
    load_json,
    load_yaml,
)
from scimsync.targets.base import Progress, no_progress

FIELDS = FileSourceConfig.FIELDS
# A number here loses what makes it an identity (leading zeros, formatting): JSON must quote it.
IDENTITY = ("id", "username", "email")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
SUFFIXES = (".csv", ".json", ".yaml", ".yml")


class FileSource:
    """Read users from a file; for HR exports, demos, tests and IdPs that can only export."""

    type = "file"

    def __init__(self, name: str, config: FileSourceConfig, settings: HttpSettings | None = None) -> None:
        # `settings` (the HTTP layer's) is part of every source's constructor; a file needs none.
        self.name = name
        self.path: Path = config.path
        self.config = config
        # model field -> the file's column (or JSON/YAML key)
        self.column = {f: config.columns.get(f, f) for f in FIELDS}
        self._mapped = frozenset(self.column.values())  # every other column is an attribute
        self._text_columns = [(f, self.column[f]) for f in FIELDS if f not in ("active", "groups")]
        self._active_words = {w.strip().casefold() for w in config.active_values}
        self._inactive_words = {w.strip().casefold() for w in config.inactive_values}

    def check(self) -> str:
        """Read and validate the whole file; describe what it holds."""
        users = self.read().users
        return f"file with {len(users)} user{'' if len(users) == 1 else 's'}"

    def read(self, *, progress: Progress = no_progress) -> SourceDirectory:
        """Read every user record and derive the groups from them.

        The first reading keeps no JSON line numbers; a file it refuses is read again
        with them, so that the error names its line.
        """
        # The reading builds many small objects and frees none: a cycle collection every
        # few hundred of them (each one walking everything built so far) would double its time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            try:
                users = self._users(lines=False)
            except ConnectorError:
                users = self._users(lines=True)
            directory = _with_groups(users)
        finally:
            if collecting:
                gc.enable()
        progress("users", len(users), len(users))
        return directory

    def _users(self, *, lines: bool) -> list[User]:
        users: list[User] = []
        first_seen: dict[str, str] = {}
        for where, record in self._records(lines=lines):
            user = self._user(where, record)
            if user.id in first_seen:
                self._fail(where, f"duplicate id '{user.id}' (also in {first_seen[user.id]})")
            first_seen[user.id] = where
            users.append(user)
        return users

    def close(self) -> None:
        """Release nothing: the file is read whole and closed."""

    def _fail(self, where: str, cause: str) -> NoReturn:
        raise ConnectorError(self.name, f"{self.path} {where}".rstrip(), cause)

    @property
    def _has_statuses(self) -> bool:
        return bool(self.config.active_values or self.config.inactive_values)

    # --- reading the file ---------------------------------------------------------

    def _records(self, *, lines: bool) -> Iterator[tuple[str, Mapping[str, Any]]]:
        suffix = self.path.suffix.lower()
        if suffix not in SUFFIXES:
            self._fail("", f"unsupported file type '{suffix}' (use .csv, .json, .yaml or .yml)")
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            self._fail("", f"cannot read: {exc.strerror or exc}")
        try:
            text = decode(data, self.config.encoding)
            if suffix == ".csv":
                header, rows = csv_rows(text, self.config.delimiter)
                self._check_columns(header, "line 1", header=True)
                yield from rows
            else:
                data = load_json(text, lines=lines) if suffix == ".json" else load_yaml(text)
                records = list(document_records(data))
                if records:
                    seen = dict.fromkeys(k for _, r in records for k in r)
                    self._check_columns(list(seen), "", header=False)
                yield from records
        except FormatError as exc:
            self._fail(exc.where, exc.cause)

    def _check_columns(self, names: list[str], where: str, *, header: bool) -> None:
        """Refuse a configured column the file does not have, naming the closest one it has.

        ``names`` are a CSV header's columns, or every key some JSON/YAML record has.
        """
        wanted = [*self.config.columns.values(), *self.config.group_columns]
        if self._has_statuses:
            wanted.append(self.column["active"])
        present = set(names)
        for column in wanted:
            if column not in present:
                close = difflib.get_close_matches(column, names, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'? " if close else ""
                self._fail(where, f"no column '{column}' ({hint}the file has: {', '.join(names)})")
        username, email = self.column["username"], self.column["email"]
        if header and not present & {username, email}:
            self._fail(
                where,
                f"no username or email column (looked for '{username}' and '{email}'; "
                f"the file has: {', '.join(names)})",
            )

    # --- one record -> one user ---------------------------------------------------

    def _user(self, where: str, record: Mapping[str, Any]) -> User:
        text = {}
        for field, column in self._text_columns:
            value = record.get(column)
            # Plain text, the usual case, without the checks of _text.
            text[field] = value.strip() if type(value) is str else self._text(where, record, field)
        username = text["username"] or text["email"]
        active = self._active(where, record)
        # A leaver whose username and email HR blanked is still a leaver: read them with
        # the id alone (the mapping skips them with a notice) rather than stop everyone.
        if not username and (active or not text["id"]):
            names = f"'{self.column['username']}' and '{self.column['email']}'"
            self._fail(where, f"needs a username or an email ({names} are empty)")
        first, last = text["first_name"], text["last_name"]
        return User(
            id=text["id"] or username,
            username=username,
            email=text["email"],
            first_name=first,
            last_name=last,
            display_name=text["display_name"] or f"{first} {last}".strip(),
            active=active,
            groups=self._groups(where, record),
            attributes={str(k): v for k, v in record.items() if k not in self._mapped},
        )

    def _text(self, where: str, record: Mapping[str, Any], field: str) -> str:
        column = self.column[field]
        value = record.get(column)
        if value is None:
            return ""
        if isinstance(value, str):
            return value.strip()
        if isinstance(value, bool | int | float) and field in IDENTITY:
            # Only JSON has typed scalars here: YAML is read as text.
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            self._fail(where, f"field '{column}' must be a string, not {shown} (put it in quotes)")
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        self._fail(where, f"field '{column}' must be text")

    def _active(self, where: str, record: Mapping[str, Any]) -> bool:
        column = self.column["active"]
        value = record.get(column)
        if isinstance(value, bool):
            return value
        if value is not None and not isinstance(value, str | int):
            self._fail(where, f"field '{column}' must be text")
        word = "" if value is None else str(value).strip()
        if self._has_statuses:
            return self._status(where, column, word)
        if word.lower() in _TRUE or not word:
            return True
        if word.lower() in _FALSE:
            return False
        self._fail(where, f"field '{column}' must be true or false (or yes/no, 1/0)")

    def _status(self, where: str, column: str, word: str) -> bool:
        if word.casefold() in self._active_words:
            return True
        if word.casefold() in self._inactive_words:
            return False
        known = ", ".join(w.strip() for w in [*self.config.active_values, *self.config.inactive_values])
        self._fail(
            where,
            f"field '{column}' has the value '{word}', which is in neither active_values nor "
            f"inactive_values (known values: {known})",
        )

    def _groups(self, where: str, record: Mapping[str, Any]) -> tuple[str, ...]:
        columns = [self.column["groups"], *self.config.group_columns]
        return tuple(g for column in columns for g in self._group_names(where, column, record.get(column)))

    def _group_names(self, where: str, column: str, value: Any) -> Iterable[str]:
        separator = self.config.group_separator
        if value is None:
            return ()
        if isinstance(value, str):
            value = value.split(separator)
        if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
            self._fail(
                where, f"field '{column}' must be a list of group names, or names separated by '{separator}'"
            )
        return [g.strip() for g in value if g.strip()]


def _with_groups(users: list[User]) -> SourceDirectory:
    """Name each group as first spelled (names compare case-insensitively, SPEC §4)."""
    spelling: dict[str, str] = {}
    for name in (g for u in users for g in u.groups):
        spelling.setdefault(key(name), name)
    members: dict[str, list[str]] = {name: [] for name in spelling.values()}  # by the first spelling
    canonical = []
    for user in users:
        names = tuple(dict.fromkeys(spelling[key(g)] for g in user.groups))
        for name in names:
            members[name].append(user.id)
        # Most records already spell every group the first way and list it once.
        canonical.append(user if names == user.groups else dataclasses.replace(user, groups=names))
    groups = tuple(Group(id=name, name=name, member_ids=tuple(ids)) for name, ids in members.items())
    return SourceDirectory(users=tuple(canonical), groups=groups)
