"""Confluence error bodies (reference §2.8) as one-line messages and the exceptions callers act on."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import requests

from scimsync.errors import ConnectorError, NotFoundError, NotManageableError
from scimsync.secrets import MASK, redact
from scimsync.targets.refusals import says_read_only_directory

BASIC_AUTH_HINT = "basic authentication is disabled on this Confluence; use a personal access token (token:)"
# A read-only (LDAP) directory refuses changes to its users (§2.10 [U] wording). The site-wide
# "read-only mode" of Confluence DC (§2.8 allowedInReadOnlyMode) is maintenance, not the account.
# [U] the statuses a read-only directory refuses a change with (§2.5: 400 invalid, 403 not
# permitted); a 404 or 409 is about something else, whatever names its message echoes.
READ_ONLY_STATUSES = (400, 403)


def text_of(item: Any) -> str:
    """Return the text of one §2.8 error (or long-task message): a string or a message object."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        message = item.get("message", item)
        if isinstance(message, str):
            return message
        if isinstance(message, dict):
            return str(message.get("translation") or message.get("key") or "")
    return ""


def _messages(response: requests.Response) -> list[str]:
    """Return the messages of a Confluence error body (§2.8); empty when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    parts = [body["message"]] if isinstance(body.get("message"), str) and body["message"] else []
    data = body.get("data")
    errors = data.get("errors") if isinstance(data, dict) else None
    for item in errors if isinstance(errors, list) else ():
        text = text_of(item)
        if text and text not in parts:
            parts.append(text)
    if not parts and isinstance(body.get("reason"), str) and body["reason"]:
        parts.append(body["reason"])
    return parts


def not_confluence(response: requests.Response) -> str:
    """Say that an error body is not Confluence's, naming its content type."""
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip()
    return f"the body is not a Confluence error ({kind or 'no content type'})"


def is_envelope(response: requests.Response) -> bool:
    """Tell whether an error body is Confluence's ``{statusCode, data, message, reason}`` (§2.8)."""
    try:
        body = response.json()
    except ValueError:
        return False
    # A bare {"message"} is the basic-auth-disabled 403 (§2.1, as Jira §1.1), not a refusal.
    return isinstance(body, dict) and (
        type(body.get("statusCode")) is int or isinstance(body.get("data"), dict)
    )


def parse_error(response: requests.Response) -> str:
    """Return Confluence's own message from an error response, on one line."""
    parts = _messages(response)
    if not parts:
        return not_confluence(response)
    text = " ".join("; ".join(parts).split())
    if response.status_code == 403 and "basic auth" in text.lower():  # §2.1
        text += f" (hint: {BASIC_AUTH_HINT})"
    return text


def refusal(system: str, response: requests.Response, obj: str) -> ConnectorError:
    """Return the error for a write Confluence refused with a §2.8 error body."""
    status, message = response.status_code, parse_error(response)
    cause = redact(f"HTTP {status} {HTTPStatus(status).phrase}: {message}")
    if status in READ_ONLY_STATUSES and says_read_only_directory(message):  # §2.10: read-only (LDAP)
        return NotManageableError(system, obj, f"read-only directory ({cause})", status=status)
    if status == 409:  # §2.4, §6
        return ConnectorError(system, obj, f"already exists ({cause})", status=status)
    if status == 402:  # §2.4
        return ConnectorError(system, obj, f"no licence seats left ({cause})", status=status)
    return (NotFoundError if status == 404 else ConnectorError)(system, obj, cause, status=status)


def scrubbed(error: ConnectorError, password: str) -> ConnectorError:
    """Return ``error`` with the password masked, even cut short at the end of a long message."""
    cause = re.sub(re.escape(password[:8]) + r"[\w-]*", MASK, error.cause)
    # Keep whether the create may have happened all the same: the engine reads it back (SPEC §8).
    return type(error)(error.system, error.obj, cause, status=error.status, unknown=error.unknown_outcome)
