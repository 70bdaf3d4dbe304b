"""How many requests to one system may be in flight: fewer while it signals pressure (AIMD).

Every request of an ``HttpClient`` passes one ``InFlight`` gate, whichever thread or
nested ``map_parallel`` sends it: so ``http.concurrency`` is the real number of requests
in flight per system, and the connection pool (sized the same) never opens a connection
it has to discard. The gate narrows when the server signals pressure (a 429, 503 or 504,
``X-RateLimit-Remaining`` running low, answers far slower than usual) and widens again
while it does not: the whole pool of the system slows down together and speeds up together.
When to send stays the ``Pacer``'s job (``ratelimit``); the gate decides how many at once.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from scimsync.http.ratelimit import ServerRate

# Answers that say the server is overloaded: refused (429, 503) or its upstream too slow (504).
PRESSURE_STATUSES = frozenset({429, 503, 504})
# X-RateLimit-Remaining at or below this share of the bucket is pressure (atlassian §1.11).
_LOW_SHARE = 0.25
# Latency: a slow average (the usual) and a fast one (the recent). The recent must be this many
# times the usual, and this much slower in seconds, to be pressure: one big page is not.
_USUAL_WEIGHT = 0.05
_RECENT_WEIGHT = 0.2
_RISE = 3.0
_RISE_SLACK = 0.25
# Under an announced rate the gate keeps this many times what the rate keeps busy.
_HEADROOM = 2.0


@dataclass(frozen=True)
class Answer:
    """What one answer of the server says about pressure."""

    status: int | None  # None: no answer (a transport failure)
    seconds: float  # the round trip
    rate: ServerRate | None = None  # the bucket it announced, remaining tokens included


class InFlight:
    """A gate for the requests to one system: at most ``limit`` in flight, AIMD on pressure.

    The limit starts at the configured concurrency (the ceiling). A pressure signal halves
    it, once per round: answers to requests sent before the last cut do not cut again, as
    they report the pressure that cut already answered. Each answer without pressure adds
    ``1 / limit``: one more request in flight per round of answers. With an announced fill
    rate the limit never drops below what that rate keeps busy (rate x round trip, Little's
    law): the ``Pacer`` spaces requests to the rate, the gate only keeps them from queuing
    at the server.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self._limit = float(self.ceiling)
        self._busy = 0
        self._sent = 0  # tickets handed out so far
        self._cut_after = 0  # answers to tickets up to this one do not cut again
        self._usual: float | None = None
        self._recent: float | None = None
        self._changed = threading.Condition(threading.Lock())

    @property
    def limit(self) -> int:
        """Return how many requests may be in flight now."""
        return int(self._limit)

    @property
    def busy(self) -> int:
        """Return how many requests are in flight now."""
        return self._busy

    def enter(self) -> int:
        """Wait until one more request may go; return its ticket for ``leave``."""
        with self._changed:
            while self._busy >= int(self._limit):
                self._changed.wait()
            self._busy += 1
            self._sent += 1
            return self._sent

    def leave(self, ticket: int, answer: Answer | None = None) -> None:
        """Free the request's place; adapt the limit to what its answer says (None: says nothing)."""
        with self._changed:
            self._busy -= 1
            before = int(self._limit)
            if answer is not None:
                if self._pressure(answer):
                    if ticket > self._cut_after:
                        self._limit = max(self._floor(answer), self._limit / 2)
                        self._cut_after = self._sent
                else:
                    self._limit = min(float(self.ceiling), self._limit + 1 / self._limit)
            # A place freed wakes one waiter; a wider gate wakes as many as it grew.
            for _ in range(max(1, int(self._limit) - before + 1)):
                self._changed.notify()

    def _pressure(self, answer: Answer) -> bool:
        """Tell whether an answer signals pressure; keep the latency averages (lock held)."""
        if answer.status is None:
            return False  # a transport failure: its retry backs off; says nothing about load
        if answer.status in PRESSURE_STATUSES:
            return True
        rate = answer.rate
        if rate is not None and rate.remaining is not None and rate.remaining <= rate.limit * _LOW_SHARE:
            return True
        return self._slower(answer.seconds)

    def _slower(self, seconds: float) -> bool:
        """Tell whether answers have become far slower than usual (a busy server)."""
        if self._usual is None or self._recent is None:
            self._usual = self._recent = seconds
            return False
        self._recent += _RECENT_WEIGHT * (seconds - self._recent)
        self._usual += _USUAL_WEIGHT * (seconds - self._usual)
        return self._recent > _RISE * self._usual and self._recent - self._usual > _RISE_SLACK

    def _floor(self, answer: Answer) -> float:
        """Return the fewest in flight that still keep an announced rate busy (at least one).

        Twice rate x round trip: round trips vary, and a request the gate holds back past
        its turn would meet the next one at the server (two tokens at once).
        """
        if answer.rate is None:
            return 1.0
        trip = self._usual if self._usual is not None else answer.seconds
        return float(min(self.ceiling, max(1, math.ceil(_HEADROOM * trip / answer.rate.interval))))
