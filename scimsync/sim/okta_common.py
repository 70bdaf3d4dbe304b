"""Errors, timestamps, cursors and JSON answers shared by the Okta simulator's modules (idp-apis §1)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import functools
import http
import json
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Response

JSON_TYPE = "application/json"

# The catalogue entries the simulator answers with (idp-apis §1.2, [S-OK8]). Codes marked [U]
# are not in the reference: Okta's own catalogue, used where the reference is silent.
INVALID_TOKEN = ("E0000011", "Invalid token provided")
FORBIDDEN = ("E0000006", "You do not have permission to perform the requested action")
NOT_FOUND = ("E0000007", "Not found: Resource not found: {0} ({1})")
INVALID_SEARCH = ("E0000031", "Invalid search criteria.")
RATE_LIMITED = ("E0000047", "API call exceeded rate limit due to too many requests.")
VALIDATION = ("E0000001", "Api validation failed: {0}")  # [U] a bad limit or parameter
BAD_METHOD = ("E0000022", "The endpoint does not support the provided HTTP method")  # [U]
INTERNAL = ("E0000009", "Internal Server Error")  # [U] any injected 5xx

_BY_STATUS = {401: INVALID_TOKEN, 403: FORBIDDEN, 404: NOT_FOUND, 405: BAD_METHOD, 429: RATE_LIMITED}


class OktaError(Exception):
    """An error answer in Okta's shape: errorCode, errorSummary, errorLink, errorId, errorCauses (§1.2)."""

    def __init__(self, status: int, entry: tuple[str, str], *args: str, causes: Iterable[str] = ()) -> None:
        self.status = status
        self.code = entry[0]
        self.summary = entry[1].format(*args) if args else entry[1]
        self.causes = list(causes)
        super().__init__(f"{status} {self.code} {self.summary}")

    def body(self, error_id: str) -> dict[str, Any]:
        """Return the error body; ``errorId`` tells one occurrence from another."""
        return error_body(self.code, self.summary, error_id, self.causes)


def error_body(code: str, summary: str, error_id: str, causes: Iterable[str] = ()) -> dict[str, Any]:
    """Return an Okta error body (§1.2)."""
    return {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": error_id,
        "errorCauses": [{"errorSummary": c} for c in causes],
    }


def okta_error_body(status: int) -> dict[str, Any]:
    """Return the body of an injected fault (scimsync.sim.faults.Faults) in Okta's shape."""
    code, summary = _BY_STATUS.get(status, INTERNAL)
    if status == 404:
        summary = "Not found: Resource not found"
    elif status not in _BY_STATUS:
        # [U] Okta's 5xx summaries are not in the reference: the status's own phrase.
        with contextlib.suppress(ValueError):
            summary = http.HTTPStatus(status).phrase
    return error_body(code, summary, f"oaeInjected{status}")


def json_response(data: Any, status: int = 200) -> Response:
    """Return ``data`` as a JSON response."""
    return Response(json.dumps(data), status=status, content_type=JSON_TYPE)


@functools.lru_cache(maxsize=1 << 17)  # a page renders each time 5 times: cached, not re-formatted
def iso(epoch: float | None) -> str | None:
    """Format epoch seconds as Okta does: ``YYYY-MM-DDTHH:mm:ss.SSSZ`` (§1.2)."""
    if epoch is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode_cursor(last_id: str) -> str:
    """Return an opaque ``after`` cursor for the item after ``last_id`` (§1.3: clients never parse it)."""
    return base64.urlsafe_b64encode(f"sim:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Return the id a cursor stands for; 400 E0000031 for one the simulator never gave out [U]."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("sim:") or len(text) == 4:
        raise OktaError(400, INVALID_SEARCH, causes=["after: not a valid cursor"])
    return text[4:]
