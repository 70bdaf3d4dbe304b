"""When the next request may go: the client's own rate and the server's hold-backs.

``Pacer`` is shared by every thread of one ``HttpClient``; ``read_rate_limits`` reads
what a response asks for (``Retry-After``, ``X-RateLimit-*`` / ``X-Rate-Limit-*``).
"""

from __future__ import annotations

import datetime
import email.utils
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import requests

RETRY_STATUSES = frozenset({429, 502, 503, 504})

# A server asking for a longer pause is more likely confused than right; waiting
# this long and retrying (then failing with "still rate limited") beats hanging for hours.
_MAX_SERVER_WAIT = 300.0
# Remaining is 0 but the server gave no reset time: let the bucket refill a little.
_DEFAULT_HOLD = 1.0


class Pacer:
    """Decide when the next request may go: server hold-backs and the client's own rate."""

    def __init__(
        self, rate: float | None, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._interval = 1.0 / rate if rate else 0.0
        self._not_before = -math.inf
        self._next_slot = -math.inf

    def hold(self, seconds: float) -> None:
        """Keep every thread from sending for ``seconds`` from now."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def wait_turn(self, min_delay: float = 0.0) -> None:
        """Sleep until this thread may send: after ``min_delay``, any hold and its rate slot."""
        # One sleep, no re-check loop: a fake sleep that does not move the clock must not spin.
        with self._lock:
            now = self._clock()
            start = max(now + min_delay, self._not_before, self._next_slot)
            if self._interval:
                self._next_slot = start + self._interval
        if start > now:
            self._sleep(start - now)


@dataclass(frozen=True)
class ServerWait:
    """What a response asks for, in seconds; 0 when it asks for nothing."""

    hold: float  # every thread of the client waits this long before sending
    retry: float  # this request waits at least this long before it is sent again


def read_rate_limits(response: requests.Response, wall_clock: Callable[[], float]) -> ServerWait:
    """Read the rate-limit headers of ``response``; ``wall_clock`` serves when it has no Date."""
    server_now = http_date(response.headers.get("Date"))
    now = wall_clock() if server_now is None else server_now
    hold = rate_limit_hold(response, now) or 0.0
    retry_after = 0.0
    if response.status_code in RETRY_STATUSES:
        retry_after = retry_after_seconds(response, now) or 0.0
    if response.status_code == 429:
        # The bucket is shared by every thread of this client: all of them wait.
        hold = max(hold, retry_after)
    hold = min(hold, _MAX_SERVER_WAIT)
    return ServerWait(hold, min(_MAX_SERVER_WAIT, max(hold, retry_after)))


def http_date(value: str | None) -> float | None:
    """Parse an HTTP-date to epoch seconds, or None."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    # "-0000" parses to a naive datetime; HTTP dates are always GMT.
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)).timestamp()


def _smallest_number(value: str | None) -> float | None:
    """Return the smallest number in a header that requests may have merged ("0, 5")."""
    numbers = []
    for part in (value or "").split(","):
        try:
            number = float(part)
        except ValueError:
            continue
        if math.isfinite(number):
            numbers.append(number)
    return min(numbers) if numbers else None


def retry_after_seconds(response: requests.Response, now: float) -> float | None:
    """Return ``Retry-After`` in seconds (delta-seconds or HTTP-date), or None."""
    value = (response.headers.get("Retry-After") or "").strip()
    try:
        seconds = float(value)
    except ValueError:
        when = http_date(value)
        return None if when is None else max(0.0, when - now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def rate_limit_hold(response: requests.Response, now: float) -> float | None:
    """Return how long every thread must wait when the server says no requests remain."""
    headers = response.headers
    # Okta: X-Rate-Limit-Reset is epoch seconds; measure it against the server's own Date,
    # and take the smallest of repeated headers, as Okta's SDK does (idp §1.8).
    if _smallest_number(headers.get("X-Rate-Limit-Remaining")) == 0:
        reset = _smallest_number(headers.get("X-Rate-Limit-Reset"))
        return _DEFAULT_HOLD if reset is None else max(0.0, reset - now)
    # Atlassian DC: retry-after is the seconds until new tokens, 0 while tokens remain (atlassian §1.11).
    if _smallest_number(headers.get("X-RateLimit-Remaining")) == 0:
        return retry_after_seconds(response, now) or _DEFAULT_HOLD
    return None
