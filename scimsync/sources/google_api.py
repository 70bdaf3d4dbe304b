"""HTTP for the google source: Google's error body, its quota 403s, and its page-token lists.

Why not ``scimsync.http.pagination.cursor_pages``: Google leaves the list field out of an
empty page (an empty group's ``members``, a customer without groups) [U: Google's JSON omits
empty repeated fields; idp-apis §3 shows only full pages], where ``cursor_pages`` requires it.
Here the list may be absent only from a page whose ``kind`` says what list it is; a body of
another kind, or without one, is not a page of the list and aborts the read.

Why ``GoogleClient``: Google answers its per-user quota with ``403 userRateLimitExceeded``
(idp-apis §3.7), which must be retried with backoff like a 429, while ``HttpClient`` treats
every 403 as a refusal. The client re-labels those 403s as 429 before ``HttpClient`` looks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import requests

from scimsync.errors import ResponseError
from scimsync.http import HttpClient
from scimsync.http.client import Auth
from scimsync.http.errors import default_error_parser, one_line
from scimsync.http.pagination import EmptyPages

log = logging.getLogger("scimsync.sources.google")

API_PATH = "/admin/directory/v1"
# idp-apis §3.2 and §3.5: the largest pages the API serves.
USERS_PAGE, GROUPS_PAGE, MEMBERS_PAGE = 500, 200, 200
# idp-apis §3.7: quota answers to retry with backoff (403 userRateLimitExceeded / quotaExceeded,
# and rateLimitExceeded, which Google APIs may also send with 403).
QUOTA_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded", "quotaExceeded"})


def error_reasons(response: requests.Response) -> list[str]:
    """Return the ``reason`` of each entry of a Google error body's ``errors`` (§3.7)."""
    try:
        body = response.json()
    except ValueError:
        return []
    error = body.get("error") if isinstance(body, dict) else None
    entries = error.get("errors") if isinstance(error, dict) else None
    if not isinstance(entries, list):
        return []
    return [str(e["reason"]) for e in entries if isinstance(e, dict) and isinstance(e.get("reason"), str)]


def parse_error(response: requests.Response) -> str:
    """Return Google's message with its reasons: ``Not Authorized to access ... (forbidden)``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        reasons = error_reasons(response)
        return one_line(error["message"]) + (f" ({', '.join(reasons)})" if reasons else "")
    return default_error_parser(response)


def _quota_as_rate_limit(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    """Turn a quota 403 into the 429 it means, so that HttpClient backs off and retries it."""
    if response.status_code == 403 and QUOTA_REASONS & set(error_reasons(response)):
        log.info("google: quota answer (403 %s); backing off", ", ".join(error_reasons(response)))
        response.status_code = 429
        response.reason = "Too Many Requests"
    return response


class GoogleClient(HttpClient):
    """``HttpClient`` that retries Google's quota 403s as 429s (idp-apis §3.7)."""

    def _make_session(self, auth: Auth, headers: Mapping[str, str] | None) -> requests.Session:
        session = super()._make_session(auth, headers)
        session.hooks["response"].append(_quota_as_rate_limit)
        return session


def list_pages(
    client: HttpClient,
    path: str,
    *,
    params: Mapping[str, Any],
    field: str,
    label: str,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the items of each page of a ``pageToken`` / ``nextPageToken`` list (§3.2, §3.5).

    ``field`` is the list's name (``users``, ``groups``, ``members``) and, in
    ``admin#directory#<field>``, its kind; ``label`` names the list in errors, each page
    with its number ("GET /users page 3"). A page token seen twice aborts the read.
    """
    query = dict(params)
    seen: set[str] = set()
    empty = EmptyPages(client.system, label)
    number = 1
    while True:
        where = f"{label} page {number}"
        body = client.get_json(path, params=query, obj=where)
        items = page_items(client.system, where, body, field)
        token = body.get("nextPageToken")
        # Fresh tokens on empty pages pass the loop guard below: end an endless chain.
        empty.check(items, token is not None and token != "")
        yield items
        if token is None or token == "":
            return
        if not isinstance(token, str):
            raise ResponseError(client.system, where, "nextPageToken is not a string")
        if token in seen:
            raise ResponseError(client.system, where, "pagination loop: the server sent a page token twice")
        seen.add(token)
        query["pageToken"] = token
        number += 1


def page_items(system: str, where: str, body: Any, field: str) -> list[dict[str, Any]]:
    """Return a page's items; a body that is not a page of this list raises ResponseError."""
    kind = f"admin#directory#{field}"
    if not isinstance(body, dict) or body.get("kind") != kind:
        found = body.get("kind") if isinstance(body, dict) else type(body).__name__
        raise ResponseError(system, where, f"expected a page of kind {kind}, got {found!r}")
    items = body.get(field, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ResponseError(system, where, f"{field} is not a list of objects")
    return items
