"""What went wrong with a request, in one line, as the exception the caller acts on.

Error bodies yield the vendor's own message; transport failures are classified from
the requests/urllib3 exception chain into a cause and whether a retry is safe.
Callers redact what they pass in; these helpers redact what they build.
"""

from __future__ import annotations

import http
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from scimsync.errors import AuthError, ConnectorError, NotFoundError
from scimsync.secrets import redact

_MAX_VENDOR_MESSAGE = 300

# Turns an error response into the vendor's own message (Jira errorMessages, SCIM detail...).
ErrorParser = Callable[[requests.Response], str]


def default_error_parser(response: requests.Response) -> str:
    """Return the vendor's message from an error body, or the start of the text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = _vendor_message(body) if isinstance(body, dict) else ""
    return message or one_line(response.text)[:200]


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


def one_line(text: str) -> str:
    """Collapse every run of whitespace, newlines included, to one space."""
    return " ".join(text.split())


def attempts_text(n: int) -> str:
    """Return "1 attempt" or "n attempts"."""
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def status_error(
    system: str,
    response: requests.Response,
    label: str,
    attempts: int,
    error_parser: ErrorParser,
    *,
    waited: float | None = None,
) -> ConnectorError:
    """Build the exception for a response whose status was not expected.

    ``waited`` is how long a refused request (429, 503) waited in all, shown on the final one.
    """
    status = response.status_code
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = response.reason or "Unknown Status"
    head = f"HTTP {status} {phrase}"
    if status == 401:
        cause = f"{head}: the credentials were rejected"
    elif status == 429:
        cause = f"{head}: still rate limited after {attempts_text(attempts)}"
        if waited is not None:
            cause += f" ({waited:.0f} s)"
    else:
        message = one_line(error_parser(response))
        if len(message) > _MAX_VENDOR_MESSAGE:
            message = message[: _MAX_VENDOR_MESSAGE - 1] + "…"
        cause = f"{head}: {message}" if message else head
        if attempts > 1:
            spent = f", {waited:.0f} s" if waited is not None else ""
            cause += f" ({attempts_text(attempts)}{spent})"
    kind = {401: AuthError, 403: AuthError, 404: NotFoundError}.get(status, ConnectorError)
    return kind(system, label, redact(cause), status=status)


# --- transport failures ------------------------------------------------------------


@dataclass(frozen=True)
class TransportFailure:
    """A transport failure, classified from the requests/urllib3 exception chain."""

    cause: str
    retriable: bool
    sent: bool  # the request may have reached the server: retrying a POST could duplicate it


def transport_error(system: str, label: str, failure: TransportFailure, attempts: int) -> ConnectorError:
    """Build the exception for a transport failure that is not retried (again)."""
    suffix = f" ({attempts_text(attempts)})" if failure.retriable else ""
    return ConnectorError(system, label, redact(failure.cause + suffix), unknown=failure.sent)


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


def classify(exc: requests.RequestException, host: str, timeout: float) -> TransportFailure:
    """Turn a requests exception into one line, and whether (and how safely) to retry."""
    chain = list(_exception_chain(exc))
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            detail = getattr(e, "verify_message", "") or one_line(str(e))
            return TransportFailure(f"TLS certificate verification failed: {detail}", False, False)
    if isinstance(exc, requests.exceptions.SSLError):
        return TransportFailure(f"TLS error: {one_line(str(chain[-1]))}", False, False)
    if any(isinstance(e, NameResolutionError | socket.gaierror) for e in chain):
        return TransportFailure(f"cannot resolve host '{host}'", False, False)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return TransportFailure("connection refused", True, False)
    if isinstance(exc, requests.ConnectTimeout) or any(
        isinstance(e, ConnectTimeoutError) and not isinstance(e, NewConnectionError) for e in chain
    ):
        return TransportFailure(f"connect timed out after {timeout:g}s", True, False)
    if any(isinstance(e, NewConnectionError) for e in chain):
        reason = next((e.strerror for e in chain if isinstance(e, OSError) and e.strerror), "unknown error")
        return TransportFailure(f"cannot connect: {reason}", True, False)
    if isinstance(exc, requests.Timeout):
        return TransportFailure(f"timed out after {timeout:g}s", True, True)
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return TransportFailure("connection closed before a complete response", True, True)
    return TransportFailure(f"request failed: {one_line(str(exc))[:200]}", False, True)
