"""Bad input fuzzing (issue 11, item 7): whatever a system sends, a model or a clean error.

Property tests (hypothesis) feed every connector's JSON-to-model mapping, the plan-file
reader and the audit-log reader two kinds of input: arbitrary JSON-like values, and valid
records (written here from the vendors' documented shapes) with one to three of their
values replaced, removed or added. Each call must give a model whose fields have the
model's types, or raise a ScimsyncError subclass (ResponseError, ConnectorError,
PlanFileError): never another exception, which the CLI would show as an internal error.

A mapping function is called as its connector calls it: what the pager already checked
(a Graph, Keycloak or OneLogin item is an object with an id) is kept true of the input.
Examples are derandomized and few, so the suite stays fast and CI stable; set
SCIMSYNC_FUZZ_EXAMPLES to hunt longer with random ones.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scimsync import api
from scimsync.audit import AuditLog, verify
from scimsync.config import FileSourceConfig, LdapSourceConfig
from scimsync.engine.plan import (
    Collision,
    FieldChange,
    GuardViolation,
    Notice,
    Operation,
    OpKind,
    Plan,
    TargetPlan,
    from_dict,
    to_dict,
)
from scimsync.errors import PlanFileError, ScimsyncError
from scimsync.http import scim
from scimsync.models import Account, SourceDirectory, User
from scimsync.sources import entra_model, google_api, google_model, keycloak_model, okta_model, onelogin_model
from scimsync.sources.file import FileSource
from scimsync.sources.ldap_conn import Entry
from scimsync.sources.ldap_model import FLAVORS, Layout
from scimsync.sources.onelogin_model import Assembler, Catalog
from scimsync.sources.scim import to_directory
from scimsync.targets import confluence_read, jira_read, scim_resources

# SCIMSYNC_FUZZ_EXAMPLES=5000 makes a long hunt with fresh random examples each run.
LONG_RUN = int(os.environ.get("SCIMSYNC_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=LONG_RUN or 60,
    derandomize=not LONG_RUN,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
SYSTEM = "source"
T = TypeVar("T")

# --- what the inputs are made of ----------------------------------------------------------

# Values a vendor might send where another was documented: wrong types, empty and blank
# text, look-alike words, NaN. (An integer of more than 4300 digits cannot come out of
# Python's JSON parser, which refuses it: the readers of JSON text are fed one below.)
TRICKY_TEXT = st.sampled_from(
    ["", " ", "\u200b", "ACTIVE", "true", "null", "0", "-1", "user", "group", "#microsoft.graph.user", "a\nb"]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    TRICKY_TEXT,
    st.text(max_size=12),
)
KEYS = st.one_of(st.text(max_size=8), st.sampled_from(["id", "name", "value", "type", "status", "profile"]))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=6)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@st.composite
def mutated(draw: st.DrawFn, valid: Any) -> Any:
    """Return ``valid`` with one to three values replaced, removed, or added beside them."""
    record = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(record))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _at(record, path[:-1])
        action = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON)
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = draw(JSON)
        else:
            parent.append(draw(JSON))
    return record


def inputs(valid: Any, arbitrary: st.SearchStrategy[Any] = JSON) -> st.SearchStrategy[Any]:
    """Return arbitrary values and mutations of ``valid``."""
    return st.one_of(arbitrary, mutated(valid))


def with_id(record: Any, default: Any = "id-1") -> dict[str, Any]:
    """Make ``record`` what a pager hands on: an object with a non-empty string id."""
    record = dict(record) if isinstance(record, dict) else {}
    if not isinstance(record.get("id"), str) or not record["id"]:
        record["id"] = default
    return record


# --- what the outputs must be ------------------------------------------------------------


def clean(call: Callable[[], T]) -> T | None:
    """Return what ``call`` returns, or None when it raised a ScimsyncError (a clean error)."""
    try:
        return call()
    except ScimsyncError as exc:
        assert str(exc)
        return None


def check_user(user: Any) -> None:
    """A User whose fields have the model's types; an active one can be matched."""
    assert isinstance(user, User)
    for name in ("id", "username", "email", "first_name", "last_name", "display_name"):
        assert isinstance(getattr(user, name), str), name
    assert user.id
    assert isinstance(user.active, bool)
    assert isinstance(user.groups, tuple) and all(isinstance(g, str) for g in user.groups)
    assert user.username or user.email or not user.active


def check_directory(directory: Any) -> None:
    assert isinstance(directory, SourceDirectory)
    for user in directory.users:
        check_user(user)
    ids = {u.id for u in directory.users}
    for group in directory.groups:
        assert isinstance(group.id, str) and isinstance(group.name, str)
        assert set(group.member_ids) <= ids


def check_account(account: Any) -> None:
    """An Account whose fields have the model's types: an id and a username to match on."""
    assert isinstance(account, Account)
    assert isinstance(account.id, str) and account.id
    assert isinstance(account.username, str) and account.username
    assert account.email is None or isinstance(account.email, str)
    assert isinstance(account.display_name, str)
    assert isinstance(account.active, bool)
    assert all(isinstance(g, str) for g in account.groups)
    assert account.external_id is None or isinstance(account.external_id, str)


# --- sources ------------------------------------------------------------------------------

OKTA_USER = {
    "id": "00u1abcd",
    "status": "ACTIVE",
    "transitioningToStatus": None,
    "lastUpdated": "2024-05-01T10:00:00.000Z",
    "profile": {
        "login": "amara@acme.test",
        "email": "amara@acme.test",
        "firstName": "Amara",
        "lastName": "Kowalski",
        "displayName": "Amara Kowalski",
        "department": "Engineering",
    },
    "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
    "_links": {"self": {"href": "https://acme.okta.test/api/v1/users/00u1abcd"}},
}
OKTA_GROUP = {
    "id": "00g1",
    "type": "OKTA_GROUP",
    "profile": {"name": "Engineering", "description": None},
    "_embedded": {"stats": {"usersCount": 3}},
}


@FUZZ
@given(inputs(OKTA_USER))
@example({**OKTA_USER, "transitioningToStatus": ["ACTIVE"]})
def test_okta_user(raw: Any) -> None:
    user = clean(lambda: okta_model.parse_user(SYSTEM, "GET /api/v1/users page 1", raw))
    if user is not None:
        check_user(user)


@FUZZ
@given(inputs(OKTA_GROUP))
def test_okta_group(raw: Any) -> None:
    group = clean(lambda: okta_model.parse_group(SYSTEM, "GET /api/v1/groups page 1", raw))
    if group is not None:
        assert isinstance(group.id, str) and group.id and isinstance(group.name, str) and group.name.strip()
        assert group.users_count is None or type(group.users_count) is int


ENTRA_USER = {
    "@odata.type": "#microsoft.graph.user",
    "id": "6e7b768e-07e2-4810-8459-485f84f8f204",
    "userPrincipalName": "amara@acme.test",
    "mail": "amara@acme.test",
    "givenName": "Amara",
    "surname": "Kowalski",
    "displayName": "Amara Kowalski",
    "accountEnabled": True,
    "department": "Engineering",
}
ENTRA_GROUP = {"id": "02bd9fd6-8f93-4758-87c3-1fb73740a315", "displayName": "Engineering"}


@FUZZ
@given(inputs(ENTRA_USER, OBJECTS))
def test_entra_user(raw: Any) -> None:
    user = clean(lambda: entra_model.parse_user(SYSTEM, with_id(raw)))
    if user is not None:
        check_user(user)


@FUZZ
@given(inputs(ENTRA_GROUP, OBJECTS), inputs(ENTRA_USER, OBJECTS))
def test_entra_group_and_member(raw: Any, member: Any) -> None:
    group = clean(lambda: entra_model.parse_group(SYSTEM, "GET /v1.0/groups page 1", with_id(raw)))
    if group is not None:
        assert isinstance(group.name, str) and group.name.strip()
    kind = clean(
        lambda: entra_model.member_kind(SYSTEM, "GET /v1.0/groups/g/members page 1", with_id(member))
    )
    assert kind in (None, "user", "group", "other")


GOOGLE_USER = {
    "kind": "admin#directory#user",
    "id": "104365789012345678901",
    "primaryEmail": "amara@acme.test",
    "name": {"givenName": "Amara", "familyName": "Kowalski", "fullName": "Amara Kowalski"},
    "suspended": False,
    "archived": False,
    "customerId": "C0sim0001",
    "orgUnitPath": "/Engineering",
}
GOOGLE_GROUP = {
    "kind": "admin#directory#group",
    "id": "03x8tuzt1",
    "email": "eng@acme.test",
    "name": "Engineering",
}
GOOGLE_MEMBERS = [
    {"kind": "admin#directory#member", "id": "104365789012345678901", "type": "USER", "status": "ACTIVE"},
    {"kind": "admin#directory#member", "id": "03x8tuzt2", "type": "GROUP"},
    {"kind": "admin#directory#member", "id": "C0sim0001", "type": "CUSTOMER"},
]


@FUZZ
@given(inputs(GOOGLE_USER, OBJECTS))
def test_google_user(raw: Any) -> None:
    user = clean(lambda: google_model.to_user(SYSTEM, raw))
    if user is not None:
        check_user(user)


@FUZZ
@given(inputs(GOOGLE_GROUP, OBJECTS))
def test_google_group(raw: Any) -> None:
    group = clean(lambda: google_model.group_info(SYSTEM, raw))
    if group is not None:
        assert group.id and group.name.strip() and isinstance(group.email, str)


@FUZZ
@given(inputs({"kind": "admin#directory#members", "members": GOOGLE_MEMBERS}))
def test_google_members_page(body: Any) -> None:
    # The pager's check (page_items) comes first, as in GoogleSource: then the members are sorted.
    page = clean(lambda: google_api.page_items(SYSTEM, "GET /groups/g/members page 1", body, "members"))
    if page is None:
        return
    members = clean(lambda: google_model.direct_members(SYSTEM, "GET /groups/g/members page 1", page))
    if members is not None:
        assert all(isinstance(i, str) and i for i in (*members.users, *members.groups, *members.customers))


KEYCLOAK_USER = {
    "id": "8f1c3a52-1f0e-4f9e-9a1b-0c2d3e4f5a6b",
    "username": "amara",
    "email": "amara@acme.test",
    "firstName": "Amara",
    "lastName": "Kowalski",
    "enabled": True,
    "emailVerified": True,
    "attributes": {"department": ["Engineering"]},
    "access": {"manage": True},
}
KEYCLOAK_GROUP = {
    "id": "a1b2",
    "name": "engineering",
    "path": "/engineering",
    "subGroupCount": 1,
    "subGroups": [{"id": "c3d4", "name": "platform", "path": "/engineering/platform", "subGroups": []}],
}


@FUZZ
@given(inputs(KEYCLOAK_USER, OBJECTS))
def test_keycloak_user(raw: Any) -> None:
    rep = with_id(raw)
    user = clean(lambda: keycloak_model.to_user(SYSTEM, rep))
    if user is not None:
        check_user(user)
    assert isinstance(keycloak_model.is_service_account(rep), bool)


@FUZZ
@given(inputs(KEYCLOAK_GROUP, OBJECTS))
def test_keycloak_group(raw: Any) -> None:
    parent = keycloak_model.GroupNode("p0", "top", "/top", None)
    node = clean(lambda: keycloak_model.group_node(SYSTEM, raw, parent))
    if node is None:
        return
    assert node.id and node.name.strip() and node.path.startswith("/")
    children = clean(lambda: keycloak_model.inline_subgroups(SYSTEM, raw, node))
    if isinstance(children, list):
        assert all(isinstance(c, dict) for c in children)
    else:
        assert children is None or (type(children) is int and children > 0)


ONELOGIN_USER = {
    "id": 123456,
    "username": "amara",
    "email": "amara@acme.test",
    "firstname": "Amara",
    "lastname": "Kowalski",
    "status": 1,
    "state": 1,
    "group_id": 77,
    "custom_attributes": {"department": "Engineering"},
    "password": "never-read",
}
ONELOGIN_CATALOG = Catalog(
    roles={"501": "Admins"}, groups={"77": "Engineering"}, role_members={"501": ["123456"]}
)


def onelogin_id(record: dict[str, Any]) -> dict[str, Any]:
    """OneLogin ids are numbers or numeric text; the pager drops items without one (§4.2)."""
    rid = record.get("id")
    if isinstance(rid, bool) or not (isinstance(rid, int) or (isinstance(rid, str) and rid.strip())):
        record["id"] = 123456
    return record


@FUZZ
@given(st.lists(inputs(ONELOGIN_USER, OBJECTS), min_size=1, max_size=3))
def test_onelogin_users(raws: list[Any]) -> None:
    records = [onelogin_id(dict(r) if isinstance(r, dict) else {}) for r in raws]
    directory = clean(lambda: Assembler(SYSTEM, ONELOGIN_CATALOG).build(records))
    if directory is not None:
        check_directory(directory)


@FUZZ
@given(inputs({"id": 77, "name": "Engineering"}, OBJECTS))
def test_onelogin_catalog_entry(raw: Any) -> None:
    entry = clean(
        lambda: onelogin_model.catalog_entry(SYSTEM, "GET /api/2/roles page 1", onelogin_id(raw), "role")
    )
    if entry is not None:
        assert isinstance(entry[0], str) and entry[0] and isinstance(entry[1], str) and entry[1].strip()


SCIM_USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "2819c223",
    "externalId": "emp-1",
    "userName": "amara",
    "name": {"givenName": "Amara", "familyName": "Kowalski", "formatted": "Amara Kowalski"},
    "displayName": "Amara Kowalski",
    "emails": [{"value": "amara@acme.test", "type": "work", "primary": True}],
    "active": True,
    "groups": [{"value": "g-eng", "display": "Engineering", "type": "direct"}],
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Engineering"},
    "meta": {"resourceType": "User"},
}
SCIM_GROUPS = [
    {"id": "g-eng", "displayName": "Engineering", "members": [{"value": "2819c223", "type": "User"}]},
    {"id": "g-all", "displayName": "Everyone", "members": [{"value": "g-eng", "type": "Group"}]},
]


def _ided(items: Any, prefix: str) -> list[dict[str, Any]]:
    """What read_list hands on: objects, each with its own non-empty string id."""
    found = [with_id(i, f"{prefix}{n}") for n, i in enumerate(items if isinstance(items, list) else [items])]
    ids: set[str] = set()
    for n, item in enumerate(found):
        if item["id"] in ids:
            item["id"] = f"{prefix}{n}-again"
        ids.add(item["id"])
    return found


@FUZZ
@given(inputs([SCIM_USER]), inputs(SCIM_GROUPS))
def test_scim_source(users: Any, groups: Any) -> None:
    user_list, group_list = _ided(users, "u"), _ided(groups, "g")
    directory = clean(lambda: to_directory(SYSTEM, user_list, group_list))
    if directory is not None:
        check_directory(directory)


@FUZZ
@given(
    inputs(
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 2,
            "startIndex": 1,
            "itemsPerPage": 1,
            "Resources": [SCIM_USER],
        }
    )
)
def test_scim_list_page(body: Any) -> None:
    # The pager both SCIM connectors read through: what it passes on, the mappings above get.
    page = clean(lambda: scim.parse_page(SYSTEM, "GET /Users page 1", body, 1))
    if page is not None:
        assert all(isinstance(r, dict) and isinstance(r["id"], str) and r["id"] for r in page.resources)


LDAP_CONFIG = {
    "type": "ldap",
    "url": "ldap://127.0.0.1",
    "bind_dn": "cn=s",
    "password": "pw-1234",
    "base_dn": "dc=x",
}
LDAP_USER = {
    "entryUUID": [b"5f6a0f1e-3c2b-4d9a-8e7f-112233445566"],
    "objectGUID": [bytes(range(16))],
    "uid": [b"amara"],
    "sAMAccountName": [b"amara"],
    "mail": [b"amara@acme.test"],
    "givenName": [b"Amara"],
    "sn": [b"Kowalski"],
    "cn": [b"Amara Kowalski"],
    "displayName": [b"Amara Kowalski"],
    "userAccountControl": [b"512"],
    "userPassword": [b"{SSHA}secret"],
}
BYTES = st.one_of(st.binary(max_size=20), st.sampled_from([b"", b" ", b"\xff\xfe", b"2", b"-3", b"9" * 5000]))
RAW = st.dictionaries(
    st.one_of(st.sampled_from(list(LDAP_USER)), st.text(max_size=6)), st.lists(BYTES, max_size=3), max_size=8
)


@st.composite
def ldap_entries(draw: st.DrawFn) -> dict[str, list[bytes]]:
    raw = dict(LDAP_USER) if draw(st.booleans()) else {}
    raw.update(draw(RAW))
    for name in draw(st.lists(st.sampled_from(list(LDAP_USER)), max_size=3)):
        raw.pop(name, None)
    return raw


@FUZZ
@given(ldap_entries(), st.sampled_from(sorted(FLAVORS)), st.booleans())
def test_ldap_entries(raw: dict[str, list[bytes]], flavor: str, disabled: bool) -> None:
    layout = Layout(SYSTEM, FLAVORS[flavor], LdapSourceConfig.model_validate(LDAP_CONFIG))
    entry = Entry("uid=amara,ou=people,dc=acme", raw)
    user = clean(lambda: layout.user(entry, disabled=disabled))
    if user is not None:
        check_user(user)
        assert not {a.lower() for a in user.attributes} & {"userpassword"}
    group = clean(lambda: layout.group(entry))
    if group is not None:
        assert all(isinstance(v, str) for v in group)


FILE_RECORD = {
    "id": "emp-1",
    "username": "amara",
    "email": "amara@acme.test",
    "first_name": "Amara",
    "last_name": "Kowalski",
    "active": True,
    "groups": ["eng", "all"],
    "department": "Engineering",
}


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A folder for the files the file source reads (module-wide: hypothesis reruns the test body)."""
    with tempfile.TemporaryDirectory(prefix="scimsync-fuzz-") as folder:
        yield Path(folder)


def _read_file(folder: Path, name: str, data: bytes, **config: Any) -> SourceDirectory | None:
    path = folder / name
    path.write_bytes(data)
    source = FileSource(
        SYSTEM, FileSourceConfig.model_validate({"type": "file", "path": str(path), **config})
    )
    return clean(lambda: source.read())


@FUZZ
@given(inputs({"users": [FILE_RECORD, {**FILE_RECORD, "id": "emp-2", "username": "bruno"}]}))
def test_file_source_json(scratch: Path, document: Any) -> None:
    data = json.dumps(document).encode()
    for config in ({}, {"active_values": ["true", "Active"], "inactive_values": ["Terminated"]}):
        directory = _read_file(scratch, "people.json", data, **config)
        if directory is not None:
            check_directory(directory)


@FUZZ
@given(st.text(max_size=200), st.sampled_from(["people.csv", "people.yaml"]))
@example("id,username\n1,a\n1,b\n", "people.csv")
@example("- {username: a, groups: {x: 1}}\n", "people.yaml")
@example("username\n" + "9" * 5000 + "\n", "people.csv")
def test_file_source_text(scratch: Path, text: str, name: str) -> None:
    directory = _read_file(scratch, name, text.encode())
    if directory is not None:
        check_directory(directory)


# --- targets ------------------------------------------------------------------------------

JIRA_USER = {
    "self": "https://jira.acme.test/rest/api/2/user?username=amara",
    "key": "JIRAUSER10100",
    "name": "amara",
    "emailAddress": "amara@acme.test",
    "displayName": "Amara Kowalski",
    "active": True,
    "deleted": False,
}
CONFLUENCE_USER = {
    "type": "known",
    "username": "amara",
    "userKey": "8a7f808a8c",
    "displayName": "Amara Kowalski",
    "email": "amara@acme.test",
    "status": "Active",
}


@FUZZ
@given(inputs(JIRA_USER))
def test_jira_user(bean: Any) -> None:
    account = clean(lambda: jira_read.to_account("jira", bean, "GET /rest/api/2/user"))
    if account is not None:
        check_account(account)


@FUZZ
@given(inputs({"version": "10.3.1", "versionNumbers": [10, 3, 1], "buildNumber": 10030001}, OBJECTS))
@example({"version": "9" * 5000})
def test_jira_server_info(body: dict[str, Any]) -> None:
    version = clean(lambda: jira_read.server_version(body))
    assert version is None or all(type(n) is int for n in version)


@FUZZ
@given(inputs(CONFLUENCE_USER), st.booleans())
def test_confluence_user(bean: Any, emails: bool) -> None:
    account = clean(lambda: confluence_read.to_account("wiki", bean, "GET /rest/api/user", emails=emails))
    if account is not None:
        check_account(account)
        assert emails or account.email is None


@FUZZ
@given(inputs(SCIM_USER))
def test_scim_target_user(resource: Any) -> None:
    account = clean(lambda: scim_resources.to_account("scim", resource, "GET /Users"))
    if account is not None:
        check_account(account)
    if isinstance(resource, dict):
        groups = clean(lambda: scim_resources.direct_groups("scim", resource, "GET /Users"))
        assert groups is None or all(isinstance(g, str) and g and isinstance(d, str) for g, d in groups)


@FUZZ
@given(inputs(SCIM_GROUPS[0]))
def test_scim_target_group(resource: Any) -> None:
    named = clean(lambda: scim_resources.group_name("scim", resource, "GET /Groups"))
    if named is not None:
        assert named[0] and named[1].strip()
    if isinstance(resource, dict):
        ids = clean(lambda: scim_resources.member_ids("scim", resource, "GET /Groups"))
        assert ids is None or all(isinstance(i, str) and i for i in ids)


# --- the plan file --------------------------------------------------------------------------


def _valid_plan() -> Plan:
    ops = (
        Operation(
            OpKind.CREATE_USER,
            "jira",
            "amara",
            "new in the source",
            changes=(FieldChange("email", None, "amara@acme.test"),),
            expected={"exists": False},
            source_id="00u1",
        ),
        Operation(
            OpKind.UPDATE_USER,
            "jira",
            "bruno",
            "email changed",
            account_id="JIRAUSER2",
            changes=(FieldChange("email", "b@old.test", "bruno@acme.test"),),
            expected={"email": "b@old.test", "active": True},
        ),
        Operation(OpKind.ADD_MEMBER, "jira", "amara", "rule", group="jira-eng"),
        Operation(OpKind.DEACTIVATE_USER, "jira", "olga", "left", account_id="JIRAUSER3"),
    )
    target = TargetPlan(
        "jira",
        "jira",
        operations=ops,
        collisions=(Collision("jira", "username", "chen", ("00u4", "00u5")),),
        notices=(Notice("jira", "admin", "protected", "protected user: never modified"),),
        owned_count=3,
        active_owned_count=2,
        leavers=1,
        links={"00u1": "JIRAUSER1"},
        unlinked=("00u9",),
        rule_groups={"team-* -> jira-{{ group.name }}": ("jira-eng",)},
    )
    failed = TargetPlan("wiki", "confluence", error="wiki: HTTP 401 Unauthorized")
    guard = GuardViolation("max_deactivations", "jira", 1, 0, "1 deactivation exceeds the limit 0")
    return Plan(
        (target, failed),
        config_digest="ab" * 32,
        created_at="2024-05-01T10:00:00+00:00",
        source="okta",
        source_users=5,
        guards=(guard,),
        allow_deactivations=2,
    )


VALID_PLAN = to_dict(_valid_plan())


def test_the_valid_plan_reads_back() -> None:
    assert from_dict(json.loads(json.dumps(VALID_PLAN))) == _valid_plan()


@FUZZ
@given(inputs(VALID_PLAN, OBJECTS))
def test_plan_from_dict(data: Any) -> None:
    try:
        plan = from_dict(data)
    except PlanFileError as exc:
        assert str(exc).startswith(("not a scimsync plan file", "plan file has format version"))
        return
    assert isinstance(plan, Plan)
    for op in plan.operations:
        assert isinstance(op.kind, OpKind) and isinstance(op.account, str)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=60),
        JSON.map(lambda v: json.dumps(v).encode()),
        mutated(VALID_PLAN).map(lambda v: json.dumps(v).encode()),
    )
)
@example(b"[" * 100_000)
@example(b'{"format_version": 1, "targets": [], "config_digest": "x", "source_users": ' + b"9" * 5000 + b"}")
def test_plan_file_reader(scratch: Path, data: bytes) -> None:
    path = scratch / "plan.json"
    path.write_bytes(data)
    try:
        plan = api.read_plan(path)
    except PlanFileError as exc:
        assert str(exc).startswith(f"plan file {path}") or str(exc).startswith(
            f"cannot read plan file {path}"
        )
        return
    assert isinstance(plan, Plan)


# --- the audit log --------------------------------------------------------------------------

AUDITED = [
    Operation(
        OpKind.CREATE_USER, "jira", "amara", "new", changes=(FieldChange("email", None, "a@acme.test"),)
    ),
    Operation(OpKind.ADD_MEMBER, "jira", "amara", "rule", group="jira-eng"),
    Operation(OpKind.DEACTIVATE_USER, "wiki", "olga", "left", account_id="k-3"),
    Operation(OpKind.REMOVE_MEMBER, "wiki", "olga", "left", group="confluence-users"),
]


def _audit_lines(folder: Path) -> list[str]:
    """Write a real audit log of four operations; return its lines."""
    path = folder / "audit-source.jsonl"
    path.unlink(missing_ok=True)
    log = AuditLog(path, run_id="20240501T100000Z-1")
    for n, op in enumerate(AUDITED):
        log.record(op, "done" if n % 2 == 0 else "failed", "HTTP 400: bad email" if n == 1 else "")
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def audit_lines(scratch: Path) -> list[str]:
    return _audit_lines(scratch)


def test_an_untouched_audit_log_verifies(scratch: Path, audit_lines: list[str]) -> None:
    path = scratch / "audit.jsonl"
    path.write_text("\n".join(audit_lines) + "\n", encoding="utf-8")
    assert verify(path) == (len(AUDITED), None)


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=40), JSON.map(lambda v: json.dumps(v).encode())), max_size=4))
@example([b"[" * 100_000])
@example([b'{"prev": "' + b"0" * 64 + b'", "n": ' + b"9" * 5000 + b"}"])
def test_audit_verify_never_raises(scratch: Path, lines: list[bytes]) -> None:
    path = scratch / "audit.jsonl"
    path.write_bytes(b"\n".join(lines))
    count, problem = verify(path)
    assert type(count) is int and 0 <= count <= len(lines)
    assert problem is None or (isinstance(problem, str) and problem.startswith("line "))


@FUZZ
@given(st.integers(0, len(AUDITED) - 1), st.data())
def test_audit_verify_names_the_first_changed_line(
    scratch: Path, audit_lines: list[str], index: int, data: st.DataObject
) -> None:
    original = json.loads(audit_lines[index])
    changed = data.draw(mutated(original))
    lines = list(audit_lines)
    lines[index] = json.dumps(changed)
    path = scratch / "audit.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    count, problem = verify(path)

    if changed == original:
        assert (count, problem) == (len(AUDITED), None)
    else:
        assert count == index
        assert problem is not None and problem.startswith(f"line {index + 1}: ")
