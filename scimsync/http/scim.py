"""The parts of SCIM 2.0 (RFC 7643, RFC 7644) every SCIM connector shares (idp §6, atlassian §3).

The media type, error bodies as one line, filter values, ``/ServiceProviderConfig``,
and the ``ListResponse`` pager with the integrity checks that keep a partial listing
from ever passing for a complete one.
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import requests

from scimsync.errors import NotFoundError, ResponseError
from scimsync.http import HttpClient, default_error_parser
from scimsync.http.errors import one_line

MEDIA_TYPE = "application/scim+json"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DEFAULT_PAGE_SIZE = 100  # idp §0: without a filter.maxResults, ask for 100 (Atlassian's cap too, §3.4)
SERVICE_PROVIDER_CONFIG = "/ServiceProviderConfig"

# An attribute path a filter may name: `userName`, `emails.value`, or one with its schema URN.
_ATTRIBUTE = re.compile(r"(?:urn:[\w.:-]+:)?[A-Za-z][\w$-]*(?:\.[A-Za-z][\w$-]*)?")

log = logging.getLogger("scimsync.scim")

T = TypeVar("T")

# Called after each page: (resources read so far, totalResults).
PageProgress = Callable[[int, int], None]


# --- error bodies ---------------------------------------------------------------------


@dataclass(frozen=True)
class ScimError:
    """A SCIM error body (idp §6.4): ``status`` is a string, ``scimType`` is optional."""

    status: str
    scim_type: str
    detail: str

    def line(self, *, http_status: int | None = None) -> str:
        """Return one line with the status (unless it repeats ``http_status``), scimType and detail."""
        parts = []
        if self.status and self.status != str(http_status):
            parts.append(f"status {self.status}")
        if self.scim_type:
            parts.append(f"scimType {self.scim_type}")
        head, detail = ", ".join(parts), one_line(self.detail)
        if head and detail:
            return f"{head}: {detail}"
        return head or detail or "a SCIM error without detail"


def read_error(body: Any) -> ScimError | None:
    """Return the SCIM error a decoded body holds, or None when it is not one."""
    if not isinstance(body, dict) or ERROR not in _schemas(body):
        return None
    return ScimError(
        # §6.4: `status` is a string; a service that sends a number still means the same.
        status=_text(body.get("status")),
        scim_type=_text(body.get("scimType")),
        detail=_text(body.get("detail")),
    )


def parse_error(response: requests.Response) -> str:
    """Return the cause an error response gives, on one line (the HttpClient's error parser)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = read_error(body)
    if error is not None:
        return error.line(http_status=response.status_code)
    if isinstance(body, dict):
        # Not a SCIM error, but JSON: Atlassian's 401/403 `{"error": ...}` (atlassian §3.8).
        return default_error_parser(response)
    kind = (response.headers.get("Content-Type") or "no content type").split(";")[0].strip()
    text = one_line(response.text)[:120]
    return f"not a SCIM error body ({kind}): {text}" if text else f"an empty body ({kind})"


def _schemas(body: dict[str, Any]) -> list[Any]:
    schemas = body.get("schemas")
    return schemas if isinstance(schemas, list) else []


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# --- filters --------------------------------------------------------------------------


def filter_value(value: str) -> str:
    """Quote ``value`` for a filter as a JSON string: quotes and backslashes escaped (RFC 7644 §3.4.2.2)."""
    return json.dumps(value, ensure_ascii=False)


def eq_filter(attribute: str, value: str) -> str:
    """Return the filter ``attribute eq "value"``, e.g. ``userName eq "amara.k@example.test"``."""
    if not _ATTRIBUTE.fullmatch(attribute):
        raise ValueError(f"not a SCIM attribute path: {attribute!r}")
    return f"{attribute} eq {filter_value(value)}"


def value_path(attribute: str, sub_attribute: str, value: str) -> str:
    """Return the value path ``attribute[sub eq "value"]``, e.g. ``members[value eq "2819c223"]`` (§3.5.2)."""
    if not _ATTRIBUTE.fullmatch(attribute):
        raise ValueError(f"not a SCIM attribute path: {attribute!r}")
    return f"{attribute}[{eq_filter(sub_attribute, value)}]"


# --- resources ------------------------------------------------------------------------


def choose_email(emails: Any) -> str:
    """Return the primary email, else the first of type work, else the first ("" if none).

    RFC 7643 §2.4: "primary" is true for at most one value; more than one, or values
    that are not objects with a string ``value``, raise ValueError naming the problem.
    """
    if emails is None:
        return ""
    if isinstance(emails, list) and len(emails) == 1 and isinstance(emails[0], dict):
        # The usual case, checked the same way in one pass: one address is the one shown.
        value, primary = emails[0].get("value", ""), emails[0].get("primary", False)
        if isinstance(value, str) and (not value or isinstance(primary, bool)):
            return value
    if not isinstance(emails, list) or not all(isinstance(e, dict) for e in emails):
        raise ValueError("emails is not a list of objects")
    if any(not isinstance(e.get("value", ""), str) for e in emails):
        raise ValueError("an email's value is not a string")
    values = [e for e in emails if e.get("value")]
    if any(not isinstance(e.get("primary", False), bool) for e in values):
        raise ValueError("an email's primary is not true or false")
    primary = [e for e in values if e.get("primary") is True]
    if len(primary) > 1:
        # Guessing could switch the account to another person's address.
        raise ValueError(f"{len(primary)} emails are marked primary")
    work = [e for e in values if str(e.get("type") or "").lower() == "work"]
    chosen = (primary or work or values or [{"value": ""}])[0]
    return str(chosen["value"])


# --- discovery ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceConfig:
    """What ``/ServiceProviderConfig`` announces that a connector uses (idp §6.1)."""

    max_results: int | None = None  # filter.maxResults: the most resources one response holds
    auth_schemes: tuple[str, ...] = ()  # authenticationSchemes[].type, e.g. "oauthbearertoken"
    # The `supported` flags of the features (RFC 7643 §5); None where the service says nothing.
    patch: bool | None = None
    filtering: bool | None = None
    bulk: bool | None = None
    etag: bool | None = None


def read_service_config(client: HttpClient) -> ServiceConfig | None:
    """Read ``/ServiceProviderConfig``; None when the service has none (404)."""
    label = f"GET {SERVICE_PROVIDER_CONFIG}"
    try:
        body = client.get_json(SERVICE_PROVIDER_CONFIG, obj=label)
    except NotFoundError:
        # RFC 7644 §4 requires it, but paging works without it: default page size, no hints.
        log.info("%s: no %s (404); asking for %d per page", client.system, label, DEFAULT_PAGE_SIZE)
        return None
    if not isinstance(body, dict):
        raise ResponseError(client.system, label, "not a SCIM ServiceProviderConfig (not a JSON object)")
    error = read_error(body)
    if error is not None:
        raise ResponseError(
            client.system, label, f"a SCIM error instead of the configuration: {error.line()}"
        )
    filters = body.get("filter")
    limit = filters.get("maxResults") if isinstance(filters, dict) else None
    if limit is not None and not _is_count(limit, minimum=1):
        # [U] A nonsensical cap is ignored rather than fatal: the pager never trusts
        # page sizes anyway (it steps by what came back).
        log.warning("%s: ignoring filter.maxResults %r (not a positive integer)", client.system, limit)
        limit = None
    schemes = body.get("authenticationSchemes")
    types = tuple(
        str(s["type"])
        for s in (schemes if isinstance(schemes, list) else [])
        if isinstance(s, dict) and s.get("type")
    )
    return ServiceConfig(
        max_results=limit,
        auth_schemes=types,
        patch=_supported(body, "patch"),
        filtering=_supported(body, "filter"),
        bulk=_supported(body, "bulk"),
        etag=_supported(body, "etag"),
    )


def _supported(body: dict[str, Any], feature: str) -> bool | None:
    """Return ``feature.supported`` when it is true or false; None when absent or not a boolean."""
    section = body.get(feature)
    flag = section.get("supported") if isinstance(section, dict) else None
    return flag if isinstance(flag, bool) else None


def page_size(service: ServiceConfig | None, wanted: int | None = None) -> int:
    """Return the ``count`` to ask: ``wanted``, else the maximum the service announces, else 100."""
    cap = service.max_results if service else None
    size = wanted or cap or DEFAULT_PAGE_SIZE
    return min(size, cap) if cap else size


# --- the ListResponse pager -----------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One ListResponse page, checked: ``resources`` are objects with an ``id``."""

    start: int
    total: int
    resources: list[dict[str, Any]]


class _ListMovedError(Exception):
    """The list moved under a read (resources added or removed meanwhile): reading it again may work."""

    def __init__(self, what: str, start: int) -> None:
        super().__init__(what)
        self.start = start

    def cause(self) -> str:
        """Say, for the second time the list moved, what was seen."""
        return str(self)


class _TotalChangedError(_ListMovedError):
    """``totalResults`` moved during a read: resources were added or removed meanwhile."""

    def __init__(self, before: int, after: int, start: int) -> None:
        super().__init__(f"{before} -> {after} at startIndex {start}", start)
        self.before, self.after = before, after

    def cause(self) -> str:
        """Say how totalResults moved."""
        return (
            f"totalResults changed while reading, twice ({self}): the directory is changing; run again later"
        )


def page_label(path: str, start: int) -> str:
    """Name one page in messages: ``GET /Users startIndex=101``."""
    return f"GET {path} startIndex={start}"


@dataclass(frozen=True)
class ListSpec:
    """One list to read whole: its path, page size, noun for messages, progress and ``query`` (a filter)."""

    path: str
    count: int
    noun: str = "resource"
    progress: PageProgress | None = None
    query: Mapping[str, str] | None = None


def read_list(
    client: HttpClient,
    path: str,
    *,
    count: int,
    noun: str = "resource",
    progress: PageProgress | None = None,
    query: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Read every resource of a list (``/Users``, ``/Groups``) or raise; never return part of it."""
    return read_lists(client, [ListSpec(path, count, noun, progress, query)])[0]


def read_lists(client: HttpClient, specs: Sequence[ListSpec]) -> list[list[dict[str, Any]]]:
    """Read several lists at once, each whole or raise; never return part of one.

    The first pages go out together; once they tell ``totalResults``, every later page of
    every list is asked for, ``concurrency`` in flight at a time (``_read_pages``). A list
    that moves during the read (its ``totalResults`` changes, or a page does not begin with
    the last resource of the page before) is read again once; a second move is a
    ResponseError naming the list or the page, as is every integrity failure of ``_ListRead``.
    """
    reads = [_ListRead(client, spec) for spec in specs]
    moved = list(_read_together(client, reads).items())
    for n, why in moved:
        log.warning("%s: %s moved during the read (%s); reading it again", client.system, specs[n].path, why)
        reads[n] = _ListRead(client, specs[n])
    if moved:
        again = _read_together(client, [reads[n] for n, _ in moved])
        for at, why in again.items():
            path = specs[moved[at][0]].path
            if isinstance(why, _TotalChangedError):
                raise ResponseError(client.system, f"GET {path}", why.cause())
            raise ResponseError(client.system, page_label(path, why.start), why.cause())
    return [read.items for read in reads]


def in_order(client: HttpClient, calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``calls`` at once (up to ``concurrency``); return the results, or raise the first failure in order.

    In order, not in time: when several fail, the error is the same every run.
    """
    if len(calls) <= 1:
        return [call() for call in calls]  # no thread for a single request
    with ThreadPoolExecutor(max_workers=max(1, min(len(calls), client.settings.concurrency))) as pool:
        futures = [pool.submit(call) for call in calls]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()


def _read_together(client: HttpClient, reads: list[_ListRead]) -> dict[int, _ListMovedError]:
    """Read ``reads`` to their ends; return the ones that moved (by position), the rest complete."""
    in_order(client, [read.begin for read in reads])
    _read_pages(client, reads)
    return {n: read.moved for n, read in enumerate(reads) if read.moved is not None}


def _read_pages(client: HttpClient, reads: list[_ListRead]) -> None:
    """Ask for the planned pages of ``reads``, ``concurrency`` in flight at all times; take them in order.

    A page is asked for as soon as any request in flight is answered (no waves: a slow
    page holds up no request but its own), in plan order; pages are taken in the order
    asked, since each list's pages are checked one after the other, so a page that shows
    a list moved stops that list's requests early. Any other failure cancels what has not
    started and is raised once the requests in flight are done.
    """
    if not any(read.queue for read in reads):
        return
    width = max(1, client.settings.concurrency)
    asked: deque[tuple[_ListRead, int, Future[Page]]] = deque()
    with ThreadPoolExecutor(max_workers=width) as pool:
        try:
            while True:
                flying = [future for _, _, future in asked if not future.done()]
                while len(flying) < width:
                    read = next((r for r in reads if r.queue), None)
                    if read is None:
                        break
                    start = read.queue.popleft()
                    read.flying.append(start)
                    asked.append((read, start, pool.submit(read.fetch, start)))
                    flying.append(asked[-1][2])
                if not asked:
                    return
                if not asked[0][2].done():
                    wait(flying, return_when=FIRST_COMPLETED)
                while asked and asked[0][2].done():
                    read, start, future = asked.popleft()
                    page = future.result()
                    read.flying.remove(start)
                    read.take(start, page)
        finally:
            for _, _, future in asked:
                future.cancel()


def count_resources(client: HttpClient, path: str) -> int:
    """Return the ``totalResults`` of a list, reading one resource (a cheap authenticated read)."""
    label = page_label(path, 1)
    body = client.get_json(path, params={"startIndex": 1, "count": 1}, obj=label)
    return parse_page(client.system, label, body, 1).total


class _ListRead:
    """One read of a list, page by page: each page starts on the last resource of the one before.

    Offset paging shifts when a resource before the read position is removed and another
    is added (``totalResults`` unchanged): the next page would start one too far on and
    skip someone, who would then be deprovisioned. So pages overlap by one: a page asked
    at the index of the last resource read must begin with that resource, or the list
    moved (``_ListMovedError``). The next ``startIndex`` is the index of the last resource
    received, since a service may return fewer than ``count`` (idp §6.2; reference §3.4:
    Atlassian serves at most 100 whatever ``count`` asks). The first page tells the total
    and how many a page holds: the later pages are planned from both, spaced by that size
    less one, up to the page that reaches ``totalResults`` and never past it (RFC 7644
    §3.4.2.4). A page is taken only if it starts exactly on the last resource taken;
    after a short page the pages planned beyond it are dropped and the plan starts again
    from there. A short page never ends the read: only reaching ``totalResults`` does.
    """

    def __init__(self, client: HttpClient, spec: ListSpec) -> None:
        self.client, self.path, self.noun, self.progress = client, spec.path, spec.noun, spec.progress
        self.count = max(2, spec.count)  # two at least: a page of one would hold nothing but the overlap
        self.query = dict(spec.query or {})
        self.items: list[dict[str, Any]] = []
        self.seen: dict[str, int] = {}  # resource id -> startIndex of the page it came in
        self.last = 0  # the index of the last resource read: where the next page starts
        self.total = 0
        self.step = 1  # how far apart planned pages start: the first page's size less the overlap
        # After a page that held nothing but the overlap, the next page starts past it.
        self.unanchored = False
        self.queue: deque[int] = deque()  # the startIndex of each page planned, not yet asked for
        self.flying: list[int] = []  # the startIndex of each page asked for, not yet taken
        self.moved: _ListMovedError | None = None

    @property
    def done(self) -> bool:
        """Tell whether the read is over: complete, or the list moved."""
        return self.moved is not None or len(self.items) >= self.total

    def begin(self) -> None:
        """Read and take the first page; plan the others from its total and size."""
        first = self.fetch(1)
        self.total = first.total
        if self.total == 0 and not first.resources:
            return
        self.accept(first)
        self.step = max(1, len(first.resources) - 1)
        self.plan()

    def plan(self) -> None:
        """Plan every page still needed from where the next one starts, if each is as full as the first."""
        self.queue.clear()
        if self.done:
            return
        at = self.next_start()
        self.queue.extend([at, *range(at + self.step, self.total, self.step)])

    def next_start(self) -> int:
        """Return where the next page starts: on the last resource read, or just past it."""
        return self.last + 1 if self.unanchored else self.last

    def take(self, start: int, page: Page) -> None:
        """Take a page asked for at ``start`` if it is the next one; plan again when the plan went wrong."""
        if not self.done and start == self.next_start():
            try:
                self.accept(page)
            except _ListMovedError as moved:
                self.moved = moved
        if self.done:
            self.queue.clear()
            return
        at = self.next_start()
        if at not in self.flying and (not self.queue or self.queue[0] != at):
            self.plan()  # a page was short (or held only the overlap): the pages planned past it are off

    def fetch(self, start: int) -> Page:
        label = page_label(self.path, start)
        params = {**self.query, "startIndex": start, "count": self.count}
        body = self.client.get_json(self.path, params=params, obj=label)
        return parse_page(self.client.system, label, body, start)

    def accept(self, page: Page) -> None:
        label = page_label(self.path, page.start)
        if page.total != self.total:
            raise _TotalChangedError(self.total, page.total, page.start)
        anchored = page.start > 1 and page.resources and not self.unanchored
        new = self._after_overlap(page) if anchored else page.resources
        if anchored and not new and len(self.items) < self.total:
            # A service serving one resource a page (idp §6.2 allows fewer than count) gives
            # only the overlap: step past it once, unchecked [U], rather than ask it forever.
            self.unanchored = True
            return
        self.unanchored = False
        if not new:
            cause = (
                f"an empty page after {len(self.items)} of {self.total} {self.noun}s: the list is truncated"
            )
            raise ResponseError(self.client.system, label, cause)
        for resource in new:
            rid = resource["id"]
            if rid in self.seen:
                where = (
                    "this page"
                    if self.seen[rid] == page.start
                    else f"the page at startIndex {self.seen[rid]}"
                )
                cause = f"{self.noun} id '{rid}' was already read in {where}: the paging is inconsistent"
                raise ResponseError(self.client.system, label, cause)
            self.seen[rid] = page.start
        self.items.extend(new)
        self.last += len(new)
        if len(self.items) > self.total:
            cause = f"{len(self.items)} {self.noun}s received, more than totalResults ({self.total})"
            raise ResponseError(self.client.system, label, cause)
        if self.progress is not None:
            self.progress(len(self.items), self.total)

    def _after_overlap(self, page: Page) -> list[dict[str, Any]]:
        """Return a later page's new resources, once its first is checked to be the last one read."""
        if page.resources[0]["id"] != self.items[-1]["id"]:
            what = (
                f"the page does not begin with the last {self.noun} of the page before "
                f"('{self.items[-1]['id']}'): {self.noun}s were added or removed during the read"
            )
            raise _ListMovedError(what, page.start)
        return page.resources[1:]


def parse_page(system: str, label: str, body: Any, start: int) -> Page:
    """Check that ``body`` is the ListResponse page asked for at ``start`` (RFC 7644 §3.4.2)."""

    def fail(cause: str) -> NoReturn:
        raise ResponseError(system, label, cause)

    if not isinstance(body, dict):
        fail(f"not a SCIM ListResponse: a JSON {'array' if isinstance(body, list) else 'value'}")
    error = read_error(body)
    if error is not None:
        fail(f"a SCIM error instead of a ListResponse: {error.line()}")
    if LIST_RESPONSE not in _schemas(body):
        fail(f"not a SCIM ListResponse (its schemas do not name {LIST_RESPONSE})")
    total = body.get("totalResults")
    if not isinstance(total, int) or not _is_count(total):
        fail("a ListResponse without a valid totalResults")
    echoed = body.get("startIndex")
    if echoed is not None and (not _is_count(echoed) or echoed != start):
        # A service that ignores startIndex would serve its first page again and again.
        fail(f"asked for startIndex {start}, got a page that says startIndex {echoed!r}")
    # `itemsPerPage` is not checked: services echo the requested count there; Resources counts.
    resources = body.get("Resources")
    if resources is None and total == 0:
        resources = []  # RFC 7644 §3.4.2: Resources is required only when totalResults is not 0
    if not isinstance(resources, list):
        fail(f"a ListResponse without a Resources list (totalResults is {total})")
    for n, resource in enumerate(resources, start=1):
        rid = resource.get("id") if isinstance(resource, dict) else None
        if not isinstance(rid, str) or not rid:
            fail(f"resource {n} of the page has no id")
    return Page(start=start, total=total, resources=resources)


def _is_count(value: Any, *, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
