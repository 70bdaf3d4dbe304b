"""The Okta simulator's HTTP side: SSWS tokens, routing, rate limits, page faults (idp-apis §1.1, §1.8)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from scimsync.sim.okta_common import (
    BAD_METHOD,
    FORBIDDEN,
    INVALID_TOKEN,
    NOT_FOUND,
    RATE_LIMITED,
    OktaError,
    json_response,
    okta_error_body,
)
from scimsync.sim.okta_limits import Headers, OktaRateLimiter, PageFault, finish, rate_headers
from scimsync.sim.okta_routes import ROUTES, Ctx, Handler, PageKey, page_number
from scimsync.sim.okta_state import OktaDirectory

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


@dataclass
class Token:
    """An SSWS API token: what its admin may read, and when it was last used (§1.1)."""

    permissions: frozenset[str]
    last_used: float
    revoked: bool = False
    pages_left: int | None = None  # revoked after this many pages of /api/v1/users


class _RefusedError(Exception):
    """A response decided before the handler ran (429s carry their own headers)."""

    def __init__(self, error: OktaError, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.error = error
        self.headers = list(headers)


@dataclass
class ApiSettings:
    """How the org behaves: page cap, token idle lifetime, search lag, concurrency limit."""

    max_page: int
    token_lifetime: float
    search_lag: float
    max_concurrent: int | None


class OktaApi:
    """The WSGI application of one simulated org; shares the directory and lock with OktaSim."""

    def __init__(
        self,
        directory: OktaDirectory,
        lock: threading.RLock,
        settings: ApiSettings,
        limiter: OktaRateLimiter | None,
        clock: Callable[[], float],
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.limiter = limiter
        self.clock = clock
        self.tokens: dict[str, Token] = {}
        self.page_faults: list[PageFault] = []
        # Called with (path, query) before a request is served, outside the lock (OktaSim.on_request).
        self.hooks: list[Callable[[str, Mapping[str, str]], None]] = []
        self._lock = lock
        self._pages: dict[PageKey, int] = {}
        self._serial = 0
        self._in_flight = 0
        self._routes: dict[str, tuple[Handler, str, str]] = {}
        rules = []
        for path, handler, bucket, permission in ROUTES:
            self._routes[path] = (handler, bucket, permission)
            rules.append(Rule(path, methods=["GET"], endpoint=path))
        self._map = Map(rules, merge_slashes=False, strict_slashes=False)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request."""
        request = Request(environ)
        with self._lock:
            self._serial += 1
            serial = self._serial
            self._in_flight += 1
            crowded = (
                self.settings.max_concurrent is not None and self._in_flight > self.settings.max_concurrent
            )
        try:
            response = self._dispatch(request, serial, crowded=crowded)
        finally:
            with self._lock:
                self._in_flight -= 1
        response.headers["X-Okta-Request-Id"] = f"reqSIM{serial:08d}"  # §1.2: on every response
        finish(response.headers)
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _dispatch(self, request: Request, serial: int, *, crowded: bool) -> Response:
        if not request.path.startswith("/api/v1/"):
            # Outside the API the org's web pages answer, in HTML (a wrong `url` sees this).
            page = "<!DOCTYPE html><html><head><title>Okta</title></head><body>Page not found</body></html>"
            return Response(page, status=404, content_type="text/html;charset=utf-8")
        try:
            endpoint, params = self._map.bind_to_environ(request.environ).match()
        except MethodNotAllowed:
            return self._error(OktaError(405, BAD_METHOD), serial)
        except HTTPException:
            return self._error(OktaError(404, NOT_FOUND, request.path, "Resource"), serial)
        handler, bucket, permission = self._routes[endpoint]
        try:
            for hook in list(self.hooks):
                hook(request.path, request.args)
        except OktaError as refused:
            return self._error(refused, serial)
        with self._lock:
            try:
                if crowded:  # §1.8: past the concurrency limit both counts read 0, Reset is a guess
                    raise _RefusedError(OktaError(429, RATE_LIMITED), rate_headers(0, 0, 1))
                token = self._authenticate(request)
                if permission not in token.permissions:
                    raise _RefusedError(OktaError(403, FORBIDDEN))
                return self._serve(request, handler, bucket, params, token, serial)
            except _RefusedError as refused:
                response = self._error(refused.error, serial)
                for name, value in refused.headers:
                    response.headers[name] = value
                return response

    def _serve(
        self, request: Request, handler: Handler, bucket: str, params: Any, token: Token, serial: int
    ) -> Response:
        """Spend a rate-limit token, apply page faults, run the handler (caller holds the lock)."""
        headers: Headers = []
        if self.limiter is not None:
            allowed, headers = self.limiter.take(bucket)
            if not allowed:
                raise _RefusedError(OktaError(429, RATE_LIMITED), headers)
        fault = self._fault_for(request)
        if fault is not None and fault.fire():
            response = self._fault_response(fault, serial)
        else:
            s = self.settings
            ctx = Ctx(request, self.directory, s.max_page, s.search_lag, self._pages, params)
            try:
                response = handler(ctx)
            except OktaError as exc:
                response = self._error(exc, serial)
            self._count_page(request, response, token)
            for name, value in headers:
                response.headers[name] = value
        if fault is not None:
            fault.answers.append(response.status_code)
        return response

    def _authenticate(self, request: Request) -> Token:
        """Return the SSWS token's record; 401 E0000011 for any other credential (§1.1, §1.2)."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = self.tokens.get(value.strip()) if scheme == "SSWS" else None
        now = self.clock()
        if token is None or token.revoked or now - token.last_used > self.settings.token_lifetime:
            raise _RefusedError(OktaError(401, INVALID_TOKEN))
        token.last_used = now  # each use pushes the 30-day expiry forward (§1.1)
        return token

    def _fault_for(self, request: Request) -> PageFault | None:
        page = page_number(request.path, request.args, self._pages)
        key = tuple(sorted((k, v) for k, v in request.args.items() if k not in ("after", "limit")))
        for fault in self.page_faults:
            if fault.path == request.path and fault.page == page and fault.key() == key:
                return fault
        return None

    def _fault_response(self, fault: PageFault, serial: int) -> Response:
        if fault.status != 429:
            body = okta_error_body(fault.status)
            body["errorId"] = f"oaeSIM{serial:013d}"
            return json_response(body, fault.status)
        # §9: a 429 carries E0000047, Remaining 0, a Reset in the future and a Date (the server's).
        limit = self.limiter.limits["users"] if self.limiter is not None else 600
        response = self._error(OktaError(429, RATE_LIMITED), serial)
        for name, value in rate_headers(limit, 0, fault.reset_in):
            response.headers[name] = value
        return response

    def _count_page(self, request: Request, response: Response, token: Token) -> None:
        if request.path != "/api/v1/users" or response.status_code != 200 or token.pages_left is None:
            return
        token.pages_left -= 1
        if token.pages_left <= 0:
            token.revoked = True

    def _error(self, error: OktaError, serial: int) -> Response:
        return json_response(error.body(f"oaeSIM{serial:013d}"), error.status)
