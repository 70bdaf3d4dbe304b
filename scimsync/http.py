"""The one HTTP layer: sessions, timeouts, retries, rate limits, parallel calls, redaction.

Connectors never sleep, retry or loop over pages by hand: they call ``HttpClient``
and the paginators in ``scimsync.pagination``.
"""

from __future__ import annotations

import datetime
import email.utils
import http
import logging
import math
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.auth
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from scimsync import __version__
from scimsync.errors import AuthError, ConnectorError, NotFoundError, ResponseError
from scimsync.secrets import Secret, redact

T = TypeVar("T")
R = TypeVar("R")

RETRY_STATUSES = frozenset({429, 502, 503, 504})

log = logging.getLogger("scimsync.http")

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 30.0
# A server asking for a longer pause is more likely confused than right; waiting
# this long and retrying (then failing with "still rate limited") beats hanging for hours.
_MAX_SERVER_WAIT = 300.0
# Remaining is 0 but the server gave no reset time: let the bucket refill a little.
_DEFAULT_HOLD = 1.0
_MAX_VENDOR_MESSAGE = 300


@dataclass(frozen=True)
class HttpSettings:
    """The ``http`` section of the config (SPEC §3)."""

    timeout: float = 30.0
    retries: int = 5
    concurrency: int = 8
    rate_limit: float | None = None
    ca_bundle: str | None = None


@dataclass(frozen=True)
class BearerAuth:
    """``Authorization: Bearer <token>`` (Jira/Confluence PATs, SCIM keys)."""

    token: Secret


@dataclass(frozen=True)
class BasicAuth:
    """HTTP basic auth."""

    username: str
    password: Secret


Auth = BearerAuth | BasicAuth | None

# Turns an error response into the vendor's own message (Jira errorMessages, SCIM detail...).
ErrorParser = Callable[[requests.Response], str]


def default_error_parser(response: requests.Response) -> str:
    """Return the vendor's message from an error body, or the start of the text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = _vendor_message(body) if isinstance(body, dict) else ""
    return message or _one_line(response.text)[:200]


def _vendor_message(body: Mapping[str, Any]) -> str:
    """Pick the message out of the error envelopes the supported vendors use."""
    # Jira: {"errorMessages": [...], "errors": {field: msg}} (atlassian §1.10).
    parts = [str(m) for m in body.get("errorMessages") or () if m]
    errors = body.get("errors")
    if isinstance(errors, Mapping):
        parts += [f"{field}: {msg}" for field, msg in errors.items() if msg]
    elif isinstance(errors, list):  # Bitbucket: {"errors": [{"message": ...}]} (atlassian §0)
        parts += [str(e["message"]) for e in errors if isinstance(e, Mapping) and e.get("message")]
    if parts:
        return "; ".join(parts)
    error = body.get("error")
    if isinstance(error, Mapping) and error.get("message"):  # Graph (idp §2.7)
        return str(error["message"])
    # Confluence / basic-auth-disabled 403 "message", SCIM "detail", Okta "errorSummary",
    # OAuth token errors "error_description", SCIM 401/403 {"error": "..."} (atlassian §3.8).
    for field in ("message", "detail", "errorSummary", "error_description", "error"):
        value = body.get(field)
        if isinstance(value, str) and value:
            return value
    return ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


class _BearerAuth(requests.auth.AuthBase):
    """Add the bearer header at send time, so the token lives only in the Secret."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return request


class _Pacer:
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
class _Failure:
    """A transport failure, classified from the requests/urllib3 exception chain."""

    cause: str
    retriable: bool
    sent: bool  # the request may have reached the server: retrying a POST could duplicate it


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc`` and everything it wraps (cause, context, urllib3 ``reason``, args)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args)
        todo.extend(e for e in linked if isinstance(e, BaseException))


def _classify(exc: requests.RequestException, host: str, timeout: float) -> _Failure:
    """Turn a requests exception into one line, and whether (and how safely) to retry."""
    chain = list(_exception_chain(exc))
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            detail = getattr(e, "verify_message", "") or _one_line(str(e))
            return _Failure(f"TLS certificate verification failed: {detail}", False, False)
    if isinstance(exc, requests.exceptions.SSLError):
        return _Failure(f"TLS error: {_one_line(str(chain[-1]))}", False, False)
    if any(isinstance(e, NameResolutionError | socket.gaierror) for e in chain):
        return _Failure(f"cannot resolve host '{host}'", False, False)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return _Failure("connection refused", True, False)
    if isinstance(exc, requests.ConnectTimeout) or any(
        isinstance(e, ConnectTimeoutError) and not isinstance(e, NewConnectionError) for e in chain
    ):
        return _Failure(f"connect timed out after {timeout:g}s", True, False)
    if any(isinstance(e, NewConnectionError) for e in chain):
        reason = next((e.strerror for e in chain if isinstance(e, OSError) and e.strerror), "unknown error")
        return _Failure(f"cannot connect: {reason}", True, False)
    if isinstance(exc, requests.Timeout):
        return _Failure(f"timed out after {timeout:g}s", True, True)
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return _Failure("connection closed before a complete response", True, True)
    return _Failure(f"request failed: {_one_line(str(exc))[:200]}", False, True)


def _http_date(value: str | None) -> float | None:
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


def _retry_after(response: requests.Response, now: float) -> float | None:
    """Return ``Retry-After`` in seconds (delta-seconds or HTTP-date), or None."""
    value = (response.headers.get("Retry-After") or "").strip()
    try:
        seconds = float(value)
    except ValueError:
        when = _http_date(value)
        return None if when is None else max(0.0, when - now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _rate_limit_hold(response: requests.Response, now: float) -> float | None:
    """Return how long every thread must wait when the server says no requests remain."""
    headers = response.headers
    # Okta: X-Rate-Limit-Reset is epoch seconds; measure it against the server's own Date,
    # and take the smallest of repeated headers, as Okta's SDK does (idp §1.8).
    if _smallest_number(headers.get("X-Rate-Limit-Remaining")) == 0:
        reset = _smallest_number(headers.get("X-Rate-Limit-Reset"))
        return _DEFAULT_HOLD if reset is None else max(0.0, reset - now)
    # Atlassian DC: retry-after is the seconds until new tokens, 0 while tokens remain (atlassian §1.11).
    if _smallest_number(headers.get("X-RateLimit-Remaining")) == 0:
        return _retry_after(response, now) or _DEFAULT_HOLD
    return None


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


class HttpClient:
    """A client for one system (``system`` is the config name, e.g. ``jira``)."""

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        auth: Auth = None,
        settings: HttpSettings = HttpSettings(),
        error_parser: ErrorParser | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        # Looked up at call time, so an end-to-end test can swap time.sleep for the whole run.
        sleep = sleep or _sleep
        self.system = system
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self._error_parser = error_parser or default_error_parser
        self._rng = rng
        self._wall_clock = wall_clock
        self._clock = clock
        self._pacer = _Pacer(settings.rate_limit, clock, sleep)
        base = urlsplit(self.base_url)
        self._origin = (base.scheme.lower(), base.netloc.lower())
        self._base_path = base.path
        self._session = self._make_session(auth, headers)

    def _make_session(self, auth: Auth, headers: Mapping[str, str] | None) -> requests.Session:
        session = requests.Session()
        size = max(1, self.settings.concurrency)
        # max_retries=0: urllib3 must not retry behind our back (a POST could be sent twice).
        adapter = requests.adapters.HTTPAdapter(pool_connections=size, pool_maxsize=size, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["Accept"] = "application/json"
        session.headers["User-Agent"] = f"scimsync/{__version__}"
        session.headers.update(headers or {})
        if isinstance(auth, BearerAuth):
            session.auth = _BearerAuth(auth.token)
        elif isinstance(auth, BasicAuth):
            session.auth = requests.auth.HTTPBasicAuth(auth.username, auth.password.reveal())
        return session

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        ok: Collection[int] = (200, 201, 204),
        obj: str | None = None,
    ) -> requests.Response:
        """Send one request with retries; return the response when its status is in ``ok``.

        ``path`` is appended to the base URL (or is an absolute URL on the same host).
        ``obj`` names the object for error messages ("user amara.k"); default: the path.
        Raises AuthError (401/403), NotFoundError (404), ConnectorError (other status,
        transport failure after retries). POST is retried only when that cannot
        duplicate it (429, or the connection was never made).
        """
        method = method.upper()
        url = self._url(path, obj)
        shown = redact(self._display_path(url))
        label = redact(obj or f"{method} {shown}")
        attempts = max(0, self.settings.retries) + 1
        delay = 0.0
        for attempt in range(1, attempts + 1):
            self._pacer.wait_turn(delay)
            outcome = self._send(method, url, shown, params, json, attempt)
            server_wait = 0.0
            if isinstance(outcome, requests.Response):
                server_wait = self._note_rate_limits(outcome)
                if outcome.status_code in ok:
                    return outcome
            delay = self._retry_delay(method, outcome, server_wait, label, attempt, attempts)
            what = outcome.cause if isinstance(outcome, _Failure) else str(outcome.status_code)
            log.warning(
                "%s: %s on %s %s, retrying in %.1fs (attempt %d/%d)",
                self.system,
                what,
                method,
                shown,
                delay,
                attempt + 1,
                attempts,
            )
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _retry_delay(
        self,
        method: str,
        outcome: requests.Response | _Failure,
        server_wait: float,
        label: str,
        attempt: int,
        attempts: int,
    ) -> float:
        """Return how long to wait before retrying, or raise when this outcome is final."""
        if isinstance(outcome, _Failure):
            # A POST that may have reached the server is never sent twice.
            if attempt == attempts or not outcome.retriable or (outcome.sent and method not in _IDEMPOTENT):
                suffix = f" ({_attempts(attempt)})" if outcome.retriable else ""
                raise ConnectorError(self.system, label, redact(outcome.cause + suffix))
            return self._backoff(attempt)
        status = outcome.status_code
        # 429 means the server refused before doing anything, so even a POST may go again.
        retriable = status in RETRY_STATUSES and (method in _IDEMPOTENT or status == 429)
        if attempt == attempts or not retriable:
            raise self._status_error(outcome, label, attempt)
        return max(self._backoff(attempt), server_wait)

    def _send(
        self, method: str, url: str, shown: str, params: Mapping[str, Any] | None, body: Any, attempt: int
    ) -> requests.Response | _Failure:
        """Make one attempt; return the response, or the classified transport failure."""
        started = self._clock()
        try:
            response = self._session.request(
                method,
                url,
                params=_encode_params(params),
                json=body,
                timeout=self.settings.timeout,
                verify=self.settings.ca_bundle or True,
                # A redirected write would turn into a GET and "succeed"; only reads follow them.
                allow_redirects=method in ("GET", "HEAD"),
            )
        except requests.RequestException as exc:
            failure = _classify(exc, urlsplit(url).hostname or "", self.settings.timeout)
            outcome: str | int = failure.cause
            result: requests.Response | _Failure = failure
        else:
            outcome = response.status_code
            result = response
        ms = (self._clock() - started) * 1000
        log.debug("%s: %s %s -> %s in %.0f ms (attempt %d)", self.system, method, shown, outcome, ms, attempt)
        return result

    def _backoff(self, attempt: int) -> float:
        """Return the full-jitter exponential backoff before retry number ``attempt``."""
        ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0 ** (attempt - 1))
        return self._rng() * ceiling

    def _note_rate_limits(self, response: requests.Response) -> float:
        """Hold back every thread when the server says so; return this response's own wait."""
        server_now = _http_date(response.headers.get("Date"))
        now = self._wall_clock() if server_now is None else server_now
        hold = _rate_limit_hold(response, now)
        retry_after = _retry_after(response, now) if response.status_code in RETRY_STATUSES else None
        if response.status_code == 429:
            # The bucket is shared by every thread of this client: all of them wait.
            hold = max(hold or 0.0, retry_after or 0.0)
        if hold:
            hold = min(hold, _MAX_SERVER_WAIT)
            log.debug("%s: rate limit reached, holding requests for %.1fs", self.system, hold)
            self._pacer.hold(hold)
        return min(_MAX_SERVER_WAIT, max(hold or 0.0, retry_after or 0.0))

    def _status_error(self, response: requests.Response, label: str, attempts: int) -> ConnectorError:
        """Build the exception for a response whose status was not expected."""
        status = response.status_code
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = response.reason or "Unknown Status"
        head = f"HTTP {status} {phrase}"
        if status == 401:
            cause = f"{head}: the credentials were rejected"
        elif status == 429:
            cause = f"{head}: still rate limited after {_attempts(attempts)}"
        else:
            message = _one_line(self._error_parser(response))
            if len(message) > _MAX_VENDOR_MESSAGE:
                message = message[: _MAX_VENDOR_MESSAGE - 1] + "…"
            cause = f"{head}: {message}" if message else head
            if attempts > 1:
                cause += f" ({_attempts(attempts)})"
        kind = {401: AuthError, 403: AuthError, 404: NotFoundError}.get(status, ConnectorError)
        return kind(self.system, label, redact(cause), status=status)

    def _url(self, path: str, obj: str | None) -> str:
        """Join ``path`` to the base URL; an absolute URL must stay on the same host."""
        if not path.lower().startswith(("http://", "https://")):
            return self.base_url + "/" + path.lstrip("/")
        parts = urlsplit(path)
        # Following a link to another host would send it our credentials.
        if (parts.scheme.lower(), parts.netloc.lower()) != self._origin:
            where = obj or f"link {parts.scheme}://{parts.netloc}{parts.path}"
            raise ResponseError(self.system, redact(where), f"refusing to follow a link to {parts.netloc}")
        return path

    def _display_path(self, url: str) -> str:
        """Return the URL's path without the query string or the base URL's own path."""
        path = urlsplit(url).path
        if self._base_path and path.startswith(self._base_path + "/"):
            path = path[len(self._base_path) :]
        return path or "/"

    def decode_json(self, response: requests.Response, *, obj: str | None = None) -> Any:
        """Decode a response body as JSON; a body that is not JSON raises ResponseError."""
        try:
            return response.json()
        except ValueError:
            kind = (response.headers.get("Content-Type") or "no content type").split(";")[0].strip()
            text = _one_line(response.text)[:80]
            label = obj or f"{response.request.method} {self._display_path(response.url)}"
            raise ResponseError(
                self.system, redact(label), redact(f"expected JSON, got {kind}: {text}")
            ) from None

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None, obj: str | None = None) -> Any:
        """GET and decode JSON; a body that is not JSON raises ResponseError."""
        return self.decode_json(self.request("GET", path, params=params, ok=(200,), obj=obj), obj=obj)

    def map_parallel(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Run ``fn`` over ``items`` with up to ``settings.concurrency`` threads; keep order."""
        work = list(items)
        if not work:
            return []
        first: BaseException | None = None
        with ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency)) as pool:
            futures: list[Future[R]] = [pool.submit(fn, item) for item in work]
            for future in as_completed(futures):
                if future.cancelled() or first is not None:
                    continue
                first = future.exception()
                if first is not None:
                    # Calls in flight finish; calls not started yet are dropped.
                    for other in futures:
                        other.cancel()
        if first is not None:
            raise first
        return [future.result() for future in futures]

    def close(self) -> None:
        """Close the session."""
        self._session.close()


def _encode_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Send booleans as JSON-style ``true``/``false``, which every supported API expects."""
    if params is None:
        return None
    return {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items()}
