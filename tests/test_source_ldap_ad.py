"""The ldap source's Active Directory behaviour, over ldap3's MOCK_SYNC strategy.

slapd cannot play AD: it has no userAccountControl, no bitwise matching rule
(1.2.840.113556.1.4.803), no LDAP_MATCHING_RULE_IN_CHAIN (1.2.840.113556.1.4.1941), no
objectGUID and no range retrieval. ldap3's mock has the AD schema and rootDSE
(OFFLINE_AD_2012_R2) and pages, but refuses extensible matches ("Extensible match not
allowed in Mock strategy"), so it cannot evaluate the in-chain rule either: the source
resolves nesting by walking ``member`` for AD as for OpenLDAP, and the walk is tested here
(cycles included). The mock never splits ``member`` into ranges: ``MaxValRange`` below plays
AD's 1,500-value ranges over it, and the range logic is tested directly as pure functions.
The mock compares strings, so ``objectCategory`` holds ``person`` where AD holds the class's
DN and expands ``person`` in filters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from scimsync.config import LdapSourceConfig
from scimsync.errors import ConnectorError
from scimsync.ldap_lib import ldap3
from scimsync.sources.ldap import LdapSource
from scimsync.sources.ldap_conn import Entry, LdapDirectory
from scimsync.sources.ldap_errors import holds_no_accounts
from scimsync.sources.ldap_values import RangeError, account_disabled, collect_ranged, ranged, text

BASE = "DC=acme,DC=example"
PEOPLE = f"OU=People,{BASE}"
GROUPS = f"OU=Groups,{BASE}"
SERVICE = f"CN=svc-scimsync,OU=Service,{BASE}"
PASSWORD = "svc-Secret-42"

# GUID 01020304-0506-0708-090a-0b0c0d0e0f10 as AD stores it: the first three fields
# little-endian, written out by hand rather than computed with the code's own uuid call.
ALICE_GUID_BYTES = bytes([4, 3, 2, 1, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14, 15, 16])
ALICE_GUID = "01020304-0506-0708-090a-0b0c0d0e0f10"


def guid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def person(name: str, n: int, uac: int | None, **extra: Any) -> tuple[str, dict[str, Any]]:
    attributes: dict[str, Any] = {
        "objectClass": ["top", "person", "organizationalPerson", "user"],
        "objectCategory": "person",
        "cn": name,
        "sAMAccountName": name.split()[0].lower(),
        "userPrincipalName": f"{name.split()[0].lower()}@corp.acme.example",
        "objectGUID": uuid.UUID(guid(n)).bytes_le,
        **extra,
    }
    if uac is not None:
        attributes["userAccountControl"] = uac
    return f"CN={name},{PEOPLE}", attributes


def group(name: str, n: int, members: Sequence[str]) -> tuple[str, dict[str, Any]]:
    attributes = {"objectClass": ["top", "group"], "cn": name, "member": list(members)}
    return f"CN={name},{GROUPS}", {**attributes, "objectGUID": uuid.UUID(guid(100 + n)).bytes_le}


def dn(name: str) -> str:
    return f"CN={name},{PEOPLE}"


ALICE = (
    f"CN=Alice Archer,{PEOPLE}",
    {
        "objectClass": ["top", "person", "organizationalPerson", "user"],
        "objectCategory": "person",
        "cn": "Alice Archer",
        "sAMAccountName": "alice",
        "userPrincipalName": "alice@corp.acme.example",
        "mail": "alice@acme.example",
        "givenName": "Alice",
        "sn": "Archer",
        "displayName": "Alice Archer",
        "department": "Finance",
        "objectGUID": ALICE_GUID_BYTES,
        "objectSid": bytes.fromhex("010500000000000515000000a1b2c3d4"),
        "userAccountControl": 512,  # NORMAL_ACCOUNT
    },
)
DIRECTORY = [
    ALICE,
    person("Bob Baker", 2, 514, mail="bob@acme.example"),  # NORMAL + ACCOUNTDISABLE
    person("Carol Clark", 3, 66050, mail="carol@acme.example"),  # + DONT_EXPIRE_PASSWORD, disabled
    person("Dave Dunn", 4, 66048),  # NORMAL + DONT_EXPIRE_PASSWORD; no mail
    person("Erin Evans", 5, 528, mail="erin@acme.example"),  # NORMAL + LOCKOUT: still active
    (
        f"CN=WS01,OU=Computers,{BASE}",  # a computer is a user by objectClass, not by category
        {
            "objectClass": ["top", "person", "organizationalPerson", "user", "computer"],
            "objectCategory": "computer",
            "cn": "WS01",
            "sAMAccountName": "WS01$",
            "userAccountControl": 4096,
            "objectGUID": uuid.UUID(guid(90)).bytes_le,
        },
    ),
    group("Finance", 1, [ALICE[0], f"CN=Finance Nested,{GROUPS}"]),
    group("Finance Nested", 2, [dn("Dave Dunn")]),
    group("Loop A", 3, [f"CN=Loop B,{GROUPS}", dn("Erin Evans")]),
    group("Loop B", 4, [f"CN=Loop A,{GROUPS}", dn("Bob Baker")]),
]

# sAMAccountName -> (id, email, display_name, active, groups), from DIRECTORY above
EXPECTED = {
    "alice": (ALICE_GUID, "alice@acme.example", "Alice Archer", True, {"Finance"}),
    "bob": (guid(2), "bob@acme.example", "Bob Baker", False, {"Loop A", "Loop B"}),
    "carol": (guid(3), "carol@acme.example", "Carol Clark", False, set()),
    "dave": (guid(4), "", "Dave Dunn", True, {"Finance", "Finance Nested"}),
    "erin": (guid(5), "erin@acme.example", "Erin Evans", True, {"Loop A", "Loop B"}),
}


def mock_connection(entries: Sequence[tuple[str, Mapping[str, Any]]]) -> Any:
    server = ldap3.Server("dc1.acme.example", get_info=ldap3.OFFLINE_AD_2012_R2)
    # check_names=False: like the real connection, which reads no schema, ask for any name.
    connection = ldap3.Connection(
        server, user=SERVICE, password=PASSWORD, client_strategy=ldap3.MOCK_SYNC, check_names=False
    )
    for entry_dn, attributes in [
        (BASE, {"objectClass": ["top", "domain"], "dc": "acme"}),
        (SERVICE, {"objectClass": ["top", "user"], "cn": "svc-scimsync", "userPassword": PASSWORD}),
        *entries,
    ]:
        connection.strategy.add_entry(entry_dn, dict(attributes))
    assert connection.bind()
    return connection


class MaxValRange(LdapDirectory):
    """AD's answer to a big group: at most 1,500 ``member`` values, as ``member;range=a-b``."""

    def __init__(self, connection: Any, *, page_size: int, size: int = 1500) -> None:
        super().__init__("source", connection, page_size=page_size)
        self.size = size
        self.reads: list[tuple[str, list[str]]] = []

    def search(self, base: str, search_filter: str, attributes: Sequence[str]) -> Iterator[list[Entry]]:
        for page in super().search(base, search_filter, attributes):
            yield [Entry(e.dn, self._ranged(e.raw, 0)) for e in page]

    def read(
        self, entry_dn: str, attributes: Sequence[str], *, base_dn: bool = False
    ) -> Mapping[str, Sequence[bytes]]:
        self.reads.append((entry_dn, list(attributes)))
        (selector,) = attributes
        name, _, span = selector.partition(";range=")
        assert span.endswith("-*"), selector
        return self._ranged(super().read(entry_dn, [name]), int(span[:-2]))

    def _ranged(self, raw: Mapping[str, Sequence[bytes]], start: int) -> dict[str, Sequence[bytes]]:
        values = raw.get("member")
        if values is None or (start == 0 and len(values) <= self.size):
            return dict(raw)
        chunk = list(values[start : start + self.size])
        end = "*" if start + self.size >= len(values) else str(start + self.size - 1)
        rest = {k: v for k, v in raw.items() if k != "member"}
        return {**rest, f"member;range={start}-{end}": chunk}


def config(**keys: Any) -> LdapSourceConfig:
    data = {"type": "ldap", "url": "ldaps://dc1.acme.example", "bind_dn": SERVICE, "password": PASSWORD}
    return LdapSourceConfig(**{**data, "base_dn": BASE, **keys})


def source(
    entries: Sequence[tuple[str, Mapping[str, Any]]], page_size: int = 1000, **keys: Any
) -> LdapSource:
    connection = mock_connection(entries)
    cfg = config(page_size=page_size, **keys)
    return LdapSource("source", cfg, connect=lambda: LdapDirectory("source", connection, page_size=page_size))


def rows(users: Sequence[Any]) -> dict[str, tuple[Any, ...]]:
    return {u.username: (u.id, u.email, u.display_name, u.active, set(u.groups)) for u in users}


# --- through the source ----------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1000, 2], ids=["one page", "pages of 2"])
def test_reads_ad_users_statuses_guids_and_nested_groups(page_size: int) -> None:
    directory = source(DIRECTORY, page_size=page_size).read()
    assert rows(directory.users) == EXPECTED
    groups = {g.name: (g.id, sorted(g.member_ids)) for g in directory.groups}
    assert groups == {
        "Finance": (guid(101), sorted([ALICE_GUID, guid(4)])),
        "Finance Nested": (guid(102), [guid(4)]),
        "Loop A": (guid(103), sorted([guid(2), guid(5)])),
        "Loop B": (guid(104), sorted([guid(2), guid(5)])),
    }


def test_the_rootdse_makes_auto_pick_active_directory_or_openldap() -> None:
    assert source(DIRECTORY).check() == f"Active Directory at ldaps://dc1.acme.example, base_dn {BASE}"
    # The same auto config against a server whose rootDSE is OpenLDAP's reads inetOrgPerson.
    server = ldap3.Server("ldap.acme.example", get_info=ldap3.OFFLINE_SLAPD_2_4)
    connection = ldap3.Connection(server, user=SERVICE, password=PASSWORD, client_strategy=ldap3.MOCK_SYNC)
    connection.strategy.add_entry(
        SERVICE, {"objectClass": ["person"], "cn": "svc", "sn": "s", "userPassword": PASSWORD}
    )
    inet = {"objectClass": ["inetOrgPerson"], "uid": "olga", "cn": "Olga O", "sn": "O", "entryUUID": guid(7)}
    connection.strategy.add_entry(f"uid=olga,{PEOPLE}", inet)
    assert connection.bind()
    openldap = LdapSource(
        "source", config(), connect=lambda: LdapDirectory("source", connection, page_size=10)
    )
    assert [(u.id, u.username, u.active) for u in openldap.read().users] == [(guid(7), "olga", True)]


def test_attributes_keep_the_rest_with_guids_canonical_and_sids_as_base64() -> None:
    alice = next(u for u in source(DIRECTORY).read().users if u.username == "alice")
    attributes = dict(alice.attributes)
    assert sorted(attributes.pop("objectClass")) == ["organizationalPerson", "person", "top", "user"]
    assert attributes == {
        "objectCategory": "person",
        "cn": "Alice Archer",
        "userPrincipalName": "alice@corp.acme.example",
        "department": "Finance",
        "objectSid": "AQUAAAAAAAUVAAAAobLD1A==",
        "userAccountControl": "512",
    }


def test_user_principal_name_is_the_email_only_when_mapped() -> None:
    users = source(DIRECTORY, attributes={"userPrincipalName": "email"}).read().users
    assert {u.username: u.email for u in users} == {
        "alice": "alice@corp.acme.example",
        "bob": "bob@corp.acme.example",
        "carol": "carol@corp.acme.example",
        "dave": "dave@corp.acme.example",
        "erin": "erin@corp.acme.example",
    }


def test_disabled_filter_adds_to_the_account_control_bit() -> None:
    users = source(DIRECTORY, disabled_filter="(department=Finance)").read().users
    assert {u.username for u in users if not u.active} == {"alice", "bob", "carol"}


def test_a_user_without_user_account_control_is_an_error() -> None:
    entries = [*DIRECTORY, person("Fay Fox", 6, None, mail="fay@acme.example")]
    with pytest.raises(ConnectorError) as caught:
        source(entries).read()
    assert str(caught.value) == (
        f"source: user CN=Fay Fox,{PEOPLE}: has no readable userAccountControl: can the bind DN read it?"
    )


def test_a_group_of_3200_members_is_read_through_every_range() -> None:
    crowd = [person(f"Member{i:04d} Crowd", 1000 + i, 512) for i in range(3200)]
    entries = [*crowd, group("Everyone", 9, [d for d, _ in crowd]), group("Few", 8, [crowd[0][0]])]
    directory = MaxValRange(mock_connection(entries), page_size=1000)
    read = LdapSource("source", config(), connect=lambda: directory).read()
    everyone = next(g for g in read.groups if g.name == "Everyone")
    assert sorted(everyone.member_ids) == sorted(guid(1000 + i) for i in range(3200))
    assert all("Everyone" in u.groups for u in read.users)
    # Two more ranges after the first answer (0-1499), each from the last value read: 1499-2998, 2998-*.
    everyone_dn = f"CN=Everyone,{GROUPS}"
    assert directory.reads == [(everyone_dn, ["member;range=1499-*"]), (everyone_dn, ["member;range=2998-*"])]


# --- the pure pieces -------------------------------------------------------------------------


def test_object_guid_renders_as_its_canonical_string() -> None:
    assert text("objectGUID", ALICE_GUID_BYTES) == ALICE_GUID
    assert text("ObjectGUID", ALICE_GUID_BYTES) == ALICE_GUID  # attribute names ignore case
    assert text("objectGUID", b"short") == "c2hvcnQ="  # not 16 bytes: no GUID, plain base64


@pytest.mark.parametrize(
    ("uac", "disabled"),
    [(b"512", False), (b"514", True), (b"66050", True), (b"66048", False), (b"528", False), (b"2", True)],
)
def test_account_disabled_is_bit_2_of_user_account_control(uac: bytes, disabled: bool) -> None:
    assert account_disabled([uac]) is disabled


def test_unreadable_user_account_control_is_none() -> None:
    assert account_disabled([]) is None
    assert account_disabled([b"512", b"514"]) is None
    assert account_disabled([b"NORMAL"]) is None


def test_ranged_reads_one_answer() -> None:
    values = [b"a", b"b"]
    assert ranged({"member": values}, "member") == (values, None)
    assert ranged({"Member;Range=0-1499": values}, "member") == (values, 1500)
    assert ranged({"member;range=3000-*": values}, "member", 3000) == (values, None)
    assert ranged({"uniqueMember;range=0-1": values}, "member") == ([], None)
    assert ranged({"memberOf": values}, "member") == ([], None)
    with pytest.raises(
        RangeError, match="asked for member values from 1500, the server sent member;range=0-1499"
    ):
        ranged({"member;range=0-1499": values}, "member", 1500)
    with pytest.raises(RangeError):
        ranged({"member;range=1500-1400": values}, "member", 1500)
    with pytest.raises(RangeError, match=r"from 1500, the server sent member$"):
        ranged({"member": values}, "member", 1500)


def test_collect_ranged_fetches_every_range_of_3200_values() -> None:
    values = [f"CN=U{i},{PEOPLE}".encode() for i in range(3200)]
    # Each range is asked from the last value read (overlapping by one), which must come first.
    answers = {
        "member;range=1499-*": {"member;range=1499-2998": values[1499:2999]},
        "member;range=2998-*": {"member;range=2998-*": values[2998:]},
    }
    asked: list[str] = []

    def fetch(selector: str) -> Mapping[str, Sequence[bytes]]:
        asked.append(selector)
        return answers[selector]

    assert collect_ranged({"member;range=0-1499": values[:1500]}, "member", fetch) == values
    assert asked == ["member;range=1499-*", "member;range=2998-*"]


def test_collect_ranged_reads_again_once_when_a_member_leaves_between_two_ranges() -> None:
    members = [f"CN=U{i},{PEOPLE}".encode() for i in range(8)]
    asked: list[str] = []

    def fetch(selector: str) -> Mapping[str, Sequence[bytes]]:
        asked.append(selector)
        start = int(selector.split("=")[1].split("-")[0])
        if asked == ["member;range=3-*"]:
            members.pop(0)  # U0 leaves after the first range: U4 moves back to index 3
        chunk = members[start : start + 4]
        end = "*" if start + 4 >= len(members) else str(start + 3)
        return {f"member;range={start}-{end}": chunk}

    found = collect_ranged({"member;range=0-3": members[:4]}, "member", fetch)
    assert found == members  # U1-U7: nobody who stayed is skipped, U0 is gone
    assert asked == ["member;range=3-*", "member;range=0-*", "member;range=3-*"]


def test_collect_ranged_refuses_values_that_keep_moving() -> None:
    def fetch(selector: str) -> Mapping[str, Sequence[bytes]]:
        start = int(selector.split("=")[1].split("-")[0])
        return {f"member;range={start}-*": [b"moved"]} if start else {"member;range=0-1": [b"a", b"b"]}

    with pytest.raises(RangeError, match="the member values moved between two ranges"):
        collect_ranged({"member;range=0-1": [b"a", b"b"]}, "member", fetch)


def test_collect_ranged_refuses_a_server_that_repeats_a_range() -> None:
    def fetch(selector: str) -> Mapping[str, Sequence[bytes]]:
        return {"member;range=0-1499": [b"x"]}  # the first range again, forever

    with pytest.raises(RangeError):
        collect_ranged({"member;range=0-1499": [b"x"]}, "member", fetch)


@pytest.mark.parametrize(
    ("uri", "harmless"),
    [
        ("ldap://DomainDnsZones.acme.example/DC=DomainDnsZones,DC=acme,DC=example", True),
        ("ldap://ForestDnsZones.acme.example/DC=ForestDnsZones,DC=acme,DC=example", True),
        ("ldap://acme.example/CN=Configuration,DC=acme,DC=example", True),
        ("ldap://child.acme.example/DC=child,DC=acme,DC=example", False),
        ("ldap://ldap.remote.test/ou=remote,dc=partner,dc=test??sub", False),
    ],
)
def test_only_ad_partitions_without_accounts_are_harmless_references(uri: str, harmless: bool) -> None:
    assert holds_no_accounts(uri) is harmless


class ReferringConnection:
    """A connection whose one search answers an entry and the continuation references given."""

    def __init__(self, uris: list[str]) -> None:
        self.uris = uris
        self.result: dict[str, Any] = {}
        self.response: list[dict[str, Any]] = []

    def search(self, *args: Any, **kwargs: Any) -> bool:
        self.result = {"result": 0, "description": "success", "controls": {}}
        entry = {"type": "searchResEntry", "dn": ALICE[0], "raw_attributes": {"cn": [b"Alice Archer"]}}
        self.response = [entry, *({"type": "searchResRef", "uri": [u]} for u in self.uris)]
        return True


def test_a_domain_root_search_ignores_ad_partition_references_and_refuses_others() -> None:
    partitions = [f"ldap://DomainDnsZones.acme.example/DC=DomainDnsZones,{BASE}"]
    directory = LdapDirectory("source", ReferringConnection(partitions), page_size=1000)
    assert [e.dn for page in directory.search(BASE, "(cn=*)", ["cn"]) for e in page] == [ALICE[0]]
    child = "ldap://child.acme.example/DC=child,DC=acme,DC=example"
    directory = LdapDirectory("source", ReferringConnection([*partitions, child]), page_size=1000)
    with pytest.raises(ConnectorError) as caught:
        list(directory.search(BASE, "(cn=*)", ["cn"]))
    assert str(caught.value) == (
        f"source: search (cn=*) under {BASE}: part of the subtree is held by another server ({child}); "
        "nothing read is used: set base_dn to a subtree this server holds"
    )
