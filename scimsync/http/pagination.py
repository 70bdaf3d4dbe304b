"""The only place that loops over pages: one generator per paging style, each yielding item lists.

Every paginator refuses a server that sends the same cursor or link twice (it would loop
forever) and a body without its items, raising ``ResponseError``. The link followers also
refuse ``EMPTY_PAGES`` empty pages in a row that still link on: fresh links each time pass
the loop guard, and a broken server would hold the run (and its lock) forever.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from scimsync.errors import NotFoundError, ResponseError
from scimsync.http import HttpClient
from scimsync.secrets import redact

# One link-value of an RFC 8288 Link header: <target>; param=value; param="quoted, value".
_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^\s;,=]+(?:\s*=\s*(?:"[^"]*"|[^;,]*))?)*)')
_REL = re.compile(r';\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]*))', re.IGNORECASE)
# [U] No reference documents empty pages mid-list; a few are tolerated (a server may filter
# a page empty), this many in a row that still link on is taken for an endless chain.
EMPTY_PAGES = 3


class EmptyPages:
    """Count consecutive empty pages that link on; raise on the ``EMPTY_PAGES``-th."""

    def __init__(self, system: str, label: str) -> None:
        self.system = system
        self.label = label
        self.number = 0
        self.empty = 0

    def check(self, items: Sequence[Any], links_on: bool) -> None:
        """Record one page; raise ResponseError naming it when the empty run is too long."""
        self.number += 1
        self.empty = self.empty + 1 if not items and links_on else 0
        if self.empty >= EMPTY_PAGES:
            # The list's label as ``obj``, so that callers who name pages re-label it (entra, okta).
            first = self.number - self.empty + 1
            cause = f"pages {first}-{self.number} are empty but each links to a next page: an endless list"
            raise ResponseError(self.system, self.label, cause)


def cursor_pages(
    client: HttpClient,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    cursor_param: str = "cursor",
    next_field: str = "nextCursor",
    last_field: str = "isLast",
    items_field: str = "values",
    obj: str | None = None,
) -> Iterator[list[Any]]:
    """Yield pages of a cursor-paged list (Jira ``/user/list``, atlassian §1.7).

    Only ``isLast: true`` ends the walk, or a page without a cursor from a server that
    never sends ``isLast``; a page that says it is not the last but gives no cursor is
    a ResponseError, since stopping there would return a short directory.
    """
    query = dict(params or {})
    seen: set[str] = set()
    flagged = False  # the server sends isLast
    while True:
        body = client.get_json(path, params=query, obj=obj)
        yield _items(client, path, obj, body, items_field)
        last = body.get(last_field)
        flagged = flagged or last is not None
        if last is True:
            return
        cursor = body.get(next_field)
        # Omit the cursor on the first call, then pass back the nextCursor of each page (§1.7).
        if cursor is None or cursor == "":
            if not flagged:
                return
            if last is False:
                cause = f"page says {last_field}=false but has no {next_field}"
            else:
                cause = f"page has neither {last_field}=true nor a {next_field}"
            raise ResponseError(client.system, _label(path, obj), cause)
        cursor = str(cursor)
        if cursor in seen:
            raise _loop(client, path, obj, f"cursor {cursor!r}")
        seen.add(cursor)
        query[cursor_param] = cursor


def offset_pages(
    client: HttpClient,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    start_param: str = "startAt",
    size_param: str = "maxResults",
    page_size: int = 50,
    start: int = 0,
    items_field: str | None = "values",
    last_field: str | None = "isLast",
    obj: str | None = None,
) -> Iterator[list[Any]]:
    """Yield pages of an offset-paged list; ``items_field=None`` means a bare JSON array."""
    query = dict(params or {})
    position = start
    previous: list[Any] | None = None
    while True:
        query[start_param] = position
        query[size_param] = page_size
        body = client.get_json(path, params=query, obj=obj)
        if items_field is None:
            if not isinstance(body, list):
                raise _bad_body(client, path, obj, "a JSON array")
            items: list[Any] = body
        else:
            items = _items(client, path, obj, body, items_field)
        # A bare array has no "last" flag; a named flag missing from the body means "not last".
        has_flag = last_field is not None and items_field is not None
        if not items:
            return
        if items == previous:
            # A server that ignores the offset would hand out its first page forever.
            raise _loop(client, path, obj, f"the same page at {start_param}={position}")
        yield items
        if has_flag and body.get(last_field) is True:
            return
        if not has_flag and len(items) < page_size:
            return
        # Advance by what came back: servers clamp the page size (Jira group/member: 50, §1.8).
        position += len(items)
        previous = items


class Crawl:
    """Page reads of several lists in one bounded pool: at most ``http.concurrency`` in flight.

    Jobs are callables that read one page and may ``add`` more jobs (the next page of a
    chain, the remaining pages of a list whose total is now known). Each of ``concurrency``
    worker threads takes the next job as soon as it is free, so there is no barrier between
    "all first pages" and "all other pages", and a cursor or next-link chain (which must be
    read page after page) runs while the independent pages fill the other slots: an
    ``urgent`` job (a chain's next page) goes ahead of every job not urgent (issue 12).
    The first failure stops the crawl: jobs in flight finish, none starts after, and
    ``run`` raises, of the failures seen, the one of the job queued first: the same error
    every run, not whichever answer came back first (a token refused everywhere is
    reported on the first list asked, not on a random one).
    """

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._running = 0
        self._failures: list[tuple[int, BaseException]] = []  # (the job's queue number, error)
        self._cond = threading.Condition()

    def add(self, job: Callable[[], None], *, urgent: bool = False) -> None:
        """Queue ``job``; thread-safe, so a job may add the ones that follow it."""
        self.add_all((job,), urgent=urgent)

    def add_all(self, jobs: Iterable[Callable[[], None]], *, urgent: bool = False) -> None:
        """Queue ``jobs`` in their order, under one lock."""
        rank = 0 if urgent else 1
        with self._cond:
            before = len(self._queue)
            for job in jobs:
                heapq.heappush(self._queue, (rank, next(self._seq), job))
            self._cond.notify(len(self._queue) - before)

    def chain(self, pages: Iterator[list[Any]], consume: Callable[[list[Any]], None]) -> None:
        """Read ``pages`` one after another (each ``next`` sends one request), handing each to ``consume``.

        One step of a chain runs at a time, so ``consume`` is never called twice at once
        for the same chain.
        """

        def step() -> None:
            page = next(pages, None)
            if page is not None:
                consume(page)
                self.add(step, urgent=True)

        self.add(step)

    def run(self) -> None:
        """Run every job, and those they add, until none is left; raise the first failure."""
        with self._cond:
            if not self._queue:
                return
        # Every worker from the start: a first job may add many (a list's remaining pages).
        count = max(1, self.client.settings.concurrency)
        workers = [threading.Thread(target=self._work, daemon=True) for _ in range(count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if self._failures:
            raise min(self._failures, key=lambda failure: failure[0])[1]

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and self._running and not self._failures:
                    self._cond.wait()
                if self._failures or not self._queue:
                    self._cond.notify_all()  # nothing left, or a failure: the others end too
                    return
                _, number, job = heapq.heappop(self._queue)
                self._running += 1
            try:
                job()
            except BaseException as exc:  # handed to run(), which raises it
                with self._cond:
                    self._failures.append((number, exc))
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()


@dataclass(frozen=True)
class OffsetList:
    """One offset-paged list to read whole: its path, its query, and its name for errors."""

    path: str
    params: Mapping[str, Any]
    obj: str | None = None


def read_offset_lists(
    client: HttpClient,
    lists: Sequence[OffsetList],
    *,
    start_param: str = "startAt",
    size_param: str = "maxResults",
    page_size: int = 50,
    items_field: str = "values",
    total_field: str = "total",
    last_field: str = "isLast",
    missing_ok: bool = False,
) -> list[list[Any] | None]:
    """Read several offset-paged lists whole, with every independent page in parallel.

    See ``crawl_offset_lists``; this one runs a crawl of its own and returns each list's
    items (None for a list that answered 404, with ``missing_ok``).
    """
    crawl = Crawl(client)
    found: list[list[Any] | None] = [None] * len(lists)

    def done(i: int, items: list[Any] | None) -> None:
        found[i] = items

    options = dict(start_param=start_param, size_param=size_param, items_field=items_field)
    crawl_offset_lists(
        crawl,
        lists,
        done,
        page_size=page_size,
        total_field=total_field,
        last_field=last_field,
        missing_ok=missing_ok,
        **options,
    )
    crawl.run()
    return found


def crawl_offset_lists(
    crawl: Crawl,
    lists: Sequence[OffsetList],
    done: Callable[[int, list[Any] | None], None],
    *,
    start_param: str = "startAt",
    size_param: str = "maxResults",
    page_size: int = 50,
    items_field: str = "values",
    total_field: str = "total",
    last_field: str = "isLast",
    missing_ok: bool = False,
) -> None:
    """Queue in ``crawl`` the reads of several offset-paged lists; ``done(i, items)`` as each ends.

    Each first page goes out as soon as a slot is free; its ``total`` then says which pages
    remain, and those are queued at once (Jira group/member has a total and a 50-item page,
    atlassian §1.8), instead of one page after another. A list whose last page is not
    ``isLast: true`` (no total, or members added meanwhile) is then walked on page by page
    until it is. With ``missing_ok`` a list that answers 404 is done with None. ``done`` is
    called from a worker thread, once per list.
    """
    client = crawl.client

    def fetch(lst: OffsetList, start: int) -> Any:
        query = {**lst.params, start_param: start, size_param: page_size}
        return client.get_json(lst.path, params=query, obj=lst.obj)

    def more(body: Any, items: list[Any]) -> bool:
        return body.get(last_field) is not True and bool(items)

    def first(i: int) -> None:
        lst = lists[i]
        try:
            body = fetch(lst, 0)
        except NotFoundError:
            if missing_ok:
                done(i, None)
                return
            raise
        items = _items(client, lst.path, lst.obj, body, items_field)
        total = body.get(total_field)
        starts: list[int] = []
        if more(body, items) and isinstance(total, int) and not isinstance(total, bool):
            # Step by what came back: the server may clamp the page size.
            starts = list(range(len(items), total, len(items)))
        pages: dict[int, tuple[list[Any], bool]] = {0: (list(items), more(body, items))}
        if not starts:
            finish(i, pages)
            return
        lock = threading.Lock()
        crawl.add_all(functools.partial(rest, i, start, pages, len(starts) + 1, lock) for start in starts)

    def rest(
        i: int, start: int, pages: dict[int, tuple[list[Any], bool]], count: int, lock: threading.Lock
    ) -> None:
        lst = lists[i]
        body = fetch(lst, start)
        items = _items(client, lst.path, lst.obj, body, items_field)
        with lock:
            pages[start] = (items, more(body, items))
            complete = len(pages) == count
        if complete:
            finish(i, pages)

    def finish(i: int, pages: dict[int, tuple[list[Any], bool]]) -> None:
        ordered = [pages[start] for start in sorted(pages)]  # each list's pages in order
        found = [item for items, _ in ordered for item in items]
        # Fewer items than the total on an isLast page is fine (members removed meanwhile);
        # a last page that is not isLast means members were added, or there was no total.
        if not ordered[-1][1]:
            done(i, found)
            return
        lst = lists[i]
        walk = offset_pages(
            client,
            lst.path,
            params=lst.params,
            start_param=start_param,
            size_param=size_param,
            page_size=page_size,
            start=len(found),
            items_field=items_field,
            last_field=last_field,
            obj=lst.obj,
        )

        def step() -> None:
            page = next(walk, None)
            if page is None:
                done(i, found)
                return
            found.extend(page)
            crawl.add(step, urgent=True)

        crawl.add(step, urgent=True)

    crawl.add_all(functools.partial(first, i) for i in range(len(lists)))


def link_header_pages(
    client: HttpClient, path: str, *, params: Mapping[str, Any] | None = None, obj: str | None = None
) -> Iterator[list[Any]]:
    """Yield pages of a list paged by RFC 8288 ``Link: <…>; rel="next"`` headers (Okta, idp §1.3)."""
    url: str = path
    query: Mapping[str, Any] | None = params
    seen: set[str] = set()
    empty = EmptyPages(client.system, _label(path, obj))
    while True:
        response = client.request("GET", url, params=query, ok=(200,), obj=obj)
        body = client.decode_json(response, obj=obj)
        if not isinstance(body, list):
            raise _bad_body(client, path, obj, "a JSON array")
        # Follow the next link verbatim: Okta may change its cursor format (idp §1.3).
        link = _next_link(response)
        empty.check(body, link is not None)
        yield body
        seen.add(response.url)
        if link is None:
            return
        if link in seen:
            raise _loop(client, path, obj, f"link {link!r}")
        seen.add(link)
        url, query = link, None


def next_link_pages(
    client: HttpClient,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    items_field: str = "value",
    next_field: str = "@odata.nextLink",
    obj: str | None = None,
) -> Iterator[list[Any]]:
    """Yield pages of a list whose body carries an absolute next link (Graph, idp §2.3)."""
    url: str = path
    query: Mapping[str, Any] | None = params
    seen: set[str] = set()
    empty = EmptyPages(client.system, _label(path, obj))
    while True:
        body = client.get_json(url, params=query, obj=obj)
        items = _items(client, path, obj, body, items_field)
        # The link already carries every query parameter; never rebuild it (idp §2.3).
        link = body.get(next_field)
        empty.check(items, bool(link))
        yield items
        if not link:
            return
        link = str(link)
        if link in seen:
            raise _loop(client, path, obj, f"link {link!r}")
        seen.add(link)
        url, query = link, None


def _next_link(response: requests.Response) -> str | None:
    """Return the ``rel="next"`` target of a response's Link headers, made absolute, or None."""
    # requests joins repeated Link headers with ", " (Okta sends self and next apart, idp §1.3).
    for match in _LINK.finditer(response.headers.get("Link") or ""):
        rel = _REL.search(match.group(2))
        if rel and "next" in (rel.group(1) or rel.group(2) or "").lower().split():
            target: str = match.group(1).strip()
            return urljoin(str(response.url), target)
    return None


def _items(client: HttpClient, path: str, obj: str | None, body: Any, field: str) -> list[Any]:
    """Return the list under ``field``, or raise ResponseError when the body has none."""
    items = body.get(field) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise _bad_body(client, path, obj, f"an object with a {field!r} list")
    return items


def _label(path: str, obj: str | None) -> str:
    return redact(obj or f"GET {path.split('?')[0]}")


def _bad_body(client: HttpClient, path: str, obj: str | None, expected: str) -> ResponseError:
    return ResponseError(client.system, _label(path, obj), f"expected {expected} in the response")


def _loop(client: HttpClient, path: str, obj: str | None, what: str) -> ResponseError:
    cause = redact(f"pagination loop: the server sent {what} twice")
    return ResponseError(client.system, _label(path, obj), cause)
