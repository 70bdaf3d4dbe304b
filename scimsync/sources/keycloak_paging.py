"""Offset paging for the Keycloak admin API, with overlapping pages (idp §5.2, §5.3).

Keycloak's lists (users, group members, groups, subgroups) are bare JSON arrays paged by
``first`` and ``max``, in a fixed order (username, name), with no total and no link: the
end is a page shorter than ``max`` (§5.2). A person added, removed or renamed while the
pages are read shifts every later offset, and a plain walk then skips someone without a
sign — and a skipped person would be deprovisioned. So each page starts on the last entry
of the page before it (``first`` steps by ``max - 1``): a page that does not begin with
that entry proves the list moved, and the read stops with ``ListChangedError``.
``scimsync.http.pagination.offset_pages`` steps by the page length and only notices a page
repeated whole, which is why this module exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scimsync.errors import ResponseError
from scimsync.http import HttpClient

Rep = dict[str, Any]
# Called after each page with the number of entries read so far.
Report = Callable[[int], None]


class ListChangedError(ResponseError):
    """A list moved while it was read (an entry added, removed or renamed): reading it again may work."""


@dataclass(frozen=True)
class KeycloakList:
    """One list to page through: ``path`` under the realm's admin URL, its query, its name in errors."""

    path: str
    params: Mapping[str, Any]
    about: str = ""  # what the list is, for messages: " (group /engineering)"

    def label(self, first: int, size: int) -> str:
        """Name one page the way errors show it: ``GET /users?first=0&max=500``."""
        return f"GET {self.path}?first={first}&max={size}{self.about}"


def fetch_page(client: HttpClient, lst: KeycloakList, first: int, size: int) -> list[Rep]:
    """GET one page; anything but an array of objects with an ``id`` is a ResponseError."""
    label = lst.label(first, size)
    body = client.get_json(lst.path, params={**lst.params, "first": first, "max": size}, obj=label)
    if not isinstance(body, list):
        raise ResponseError(client.system, label, "expected a JSON array (idp §5.2)")
    for entry in body:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise ResponseError(client.system, label, "an entry is not an object with an id")
    if len(body) > size:
        raise ResponseError(client.system, label, f"{len(body)} entries on a page of max={size}")
    return body


class _Walk:
    """The pages of one list, added in order; checks that each begins where the last one ended."""

    def __init__(self, system: str, lst: KeycloakList, size: int) -> None:
        self.system = system
        self.lst = lst
        self.size = size
        self.entries: list[Rep] = []
        self.ended = False
        self._ids: set[str] = set()
        self._last: str | None = None

    def add(self, first: int, page: list[Rep]) -> None:
        label = self.lst.label(first, self.size)
        if first == 0:
            new = page
        elif self.ended:
            if page:
                # A short page that was not the last: the list grew, or something cut the page.
                cause = "a page after a short page is not empty: the list grew while it was read"
                raise ListChangedError(self.system, label, f"{cause}, or a proxy cut a page short")
            return
        else:
            if not page or page[0]["id"] != self._last:
                cause = "the page does not begin with the last entry of the page before: the list changed"
                raise ListChangedError(
                    self.system, label, f"{cause} (added, removed or renamed) during the read"
                )
            new = page[1:]
        for entry in new:
            if entry["id"] in self._ids:
                raise ResponseError(self.system, label, f"id '{entry['id']}' is listed twice")
            self._ids.add(entry["id"])
        self.entries.extend(new)
        self.ended = len(page) < self.size
        self._last = page[-1]["id"] if page else None

    def confirm_end(self, first: int, page: list[Rep]) -> None:
        """Check the page asked from the last entry of a short page on: it must be that entry alone."""
        if len(page) == 1 and page[0]["id"] == self._last:
            return
        label = self.lst.label(first, self.size)
        cause = "the page after a short page does not hold only its last entry: a proxy cut a page short"
        raise ListChangedError(self.system, label, f"{cause}, or the list changed while it was read")


def read_list(client: HttpClient, lst: KeycloakList, size: int, report: Report | None = None) -> list[Rep]:
    """Read a whole list page by page, each page overlapping the one before by one entry.

    A short page ends the list only if the page asked from its last entry on holds that
    entry alone: a proxy or gateway that caps pages below ``max`` also serves short pages,
    and a list without a count (group members, /groups) would otherwise end there, leaving
    out everyone past the cut (idp §5.2 documents no cap; [U] assumed possible).
    """
    walk = _Walk(client.system, lst, size)
    first = 0
    while True:
        page = fetch_page(client, lst, first, size)
        walk.add(first, page)
        if report is not None:
            report(len(walk.entries))
        if walk.ended:
            if page:
                last = first + len(page) - 1
                walk.confirm_end(last, fetch_page(client, lst, last, size))
            return walk.entries
        first += size - 1


def planned_starts(expected: int, size: int) -> list[int]:
    """Return the ``first`` of every page a list of ``expected`` entries needs, the short last one too."""
    starts = [0]
    while starts[-1] + size <= expected:
        starts.append(starts[-1] + size - 1)
    return starts


def read_counted(
    client: HttpClient, lst: KeycloakList, size: int, expected: int, report: Report | None = None
) -> list[Rep]:
    """Read a list whose length a count gave, every page at once; on past the count if it grew.

    Every page is checked in order as ``read_list`` checks it, so a page served before a
    change and its neighbour served after it cannot hide a skipped entry.
    """
    starts = planned_starts(expected, size)
    pages = client.map_parallel(lambda first: fetch_page(client, lst, first, size), starts)
    walk = _Walk(client.system, lst, size)
    for first, page in zip(starts, pages, strict=True):
        walk.add(first, page)
        if report is not None:
            report(len(walk.entries))
    first = starts[-1]
    while not walk.ended:
        first += size - 1
        walk.add(first, fetch_page(client, lst, first, size))
        if report is not None:
            report(len(walk.entries))
    return walk.entries
