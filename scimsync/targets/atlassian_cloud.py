"""The Atlassian Cloud target: user provisioning over SCIM 2.0 (SPEC §3 "atlassian-cloud", reference §3).

``url`` is the directory's SCIM base, ``https://api.atlassian.com/scim/directory/{directoryId}``,
and the credential a directory API key sent as a bearer token (§3.1). The SCIM client
is ``ScimTarget``'s, held to what Atlassian documents (``FEATURES``: no discovery request
is sent): pages of at most 100 (§3.4), only ``eq`` filters on ``userName`` and
``externalId`` (users) and ``displayName`` (groups) (§3.4), and its Failure body
``{"error", "traceId"}`` on 401 and 403 (§3.8).

Deactivating and deleting: deactivation replaces ``active`` with false (PATCH) and is
reversible; reactivation sets it back. ``policy.deprovision: delete`` sends
``DELETE /Users/{id}``, which Atlassian documents two ways (§3.6): it deactivates the
user, or it removes the SCIM user, unlinks it from the identity provider and
deactivates the Atlassian account if the organization manages it. Either way the
record is gone for this API afterwards (404) and cannot be brought back over SCIM:
a later create makes a new user with a new id. The Atlassian account itself is never
deleted (that takes the organization's user management API and an admin key).
"""

from __future__ import annotations

import dataclasses

import requests

from scimsync.errors import ConnectorError
from scimsync.http.errors import one_line
from scimsync.http.scim import parse_error as parse_scim_error
from scimsync.http.scim import read_error
from scimsync.models import Capabilities
from scimsync.targets.scim import ScimTarget
from scimsync.targets.scim_read import json_body
from scimsync.targets.scim_service import Features
from scimsync.targets.scim_write import ScimWriter

PAGE_CAP = 100  # §3.4: "first max 100 users at once"
# What Atlassian documents, so no run reads the discovery endpoints (three requests saved):
# PATCH (§3.5), a single `eq` filter (§3.4), at most 100 a page (§3.4), no /Bulk in the
# endpoint inventory (§3.2), no ETags (none documented), groups (§3.7), a writable userName
# and `active` (§3.3).
FEATURES = Features(patch=True, filtering=True, page_size=PAGE_CAP, bulk=False, etag=False)
# §3.4: a single `eq`, on these attributes only; any other filter is a 400 invalidFilter.
FILTERS = frozenset({("/Users", "userName"), ("/Users", "externalId"), ("/Groups", "displayName")})
DELETE_NOTE = (
    "delete: DELETE removes the SCIM user and deactivates its Atlassian account, "
    "not reversible over SCIM (§3.6); deactivate: active=false, reversible"
)


def parse_error(response: requests.Response) -> str:
    """Return the cause an error response gives: the SCIM error, or the Failure body (§3.8)."""
    body = json_body(response)
    if isinstance(body, dict) and read_error(body) is None and isinstance(body.get("error"), str):
        message, trace = one_line(body["error"]), body.get("traceId")
        return f"{message} (traceId {trace})" if trace else message
    return parse_scim_error(response)


class AtlassianWriter(ScimWriter):
    """Writes to an Atlassian Cloud directory, with its refusals explained."""

    def refused(self, response: requests.Response, obj: str) -> ConnectorError:
        """Name an unverified email domain (§3.5: emails must be on a verified domain)."""
        error = super().refused(response, obj)
        # [U] Atlassian documents the rule, not the error body: a 400 whose scimType or
        # detail speaks of a domain is taken to be it. The message keeps Atlassian's words.
        if response.status_code == 400 and "domain" in error.cause.lower():
            cause = f"the email domain is not verified in Atlassian Administration ({error.cause})"
            return ConnectorError(self.system, obj, cause, status=400)
        return error


class AtlassianCloudTarget(ScimTarget):
    """An Atlassian Cloud user directory (organization → Security → Identity providers)."""

    type = "atlassian-cloud"
    label = "Atlassian Cloud directory"
    page_cap = PAGE_CAP
    documented = FEATURES
    filters = FILTERS
    url_hint = "it must be the directory's SCIM base, https://api.atlassian.com/scim/directory/{directoryId}"
    writer = AtlassianWriter

    def parse(self, response: requests.Response) -> str:
        """Return the cause an error response gives (SCIM error or Failure body), on one line."""
        return parse_error(response)

    def member_batch_size(self, *, add: bool) -> int:
        """Add many members per PATCH (§3.7's documented form); remove one per PATCH.

        [U] §3.7 leaves open which removal forms Atlassian accepts. The one-member filter
        form is what this target has always sent; several of them in one PatchOp is
        standard RFC 7644 but unconfirmed here, so removals stay one member per request.
        """
        return super().member_batch_size(add=add) if add else 1

    def capabilities(self) -> Capabilities:
        """Return the SCIM capabilities, with what DELETE does here (§3.6)."""
        caps = super().capabilities()
        return dataclasses.replace(caps, reason=f"{caps.reason}; {DELETE_NOTE}")

    def _conflict(self, response: requests.Response, obj: str) -> ConnectorError:
        """Explain a 409 on create that is not "the user exists": a managed-account conflict (§3.5)."""
        error = self._writer.refused(response, obj)
        # [U] §3.5 links a new user to the managed account of its email; a 409 while no
        # user of this directory has the userName means that account cannot be linked here.
        cause = (
            f"a managed-account conflict: no user of this directory has this userName, but Atlassian "
            f"refuses the account ({error.cause}); resolve it in Atlassian Administration"
        )
        return ConnectorError(self.name, obj, cause, status=error.status)
