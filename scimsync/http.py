"""The one HTTP layer: sessions, timeouts, retries, rate limits, parallel calls, redaction.

Connectors never sleep, retry or loop over pages by hand: they call ``HttpClient``
and the paginators in ``scimsync.pagination``.

INTERFACE (stub — being implemented; do not change signatures without telling the team)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests

from scimsync.secrets import Secret

T = TypeVar("T")
R = TypeVar("R")

RETRY_STATUSES = frozenset({429, 502, 503, 504})


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
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        raise NotImplementedError

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
        raise NotImplementedError

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None, obj: str | None = None) -> Any:
        """GET and decode JSON; a body that is not JSON raises ResponseError."""
        raise NotImplementedError

    def map_parallel(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Run ``fn`` over ``items`` with up to ``settings.concurrency`` threads; keep order."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the session."""
        raise NotImplementedError
