"""AtlassianCloudTarget against exact request shapes (reference §3), with ``responses``.

What differs from any SCIM service: pages of at most 100, only the ``eq`` filters §3.4
lists, the Failure body of 401/403, unverified domains and managed-account conflicts
reported per account, DELETE explained, and a directory API key only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import requests
import responses
from test_target_scim import (
    BASE,
    GROUP,
    SCIM_JSON,
    ListServer,
    discovery,
    group,
    make_target,
    query,
    scim_error,
    sent,
    user,
    writes,
)

from scimsync import secrets
from scimsync.config import TargetConfig
from scimsync.errors import AuthError, ConfigError, ConnectorError
from scimsync.http import HttpSettings
from scimsync.models import Account
from scimsync.secrets import Secret
from scimsync.targets import TARGET_TYPES, build_target
from scimsync.targets.atlassian_cloud import AtlassianCloudTarget, parse_error
from scimsync.targets.base import Target

# §3.4: a single eq on userName or externalId (Users), displayName (Groups); nothing else.
ALLOWED = re.compile(r'^(userName|externalId|displayName) eq "(?:[^"\\]|\\.)*"$')
AMARA = Account(id="u1", username="user1@acme.test", email="user1@acme.test", display_name="User 1")


@pytest.fixture(autouse=True)
def _own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "_known", set())


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def cloud() -> Target:
    return make_target("atlassian-cloud")


def filters_sent(rsps: responses.RequestsMock) -> list[str]:
    return [query(c.request)["filter"] for c in rsps.calls if "filter" in query(c.request)]


def test_pages_hold_at_most_100_whatever_the_service_announces(rsps: responses.RequestsMock) -> None:
    discovery(rsps, max_results=1000)
    users = ListServer(rsps, "/Users", [user(n) for n in range(1, 251)])
    groups = ListServer(rsps, "/Groups", [group(f"g{n}", f"team-{n}") for n in range(1, 102)])
    directory = cloud().read([])
    assert len(directory.accounts) == 250 and len(directory.groups) == 101
    # Pages overlap by one (each later page starts on the last item read), 100 at most.
    assert users.starts() == [(1, 100), (100, 100), (199, 100)]
    assert groups.starts() == [(1, 100), (100, 100)]


def test_paging_needs_no_service_provider_config(rsps: responses.RequestsMock) -> None:
    discovery(rsps, max_results=None)
    users = ListServer(rsps, "/Users", [user(n) for n in range(1, 121)])
    ListServer(rsps, "/Groups", [])
    assert len(cloud().read([]).accounts) == 120
    assert users.starts() == [(1, 100), (100, 100)]


def test_only_the_documented_filters_are_ever_sent(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    # Users read one by one here carry no `groups`: the membership comes from /Groups.
    ListServer(rsps, "/Users", [user(1), user(2, userName='o"neil@acme.test')])
    ListServer(rsps, "/Groups", [group("g1", "Team-A", "u1")])
    rsps.patch(f"{BASE}/Groups/g1", status=204)
    target = cloud()
    account = target.get_account("user1@acme.test")
    assert account is not None and account.groups == {"Team-A"}
    assert target.get_account('O"NEIL@acme.test') is not None
    assert target.group_exists("team-a")
    target.add_member(Account("", 'o"neil@acme.test', None, ""), "Team-A")
    sent_filters = filters_sent(rsps)
    assert sent_filters == [
        'userName eq "user1@acme.test"',
        'userName eq "O\\"NEIL@acme.test"',
        'displayName eq "team-a"',
        'userName eq "o\\"neil@acme.test"',
    ]
    assert all(ALLOWED.match(f) for f in sent_filters)


def test_the_users_own_groups_attribute_spares_the_group_read(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.get(f"{BASE}/Users/u1", json=user(1, groups=[{"value": "g1", "display": "Team-A", "type": "Group"}]))
    account = cloud().get_account("user1@acme.test", account_id="u1")
    assert account is not None and account.groups == {"Team-A"}
    assert not any("/Groups" in str(c.request.url) for c in rsps.calls)


def test_check_shows_the_failure_body_of_a_401(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/Users", status=401, json={"error": "Invalid API key", "traceId": "7f3a9c"})
    with pytest.raises(AuthError) as caught:
        cloud().check()
    assert str(caught.value) == (
        "app: GET /Users startIndex=1: HTTP 401 Unauthorized: Invalid API key (traceId 7f3a9c); "
        "check the credentials of targets.app"
    )


def test_check_describes_the_directory(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/Users", json={"schemas": [], "totalResults": 1, "Resources": [user(1)]})
    with pytest.raises(ConnectorError, match="not a SCIM ListResponse"):
        cloud().check()
    rsps.replace(
        responses.GET,
        f"{BASE}/Users",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 1,
            "startIndex": 1,
            "itemsPerPage": 1,
            "Resources": [user(1)],
        },
    )
    assert cloud().check() == "Atlassian Cloud directory with 1 user"


def test_a_403_on_a_write_is_an_auth_error_with_the_failure_body(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.patch(f"{BASE}/Users/u1", status=403, json={"error": "Forbidden", "traceId": "t-403"})
    with pytest.raises(AuthError) as caught:
        cloud().set_active(AMARA, False)
    assert str(caught.value) == "app: user user1@acme.test: HTTP 403 Forbidden: Forbidden (traceId t-403)"
    assert caught.value.status == 403


def test_an_unverified_email_domain_fails_that_account_only(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    detail = "the domain 'gmail.example' of email 'amara@gmail.example' is not verified for this organization"
    rsps.post(f"{BASE}/Users", status=400, json=scim_error(400, "invalidValue", detail))
    rsps.post(f"{BASE}/Users", status=201, json=user(2, externalId="src-2"))
    target = cloud()
    with pytest.raises(ConnectorError) as caught:
        target.create_user("amara", "amara@gmail.example", "Amara", external_id="src-1")
    assert type(caught.value) is ConnectorError
    assert str(caught.value) == (
        "app: user amara: the email domain is not verified in Atlassian Administration "
        f"(HTTP 400 Bad Request: scimType invalidValue: {detail})"
    )
    # The next account goes on.
    assert target.create_user("user2@acme.test", "user2@acme.test", "U2", external_id="src-2").id == "u2"


def test_another_400_keeps_its_own_words(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Users", status=400, json=scim_error(400, "invalidSyntax", "userName is required"))
    with pytest.raises(ConnectorError) as caught:
        cloud().create_user("", "a@acme.test", "A", external_id="src-1")
    assert (
        str(caught.value) == "app: user : HTTP 400 Bad Request: scimType invalidSyntax: userName is required"
    )


def test_a_managed_account_conflict_is_a_failure_of_that_account(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    detail = "managed account conflict: the Atlassian account of 'amara@acme.test' is already linked"
    rsps.post(f"{BASE}/Users", status=409, json=scim_error(409, "uniqueness", detail))
    users = ListServer(rsps, "/Users", [user(1)])
    with pytest.raises(ConnectorError) as caught:
        cloud().create_user("amara", "amara@acme.test", "Amara", external_id="src-1")
    assert str(caught.value) == (
        "app: user amara: a managed-account conflict: no user of this directory has this userName, "
        f"but Atlassian refuses the account (HTTP 409 Conflict: scimType uniqueness: {detail}); "
        "resolve it in Atlassian Administration"
    )
    assert users.filters() == ['userName eq "amara"']
    assert writes(rsps) == [("POST", "/Users")]


def test_a_plain_user_exists_is_never_adopted(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Users", status=409, json=scim_error(409, "uniqueness", "user exists"))
    memberships = [{"value": "g1", "display": "Team-A"}]
    ListServer(rsps, "/Users", [user(1, externalId="src-1", groups=memberships), user(2, externalId="x")])
    ListServer(rsps, "/Groups", [group("g1", "Team-A", "u1")])
    target = cloud()
    # Ours, but unlisted by the read the plan came from: the listing was incomplete.
    with pytest.raises(ConnectorError, match=r"externalId src-1, but the read of /Users did not list it"):
        target.create_user("user1@acme.test", "user1@acme.test", "User 1", external_id="src-1")
    with pytest.raises(ConnectorError, match=r"^app: user user2@acme.test: already exists \(externalId x"):
        target.create_user("user2@acme.test", "user2@acme.test", "User 2", external_id="src-2")


def test_delete_and_deactivate_are_described_and_sent(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.delete(f"{BASE}/Users/u1", status=204)
    rsps.patch(f"{BASE}/Users/u1", status=200, json=user(1, active=False))
    target = cloud()
    caps = target.capabilities()
    assert caps.delete and caps.deactivate and caps.owner_marker == "external_id"
    assert caps.reason == (
        # What §3 documents (no discovery request is sent): no ETags are documented.
        "Atlassian Cloud directory (patch: yes, filter: yes, 100 per page, bulk: no, etag: no); "
        "delete: DELETE removes the SCIM user and deactivates its Atlassian account, not reversible "
        "over SCIM (§3.6); deactivate: active=false, reversible"
    )
    target.set_active(AMARA, False)
    target.delete_user(AMARA)
    assert writes(rsps) == [("PATCH", "/Users/u1"), ("DELETE", "/Users/u1")]
    assert sent(rsps.calls[-2])["Operations"] == [{"op": "replace", "path": "active", "value": False}]


def test_a_user_deleted_before_is_gone_and_done(rsps: responses.RequestsMock) -> None:
    # §3.6: after DELETE, every operation on the user answers 404.
    rsps.delete(f"{BASE}/Users/u1", status=404, json=scim_error(404, "", "user does not exist"))
    rsps.get(f"{BASE}/Users/u1", status=404, json=scim_error(404, "", "user does not exist"))
    cloud().delete_user(AMARA)


def test_membership_changes_use_the_documented_patch_forms(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    rsps.post(f"{BASE}/Groups", status=201, json=group("g1", "team-alpha"))
    rsps.patch(f"{BASE}/Groups/g1", status=200, json=group("g1", "team-alpha", "u1"))
    rsps.patch(f"{BASE}/Groups/g1", status=200, json=group("g1", "team-alpha"))
    target = cloud()
    target.create_group("team-alpha")
    target.add_member(AMARA, "team-alpha")
    target.remove_member(AMARA, "team-alpha")
    assert [sent(c) for c in rsps.calls if c.request.method != "GET"] == [
        {"schemas": [GROUP], "displayName": "team-alpha", "members": []},
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": "u1"}]}],
        },
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": 'members[value eq "u1"]'}],
        },
    ]
    assert all(c.request.headers["Content-Type"] == SCIM_JSON for c in rsps.calls if c.request.body)


def test_adding_an_unknown_user_is_refused_with_404_and_reported(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    ListServer(rsps, "/Groups", [group("g1", "Team-A")])
    body = scim_error(404, "", "directory, group, or user does not exist")
    rsps.patch(f"{BASE}/Groups/g1", status=404, json=body)
    rsps.get(f"{BASE}/Groups/g1", json=group("g1", "Team-A"))
    with pytest.raises(ConnectorError) as caught:
        cloud().add_member(AMARA, "Team-A")
    assert str(caught.value) == (
        "app: membership user1@acme.test in Team-A: HTTP 404 Not Found: "
        "directory, group, or user does not exist"
    )


@pytest.mark.parametrize(
    ("status", "body", "line"),
    [
        (401, {"error": "Unauthorized", "traceId": "abc"}, "Unauthorized (traceId abc)"),
        (403, {"error": "no\naccess"}, "no access"),
        (409, scim_error(409, "uniqueness", "taken"), "scimType uniqueness: taken"),
    ],
)
def test_parse_error_reads_both_error_bodies(status: int, body: dict[str, object], line: str) -> None:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    assert parse_error(response) == line


def test_the_registry_builds_it_with_a_token_only() -> None:
    config = TargetConfig.model_validate({"type": "atlassian-cloud", "url": BASE, "token": "dir-api-key-1"})
    built = build_target("cloud", config, HttpSettings())
    assert isinstance(built, AtlassianCloudTarget) and built.type == "atlassian-cloud"
    built.close()
    assert TARGET_TYPES["atlassian-cloud"].error_parser is parse_error
    assert TARGET_TYPES["atlassian-cloud"].headers["Accept"] == SCIM_JSON
    # The config refuses a password for this type already; build time refuses it again.
    basic = TargetConfig.model_construct(
        type="atlassian-cloud", url=BASE, token=None, username="admin", password=Secret("pw-value-1")
    )
    with pytest.raises(ConfigError) as caught:
        build_target("cloud", basic, HttpSettings())
    assert caught.value.problems == [
        "targets.cloud.token: atlassian-cloud takes an API token (token), not a username and password"
    ]


def test_members_are_added_many_per_patch_and_removed_one_per_patch(rsps: responses.RequestsMock) -> None:
    discovery(rsps)
    ListServer(rsps, "/Groups", [group("g1", "team-a")])
    rsps.patch(f"{BASE}/Groups/g1", json=group("g1", "team-a", "u1", "u2"))
    target = cloud()
    assert isinstance(target, AtlassianCloudTarget)
    # §3.7: the documented add takes a list of values; which removal forms Atlassian takes
    # is unconfirmed [U], so the engine removes one member per request here.
    assert (target.member_batch_size(add=True), target.member_batch_size(add=False)) == (50, 1)
    bruno = Account(id="u2", username="user2@acme.test", email="user2@acme.test", display_name="User 2")
    target.add_members("team-a", [AMARA, bruno])
    assert sent(rsps.calls[-1])["Operations"] == [
        {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}
    ]
