"""The Google Workspace simulator is as strict as idp-apis §3 over loopback: grant, paging, caps, errors."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from google.auth import crypt, jwt
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from scimsync.sim.company import make_people
from scimsync.sim.google import GoogleSim
from scimsync.sim.google_oauth import GROUP_READONLY, JWT_BEARER, USER_READONLY
from scimsync.sim.server import SimServer

API = "/admin/directory/v1"
SCOPES = f"{USER_READONLY} {GROUP_READONLY}"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@functools.cache
def _signer(private_key: str, key_id: str) -> crypt.RSASigner:
    # Loading an RSA key validates it, a tenth of a second: once per key is enough.
    return crypt.RSASigner.from_service_account_info(  # type: ignore[no-untyped-call,no-any-return]
        {"private_key": private_key, "private_key_id": key_id}
    )


@dataclass
class Env:
    sim: GoogleSim
    url: str
    clock: Clock
    wall: Clock

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def assertion(self, info: dict[str, str] | None = None, **claims: Any) -> str:
        """Return a signed JWT assertion as google-auth builds it; ``claims`` override (None drops)."""
        info = info or self.sim.credentials_info(self.token_url)
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": info["client_email"],
            "sub": "admin@acme.example",
            "aud": self.token_url,
            "scope": SCOPES,
            "iat": now,
            "exp": now + 3600,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(_signer(info["private_key"], info["private_key_id"]), payload).decode()  # type: ignore[no-untyped-call,no-any-return]

    def grant(self, assertion: str | None = None, **form: str) -> requests.Response:
        data = {"grant_type": JWT_BEARER, "assertion": assertion or self.assertion(), **form}
        return requests.post(self.token_url, data=data, timeout=5)

    def token(self, **claims: Any) -> str:
        response = self.grant(self.assertion(**claims))
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def get(self, path: str, token: str | None = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token()}"}
        return requests.get(self.url + API + path, params=params, headers=headers, timeout=5)


@pytest.fixture
def env() -> Iterator[Env]:
    """A simulator (sim and wall clocks moved by hand) with an admin, on loopback."""
    clock, wall = Clock(), Clock(time.time())
    sim = GoogleSim(clock=clock, wall_clock=wall, token_lifetime=3599, key_bits=1024)
    sim.add_user("admin@acme.example", "Ada", "Admin", admin=True)
    with SimServer(sim.app) as server:
        yield Env(sim, server.url, clock, wall)


def error(response: requests.Response) -> tuple[int, str, str]:
    """Return (code, reason, status) of Google's error body, checking its shape (§3.7)."""
    body = response.json()["error"]
    assert set(body) == {"code", "message", "errors", "status"}, body
    assert body["code"] == response.status_code
    return body["code"], body["errors"][0]["reason"], body["status"]


def oauth(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["error_description"]


# --- the token endpoint (§3.1) ----------------------------------------------------------


def test_a_signed_grant_for_an_admin_gets_a_bearer_token_of_the_configured_lifetime(env: Env) -> None:
    response = env.grant()
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert body["access_token"].startswith("ya29.")
    assert env.get("/users", body["access_token"], customer="my_customer").status_code == 200


def test_google_auth_itself_gets_a_token(env: Env) -> None:
    info = env.sim.credentials_info(env.token_url)
    credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=SCOPES.split(), subject="admin@acme.example", additional_claims={"aud": env.token_url}
    )
    credentials.refresh(Request())
    assert env.get("/users", credentials.token, customer="my_customer").status_code == 200


def test_a_key_the_simulator_did_not_issue_is_an_invalid_signature(env: Env, tmp_path: Path) -> None:
    other = GoogleSim(key_bits=1024).credentials_info(env.token_url)
    forged = {**other, "client_email": env.sim.service_account().client_email}
    forged["private_key_id"] = env.sim.service_account().key_id
    assert oauth(env.grant(env.assertion(forged))) == (400, "invalid_grant", "Invalid JWT Signature.")


def test_a_revoked_key_is_refused_and_the_new_one_works(env: Env) -> None:
    old = env.sim.credentials_info(env.token_url)
    env.sim.revoke_key()
    assert oauth(env.grant(env.assertion(old)))[1:] == ("invalid_grant", "Invalid JWT Signature.")
    assert env.grant(env.assertion()).status_code == 200


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"aud": "https://oauth2.googleapis.com/token"}, "Invalid JWT: Failed audience check."),
        (
            {"iat": int(time.time()), "exp": int(time.time()) + 7200},
            "Invalid JWT: Token must be a short-lived",
        ),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "Invalid JWT: Token must be"),
        ({"iss": "stranger@other.iam.gserviceaccount.com"}, "Invalid grant: account not found"),
        ({"sub": "nobody@acme.example"}, "Invalid email or User ID"),
    ],
)
def test_an_assertion_with_a_wrong_claim_is_refused(env: Env, claims: dict[str, Any], expected: str) -> None:
    status, code, description = oauth(env.grant(env.assertion(**claims)))
    assert (status, code) == (400, "invalid_grant")
    assert description.startswith(expected)


def test_a_suspended_subject_cannot_be_impersonated(env: Env) -> None:
    env.sim.update_user("admin@acme.example", suspended=True)
    assert oauth(env.grant())[2] == "Invalid email or User ID"


def test_scopes_not_delegated_to_the_client_id_are_unauthorized_client(env: Env) -> None:
    env.sim.delegate([USER_READONLY])
    status, code, _ = oauth(env.grant())
    assert (status, code) == (401, "unauthorized_client")
    assert env.grant(env.assertion(scope=USER_READONLY)).status_code == 200


def test_the_grant_type_and_the_scope_are_required(env: Env) -> None:
    assert oauth(env.grant(grant_type="client_credentials"))[:2] == (400, "unsupported_grant_type")
    assert oauth(env.grant(env.assertion(scope=" ")))[:2] == (400, "invalid_scope")
    assert oauth(env.grant("not.a-jwt"))[:2] == (400, "invalid_grant")


# --- authorising API calls ----------------------------------------------------------------


def test_no_token_and_an_unknown_token_are_401_with_google_bodies(env: Env) -> None:
    bare = requests.get(env.url + API + "/users", params={"customer": "my_customer"}, timeout=5)
    assert error(bare) == (401, "required", "UNAUTHENTICATED")
    unknown = env.get("/users", "ya29.made-up", customer="my_customer")
    assert error(unknown) == (401, "authError", "UNAUTHENTICATED")
    assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]


def test_a_token_expires_after_its_lifetime_and_on_demand(env: Env) -> None:
    token = env.token()
    env.clock.now += 3598
    assert env.get("/users", token, customer="my_customer").status_code == 200
    env.clock.now += 1
    assert error(env.get("/users", token, customer="my_customer"))[:2] == (401, "authError")
    fresh = env.token()
    env.sim.expire_tokens()
    assert env.get("/users", fresh, customer="my_customer").status_code == 401


def test_tokens_expire_after_a_number_of_pages_of_users(env: Env) -> None:
    for n in range(5):
        env.sim.add_user(f"u{n}@acme.example", "U", str(n))
    token = env.token()
    env.sim.expire_tokens_after(2)
    first = env.get("/users", token, customer="my_customer", maxResults=2)
    second = env.get(
        "/users", token, customer="my_customer", maxResults=2, pageToken=first.json()["nextPageToken"]
    )
    assert second.status_code == 200
    assert env.get("/users", token, customer="my_customer").status_code == 401


def test_only_an_admin_subject_may_read_and_a_token_without_subject_is_no_admin(env: Env) -> None:
    env.sim.add_user("clerk@acme.example", "Cy", "Clerk")
    assert error(env.get("/users", env.token(sub="clerk@acme.example"), customer="my_customer")) == (
        403,
        "forbidden",
        "PERMISSION_DENIED",
    )
    assert env.get("/users", env.token(sub=None), customer="my_customer").status_code == 403


def test_a_token_without_the_group_scope_cannot_list_groups(env: Env) -> None:
    token = env.token(scope=USER_READONLY)
    assert env.get("/users", token, customer="my_customer").status_code == 200
    assert error(env.get("/groups", token, customer="my_customer"))[:2] == (403, "insufficientPermissions")


def test_an_unknown_path_is_an_html_404(env: Env) -> None:
    response = env.get("/userz", customer="my_customer")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")


# --- lists and paging (§3.2, §3.5) -------------------------------------------------------


def walk(env: Env, path: str, field: str, **params: Any) -> list[list[dict[str, Any]]]:
    token, pages, query = env.token(), [], dict(params)
    while True:
        body = env.get(path, token, **query).json()
        pages.append(body.get(field, []))
        if "nextPageToken" not in body:
            return pages
        query["pageToken"] = body["nextPageToken"]


def test_users_page_at_up_to_500_and_refuse_more_or_none(env: Env) -> None:
    for n in range(1200):
        env.sim.add_user(f"p{n:04d}@acme.example", "P", str(n))
    pages = walk(env, "/users", "users", customer="my_customer", maxResults=500)
    assert [len(p) for p in pages] == [500, 500, 201]
    emails = [u["primaryEmail"] for page in pages for u in page]
    assert len(set(emails)) == 1201
    assert len(walk(env, "/users", "users", customer="my_customer")[0]) == 100  # the default
    for size in (501, 0, "ten"):
        answer = env.get("/users", customer="my_customer", maxResults=size)
        assert error(answer)[:2] == (400, "invalid")


def test_a_list_needs_customer_or_domain_and_refuses_another_customer(env: Env) -> None:
    assert error(env.get("/users"))[:2] == (400, "badRequest")
    assert env.get("/users", customer="C0sim0001").status_code == 200
    assert env.get("/users", domain="acme.example").status_code == 200
    assert error(env.get("/users", customer="C0other"))[:2] == (403, "forbidden")
    assert error(env.get("/groups"))[:2] == (400, "badRequest")


def test_a_page_token_belongs_to_its_list_and_expires_after_three_days(env: Env) -> None:
    for n in range(3):
        env.sim.add_user(f"p{n}@acme.example", "P", str(n))
    token = env.token()
    page = env.get("/users", token, customer="my_customer", maxResults=2).json()["nextPageToken"]
    other_list = env.get(
        "/users", token, customer="my_customer", maxResults=2, pageToken=page, orderBy="email"
    )
    assert error(other_list)[:2] == (400, "invalid")
    assert env.get("/users", token, customer="my_customer", maxResults=2, pageToken=page).status_code == 200
    env.wall.now += 3 * 24 * 3600 + 1
    assert env.get("/users", token, customer="my_customer", maxResults=2, pageToken=page).status_code == 400


def test_show_deleted_lists_only_deleted_users(env: Env) -> None:
    env.sim.add_user("gone@acme.example", "Gone", "Away")
    env.sim.add_user("here@acme.example", "Still", "Here")
    env.sim.delete_user("gone@acme.example")
    listed = [u["primaryEmail"] for u in env.get("/users", customer="my_customer").json()["users"]]
    deleted = env.get("/users", customer="my_customer", showDeleted="true").json()["users"]
    assert "gone@acme.example" not in listed and "here@acme.example" in listed
    assert [u["primaryEmail"] for u in deleted] == ["gone@acme.example"]
    assert env.get("/users/gone@acme.example").status_code == 404


def test_users_show_suspension_archiving_and_custom_schemas_only_in_full_projection(env: Env) -> None:
    env.sim.add_user("s@acme.example", "S", "S", suspended=True, customSchemas={"HR": {"costCenter": "42"}})
    env.sim.add_user("a@acme.example", "A", "A", archived=True)
    users = {u["primaryEmail"]: u for u in env.get("/users", customer="my_customer").json()["users"]}
    assert (users["s@acme.example"]["suspended"], users["s@acme.example"]["suspensionReason"]) == (
        True,
        "ADMIN",
    )
    assert "suspensionReason" not in users["a@acme.example"] and users["a@acme.example"]["archived"] is True
    assert "customSchemas" not in users["s@acme.example"]  # projection=basic is the default
    full = env.get("/users/s@acme.example", projection="full").json()
    assert full["customSchemas"] == {"HR": {"costCenter": "42"}}
    assert error(env.get("/users", customer="my_customer", projection="custom"))[:2] == (400, "badRequest")


def test_groups_and_members_page_at_up_to_200(env: Env) -> None:
    ids = [env.sim.add_user(f"m{n:03d}@acme.example", "M", str(n)) for n in range(450)]
    for n in range(201):
        env.sim.add_group(f"g{n:03d}")
    big = env.sim.add_group("big", members=ids)
    assert [len(p) for p in walk(env, "/groups", "groups", customer="my_customer", maxResults=200)] == [
        200,
        2,
    ]
    assert [len(p) for p in walk(env, f"/groups/{big}/members", "members")] == [200, 200, 50]
    assert error(env.get("/groups", customer="my_customer", maxResults=201))[:2] == (400, "invalid")
    assert error(env.get(f"/groups/{big}/members", maxResults=201))[:2] == (400, "invalid")
    group = env.get("/groups", customer="my_customer", maxResults=1).json()["groups"][0]
    assert group["directMembersCount"] == "0" and group["kind"] == "admin#directory#group"


def test_an_empty_group_leaves_members_out_and_an_unknown_group_is_404(env: Env) -> None:
    empty = env.sim.add_group("empty")
    body = env.get(f"/groups/{empty}/members").json()
    assert body["kind"] == "admin#directory#members" and "members" not in body
    assert error(env.get("/groups/nope@acme.example/members")) == (404, "notFound", "NOT_FOUND")


def test_members_show_types_and_derived_membership_adds_nested_users_once(env: Env) -> None:
    ana = env.sim.add_user("ana@acme.example", "Ana", "A")
    bo = env.sim.add_user("bo@acme.example", "Bo", "B", suspended=True)
    inner = env.sim.add_group("inner", members=[bo])
    outer = env.sim.add_group("outer", members=[ana], children=[inner])
    env.sim.add_member(inner, outer)  # a cycle
    env.sim.add_customer_member(outer)
    direct = env.get(f"/groups/{outer}/members").json()["members"]
    assert [(m["type"], m.get("email")) for m in direct] == [
        ("USER", "ana@acme.example"),
        ("GROUP", "inner@acme.example"),
        ("CUSTOMER", None),
    ]
    derived = env.get(f"/groups/{outer}/members", includeDerivedMembership="true").json()["members"]
    assert sorted(m["id"] for m in derived if m["type"] == "USER") == sorted([ana, bo])
    assert next(m for m in derived if m["id"] == bo)["status"] == "SUSPENDED"


# --- faults and limits -------------------------------------------------------------------


def test_the_quota_answers_403_user_rate_limit_exceeded_until_the_minute_is_over(env: Env) -> None:
    env.sim.quota_per_minute = 3
    token = env.token()
    assert [env.get("/users", token, customer="my_customer").status_code for _ in range(3)] == [200] * 3
    over = env.get("/users", token, customer="my_customer")
    assert error(over) == (403, "userRateLimitExceeded", "PERMISSION_DENIED")
    assert over.json()["error"]["errors"][0]["domain"] == "usageLimits"
    env.clock.now += 60
    assert env.get("/users", token, customer="my_customer").status_code == 200


def test_injected_faults_use_google_bodies_and_429_carries_only_retry_after(env: Env) -> None:
    token = env.token()
    env.sim.faults.inject(503, path=API + "/users")
    assert error(env.get("/users", token, customer="my_customer"))[:2] == (503, "backendError")
    env.sim.faults.rate_limit(1, retry_after=4)
    limited = env.get("/users", token, customer="my_customer")
    assert error(limited)[:2] == (429, "rateLimitExceeded")
    assert limited.headers["Retry-After"] == "4"
    assert not [h for h in limited.headers if h.lower().startswith("x-ratelimit")]


def test_one_page_can_be_broken_or_tampered_with_and_its_answers_are_logged(env: Env) -> None:
    for n in range(5):
        env.sim.add_user(f"p{n}@acme.example", "P", str(n))
    env.sim.break_page("users", 2, 503, times=1, retry_after=3)
    env.sim.tamper_page("users", 3, lambda body: b'{"kind": "admin#dir')
    token = env.token()
    first = env.get("/users", token, customer="my_customer", maxResults=2).json()
    again = {"customer": "my_customer", "maxResults": 2, "pageToken": first["nextPageToken"]}
    broken = env.get("/users", token, **again)
    assert broken.status_code == 503 and broken.headers["Retry-After"] == "3"
    second = env.get("/users", token, **again)
    assert second.status_code == 200
    third = env.get("/users", token, **{**again, "pageToken": second.json()["nextPageToken"]})
    assert third.text == '{"kind": "admin#dir'
    assert env.sim.answers("users", 2) == [503, 200]


# --- seeding -------------------------------------------------------------------------------


def test_seed_company_creates_people_groups_and_returns_the_admin(env: Env, tmp_path: Path) -> None:
    sim = GoogleSim(key_bits=1024)
    people = make_people(40)
    people[3]["active"] = False
    admin = sim.seed_company(people)
    assert admin == people[0]["email"]
    assert sim.user(people[3]["email"]) is not None and sim.user(people[3]["email"]).suspended  # type: ignore[union-attr]
    names = {g.name: g for g in sim.directory.groups.values()}
    assert set(names) == {name for p in people for name in p["groups"]}
    engineering = {sim.directory.users[m].primary_email for m in names["engineering"].members}
    assert engineering == {p["email"] for p in people if "engineering" in p["groups"]}
    path = sim.write_credentials_file(tmp_path / "sa.json", "http://127.0.0.1:1/token")
    info = json.loads(path.read_text())
    assert path.stat().st_mode & 0o777 == 0o600
    assert info["type"] == "service_account" and info["token_uri"] == "http://127.0.0.1:1/token"
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----")


def test_a_user_outside_the_customers_domains_cannot_be_seeded() -> None:
    with pytest.raises(ValueError, match="not in a domain"):
        GoogleSim().add_user("someone@elsewhere.example", "S", "E")
