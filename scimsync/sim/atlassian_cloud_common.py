"""Errors, request parsing, responses and the ListResponse page of the Atlassian Cloud simulator."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from scimsync.sim.atlassian_cloud_directory import CloudDirectory

SCIM_TYPE = "application/scim+json;charset=UTF-8"
BODY_TYPES = ("application/scim+json", "application/json")  # §3.1: both accepted
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PAGE_MAX = 100  # §3.4: at most 100 resources a page
# §3.7 [C]: the 404 detail of a PATCH naming an unknown user; used for every unknown id.
NO_RESOURCE = "directory, group, or user does not exist"


class ScimError(Exception):
    """A SCIM error answer (§3.8): ``status`` a string, ``scimType`` when one applies."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        super().__init__(f"{status} {scim_type or ''} {detail}")

    @property
    def body(self) -> dict[str, Any]:
        """Return the §3.8 body."""
        body: dict[str, Any] = {"schemas": [ERROR], "status": str(self.status)}
        if self.scim_type:
            body["scimType"] = self.scim_type
        body["detail"] = self.detail
        return body

    def response(self) -> Response:
        """Render the error."""
        return scim_response(self.body, self.status)


class FailureError(Exception):
    """A 401 or 403 answer in the OpenAPI's Failure shape ``{"error", "traceId"}`` (§3.8)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status} {message}")

    @property
    def body(self) -> dict[str, Any]:
        """Return the Failure body with a fresh trace id."""
        return {"error": self.message, "traceId": uuid.uuid4().hex}

    def response(self) -> Response:
        """Render the failure."""
        return scim_response(self.body, self.status)


def fault_body(status: int) -> dict[str, Any]:
    """Return the body of an injected fault: Failure for 401/403, the SCIM error otherwise (§3.8)."""
    if status in (401, 403):
        return FailureError(status, f"Injected fault: HTTP {status}").body
    return ScimError(status, f"Injected fault: HTTP {status}").body


def scim_response(data: Any, status: int = 200) -> Response:
    """Return ``data`` as an ``application/scim+json`` response."""
    return Response(json.dumps(data), status=status, content_type=SCIM_TYPE)


def empty_response() -> Response:
    """Return 204 No Content."""
    return Response(b"", status=204)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing a repeated key: which one wins is undefined [U]."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ScimError(400, f"the body repeats the attribute '{key}'", "invalidSyntax")
        out[key] = value
    return out


@dataclass
class Ctx:
    """One authenticated request against the directory."""

    request: Request
    directory: CloudDirectory
    base_url: str  # absolute URL of the directory's SCIM base, for meta.location
    params: dict[str, str] = field(default_factory=dict)

    def location(self, kind: str, rid: str) -> str:
        """Return the ``meta.location`` of a resource (``kind`` is Users, Groups, ...)."""
        return f"{self.base_url}/{kind}/{rid}"

    def query(self, allowed: frozenset[str]) -> dict[str, str]:
        """Return the query parameters; 400 for an unknown or repeated one.

        [U] Atlassian may ignore unknown parameters; refusing them shows a typo such as
        ``startindex`` at once instead of serving the first page again.
        """
        args = self.request.args
        for name in args:
            if name not in allowed:
                raise ScimError(400, f"unsupported query parameter '{name}'", "invalidValue")
            if len(args.getlist(name)) > 1:
                raise ScimError(400, f"query parameter '{name}' is repeated", "invalidValue")
        return {name: args[name] for name in args}

    def json_body(self) -> dict[str, Any]:
        """Return the JSON object body (§3.1 media types); 415 or 400 invalidSyntax otherwise."""
        data = self.request.get_data()
        if not data.strip():
            raise ScimError(400, "a JSON body is required", "invalidSyntax")
        try:
            body = json.loads(data, object_pairs_hook=_unique_keys)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            raise ScimError(400, f"the body is not valid JSON ({exc})", "invalidSyntax") from None
        if not isinstance(body, dict):
            raise ScimError(400, "the body must be a JSON object", "invalidSyntax")
        mimetype = self.request.mimetype
        if mimetype not in BODY_TYPES:
            # [U] the OpenAPI names only these two; JSON sent as another type is refused, not guessed.
            raise ScimError(415, f"unsupported media type '{mimetype or 'none'}': send application/scim+json")
        return body


def _int_arg(query: dict[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ScimError(400, f"'{name}' must be an integer, not '{raw}'", "invalidValue") from None


def page_args(query: dict[str, str]) -> tuple[int, int]:
    """Return ``startIndex`` and ``count`` as used (RFC 7644 §3.4.2.4, §3.4).

    Below 1, ``startIndex`` means 1 and a negative ``count`` means 0; ``count`` is capped
    at 100 and defaults to it [U: Atlassian's default page size is not published].
    """
    start = max(1, _int_arg(query, "startIndex", 1))
    count = min(PAGE_MAX, max(0, _int_arg(query, "count", PAGE_MAX)))
    return start, count


def list_response(resources: list[dict[str, Any]], total: int, start: int) -> Response:
    """Return one ListResponse page (§3.4); ``itemsPerPage`` is what this page holds.

    RFC 7644 §3.4.2 requires ``Resources`` only when ``totalResults`` is not 0; it is left
    out then, so a client that assumes it is present fails here first [U].
    """
    body: dict[str, Any] = {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
    }
    if total:
        body["Resources"] = resources
    return scim_response(body)
