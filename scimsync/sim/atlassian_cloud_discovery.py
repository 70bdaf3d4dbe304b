"""Atlassian Cloud simulator: /ServiceProviderConfig, /ResourceTypes and /Schemas (§3.2, RFC 7644 §4)."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from scimsync.sim.atlassian_cloud_common import PAGE_MAX, Ctx, ScimError, list_response, scim_response
from scimsync.sim.atlassian_cloud_schema import (
    ATLASSIAN_EXTERNAL,
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE_USER,
    SCHEMAS,
    schema_document,
)

NONE = frozenset[str]()


def service_provider_config(ctx: Ctx) -> Response:
    """GET /ServiceProviderConfig: patch and filter (100 at most) yes; bulk, sort, etag no (§3.4, §3.9)."""
    ctx.query(NONE)
    return scim_response(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://developer.atlassian.com/cloud/admin/user-provisioning/rest/",
            "patch": {"supported": True},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": PAGE_MAX},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": False},
            "authenticationSchemes": [
                {
                    "type": "oauthbearertoken",
                    "name": "OAuth Bearer Token",
                    "description": "The directory API key as a bearer token (§3.1)",
                    "primary": True,
                }
            ],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": f"{ctx.base_url}/ServiceProviderConfig",
            },
        }
    )


def _resource_type(ctx: Ctx, name: str) -> dict[str, Any]:
    user = name == "User"
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": name,
        "name": name,
        "endpoint": "/Users" if user else "/Groups",
        "description": "User Account" if user else "Group",
        "schema": CORE_USER if user else CORE_GROUP,
    }
    if user:
        body["schemaExtensions"] = [
            {"schema": ENTERPRISE_USER, "required": False},
            {"schema": ATLASSIAN_EXTERNAL, "required": False},
        ]
    body["meta"] = {"resourceType": "ResourceType", "location": ctx.location("ResourceTypes", name)}
    return body


def resource_types(ctx: Ctx) -> Response:
    """GET /ResourceTypes: User and Group, as a ListResponse."""
    ctx.query(NONE)
    return list_response([_resource_type(ctx, n) for n in ("User", "Group")], 2, 1)


def resource_type(ctx: Ctx) -> Response:
    """GET /ResourceTypes/{name}: User or Group; 404 otherwise."""
    ctx.query(NONE)
    name = ctx.params["name"]
    if name not in ("User", "Group"):
        raise ScimError(404, f"no resource type '{name}'")
    return scim_response(_resource_type(ctx, name))


def schemas(ctx: Ctx) -> Response:
    """GET /Schemas: the core User and Group schemas and the two user extensions."""
    ctx.query(NONE)
    documents = [schema_document(urn, ctx.location("Schemas", urn)) for urn in SCHEMAS]
    return list_response(documents, len(documents), 1)


def schema(ctx: Ctx) -> Response:
    """GET /Schemas/{urn}; 404 for a URN this directory does not know."""
    ctx.query(NONE)
    urn = ctx.params["urn"]
    if urn not in SCHEMAS:
        raise ScimError(404, f"no schema '{urn}'")
    return scim_response(schema_document(urn, ctx.location("Schemas", urn)))
