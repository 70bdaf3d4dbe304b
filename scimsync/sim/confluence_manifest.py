"""Confluence simulator: the application-links manifest, how clients find the version (§2.1a)."""

from __future__ import annotations

import uuid
from typing import Any
from xml.etree import ElementTree

from werkzeug.wrappers import Response

from scimsync.sim.confluence_common import Ctx, json_response

# A fixed server id: one simulated instance looks the same on every run.
SERVER_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://scimsync.invalid/sim/confluence"))
APPLINKS_VERSION = "9.0.0"  # [U] any applinks version; clients read typeId and version


def manifest_fields(ctx: Ctx) -> dict[str, Any]:
    """Return the manifest's fields (§2.1a: typeId, version, buildNumber, name, id)."""
    major, minor, patch = ctx.version[:3]
    return {
        "id": SERVER_ID,
        "name": "Confluence",
        "typeId": "confluence",
        "version": f"{major}.{minor}.{patch}",
        # [U] real build numbers follow no formula; this one only grows with the version.
        "buildNumber": major * 1_000_000 + minor * 10_000 + patch,
        "applinksVersion": APPLINKS_VERSION,
        "url": ctx.base,
        "publicSignup": False,
    }


def manifest(ctx: Ctx) -> Response:
    """GET /rest/applinks/1.0/manifest: XML unless the client asks for JSON (§2.1a)."""
    fields = manifest_fields(ctx)
    accepted = ctx.request.accept_mimetypes
    if accepted.best_match(["application/xml", "application/json"]) == "application/json":
        return json_response(fields)
    root = ElementTree.Element("manifest")
    for name, value in fields.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)  # xs:boolean: "false"
        ElementTree.SubElement(root, name).text = text
    xml = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(xml, status=200, content_type="application/xml;charset=UTF-8")
