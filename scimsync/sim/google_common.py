"""Errors, JSON answers, query parameters and page tokens of the Google Workspace simulator.

Google's error body is ``{"error": {"code", "message", "errors": [{"message", "domain",
"reason"}], "status"}}`` (idp-apis §3.7; the reasons are confirmed there, the envelope is
marked ⚠ and taken as Google's standard JSON error).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

JSON_TYPE = "application/json; charset=UTF-8"
# Google's canonical status names for the HTTP statuses the simulator answers.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# idp-apis §3.2: "pageToken ... Valid for three days."
PAGE_TOKEN_LIFETIME = 3 * 24 * 3600.0


class GoogleError(Exception):
    """An error answer in Google's JSON shape."""

    def __init__(
        self,
        status: int,
        message: str,
        reason: str,
        *,
        domain: str = "global",
        location: str | None = None,
        location_type: str = "parameter",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.status = status
        self.message = message
        self.reason = reason
        self.domain = domain
        self.location = location
        self.location_type = location_type
        self.headers = tuple(headers)
        super().__init__(f"{status} {reason}: {message}")

    def body(self) -> dict[str, Any]:
        """Return the error body."""
        detail: dict[str, Any] = {"message": self.message, "domain": self.domain, "reason": self.reason}
        if self.location:
            detail |= {"location": self.location, "locationType": self.location_type}
        return error_body(self.status, self.message, [detail])

    def response(self) -> Response:
        """Render the error as a response."""
        return json_response(self.body(), self.status, self.headers)


def error_body(status: int, message: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    """Return Google's error envelope."""
    error = {"code": status, "message": message, "errors": errors}
    if status in STATUS_NAMES:
        error["status"] = STATUS_NAMES[status]
    return {"error": error}


def injected_error_body(status: int) -> dict[str, Any]:
    """Return the body of a status injected through ``Faults``."""
    message = f"Injected fault: HTTP {status}"
    reason = "rateLimitExceeded" if status == 429 else "backendError"
    return error_body(status, message, [{"message": message, "domain": "global", "reason": reason}])


# idp-apis §3.7 ⚠: "Google APIs in general may also answer 429 (rateLimitExceeded / RESOURCE_EXHAUSTED)".
RATE_LIMITED_BODY = error_body(
    429,
    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'.",
    [{"message": "Rate Limit Exceeded", "domain": "usageLimits", "reason": "rateLimitExceeded"}],
)


def json_response(data: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """Return ``data`` as a JSON response."""
    response = Response(json.dumps(data), status=status, content_type=JSON_TYPE)
    for name, value in headers:
        response.headers[name] = value
    return response


def html_not_found(path: str) -> Response:
    """Answer an unknown path as Google's front end does: an HTML page, not JSON. [U]"""
    page = (
        "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 404 (Not Found)!!1</title>"
        f"<p><b>404.</b> <ins>That's an error.</ins><p>The requested URL <code>{path}</code> "
        "was not found on this server. <ins>That's all we know.</ins>"
    )
    return Response(page, status=404, content_type="text/html; charset=UTF-8")


def etag(data: Any) -> str:
    """Return a quoted ETag for a resource or a list."""
    digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode(), usedforsecurity=False)
    return f'"sim{digest.hexdigest()[:24]}"'


# --- query parameters ------------------------------------------------------------------


def _invalid(name: str, value: str, extra: str = "") -> GoogleError:
    return GoogleError(400, f"Invalid value '{value}'.{extra}", "invalid", location=name)


def int_param(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """Return an integer parameter in [low, high]; 400 otherwise (a too large page is refused)."""
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(name, raw) from None
    if not low <= value <= high:
        raise _invalid(name, raw, f" Values must be within the range: [{low}, {high}]")
    return value


def bool_param(args: Mapping[str, str], name: str) -> bool:
    """Return a boolean parameter (``true``/``false``, case ignored); absent is false."""
    raw = args.get(name)
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise _invalid(name, raw)
    return raw.lower() == "true"


def choice_param(args: Mapping[str, str], name: str, default: str, choices: Iterable[str]) -> str:
    """Return a parameter that must be one of ``choices`` (compared ignoring case)."""
    raw = args.get(name)
    if raw is None:
        return default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise _invalid(name, raw)


# --- page tokens -------------------------------------------------------------------------


@dataclass(frozen=True)
class PageState:
    """Where a page token points: the list it belongs to, the offset and the page number."""

    signature: tuple[Any, ...]
    offset: int
    page: int
    issued: float


class PageTokens:
    """Opaque page tokens bound to the list they page through, valid for three days (§3.2)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, PageState] = {}

    def issue(self, signature: tuple[Any, ...], offset: int, page: int, now: float) -> str:
        """Return a new token for the page at ``offset``."""
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._states[token] = PageState(signature, offset, page, now)
        return token

    def resolve(self, token: str, signature: tuple[Any, ...], now: float) -> PageState:
        """Return the state behind ``token``; 400 when unknown, of another list, or expired. [U]"""
        with self._lock:
            state = self._states.get(token)
        if state is None or state.signature != signature or now - state.issued > PAGE_TOKEN_LIFETIME:
            raise GoogleError(400, "Invalid Input: pageToken", "invalid", location="pageToken")
        return state
