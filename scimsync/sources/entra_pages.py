"""Reading Microsoft Graph lists whole, page by page, each page named in errors (idp-apis §2.3).

``next_link_pages`` (scimsync.http.pagination) follows ``@odata.nextLink`` verbatim and
refuses a link sent twice; this module adds what a directory read needs on top: every
error names the page it happened on ("GET /v1.0/users page 3"), every item must carry
an id, and an id read twice in one list means the paging is inconsistent. Graph lists
have no total without advanced queries (§2.2), so there is no count to compare.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from scimsync.errors import ConnectorError, ResponseError
from scimsync.http import HttpClient, default_error_parser
from scimsync.http.pagination import next_link_pages

API = "/v1.0"
MAX_TOP = 999  # §2.2: the largest page Graph serves ($top 1-999)

# Called after each page with the page's name and its items.
PageHook = Callable[[str, list[dict[str, Any]]], None]


def graph_error(response: requests.Response) -> str:
    """Return ``code: message`` from Graph's error envelope (§2.7), else the generic parse."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        code = error.get("code")
        return f"{code}: {error['message']}" if isinstance(code, str) and code else error["message"]
    return default_error_parser(response)


def read_list(
    client: HttpClient,
    path: str,
    select: tuple[str, ...],
    *,
    about: str = "",
    on_page: PageHook | None = None,
) -> list[dict[str, Any]]:
    """Return every item of the list at ``path`` (under /v1.0), asked at $top=999, or raise.

    ``about`` is added to the page names ("(group 'Sales')").
    """
    label = f"GET {API}{path}"
    params = {"$select": ",".join(select), "$top": MAX_TOP}
    pages = next_link_pages(client, path, params=params, obj=label)
    items: list[dict[str, Any]] = []
    seen: dict[str, int] = {}  # item id -> the page it came on
    number = 0
    while True:
        try:
            page = next(pages, None)
        except ConnectorError as exc:
            if exc.obj != label:
                raise  # not about this list: the token endpoint, say
            where = f"{label} page {number + 1}{about}"
            raise type(exc)(exc.system, where, exc.cause, status=exc.status) from None
        if page is None:
            return items
        number += 1
        where = f"{label} page {number}{about}"
        for n, item in enumerate(page, start=1):
            item_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(item_id, str) or not item_id:
                raise ResponseError(client.system, where, f"item {n} of the page has no id")
            if item_id in seen:
                cause = f"id '{item_id}' was already read on page {seen[item_id]}: the paging is inconsistent"
                raise ResponseError(client.system, where, cause)
            seen[item_id] = number
        if on_page is not None:
            on_page(where, page)
        items.extend(page)
