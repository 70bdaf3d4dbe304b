"""The google source against its simulator over loopback: whole reads, statuses, nesting, tokens, failures."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
import yaml
from click.testing import CliRunner

import scimsync.http.client
import scimsync.sources.google as google_source
from scimsync.cli import cli
from scimsync.config import Config, GoogleSourceConfig, parse_config
from scimsync.errors import AuthError, ConnectorError, ResponseError
from scimsync.http import HttpSettings
from scimsync.models import SourceDirectory
from scimsync.sim.google import GoogleSim
from scimsync.sim.google_oauth import USER_READONLY
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer
from scimsync.sources import build_source
from scimsync.sources.google import GoogleSource

API = "/admin/directory/v1"
RETRIES = 2
JIRA_TOKEN = "google-e2e-jira-token"
EMPTY = "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes."


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """A simulator on loopback, its key file, and what the HTTP layer waited."""

    sim: GoogleSim
    url: str
    folder: Path
    slept: list[float]
    admin: str = "p000@acme.example"
    block: dict[str, Any] = field(default_factory=dict)

    def full_config(self, *, timeout: float = 5, **changes: Any) -> Config:
        """Parse a config reading the simulator, with ``changes`` to the source block."""
        data = {
            "version": 1,
            "source": {**self.block, **changes},
            "targets": _jira_target("http://127.0.0.1:9"),
            "http": {"retries": RETRIES, "timeout": timeout},
        }
        return parse_config(data, base_dir=self.folder, env={})

    def config(self, **changes: Any) -> GoogleSourceConfig:
        source = self.full_config(**changes).source
        assert isinstance(source, GoogleSourceConfig)
        return source

    def read(self, *, timeout: float = 5, **changes: Any) -> SourceDirectory:
        source = build_source(self.full_config(timeout=timeout, **changes))
        try:
            return source.read()
        finally:
            source.close()

    def failure(self, **changes: Any) -> ConnectorError:
        with pytest.raises(ConnectorError) as caught:
            self.read(**changes)
        message = str(caught.value)
        assert message.startswith("source: ") and "\n" not in message, message
        assert "PRIVATE KEY" not in message and "ya29." not in message
        return caught.value

    def requests_to(self, path: str) -> list[dict[str, str]]:
        return [e.query for e in self.sim.log.entries if e.path == API + path]


def _jira_target(url: str) -> dict[str, Any]:
    return {"jira": {"type": "jira", "url": url, "token": JIRA_TOKEN}}


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(scimsync.http.client, "_sleep", waits.append)
    return waits


def make_world(tmp_path: Path, slept: list[float], **sim_args: Any) -> Iterator[World]:
    sim = GoogleSim(key_bits=1024, **sim_args)
    with SimServer(sim.app) as server:
        path = sim.write_credentials_file(tmp_path / "sa.json", f"{server.url}/token")
        world = World(sim, server.url, tmp_path, slept)
        world.block = {
            "type": "google",
            "credentials_file": path.name,  # relative to the config's folder (SPEC §3)
            "subject": world.admin,
            "url": server.url,
            "token_url": f"{server.url}/token",
        }
        yield world


@pytest.fixture
def world(tmp_path: Path, slept: list[float]) -> Iterator[World]:
    """A simulator serving 100 items a page, whatever maxResults asks."""
    yield from make_world(tmp_path, slept, page_limit=100)


# --- the seeded directory and what it must read as ----------------------------------------

STATUS = {9: "suspended", 8: "archived", 7: "both"}  # by i % 10; the rest are active
COUNT = 350


def seed_company(sim: GoogleSim) -> None:
    """Seed p000..p349 (p000 the admin), groups, nesting (with a cycle) and a CUSTOMER member."""
    for i in range(COUNT):
        status = STATUS.get(i % 10, "active")
        sim.add_user(
            f"p{i:03d}@acme.example",
            f"Given{i}",
            f"Family{i}",
            suspended=status in ("suspended", "both"),
            archived=status in ("archived", "both"),
            admin=i == 0,
        )
    sim.add_group("even", members=[f"p{i:03d}@acme.example" for i in range(0, COUNT, 2)])
    sim.add_group("odd", members=[f"p{i:03d}@acme.example" for i in range(1, COUNT, 2)])
    sim.add_group("staff", children=["even", "odd"])
    sim.add_group("ring-a", members=["p010@acme.example"])
    sim.add_group("ring-b", members=["p011@acme.example"], children=["ring-a"])
    sim.add_member("ring-a", "ring-b")
    sim.add_group("everyone")
    sim.add_customer_member("everyone")
    sim.add_group("empty")


def expected_groups(i: int) -> set[str]:
    """Return the groups p<i> is in, written from the seed above."""
    groups = {"even" if i % 2 == 0 else "odd", "staff", "everyone"}
    if i in (10, 11):
        groups |= {"ring-a", "ring-b"}
    return groups


def test_a_few_hundred_users_over_four_pages_are_read_exactly_as_seeded(world: World) -> None:
    seed_company(world.sim)
    directory = world.read()
    assert len(directory.users) == COUNT
    for user in directory.users:
        i = int(user.username[1:4])
        assert user.email == user.username == f"p{i:03d}@acme.example"
        assert (user.first_name, user.last_name, user.display_name) == (
            f"Given{i}",
            f"Family{i}",
            f"Given{i} Family{i}",
        )
        assert user.active == (i % 10 not in STATUS), user
        assert set(user.groups) == expected_groups(i), user
    members = {g.name: len(g.member_ids) for g in directory.groups}
    assert members == {
        "even": 175,
        "odd": 175,
        "staff": 350,
        "ring-a": 2,
        "ring-b": 2,
        "everyone": 350,
        "empty": 0,
    }
    # Every page at the largest size the API serves (§3.2, §3.5), over four pages of users.
    users = world.requests_to("/users")
    assert len(users) == 4 and all(q["maxResults"] == "500" and q["customer"] == "my_customer" for q in users)
    assert all(q["projection"] == "full" for q in users)
    assert [q["maxResults"] for q in world.requests_to("/groups")] == ["200"]
    member_lists = [e.query for e in world.sim.log.entries if e.path.endswith("/members")]
    # Seven groups, and a second page for even and odd (175 members each at 100 a page).
    assert sorted("pageToken" in q for q in member_lists) == [False] * 7 + [True] * 2
    assert all(q["maxResults"] == "200" for q in member_lists)


def test_every_status_is_mapped_as_spec_section_4_says(world: World) -> None:
    sim = world.sim
    sim.add_user("p000@acme.example", "Ada", "Admin", admin=True)
    sim.add_user("suspended@acme.example", "S", "S", suspended=True)
    sim.add_user("archived@acme.example", "A", "A", archived=True)
    sim.add_user("both@acme.example", "B", "B", suspended=True, archived=True)
    # A password to change at next login is a temporary state: still active (SPEC §4).
    sim.add_user("newpass@acme.example", "N", "N", changePasswordAtNextLogin=True)
    active = {u.email: u.active for u in world.read().users}
    assert active == {
        "p000@acme.example": True,
        "suspended@acme.example": False,
        "archived@acme.example": False,
        "both@acme.example": False,
        "newpass@acme.example": True,
    }


def test_the_raw_profile_is_in_attributes_and_names_in_any_script_are_kept(world: World) -> None:
    world.sim.add_user(
        "p000@acme.example",
        "Zo\u200bë",
        "Ørsted",
        admin=True,
        full_name="Zoë Ørsted",
        customSchemas={"HR": {"costCenter": "42"}},
        organizations=[{"department": "設計", "primary": True}],
    )
    world.sim.add_user("li@acme.example", "小龍", "李")
    world.sim.add_group("Équipe Ünïcode", members=["p000@acme.example", "li@acme.example"])
    users = {u.email: u for u in world.read().users}
    zoe, li = users["p000@acme.example"], users["li@acme.example"]
    assert (zoe.first_name, zoe.display_name, li.display_name) == ("Zoë", "Zoë Ørsted", "小龍 李")
    assert zoe.groups == li.groups == ("Équipe Ünïcode",)
    assert zoe.attributes["customSchemas"] == {"HR": {"costCenter": "42"}}
    assert zoe.attributes["organizations"][0]["department"] == "設計"
    assert zoe.attributes["customerId"] == "C0sim0001"
    assert not {"kind", "etag", "password"} & set(zoe.attributes)


# --- tokens --------------------------------------------------------------------------------


def test_a_token_that_expires_mid_read_is_refreshed_and_the_read_goes_on(world: World) -> None:
    seed_company(world.sim)
    world.sim.expire_tokens_after(2)
    directory = world.read()
    assert len(directory.users) == COUNT
    assert world.sim.grants == 2
    assert [e.status for e in world.sim.log.entries].count(401) == 1


def test_a_token_is_renewed_before_it_expires_without_a_401(tmp_path: Path, slept: list[float]) -> None:
    for world in make_world(tmp_path, slept, token_lifetime=300):
        world.sim.add_user(world.admin, "Ada", "Admin", admin=True)
        clock = Clock()
        source = GoogleSource("source", world.config(), HttpSettings(retries=0, timeout=5), clock=clock)
        try:
            source.read()
            clock.now += 239  # 61 s before expiry: the cached token is still good
            source.read()
            assert world.sim.grants == 1
            clock.now += 1  # within a minute of expiry: fetched again (http/tokens REFRESH_MARGIN)
            source.read()
        finally:
            source.close()
        assert world.sim.grants == 2
        assert 401 not in [e.status for e in world.sim.log.entries]


# --- rate limits ---------------------------------------------------------------------------


def test_a_429_with_retry_after_is_waited_out(world: World) -> None:
    seed_company(world.sim)
    world.sim.break_page("users", 2, 429, times=1, retry_after=7)
    assert len(world.read().users) == COUNT
    assert world.sim.answers("users", 2) == [429, 200]
    assert 7.0 in world.slept


def test_the_quota_403_user_rate_limit_exceeded_is_backed_off_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()

    def wait(seconds: float) -> None:  # the simulator's minute passes while the client waits
        clock.now += seconds

    monkeypatch.setattr(scimsync.http.client, "_sleep", wait)
    for world in make_world(tmp_path, [], page_limit=100, quota_per_minute=5, clock=clock):
        seed_company(world.sim)
        # The default timeout (30 s) gives a rate-limited request 300 s of waits in all.
        assert len(world.read(timeout=30).users) == COUNT
        statuses = [e.status for e in world.sim.log.entries if e.path.startswith(API)]
        assert statuses.count(403) >= 1 and statuses.count(200) == 14


# --- refusals ------------------------------------------------------------------------------


def _wrong_key(world: World) -> dict[str, Any]:
    other = GoogleSim(key_bits=1024).credentials_info(world.block["token_url"])
    info = {**json.loads((world.folder / "sa.json").read_text()), "private_key": other["private_key"]}
    (world.folder / "other.json").write_text(json.dumps(info))
    return {"credentials_file": "other.json"}


def _not_admin(world: World) -> dict[str, Any]:
    world.sim.add_user("clerk@acme.example", "C", "C")
    return {"subject": "clerk@acme.example"}


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (_wrong_key, "token refused: invalid_grant: Invalid JWT Signature.; check source.credentials_file"),
        (lambda w: {"subject": "nobody@acme.example"}, "Invalid email or User ID; check source.subject"),
        (lambda w: w.sim.delegate([USER_READONLY]) or {}, "unauthorized_client"),
        (_not_admin, "GET /groups page 1: HTTP 403 Forbidden: Not Authorized to access this resource/api"),
    ],
    ids=["wrong key", "unknown subject", "scopes not delegated", "subject not an admin"],
)
def test_a_refused_credential_is_one_line_naming_what_to_check(
    world: World, breakage: Callable[[World], dict[str, Any]], expected: str
) -> None:
    world.sim.add_user(world.admin, "Ada", "Admin", admin=True)
    error = world.failure(**breakage(world))
    assert isinstance(error, AuthError)
    assert expected in str(error)
    assert "check source." in str(error) or "Domain-wide delegation" in str(error)


def test_scopes_not_delegated_name_the_scopes_and_where_to_delegate(world: World) -> None:
    world.sim.add_user(world.admin, "Ada", "Admin", admin=True)
    world.sim.delegate([USER_READONLY])
    message = str(world.failure())
    assert "admin.directory.group.readonly" in message and "Domain-wide delegation" in message


def test_a_key_revoked_after_the_token_was_issued_fails_at_the_refresh(world: World) -> None:
    world.sim.add_user(world.admin, "Ada", "Admin", admin=True)
    source = build_source(world.full_config())
    try:
        source.read()
        world.sim.revoke_key()
        world.sim.expire_tokens()
        with pytest.raises(AuthError, match="Invalid JWT Signature"):
            source.read()
    finally:
        source.close()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read it"),
        ("{not json", "not a JSON key file"),
        (
            json.dumps({"type": "authorized_user", "client_id": "x"}),
            "not a service-account key (type 'authorized_user')",
        ),
        (json.dumps({"type": "service_account", "client_email": "a@b"}), "the key file has no private_key"),
        (
            json.dumps(
                {
                    "type": "service_account",
                    "client_email": "a@b",
                    "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n",
                }
            ),
            "its private_key is not a valid RSA key",
        ),
    ],
)
def test_a_bad_credentials_file_is_one_line_naming_the_file(
    world: World, content: str | None, expected: str
) -> None:
    path = world.folder / "bad.json"
    if content is not None:
        path.write_text(content)
    message = str(world.failure(credentials_file="bad.json"))
    assert f"source: credentials_file {path}: {expected}" in message


def test_a_token_url_that_answers_html_or_nothing_says_to_check_it(world: World) -> None:
    world.sim.add_user(world.admin, "Ada", "Admin", admin=True)
    html = str(world.failure(token_url=world.url + "/oauth/token"))
    assert "did not answer with OAuth JSON" in html and "check source.token_url" in html
    closed = str(world.failure(token_url="http://127.0.0.1:9/token"))
    assert "source: token endpoint: cannot reach http://127.0.0.1:9/token: connection refused" in closed


def test_a_wrong_api_url_says_to_check_source_url(world: World) -> None:
    world.sim.add_user(world.admin, "Ada", "Admin", admin=True)
    message = str(world.failure(url=world.url + "/google"))
    assert "source: GET /groups page 1: HTTP 404" in message and "check source.url" in message


# --- reads that fail part-way ----------------------------------------------------------------


def test_a_page_that_keeps_failing_aborts_the_read_naming_the_page(world: World) -> None:
    seed_company(world.sim)
    # A 502 counts against http.retries (a 503 is waited out on a time budget instead).
    world.sim.break_page("users", 2, 502)
    error = world.failure()
    assert str(error).startswith("source: GET /users page 2: HTTP 502 Bad Gateway"), str(error)
    assert world.sim.answers("users", 2) == [502] * (RETRIES + 1)


def test_a_members_page_that_keeps_failing_names_the_group_and_page(world: World) -> None:
    seed_company(world.sim)
    world.sim.break_page("members", 2, 500, group="even")
    assert str(world.failure()).startswith("source: GET /groups/even@acme.example/members page 2: HTTP 500")


def _repeat_token() -> Callable[[dict[str, Any]], Any]:
    tokens: list[str] = []

    def change(body: dict[str, Any]) -> Any:
        # Page 1's token again on page 2; after a few rounds the real one, so that a source
        # without a loop check ends (and fails the test) instead of hanging it.
        tokens.append(body["nextPageToken"])
        return {**body, "nextPageToken": tokens[0]} if len(tokens) < 5 else body

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda body: json.dumps(body).encode()[:200], "GET /users page 2: expected JSON"),
        (
            lambda body: {**body, "kind": "admin#directory#groups"},
            "GET /users page 2: expected a page of kind",
        ),
        (lambda body: {"kind": body["kind"], "users": "none"}, "GET /users page 2: users is not a list"),
        (lambda body: {**body, "users": [*body["users"], body["users"][0]]}, "listed twice"),
        (
            lambda body: {
                **body,
                "users": [{k: v for k, v in body["users"][0].items() if k != "primaryEmail"}],
            },
            "an active user without a primaryEmail",
        ),
        (
            lambda body: {**body, "users": [{**body["users"][0], "suspended": "no"}]},
            "suspended is not true or false",
        ),
    ],
    ids=["truncated", "another kind", "not a list", "user twice", "no primaryEmail", "bad flag"],
)
def test_a_malformed_page_aborts_the_read_naming_it(
    world: World, change: Callable[..., Any], expected: str
) -> None:
    seed_company(world.sim)
    world.sim.tamper_page("users", 2, change)
    error = world.failure()
    assert isinstance(error, ResponseError) and expected in str(error), error


def test_a_page_token_sent_twice_is_a_pagination_loop(world: World) -> None:
    seed_company(world.sim)
    repeat = _repeat_token()
    world.sim.tamper_page("users", 1, repeat)
    world.sim.tamper_page("users", 2, repeat)
    assert "GET /users page 2: pagination loop" in str(world.failure())


def test_a_member_of_an_unknown_type_is_an_error_naming_the_group(world: World) -> None:
    seed_company(world.sim)
    world.sim.tamper_page(
        "members", 1, lambda body: {**body, "members": [{"id": "x1", "type": "ROBOT"}]}, group="odd"
    )
    assert "GET /groups/odd@acme.example/members page 1: member 'x1' has the type 'ROBOT'" in str(
        world.failure()
    )


def test_an_inactive_user_without_an_address_is_read_with_what_it_has(world: World) -> None:
    world.sim.add_user(world.admin, "Ada", "Admin", admin=True)
    gone = world.sim.add_user("gone@acme.example", "Gone", "Away", suspended=True)
    world.sim.tamper_page(
        "users",
        1,
        lambda body: {
            **body,
            "users": [{**u, "primaryEmail": ""} if u["id"] == gone else u for u in body["users"]],
        },
    )
    user = next(u for u in world.read().users if u.id == gone)
    assert (user.username, user.email, user.active, user.display_name) == ("", "", False, "Gone Away")


def test_two_groups_of_one_name_are_refused(world: World) -> None:
    world.sim.add_user(world.admin, "Ada", "Admin", admin=True)
    world.sim.add_group("Sales", email="sales@acme.example")
    world.sim.add_group("Sales", email="sales-emea@acme.example")
    assert "group sales-emea@acme.example: has the name 'Sales' of group sales@acme.example" in str(
        world.failure()
    )


# --- scoping and nesting -----------------------------------------------------------------------


def test_include_groups_reads_only_the_scoped_people_one_by_one(world: World) -> None:
    seed_company(world.sim)
    directory = world.read(include_groups=["ring-*"])
    assert {u.email for u in directory.users} == {"p010@acme.example", "p011@acme.example"}
    assert world.requests_to("/users") == []  # no list: nobody out of scope is read
    singles = sorted(e.path for e in world.sim.log.entries if e.path.startswith(API + "/users/"))
    assert len(singles) == 2
    assert {u.email: set(u.groups) for u in directory.users}["p010@acme.example"] == expected_groups(10)


def test_include_groups_reads_the_list_when_a_customer_member_or_many_people_are_in_scope(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_company(world.sim)
    assert len(world.read(include_groups=["everyone"]).users) == COUNT
    monkeypatch.setattr(google_source, "DETAIL_READS_MAX", 1)
    world.sim.log.clear()
    assert len(world.read(include_groups=["ring-a"]).users) == COUNT
    assert world.requests_to("/users") and not [
        e for e in world.sim.log.entries if e.path.startswith(API + "/users/")
    ]


def test_a_scoped_member_who_is_no_user_of_the_customer_is_skipped(world: World) -> None:
    seed_company(world.sim)
    world.sim.tamper_page(
        "members",
        1,
        lambda body: {
            **body,
            "members": [*body["members"], {"id": "999", "type": "USER", "email": "x@gmail.com"}],
        },
        group="ring-a",
    )
    assert {u.email for u in world.read(include_groups=["ring-a"]).users} == {
        "p010@acme.example",
        "p011@acme.example",
    }


def test_a_nested_group_that_the_list_left_out_is_still_walked(world: World) -> None:
    seed_company(world.sim)
    world.sim.tamper_page(
        "groups", 1, lambda body: {**body, "groups": [g for g in body["groups"] if g["name"] != "ring-b"]}
    )
    directory = world.read()
    assert "ring-b" not in {g.name for g in directory.groups}
    assert {u.email: set(u.groups) for u in directory.users}["p011@acme.example"] >= {"ring-a"}


# --- check, and a whole run --------------------------------------------------------------------


def test_check_reads_one_user_and_one_group(world: World) -> None:
    seed_company(world.sim)
    source = build_source(world.full_config())
    try:
        assert source.check() == "Google Workspace customer C0sim0001, read as p000@acme.example"
        assert [q["maxResults"] for q in world.requests_to("/users") + world.requests_to("/groups")] == [
            "1",
            "1",
        ]
    finally:
        source.close()


def test_apply_into_jira_creates_the_scoped_people_and_then_converges(world: World) -> None:
    seed_company(world.sim)
    jira = JiraSim("10.3.1", token=JIRA_TOKEN)
    with SimServer(jira.app) as server:
        config = {
            "version": 1,
            "source": {**world.block, "include_groups": ["ring-*"]},
            "mapping": {
                "username": "{{ user.email | localpart }}",
                "email": "{{ user.email }}",
                "display_name": "{{ user.display_name }}",
            },
            "targets": {
                "jira": {
                    "type": "jira",
                    "url": server.url,
                    "token": JIRA_TOKEN,
                    "groups": [{"from": "ring-*", "to": "j-{{ group.name }}"}],
                }
            },
            "audit_log": "audit.jsonl",
            "lock_file": "run.lock",
            "state_file": "state.json",
            "http": {"retries": RETRIES, "timeout": 5},
        }
        path = world.folder / "scimsync.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        first = CliRunner().invoke(cli, ["-c", str(path), "apply", "-y"], catch_exceptions=False)
        assert first.exit_code == 0, first.output
        assert {u.name for u in jira.directory.users.values()} - {"admin"} == {"p010", "p011"}
        assert jira.members("j-ring-a") == jira.members("j-ring-b") == {"p010", "p011"}
        jira.log.clear()
        again = CliRunner().invoke(
            cli, ["-c", str(path), "plan", "--detailed-exitcode"], catch_exceptions=False
        )
        assert again.exit_code == 0, again.output
        assert EMPTY in again.stdout
        assert jira.log.writes() == []


# --- exact request shapes, with responses -------------------------------------------------------

GOOGLE_API = "https://admin.googleapis.com/admin/directory/v1"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"


def _list(field: str, items: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": f"admin#directory#{field}", "etag": '"e"', **more}
    if items:
        body[field] = items
    return body


def _google_error(status: int, message: str, reason: str) -> dict[str, Any]:
    errors = [{"message": message, "domain": "global", "reason": reason}]
    return {"error": {"code": status, "message": message, "errors": errors, "status": "PERMISSION_DENIED"}}


@pytest.fixture
def mocked(tmp_path: Path, slept: list[float]) -> Iterator[tuple[responses.RequestsMock, GoogleSource, Path]]:
    """A source on Google's real URLs with responses; its key file, and a CA bundle path."""
    info = GoogleSim(key_bits=1024).credentials_info(GOOGLE_TOKEN)
    (tmp_path / "sa.json").write_text(json.dumps(info))
    (tmp_path / "ca.pem").write_text("not used: responses answers before TLS")
    data = {
        "version": 1,
        "source": {
            "type": "google",
            "credentials_file": "sa.json",
            "subject": "ada@acme.example",
            "customer": "C123",
        },
        "targets": _jira_target("http://127.0.0.1:9"),
    }
    config = parse_config(data, base_dir=tmp_path, env={})
    assert isinstance(config.source, GoogleSourceConfig)
    settings = HttpSettings(timeout=12, retries=1, ca_bundle=str(tmp_path / "ca.pem"))
    source = GoogleSource("source", config.source, settings)
    with responses.RequestsMock() as rsps:
        rsps.post(
            GOOGLE_TOKEN, json={"access_token": "ya29.mocked", "expires_in": 3599, "token_type": "Bearer"}
        )
        yield rsps, source, tmp_path
    source.close()


def _decode(segment: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


def test_the_grant_is_a_jwt_for_the_subject_and_the_two_read_only_scopes(
    mocked: tuple[responses.RequestsMock, GoogleSource, Path],
) -> None:
    rsps, source, folder = mocked
    user = {
        "kind": "admin#directory#user",
        "id": "1",
        "primaryEmail": "ada@acme.example",
        "customerId": "C123",
    }
    rsps.get(f"{GOOGLE_API}/users", json=_list("users", [user]))
    rsps.get(f"{GOOGLE_API}/groups", json=_list("groups", []))
    assert source.check() == "Google Workspace customer C123, read as ada@acme.example"
    grant = rsps.calls[0]
    body = grant.request.body
    form = parse_qs(body.decode() if isinstance(body, bytes) else str(body))
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    header, claims, _ = form["assertion"][0].split(".")
    info = json.loads((folder / "sa.json").read_text())
    assert _decode(header) == {"alg": "RS256", "typ": "JWT", "kid": info["private_key_id"]}
    payload = _decode(claims)
    assert (payload["iss"], payload["sub"], payload["aud"]) == (
        info["client_email"],
        "ada@acme.example",
        GOOGLE_TOKEN,
    )
    assert payload["scope"].split() == [
        "https://www.googleapis.com/auth/admin.directory.user.readonly",
        "https://www.googleapis.com/auth/admin.directory.group.readonly",
    ]
    assert payload["exp"] - payload["iat"] == 3600
    # TLS is verified with http.ca_bundle and the timeout is http.timeout, for the token too.
    for call in rsps.calls:
        kwargs = call.request.req_kwargs  # type: ignore[attr-defined]
        assert (kwargs["verify"], kwargs["timeout"]) == (str(folder / "ca.pem"), 12)
    api = rsps.calls[1].request
    assert api.headers["Authorization"] == "Bearer ya29.mocked"
    assert parse_qs(urlsplit(str(api.url)).query) == {"customer": ["C123"], "maxResults": ["1"]}


def test_a_read_asks_for_the_largest_pages_and_accepts_pages_without_their_list(
    mocked: tuple[responses.RequestsMock, GoogleSource, Path],
) -> None:
    rsps, source, _ = mocked
    ada = {"kind": "admin#directory#user", "id": "1", "primaryEmail": "ada@acme.example", "suspended": False}
    group = {"kind": "admin#directory#group", "id": "g1", "email": "team@acme.example", "name": "Team"}
    rsps.get(f"{GOOGLE_API}/groups", json=_list("groups", [group]))
    rsps.get(f"{GOOGLE_API}/groups/g1/members", json=_list("members", []))  # an empty group: no members
    rsps.get(f"{GOOGLE_API}/users", json=_list("users", [ada], nextPageToken="t2"))
    rsps.get(f"{GOOGLE_API}/users", json=_list("users", []))  # an empty last page: no users
    directory = source.read()
    assert [u.email for u in directory.users] == ["ada@acme.example"]
    assert [(g.name, g.member_ids) for g in directory.groups] == [("Team", ())]
    queries = [parse_qs(urlsplit(str(c.request.url)).query) for c in rsps.calls[1:]]
    assert queries == [
        {"customer": ["C123"], "maxResults": ["200"]},
        {"maxResults": ["200"]},
        {"customer": ["C123"], "maxResults": ["500"], "projection": ["full"]},
        {"customer": ["C123"], "maxResults": ["500"], "projection": ["full"], "pageToken": ["t2"]},
    ]


def test_a_quota_403_is_retried_like_a_429(
    mocked: tuple[responses.RequestsMock, GoogleSource, Path], slept: list[float]
) -> None:
    rsps, source, _ = mocked
    quota = _google_error(403, "Quota exceeded for quota metric 'Queries'", "userRateLimitExceeded")
    rsps.get(f"{GOOGLE_API}/groups", json=quota, status=403)
    rsps.get(f"{GOOGLE_API}/groups", json=_list("groups", []))
    rsps.get(f"{GOOGLE_API}/users", json=_list("users", []))
    assert source.read().users == ()
    assert len(slept) == 1


def test_a_403_without_a_quota_reason_is_a_refusal_with_a_hint(
    mocked: tuple[responses.RequestsMock, GoogleSource, Path],
) -> None:
    rsps, source, _ = mocked
    body = _google_error(403, "Request had insufficient authentication scopes.", "insufficientPermissions")
    rsps.get(f"{GOOGLE_API}/groups", json=body, status=403)
    with pytest.raises(AuthError) as caught:
        source.read()
    message = str(caught.value)
    assert message.startswith(
        "source: GET /groups page 1: HTTP 403 Forbidden: Request had insufficient authentication scopes. "
        "(insufficientPermissions); authorise the service account's client ID for"
    )


def test_an_html_answer_is_an_error_naming_the_page(
    mocked: tuple[responses.RequestsMock, GoogleSource, Path],
) -> None:
    rsps, source, _ = mocked
    rsps.get(f"{GOOGLE_API}/groups", body="<html><body>Sign in</body></html>", content_type="text/html")
    with pytest.raises(
        ResponseError, match=r"^source: GET /groups page 1: expected JSON, got text/html: <html>"
    ):
        source.read()
