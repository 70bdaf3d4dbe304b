"""Okta's per-minute rate-limit buckets, and page faults for tests (idp-apis §1.8, §9)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from werkzeug.datastructures import Headers as ResponseHeaders

# Published per-minute limits, Workforce Identity (§1.8, [S-OK12]); `other` is "most other
# /api/v1 calls", where §1.8 assumes /groups/{id}/users falls (it is not listed).
DEFAULT_LIMITS: Mapping[str, int] = {"users": 600, "user": 2000, "groups": 500, "group": 1000, "other": 1200}
# An SSWS token may use 50 % of each limit by default (§1.1, [S-OK9]).
TOKEN_SHARE = 0.5
WINDOW = 60.0  # seconds; windows start at the first request, not on the wall-clock minute (§1.8)

Headers = list[tuple[str, str]]

# The server writes the `Date` header itself, from the real time, as it sends the answer
# (werkzeug: http.server's send_response). A client measures X-Rate-Limit-Reset against that
# Date (§1.8), so the simulator carries "seconds until the reset" in this header and turns it
# into an epoch time of the real clock at the last moment (`finish`): the two then agree to
# the second even when the simulator runs on a fake clock.
RESET_IN = "X-Sim-Reset-In"


def rate_headers(limit: int, remaining: int, reset_in: float) -> Headers:
    """Return the ``X-Rate-Limit-*`` headers Okta sends on every response (§1.8), reset relative."""
    return [
        ("X-Rate-Limit-Limit", str(limit)),
        ("X-Rate-Limit-Remaining", str(max(0, remaining))),
        (RESET_IN, str(max(0, math.ceil(reset_in)))),
    ]


def finish(headers: ResponseHeaders, wall: Callable[[], float] = time.time) -> None:
    """Turn the relative reset into ``X-Rate-Limit-Reset``: epoch seconds of the server's Date clock."""
    reset_in = headers.pop(RESET_IN, None)
    if reset_in is not None:
        headers["X-Rate-Limit-Reset"] = str(math.floor(wall()) + int(reset_in))


class OktaRateLimiter:
    """One bucket per endpoint group, refilled whole when its 60-second window ends.

    Not thread-safe by itself: the simulator calls it under its lock.
    """

    def __init__(self, limits: Mapping[str, int], share: float, clock: Callable[[], float]) -> None:
        if not 0 < share <= 1 or any(v < 1 for v in limits.values()):
            raise ValueError("rate limits must be positive and the token share in (0, 1]")
        self.limits = {bucket: max(1, math.floor(v * share)) for bucket, v in limits.items()}
        self.clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # bucket -> (window start, requests)

    def take(self, bucket: str) -> tuple[bool, Headers]:
        """Spend one request of ``bucket``; return whether allowed and the headers to send."""
        now = self.clock()
        start, used = self._windows.get(bucket, (now, 0))
        if now >= start + WINDOW:
            start, used = now, 0
        limit = self.limits[bucket]
        allowed = used < limit
        used += allowed
        self._windows[bucket] = (start, used)
        return allowed, rate_headers(limit, limit - used, start + WINDOW - now)

    def exhaust(self, bucket: str) -> None:
        """Spend the rest of ``bucket``'s window (a test's way to hit the limit at once)."""
        now = self.clock()
        start, _ = self._windows.get(bucket, (now, 0))
        self._windows[bucket] = (start if now < start + WINDOW else now, self.limits[bucket])


@dataclass
class PageFault:
    """A page of one list answered ``status`` for its next ``count`` requests (None: every one).

    ``query`` is the list's query apart from ``after`` and ``limit`` ({} for the plain list);
    ``reset_in`` makes a 429 carry Okta's headers with a reset that many seconds ahead.
    ``answers`` records every status this page was answered with, faulty or not.
    """

    path: str
    page: int
    status: int
    query: Mapping[str, str] = field(default_factory=dict)
    count: int | None = 1
    reset_in: int = 1
    answers: list[int] = field(default_factory=list)

    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.query.items()))

    def fire(self) -> bool:
        """Tell whether this request gets the fault, using one of its ``count``."""
        if self.count is None:
            return True
        if self.count > 0:
            self.count -= 1
            return True
        return False
