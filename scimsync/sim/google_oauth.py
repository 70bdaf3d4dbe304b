"""The simulator's OAuth side: service accounts with domain-wide delegation and the JWT bearer grant.

idp-apis §3.1: the app signs a JWT with the service account's key (``iss`` = the account's
email, ``sub`` = the admin it acts for, ``aud`` = the token URL, ``scope`` = the scopes,
space-separated) and posts ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&
assertion=<JWT>`` to the token URL. Keys are generated at run time (RSA 2048 unless a test
asks for less): no key is ever committed, and each simulator has its own.

[U] The token endpoint's error texts are not in the reference; these are the ones Google
is known to send (``invalid_grant: Invalid JWT Signature.``, ``unauthorized_client: ...``).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from werkzeug.wrappers import Response

from scimsync.sim.google_common import json_response

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE_PREFIX = "https://www.googleapis.com/auth/"
USER_READONLY = SCOPE_PREFIX + "admin.directory.user.readonly"
GROUP_READONLY = SCOPE_PREFIX + "admin.directory.group.readonly"
GROUP_MEMBER_READONLY = SCOPE_PREFIX + "admin.directory.group.member.readonly"
# §3.1 ⚠: "exp at most 1 h after iat".
MAX_ASSERTION_LIFETIME = 3600
CLOCK_SKEW = 300  # [U] how far iat/exp may be off the server's clock

BAD_SIGNATURE = "Invalid JWT Signature."
BAD_TIME = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)
NOT_DELEGATED = (
    "Client is unauthorized to retrieve access tokens using this method, or client not "
    "authorized for any of the scopes requested."
)
BAD_SUBJECT = "Invalid email or User ID"


class OAuthError(Exception):
    """A refused token request: ``{"error", "error_description"}`` (RFC 6749 §5.2)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        self.status = status
        self.error = error
        self.description = description
        super().__init__(f"{status} {error}: {description}")

    def response(self) -> Response:
        """Render the refusal."""
        return json_response({"error": self.error, "error_description": self.description}, self.status)


@dataclass
class ServiceAccount:
    """A service account, its current key, and the scopes a super admin delegated to its client ID."""

    client_email: str
    client_id: str
    project_id: str
    scopes: set[str] = field(default_factory=set)
    key_bits: int = 2048  # tests may ask for 1024: five times faster to make, as throwaway as ever
    key_id: str = ""
    private_pem: str = ""
    public_key: rsa.RSAPublicKey | None = None

    def new_key(self) -> None:
        """Create a new key and delete the old one: files holding the old key stop working."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=self.key_bits)
        self.key_id = secrets.token_hex(20)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.public_key = key.public_key()

    def info(self, token_url: str) -> dict[str, str]:
        """Return the JSON key file Google's console downloads for this account."""
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.key_id,
            "private_key": self.private_pem,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_url,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{self.client_email}",
            "universe_domain": "googleapis.com",
        }


def new_service_account(
    client_email: str, *, scopes: set[str], project_id: str, key_bits: int = 2048
) -> ServiceAccount:
    """Create a service account with a fresh key."""
    client_id = str(10**20 + secrets.randbelow(10**20))
    account = ServiceAccount(client_email, client_id, project_id, set(scopes), key_bits)
    account.new_key()
    return account


@dataclass(frozen=True)
class Assertion:
    """What a verified JWT assertion asks for."""

    account: ServiceAccount
    subject: str | None
    scopes: frozenset[str]


def verify_assertion(
    form: Mapping[str, str], accounts: Mapping[str, ServiceAccount], audience: str, now: float
) -> Assertion:
    """Check a JWT bearer grant's form and assertion: signature, iss, aud, iat/exp and scope."""
    grant_type = form.get("grant_type")
    if grant_type != JWT_BEARER:
        raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type or ''}")
    assertion = form.get("assertion")
    if not assertion:
        raise OAuthError(400, "invalid_request", "Missing required parameter: assertion")
    parts = assertion.split(".")
    if len(parts) != 3:
        raise OAuthError(400, "invalid_grant", "Invalid JWT: not a signed JWT")
    header, claims = _segment(parts[0]), _segment(parts[1])
    if header.get("alg") != "RS256":
        raise OAuthError(400, "invalid_grant", "Invalid JWT: the algorithm must be RS256")
    account = accounts.get(str(claims.get("iss")))
    if account is None:
        raise OAuthError(400, "invalid_grant", "Invalid grant: account not found")
    if header.get("kid", account.key_id) != account.key_id or not _signed_by(account, parts):
        raise OAuthError(400, "invalid_grant", BAD_SIGNATURE)
    if claims.get("aud") != audience:
        raise OAuthError(400, "invalid_grant", "Invalid JWT: Failed audience check.")
    _check_times(claims, now)
    scope = claims.get("scope")
    if not isinstance(scope, str) or not scope.split():
        raise OAuthError(400, "invalid_scope", "Empty or missing scope not allowed.")
    subject = claims.get("sub")
    if subject is not None and not isinstance(subject, str):
        raise OAuthError(400, "invalid_grant", BAD_SUBJECT)
    return Assertion(account, subject, frozenset(scope.split()))


def _segment(text: str) -> dict[str, Any]:
    try:
        value = json.loads(_unbase64(text))
    except (ValueError, binascii.Error):
        raise OAuthError(400, "invalid_grant", "Invalid JWT: a segment is not base64url JSON") from None
    if not isinstance(value, dict):
        raise OAuthError(400, "invalid_grant", "Invalid JWT: a segment is not a JSON object")
    return value


def _unbase64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signed_by(account: ServiceAccount, parts: list[str]) -> bool:
    if account.public_key is None:
        return False
    try:
        signature = _unbase64(parts[2])
        signed = f"{parts[0]}.{parts[1]}".encode("ascii")
        account.public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
        return False
    return True


def _check_times(claims: Mapping[str, Any], now: float) -> None:
    iat, exp = _seconds(claims.get("iat")), _seconds(claims.get("exp"))
    if (
        iat is None
        or exp is None
        or exp - iat > MAX_ASSERTION_LIFETIME
        or iat > now + CLOCK_SKEW
        or exp < now - CLOCK_SKEW
    ):
        raise OAuthError(400, "invalid_grant", BAD_TIME)


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
