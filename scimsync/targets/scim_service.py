"""What a SCIM service can do, read once from its discovery endpoints (RFC 7644 §4, idp §6.1).

Only the generic ``scim`` target reads them; a target type whose vendor documents what it
supports (``atlassian-cloud``, reference §3) states its ``Features`` instead.

``/ServiceProviderConfig`` says whether PATCH, filters, bulk and ETags work and how
many resources a page holds; ``/ResourceTypes`` whether there are groups at all;
``/Schemas`` whether ``userName`` may change and whether users have ``active``. Any
of them may be missing (404): then nothing is assumed missing, and a PATCH the service
turns down falls back to PUT (``scim.ScimTarget``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scimsync.errors import NotFoundError, ResponseError
from scimsync.http import HttpClient
from scimsync.http.scim import (
    GROUP_SCHEMA,
    LIST_RESPONSE,
    USER_SCHEMA,
    in_order,
    page_size,
    read_service_config,
)

log = logging.getLogger("scimsync.targets.scim")

# RFC 7643 §7: attributes a client may not change after creation.
_FIXED = ("readonly", "immutable")


@dataclass(frozen=True)
class Features:
    """The service's abilities; None where the service did not say."""

    patch: bool | None = None
    filtering: bool | None = None
    page_size: int = 100
    bulk: bool | None = None
    etag: bool | None = None
    groups: bool = True  # a Group resource type exists (or /ResourceTypes is not offered)
    rename: bool = True  # userName is writable (or /Schemas is not offered)
    active: bool = True  # users have `active` (or /Schemas is not offered)

    def describe(self) -> str:
        """Return "patch: yes, filter: yes, 100 per page, bulk: no, etag: not announced"."""

        def said(flag: bool | None) -> str:
            return "not announced" if flag is None else ("yes" if flag else "no")

        return (
            f"patch: {said(self.patch)}, filter: {said(self.filtering)}, {self.page_size} per page, "
            f"bulk: {said(self.bulk)}, etag: {said(self.etag)}"
        )


def discover(client: HttpClient, *, page_cap: int | None = None) -> Features:
    """Read the three discovery endpoints at once; ``page_cap`` bounds the page size whatever they say."""
    reads: list[Callable[[], Any]] = [
        lambda: read_service_config(client),
        lambda: _optional_list(client, "/ResourceTypes"),
        lambda: _optional_list(client, "/Schemas"),
    ]
    service, types, schemas = in_order(client, reads)
    size = page_size(service)
    if page_cap is not None:
        size = min(size, page_cap)
    user = next((s for s in schemas or () if s.get("id") == USER_SCHEMA), None)
    attributes = {
        str(a.get("name", "")).lower(): a for a in (user or {}).get("attributes") or () if isinstance(a, dict)
    }
    username = attributes.get("username", {})
    return Features(
        patch=service.patch if service else None,
        filtering=service.filtering if service else None,
        page_size=size,
        bulk=service.bulk if service else None,
        etag=service.etag if service else None,
        groups=types is None or any(_is_group_type(t) for t in types),
        rename=str(username.get("mutability", "")).lower() not in _FIXED,
        # Only a User schema that lists its attributes can say `active` is missing.
        active=not attributes or "active" in attributes,
    )


def _is_group_type(resource_type: dict[str, Any]) -> bool:
    return resource_type.get("schema") == GROUP_SCHEMA or resource_type.get("endpoint") == "/Groups"


def _optional_list(client: HttpClient, path: str) -> list[dict[str, Any]] | None:
    """Return the resources ``path`` lists (a ListResponse, or a bare array); None on 404."""
    label = f"GET {path}"
    try:
        body = client.get_json(path, obj=label)
    except NotFoundError:
        log.info("%s: no %s (404); assuming the RFC 7643 defaults", client.system, path)
        return None
    if isinstance(body, dict) and LIST_RESPONSE in _as_list(body.get("schemas")):
        body = body.get("Resources") or []
    if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
        raise ResponseError(client.system, label, "neither a SCIM ListResponse nor a list of resources")
    return body


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
