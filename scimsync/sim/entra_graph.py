"""The Entra ID simulator's ``/v1.0`` endpoints: token check, permissions, throttling, paging.

A request goes through, in order: the bearer token (401, idp-apis §2.1), the segment
(400 for an unknown one, as Graph answers), the method (403: the app only reads), the
list and its permission (404, 403), the resource-unit bucket (429, §2.7), the query
options (400/501, §2.2), the skip token (§2.3), then any fault queued for that page.
"""

from __future__ import annotations

from dataclasses import dataclass

from werkzeug.wrappers import Request, Response

from scimsync.sim.entra_auth import Identity, IssuedToken, require
from scimsync.sim.entra_directory import EntraDirectory
from scimsync.sim.entra_lists import page_response, resolve
from scimsync.sim.entra_query import (
    GraphError,
    ResourceUnits,
    SkipTokens,
    bad_request,
    parse_query,
    request_cost,
    tenant_quota,
    throttle_headers,
)

TOO_MANY_MESSAGE = "Too many requests. Please try again later."
DENIED = "Insufficient privileges to complete the operation."


@dataclass
class PageFault:
    """An answer queued for one page of one list: ``times`` more (None: always)."""

    status: int
    times: int | None
    retry_after: int | None


class GraphService:
    """Serve Graph requests against a directory; the simulator calls it under its lock."""

    def __init__(
        self,
        directory: EntraDirectory,
        identity: Identity,
        *,
        max_page_size: int,
        limiter: ResourceUnits | None,
        auto_quota: bool,
    ) -> None:
        self.directory = directory
        self.identity = identity
        self.max_page_size = max_page_size
        self.limiter = limiter
        self.auto_quota = auto_quota  # size the quota by the tenant's users (§2.7)
        self.tokens = SkipTokens()
        self.page_faults: dict[tuple[str, int], PageFault] = {}
        self.page_answers: dict[tuple[str, int], list[int]] = {}
        self.expire_after: int | None = None  # pages of users before every token expires

    def serve(self, request: Request, endpoint: str, group_id: str | None) -> Response:
        """Answer one request under /v1.0 (``endpoint`` empty: a path Graph does not have)."""
        try:
            return self._handle(request, endpoint, group_id)
        except GraphError as exc:
            return exc.response()

    def _handle(self, request: Request, endpoint: str, group_id: str | None) -> Response:
        token = self.identity.caller(request)
        if not endpoint:
            segment = request.path.removeprefix("/v1.0/").split("/")[0]
            raise bad_request(f"Resource not found for the segment '{segment}'.", "BadRequest")
        if request.method != "GET":
            raise GraphError(403, "Authorization_RequestDenied", DENIED)  # read permissions only (§2.1)
        lst = resolve(self.directory, endpoint, group_id)
        require(token, lst.readers)
        headers = self._spend(token, request_cost(lst.cost, request.args))
        query = parse_query(request.args, lst.kind, lst.known)
        state = self.tokens.resolve(query.skiptoken, lst.collection)
        key = (lst.collection, state.page)
        try:
            self._injected(key, token.client_id)
            base = str(request.root_url).rstrip("/") + "/v1.0"
            response = page_response(
                lst,
                query,
                state,
                request.args,
                base=base,
                max_page_size=self.max_page_size,
                tokens=self.tokens,
            )
        except GraphError as exc:
            response = exc.response()
        self.page_answers.setdefault(key, []).append(response.status_code)
        for name, value in headers:
            response.headers[name] = value
        if response.status_code == 200 and lst.collection == "users":
            self._count_users_page()
        return response

    def _spend(self, token: IssuedToken, cost: int) -> list[tuple[str, str]]:
        """Take ``cost`` resource units of the token's (tenant, app) bucket; 429 when empty (§2.7)."""
        headers = [("x-ms-resource-unit", str(cost))]
        if self.limiter is None:
            return headers
        if self.auto_quota:
            self.limiter.quota = tenant_quota(len(self.directory.of_kind("user")))
        tenant = self.identity.tenant_id
        allowed, wait, used = self.limiter.take((tenant, token.client_id), cost)
        if not allowed:
            raise GraphError(
                429, "TooManyRequests", TOO_MANY_MESSAGE, throttle_headers(tenant, token.client_id, wait)
            )
        if used > 0.8:  # §2.7: sent only above 80 % use
            headers.append(("x-ms-throttle-limit-percentage", f"{used:.1f}"))
        return headers

    def _injected(self, key: tuple[str, int], client_id: str) -> None:
        """Raise the fault queued for this page, if any, and count it down."""
        fault = self.page_faults.get(key)
        if fault is None:
            return
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                del self.page_faults[key]
        wait = fault.retry_after
        if fault.status == 429:
            headers = throttle_headers(self.identity.tenant_id, client_id, 1 if wait is None else wait)
            raise GraphError(429, "TooManyRequests", TOO_MANY_MESSAGE, headers)
        extra = [] if wait is None else [("Retry-After", str(wait))]
        code = "UnknownError" if fault.status >= 500 else "BadRequest"
        raise GraphError(fault.status, code, f"Injected fault: HTTP {fault.status}", extra)

    def _count_users_page(self) -> None:
        if self.expire_after is None:
            return
        self.expire_after -= 1
        if self.expire_after <= 0:
            self.expire_after = None
            self.identity.expire_all()
