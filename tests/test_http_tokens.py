"""Access tokens: fetched once, refreshed before expiry and after a 401, never shown."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses

from scimsync.errors import AuthError, ConnectorError, ResponseError
from scimsync.http import ClientCredentials, HttpClient, HttpSettings, TokenAuth
from scimsync.http.tokens import REFRESH_MARGIN, CachedToken, Grant
from scimsync.secrets import Secret

TOKEN_URL = "https://login.test/tenant/oauth2/v2.0/token"
API = "https://graph.test/v1.0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def grant_body(token: str, expires_in: Any = 3600) -> dict[str, Any]:
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}


def credentials(clock: Clock, **kw: Any) -> ClientCredentials:
    return ClientCredentials(
        "source", TOKEN_URL, "app-id", Secret("client-secret-value"), clock=clock, scope="api/.default", **kw
    )


@responses.activate
def test_a_token_is_fetched_once_and_refreshed_just_before_it_expires() -> None:
    clock = Clock()
    responses.post(TOKEN_URL, json=grant_body("token-one"))
    responses.post(TOKEN_URL, json=grant_body("token-two"))
    source = credentials(clock)
    assert source.token().reveal() == "token-one"
    clock.now += 3600 - REFRESH_MARGIN - 1
    assert source.token().reveal() == "token-one"  # still good for a while: no request
    assert len(responses.calls) == 1
    clock.now += 1
    assert source.token().reveal() == "token-two"
    form = parse_qs(responses.calls[0].request.body)
    assert form == {
        "grant_type": ["client_credentials"],
        "scope": ["api/.default"],
        "client_id": ["app-id"],
        "client_secret": ["client-secret-value"],
    }


@responses.activate
def test_basic_client_authentication_keeps_the_secret_out_of_the_form() -> None:
    responses.post(TOKEN_URL, json=grant_body("token-one"))
    credentials(Clock(), basic=True).token()
    request = responses.calls[0].request
    assert "client_secret" not in (request.body or "")
    assert request.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_a_401_refreshes_the_token_once_and_retries() -> None:
    clock = Clock()
    responses.post(TOKEN_URL, json=grant_body("stale-token"))
    responses.post(TOKEN_URL, json=grant_body("fresh-token"))
    responses.get(f"{API}/users", status=401, json={"error": {"code": "InvalidAuthenticationToken"}})
    responses.get(f"{API}/users", json={"value": []})
    client = HttpClient("source", API, auth=TokenAuth(credentials(clock)), sleep=lambda s: None)
    assert client.get_json("/users") == {"value": []}
    sent = [c.request.headers.get("Authorization") for c in responses.calls if c.request.url.startswith(API)]
    assert sent == ["Bearer stale-token", "Bearer fresh-token"]


@responses.activate
def test_a_second_401_is_an_auth_error_naming_the_system() -> None:
    responses.post(TOKEN_URL, json=grant_body("token-one"))
    responses.post(TOKEN_URL, json=grant_body("token-two"))
    responses.get(f"{API}/users", status=401, json={"error": {"message": "nope"}})
    client = HttpClient(
        "source",
        API,
        auth=TokenAuth(credentials(Clock())),
        settings=HttpSettings(retries=0),
        sleep=lambda s: None,
    )
    with pytest.raises(AuthError) as caught:
        client.get_json("/users")
    assert str(caught.value).startswith("source: ")
    assert len([c for c in responses.calls if c.request.url.startswith(API)]) == 2


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (
            401,
            {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.",
            },
            AuthError,
            "source: token endpoint: token refused (HTTP 401): invalid_client: AADSTS7000215: Invalid client "
            "secret provided.; check the client id and secret, and that the app is allowed to use this grant",
        ),
        (
            500,
            {"error": "temporarily_unavailable"},
            ConnectorError,
            "source: token endpoint: token request failed (HTTP 500): temporarily_unavailable",
        ),
        (
            200,
            {"token_type": "Bearer"},
            ResponseError,
            "source: token endpoint: the answer has no access_token",
        ),
        (
            200,
            {"access_token": "t-1234", "expires_in": -5},
            ResponseError,
            "source: token endpoint: the answer has no valid expires_in",
        ),
    ],
)
@responses.activate
def test_token_endpoint_failures_are_one_line(
    status: int, body: dict[str, Any], kind: type[Exception], text: str
) -> None:
    responses.post(TOKEN_URL, status=status, json=body)
    with pytest.raises(kind) as caught:
        credentials(Clock()).token()
    assert str(caught.value) == text
    assert "client-secret-value" not in str(caught.value)


@responses.activate
def test_a_secret_echoed_by_the_token_endpoint_is_masked() -> None:
    body = {"error": "invalid_request", "error_description": "bad secret client-secret-value"}
    responses.post(TOKEN_URL, status=400, json=body)
    with pytest.raises(AuthError) as caught:
        credentials(Clock()).token()
    assert "client-secret-value" not in str(caught.value) and "***" in str(caught.value)


@responses.activate
def test_expires_in_as_a_string_is_read() -> None:
    clock = Clock()
    responses.post(TOKEN_URL, json=grant_body("token-one", "60"))
    responses.post(TOKEN_URL, json=grant_body("token-two", "60"))
    source = credentials(clock)
    source.token()
    clock.now += 1  # 60 s tokens are always within the refresh margin: fetched every time
    assert source.token().reveal() == "token-two"


def test_concurrent_requests_share_one_fetch_and_invalidate_spares_a_newer_token() -> None:
    fetched: list[int] = []
    gate = threading.Event()

    def fetch() -> Grant:
        gate.wait(1)
        fetched.append(1)
        return Grant(Secret(f"tok-{len(fetched)}"), 1e12)

    cache = CachedToken(fetch)
    threads = [threading.Thread(target=cache.token) for _ in range(5)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(fetched) == 1
    cache.invalidate(Secret("tok-0"))  # not the cached one: another thread refreshed already
    assert cache.token().reveal() == "tok-1"
    cache.invalidate(Secret("tok-1"))
    assert cache.token().reveal() == "tok-2"
