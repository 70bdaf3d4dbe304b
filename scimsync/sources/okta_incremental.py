"""Incremental reads of an Okta org: what changed since the last read, merged into a snapshot (idp-apis §1.7).

A full read (``OktaReader.everyone_parts``) writes a snapshot beside the link state
(``<state_file>.okta.json``): every user, every group's member ids, the read's START (the
``Date`` of its first answer less a margin, ``okta_partition.read_start``) and when the last
full read ran. The next reads, until the snapshot is ``full_every`` old, are incremental:

* users ``filter=lastUpdated ge START`` (§1.4, §1.7: ``filter`` lists every status,
  DEPROVISIONED included, so a deactivation shows up), read beside the group list, read
  whole with ``expand=stats`` (3 pages for 500 groups; renamed and deleted groups are seen);
* the members of a group are read again, whole, when the group is new to the snapshot, its
  ``lastMembershipUpdated`` or ``lastUpdated`` is at or after START, or its member count
  (``expand=stats``) differs from the snapshot's;
* the result is assembled exactly as a full read assembles its lists, and saved with the
  new START (the earliest ``Date`` of this read's first answers, less the margin).

Why an incremental read never makes a present person look absent or inactive (the worst
defect: scimsync would deactivate them):

* Users are only ever added or replaced, never removed: a user is replaced only by its own
  record as Okta lists it now. Okta stamps every change of a user with ``lastUpdated``, so a
  user whose record changed after START is in the change list; one that did not change
  still has the record the snapshot holds. A user changed during a read is listed by the
  next one (its change is after that read's START, the same argument as okta_partition's
  catch-up).
* Memberships change without touching the user (§1.7): the group's timestamp moves, and
  the group is read whole again. The member count is a second check for a group whose
  timestamp does not move (Everyone, whose members Okta keeps itself, §1.5).
* Hard deletes appear in no list (§1.7). A deleted user was deactivated first (§1.4), so
  when the snapshot saw the deactivation it holds the user as inactive, which a deletion
  does not change for the plan: it stays there until the next full read. When it did not
  (deactivated and deleted between two reads), the user is missing from Everyone: the
  Everyone group is read again whenever its count moves or a user joined or changed status,
  and an active user of the snapshot missing from it makes this read a full read. Without
  a visible Everyone group (a Group Administrator's token, §1.5) deletions cannot be seen,
  so every read is a full read.

Anything unexpected (no snapshot, an unreadable one, another org, an older format, a
refused filter) makes the read a full one, with a log line saying why. The snapshot holds
people's profiles, never the token: it is written with mode 0600, through a temporary file
renamed over the old one, so that a crash leaves the old snapshot or the new one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from scimsync.errors import ConnectorError
from scimsync.models import SourceDirectory, User
from scimsync.sources.okta_model import OktaGroup, assemble
from scimsync.sources.okta_partition import since
from scimsync.sources.okta_read import GROUPS, PAGE, USERS, OktaReader

log = logging.getLogger("scimsync.sources.okta")

FORMAT = 1  # the snapshot's format version; any other is read as no snapshot
_USER_FIELDS = ("id", "username", "email", "first_name", "last_name", "display_name", "active")


def snapshot_path(state_file: Path) -> Path:
    """Return where the snapshot of a config with ``state_file`` lives: beside it."""
    return state_file.with_name(state_file.name + ".okta.json")


@dataclass(frozen=True)
class Snapshot:
    """What the last read saw: users (without groups), members by group id, START, last full read."""

    org: str
    start: int  # epoch ms, on Okta's clock
    full_at: float  # epoch s, this machine's clock
    users: Mapping[str, User]
    members: Mapping[str, Sequence[str]]


class _FullReadError(Exception):
    """An incremental read cannot be trusted; the message says why. Never leaves this module."""


class IncrementalReader:
    """Read an org incrementally against the snapshot at ``path`` (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        org: str,
        full_every: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.org = org.rstrip("/")
        self.full_every = full_every
        self._now = wall_clock

    def read(self, reader: OktaReader) -> SourceDirectory:
        """Read what changed since the snapshot, or everything; save the new snapshot."""
        try:
            snapshot = self._load()
            directory, saved = self._changes(reader, snapshot)
        except _FullReadError as why:
            log.info("%s: full read of the Okta org: %s", reader.system, why)
            return self._full(reader)
        self._save(saved)
        return directory

    # --- reads --------------------------------------------------------------------------

    def _full(self, reader: OktaReader) -> SourceDirectory:
        parts = reader.everyone_parts()
        if reader.start is None:
            # An older snapshot stays: with its own START it is as good as when it was written.
            log.warning("%s: the Okta org sent no Date and no user: no snapshot written", reader.system)
        else:
            users = {u.id: u for u in parts.users}
            self._save(Snapshot(self.org, reader.start, self._now(), users, parts.members))
        return parts.directory(reader.system)

    def _changes(self, reader: OktaReader, snapshot: Snapshot) -> tuple[SourceDirectory, Snapshot]:
        jobs: list[Callable[[], object]] = [
            functools.partial(self._changed_users, reader, snapshot.start),
            functools.partial(self._groups, reader),
        ]
        (changed, users_start), (groups, groups_start) = cast(
            list[tuple[Any, int | None]], reader.client.map_parallel(lambda job: job(), jobs)
        )
        users = dict(snapshot.users)
        joined = False
        for user in cast(list[User], changed):
            before = users.get(user.id)
            # A joiner, or a status change (Everyone may list DEPROVISIONED users or not, §1.6).
            joined = (
                joined or before is None or before.attributes.get("status") != user.attributes.get("status")
            )
            users[user.id] = user
        groups = cast(list[OktaGroup], groups)
        everyone = [g for g in groups if g.type == "BUILT_IN"]
        if not everyone:
            raise _FullReadError("the token does not see the Everyone group, so deleted users cannot be seen")
        stale = [g for g in groups if self._stale(g, snapshot, joined)]
        fresh = reader.client.map_parallel(reader.member_ids, stale)
        members = {g.id: list(snapshot.members[g.id]) for g in groups if g.id in snapshot.members}
        members.update((g.id, ids) for g, ids in zip(stale, fresh, strict=True))
        for group, ids in zip(stale, fresh, strict=True):
            if group.type == "BUILT_IN":
                _check_everyone(group, ids, users.values())
        starts = [s for s in (users_start, groups_start) if s is not None]
        start = min(starts) if starts else snapshot.start
        saved = Snapshot(self.org, start, snapshot.full_at, users, members)
        listed = sorted(users.values(), key=lambda u: u.id)
        return assemble(reader.system, listed, groups, members), saved

    @staticmethod
    def _stale(group: OktaGroup, snapshot: Snapshot, joined: bool) -> bool:
        """Tell whether a group's members must be read again (module docstring)."""
        known = snapshot.members.get(group.id)
        if known is None or group.users_count is None or group.users_count != len(known):
            return True
        if group.type == "BUILT_IN" and joined:
            return True  # Okta fills Everyone itself; its timestamp is no evidence (§1.5)
        stamps = (group.last_membership_updated, group.last_updated)
        return any(stamp is None or stamp >= snapshot.start for stamp in stamps)

    @staticmethod
    def _changed_users(reader: OktaReader, start: int) -> tuple[list[User], int | None]:
        label = f"GET {USERS} (changed since the last read)"
        try:
            page, after, now = reader.first_page(USERS, {"limit": PAGE, "filter": since(start)}, label)
            return reader.collect_users(page, after, label), now
        except ConnectorError as exc:
            if exc.status != 400:
                raise
            raise _FullReadError(f"the org refused the lastUpdated filter ({exc.cause})") from None

    @staticmethod
    def _groups(reader: OktaReader) -> tuple[list[OktaGroup], int | None]:
        label = f"GET {GROUPS}"
        page, after, now = reader.first_page(GROUPS, {"limit": PAGE, "expand": "stats"}, label)
        return reader.collect_groups(page, after, label), now

    # --- the snapshot file --------------------------------------------------------------

    def _load(self) -> Snapshot:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise _FullReadError(f"no snapshot yet ({self.path})") from None
        except OSError as exc:
            raise _FullReadError(f"the snapshot {self.path} cannot be read ({exc.strerror})") from None
        try:
            snapshot = _decode(json.loads(text))
        except (ValueError, TypeError, KeyError, AttributeError):
            raise _FullReadError(f"the snapshot {self.path} is damaged or of another version") from None
        if snapshot.org != self.org:
            raise _FullReadError(f"the snapshot {self.path} is of another org ({snapshot.org})")
        age = self._now() - snapshot.full_at
        if not 0 <= age < self.full_every:
            raise _FullReadError(f"the last full read is {age / 3600:.1f} h old (full_every)")
        return snapshot

    def _save(self, snapshot: Snapshot) -> None:
        """Write the snapshot, or say why not: the older one stays valid (its START is older)."""
        try:
            self._write(snapshot)
        except OSError as exc:
            log.warning("okta: the snapshot %s was not written (%s); the next read is longer", self.path, exc)

    def _write(self, snapshot: Snapshot) -> None:
        """Write the snapshot atomically, mode 0600 (it holds personal data)."""
        body = {
            "format": FORMAT,
            "org": snapshot.org,
            "start": snapshot.start,
            "full_at": snapshot.full_at,
            "users": [
                {**{f: getattr(u, f) for f in _USER_FIELDS}, "attributes": dict(u.attributes)}
                for u in snapshot.users.values()
            ],
            "members": {gid: list(ids) for gid, ids in snapshot.members.items()},
        }
        folder = self.path.parent
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(body, out, separators=(",", ":"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise


def _check_everyone(group: OktaGroup, ids: Iterable[str], users: Iterable[User]) -> None:
    """Refuse the merge when an active user is not in Everyone any more: deleted since (§1.7)."""
    listed = set(ids)
    gone = [u for u in users if u.active and u.id not in listed]
    if gone:
        raise _FullReadError(f"{len(gone)} active user(s) left {group.name}: deleted since the last read")


def _decode(body: Any) -> Snapshot:
    """Build a Snapshot from the file's JSON; any other shape raises ValueError (or TypeError)."""
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError("not a snapshot of this format")
    users: dict[str, User] = {}
    for raw in body["users"]:
        fields = {f: raw[f] for f in _USER_FIELDS}
        if (
            not all(isinstance(fields[f], str) for f in _USER_FIELDS[:-1])
            or type(fields["active"]) is not bool
        ):
            raise ValueError("a user of another shape")
        attributes = raw["attributes"]
        if not isinstance(attributes, dict):
            raise ValueError("attributes of another shape")
        users[fields["id"]] = User(**fields, attributes=attributes)
    members = body["members"]
    if not isinstance(members, dict) or not all(
        isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in members.values()
    ):
        raise ValueError("members of another shape")
    start, full_at, org = body["start"], body["full_at"], body["org"]
    if type(start) is not int or not isinstance(full_at, (int, float)) or not isinstance(org, str):
        raise ValueError("a header of another shape")
    return Snapshot(org, start, float(full_at), users, members)
