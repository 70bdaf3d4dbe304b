"""HttpClient: retries, Retry-After, rate limits, error lines, redaction, parallel calls."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from typing import Any

import pytest
import requests
import responses
from responses import matchers
from urllib3.exceptions import (
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError

from scimsync.errors import AuthError, ConnectorError, NotFoundError, ResponseError
from scimsync.http import (
    BasicAuth,
    BearerAuth,
    HttpClient,
    HttpSettings,
    default_error_parser,
)
from scimsync.http.ratelimit import Pacer, ServerRate
from scimsync.secrets import Secret
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer
from scimsync.targets.jira import JiraTarget, parse_error

BASE = "https://jira.example"
LIST = f"{BASE}/rest/api/2/user/list"
DATE = "Wed, 21 Oct 2026 07:28:00 GMT"
DATE_EPOCH = 1792567680


class FakeTime:
    """A monotonic clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(round(seconds, 6))
            self.now += seconds


def make_client(
    fake: FakeTime,
    *,
    rng: float = 0.0,
    base_url: str = BASE,
    **kwargs: Any,
) -> HttpClient:
    settings = kwargs.pop("settings", HttpSettings())
    return HttpClient(
        "jira",
        base_url,
        settings=settings,
        sleep=fake.sleep,
        clock=fake.clock,
        rng=lambda: rng,
        wall_clock=lambda: float(DATE_EPOCH),
        **kwargs,
    )


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client(fake: FakeTime) -> HttpClient:
    return make_client(fake)


def refused() -> requests.ConnectionError:
    """Build the exception chain requests raises when nothing listens on the port."""
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    reason.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return requests.ConnectionError(MaxRetryError(None, "/rest/api/2/user", reason))  # type: ignore[arg-type]


# -- retries ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
@responses.activate
def test_retries_a_retry_status_then_succeeds(fake: FakeTime, status: int) -> None:
    client = make_client(fake, rng=0.5)
    responses.get(LIST, status=status)
    responses.get(LIST, json={"values": []})

    assert client.get_json("rest/api/2/user/list") == {"values": []}

    assert len(responses.calls) == 2
    assert fake.sleeps == [0.25]  # full jitter: rng 0.5 of the first 0.5 s step


@responses.activate
def test_retry_after_seconds_is_honoured(fake: FakeTime, client: HttpClient) -> None:
    responses.get(LIST, status=429, headers={"Retry-After": "7"})
    responses.get(LIST, json={})

    client.get_json("/rest/api/2/user/list")

    assert fake.sleeps == [7.0]


@responses.activate
def test_retry_after_http_date_is_measured_against_the_server_date(
    fake: FakeTime, client: HttpClient
) -> None:
    responses.get(LIST, status=503, headers={"Date": DATE, "Retry-After": "Wed, 21 Oct 2026 07:28:12 GMT"})
    responses.get(LIST, json={})

    client.get_json("/rest/api/2/user/list")

    assert fake.sleeps == [12.0]


@responses.activate
def test_backoff_wins_over_a_shorter_retry_after(fake: FakeTime) -> None:
    client = make_client(fake, rng=1.0)
    responses.get(LIST, status=503)
    responses.get(LIST, status=503)
    responses.get(LIST, status=503, headers={"Retry-After": "1"})
    responses.get(LIST, json={})

    client.get_json("/rest/api/2/user/list")

    assert fake.sleeps == [0.5, 1.0, 2.0]


@responses.activate
def test_backoff_doubles_and_is_capped_at_30_seconds(fake: FakeTime) -> None:
    client = make_client(fake, rng=1.0, settings=HttpSettings(retries=8))
    responses.get(LIST, status=502, body="<html><body>Bad   gateway</body></html>")

    with pytest.raises(ConnectorError) as caught:
        client.get_json("/rest/api/2/user/list")

    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert str(caught.value) == (
        "jira: GET /rest/api/2/user/list: "
        "HTTP 502 Bad Gateway: <html><body>Bad gateway</body></html> (9 attempts)"
    )


@responses.activate
def test_repeated_429_gives_the_exact_error_line_after_the_time_budget(fake: FakeTime) -> None:
    # A short timeout still leaves the 60 s floor of the budget.
    client = make_client(fake, rng=1.0, settings=HttpSettings(timeout=1))
    responses.get(
        LIST, status=429, headers={"Retry-After": "7"}, json={"errorMessages": ["Rate limit exceeded"]}
    )

    with pytest.raises(ConnectorError) as caught:
        client.get_json("/rest/api/2/user/list")

    assert str(caught.value) == (
        "jira: GET /rest/api/2/user/list: "
        "HTTP 429 Too Many Requests: still rate limited after 9 attempts (56 s)"
    )
    assert caught.value.status == 429
    assert len(responses.calls) == 9
    assert fake.sleeps == [7.0] * 8  # Retry-After exactly, no jitter on top; 8 x 7 + 7 > 60


@responses.activate
def test_the_429_budget_is_ten_timeouts_when_that_is_longer(fake: FakeTime) -> None:
    client = make_client(fake, settings=HttpSettings(timeout=10))
    responses.get(LIST, status=429, headers={"Retry-After": "30"})

    with pytest.raises(ConnectorError, match=r"still rate limited after 4 attempts \(90 s\)$"):
        client.get_json("/rest/api/2/user/list")

    assert fake.sleeps == [30.0, 30.0, 30.0]


@responses.activate
def test_429_without_retry_after_backs_off_within_the_budget(fake: FakeTime) -> None:
    client = make_client(fake, rng=1.0)  # timeout 30: a 300 s budget
    responses.get(LIST, status=429)

    with pytest.raises(ConnectorError, match=r"still rate limited after 15 attempts \(272 s\)$"):
        client.get_json("/rest/api/2/user/list")

    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0] + [30.0] * 8


@responses.activate
def test_429s_do_not_use_up_the_retries(fake: FakeTime) -> None:
    client = make_client(fake, settings=HttpSettings(retries=1))
    for _ in range(10):
        responses.get(LIST, status=429, headers={"Retry-After": "1"})
    responses.get(LIST, json={"values": []})

    assert client.get_json("/rest/api/2/user/list") == {"values": []}
    assert len(responses.calls) == 11
    assert fake.sleeps == [1.0] * 10


@responses.activate
def test_503s_like_429s_are_waited_out_on_the_time_budget_not_the_retries(fake: FakeTime) -> None:
    # SPEC §8: both say the server did not act. A proxy refusing one request in five must
    # never fail a write that would go through, so neither counts against http.retries.
    client = make_client(fake, rng=1.0, settings=HttpSettings(retries=1))
    responses.get(LIST, status=503)
    responses.get(LIST, status=429, headers={"Retry-After": "1"})
    responses.get(LIST, status=503)
    responses.get(LIST, status=503, headers={"Retry-After": "3"})
    responses.get(LIST, json={"values": []})

    assert client.get_json("/rest/api/2/user/list") == {"values": []}
    assert len(responses.calls) == 5
    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0]  # backoff by refusal, Retry-After when longer


@responses.activate
def test_a_503_storm_ends_on_the_time_budget_with_the_wait_named(fake: FakeTime) -> None:
    client = make_client(fake, rng=1.0, settings=HttpSettings(retries=1, timeout=5))
    responses.get(LIST, status=503, json={"errorMessages": ["Down"]})

    with pytest.raises(ConnectorError) as caught:
        client.get_json("/rest/api/2/user/list")

    # 60 s budget: 0.5 + 1 + 2 + 4 + 8 + 16 = 31.5, and the next 30 s would pass it.
    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert caught.value.cause == "HTTP 503 Service Unavailable: Down (7 attempts, 32 s)"


@responses.activate
def test_a_502_between_503s_counts_against_the_retries(fake: FakeTime) -> None:
    client = make_client(fake, settings=HttpSettings(retries=1))
    responses.get(LIST, status=502)
    responses.get(LIST, status=503)
    responses.get(LIST, status=502, json={"errorMessages": ["Gateway"]})

    with pytest.raises(ConnectorError) as caught:
        client.get_json("/rest/api/2/user/list")

    assert caught.value.cause == "HTTP 502 Bad Gateway: Gateway (3 attempts)"


@responses.activate
def test_post_is_retried_on_503_the_server_did_not_act(client: HttpClient) -> None:
    # SPEC §8: 503 means the request was not acted on, so even a create may go again.
    responses.post(f"{BASE}/rest/api/2/user", status=503, json={"errorMessages": ["Service down"]})
    responses.post(f"{BASE}/rest/api/2/user", status=201, json={"key": "JIRAUSER1"})

    response = client.request("POST", "/rest/api/2/user", json={"name": "amara.k"}, obj="user amara.k")

    assert response.status_code == 201
    assert len(responses.calls) == 2


@pytest.mark.parametrize("status", [502, 504])
@responses.activate
def test_post_is_not_retried_on_an_unknown_outcome(client: HttpClient, status: int) -> None:
    # 502/504: the server may have acted; only a re-read can tell (SPEC §8), never a blind repeat.
    responses.post(f"{BASE}/rest/api/2/user", status=status, json={"errorMessages": ["Gateway"]})

    with pytest.raises(ConnectorError) as caught:
        client.request("POST", "/rest/api/2/user", json={"name": "amara.k"}, obj="user amara.k")

    assert str(caught.value).startswith(f"jira: user amara.k: HTTP {status} ")
    assert len(responses.calls) == 1


@responses.activate
def test_post_is_not_retried_after_a_read_timeout(client: HttpClient) -> None:
    responses.post(f"{BASE}/rest/api/2/user", body=requests.ReadTimeout("Read timed out."))

    with pytest.raises(ConnectorError) as caught:
        client.request("POST", "/rest/api/2/user", json={"name": "amara.k"}, obj="user amara.k")

    assert str(caught.value) == "jira: user amara.k: timed out after 30s (1 attempt)"
    assert len(responses.calls) == 1


@responses.activate
def test_post_is_not_retried_when_the_connection_drops_after_sending(client: HttpClient) -> None:
    dropped = requests.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )
    responses.post(f"{BASE}/rest/api/2/user", body=dropped)

    with pytest.raises(ConnectorError, match="connection closed before a complete response"):
        client.request("POST", "/rest/api/2/user", json={})

    assert len(responses.calls) == 1


@responses.activate
def test_post_is_retried_on_429(fake: FakeTime, client: HttpClient) -> None:
    responses.post(f"{BASE}/rest/api/2/user", status=429, headers={"Retry-After": "3"})
    responses.post(f"{BASE}/rest/api/2/user", status=201, json={"name": "amara.k"})

    response = client.request("POST", "/rest/api/2/user", json={"name": "amara.k"})

    assert response.status_code == 201
    assert len(responses.calls) == 2
    assert fake.sleeps == [3.0]


@responses.activate
def test_post_is_retried_when_the_connection_was_never_made(client: HttpClient) -> None:
    responses.post(f"{BASE}/rest/api/2/user", body=refused())
    responses.post(f"{BASE}/rest/api/2/user", status=201, json={})

    assert client.request("POST", "/rest/api/2/user", json={}).status_code == 201
    assert len(responses.calls) == 2


@pytest.mark.parametrize(
    "error",
    [requests.ReadTimeout("Read timed out."), requests.ConnectTimeout("timed out"), refused()],
    ids=["read-timeout", "connect-timeout", "refused"],
)
@responses.activate
def test_get_is_retried_on_transport_errors(client: HttpClient, error: Exception) -> None:
    responses.get(LIST, body=error)
    responses.get(LIST, json={"values": []})

    assert client.get_json("/rest/api/2/user/list") == {"values": []}
    assert len(responses.calls) == 2


@responses.activate
def test_put_and_delete_are_retried_on_5xx(client: HttpClient) -> None:
    for method in (responses.PUT, responses.DELETE):
        responses.add(method, f"{BASE}/rest/api/2/user", status=504)
        responses.add(method, f"{BASE}/rest/api/2/user", status=204)

    assert client.request("PUT", "/rest/api/2/user", json={}).status_code == 204
    assert client.request("DELETE", "/rest/api/2/user").status_code == 204
    assert len(responses.calls) == 4


# -- status errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind", "line"),
    [
        (
            401,
            {"errorMessages": ["You are not authenticated"]},
            AuthError,
            "HTTP 401 Unauthorized: the credentials were rejected",
        ),
        (
            403,
            {"errorMessages": ["You do not have the permission to see the specified user."], "errors": {}},
            AuthError,
            "HTTP 403 Forbidden: You do not have the permission to see the specified user.",
        ),
        (
            403,
            {"message": "Basic authentication has been disabled on this instance."},
            AuthError,
            "HTTP 403 Forbidden: Basic authentication has been disabled on this instance.",
        ),
        (
            404,
            {"errorMessages": ["The user named 'amara.k' does not exist"], "errors": {}},
            NotFoundError,
            "HTTP 404 Not Found: The user named 'amara.k' does not exist",
        ),
        (
            400,
            {"errorMessages": ["Invalid request"], "errors": {"emailAddress": "You must specify an email."}},
            ConnectorError,
            "HTTP 400 Bad Request: Invalid request; emailAddress: You must specify an email.",
        ),
    ],
)
@responses.activate
def test_status_maps_to_exception_and_line(
    client: HttpClient, status: int, body: dict[str, Any], kind: type[ConnectorError], line: str
) -> None:
    responses.get(f"{BASE}/rest/api/2/user", status=status, json=body)

    with pytest.raises(ConnectorError) as caught:
        client.get_json("/rest/api/2/user", params={"username": "amara.k"}, obj="user amara.k")

    assert type(caught.value) is kind
    assert str(caught.value) == f"jira: user amara.k: {line}"
    assert (caught.value.system, caught.value.obj, caught.value.status) == ("jira", "user amara.k", status)
    assert len(responses.calls) == 1


@responses.activate
def test_default_obj_is_method_and_path_without_base_path_or_query(fake: FakeTime) -> None:
    client = make_client(fake, base_url="https://host.example/jira/")
    responses.get("https://host.example/jira/rest/api/2/user", status=404, json={"errorMessages": ["nope"]})

    with pytest.raises(NotFoundError) as caught:
        client.get_json("rest/api/2/user", params={"username": "x"})

    assert caught.value.obj == "GET /rest/api/2/user"


@responses.activate
def test_ok_statuses_are_returned_not_raised(client: HttpClient) -> None:
    responses.post(f"{BASE}/rest/api/2/group/user", status=400, json={"errorMessages": ["already a member"]})

    response = client.request("POST", "rest/api/2/group/user", json={}, ok=(201, 400))

    assert response.status_code == 400


@responses.activate
def test_a_custom_error_parser_is_used(fake: FakeTime) -> None:
    client = make_client(fake, error_parser=lambda r: f"custom {r.status_code}")
    responses.get(LIST, status=400, body="whatever")

    with pytest.raises(ConnectorError, match=r"HTTP 400 Bad Request: custom 400$"):
        client.get_json("/rest/api/2/user/list")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"errorMessages": ["a", "b"], "errors": {"f": "c"}}, "a; b; f: c"),
        ({"statusCode": 404, "message": "No user found with username: ghost", "reason": "Not Found"},
         "No user found with username: ghost"),
        ({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "detail": "taken"}, "taken"),
        ({"errorCode": "E0000031", "errorSummary": "Invalid search criteria."}, "Invalid search criteria."),
        ({"error": {"code": "TooManyRequests", "message": "Too many requests."}}, "Too many requests."),
        ({"error": "invalid_token", "traceId": "t1"}, "invalid_token"),
        ({"errors": [{"context": None, "message": "No such user"}]}, "No such user"),
    ],
)  # fmt: skip
def test_default_error_parser_reads_vendor_bodies(body: dict[str, Any], message: str) -> None:
    assert default_error_parser(_response(400, json_body=body)) == message


def test_default_error_parser_falls_back_to_collapsed_text() -> None:
    text = "<html>\n  <body>" + "x" * 500 + "</body></html>"

    parsed = default_error_parser(_response(500, text=text))

    assert parsed.startswith("<html> <body>xxx")
    assert len(parsed) == 200


def _response(status: int, *, json_body: Any = None, text: str = "") -> requests.Response:
    import json

    response = requests.Response()
    response.status_code = status
    response._content = (json.dumps(json_body) if json_body is not None else text).encode()
    response.encoding = "utf-8"
    return response


@responses.activate
def test_a_body_that_is_not_json_is_a_response_error(client: HttpClient) -> None:
    responses.get(LIST, body="<html><head><title>Log in</title></head></html>", content_type="text/html")

    with pytest.raises(ResponseError) as caught:
        client.get_json("/rest/api/2/user/list", obj="user list")

    assert str(caught.value) == (
        "jira: user list: expected JSON, got text/html: <html><head><title>Log in</title></head></html>"
    )


# -- transport errors ------------------------------------------------------------------


def test_connection_refused_on_a_closed_local_port(fake: FakeTime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # a proxy in the environment would answer instead
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = HttpSettings(timeout=2, retries=2)
    client = make_client(fake, rng=1.0, base_url=f"http://127.0.0.1:{port}", settings=settings)

    with pytest.raises(ConnectorError) as caught:
        client.get_json("/rest/api/2/serverInfo")

    assert str(caught.value) == "jira: GET /rest/api/2/serverInfo: connection refused (3 attempts)"
    assert caught.value.status is None
    assert fake.sleeps == [0.5, 1.0]


@responses.activate
def test_timeouts_are_reported_with_the_setting_and_attempts(client: HttpClient) -> None:
    responses.get(LIST, body=requests.ReadTimeout("Read timed out."))

    with pytest.raises(ConnectorError) as caught:
        client.get_json("/rest/api/2/user/list")

    assert str(caught.value) == "jira: GET /rest/api/2/user/list: timed out after 30s (6 attempts)"


@responses.activate
def test_tls_verification_failure_is_not_retried(client: HttpClient) -> None:
    cert_error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    cert_error.verify_message = "self-signed certificate"
    reason = Urllib3SSLError(cert_error)
    responses.get(LIST, body=requests.exceptions.SSLError(MaxRetryError(None, "/", reason)))  # type: ignore[arg-type]

    with pytest.raises(ConnectorError) as caught:
        client.get_json("/rest/api/2/user/list")

    assert caught.value.cause == "TLS certificate verification failed: self-signed certificate"
    assert len(responses.calls) == 1


@responses.activate
def test_an_unknown_host_is_not_retried(client: HttpClient) -> None:
    reason = NameResolutionError("jira.example", None, socket.gaierror(-2, "Name or service not known"))  # type: ignore[arg-type]
    responses.get(LIST, body=requests.ConnectionError(MaxRetryError(None, "/", reason)))  # type: ignore[arg-type]

    with pytest.raises(ConnectorError) as caught:
        client.get_json("/rest/api/2/user/list")

    assert caught.value.cause == "cannot resolve host 'jira.example'"
    assert len(responses.calls) == 1


# -- secrets, auth, request shape -------------------------------------------------------


@responses.activate
def test_a_secret_echoed_by_the_server_never_reaches_the_message(fake: FakeTime) -> None:
    token = Secret("pat-9f8e7d6c5b4a-echoed")
    client = make_client(fake, auth=BearerAuth(token))
    responses.get(
        f"{BASE}/rest/api/2/myself",
        status=400,
        json={"errorMessages": ["Bad header: Authorization: Bearer pat-9f8e7d6c5b4a-echoed"]},
    )
    responses.get(LIST, body="token=pat-9f8e7d6c5b4a-echoed", content_type="text/plain")

    with pytest.raises(ConnectorError) as status_error:
        client.get_json("/rest/api/2/myself")
    with pytest.raises(ResponseError) as body_error:
        client.get_json("/rest/api/2/user/list")

    assert responses.calls[0].request.headers["Authorization"] == "Bearer pat-9f8e7d6c5b4a-echoed"
    for caught in (status_error, body_error):
        assert "pat-9f8e7d6c5b4a" not in str(caught.value)
        assert "***" in str(caught.value)


@responses.activate
def test_session_shape_headers_timeout_and_tls(fake: FakeTime) -> None:
    settings = HttpSettings(timeout=12.5, concurrency=3, ca_bundle="/etc/corp-ca.pem")
    client = make_client(
        fake,
        settings=settings,
        auth=BasicAuth("svc", Secret("basic-pw-1")),
        headers={"X-Atlassian-Token": "no-check"},
    )
    responses.get(
        f"{BASE}/rest/api/2/group/member",
        json={},
        match=[matchers.query_param_matcher({"groupname": "g", "includeInactiveUsers": "true"})],
    )

    client.get_json("/rest/api/2/group/member", params={"groupname": "g", "includeInactiveUsers": True})

    request = responses.calls[0].request
    assert request.headers["Accept"] == "application/json"
    assert request.headers["X-Atlassian-Token"] == "no-check"
    assert request.headers["Authorization"] == requests.auth._basic_auth_str("svc", "basic-pw-1")
    assert request.req_kwargs["timeout"] == 12.5
    assert request.req_kwargs["verify"] == "/etc/corp-ca.pem"
    adapter = client._session.get_adapter(BASE)
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    assert (adapter._pool_connections, adapter._pool_maxsize, adapter.max_retries.total) == (3, 3, 0)


@responses.activate
def test_absolute_urls_on_the_same_host_are_followed_and_others_refused(client: HttpClient) -> None:
    responses.get(f"{BASE}/next?page=2", json={"ok": True})

    assert client.get_json(f"{BASE}/next?page=2") == {"ok": True}
    with pytest.raises(ResponseError, match=r"refusing to follow a link to evil\.example"):
        client.get_json("https://evil.example/steal")
    assert len(responses.calls) == 1


# -- rate limits -----------------------------------------------------------------------


@responses.activate
def test_atlassian_remaining_zero_holds_back_the_next_request(fake: FakeTime, client: HttpClient) -> None:
    responses.get(LIST, json={}, headers={"X-RateLimit-Remaining": "0", "retry-after": "5"})
    responses.get(LIST, json={}, headers={"X-RateLimit-Remaining": "9", "retry-after": "0"})

    client.get_json("/rest/api/2/user/list")
    assert fake.sleeps == []
    client.get_json("/rest/api/2/user/list")
    client.get_json("/rest/api/2/user/list")

    assert fake.sleeps == [5.0]  # held once; "retry-after: 0" while tokens remain is no hold (§1.11)


@responses.activate
def test_okta_reset_is_measured_against_the_date_header_and_holds_every_thread(
    fake: FakeTime, client: HttpClient
) -> None:
    # Repeated headers arrive merged; the smallest reset wins, as in Okta's SDK (idp §1.8).
    okta = [
        ("X-Rate-Limit-Remaining", "0"),
        ("X-Rate-Limit-Reset", str(DATE_EPOCH + 60)),
        ("X-Rate-Limit-Reset", str(DATE_EPOCH + 42)),
        ("Date", DATE),
    ]
    responses.get(f"{BASE}/api/v1/users", json=[], headers=okta)
    responses.get(f"{BASE}/api/v1/users", json=[])

    client.get_json("/api/v1/users")
    other = threading.Thread(target=client.get_json, args=("/api/v1/users",))
    other.start()
    other.join()

    assert fake.sleeps == [42.0]
    assert len(responses.calls) == 2


@responses.activate
def test_onelogin_reset_counts_seconds_and_a_429_without_retry_after_waits_for_it(
    fake: FakeTime, client: HttpClient
) -> None:
    # idp §4.6: X-RateLimit-Reset is the seconds until the hourly budget refills.
    spent = {
        "X-RateLimit-Limit": "5000",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "37",
        "Date": DATE,
    }
    responses.get(f"{BASE}/api/2/users", status=429, json={"status": {"error": True}}, headers=spent)
    responses.get(f"{BASE}/api/2/users", json=[])

    assert client.get_json("/api/2/users") == []
    assert fake.sleeps == [37.0]


@responses.activate
def test_client_rate_limit_spaces_requests(fake: FakeTime) -> None:
    client = make_client(fake, settings=HttpSettings(rate_limit=4))
    responses.get(LIST, json={})

    for _ in range(3):
        client.get_json("/rest/api/2/user/list")
    fake.now += 10
    client.get_json("/rest/api/2/user/list")

    assert fake.sleeps == [0.25, 0.25]


def atlassian_limits(
    limit: int, remaining: int, fill_rate: int, interval: int, retry_after: int
) -> dict[str, str]:
    """Return the five rate-limit headers of a Jira DC response (atlassian §1.11)."""
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-FillRate": str(fill_rate),
        "X-RateLimit-Interval-Seconds": str(interval),
        "retry-after": str(retry_after),
    }


@responses.activate
def test_announced_fill_rate_paces_requests_instead_of_whole_second_holds(fake: FakeTime) -> None:
    client = make_client(fake)
    # A bucket of 2 that refills 2 per second; the server's retry-after is rounded up to 1 s.
    responses.get(LIST, json={}, headers=atlassian_limits(2, 1, 2, 1, 0))
    responses.get(LIST, json={}, headers=atlassian_limits(2, 0, 2, 1, 1))

    for _ in range(5):
        client.get_json("/rest/api/2/user/list")

    # The one token left goes at once, then one request per half second.
    assert fake.sleeps == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(("own_rate", "gap"), [(1.0, 1.0), (10.0, 0.5)], ids=["own-slower", "server-slower"])
@responses.activate
def test_the_slower_of_the_own_and_the_announced_rate_wins(
    fake: FakeTime, own_rate: float, gap: float
) -> None:
    client = make_client(fake, settings=HttpSettings(rate_limit=own_rate))
    responses.get(LIST, json={}, headers=atlassian_limits(1, 0, 4, 2, 1))  # 4 per 2 s: one per 0.5 s

    for _ in range(4):
        client.get_json("/rest/api/2/user/list")

    assert fake.sleeps == [gap] * 3


class FrozenTime(FakeTime):
    """A clock that sleeping does not move: every caller waits at the same instant, like parked threads."""

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))


def test_threads_waiting_out_a_hold_are_released_one_by_one() -> None:
    frozen = FrozenTime()
    pacer = Pacer(None, frozen.clock, frozen.sleep)
    pacer.hold(5.0)

    for _ in range(3):
        pacer.wait_turn()
    frozen.now += 10
    pacer.wait_turn()

    assert frozen.sleeps == [5.0, 5.2, 5.4]  # and once the hold is over, nobody waits


def test_the_retry_that_caused_a_hold_queues_with_the_threads_it_held() -> None:
    frozen = FrozenTime()
    pacer = Pacer(None, frozen.clock, frozen.sleep)
    pacer.hold(2.0)  # a 429 with Retry-After: 2

    pacer.wait_turn()  # another thread, parked by the hold
    pacer.wait_turn(2.0)  # the thread that got the 429, waiting its Retry-After
    pacer.wait_turn()

    # One sleep each, spaced: the retry does not sleep 2 s on its own and then stampede.
    assert frozen.sleeps == [2.0, 2.2, 2.4]


def test_after_a_hold_an_announced_rate_releases_only_what_the_bucket_refilled() -> None:
    frozen = FrozenTime()
    pacer = Pacer(None, frozen.clock, frozen.sleep)
    pacer.follow(ServerRate(limit=2, interval=0.5, remaining=0))  # as on a 429
    pacer.hold(1.0)

    for _ in range(4):
        pacer.wait_turn()

    # One second refills two tokens: two go together, then one per half second.
    assert frozen.sleeps == [1.0, 1.0, 1.5, 2.0]


class VirtualTime:
    """A clock shared by threads: a sleeper moves it to its own wake-up time, never back."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()
        self._read = threading.local()

    def clock(self) -> float:
        with self._lock:
            self._read.at = self.now
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now = max(self.now, getattr(self._read, "at", self.now) + seconds)


def test_jira_rate_limit_is_followed_over_loopback_without_a_429(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    vt = VirtualTime()
    # Eight requests at once, then two a second, on one clock for the simulator and the client.
    # (A virtual clock lets the last of several sleepers move time past the others' slots, so
    # the bucket is as deep as the concurrency; real time shows no 429 with a bucket of 2 too.)
    sim = JiraSim(rate_limit=(8, 2.0), clock=vt.clock)
    groups = [f"team-{n:02d}" for n in range(40)]
    for group in groups:
        sim.add_group(group)
    with SimServer(sim.app) as server:
        client = HttpClient(
            "jira",
            server.url,
            auth=BearerAuth(Secret("sim-jira-token")),
            settings=HttpSettings(concurrency=8),
            error_parser=parse_error,
            sleep=vt.sleep,
            clock=vt.clock,
        )
        directory = JiraTarget("jira", client).read(groups, wanted=[])

    assert directory.groups == frozenset(groups)
    statuses = [entry.status for entry in sim.log.entries]
    assert statuses == [200] * 42  # serverInfo, one user/list page, 40 member lists; no 429
    assert vt.now == pytest.approx(17.0)  # 8 at once, the other 34 at two a second


# -- logging ---------------------------------------------------------------------------


@responses.activate
def test_logs_one_warning_per_retry_and_never_query_strings_or_secrets(
    fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(fake, auth=BearerAuth(Secret("log-secret-77")))
    responses.get(LIST, status=503)
    responses.get(LIST, status=429, headers={"Retry-After": "2"})
    responses.get(LIST, json={})

    with caplog.at_level(logging.DEBUG, logger="scimsync.http"):
        client.get_json("/rest/api/2/user/list", params={"cursor": "c-private"})

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "jira: 503 on GET /rest/api/2/user/list, retrying in 0.0s (attempt 2, 0s of 300s rate-limit wait)",
        "jira: 429 on GET /rest/api/2/user/list, retrying in 2.0s (attempt 3, 2s of 300s rate-limit wait)",
    ]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert "jira: GET /rest/api/2/user/list -> 200 in 0 ms (attempt 3)" in debug
    assert not any("c-private" in m or "log-secret-77" in m for m in caplog.messages)


# -- map_parallel ----------------------------------------------------------------------


def test_map_parallel_keeps_input_order(client: HttpClient) -> None:
    second_done = threading.Event()

    def work(n: int) -> int:
        if n == 0:
            assert second_done.wait(5)  # item 0 finishes after item 1
        if n == 1:
            second_done.set()
        return n * 10

    assert client.map_parallel(work, range(20)) == [n * 10 for n in range(20)]
    assert client.map_parallel(work, []) == []


def test_map_parallel_reraises_after_calls_in_flight_finish(client: HttpClient) -> None:
    started = threading.Event()
    finished: list[int] = []

    def work(n: int) -> int:
        if n == 0:
            assert started.wait(5)
            raise NotFoundError("jira", "group g", "HTTP 404 Not Found")
        started.set()
        threading.Event().wait(0.05)  # still running when item 0 fails
        finished.append(n)
        return n

    with pytest.raises(NotFoundError, match="group g"):
        client.map_parallel(work, [0, 1])
    assert finished == [1]


# -- DELETE retried into a 404 ---------------------------------------------------------------

USER = f"{BASE}/rest/api/2/user"


@pytest.mark.parametrize(
    "value",
    ["Mon, 01 Jan 99999999999 00:00:00 GMT", "Mon, 01 Jan 2026 00:00:00 +99999999999999999999", "soon"],
)
def test_a_garbage_http_date_is_no_date(value: str) -> None:
    from scimsync.http.ratelimit import http_date

    assert http_date(value) is None
