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
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from scimsync.ldap_lib import ldap3

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SCHEMA_DIRS = (Path("/etc/ldap/schema"), Path("/etc/openldap/schema"))
MODULE_DIRS = (Path("/usr/lib/ldap"), Path("/usr/lib64/openldap"), Path("/usr/libexec/openldap"))
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


@dataclass(frozen=True)
class Slapd:
    """A running slapd: where to reach it and how to bind."""

    url: str
    ldaps_url: str | None
    ca_file: Path | None
    folder: Path


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


def _first_existing(paths: tuple[Path, ...], probe: str) -> Path | None:
    return next((p for p in paths if (p / probe).exists()), None)


def _database(index: int, suffix: str, folder: Path, access: str, extra: str = "") -> str:
    return f"""
dn: olcDatabase={{{index}}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{{index}}}mdb
olcSuffix: {suffix}
olcRootDN: cn=admin,{suffix}
olcRootPW: {ADMIN_PASSWORD}
olcDbDirectory: {folder}
olcDbMaxSize: 67108864
{access}{extra}"""


def config_ldif(folder: Path, schemas: Path, modules: Path | None, tls: bool) -> str:
    """Return the cn=config of the test server."""
    module = (
        f"\ndn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\n"
        f"olcModulePath: {modules}\nolcModuleLoad: back_mdb\n"
        if modules
        else ""
    )
    certificates = (
        f"olcTLSCACertificateFile: {folder / 'ca.pem'}\nolcTLSCertificateFile: {folder / 'server.pem'}\n"
        f"olcTLSCertificateKeyFile: {folder / 'server.key'}\n"
        if tls
        else ""
    )
    access = (
        "olcAccess: {0}to attrs=userPassword by self write by anonymous auth "
        f'by dn.exact="{SERVICE_DN}" read by * none\n'
        "olcAccess: {1}to * by users read by * none\n"
    )
    includes = "".join(
        f"include: file://{schemas / name}.ldif\n" for name in ("core", "cosine", "inetorgperson", "nis")
    )
    limits = (
        f'olcLimits: dn.exact="{SERVICE_DN}" size.prtotal=unlimited\n'
        f'olcLimits: dn.exact="{CAPPED_DN}" size.prtotal={CAPPED_ENTRIES}\n'
    )
    return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {folder / "slapd.pid"}
olcSizeLimit: {SIZE_LIMIT}
olcReferral: {ELSEWHERE}
{certificates}{module}
dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: {SIZE_LIMIT}

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none
{_database(1, SUFFIX, folder / "example", access, limits)}
{_database(2, PARTNER, folder / "partner", access)}"""


def make_certificates(folder: Path) -> bool:
    """Write ca.pem, server.pem and server.key (for IP 127.0.0.1 only); False without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return False
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:false\nextendedKeyUsage=serverAuth\n"
    )
    steps = [
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=scimsync-test-CA"
        " -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign",
        "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2"
        " -extfile server.ext",
    ]
    for step in steps:
        subprocess.run([openssl, *step.split()], cwd=folder, check=True, capture_output=True)
    return True


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"slapd did not listen on port {port} within 15 s: {log.read_text()[-2000:]}")


def prepare(folder: Path) -> bool:
    """Write the config and the databases into ``folder``; return whether TLS is set up."""
    schemas = _first_existing(SCHEMA_DIRS, "core.ldif")
    if schemas is None:
        raise RuntimeError(f"no OpenLDAP schema folder among {', '.join(map(str, SCHEMA_DIRS))}")
    tls = make_certificates(folder)
    for name in ("slapd.d", "example", "partner"):
        (folder / name).mkdir()
    (folder / "config.ldif").write_text(
        config_ldif(folder, schemas, _first_existing(MODULE_DIRS, "back_mdb.so"), tls), encoding="utf-8"
    )
    (folder / "bulk.ldif").write_text(bulk_ldif(), encoding="utf-8")
    config = ["-F", str(folder / "slapd.d")]
    _run([str(SLAPADD), "-n0", *config, "-l", str(folder / "config.ldif")], "slapadd of cn=config")
    for suffix, ldif in ((SUFFIX, FIXTURES / "example.ldif"), (SUFFIX, folder / "bulk.ldif")):
        _run([str(SLAPADD), *config, "-b", suffix, "-q", "-l", str(ldif)], f"slapadd of {ldif.name}")
    _run([str(SLAPADD), *config, "-b", PARTNER, "-q", "-l", str(FIXTURES / "partner.ldif")], "slapadd")
    return tls


def start(folder: Path) -> tuple[subprocess.Popen[bytes], Slapd]:
    """Prepare ``folder`` and start slapd on two free loopback ports."""
    tls = prepare(folder)
    problem = RuntimeError("slapd was not started")
    # A free port can be taken between the probe and slapd's bind: try new ports then.
    for _ in range(3):
        ldap_port, ldaps_port = _free_ports(2)
        try:
            process = launch(folder, ldap_port, ldaps_port if tls else None)
        except RuntimeError as exc:
            problem = exc
            continue
        server = Slapd(
            url=f"ldap://127.0.0.1:{ldap_port}",
            ldaps_url=f"ldaps://127.0.0.1:{ldaps_port}" if tls else None,
            ca_file=folder / "ca.pem" if tls else None,
            folder=folder,
        )
        return process, server
    raise problem


def launch(folder: Path, ldap_port: int, ldaps_port: int | None) -> subprocess.Popen[bytes]:
    """Run slapd on the given ports and wait until it listens."""
    urls = f"ldap://127.0.0.1:{ldap_port}/" + (f" ldaps://127.0.0.1:{ldaps_port}/" if ldaps_port else "")
    log = folder / "slapd.log"
    with log.open("wb") as out:
        # -d 0: stay in the foreground (a child we can stop) without debug output.
        command = [str(SLAPD), "-d", "0", "-h", urls, "-F", str(folder / "slapd.d")]
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_listening(process, ldap_port, log)
    except RuntimeError:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop slapd: SIGTERM, then SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
