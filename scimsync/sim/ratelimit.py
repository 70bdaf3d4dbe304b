"""A rate-limited front for a simulator: Jira Data Center's token bucket (atlassian §1.11).

``RateLimited`` wraps any simulator's WSGI app: each authenticated caller (one
``Authorization`` value) has a bucket of ``capacity`` tokens refilled at ``fill_per_second``;
every answer carries the five §1.11 headers (``X-RateLimit-Limit``, ``-Remaining``,
``-Interval-Seconds``, ``-FillRate``, ``retry-after``), and a request finding the bucket
empty is answered 429 without reaching the app. It counts the 429s it served, per method
and path, so that the benchmark and the tests can say how often a client overran it.
The bucket itself is the simulators' own ``faults.RateLimiter``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from scimsync.sim.faults import RateLimiter

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Jira's answer to an empty bucket (§1.11 gives the status and headers; the body is Jira's error shape).
REFUSED_BODY = json.dumps({"errorMessages": ["Rate limit exceeded."], "errors": {}}).encode()


class RateLimited:
    """WSGI middleware: a token bucket per caller in front of ``app``; 429 when it is empty."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        capacity: int,
        fill_per_second: float,
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.limiter = RateLimiter(capacity, fill_per_second, clock)
        # A refused request still costs its round trip (the app's own latency is the app's).
        self.latency = latency
        self.refused: Counter[tuple[str, str]] = Counter()  # (method, path) -> 429s served
        self._lock = threading.Lock()

    @property
    def refusals(self) -> int:
        """Return how many requests were answered 429 so far."""
        with self._lock:
            return sum(self.refused.values())

    def clear(self) -> None:
        """Forget the 429s served so far (the buckets stay as they are)."""
        with self._lock:
            self.refused.clear()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Take a token of the caller and serve the app, or answer 429 when there is none."""
        credentials = environ.get("HTTP_AUTHORIZATION", "")
        if not credentials:  # §1.11: only authenticated external REST requests are limited
            return self.app(environ, start_response)
        caller = hashlib.sha256(credentials.encode()).hexdigest()  # a bucket per user, no secret kept
        with self._lock:
            allowed, headers = self.limiter.take(caller)
            if not allowed:
                self.refused[(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "") or "/")] += 1
        if not allowed:
            if self.latency > 0:
                time.sleep(self.latency)
            start_response(
                "429 Too Many Requests",
                [
                    ("Content-Type", "application/json;charset=UTF-8"),
                    ("Content-Length", str(len(REFUSED_BODY))),
                    *headers,
                ],
            )
            return [REFUSED_BODY]

        def with_headers(status: str, answer: list[tuple[str, str]], exc_info: object = None) -> object:
            known = {name.lower() for name, _ in headers}
            kept = [(n, v) for n, v in answer if n.lower() not in known]
            return start_response(status, kept + headers, exc_info)  # type: ignore[arg-type]

        return self.app(environ, with_headers)  # type: ignore[arg-type]
