"""Faults of one page of one list of the Google Workspace simulator, and the hooks the routes call.

``Faults`` (scimsync.sim.faults) matches requests by path only; these match a page of a
list (the second page of users, the first page of one group's members), which is what a
test of a read that fails part-way needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scimsync.sim.google_common import GoogleError
from scimsync.sim.google_seed import Seeding

Key = tuple[str, str | None, int]  # (list, group id or None, page number)


@dataclass
class _PageFault:
    status: int
    remaining: int | None
    retry_after: int | None


class PageFaults(Seeding):
    """Page faults, tampering, short pages and token expiry after some pages (the routes' PageHooks)."""

    def __init__(self, customer_id: str, domains: tuple[str, ...], page_limit: int | None) -> None:
        # page_limit: serve at most this many items a page whatever maxResults asks, as a
        # server may; a test of paging then needs a few dozen users, not thousands.
        super().__init__(customer_id, domains)
        self.page_limit = page_limit
        self._page_faults: dict[Key, _PageFault] = {}
        self._answers: dict[Key, list[int]] = {}
        self._tampers: dict[Key, Callable[[dict[str, Any]], Any]] = {}
        self._expire_after: int | None = None

    def expire_tokens(self) -> None:
        """Make every access token handed out so far expired."""
        raise NotImplementedError

    def expire_tokens_after(self, pages: int) -> None:
        """Expire every access token once ``pages`` more pages of users have been served."""
        with self._lock:
            self._expire_after = pages

    def break_page(
        self,
        what: str,
        page: int,
        status: int,
        *,
        group: str | None = None,
        times: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer page ``page`` of ``what`` (users, groups, members of ``group``) ``status``; None: always."""
        with self._lock:
            self._page_faults[self._key(what, group, page)] = _PageFault(status, times, retry_after)

    def tamper_page(
        self, what: str, page: int, change: Callable[[dict[str, Any]], Any], *, group: str | None = None
    ) -> None:
        """Serve ``change(body)`` instead of a page: a dict is sent as JSON, bytes as they are."""
        with self._lock:
            self._tampers[self._key(what, group, page)] = change

    def answers(self, what: str, page: int, *, group: str | None = None) -> list[int]:
        """Return the statuses one page was answered with, in order."""
        with self._lock:
            return list(self._answers.get(self._key(what, group, page), []))

    def _key(self, what: str, group: str | None, page: int) -> Key:
        if what not in ("users", "groups", "members") or (what == "members") != (group is not None):
            raise ValueError("what: users, groups, or members with a group")
        found = self._find_group(group) if group is not None else None
        if group is not None and found is None:
            raise KeyError(f"no group {group!r}")
        return what, found.id if found else None, page

    # PageHooks: called by the routes under the lock.

    def before_page(self, what: str, group: str | None, page: int) -> None:
        """Raise the error injected for this page, if any."""
        key = (what, group, page)
        fault = self._page_faults.get(key)
        if fault is None:
            return
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self._page_faults[key]
        self._answers.setdefault(key, []).append(fault.status)
        headers = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
        if fault.status == 429:
            raise GoogleError(
                429, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits", headers=headers
            )
        raise GoogleError(fault.status, "Backend Error", "backendError", headers=headers)

    def page_size(self, asked: int) -> int:
        """Return the items to serve: what was asked, or fewer with ``page_limit``."""
        return asked if self.page_limit is None else min(asked, self.page_limit)

    def after_page(self, what: str, group: str | None, page: int, body: dict[str, Any]) -> Any:
        """Count the page, expire tokens when due, tamper with the body when asked."""
        key = (what, group, page)
        self._answers.setdefault(key, []).append(200)
        if what == "users" and self._expire_after is not None:
            self._expire_after -= 1
            if self._expire_after <= 0:
                self._expire_after = None
                self.expire_tokens()
        change = self._tampers.get(key)
        return change(body) if change else body
