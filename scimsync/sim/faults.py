"""Fault injection and a request log, as WSGI middleware around any simulator app.

Injected answers never reach the wrapped app, so they change no state. A dropped
connection closes the TCP socket without any HTTP response; with ``after_app=True``
the app has already applied the change, which tests that a write is not retried blindly.
The same holds for a slow answer (``slow``) and a truncated body (``truncate``): the app
acted, the client cannot tell. A proxy's HTML page (``html``) never reaches the app; a
repeated page (``repeat_page``) replays an earlier answer, cursor included; ``go_away``
stops answering altogether, as a server that was shut down mid-run.
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ErrorBody = Callable[[int], dict[str, Any]]

# Status recorded in the log for a request whose connection was dropped (no response).
DROPPED = 0
# The ``method`` of a fault that matches every write: any method but GET and HEAD.
WRITES = "WRITES"
_READS = ("GET", "HEAD")

PROXY_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>{status} {phrase}</title></head>\n"
    "<body><h1>{phrase}</h1><p>The proxy server received an invalid response from an upstream "
    "server.</p><hr><address>nginx</address></body></html>\n"
)
HTML_TYPE = "text/html; charset=utf-8"


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

    kind: str  # "respond", "drop", "slow" or "truncate"
    count: int
    method: str | None  # None: any; WRITES: any but GET and HEAD
    path: str | None
    status: int = 0
    body: dict[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    after_app: bool = False
    page: str | None = None  # a non-JSON body to answer (a proxy's HTML page)
    seconds: float = 0.0  # how late a slow answer comes
    query: Mapping[str, str | None] = field(default_factory=dict)  # see _query_matches

    def matches(self, method: str, path: str, query: Mapping[str, str] | None = None) -> bool:
        """Tell whether this rule applies to a request (path: a prefix of whole segments)."""
        if self.method == WRITES:
            if method in _READS:
                return False
        elif self.method is not None and self.method != method:
            return False
        if self.query and not _query_matches(self.query, query or {}):
            return False
        if self.path is None or path == self.path:
            return True
        return path.startswith(self.path if self.path.endswith("/") else self.path + "/")


def _query_matches(wanted: Mapping[str, str | None], query: Mapping[str, str]) -> bool:
    """Tell whether a query string has the wanted values (None: lacks that parameter)."""
    return all(query.get(k) == v if v is not None else k not in query for k, v in wanted.items())


class ConnectionDroppedError(ConnectionError):
    """Raised inside the server to abandon a request whose socket was shut down."""


@dataclass
class _Replay:
    """A page to answer again: the ``page``-th matching GET gets the first one's answer."""

    path: str
    query: dict[str, str | None]  # None: the parameter is absent
    page: int
    seen: int = 0
    first: tuple[str, list[tuple[str, str]], bytes] | None = None

    def matches(self, method: str, path: str, query: dict[str, str]) -> bool:
        """Tell whether a request is a GET of this list."""
        return method == "GET" and path == self.path and _query_matches(self.query, query)


@dataclass
class _Departure:
    """The server goes away after ``left`` more matching answers (``go_away``)."""

    left: int
    method: str | None
    path: str | None
    on_gone: Callable[[], None] | None
    gone: bool = False


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
        self._periodic: tuple[int, int, str | None, str | None] | None = None
        self._seen = 0
        self._first: _Rule | None = None
        self._tried: set[str] = set()
        self._replay: _Replay | None = None
        self._departure: _Departure | None = None

    def inject(
        self,
        status: int,
        *,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status``, without reaching the app.

        ``path`` matches that path and everything below it (``/rest/api/2/group`` covers
        ``/rest/api/2/group/user`` but not ``/rest/api/2/groups/picker``); no query string.
        ``method`` may be WRITES (any method but GET and HEAD). ``headers`` are added to the
        answer (a ``Retry-After``).
        """
        extra = tuple((headers or {}).items())
        self._add(_Rule("respond", count, _upper(method), path, status, body, extra))

    def html(
        self,
        status: int = 502,
        *,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        query: Mapping[str, str | None] | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with a proxy's HTML page, without reaching the app.

        A load balancer or an SSO proxy in front of the API answers for it: 502 when the
        upstream failed, or 200 (a login or maintenance page) that a client must not take for
        the API's own success. ``query``: as for ``repeat_page``.
        """
        page = PROXY_PAGE.format(status=status, phrase=_reason(status))
        self._add(_Rule("respond", count, _upper(method), path, status, page=page, query=dict(query or {})))

    def slow(
        self, seconds: float, *, count: int = 1, method: str | None = None, path: str | None = None
    ) -> None:
        """Answer the next ``count`` matching requests ``seconds`` late, after the app acted.

        A client that waits less than ``seconds`` times out on a request the server carried out.
        """
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        self._add(_Rule("slow", count, _upper(method), path, seconds=seconds))

    def truncate(
        self,
        *,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        query: Mapping[str, str | None] | None = None,
    ) -> None:
        """Cut the body of the next ``count`` matching answers in half, after the app acted.

        The cut body goes with its own Content-Length (a proxy that lost the end of the
        answer), so the client gets a complete HTTP response whose JSON does not parse.
        ``query``: as for ``repeat_page``.
        """
        self._add(_Rule("truncate", count, _upper(method), path, query=dict(query or {})))

    def repeat_page(self, path: str, *, query: Mapping[str, str | None] | None = None, page: int = 2) -> None:
        """Answer the ``page``-th GET of ``path`` with the first one's answer, once, until ``clear``.

        ``query``: only GETs whose query string has these values (None: lacks that parameter)
        count, to pick one list among several read in parallel. The first page's cursor or
        next link comes back where the next page's should be: a client that follows it
        blindly reads the same pages forever.
        """
        if page < 2:
            raise ValueError("page must be at least 2")
        with self._lock:
            self._replay = _Replay(path, dict(query or {}), page)

    def go_away(
        self,
        after: int = 0,
        *,
        method: str | None = None,
        path: str | None = None,
        on_gone: Callable[[], None] | None = None,
    ) -> None:
        """Once ``after`` more matching requests were answered, answer nothing more until ``clear``.

        Every later request is dropped before it reaches the app, whatever it asks; ``on_gone``
        runs once at that moment (a test closes the listening socket there, so new connections
        are refused, as by a server that was stopped).
        """
        if after < 0:
            raise ValueError("after must not be negative")
        with self._lock:
            self._departure = _Departure(after, _upper(method), path, on_gone, gone=after == 0)
        if after == 0 and on_gone is not None:
            on_gone()

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

    def every(self, nth: int, status: int, *, method: str | None = None, path: str | None = None) -> None:
        """Answer every ``nth`` matching request with ``status`` (a flaky proxy), until ``clear``."""
        if nth < 1:
            raise ValueError("nth must be at least 1")
        with self._lock:
            self._periodic = (nth, status, _upper(method), path)
            self._seen = 0

    def first_time(self, status: int = 0, *, method: str | None = None, after_app: bool = False) -> None:
        """Fail the first attempt of every distinct request (method, path, query, body), until ``clear``.

        ``status``: answer it without reaching the app; 0: drop the connection, before the app
        acts or (``after_app``) after it did. A repeat of the same request then goes through:
        the shape of a flaky proxy that a client must ride out without sending anything twice.
        """
        with self._lock:
            self._first = _Rule(
                "drop" if not status else "respond", 1, _upper(method), None, status, None, (), after_app
            )
            self._tried = set()

    def clear(self) -> None:
        """Cancel every pending fault."""
        with self._lock:
            self._rules.clear()
            self._periodic = None
            self._first = None
            self._replay = None
            self._departure = None

    def pending(self) -> int:
        """Return how many faulty answers are still queued (a page to repeat, a server to leave: one each)."""
        with self._lock:
            waiting = sum(r.count for r in self._rules)
            waiting += self._replay is not None
            return waiting + (self._departure is not None and not self._departure.gone)

    def _add(self, rule: _Rule) -> None:
        if rule.count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._rules.append(rule)

    def _first_attempt(self, method: str, path: str, query: dict[str, str], body: Any) -> _Rule | None:
        """Return the first_time rule when this request was never seen before."""
        with self._lock:
            rule = self._first
            if rule is None or not rule.matches(method, path):
                return None
            seen = _request_key(method, path, query, body)
            if seen in self._tried:
                return None
            self._tried.add(seen)
            return rule

    def _take(self, method: str, path: str, query: Mapping[str, str]) -> _Rule | None:
        """Consume one use of the first rule matching this request."""
        with self._lock:
            if self._periodic is not None:
                nth, status, only, prefix = self._periodic
                if _Rule("respond", 1, only, prefix).matches(method, path):
                    self._seen += 1
                    if self._seen % nth == 0:
                        return _Rule("respond", 1, only, prefix, status)
            for rule in self._rules:
                if rule.matches(method, path, query):
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
        if self._gone():
            record(DROPPED)
            _drop_connection(environ)
        replayed = self._replayed(method, path, query)
        if replayed is not None:
            record(int(replayed[0].split(None, 1)[0]))
            start_response(replayed[0], replayed[1])
            return [replayed[2]]
        rule = self._first_attempt(method, path, query, body) or self._take(method, path, query)
        if rule is not None and rule.kind == "drop" and not rule.after_app:
            record(DROPPED)
            _drop_connection(environ)
        if rule is not None and rule.kind == "respond":
            record(rule.status)
            return _respond(start_response, rule, self._error_body, self._content_type)
        status, headers, payload = _serve(self.app, environ)
        self._keep_first_page(method, path, query, (status, headers, payload))
        self._count_departure(method, path)
        if rule is not None and rule.kind == "drop":  # after the app applied the change
            record(DROPPED)
            _drop_connection(environ)
        if rule is not None and rule.kind == "slow":
            time.sleep(rule.seconds)
        if rule is not None and rule.kind == "truncate":
            payload = payload[: len(payload) // 2]
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(payload))))
        record(int(status.split(None, 1)[0]))
        start_response(status, headers)
        return [payload]

    def _gone(self) -> bool:
        with self._lock:
            return self._departure is not None and self._departure.gone

    def _count_departure(self, method: str, path: str) -> None:
        """Count an answered request towards ``go_away``; leave when it was the last one."""
        with self._lock:
            away = self._departure
            if (
                away is None
                or away.gone
                or not _Rule("drop", 1, away.method, away.path).matches(method, path)
            ):
                return
            away.left -= 1
            if away.left > 0:
                return
            away.gone = True
        if away.on_gone is not None:
            away.on_gone()

    def _replayed(
        self, method: str, path: str, query: dict[str, str]
    ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """Count a GET of the repeated list; return the first page's answer when this one repeats it."""
        with self._lock:
            replay = self._replay
            if replay is None or not replay.matches(method, path, query):
                return None
            replay.seen += 1
            if replay.seen != replay.page or replay.first is None:
                return None
            self._replay = None  # once: a client that reads again gets the real pages
            return replay.first

    def _keep_first_page(
        self, method: str, path: str, query: dict[str, str], answer: tuple[str, list[tuple[str, str]], bytes]
    ) -> None:
        with self._lock:
            replay = self._replay
            if (
                replay is not None
                and replay.first is None
                and replay.seen == 1
                and replay.matches(method, path, query)
            ):
                replay.first = answer


def _serve(app: WSGIApplication, environ: WSGIEnvironment) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run the app to the end; return its status line, headers and whole body."""
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, list(headers)))
        return lambda data: None

    chunks = app(environ, start)
    try:
        payload = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("the app returned without starting a response")
    status, headers = started[-1]
    return status, headers, payload


def _request_key(method: str, path: str, query: dict[str, str], body: Any) -> str:
    """Name what a request asks for: a repeat of it is the same write (a fresh random password too)."""
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "password"}
    return json.dumps([method, path, sorted(query.items()), body], sort_keys=True, default=str)


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


def _respond(
    start_response: StartResponse, rule: _Rule, error_body: ErrorBody, content_type: str
) -> list[bytes]:
    """Answer an injected status: the rule's body, its page, or the product's error body."""
    if rule.page is not None:
        payload, kind = rule.page.encode(), HTML_TYPE
    else:
        payload = json.dumps(rule.body if rule.body is not None else error_body(rule.status)).encode()
        kind = content_type
    headers = [("Content-Type", kind), ("Content-Length", str(len(payload)))]
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
