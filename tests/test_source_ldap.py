"""The ldap source against a real OpenLDAP slapd (tests/slapd.py).

Paging past the server's size limit, nested and cyclic groups, statuses, attributes, TLS,
and one clear line for each way a directory can be wrong. The expected tables below are
written from tests/fixtures/ldap/example.ldif, not from what the code returns.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import slapd as slapd_module
from slapd import (
    BULK_USERS,
    LIMITED_DN,
    LIMITED_PASSWORD,
    PARTNER,
    SERVICE_DN,
    SERVICE_PASSWORD,
    SUFFIX,
    Slapd,
    bulk_uuid,
    slapd_fixture,  # noqa: F401 (the session fixture `slapd`)
)

from scimsync.config import LdapSourceConfig, parse_config
from scimsync.errors import AuthError, ConfigError, ConnectorError
from scimsync.http import HttpSettings
from scimsync.ldap_lib import (
    LDAPResponseTimeoutError,
    LDAPSocketOpenError,
    LDAPSSLConfigurationError,
    LDAPStartTLSError,
)
from scimsync.models import SourceDirectory
from scimsync.sources import build_source
from scimsync.sources.ldap import LdapSource
from scimsync.sources.ldap_errors import bind_failure
from scimsync.sources.ldap_errors import failure as failure_of
from scimsync.sources.ldap_values import dn_key, flatten, member_dn, text

DISABLED = "(employeeType=disabled)"
U = "11111111-0000-4000-8000-00000000000"  # + 1..6: the entryUUIDs example.ldif gives

# id -> (username, email, first_name, last_name, display_name, active, groups)
SPECIAL = {
    U + "1": ("amara", "amara@example.test", "Amara", "Koné", "Amara Koné", True,
              {"engineering", "atlassian-jira-users"}),
    U + "2": ("zoe", "zoe@example.test", "Zoë", "Ångström", "Zoë Ångström (Design)", True,
              {"engineering", "atlassian-jira-users", "cycle-a", "cycle-b", "design"}),
    U + "3": ("lukasz", "lukasz@example.test", "Łukasz", "Żółć", "Łukasz Żółć", True,
              {"engineering", "platform", "cycle-a", "cycle-b"}),
    U + "4": ("bruce", "bruce@example.test", "小龍", "李", "李小龍", True,
              {"engineering", "platform", "design"}),
    U + "5": ("dora", "dora@example.test", "Dora", "Departed", "Dora Departed", False,
              {"atlassian-jira-users", "alumni"}),
    U + "6": ("", "", "", "Leaver", "Ghost Leaver", False, {"alumni"}),
}  # fmt: skip


def expected_users() -> dict[str, tuple[Any, ...]]:
    bulk = {
        bulk_uuid(i): (f"bulk{i:03d}", f"bulk{i:03d}@example.test", "Bulk", f"User {i}", f"Bulk User {i}",
                       True, {"bulk-even"} if i % 2 == 0 else set())
        for i in range(BULK_USERS)
    }  # fmt: skip
    return {**SPECIAL, **bulk}


# group name -> usernames of its members, direct or nested
EXPECTED_GROUPS = {
    "engineering": {"amara", "zoe", "lukasz", "bruce"},
    "platform": {"lukasz", "bruce"},
    "atlassian-jira-users": {"amara", "zoe", "dora"},
    "cycle-a": {"zoe", "lukasz"},
    "cycle-b": {"zoe", "lukasz"},
    "design": {"zoe", "bruce"},
    "alumni": {"dora", U + "6"},  # the leaver has no username: its id
    "bulk-even": {f"bulk{i:03d}" for i in range(0, BULK_USERS, 2)},
}


def config(server: Slapd, **keys: Any) -> LdapSourceConfig:
    data: dict[str, Any] = {
        "type": "ldap",
        "url": server.url,
        "bind_dn": SERVICE_DN,
        "password": SERVICE_PASSWORD,
        "base_dn": SUFFIX,
        "start_tls": False,  # the plain listener; the TLS tests turn it on
        "disabled_filter": DISABLED,
    }
    data.update(keys)
    return LdapSourceConfig(**{k: v for k, v in data.items() if v is not None})


def read(server: Slapd, settings: HttpSettings | None = None, **keys: Any) -> SourceDirectory:
    return LdapSource("source", config(server, **keys), settings).read()


def failure(server: Slapd, settings: HttpSettings | None = None, **keys: Any) -> str:
    with pytest.raises(ConnectorError) as caught:
        read(server, settings, **keys)
    return str(caught.value)


def as_rows(directory: SourceDirectory) -> dict[str, tuple[Any, ...]]:
    return {
        u.id: (u.username, u.email, u.first_name, u.last_name, u.display_name, u.active, set(u.groups))
        for u in directory.users
    }


# --- the whole directory ------------------------------------------------------------------


def test_reads_every_user_past_the_size_limit_with_statuses_and_nested_groups(
    slapd: Slapd, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    directory = read(slapd)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nldap source: read {len(directory.users)} users from slapd in {elapsed:.2f} s")
    assert len(directory.users) == 620  # the server's size limit is 500
    assert as_rows(directory) == expected_users()
    assert [u.id for u in directory.users if not u.active] == [U + "5", U + "6"]


def test_groups_hold_every_member_directly_or_nested_and_cycles_end(slapd: Slapd) -> None:
    directory = read(slapd)
    name_of = {u.id: u.username or u.id for u in directory.users}
    groups = {g.name: {name_of[i] for i in g.member_ids} for g in directory.groups}
    assert groups == EXPECTED_GROUPS
    assert len({g.id for g in directory.groups}) == len(EXPECTED_GROUPS)
    assert {g.name: g.id for g in directory.groups}["engineering"] == "22222222-0000-4000-8000-000000000001"


def test_unmapped_attributes_are_kept_binary_as_base64_and_passwords_never(slapd: Slapd) -> None:
    amara = next(u for u in read(slapd).users if u.username == "amara")
    assert dict(amara.attributes) == {
        "objectClass": "inetOrgPerson",
        "cn": "Amara Koné",
        "employeeNumber": "E001",
        "title": "Engineer",
        "telephoneNumber": ["+1 555 0101", "+1 555 0102"],
        "jpegPhoto": "/9j/4AAQSkZJRgABAQ==",  # the LDIF's bytes FF D8 FF E0 ... as base64
    }  # userPassword is readable by the bind DN (slapd.py's ACL) and still left out


def test_attributes_map_ldap_attributes_to_fields_in_place_of_the_defaults(slapd: Slapd) -> None:
    with_number = "(&(objectClass=inetOrgPerson)(employeeNumber=*))"
    directory = read(
        slapd, user_filter=with_number, attributes={"employeeNumber": "id", "cn": "display_name"}
    )
    rows = {u.id: (u.username, u.email, u.display_name) for u in directory.users}
    # zoe has two mail values: the second is an alias, the first the address.
    assert rows == {
        "E001": ("amara", "amara@example.test", "Amara Koné"),
        "E002": ("zoe", "zoe@example.test", "Zoë Ångström"),
    }
    zoe = next(u for u in directory.users if u.id == "E002")
    assert zoe.attributes == {"objectClass": "inetOrgPerson", "displayName": "Zoë Ångström (Design)"}
    # As a username, two values are two identities: which one is not a guess to make.
    assert failure(slapd, user_filter=with_number, attributes={"mail": "username"}) == (
        f"source: user uid=zoe,ou=people,{SUFFIX}: has 2 values of mail (username must be one value)"
    )


def test_group_member_attribute_limits_the_groups_read_to_one_kind(slapd: Slapd) -> None:
    directory = read(slapd, group_member_attribute="uniqueMember")
    assert {g.name: len(g.member_ids) for g in directory.groups if g.member_ids} == {"design": 2}


def test_small_pages_read_the_same_users_and_report_progress(slapd: Slapd) -> None:
    seen: list[tuple[str, int, int | None]] = []
    source = LdapSource("source", config(slapd, page_size=100))
    directory = source.read(progress=lambda what, done, total: seen.append((what, done, total)))
    assert as_rows(directory) == expected_users()
    users = [(done, total) for what, done, total in seen if what == "source: users"]
    assert users == [*((n, None) for n in range(100, 700, 100)), (620, None), (620, 620)]


def test_check_names_the_flavor_and_the_base(slapd: Slapd) -> None:
    source = LdapSource("source", config(slapd))
    assert source.check() == f"OpenLDAP at {slapd.url}, base_dn {SUFFIX}"


def test_the_registry_builds_the_ldap_source_from_the_config(slapd: Slapd, tmp_path: Path) -> None:
    data = {
        "version": 1,
        "source": {**config(slapd).model_dump(exclude_defaults=True), "password": "${LDAP_PASSWORD}"},
        "targets": {"jira": {"type": "jira", "url": "https://jira.example.test", "token": "t"}},
    }
    built = build_source(parse_config(data, base_dir=tmp_path, env={"LDAP_PASSWORD": SERVICE_PASSWORD}))
    assert isinstance(built, LdapSource)
    assert len(built.read().users) == 620


# --- a directory the source must refuse ------------------------------------------------------


def test_without_paging_a_search_past_the_size_limit_is_an_error(slapd: Slapd) -> None:
    assert failure(slapd, page_size=0) == (
        f"source: search (objectClass=inetOrgPerson) under {SUFFIX}: the server stopped at its size "
        "limit after 500 entries (sizeLimitExceeded, LDAP 4); nothing read is used: turn paging on "
        "(page_size > 0)"
    )


def test_paging_that_the_server_still_stops_at_its_limit_is_an_error(slapd: Slapd) -> None:
    message = failure(slapd, bind_dn=LIMITED_DN, password=LIMITED_PASSWORD)
    assert message == (
        f"source: search (objectClass=inetOrgPerson) under {SUFFIX}: the server stopped at its size "
        "limit after 500 entries (sizeLimitExceeded, LDAP 4); nothing read is used: let the bind DN "
        "page past the limit (OpenLDAP: olcLimits size.prtotal=unlimited)"
    )


@pytest.mark.parametrize(
    "bind_dn", [SERVICE_DN, f"cn=nobody,ou=services,{SUFFIX}"], ids=["wrong password", "unknown DN"]
)
def test_a_refused_bind_says_to_check_bind_dn_and_password(slapd: Slapd, bind_dn: str) -> None:
    with pytest.raises(AuthError) as caught:
        read(slapd, bind_dn=bind_dn, password="not-the-Password-9")
    assert str(caught.value) == (
        f"source: bind as {bind_dn}: invalid credentials (invalidCredentials, LDAP 49): "
        "check bind_dn and password"
    )


def test_an_unreachable_server_is_an_error(slapd: Slapd) -> None:
    closed = slapd.url.rsplit(":", 1)[0] + ":1"
    assert failure(slapd, url=closed) == f"source: {closed}: cannot connect (Connection refused)"


def test_a_base_dn_that_does_not_exist_is_an_error(slapd: Slapd) -> None:
    base = f"ou=nope,{SUFFIX}"
    expected = f"source: base_dn {base}: does not exist (noSuchObject, LDAP 32); check base_dn"
    assert failure(slapd, base_dn=base) == expected
    with pytest.raises(ConnectorError) as caught:
        LdapSource("source", config(slapd, base_dn=base)).check()
    assert str(caught.value) == expected


def test_a_base_dn_held_by_another_server_is_a_referral_error(slapd: Slapd) -> None:
    assert failure(slapd, base_dn="dc=elsewhere,dc=test") == (
        "source: base_dn dc=elsewhere,dc=test: the server refers to another server "
        "(ldap://ldap.elsewhere.test/dc=elsewhere,dc=test??sub); set url to it"
    )


def test_a_subtree_partly_held_by_another_server_is_an_error(slapd: Slapd) -> None:
    base = f"ou=linked,{PARTNER}"
    assert failure(slapd, base_dn=base) == (
        f"source: search (objectClass=inetOrgPerson) under {base}: part of the subtree is held by "
        f"another server (ldap://ldap.remote.test/ou=remote,{PARTNER}??sub); nothing read is used: "
        "set base_dn to a subtree this server holds"
    )


def test_an_active_user_without_username_is_an_error_naming_it(slapd: Slapd) -> None:
    assert failure(slapd, base_dn=f"ou=broken,{PARTNER}") == (
        f"source: user cn=Nobody Known,ou=broken,{PARTNER}: is active but has no uid (its username)"
    )
    # The leaver of example.ldif is read only because disabled_filter makes it inactive.
    assert failure(slapd, disabled_filter=None) == (
        f"source: user cn=Ghost Leaver,ou=people,{SUFFIX}: is active but has no uid (its username)"
    )


def test_two_groups_of_one_name_are_an_error(slapd: Slapd) -> None:
    assert failure(slapd, base_dn=f"ou=twins,{PARTNER}") == (
        f"source: group cn=twins,ou=east,ou=twins,{PARTNER}: has the name 'twins' of "
        f"cn=Twins,ou=twins,{PARTNER}: narrow group_filter or base_dn"
    )


def test_two_users_of_one_id_are_an_error(slapd: Slapd) -> None:
    assert failure(slapd, base_dn=f"ou=dupes,{PARTNER}", attributes={"employeeNumber": "id"}) == (
        f"source: user uid=ann2,ou=dupes,{PARTNER}: has the id '42' of uid=ann,ou=dupes,{PARTNER}"
    )


def test_a_user_with_two_usernames_is_an_error(slapd: Slapd) -> None:
    assert failure(slapd, base_dn=f"ou=twouids,{PARTNER}") == (
        f"source: user uid=jo,ou=twouids,{PARTNER}: has 2 values of uid (username must be one value)"
    )


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture
def tls(slapd: Slapd) -> Slapd:
    if slapd.ldaps_url is None:
        if os.environ.get("SCIMSYNC_REQUIRE_SLAPD") == "1":  # CI installs openssl: never skip there
            pytest.fail("the openssl command is missing, and SCIMSYNC_REQUIRE_SLAPD=1 requires the TLS tests")
        pytest.skip("!!! LDAP TLS TESTS SKIPPED: the openssl command is not installed !!!")
    return slapd


def test_ldaps_is_verified_with_ca_file(tls: Slapd) -> None:
    assert len(read(tls, url=tls.ldaps_url, ca_file=tls.ca_file).users) == 620


def test_ldaps_falls_back_to_the_http_ca_bundle(tls: Slapd) -> None:
    settings = HttpSettings(ca_bundle=str(tls.ca_file))
    assert len(read(tls, settings, url=tls.ldaps_url).users) == 620


def test_start_tls_is_verified_with_ca_file(tls: Slapd) -> None:
    assert len(read(tls, start_tls=True, ca_file=tls.ca_file).users) == 620


@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "StartTLS"])
def test_a_certificate_from_an_unknown_ca_is_a_tls_error_saying_how_to_fix_it(
    tls: Slapd, start_tls: bool
) -> None:
    url = tls.url if start_tls else tls.ldaps_url
    assert failure(tls, url=url, start_tls=start_tls) == (
        f"source: {url}: TLS certificate verification failed (self-signed certificate in certificate "
        "chain): set ca_file (or http.ca_bundle) to the CA bundle that signed the directory's certificate"
    )


def test_a_certificate_for_another_host_is_a_tls_error(tls: Slapd) -> None:
    assert tls.ldaps_url is not None
    url = tls.ldaps_url.replace("127.0.0.1", "localhost")  # the certificate names 127.0.0.1 only
    assert failure(tls, url=url, ca_file=tls.ca_file) == (
        f"source: {url}: TLS certificate verification failed (Hostname mismatch, certificate is not "
        "valid for 'localhost'.): put a host name the certificate names in url"
    )


def test_ldaps_to_a_plain_port_and_a_file_that_is_no_ca_are_errors(tls: Slapd) -> None:
    plain = tls.url.replace("ldap://", "ldaps://")
    assert failure(tls, url=plain, ca_file=tls.ca_file) == (
        f"source: {plain}: TLS handshake failed (EOF occurred in violation of protocol): "
        "is it an ldaps:// port?"
    )
    not_a_ca = tls.folder / "server.ext"
    assert failure(tls, url=tls.ldaps_url, ca_file=not_a_ca) == (
        f"source: {tls.ldaps_url}: cannot use the CA file (no certificate or crl found): "
        "check ca_file / http.ca_bundle"
    )


# --- config validation (no server) -----------------------------------------------------------


def ldap_problems(**keys: Any) -> list[str]:
    source = {"type": "ldap", "url": "ldaps://ldap.example.test", "bind_dn": "cn=x", "password": "pw-1234"}
    data = {
        "version": 1,
        "source": {**source, "base_dn": SUFFIX, **keys},
        "targets": {"jira": {"type": "jira", "url": "https://jira.example.test", "token": "t"}},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base_dir=Path("/srv"), env={})
    return caught.value.problems


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            {"user_filter": "(&(objectClass=person)(uid=a)"},
            "source.user_filter: is not a valid LDAP filter (invalid filter); "
            "a filter looks like (&(objectClass=person)(mail=*))",
        ),
        (
            {"group_filter": "(cn=a)(cn=b)"},
            "source.group_filter: is not a valid LDAP filter (missing boolean operator in filter); "
            "a filter looks like (&(objectClass=person)(mail=*))",
        ),
        (
            {"disabled_filter": "employeeType=disabled"},
            "source.disabled_filter: is not a valid LDAP filter (invalid filter); "
            "a filter looks like (&(objectClass=person)(mail=*))",
        ),
        (
            {"attributes": {"mail": "emial"}},
            "source.attributes.mail: 'emial' is not a user field (did you mean 'email'?)",
        ),
        (
            {"attributes": {"mail": "email", "userPrincipalName": "email"}},
            "source.attributes.userPrincipalName: 'email' is already mapped from mail",
        ),
        ({"page_size": -1}, "source.page_size: must be at least 0"),
        ({"start_tls": "yes"}, "source.start_tls: must be true or false"),
    ],
    ids=["unbalanced", "two filters", "no parentheses", "unknown field", "field twice", "page", "bool"],
)
def test_config_refuses_bad_filters_and_mappings(keys: dict[str, Any], expected: str) -> None:
    assert ldap_problems(**keys) == [expected]


def test_config_defaults() -> None:
    parsed = LdapSourceConfig(
        type="ldap", url="ldap://ldap.example.test", bind_dn="cn=x", password="pw-1234", base_dn="dc=x"
    )
    assert (parsed.flavor, parsed.start_tls, parsed.ca_file, parsed.page_size) == ("auto", True, None, 500)
    assert (parsed.disabled_filter, parsed.group_member_attribute) == (None, None)
    ok = "(&(objectCategory=person)(memberOf:1.2.840.113556.1.4.1941:=CN=G,DC=x))"
    assert (
        LdapSourceConfig(**{**parsed.model_dump(), "password": "pw-1234", "user_filter": ok}).user_filter
        == ok
    )


# --- pure helpers (no server) ----------------------------------------------------------------


def test_dn_keys_ignore_case_and_spaces_and_unique_member_uids() -> None:
    assert dn_key("UID=Zoe, OU=People,DC=Example,DC=Test") == dn_key("uid=zoe,ou=people,dc=example,dc=test")
    assert dn_key("cn=Lee\\, Bruce,ou=x") != dn_key("cn=Lee,ou=Bruce,ou=x")  # an escaped comma is a value
    assert dn_key("not a dn") == "not a dn"
    assert member_dn("uid=bruce,ou=people#'0101'B") == "uid=bruce,ou=people"
    assert member_dn("cn=a#b,ou=x") == "cn=a#b,ou=x"


def test_flatten_walks_nested_groups_and_ends_on_cycles() -> None:
    direct = {
        "outer": ["u1", "middle"],
        "middle": ["u2", "inner"],
        "inner": ["u3"],
        "a": ["b", "ua"],
        "b": ["a", "ub"],
        "self": ["self", "us"],
        "empty": [],
    }
    assert flatten(direct) == {
        "outer": {"u1", "u2", "u3"},
        "middle": {"u2", "u3"},
        "inner": {"u3"},
        "a": {"ua", "ub"},
        "b": {"ua", "ub"},
        "self": {"us"},
        "empty": set(),
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Zoë Ångström".encode(), "Zoë Ångström"),
        ("李小龍".encode(), "李小龍"),
        (b"\xff\xd8\xff\xe0", "/9j/4A=="),  # not UTF-8
        (b"S\x01\x05\x00", "UwEFAA=="),  # UTF-8, but control characters: binary
        (b"line one\nline two\ttab", "line one\nline two\ttab"),
    ],
)
def test_values_are_text_or_base64(value: bytes, expected: str) -> None:
    assert text("description", value) == expected


def test_binary_attributes_are_base64_even_when_they_decode() -> None:
    assert text("jpegPhoto", b"JFIF") == "SkZJRg=="
    assert text("userCertificate;binary", b"abc") == "YWJj"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            LDAPSocketOpenError(
                "socket ssl wrapping error: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                "unable to get local issuer certificate (_ssl.c:1006)"
            ),
            "TLS certificate verification failed (unable to get local issuer certificate): set ca_file "
            "(or http.ca_bundle) to the CA bundle that signed the directory's certificate",
        ),
        (
            LDAPSocketOpenError(
                "unable to open socket",
                [
                    (
                        LDAPSocketOpenError(
                            "socket connection error while opening: [Errno 111] Connection refused"
                        ),
                        1,
                    ),
                    (
                        LDAPSocketOpenError(
                            "socket ssl wrapping error: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                            "failed: certificate has expired (_ssl.c:1006)"
                        ),
                        2,
                    ),
                ],
            ),
            "TLS certificate verification failed (certificate has expired): set ca_file (or http.ca_bundle) "
            "to the CA bundle that signed the directory's certificate",
        ),
        (
            LDAPStartTLSError("startTLS failed - protocolError"),
            "the server refused StartTLS (protocolError); use ldaps:// or enable TLS",
        ),
        (
            LDAPSSLConfigurationError("invalid CA public key file"),
            "cannot use the CA file (invalid CA public key file): check ca_file / http.ca_bundle",
        ),
        (
            LDAPSocketOpenError(
                "socket connection error while opening: [Errno -2] Name or service not known"
            ),
            "cannot connect (Name or service not known)",
        ),
        (
            LDAPResponseTimeoutError("no response from server"),
            "no answer from the server in time (http.timeout)",
        ),
    ],
    ids=["unknown CA", "second address", "StartTLS refused", "CA file", "DNS", "timeout"],
)
def test_connection_failures_are_one_line_with_the_fix(exc: Exception, expected: str) -> None:
    assert str(failure_of("source", "ldaps://dc1.example.test", exc)) == (
        f"source: ldaps://dc1.example.test: {expected}"
    )


@pytest.mark.parametrize(
    ("code", "description", "expected"),
    [
        (
            13,
            "confidentialityRequired",
            "confidentialityRequired, LDAP 13: the server wants TLS: use ldaps:// or start_tls",
        ),
        (53, "unwillingToPerform", "unwillingToPerform, LDAP 53: account disabled"),
    ],
)
def test_other_bind_refusals_say_what_the_server_said(code: int, description: str, expected: str) -> None:
    result = {"result": code, "description": description, "message": "account disabled" if code == 53 else ""}
    error = bind_failure("source", "cn=x", result)
    assert not isinstance(error, AuthError)
    assert str(error) == f"source: bind as cn=x: {expected}"


def test_a_missing_slapd_skips_unless_ci_requires_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCIMSYNC_REQUIRE_SLAPD", raising=False)
    with pytest.raises(pytest.skip.Exception, match="SLAPD TESTS SKIPPED"):
        slapd_module._unavailable("no slapd")
    monkeypatch.setenv("SCIMSYNC_REQUIRE_SLAPD", "1")
    with pytest.raises(pytest.fail.Exception, match="SCIMSYNC_REQUIRE_SLAPD=1 requires the slapd tests"):
        slapd_module._unavailable("no slapd")
