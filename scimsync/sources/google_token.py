"""Access tokens for the google source: a service-account key with domain-wide delegation (idp-apis §3.1).

google-auth signs the JWT (RS256 with the key of ``credentials_file``; ``iss`` the service
account, ``sub`` the admin named by ``subject``, ``scope`` the two read-only scopes) and
posts it to ``token_url`` through its requests transport, on a session of ours that
verifies TLS with ``http.ca_bundle`` and with ``http.timeout``. ``CachedToken`` keeps the
token and fetches a new one a minute before it expires; ``HttpClient`` asks for another
after a 401.

google-auth sets the JWT's ``aud`` to Google's token URL whatever ``token_uri`` says; §3.1
says ``aud`` is the URL the assertion is posted to, so it is set to ``token_url`` (the same
URL for Google itself, the simulator's for the demo and tests).
"""

from __future__ import annotations

import datetime
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from google.auth import exceptions as google_errors
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import service_account

from scimsync.errors import AuthError, ConnectorError, ResponseError
from scimsync.http import HttpSettings
from scimsync.http.errors import classify, one_line
from scimsync.http.tokens import CachedToken, Grant
from scimsync.secrets import Secret, redact

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
# Least privilege: group.readonly covers listing groups and their members (§3.1 names a third
# scope, group.member.readonly, which adds nothing to it).
SCOPES = (SCOPE_PREFIX + "admin.directory.user.readonly", SCOPE_PREFIX + "admin.directory.group.readonly")
DELEGATION = "Admin console > Security > Access and data control > API controls > Domain-wide delegation"
WHERE = "token endpoint"
_DEFAULT_LIFETIME = 3600.0  # a grant without expires_in: an hour, as RFC 6749 servers usually give


class ServiceAccountToken:
    """A ``TokenSource`` of delegated access tokens for one service account and one admin."""

    def __init__(
        self,
        system: str,
        credentials_file: Path,
        subject: str,
        token_url: str,
        *,
        settings: HttpSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.system = system
        self.credentials_file = credentials_file
        self.subject = subject
        self.token_url = token_url
        self._clock = clock
        self._timeout = settings.timeout
        self._session = requests.Session()
        # verify per request, as HttpClient does: a session's own verify loses to REQUESTS_CA_BUNDLE.
        verify = settings.ca_bundle or True
        transport = GoogleRequest(self._session)
        self._request = functools.partial(transport, timeout=settings.timeout, verify=verify)
        self._credentials: service_account.Credentials | None = None
        self._cache = CachedToken(self._fetch, clock=clock)

    def token(self) -> Secret:
        """Return a valid access token."""
        return self._cache.token()

    def invalidate(self, token: Secret) -> None:
        """Forget a refused token."""
        self._cache.invalidate(token)

    def close(self) -> None:
        """Close the token endpoint's session."""
        self._session.close()

    def _fetch(self) -> Grant:
        credentials = self._credentials or self._load()
        self._credentials = credentials
        started = self._clock()  # a lifetime counts from before the request: never too long
        self._refresh(credentials)
        token = credentials.token
        if not isinstance(token, str) or not token:
            raise ResponseError(self.system, WHERE, "the answer has no access_token")
        return Grant(Secret(token), started + _lifetime(credentials.expiry))

    def _refresh(self, credentials: service_account.Credentials) -> None:
        """Post the signed grant to token_url; a refusal or a network failure is one line."""
        try:
            credentials.refresh(self._request)  # type: ignore[no-untyped-call]
        except google_errors.RefreshError as exc:
            raise refused(self.system, exc) from None
        except google_errors.TransportError as exc:
            wrapped = exc.__cause__
            text = type(exc).__name__
            if isinstance(wrapped, requests.RequestException):
                text = classify(wrapped, urlsplit(self.token_url).hostname or "", self._timeout).cause
            raise ConnectorError(
                self.system, WHERE, redact(f"cannot reach {self.token_url}: {text}")
            ) from None

    def _load(self) -> service_account.Credentials:
        """Read the key file and build the signing credentials; errors name the file, never its content."""
        where = f"credentials_file {self.credentials_file}"
        try:
            info = json.loads(self.credentials_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConnectorError(self.system, where, f"cannot read it: {exc.strerror or exc}") from None
        except (ValueError, UnicodeDecodeError):
            raise ConnectorError(self.system, where, "not a JSON key file") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            kind = info.get("type") if isinstance(info, dict) else None
            raise ConnectorError(
                self.system, where, f"not a service-account key (type {kind!r}): create a JSON key"
            )
        missing = [k for k in ("client_email", "private_key") if not isinstance(info.get(k), str)]
        if missing:
            raise ConnectorError(self.system, where, f"the key file has no {', '.join(missing)}")
        Secret(info["private_key"])  # known to redact() from now on, should any text quote it
        try:
            # token_uri goes through the file's info: google-auth refuses it as a keyword too.
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                {**info, "token_uri": self.token_url},
                scopes=list(SCOPES),
                subject=self.subject,
                additional_claims={"aud": self.token_url},
            )
        except ValueError:  # google-auth's MalformedError too: a key it cannot load
            raise ConnectorError(self.system, where, "its private_key is not a valid RSA key") from None
        assert isinstance(credentials, service_account.Credentials)
        return credentials


def _lifetime(expiry: Any) -> float:
    """Return the seconds left until google-auth's ``expiry`` (a naive UTC datetime)."""
    if not isinstance(expiry, datetime.datetime):
        return _DEFAULT_LIFETIME
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return max(0.0, (expiry - now).total_seconds())


def refused(system: str, exc: google_errors.RefreshError) -> ConnectorError:
    """Turn a refused grant into one line: the OAuth error, its description and what to check."""
    data = exc.args[1] if len(exc.args) > 1 else (exc.args[0] if exc.args else "")
    if not isinstance(data, dict):
        text = one_line(str(data))[:80]
        cause = f"the token endpoint did not answer with OAuth JSON: {text}; check source.token_url"
        return ResponseError(system, WHERE, redact(cause))
    error, description = str(data.get("error") or ""), str(data.get("error_description") or "")
    detail = redact(": ".join(p for p in (error, description) if p) or "refused")
    return AuthError(system, WHERE, f"token refused: {detail}; {_hint(error, description)}")


def _hint(error: str, description: str) -> str:
    """Say what to check for each refusal Google's token endpoint gives (§3.1) [U: texts not in §3]."""
    if error == "unauthorized_client":
        scopes = ", ".join(SCOPES)
        return f"authorise the service account's client ID for {scopes} in {DELEGATION}"
    if "email or user id" in description.lower():
        return "check source.subject: it must be an active admin user of the Workspace"
    if "signature" in description.lower() or "account not found" in description.lower():
        return (
            "check source.credentials_file: its key is deleted, revoked or of another service "
            "account (create a new JSON key)"
        )
    if "iat" in description or "exp" in description:
        return "check this machine's clock (the signed request must be within an hour of Google's time)"
    return "check source.credentials_file, source.subject and source.token_url"
