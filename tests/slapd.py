"""A real OpenLDAP slapd for the tests: the session fixture ``slapd``.

It builds a cn=config folder with ``slapadd -n0`` (schemas core, cosine, inetorgperson and
nis; ``olcSizeLimit: 500``, the Debian default, written out), seeds two mdb databases with
``slapadd`` from tests/fixtures/ldap/ plus generated bulk users, and runs ``/usr/sbin/slapd``
in the foreground on free loopback ports: ``ldap://`` (StartTLS offered) and ``ldaps://``,
with a CA and a server certificate (for 127.0.0.1 only) made by the ``openssl`` command.
At the end it stops slapd and removes the folder.

Use it from a test module with ``from slapd import slapd_fixture`` and a ``slapd`` argument.
Tests that need entries of their own add them under a fresh OU with ``fresh_ou`` and
``add_entries`` (as the rootDN, the one account that may write), so they never meet
another test's entries. ``CAPPED_DN`` binds with a paged-search total of
``CAPPED_ENTRIES``: its searches fail part way through a larger subtree.
Without slapd installed the tests that use it skip with a loud reason, unless
SCIMSYNC_REQUIRE_SLAPD=1 (CI sets it): then they fail. Without ``openssl`` only the TLS
tests skip (``Slapd.ldaps_url`` is None). Installed but failing to start is always a failure.
The launcher itself (config, slapadd, start, stop) is scimsync/sim/slapd.py, which the demo
uses too; this module holds the test directory and the pytest side.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from scimsync.ldap_lib import ldap3
from scimsync.sim import slapd as core
from scimsync.sim.slapd import (  # noqa: F401 (re-exported: the tests' names for the core's)
    MODULE_DIRS,
    SCHEMA_DIRS,
    SLAPADD,
    SLAPD,
    Database,
    Options,
    Slapd,
    launch,
    make_certificates,
    stop,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ldap"

SUFFIX = "dc=example,dc=test"
PARTNER = "dc=partner,dc=test"
SERVICE_DN = f"cn=scimsync,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "sync-Secret-42"
LIMITED_DN = f"cn=limited,ou=services,{SUFFIX}"
LIMITED_PASSWORD = "limited-Secret-42"
ADMIN_DN = f"cn=admin,{SUFFIX}"  # the rootDN: bypasses the access rules, so it seeds entries
ADMIN_PASSWORD = "admin-Secret-42"
CAPPED_DN = f"cn=capped,ou=services,{SUFFIX}"
CAPPED_PASSWORD = "capped-Secret-42"
CAPPED_ENTRIES = 30  # olcLimits size.prtotal of CAPPED_DN: a paged search stops after 30 entries
SIZE_LIMIT = 500
BULK_USERS = 614  # + the 6 users of example.ldif = 620, past the size limit
ELSEWHERE = "ldap://ldap.elsewhere.test/"  # the default referral, for bases slapd does not hold
# Only SERVICE_DN reads passwords; every bound DN reads the rest.
ACCESS = (
    f'to attrs=userPassword by self write by anonymous auth by dn.exact="{SERVICE_DN}" read by * none',
    "to * by users read by * none",
)
LIMITS = (
    f'dn.exact="{SERVICE_DN}" size.prtotal=unlimited',
    f'dn.exact="{CAPPED_DN}" size.prtotal={CAPPED_ENTRIES}',
)


def bulk_uuid(i: int) -> str:
    """Return the entryUUID the fixture gives bulk user ``i``."""
    return f"33333333-0000-4000-8000-{i:012d}"


def bulk_ldif() -> str:
    """Return the generated users bulk000..., the group bulk-even (the even ones) and CAPPED_DN."""
    users = [
        f"dn: uid=bulk{i:03d},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\n"
        f"entryUUID: {bulk_uuid(i)}\nuid: bulk{i:03d}\ncn: Bulk User {i}\ngivenName: Bulk\n"
        f"sn: User {i}\nmail: bulk{i:03d}@example.test\n"
        for i in range(BULK_USERS)
    ]
    members = "".join(f"member: uid=bulk{i:03d},ou=people,{SUFFIX}\n" for i in range(0, BULK_USERS, 2))
    group = (
        f"dn: cn=bulk-even,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\n"
        f"entryUUID: 22222222-0000-4000-8000-000000000099\ncn: bulk-even\n{members}"
    )
    capped = (
        f"dn: {CAPPED_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: capped\nuserPassword: {CAPPED_PASSWORD}\n"
    )
    return "\n".join([*users, group, capped])


def databases() -> tuple[Database, Database]:
    """Return the two databases: SUFFIX (example.ldif + the bulk users) and PARTNER."""
    example = (FIXTURES / "example.ldif").read_text(encoding="utf-8")
    partner = (FIXTURES / "partner.ldif").read_text(encoding="utf-8")
    return (
        Database(SUFFIX, ADMIN_PASSWORD, seed=(example, bulk_ldif()), access=ACCESS, limits=LIMITS),
        Database(PARTNER, ADMIN_PASSWORD, seed=(partner,), access=ACCESS),
    )


def options(*, tls: bool = True) -> Options:
    """Return the server settings: TLS when openssl is there, Debian's size limit, a referral."""
    return Options(tls=tls, size_limit=SIZE_LIMIT, referral=ELSEWHERE)


def config_ldif(folder: Path, schemas: Path, modules: Path | None, tls: bool) -> str:
    """Return the cn=config of the test server."""
    return core.config_ldif(folder, schemas, modules, databases(), options(tls=tls))


def prepare(folder: Path) -> bool:
    """Write the config and the databases into ``folder``; return whether TLS is set up."""
    return core.prepare(folder, databases(), options())


def start(folder: Path) -> tuple[subprocess.Popen[bytes], Slapd]:
    """Prepare ``folder`` and start slapd on two free loopback ports."""
    return core.start(folder, databases(), options())


Attributes = Mapping[str, str | Sequence[str]]


def add_entries(server: Slapd, entries: Iterable[tuple[str, Attributes]]) -> None:
    """Add entries (DN, attributes with their objectClass) as the rootDN, in order."""
    connection = ldap3.Connection(
        ldap3.Server("127.0.0.1", port=int(server.url.rsplit(":", 1)[1])),
        user=ADMIN_DN,
        password=ADMIN_PASSWORD,
        auto_bind=True,
    )
    try:
        for dn, attributes in entries:
            if not connection.add(dn, attributes=dict(attributes)):
                raise RuntimeError(f"adding {dn} failed: {connection.result}")
    finally:
        connection.unbind()


def fresh_ou(server: Slapd, name: str) -> str:
    """Create ``ou=<name>`` under SUFFIX and return its DN, a base no other test uses."""
    dn = f"ou={name},{SUFFIX}"
    add_entries(server, [(dn, {"objectClass": "organizationalUnit", "ou": name})])
    return dn


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("SCIMSYNC_REQUIRE_SLAPD") == "1":
        pytest.fail(f"{reason}, and SCIMSYNC_REQUIRE_SLAPD=1 requires the slapd tests", pytrace=False)
    pytest.skip(
        f"!!! SLAPD TESTS SKIPPED: {reason}. Install the slapd and ldap-utils packages "
        "(CI sets SCIMSYNC_REQUIRE_SLAPD=1, which makes this a failure) !!!"
    )


@pytest.fixture(scope="session", name="slapd")
def slapd_fixture() -> Iterator[Slapd]:
    """Start the test slapd once for the session; stop it and remove its folder at the end."""
    if not (os.access(SLAPD, os.X_OK) and os.access(SLAPADD, os.X_OK)):
        _unavailable(f"{SLAPD} or {SLAPADD} is not installed")
    folder = Path(tempfile.mkdtemp(prefix="scimsync-slapd-"))
    try:
        try:
            process, server = start(folder)
        except RuntimeError as exc:
            # Installed but broken is a failure, never a skip: it would hide a real problem.
            pytest.fail(f"the test slapd did not start: {exc}", pytrace=False)
        try:
            yield server
        finally:
            stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
