"""The Keycloak simulator's token endpoint: OAuth client credentials on the realm (idp §5.1).

Errors are OAuth bodies (RFC 6749 §5.2) as Keycloak sends them (idp §5.4): an unknown
client is ``invalid_client``, a wrong secret ``unauthorized_client``, both 401.
"""

from __future__ import annotations

import base64
import binascii

from werkzeug.wrappers import Request, Response

from scimsync.sim.keycloak_realm import Realm
from scimsync.sim.keycloak_routes import KcError, json_response

INVALID_CLIENT = "Invalid client or Invalid client credentials"
NO_SERVICE_ACCOUNT = "Client not enabled to retrieve service account"


def issue_token(request: Request, realm: Realm, now: float, lifetime: int) -> Response:
    """POST .../protocol/openid-connect/token: grant_type=client_credentials, form-encoded (RFC 6749 §4.4)."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise KcError(400, oauth_error("invalid_request", "Content-Type must be form-encoded"))
    form = request.form
    client_id, secret = _basic(request) or (form.get("client_id", ""), form.get("client_secret", ""))
    grant = form.get("grant_type")
    if grant is None:
        raise KcError(400, oauth_error("invalid_request", "Missing form parameter: grant_type"))
    if grant != "client_credentials":
        raise KcError(400, oauth_error("unsupported_grant_type", "Unsupported grant_type"))
    client = realm.clients.get(client_id)
    if client is None:
        raise KcError(401, oauth_error("invalid_client", INVALID_CLIENT))
    if secret != client.secret:
        raise KcError(401, oauth_error("unauthorized_client", INVALID_CLIENT))
    if not client.service_accounts:
        raise KcError(401, oauth_error("unauthorized_client", NO_SERVICE_ACCOUNT))
    body = {
        "access_token": realm.issue(client_id, now, lifetime),
        "expires_in": lifetime,
        "refresh_expires_in": 0,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "scope": "profile email",
    }
    return json_response(body)


def oauth_error(error: str, description: str) -> dict[str, str]:
    """Return an OAuth error body (RFC 6749 §5.2)."""
    return {"error": error, "error_description": description}


def _basic(request: Request) -> tuple[str, str] | None:
    """Return the client id and secret of an HTTP basic header (RFC 6749 §2.3.1), if any."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise KcError(401, oauth_error("invalid_client", INVALID_CLIENT)) from None
    return user, password
