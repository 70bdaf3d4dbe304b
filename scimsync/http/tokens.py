"""Access tokens that expire: fetched on first use, refreshed before expiry and after a 401.

An IdP reached with OAuth client credentials (Entra ID, OneLogin, Keycloak) or a signed
service-account grant (Google) hands out tokens that live an hour or so. ``TokenSource``
is what ``HttpClient`` asks for the current token at send time (``TokenAuth``); a 401
makes the client ``invalidate`` the token it sent and try once more with a fresh one.
The token itself is a ``Secret``: it is scrubbed from every message and log line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from scimsync.errors import AuthError, ConnectorError, ResponseError
from scimsync.secrets import Secret, redact

# Refresh this long before a token's stated expiry: a request sent a moment before the
# end must not arrive after it (clock skew, a slow page).
REFRESH_MARGIN = 60.0


class TokenSource(Protocol):
    """Where an ``HttpClient`` gets the bearer token for each request."""

    def token(self) -> Secret:
        """Return a token valid for a while yet, fetching a new one when needed."""
        ...

    def invalidate(self, token: Secret) -> None:
        """Forget ``token`` (the server refused it): the next ``token()`` fetches another."""
        ...


@dataclass(frozen=True)
class TokenAuth:
    """``Authorization: Bearer <token>`` with a token from a ``TokenSource``, refreshed as needed."""

    source: TokenSource


@dataclass(frozen=True)
class Grant:
    """A token as an endpoint granted it: the value, and when it stops being good (clock time)."""

    value: Secret
    expires_at: float


class CachedToken:
    """The thread-safe cache every ``TokenSource`` shares: one fetch at a time, refreshed early.

    ``fetch`` gets a new token; concurrent requests wait for the one fetch in flight
    instead of each fetching their own.
    """

    def __init__(self, fetch: Callable[[], Grant], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._grant: Grant | None = None

    def token(self) -> Secret:
        """Return the cached token, or fetch one when there is none or it is about to expire."""
        with self._lock:
            if self._grant is None or self._clock() >= self._grant.expires_at - REFRESH_MARGIN:
                self._grant = self._fetch()
            return self._grant.value

    def invalidate(self, token: Secret) -> None:
        """Drop ``token`` if it is still the cached one (another thread may have refreshed it)."""
        with self._lock:
            if self._grant is not None and self._grant.value == token:
                self._grant = None


class ClientCredentials:
    """OAuth 2.0 client credentials (RFC 6749 §4.4): POST the token endpoint, form-encoded.

    ``system`` names the IdP in messages ("source"); ``scope`` and ``extra`` are added to
    the form. ``basic`` sends the client id and secret as HTTP basic auth (RFC 6749 §2.3.1,
    OneLogin), otherwise in the form body (Entra ID, Keycloak accept both).
    """

    def __init__(
        self,
        system: str,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        *,
        scope: str | None = None,
        extra: Mapping[str, str] | None = None,
        basic: bool = False,
        timeout: float = 30.0,
        verify: str | bool = True,
        clock: Callable[[], float] = time.monotonic,
        post: Callable[..., requests.Response] = requests.post,
    ) -> None:
        self.system = system
        self.token_url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._form = {
            "grant_type": "client_credentials",
            **({"scope": scope} if scope else {}),
            **(extra or {}),
        }
        self._basic = basic
        self._timeout = timeout
        self._verify = verify
        self._clock = clock
        self._post = post
        self._cache = CachedToken(self._fetch, clock=clock)

    def token(self) -> Secret:
        """Return a valid access token."""
        return self._cache.token()

    def invalidate(self, token: Secret) -> None:
        """Forget a refused token."""
        self._cache.invalidate(token)

    def _fetch(self) -> Grant:
        form = dict(self._form)
        auth = None
        if self._basic:
            auth = (self._client_id, self._secret.reveal())
        else:
            form |= {"client_id": self._client_id, "client_secret": self._secret.reveal()}
        where = "token endpoint"
        started = self._clock()  # a lifetime counts from before the request: never too long
        try:
            response = self._post(
                self.token_url,
                data=form,
                auth=auth,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                verify=self._verify,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            cause = redact(f"cannot reach {self.token_url}: {type(exc).__name__}")
            raise ConnectorError(self.system, where, cause) from None
        if response.status_code != 200:
            raise _refused(self.system, where, response)
        return parse_grant(self.system, where, _json(self.system, where, response), started)


def parse_grant(system: str, where: str, body: Any, now: float) -> Grant:
    """Read ``access_token`` and ``expires_in`` (seconds) from a token response (RFC 6749 §5.1)."""
    access = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(access, str) or not access:
        raise ResponseError(system, where, "the answer has no access_token")
    lifetime = body.get("expires_in", 3600)
    if isinstance(lifetime, str) and lifetime.isdigit():
        lifetime = int(lifetime)  # some servers send it as a string
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        raise ResponseError(system, where, "the answer has no valid expires_in")
    return Grant(Secret(access), now + float(lifetime))


def _json(system: str, where: str, response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        kind = (response.headers.get("Content-Type") or "no content type").split(";")[0].strip()
        raise ResponseError(system, where, f"expected JSON, got {kind}") from None


def _refused(system: str, where: str, response: requests.Response) -> ConnectorError:
    """Turn a refused token request into one line: the OAuth error and its description (RFC 6749 §5.2)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    parts = []
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "error_description") if isinstance(body.get(k), str)]
    detail = redact(": ".join(parts) or f"HTTP {response.status_code}")
    if response.status_code in (400, 401, 403):
        hint = "check the client id and secret, and that the app is allowed to use this grant"
        return AuthError(system, where, f"token refused (HTTP {response.status_code}): {detail}; {hint}")
    return ConnectorError(system, where, f"token request failed (HTTP {response.status_code}): {detail}")
