"""Reading an Okta org page by page: every user of every status, the groups, their members (idp-apis §1).

Paging follows the ``next`` link of each answer verbatim (``link_header_pages``, §1.3); this
module only numbers the pages, so that an error names the page that failed, and checks each
page's objects as they arrive. A read never returns part of a list: a page that fails after
the HTTP layer's retries, a body that is not a list of objects, a link that repeats or an
object seen twice in one list raises, naming the source and the page. Okta lists carry no
total, so a shrinking count cannot be seen; the end of a list is a page without a ``next``.
A group or user listed a moment ago whose own list answers Okta's 404 (E0000007) was deleted
meanwhile: it is read as gone, with a warning; any other 404 fails the read.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from scimsync.errors import ConnectorError, NotFoundError, ResponseError
from scimsync.http import HttpClient
from scimsync.http.pagination import link_header_pages
from scimsync.models import SourceDirectory, User, glob_match
from scimsync.sources.okta_model import OktaGroup, assemble, item_id, newest, parse_group, parse_user
from scimsync.targets.base import Progress

log = logging.getLogger("scimsync.sources.okta")


class _Listed(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_Listed)

USERS = "/api/v1/users"
GROUPS = "/api/v1/groups"
# §1.4: limit is at most 200 for most orgs; §1.5 and §1.6 recommend 200 for groups and members
# (the members' default of 1000 is "historical"). Orgs with a lower cap send shorter pages.
PAGE = 200
# §1.4: the plain list hides DEPROVISIONED users; `filter` on status shows them ("use
# filter=status eq DEPROVISIONED"). `filter` reads the store itself; `search` lags (§1.4).
DEPROVISIONED = 'status eq "DEPROVISIONED"'


class OktaReader:
    """One read of one org through ``client``; reports each page to ``progress``."""

    def __init__(self, client: HttpClient, progress: Progress) -> None:
        self.client = client
        self.system = client.system
        self._progress = progress
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    # --- whole directory ----------------------------------------------------------------

    def everyone(self) -> SourceDirectory:
        """Read every user (both lists), every group and every group's members."""
        jobs: list[Callable[[], object]] = [
            lambda: self.users({"limit": PAGE}, f"GET {USERS}"),
            lambda: self.users({"limit": PAGE, "filter": DEPROVISIONED}, f"GET {USERS} (DEPROVISIONED)"),
            lambda: self.groups(stats=False),
        ]
        listed, gone, found = self.client.map_parallel(lambda job: job(), jobs)
        users = merge(cast(list[User], listed), cast(list[User], gone))
        groups = cast(list[OktaGroup], found)
        lists = self.client.map_parallel(self.member_ids, groups)
        members = {g.id: ids for g, ids in zip(groups, lists, strict=True)}
        return assemble(self.system, users, groups, members)

    def scoped(self, include: Sequence[str], exclude: Sequence[str]) -> SourceDirectory:
        """Read only the members of the groups ``include`` matches, and then only their groups.

        The people come from the matching groups' member lists (Okta lists members as whole
        user objects, §1.6). Their other groups come from whichever costs fewer requests: one
        ``/users/{id}/groups`` per person, or the member lists of the other groups (sized by
        ``expand=stats``); with the first, nobody out of scope is read at all.
        """
        groups = self.groups(stats=True)
        included = [g for g in groups if any(glob_match(g.name, p) for p in include)]
        member_lists = self.client.map_parallel(self.members, included)
        people: dict[str, User] = {}
        for listed in member_lists:
            for user in listed:
                people[user.id] = newest(people[user.id], user) if user.id in people else user
        users = [u for u in people.values() if not _excluded(u, exclude)]
        members = {g.id: dict.fromkeys(u.id for u in m) for g, m in zip(included, member_lists, strict=True)}
        others = [g for g in groups if g.id not in members]
        pages = sum(max(1, math.ceil((g.users_count or 1) / PAGE)) for g in others)
        if len(users) <= pages:
            users = self._add_groups_per_user(users, groups, members)
        else:
            lists = self.client.map_parallel(self.member_ids, others)
            members.update((g.id, dict.fromkeys(ids)) for g, ids in zip(others, lists, strict=True))
        wanted = {u.id for u in users}
        scoped = {gid: [i for i in ids if i in wanted] for gid, ids in members.items()}
        return assemble(self.system, users, groups, scoped)

    def _add_groups_per_user(
        self, users: Sequence[User], groups: list[OktaGroup], members: dict[str, dict[str, None]]
    ) -> list[User]:
        """Add each user to the groups ``/users/{id}/groups`` names; return the users still there."""
        known = {g.id for g in groups}
        kept = []
        for user, of in zip(
            users, self.client.map_parallel(self.groups_of, [u.id for u in users]), strict=True
        ):
            if of is None:
                continue  # deleted since its group listed it
            kept.append(user)
            for group in of:
                if group.id not in known:  # created after the group list was read
                    known.add(group.id)
                    groups.append(group)
                members.setdefault(group.id, {})[user.id] = None
        return kept

    # --- lists ----------------------------------------------------------------------------

    def pages(
        self, path: str, params: Mapping[str, Any] | None, label: str
    ) -> Iterator[tuple[str, list[Any]]]:
        """Yield ("<label> page <n>", items) for each page; an error names its page."""
        walk = link_header_pages(self.client, path, params=params)
        number = 0
        while True:
            number += 1
            where = f"{label} page {number}"
            try:
                items = next(walk)
            except StopIteration:
                return
            except ConnectorError as exc:
                # link_header_pages names the list; which page failed is what the user needs.
                raise type(exc)(exc.system, where, exc.cause, status=exc.status) from None
            yield where, items

    def users(self, params: Mapping[str, Any], label: str) -> list[User]:
        """Read one list of users whole."""
        return self._collect(self.pages(USERS, params, label), self._user, "users")

    def groups(self, *, stats: bool) -> list[OktaGroup]:
        """Read every group (``stats``: with its member count, §1.5)."""
        params: dict[str, Any] = {"limit": PAGE, **({"expand": "stats"} if stats else {})}
        return self._collect(self.pages(GROUPS, params, f"GET {GROUPS}"), self._group, "groups")

    def member_ids(self, group: OktaGroup) -> list[str]:
        """Read the ids of a group's members (the users themselves come from the user lists)."""
        return [u.id for u in self._members(group, self._ref)]

    def members(self, group: OktaGroup) -> list[User]:
        """Read a group's members as users (§1.6: the same objects as the user list)."""
        return self._members(group, self._user)

    def groups_of(self, user_id: str) -> list[OktaGroup] | None:
        """Read the groups one user is in (``/users/{id}/groups``, §1.6); None: the user is gone."""
        path = f"{USERS}/{user_id}/groups"
        try:
            found = self._collect(self.pages(path, {"limit": PAGE}, f"GET {path}"), self._group)
        except NotFoundError as exc:
            if not _deleted(exc):
                raise
            log.warning("%s: user %s was deleted during the read; left out", self.system, user_id)
            return None
        self._report("user groups", 1)
        return found

    def _members(self, group: OktaGroup, parse: Callable[[str, Any], T]) -> list[T]:
        path = f"{GROUPS}/{group.id}/users"
        try:
            found = self._collect(
                self.pages(path, {"limit": PAGE}, f"GET {path} (group {group.name})"), parse
            )
        except NotFoundError as exc:
            if not _deleted(exc):
                raise
            # Listed a moment ago, gone now: deleted meanwhile, so nobody is in it any more.
            log.warning("%s: group %s was deleted during the read; no members", self.system, group.name)
            found = []
        self._report("group members", 1)
        return found

    def _collect(
        self, pages: Iterator[tuple[str, list[Any]]], parse: Callable[[str, Any], T], report: str = ""
    ) -> list[T]:
        """Check every object of every page; an object listed twice means the paging went back."""
        found: dict[str, T] = {}
        for where, items in pages:
            for raw in items:
                item = parse(where, raw)
                if item.id in found:
                    # A cursor that went back would hand out the same objects again (§1.3).
                    cause = f"{_NOUNS[type(item)]} {item.id} was already listed: the paging went back"
                    raise ResponseError(self.system, where, cause)
                found[item.id] = item
            if report:
                self._report(report, len(items))
        return list(found.values())

    def _user(self, where: str, raw: Any) -> User:
        return parse_user(self.system, where, raw)

    def _group(self, where: str, raw: Any) -> OktaGroup:
        return parse_group(self.system, where, raw)

    def _ref(self, where: str, raw: Any) -> _Ref:
        return _Ref(item_id(self.system, where, raw, "user"))

    def _report(self, what: str, count: int) -> None:
        if count == 0:
            return  # an empty last page (§1.3) reads nothing new: no progress to report
        with self._lock:
            done = self._counts[what] = self._counts.get(what, 0) + count
        self._progress(f"{self.system}: {what}", done, None)


@dataclass(frozen=True)
class _Ref:
    """A member known only by its id (its user object comes from the user lists)."""

    id: str


_NOUNS: Mapping[type, str] = {User: "user", _Ref: "user", OktaGroup: "group"}


def _deleted(exc: NotFoundError) -> bool:
    """Tell whether a 404 is Okta's own "not found" (E0000007, idp-apis §1.2), not a proxy's page."""
    return "(E0000007" in exc.cause


def merge(listed: Sequence[User], deprovisioned: Sequence[User]) -> list[User]:
    """Join the plain list and the DEPROVISIONED list; a user in both changed status meanwhile."""
    users = {u.id: u for u in listed}
    for user in deprovisioned:
        users[user.id] = newest(users[user.id], user) if user.id in users else user
    return list(users.values())


def _excluded(user: User, patterns: Sequence[str]) -> bool:
    return any(glob_match(v, p) for v in (user.username, user.email) for p in patterns)
