"""Reading an Okta org page by page: every user of every status, the groups, their members (idp-apis §1).

The user list is one cursor walk, or, in a big org, ``lastUpdated`` ranges walked in
parallel and a catch-up (scimsync.sources.okta_partition says why nobody is missed).

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

import functools
import itertools
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import urljoin

from scimsync.errors import ConnectorError, NotFoundError, ResponseError
from scimsync.http import HttpClient
from scimsync.http.pagination import link_header_pages
from scimsync.models import SourceDirectory, User, glob_match
from scimsync.sources.okta_model import OktaGroup, assemble, item_id, newest, parse_group, parse_user
from scimsync.sources.okta_partition import (
    ALL_TIME,
    boundaries,
    follows_ids,
    part_count,
    ranges,
    read_start,
    since,
    to_ms,
)
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
        # START of the user read (okta_partition.read_start: Date less the margin), for the
        # incremental snapshot; None until page 1 is read, or when unknown. Not lowered to the
        # newest change as the catch-up is: that would re-read every group changed at that
        # moment on each incremental read of a quiet org (okta_incremental).
        self.start: int | None = None

    # --- whole directory ----------------------------------------------------------------

    def everyone(self) -> SourceDirectory:
        """Read every user, every group and every group's members."""
        return self.everyone_parts().directory(self.system)

    def everyone_parts(self) -> Parts:
        """Read every user, every group and every group's member ids; set ``start`` (START).

        First the plan of the user read (below) beside the group list; then the member lists
        and the user lists at once, the longest first (Everyone holds every user); then the
        catch-up of a ranged read (okta_partition).
        """
        jobs: list[Callable[[], object]] = [self._plan_users, lambda: self.groups(stats=False)]
        planned, found = self.client.map_parallel(lambda job: job(), jobs)
        plan, groups = cast(_UserPlan, planned), cast(list[OktaGroup], found)
        longest = sorted(groups, key=lambda g: g.type != "BUILT_IN")  # stable: BUILT_IN first
        lists: list[Callable[[], object]] = [
            *plan.lists,
            *(functools.partial(self.member_ids, g) for g in longest),
        ]
        done = self.client.map_parallel(lambda job: job(), lists)
        users = self._finish_users(plan, done[: len(plan.lists)])
        members = {
            g.id: cast(list[str], ids) for g, ids in zip(longest, done[len(plan.lists) :], strict=True)
        }
        return Parts(users, groups, members)

    # --- the user list: one walk, or lastUpdated ranges in parallel (okta_partition) --------

    def _plan_users(self) -> _UserPlan:
        """Read page 1 of the plain list; from it and Everyone's count, choose how to read the rest."""
        label = f"GET {USERS}"
        page, after, start = self.first_page(USERS, {"limit": PAGE}, label)
        self.start = start
        if self.client.settings.concurrency < 2:
            # One request at a time: nothing to split; the walk goes on before the group list.
            listed = self._walk(page, after)()
            return _UserPlan([], None, [lambda: listed, self._deprovisioned])
        walk = _UserPlan(page, after, [self._walk(page, after), self._deprovisioned])
        if after is None:
            return walk
        parts = part_count(self._everyone_count(), len(page), self.client.settings.concurrency)
        sample = [to_ms(raw.get("lastUpdated")) if isinstance(raw, dict) else None for raw in page]
        if parts < 2 or None in sample:
            return walk  # a user without lastUpdated would be in no range
        values = cast(list[int], sample)
        newest = self._newest() if follows_ids(values) else []
        filters = ranges(boundaries(values, newest, parts, start)) if start is not None else []
        if not filters:
            return walk
        if newest:
            # An earlier START only makes the catch-up read more. The newest change listed was
            # stamped by Okta's own clock, so starting there also covers a server clock behind
            # the one that sent Date, at no cost in a busy org and one user in a quiet one.
            start = min(cast(int, start), max(newest))
        n = len(filters)
        lists = [
            functools.partial(self._range, f, f"{label} (range {i} of {n})") for i, f in enumerate(filters, 1)
        ]
        return _UserPlan(page, after, lists, since(cast(int, start)))

    def first_page(
        self, path: str, params: Mapping[str, Any], label: str
    ) -> tuple[list[Any], str | None, int | None]:
        """Read page 1 of a list; return its items, the next link and START (okta_partition)."""
        where = f"{label} page 1"
        response = self.client.request("GET", path, params=params, ok=(200,), obj=where)
        page = self.client.decode_json(response, obj=where)
        if not isinstance(page, list):
            raise ResponseError(self.system, where, "expected a JSON array in the response")
        link = (response.links.get("next") or {}).get("url")
        after = urljoin(response.url, link) if link else None
        sample = [to_ms(raw.get("lastUpdated")) if isinstance(raw, dict) else None for raw in page]
        return page, after, read_start(response.headers, [v for v in sample if v is not None])

    def _walk(
        self, page: list[Any], after: str | None, label: str = f"GET {USERS}"
    ) -> Callable[[], list[User]]:
        """Return the single walk of a user list, page 1 already read (§1.3)."""
        first = iter([(f"{label} page 1", page)])
        rest = self.pages(after, None, label, first=2) if after else iter(())
        return lambda: self._collect(itertools.chain(first, rest), self._user, "users")

    def _deprovisioned(self) -> list[User]:
        return self.users({"limit": PAGE, "filter": DEPROVISIONED}, f"GET {USERS} (DEPROVISIONED)")

    def _range(self, expression: str, label: str) -> list[User] | None:
        """Read the users one ``filter`` selects; None when the server refuses the filter (400)."""
        try:
            return self.users({"limit": PAGE, "filter": expression}, label)
        except ConnectorError as exc:
            if exc.status != 400:
                raise
            log.warning(
                "%s: %s refused (%s); reading the user list in one walk", self.system, label, exc.cause
            )
            return None

    def _finish_users(self, plan: _UserPlan, read: Sequence[object]) -> list[User]:
        """Join what the lists read; a ranged read adds its catch-up, or walks again when refused."""
        if plan.catch_up is None:
            return merge(cast(list[User], read[0]), cast(list[User], read[1]))
        lists = list(read)
        if all(found is not None for found in lists):
            lists.append(self._range(plan.catch_up, f"GET {USERS} (changed during the read)"))
        if any(found is None for found in lists):
            walk = [self._walk(plan.page, plan.after), self._deprovisioned]
            listed, gone = self.client.map_parallel(lambda job: job(), walk)
            return merge(listed, gone)
        sampled = [self._user(f"GET {USERS} page 1", raw) for raw in plan.page]
        users: dict[str, User] = {}
        for user in itertools.chain(sampled, *cast(list[list[User]], lists)):
            users[user.id] = newest(users[user.id], user) if user.id in users else user
        return sorted(users.values(), key=lambda u: u.id)

    def _everyone_count(self) -> int | None:
        """Return the users in Everyone (BUILT_IN, §1.5, ``expand=stats``); None when not visible."""
        query = {"filter": 'type eq "BUILT_IN"', "expand": "stats", "limit": PAGE}
        label = f"GET {GROUPS} (Everyone)"
        try:
            body = self.client.get_json(GROUPS, params=query, obj=label)
        except ConnectorError as exc:
            if exc.status != 400:
                raise
            return None
        found = (
            [parse_group(self.system, label, raw).users_count for raw in body]
            if isinstance(body, list)
            else []
        )
        return max((c for c in found if c is not None), default=None)

    def _newest(self) -> list[int]:
        """Return the ``lastUpdated`` of the newest users: a hint only, so a refusal (400) is none."""
        query = {
            "search": f"lastUpdated gt {ALL_TIME}",  # every user, DEPROVISIONED included (§1.4)
            "sortBy": "lastUpdated",
            "sortOrder": "desc",
            "limit": PAGE,
        }
        try:
            body = self.client.get_json(USERS, params=query, obj=f"GET {USERS} (newest)")
        except ConnectorError as exc:
            if exc.status != 400:
                raise
            return []
        values = (
            [to_ms(raw.get("lastUpdated")) for raw in body if isinstance(raw, dict)]
            if isinstance(body, list)
            else []
        )
        return [v for v in values if v is not None]

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
        self, path: str, params: Mapping[str, Any] | None, label: str, *, first: int = 1
    ) -> Iterator[tuple[str, list[Any]]]:
        """Yield ("<label> page <n>", items) for each page from page ``first``; an error names its page."""
        walk = link_header_pages(self.client, path, params=params)
        number = first - 1
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

    def collect_users(self, page: list[Any], after: str | None, label: str) -> list[User]:
        """Read the rest of a user list whose page 1 (``first_page``) is ``page``."""
        return self._walk(page, after, label)()

    def collect_groups(self, page: list[Any], after: str | None, label: str) -> list[OktaGroup]:
        """Read the rest of a group list whose page 1 (``first_page``) is ``page``."""
        first = iter([(f"{label} page 1", page)])
        rest = self.pages(after, None, label, first=2) if after else iter(())
        return self._collect(itertools.chain(first, rest), self._group, "groups")

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


@dataclass(frozen=True)
class _UserPlan:
    """How the user list is read: page 1 of the plain list, its next link, the lists to read
    in parallel and, for a ranged read, the catch-up filter (None: the single walk)."""

    page: list[Any]
    after: str | None
    lists: Sequence[Callable[[], list[User] | None]]
    catch_up: str | None = None


@dataclass(frozen=True)
class Parts:
    """A whole read before assembly: users (no groups yet), groups, each group's member ids."""

    users: list[User]
    groups: list[OktaGroup]
    members: dict[str, list[str]]

    def directory(self, system: str) -> SourceDirectory:
        """Give the users their groups (``assemble``)."""
        return assemble(system, self.users, self.groups, self.members)


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
