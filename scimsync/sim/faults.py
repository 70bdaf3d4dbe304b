"""Fault injection and a request log, as WSGI middleware around any simulator app.

Injected answers never reach the wrapped app, so they change no state. A dropped
connection closes the TCP socket without any HTTP response; with ``after_app=True``
the app has already applied the change, which tests that a write is not retried blindly.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ErrorBody = Callable[[int], dict[str, Any]]

# Status recorded in the log for a request whose connection was dropped (no response).
DROPPED = 0


def jira_error_body(status: int) -> dict[str, Any]:
    """Return a Jira-shaped error body (reference §1.10) for an injected status."""
    return {"errorMessages": [f"Injected fault: HTTP {status}"], "errors": {}}


JIRA_RATE_LIMITED = {"errorMessages": ["Rate limit exceeded."], "errors": {}}
JSON_TYPE = "application/json;charset=UTF-8"


@dataclass(frozen=True)
class LoggedRequest:
    """One request the simulator received, with the status it answered (0: dropped)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    body: Any | None


class RequestLog:
    """A thread-safe list of the requests a simulator received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def append(self, entry: LoggedRequest) -> None:
        """Record one request."""
        with self._lock:
            self._entries.append(entry)

    @property
    def entries(self) -> list[LoggedRequest]:
        """Return a copy of every logged request, oldest first."""
        with self._lock:
            return list(self._entries)

    def writes(self) -> list[LoggedRequest]:
        """Return the requests whose method is not GET."""
        return [e for e in self.entries if e.method not in ("GET", "HEAD")]

    def clear(self) -> None:
        """Forget every logged request."""
        with self._lock:
            self._entries.clear()

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Count requests with this method and exact path (None matches any)."""
        return sum(
            1
            for e in self.entries
            if (method is None or e.method == method.upper()) and (path is None or e.path == path)
        )


@dataclass
class _Rule:
    """A pending fault: applies to the next ``count`` matching requests."""

    kind: str  # "respond" or "drop"
    count: int
    method: str | None
    path: str | None
    status: int = 0
    body: dict[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    after_app: bool = False

    def matches(self, method: str, path: str) -> bool:
        """Tell whether this rule applies to a request (path: a prefix of whole segments)."""
        if self.method is not None and self.method != method:
            return False
        if self.path is None or path == self.path:
            return True
        return path.startswith(self.path if self.path.endswith("/") else self.path + "/")


class ConnectionDroppedError(ConnectionError):
    """Raised inside the server to abandon a request whose socket was shut down."""


class Faults:
    """WSGI middleware: latency, injected errors, 429s and dropped connections, plus a log."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        log: RequestLog | None = None,
        error_body: ErrorBody = jira_error_body,
        rate_limit_body: dict[str, Any] | None = None,
        content_type: str = JSON_TYPE,
        quota_headers: bool = True,
    ) -> None:
        self.app = app
        self.log = log if log is not None else RequestLog()
        self.latency = 0.0
        self._error_body = error_body
        self._content_type = content_type
        # False: a 429 carries only Retry-After (Atlassian Cloud SCIM publishes no quota headers, §3.9).
        self._quota_headers = quota_headers
        # The product's own 429 body (another shape than Jira's for Confluence, §2.8).
        self._rate_limit_body = rate_limit_body if rate_limit_body is not None else JIRA_RATE_LIMITED
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []

    def inject(
        self,
        status: int,
        *,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status``, without reaching the app.

        ``path`` matches that path and everything below it (``/rest/api/2/group`` covers
        ``/rest/api/2/group/user`` but not ``/rest/api/2/groups/picker``); no query string.
        """
        self._add(_Rule("respond", count, _upper(method), path, status, body))

    def rate_limit(
        self,
        count: int,
        *,
        retry_after: int = 1,
        method: str | None = None,
        path: str | None = None,
        limit: int = 10,
        fill_rate: int = 10,
        interval: int = 1,
    ) -> None:
        """Answer the next ``count`` requests 429 with the five §1.11 headers (or only Retry-After)."""
        headers = (
            (
                ("X-RateLimit-Limit", str(limit)),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Interval-Seconds", str(interval)),
                ("X-RateLimit-FillRate", str(fill_rate)),
                ("retry-after", str(retry_after)),
            )
            if self._quota_headers
            else (("Retry-After", str(retry_after)),)
        )
        body = copy.deepcopy(self._rate_limit_body)
        self._add(_Rule("respond", count, _upper(method), path, 429, body, headers))

    def drop(
        self,
        count: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        after_app: bool = False,
    ) -> None:
        """Close the connection of the next ``count`` matching requests without a response."""
        self._add(_Rule("drop", count, _upper(method), path, after_app=after_app))

    def clear(self) -> None:
        """Cancel every pending fault."""
        with self._lock:
            self._rules.clear()

    def pending(self) -> int:
        """Return how many faulty answers are still queued."""
        with self._lock:
            return sum(r.count for r in self._rules)

    def _add(self, rule: _Rule) -> None:
        if rule.count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._rules.append(rule)

    def _take(self, method: str, path: str) -> _Rule | None:
        """Consume one use of the first rule matching this request."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request through the fault rules, logging it."""
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "") or "/"
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        body = _buffer_body(environ)

        def record(status: int) -> None:
            self.log.append(LoggedRequest(method, path, query, status, body))

        if self.latency > 0:
            time.sleep(self.latency)
        rule = self._take(method, path)
        if rule is not None and rule.kind == "drop" and not rule.after_app:
            record(DROPPED)
            _drop_connection(environ)
        if rule is not None and rule.kind == "respond":
            record(rule.status)
            body_out = rule.body if rule.body is not None else self._error_body(rule.status)
            return _respond(start_response, rule, body_out, self._content_type)

        captured: list[str] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.append(status)
            return start_response(status, headers, exc_info)

        if rule is not None:  # drop after the app applied the change
            chunks = self.app(environ, _discard(captured))
            b"".join(chunks)
            record(DROPPED)
            _drop_connection(environ)
        result = list(self.app(environ, capture))
        record(int(captured[0].split(None, 1)[0]) if captured else 500)
        return result


def _upper(method: str | None) -> str | None:
    return method.upper() if method else None


def _buffer_body(environ: WSGIEnvironment) -> Any | None:
    """Read the request body for the log and put it back for the app."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    data: bytes = stream.read(length) if length > 0 else b""
    if not length and environ.get("wsgi.input_terminated"):
        data = stream.read()
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    if not data:
        return None
    text = data.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _discard(captured: list[str]) -> StartResponse:
    """Return a start_response that records the status and sends nothing."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured.append(status)
        return lambda data: None

    return start


def _respond(
    start_response: StartResponse, rule: _Rule, body: dict[str, Any], content_type: str
) -> list[bytes]:
    payload = json.dumps(body).encode()
    headers = [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
    start_response(f"{rule.status} {_reason(rule.status)}", [*headers, *rule.headers])
    return [payload]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Injected"


def _drop_connection(environ: WSGIEnvironment) -> NoReturn:
    """Shut the client socket down and abandon the request: the client sees no response."""
    sock: socket.socket | None = environ.get("werkzeug.socket")
    if sock is None:
        raise RuntimeError("dropping a connection needs the werkzeug server (SimServer)")
    with contextlib.suppress(OSError):  # the client may have gone already
        sock.shutdown(socket.SHUT_RDWR)
    # werkzeug treats ConnectionError from the app as a client that went away: no 500, no log.
    raise ConnectionDroppedError("connection dropped by fault injection")


class RateLimiter:
    """Atlassian Data Center rate limiting: one token bucket per user (§1.11).

    Not thread-safe by itself: the simulator calls it under its state lock.
    """

    def __init__(self, capacity: int, fill_per_second: float, clock: Callable[[], float]) -> None:
        if capacity < 1 or fill_per_second <= 0:
            raise ValueError("rate limit needs a capacity >= 1 and a positive fill rate")
        self.capacity = capacity
        self.fill_per_second = fill_per_second
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # user -> (tokens, time)
        # The headers speak in whole tokens per whole interval.
        self.interval = 1 if fill_per_second >= 1 else max(1, round(1 / fill_per_second))
        self.fill_rate = max(1, round(fill_per_second * self.interval))

    def take(self, user: str) -> tuple[bool, list[tuple[str, str]]]:
        """Spend one token of ``user``; return whether allowed and the five §1.11 headers."""
        now = self.clock()
        tokens, then = self._buckets.get(user, (float(self.capacity), now))
        tokens = min(float(self.capacity), tokens + (now - then) * self.fill_per_second)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[user] = (tokens, now)
        # retry-after: seconds until a token is back, 0 while tokens remain (§1.11).
        wait = 0 if tokens >= 1 else math.ceil((1 - tokens) / self.fill_per_second)
        headers = [
            ("X-RateLimit-Limit", str(self.capacity)),
            ("X-RateLimit-Remaining", str(math.floor(tokens))),
            ("X-RateLimit-Interval-Seconds", str(self.interval)),
            ("X-RateLimit-FillRate", str(self.fill_rate)),
            ("retry-after", str(wait)),
        ]
        return allowed, headers
