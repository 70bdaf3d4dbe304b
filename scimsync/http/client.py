"""The one HTTP layer: sessions, timeouts, retries, rate limits, parallel calls, redaction.

Connectors never sleep, retry or loop over pages by hand: they call ``HttpClient``
and the paginators in ``scimsync.http.pagination``. Pacing and rate-limit headers live in
``scimsync.http.ratelimit``, how many requests may be in flight (fewer under pressure) in
``scimsync.http.pressure``, error wording in ``scimsync.http.errors``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.auth

from scimsync import __version__, interrupt, runstats
from scimsync.errors import ConnectorError, ResponseError
from scimsync.http.errors import (
    ErrorParser,
    TransportFailure,
    classify,
    default_error_parser,
    one_line,
    status_error,
    transport_error,
)
from scimsync.http.pressure import Answer, InFlight
from scimsync.http.ratelimit import RETRY_STATUSES, Attempts, Pacer, ServerRate, read_rate_limits
from scimsync.http.tokens import TokenAuth
from scimsync.secrets import Secret, redact

__all__ = [
    "RETRY_STATUSES",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "ErrorParser",
    "HttpClient",
    "HttpSettings",
    "TokenAuth",
    "default_error_parser",
]

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("scimsync.http")

_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 30.0
# A request that keeps being rate limited gives up after waiting this long, or 10 timeouts.
_MIN_RATE_LIMIT_BUDGET = 60.0
_SLEEP_SLICE = 0.25


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
    """``Authorization: Bearer <token>`` (Jira/Confluence PATs, SCIM keys); Okta's scheme is ``SSWS``."""

    token: Secret
    scheme: str = "Bearer"


@dataclass(frozen=True)
class BasicAuth:
    """HTTP basic auth."""

    username: str
    password: Secret


Auth = BearerAuth | BasicAuth | TokenAuth | None


class _BearerAuth(requests.auth.AuthBase):
    """Add the token header at send time, so the token lives only in the Secret."""

    def __init__(self, token: Secret, scheme: str = "Bearer") -> None:
        self._token = token
        self._scheme = scheme

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"{self._scheme} {self._token.reveal()}"
        return request


class _TokenAuth(requests.auth.AuthBase):
    """Add ``Bearer <token>`` with the token source's current token, at send time."""

    def __init__(self, auth: TokenAuth) -> None:
        self.source = auth.source

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.source.token().reveal()}"
        return request


def _sleep(seconds: float) -> None:
    """Sleep in short slices: a signal that cancels the reads ends a long backoff at once."""
    while seconds > 0:
        step = min(seconds, _SLEEP_SLICE)
        time.sleep(step)
        seconds -= step
        interrupt.check()


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
        self._pacer = Pacer(settings.rate_limit, clock, sleep)
        # Every request of this system passes this gate, from any thread: the pool below
        # never has more requests in flight than connections (SPEC §8).
        self._gate = InFlight(settings.concurrency)
        base = urlsplit(self.base_url)
        self._origin = (base.scheme.lower(), base.netloc.lower())
        self._base_path = base.path
        self._session = self._make_session(auth, headers)
        self._send_options = self._environment()

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
            session.auth = _BearerAuth(auth.token, auth.scheme)
        elif isinstance(auth, TokenAuth):
            session.auth = _TokenAuth(auth)
        elif isinstance(auth, BasicAuth):
            session.auth = requests.auth.HTTPBasicAuth(auth.username, auth.password.reveal())
        return session

    def _environment(self) -> dict[str, Any]:
        """Read the proxy, CA bundle and netrc settings of the environment once, not per request.

        What ``requests`` would look up on every request (``trust_env``): every URL this
        client sends to is on the base URL's host (``_url``), so one lookup holds for all.
        """
        session = self._session
        found = session.merge_environment_settings(
            self.base_url, {}, False, self.settings.ca_bundle or True, None
        )
        if session.auth is None and session.trust_env:
            netrc = requests.utils.get_netrc_auth(self.base_url)
            if netrc:
                session.auth = requests.auth.HTTPBasicAuth(*netrc)
        session.trust_env = False
        return {
            "timeout": self.settings.timeout,
            "proxies": found["proxies"],
            "verify": found["verify"],
            "cert": found["cert"],
            "stream": False,
        }

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
        duplicate it (429, or the connection was never made). 429s are retried on a time
        budget, not ``settings.retries``.
        """
        method = method.upper()
        url = self._url(path, obj)
        budget = max(_MIN_RATE_LIMIT_BUDGET, 10 * self.settings.timeout)
        tries = Attempts(method, max(0, self.settings.retries), budget, self._backoff)
        delay: float | None = 0.0
        refreshed = False
        while True:
            tries.attempt += 1
            outcome, server_wait = self._attempt(method, url, params, json, tries.attempt, delay or 0.0)
            if not refreshed and self._refresh_token(outcome):
                # The token expired (or was revoked) since it was fetched: once with a fresh one.
                refreshed, delay = True, 0.0
                tries.attempt -= 1
                continue
            if isinstance(outcome, TransportFailure):
                delay, what = tries.after_transport(outcome), outcome.cause
                if delay is None:
                    raise transport_error(self.system, self._label(method, url, obj), outcome, tries.attempt)
            else:
                status = outcome.status_code
                if status in ok:
                    return outcome
                delay, what = tries.after_status(status, server_wait), str(status)
                if delay is None:
                    waited = tries.waited if status in (429, 503) else None
                    label, parser = self._label(method, url, obj), self._error_parser
                    raise status_error(self.system, outcome, label, tries.attempt, parser, waited=waited)
            log.warning(
                "%s: %s on %s %s, retrying in %.1fs (%s)",
                self.system,
                what,
                method,
                self._shown(url),
                delay,
                tries.describe(limited=what in ("429", "503")),
            )

    def _attempt(
        self, method: str, url: str, params: Mapping[str, Any] | None, body: Any, attempt: int, delay: float
    ) -> tuple[requests.Response | TransportFailure, float]:
        """Wait for a place and a turn, send once; return the outcome and how long its retry must wait."""
        # The turn first, then the place: a thread sleeping until its turn holds no place.
        self._pacer.wait_turn(delay)
        ticket = self._gate.enter()
        try:
            interrupt.check()  # a signal while reading: no new request goes out
            outcome, seconds = self._send(method, url, params, body, attempt)
        except BaseException:
            self._gate.leave(ticket)
            raise
        if isinstance(outcome, TransportFailure):
            self._gate.leave(ticket, Answer(None, seconds))
            return outcome, 0.0
        server_wait, rate = self._note_rate_limits(outcome)
        self._gate.leave(ticket, Answer(outcome.status_code, seconds, rate))
        return outcome, server_wait

    def _send(
        self, method: str, url: str, params: Mapping[str, Any] | None, body: Any, attempt: int
    ) -> tuple[requests.Response | TransportFailure, float]:
        """Make one attempt; return the response (or the classified transport failure) and its seconds."""
        runstats.current().count_request(self.system)  # for the --report file
        started = self._clock()
        try:
            session = self._session
            prepared = session.prepare_request(
                requests.Request(method, url, params=_encode_params(params), json=body)
            )
            # What Session.request does, less its per-request environment lookup (_environment).
            # A redirected write would turn into a GET and "succeed"; only reads follow them.
            response = session.send(prepared, allow_redirects=method in ("GET", "HEAD"), **self._send_options)
        except requests.RequestException as exc:
            failure = classify(exc, urlsplit(url).hostname or "", self.settings.timeout)
            outcome: str | int = failure.cause
            result: requests.Response | TransportFailure = failure
        except ValueError:
            # requests refuses a header it cannot send (a credential with a newline in it);
            # its message quotes the header, so it is never shown.
            raise ConnectorError(
                self.system, f"{method} {self._shown(url)}", "invalid request header: check the credentials"
            ) from None
        else:
            outcome = response.status_code
            result = response
        seconds = self._clock() - started
        if log.isEnabledFor(logging.DEBUG):
            shown, ms = self._shown(url), seconds * 1000
            log.debug(
                "%s: %s %s -> %s in %.0f ms (attempt %d)", self.system, method, shown, outcome, ms, attempt
            )
        return result, seconds

    def _refresh_token(self, outcome: requests.Response | TransportFailure) -> bool:
        """After a 401 to a refreshable token, drop that token; tell whether to try again."""
        auth = self._session.auth
        if not isinstance(auth, _TokenAuth) or isinstance(outcome, TransportFailure):
            return False
        if outcome.status_code != 401:
            return False
        sent = outcome.request.headers.get("Authorization", "")
        auth.source.invalidate(Secret(sent.removeprefix("Bearer ")))
        log.info("%s: the access token was refused (401); fetching a new one", self.system)
        return True

    def _backoff(self, attempt: int) -> float:
        """Return the full-jitter exponential backoff before retry number ``attempt``."""
        ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0 ** (attempt - 1))
        return self._rng() * ceiling

    def _note_rate_limits(self, response: requests.Response) -> tuple[float, ServerRate | None]:
        """Follow the server's rate and hold-backs; return how long this response's retry must wait."""
        wait = read_rate_limits(response, self._wall_clock)
        if wait.rate is not None and self._pacer.follow(wait.rate):
            rate = wait.rate
            log.debug(
                "%s: pacing to the server's rate: %d at once, then one every %.3gs",
                self.system,
                rate.limit,
                rate.interval,
            )
        if wait.hold:
            log.debug("%s: rate limit reached, holding requests for %.1fs", self.system, wait.hold)
            self._pacer.hold(wait.hold)
        return wait.retry, wait.rate

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

    def _shown(self, url: str) -> str:
        """Return the URL as logs and errors show it: its path, redacted (built only when shown)."""
        return redact(self._display_path(url))

    def _label(self, method: str, url: str, obj: str | None) -> str:
        """Return what errors name: ``obj``, or the method and the shown path."""
        return redact(obj or f"{method} {self._shown(url)}")

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
            text = one_line(response.text)[:80]
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
