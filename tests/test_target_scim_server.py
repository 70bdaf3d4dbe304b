"""The scim and atlassian-cloud targets against the real scim2-server (subprocess on loopback).

Two servers: a plain one (everything announced, 1000 per page) for the ``scim`` target,
and an Atlassian-shaped one (``filter.maxResults`` 100, no bulk, no ETags) for the
``atlassian-cloud`` target; a third one without PATCH checks the PUT writes. Each test
goes through the Target interface only, and checks what the server holds afterwards
with a read of its own or through the target's reads.

What scim2-server (0.8) does differently from Atlassian: it answers PATCH with 204 and
no body; it accepts two groups whose names differ only in case (Atlassian: 409, §3.7);
it never fills ``User.groups`` (Atlassian does, §3.3); it keeps a group member that
references no user; its userName filter compares case-insensitively and its externalId
filter exactly (RFC 7643 caseExact), which §3.9 leaves open for Atlassian.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from scim_server import ScimServer, running_scim_server

from scimsync.config import TargetConfig
from scimsync.errors import AuthError, ConnectorError
from scimsync.http import HttpSettings
from scimsync.models import Account
from scimsync.targets import build_target
from scimsync.targets.base import Target

TOKEN = "scim2-server-target-token"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SEEDED = 230  # more than two pages of 100
KINDS = {"plain": "scim", "atlassian-shaped": "atlassian-cloud"}


def service_provider_config(*, patch: bool, max_results: int) -> dict[str, Any]:
    """Return a ServiceProviderConfig to start the server with."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": patch},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
    }


SHAPES: dict[str, dict[str, Any] | None] = {
    "plain": None,  # scim2-server's own: every feature, 1000 per page
    "atlassian-shaped": service_provider_config(patch=True, max_results=100),
}


def seed(server: ScimServer) -> None:
    """Create users the way an administrator or an earlier tool would: without externalId."""
    for n in range(1, SEEDED + 1):
        server.post(
            "/Users",
            {
                "schemas": [USER],
                "userName": f"seed{n:03d}@acme.test",
                "displayName": f"Seed {n}",
                "emails": [{"value": f"seed{n:03d}@acme.test", "type": "work", "primary": True}],
            },
        )


@dataclass(frozen=True)
class Served:
    """A running server, the target type it is shaped for, and the page size to expect."""

    server: ScimServer
    kind: str
    page: int


@pytest.fixture(scope="module", params=list(SHAPES))
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    shape: str = request.param
    work = tmp_path_factory.mktemp(f"scim2-server-{shape}")
    with running_scim_server(work, token=TOKEN, service_provider_config=SHAPES[shape]) as running:
        seed(running)
        yield Served(running, KINDS[shape], 1000 if shape == "plain" else 100)


@pytest.fixture
def server(served: Served) -> ScimServer:
    return served.server


def make_target(server: ScimServer, kind: str, *, token: str = TOKEN) -> Target:
    config = TargetConfig.model_validate({"type": kind, "url": server.url, "token": token})
    return build_target("app", config, HttpSettings(timeout=10, retries=1))


@pytest.fixture
def target(served: Served) -> Iterator[Target]:
    built = make_target(served.server, served.kind)
    yield built
    built.close()


def total_users(server: ScimServer) -> int:
    answer = requests.get(
        f"{server.url}/Users", params={"count": 0}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    total: int = answer.json()["totalResults"]
    return total


def user_pages(server: ScimServer, since: int) -> list[tuple[int, int]]:
    """Return (startIndex, count) of each unfiltered /Users page the server logged after ``since``."""
    pages = []
    for logged in server.requested()[since:]:
        parts = urlsplit(logged)
        q = parse_qs(parts.query)
        if parts.path == "/v2/Users" and "filter" not in q and "startIndex" in q:
            pages.append((int(q["startIndex"][0]), int(q["count"][0])))
    return sorted(pages)


def fresh(target: Target, account: Account) -> Account:
    found = target.get_account(account.username, account_id=account.id)
    assert found is not None
    return found


def test_create_with_external_id_and_read_back_every_page(served: Served, target: Target) -> None:
    server = served.server
    created = target.create_user(
        "Amara.Kowalski@acme.test", "amara.k@acme.test", "Amara Kowalski", external_id="src-amara"
    )
    assert (created.username, created.email, created.display_name) == (
        "Amara.Kowalski@acme.test",
        "amara.k@acme.test",
        "Amara Kowalski",
    )
    assert created.active and created.external_id == "src-amara"
    before = len(server.requested())
    directory = target.read([])
    total = total_users(server)
    assert len(directory.accounts) == total == len({a.id for a in directory.accounts})
    names = {a.username for a in directory.accounts}
    assert {f"seed{n:03d}@acme.test" for n in range(1, SEEDED + 1)} <= names
    by_id = {a.id: a for a in directory.accounts}
    assert by_id[created.id] == created
    assert by_id[created.id].external_id == "src-amara"
    seeded = next(a for a in directory.accounts if a.username == "seed007@acme.test")
    assert (seeded.email, seeded.display_name, seeded.external_id) == ("seed007@acme.test", "Seed 7", None)
    size = served.page
    # Pages overlap by one: each later page starts on the last user read.
    starts, last = [1], min(size, total)
    while last < total:
        starts.append(last)
        last = min(last + size - 1, total)
    assert user_pages(server, before) == [(start, size) for start in starts]


def test_each_field_changes_and_a_rename_keeps_the_id(target: Target) -> None:
    account = target.create_user("bo@acme.test", "bo@acme.test", "Bo", external_id="src-bo")
    target.update_user(account, {"email": "bo.new@acme.test"})
    assert fresh(target, account).email == "bo.new@acme.test"
    target.update_user(account, {"display_name": "Bo Renamed"})
    assert fresh(target, account).display_name == "Bo Renamed"
    target.update_user(account, {"username": "bo.renamed@acme.test"})
    renamed = target.get_account("BO.RENAMED@acme.test")
    assert renamed is not None and renamed.id == account.id and renamed.username == "bo.renamed@acme.test"
    assert target.get_account("bo@acme.test") is None
    target.update_user(renamed, {"external_id": "src-bo-2"})
    assert fresh(target, renamed).external_id == "src-bo-2"
    assert (renamed.email, renamed.display_name) == ("bo.new@acme.test", "Bo Renamed")


def test_deactivate_and_reactivate(target: Target) -> None:
    account = target.create_user("cy@acme.test", "cy@acme.test", "Cy", external_id="src-cy")
    target.set_active(account, False)
    assert fresh(target, account).active is False
    target.set_active(account, True)
    assert fresh(target, account).active is True


def test_groups_are_created_and_memberships_are_idempotent(served: Served, target: Target) -> None:
    before = len(served.server.requested())
    account = target.create_user("di@acme.test", "di@acme.test", "Di", external_id="src-di")
    target.create_group("Team-Di")
    assert target.group_exists("team-di")
    target.add_member(account, "team-di")
    target.add_member(account, "TEAM-DI")  # already a member: done
    assert fresh(target, account).groups == {"Team-Di"}
    directory = target.read(["team-di"])
    assert "Team-Di" in directory.groups
    assert next(a for a in directory.accounts if a.id == account.id).groups == {"Team-Di"}
    target.remove_member(account, "Team-Di")
    target.remove_member(account, "Team-Di")  # not a member: done
    assert fresh(target, account).groups == frozenset()
    filters = [
        parse_qs(urlsplit(logged).query)["filter"][0]
        for logged in served.server.requested()[before:]
        if "filter=" in logged
    ]
    if served.kind == "atlassian-cloud":
        # §3.4: only eq on userName, externalId (users) and displayName (groups).
        assert filters and all(re.match(r'(userName|externalId|displayName) eq "', f) for f in filters)
    else:
        assert 'members[value eq "' + account.id + '"]' in filters


def test_delete_then_the_user_is_gone_and_deleting_again_is_done(target: Target) -> None:
    account = target.create_user("ed@acme.test", "ed@acme.test", "Ed", external_id="src-ed")
    target.delete_user(account)
    assert target.get_account("ed@acme.test", account_id=account.id) is None
    assert target.get_account("ed@acme.test") is None
    target.delete_user(account)


def test_a_conflict_adopts_nobody(target: Target) -> None:
    # A 409 means the plan's read did not see the account: even one carrying our externalId
    # is not adopted blindly (only an unknown outcome of this very create is, SPEC §8).
    target.create_user("fa@acme.test", "fa@acme.test", "Fa", external_id="src-fa")
    with pytest.raises(ConnectorError) as ours:
        target.create_user("FA@acme.test", "fa@acme.test", "Fa", external_id="src-fa")
    assert "exists with our externalId src-fa, but the read of /Users did not list it" in str(ours.value)
    with pytest.raises(ConnectorError) as caught:
        target.create_user("fa@acme.test", "fa@acme.test", "Fa", external_id="src-other")
    assert str(caught.value) == "app: user fa@acme.test: already exists (externalId src-fa, not ours)"
    with pytest.raises(ConnectorError) as seeded:
        target.create_user("seed001@acme.test", "x@acme.test", "X", external_id="src-x")
    assert str(seeded.value) == "app: user seed001@acme.test: already exists (no externalId, not ours)"


def test_groups_named_alike_are_never_guessed_between(server: ScimServer, target: Target) -> None:
    # scim2-server accepts both; Atlassian would refuse the second (§3.7).
    server.post("/Groups", {"schemas": [GROUP], "displayName": "Twins", "members": []})
    server.post("/Groups", {"schemas": [GROUP], "displayName": "TWINS", "members": []})
    account = target.create_user("gi@acme.test", "gi@acme.test", "Gi", external_id="src-gi")
    with pytest.raises(ConnectorError, match="2 groups are named twins"):
        target.add_member(account, "twins")


def test_a_wrong_token_is_an_auth_error(served: Served) -> None:
    wrong = make_target(served.server, served.kind, token="not-the-token")
    with pytest.raises(AuthError) as caught:
        wrong.check()
    wrong.close()
    assert caught.value.status == 401
    assert str(caught.value).endswith("check the credentials of targets.app")


def test_check_counts_the_users(server: ScimServer, target: Target) -> None:
    assert target.check().endswith(f"with {total_users(server)} users")


def test_without_patch_every_write_is_a_full_put(tmp_path: Path) -> None:
    spc = service_provider_config(patch=False, max_results=100)
    with running_scim_server(tmp_path, token=TOKEN, service_provider_config=spc) as server:
        target = make_target(server, "scim")
        assert "patch: no" in target.capabilities().reason
        account = target.create_user("hu@acme.test", "hu@acme.test", "Hu", external_id="src-hu")
        target.update_user(account, {"display_name": "Hu New", "email": "hu.new@acme.test"})
        target.set_active(account, False)
        target.create_group("team-hu")
        target.add_member(account, "team-hu")
        got = fresh(target, account)
        assert (got.display_name, got.email, got.active, got.external_id, got.groups) == (
            "Hu New",
            "hu.new@acme.test",
            False,
            "src-hu",
            frozenset({"team-hu"}),
        )
        target.remove_member(account, "team-hu")
        assert fresh(target, account).groups == frozenset()
        target.close()
        assert server.requested("PATCH") == []
        assert len(server.requested("PUT")) == 4
