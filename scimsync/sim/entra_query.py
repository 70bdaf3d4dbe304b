"""Microsoft Graph's error envelope, query options, skip tokens and resource-unit throttling.

Strict to idp-apis §2: ``$top`` 1-999 (default 100), no ``$skip``, ``@odata.nextLink`` an
absolute URL carrying every original query option plus ``$skiptoken`` (§2.3), errors as
``{"error": {"code", "message", "innerError"}}`` (§2.7), and the identity service's token
bucket of resource units per app and tenant with its costs and headers (§2.7).
"""

from __future__ import annotations

import datetime
import json
import math
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from scimsync.sim.entra_directory import USER_SINGLE_ONLY

GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
DEFAULT_TOP = 100  # §2.2
MAX_TOP = 999  # §2.2: $top=1000 fails
WINDOW = 10.0  # §2.7: resource units are counted per 10 seconds
# §2.7: the options this simulator implements; any other $option is refused, never ignored.
SUPPORTED = frozenset({"$top", "$select", "$skiptoken"})


def graph_error_body(status: int, code: str = "", message: str = "") -> dict[str, Any]:
    """Return Graph's error envelope (§2.7) for ``status``."""
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    request_id = str(uuid.uuid4())
    return {
        "error": {
            "code": code or ("TooManyRequests" if status == 429 else "UnknownError"),
            "message": message or f"Injected fault: HTTP {status}",
            "innerError": {"date": now, "request-id": request_id, "client-request-id": request_id},
        }
    }


TOO_MANY = graph_error_body(429, "TooManyRequests", "Too many requests. Please try again later.")


class GraphError(Exception):
    """An error answer in Graph's envelope, with extra headers (Retry-After on 429)."""

    def __init__(self, status: int, code: str, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.headers = status, code, message, tuple(headers)

    def response(self) -> Response:
        """Render the error."""
        response = json_response(graph_error_body(self.status, self.code, self.message), self.status)
        for name, value in self.headers:
            response.headers[name] = value
        return response


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    """Return a 400 in Graph's envelope."""
    return GraphError(400, code, message)


def json_response(data: Any, status: int = 200) -> Response:
    """Return ``data`` as Graph JSON."""
    return Response(json.dumps(data), status=status, content_type=GRAPH_JSON)


# --- query options -------------------------------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    """The query options of one list request."""

    top: int
    select: tuple[str, ...] | None
    skiptoken: str | None


def parse_query(args: MultiDict[str, str], kind: str, known: Sequence[str]) -> ListQuery:
    """Check the query options of a list of ``kind``; 400 (or 501) for anything Graph refuses."""
    for name in args:
        if len(args.getlist(name)) > 1:
            raise bad_request(
                f"Query option '{name}' was specified more than once, but it must be specified at most once."
            )
        if name == "$skip":  # §2.2
            raise bad_request("'$skip' is not supported by the service.")
        if name.startswith("$") and name not in SUPPORTED:
            raise bad_request(f"The simulator does not implement the query option '{name}'.")
    return ListQuery(
        _top(args.get("$top")), _select(args.get("$select"), kind, known), args.get("$skiptoken")
    )


def _top(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_TOP
    try:
        top = int(raw)
    except ValueError:
        raise bad_request(f"Invalid value '{raw}' for the query option '$top'.") from None
    if not 1 <= top <= MAX_TOP:
        # §2.2: the exact wording Graph uses [S-MS5].
        raise bad_request(f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive.")
    return top


def _select(raw: str | None, kind: str, known: Sequence[str]) -> tuple[str, ...] | None:
    if raw is None:
        return None
    names = tuple(n.strip() for n in raw.split(","))
    for name in names:
        if kind in ("user", "directoryObject") and name in USER_SINGLE_ONLY:
            # §2.2: properties only a single user can show answer 501 on a collection.
            raise GraphError(501, "NotImplemented", "This operation target is not yet supported.")
        if name != "id" and name not in known:
            raise bad_request(
                "Parsing OData Select and Expand failed: Could not find a property named "
                f"'{name}' on type 'microsoft.graph.{kind}'."
            )
    return names


# --- skip tokens ---------------------------------------------------------------------


@dataclass(frozen=True)
class PageState:
    """Where a skip token continues: the list, the last id returned, and the page it opens."""

    collection: str
    after: str
    page: int


class SkipTokens:
    """Opaque ``$skiptoken`` values (§2.3) and the positions they stand for."""

    def __init__(self) -> None:
        self._states: dict[str, PageState] = {}

    def issue(self, state: PageState) -> str:
        """Return a new token for ``state``."""
        token = "RFNwdAIA" + secrets.token_urlsafe(24)
        self._states[token] = state
        return token

    def resolve(self, token: str | None, collection: str) -> PageState:
        """Return where ``token`` continues ``collection`` (page 1 without a token); 400 otherwise."""
        if token is None:
            return PageState(collection, "", 1)
        state = self._states.get(token)
        if state is None or state.collection != collection:
            # [U] Graph's wording for a token it cannot use.
            raise bad_request(
                "The specified page token value has expired and can no longer be included in your request.",
                "Directory_ExpiredPageToken",
            )
        return state


def next_link(base: str, path: str, args: MultiDict[str, str], token: str) -> str:
    """Return the absolute next link: every original option, then the new ``$skiptoken`` (§2.3)."""
    query = [(k, v) for k, v in args.items(multi=True) if k != "$skiptoken"] + [("$skiptoken", token)]
    return f"{base}{path}?{urlencode(query, safe='$,')}"


# --- resource units (§2.7) -----------------------------------------------------------


def request_cost(base: int, query: MultiDict[str, str]) -> int:
    """Return a request's resource units: its base cost, -1 with $select, -1 with $top < 20; at least 1."""
    cost = base - (1 if "$select" in query else 0)
    top = query.get("$top", "")
    if top.isdigit() and int(top) < 20:
        cost -= 1
    return max(1, cost)


def tenant_quota(users: int) -> int:
    """Return the resource units per 10 s of an app+tenant pair by tenant size (§2.7)."""
    if users < 50:
        return 3500
    return 5000 if users <= 500 else 8000


class ResourceUnits:
    """A token bucket of resource units per (tenant, app), refilled continuously over the window."""

    def __init__(self, quota: int, clock: Callable[[], float]) -> None:
        if quota < 1:
            raise ValueError("a resource-unit quota must be at least 1")
        self.quota = quota
        self.clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, key: tuple[str, str], cost: int) -> tuple[bool, int, float]:
        """Spend ``cost`` units; return (allowed, seconds until it would be, share of the quota used)."""
        now = self.clock()
        rate = self.quota / WINDOW
        units, then = self._buckets.get(key, (float(self.quota), now))
        units = min(float(self.quota), units + (now - then) * rate)
        allowed = units >= cost
        if allowed:
            units -= cost
        self._buckets[key] = (units, now)
        wait = 0 if allowed else max(1, math.ceil((cost - units) / rate))
        return allowed, wait, 1.0 - units / self.quota


def throttle_headers(tenant: str, app: str, retry_after: int) -> list[tuple[str, str]]:
    """Return the headers of a throttled answer (§2.7)."""
    return [
        ("Retry-After", str(retry_after)),
        ("x-ms-throttle-scope", f"Tenant_Application/ReadWrite/{app}/{tenant}"),
        ("x-ms-throttle-information", "ResourceUnitLimitExceeded"),
    ]
