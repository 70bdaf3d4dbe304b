"""OneLogin's wire quirks for the source: error bodies, rate-limit headers and its two pagings.

v2 lists (``/api/2/users``, ``/roles``, ``/roles/{id}/users``) are bare arrays with the
cursor in the ``After-Cursor`` response header and ``Total-Count`` beside it (idp-apis
§4.2); no shared paginator reads a cursor from a header, so ``header_pages`` does, and
checks each page whole. v1 groups (``/api/1/groups``) come in an envelope whose
``pagination.after_cursor`` continues the list (§4.4).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from scimsync.errors import ResponseError
from scimsync.http import HttpClient, default_error_parser
from scimsync.secrets import redact

# idp §4.2 is inconsistent: the SDK says "max 100", the list-users page "up to 50 per page"
# by default. We ask for 100, the larger; a server that serves fewer per page is read the
# same way, since only the cursor and Total-Count drive the walk.
PAGE_SIZE = 100


def parse_error(response: requests.Response) -> str:
    """Return OneLogin's message: the §4.6 envelope ``{"status": {"type", "message"}}``, else the SDK's."""
    try:
        body = response.json()
    except ValueError:
        body = None
    status = body.get("status") if isinstance(body, dict) else None
    if isinstance(status, dict) and isinstance(status.get("message"), str) and status["message"]:
        kind = status.get("type")
        message: str = status["message"]
        return f"{kind}: {message}" if isinstance(kind, str) and kind and kind != message else message
    # The SDK's Error {error, code, type, message} and AltErr {statusCode, name, message} (§4.6).
    return default_error_parser(response)


@dataclass(frozen=True)
class Page:
    """One page of a v2 list: its number, items, the Total-Count it gave and the items so far."""

    number: int
    items: list[dict[str, Any]]
    total: int
    read: int


def header_pages(
    client: HttpClient,
    path: str,
    *,
    noun: str,
    params: Mapping[str, str] | None = None,
    name: str | None = None,
) -> Iterator[Page]:
    """Yield every page of a v2 list; any page that cannot be trusted raises ResponseError.

    Refused: a body that is not an array of objects with an ``id``, an item seen on an
    earlier page, a missing ``Total-Count``, a ``Total-Count`` that shrinks (people left
    during the read: what was read is no longer one directory), more items than it
    says, a last page that leaves items unread, an empty page that is not the last, and
    an ``After-Cursor`` sent twice. Errors name the page as ``{name} page N`` (``name``
    defaults to ``GET {path}``).
    """
    query: dict[str, Any] = {**(params or {}), "limit": PAGE_SIZE}
    cursors: set[str] = set()
    seen: dict[str, int] = {}  # id -> the page it came on
    total: int | None = None
    read = 0
    number = 0
    while True:
        number += 1
        label = f"{name or 'GET ' + path} page {number}"
        response = client.request("GET", path, params=query, ok=(200,), obj=label)
        items = _items(client.system, label, client.decode_json(response, obj=label), noun, seen, number)
        count = total_count(client.system, label, response)
        if total is not None and count < total:
            cause = f"Total-Count went down from {total} to {count} during the read: run again"
            raise ResponseError(client.system, label, cause)
        total, read = count, read + len(items)
        if read > total:
            raise ResponseError(
                client.system, label, f"{read} {noun}s received, more than Total-Count {total}"
            )
        yield Page(number, items, total, read)
        cursor = (response.headers.get("After-Cursor") or "").strip()
        # §4.2 ⚠: an absent or empty After-Cursor ends the list (the end condition is inferred).
        if not cursor:
            if read < total:
                cause = f"the last page (no After-Cursor) leaves {total - read} of {total} {noun}s unread"
                raise ResponseError(client.system, label, cause)
            return
        if not items:
            raise ResponseError(client.system, label, "an empty page that names a next page")
        if cursor in cursors:
            raise ResponseError(
                client.system, label, redact(f"pagination loop: After-Cursor {cursor!r} came twice")
            )
        cursors.add(cursor)
        query = {**(params or {}), "limit": PAGE_SIZE, "cursor": cursor}


def item_id(value: Any) -> str | None:
    """Return a OneLogin id (a number, §4.2) as text, or None when it is no id."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _items(
    system: str, label: str, body: Any, noun: str, seen: dict[str, int], number: int
) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise ResponseError(
            system, label, f"expected a JSON array of {noun}s (idp §4.2), got {type(body).__name__}"
        )
    for position, item in enumerate(body, 1):
        uid = item_id(item.get("id")) if isinstance(item, dict) else None
        if uid is None:
            raise ResponseError(system, label, f"{noun} {position} of the page has no id")
        if uid in seen:
            cause = (
                f"{noun} id {uid} came twice (pages {seen[uid]} and {number}): the list moved during the read"
            )
            raise ResponseError(system, label, cause)
        seen[uid] = number
    return body


def total_count(system: str, label: str, response: requests.Response) -> int:
    """Return the ``Total-Count`` header (§4.2); a missing or garbled one is a ResponseError."""
    raw = (response.headers.get("Total-Count") or "").strip()
    if not raw.isdigit():
        shown = f"{raw!r}" if raw else "none"
        raise ResponseError(system, label, f"no valid Total-Count header (got {shown}; idp §4.2)")
    return int(raw)


def v1_pages(client: HttpClient, path: str, *, noun: str) -> Iterator[list[dict[str, Any]]]:
    """Yield the ``data`` of every page of a v1 list, following ``pagination.after_cursor`` (§4.4)."""
    query: dict[str, str] = {}
    cursors: set[str] = set()
    number = 0
    while True:
        number += 1
        label = f"GET {path} page {number}"
        body = client.get_json(path, params=query or None, obj=label)
        data, after = _envelope(client.system, label, body, noun)
        yield data
        if after is None:
            return
        if after in cursors:
            raise ResponseError(
                client.system, label, redact(f"pagination loop: after_cursor {after!r} came twice")
            )
        cursors.add(after)
        query = {"after_cursor": after}


def _envelope(system: str, label: str, body: Any, noun: str) -> tuple[list[dict[str, Any]], str | None]:
    """Return the items and the next cursor of a v1 envelope ``{status, pagination, data}``."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ResponseError(system, label, "expected the v1 envelope {status, pagination, data} (idp §4.4)")
    status = body.get("status")
    if isinstance(status, dict) and status.get("error") is True:
        raise ResponseError(system, label, f"OneLogin says: {status.get('message') or 'error'}")
    data: list[Any] = body["data"]
    for position, item in enumerate(data, 1):
        if not isinstance(item, dict) or item_id(item.get("id")) is None:
            raise ResponseError(system, label, f"{noun} {position} of the page has no id")
    pagination = body.get("pagination")
    after = pagination.get("after_cursor") if isinstance(pagination, dict) else None
    if after is not None and not isinstance(after, str):
        raise ResponseError(system, label, "pagination.after_cursor is not a string")
    return data, after or None
