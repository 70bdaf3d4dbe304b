"""When the next request may go: the client's own rate, the server's rate and its hold-backs.

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

from scimsync.http.errors import TransportFailure

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

# A server asking for a longer pause is more likely confused than right; waiting
# this long and retrying (then failing with "still rate limited") beats hanging for hours.
_MAX_SERVER_WAIT = 300.0
# Remaining is 0 but the server gave no reset time: let the bucket refill a little.
_DEFAULT_HOLD = 1.0
# A request refused (429/503) this many times gives up even within its time budget.
_MAX_REFUSALS = 100
# Threads held back by a server that announced no rate go out this far apart, not all at once.
_RELEASE_GAP = 0.2
# Of an announced bucket of 10 or more, this share is never spent: a request that leaves
# late (a busy interpreter, a thread waiting for its place) and one that leaves on time
# reach the server closer than one interval apart, and the reserve absorbs that.
_RESERVE_SHARE = 0.1


@dataclass(frozen=True)
class ServerRate:
    """The token bucket a server announced: ``limit`` requests at once, then one every ``interval`` s."""

    limit: int
    interval: float
    remaining: int | None = None  # tokens left when the server answered

    @property
    def spendable(self) -> int:
        """Return the tokens a client may spend at once: the bucket less its reserve."""
        return self.limit - (int(self.limit * _RESERVE_SHARE) if self.limit >= 10 else 0)


class Pacer:
    """Decide when the next request may go: server hold-backs, the server's rate and the client's own.

    The server's bucket is followed as a GCRA (virtual scheduling): ``_full_at`` is when
    it would be full again, and a request may go while that is at most ``limit - 1``
    intervals away. Each thread takes its slot under the lock and sleeps outside it, so
    threads that waited out the same hold still go one slot apart.
    """

    def __init__(
        self, rate: float | None, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._interval = 1.0 / rate if rate else 0.0
        self._next_slot = -math.inf
        self._not_before = -math.inf
        self._released = -math.inf  # the slot of the next thread that waited out a hold
        self._server: ServerRate | None = None
        self._full_at = -math.inf

    def hold(self, seconds: float) -> None:
        """Keep every thread from sending for ``seconds`` from now."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def follow(self, rate: ServerRate) -> bool:
        """Pace to the bucket the server announced; return whether its size or rate is new."""
        with self._lock:
            known, self._server = self._server, rate
            if rate.remaining is not None:
                # The server counts every client of this user: never assume more tokens than it has.
                spent = max(0, rate.limit - rate.remaining)
                self._full_at = max(self._full_at, self._clock() + spent * rate.interval)
        return known is None or (known.limit, known.interval) != (rate.limit, rate.interval)

    def wait_turn(self, min_delay: float = 0.0) -> None:
        """Sleep ``min_delay``, then until this thread's slot: after any hold, at the slower rate."""
        with self._lock:
            # A retry whose wait ends inside a hold is one of the threads the hold released:
            # it queues with them. Otherwise it sleeps before taking a slot, so its own
            # backoff holds back no other thread.
            joining = min_delay > 0 and self._not_before > self._clock()
        if min_delay > 0 and not joining:
            self._sleep(min_delay)
        # One sleep, no re-check loop: a fake sleep that does not move the clock must not spin.
        with self._lock:
            now = self._clock()
            held = self._not_before > now
            start = max(now + min_delay if joining else now, self._not_before, self._next_slot)
            if held:
                start = max(start, self._released)
            server = self._server
            if server is not None:
                start = max(start, self._full_at - (server.spendable - 1) * server.interval)
                self._full_at = max(self._full_at, start) + server.interval
            elif held:
                # No announced rate to pace by: release the threads that waited one by one.
                self._released = start + _RELEASE_GAP
            if self._interval:
                self._next_slot = start + self._interval
        if start > now:
            self._sleep(start - now)


@dataclass
class Attempts:
    """The attempts of one request so far: how long until the next one, or None for no more."""

    method: str
    retries: int  # errors and transport failures that may be retried
    budget: float  # seconds a rate-limited request may wait in all
    backoff: Callable[[int], float]  # the wait before retry number n, jitter included
    attempt: int = 0
    failures: int = 0  # errors and transport failures so far
    limited: int = 0  # 429 answers so far
    waited: float = 0.0  # seconds waited after 429 answers

    def after_transport(self, failure: TransportFailure) -> float | None:
        """Return the wait before retrying after ``failure``, or None when it is final."""
        self.failures += 1
        # A POST that may have reached the server is never sent twice.
        if (
            self.failures > self.retries
            or not failure.retriable
            or (failure.sent and self.method not in _IDEMPOTENT)
        ):
            return None
        return self.backoff(self.failures)

    def after_status(self, status: int, server_wait: float) -> float | None:
        """Return the wait before retrying after an unexpected ``status``, or None when it is final."""
        if status in (429, 503):
            # Refused before anything was done, so even a POST may go again (SPEC §8). Rate
            # limits are normal on Jira DC (atlassian §1.11), and a proxy shedding load says
            # 503: wait as told (or back off), on a budget of time, not of tries, so that a
            # server refusing one request in five never fails a write that would go through.
            self.limited += 1
            delay = max(server_wait, self.backoff(self.limited)) if status == 503 else server_wait
            delay = delay or self.backoff(self.limited)
            if self.waited + delay > self.budget or self.limited > _MAX_REFUSALS:
                return None
            self.waited += delay
            return delay
        self.failures += 1
        if self.failures > self.retries or status not in RETRY_STATUSES:
            return None
        # SPEC §8: after a 502 or 504 the outcome is unknown: only an idempotent request is
        # repeated blindly (the engine reads a write back before repeating it).
        if self.method not in _IDEMPOTENT:
            return None
        return max(self.backoff(self.failures), server_wait)

    def describe(self, *, limited: bool) -> str:
        """Say which attempt comes next, for the retry log line."""
        if limited:
            return f"attempt {self.attempt + 1}, {self.waited:.0f}s of {self.budget:.0f}s rate-limit wait"
        return f"attempt {self.failures + 1}/{self.retries + 1}"


@dataclass(frozen=True)
class ServerWait:
    """What a response asks for, in seconds; 0 when it asks for nothing."""

    hold: float  # every thread of the client waits this long before sending
    retry: float  # this request waits at least this long before it is sent again
    rate: ServerRate | None = None  # the bucket the server announced, to pace by


def read_rate_limits(response: requests.Response, wall_clock: Callable[[], float]) -> ServerWait:
    """Read the rate-limit headers of ``response``; ``wall_clock`` serves when it has no Date."""
    server_now = http_date(response.headers.get("Date"))
    now = wall_clock() if server_now is None else server_now
    rate = server_rate(response)
    # With an announced rate the pacer knows when tokens come back; retry-after, in whole
    # seconds, would hold every thread far longer than one token takes (atlassian §1.11).
    hold = 0.0 if rate is not None else (rate_limit_hold(response, now) or 0.0)
    retry_after = 0.0
    if response.status_code in RETRY_STATUSES:
        retry_after = retry_after_seconds(response, now) or 0.0
    if response.status_code == 429:
        # The bucket is shared by every thread of this client: all of them wait.
        hold = max(hold, retry_after)
    hold = min(hold, _MAX_SERVER_WAIT)
    return ServerWait(hold, min(_MAX_SERVER_WAIT, max(hold, retry_after)), rate)


def server_rate(response: requests.Response) -> ServerRate | None:
    """Return the token bucket an Atlassian DC response announces, or None (atlassian §1.11).

    ``X-RateLimit-FillRate`` requests come back every ``X-RateLimit-Interval-Seconds``;
    ``X-RateLimit-Limit`` is the bucket size. Okta's per-endpoint buckets (idp §1.8) are
    not one client-wide rate, so only their reset holds requests back.
    """
    headers = response.headers
    fill = _smallest_number(headers.get("X-RateLimit-FillRate"))
    seconds = _smallest_number(headers.get("X-RateLimit-Interval-Seconds"))
    if fill is None or seconds is None or fill <= 0 or seconds <= 0:
        return None
    limit = _smallest_number(headers.get("X-RateLimit-Limit"))
    remaining = _smallest_number(headers.get("X-RateLimit-Remaining"))
    return ServerRate(
        limit=max(1, int(limit or 1)),
        interval=min(_MAX_SERVER_WAIT, seconds / fill),
        remaining=None if remaining is None else max(0, int(remaining)),
    )


def http_date(value: str | None) -> float | None:
    """Parse an HTTP-date to epoch seconds, or None."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        # "-0000" parses to a naive datetime; HTTP dates are always GMT.
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)).timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None  # garbage from the server ("year 99999999999") is no date


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
    # OneLogin: no retry-after; X-RateLimit-Reset counts the SECONDS until the budget refills,
    # not an epoch time as Okta's does (idp §4.6).
    if _smallest_number(headers.get("X-RateLimit-Remaining")) == 0:
        reset = _smallest_number(headers.get("X-RateLimit-Reset"))
        return retry_after_seconds(response, now) or (max(0.0, reset) if reset else None) or _DEFAULT_HOLD
    return None
