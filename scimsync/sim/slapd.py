"""Run a real OpenLDAP slapd on loopback: a temporary cn=config, seeded mdb databases.

``running`` is the whole life in one ``with``: it writes a cn=config with ``slapadd -n0``
(schemas core, cosine, inetorgperson and nis), loads each database's seed LDIF with
``slapadd``, runs ``/usr/sbin/slapd`` in the foreground on a free loopback port, and at
the end stops it and removes its folder. ``scimsync demo --source ldap`` and the test
fixture (tests/slapd.py) build on it. Debian and Ubuntu ship the binaries in the
``slapd`` and ``ldap-utils`` packages; ``missing`` says when they are not there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SCHEMA_DIRS = (Path("/etc/ldap/schema"), Path("/etc/openldap/schema"))
MODULE_DIRS = (Path("/usr/lib/ldap"), Path("/usr/lib64/openldap"), Path("/usr/libexec/openldap"))
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
INSTALL = "apt-get install slapd ldap-utils"
START_TIMEOUT = 15.0  # seconds for slapd to listen; a loaded CI runner can be slow
# Entries may log in (by anonymous auth) and read everything once bound; nobody writes but
# the rootDN, which the access rules do not bind.
READ_ONLY = (
    "to attrs=userPassword by self write by anonymous auth by * none",
    "to * by users read by * none",
)


class SlapdError(RuntimeError):
    """slapd could not be set up or did not start: the message says why."""


@dataclass(frozen=True)
class Database:
    """One mdb database: its suffix, rootDN password, seed LDIF texts and access rules."""

    suffix: str
    root_password: str
    seed: tuple[str, ...] = ()  # LDIF texts, loaded with slapadd in this order
    access: tuple[str, ...] = READ_ONLY  # olcAccess values, in order ({n} is added)
    limits: tuple[str, ...] = ()  # olcLimits values

    @property
    def root_dn(self) -> str:
        """Return the rootDN, the one DN that may write."""
        return f"cn=admin,{self.suffix}"


@dataclass(frozen=True)
class Options:
    """Server-wide settings: TLS (when openssl can make certificates), size limit, referral."""

    tls: bool = False
    size_limit: int = 500  # Debian's default olcSizeLimit, written out
    referral: str | None = None


@dataclass(frozen=True)
class Slapd:
    """A running slapd: where to reach it and how to bind."""

    url: str
    ldaps_url: str | None
    ca_file: Path | None
    folder: Path


def missing() -> str | None:
    """Return what keeps slapd from running on this machine, or None when nothing does."""
    for binary in (SLAPD, SLAPADD):
        if not os.access(binary, os.X_OK):
            return f"{binary} is not installed"
    if _first_existing(SCHEMA_DIRS, "core.ldif") is None:
        return f"no OpenLDAP schema folder among {', '.join(map(str, SCHEMA_DIRS))}"
    return None


def _first_existing(paths: tuple[Path, ...], probe: str) -> Path | None:
    return next((p for p in paths if (p / probe).exists()), None)


def _database(index: int, db: Database, folder: Path) -> str:
    access = "".join(f"olcAccess: {{{n}}}{rule}\n" for n, rule in enumerate(db.access))
    limits = "".join(f"olcLimits: {limit}\n" for limit in db.limits)
    return f"""
dn: olcDatabase={{{index}}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{{index}}}mdb
olcSuffix: {db.suffix}
olcRootDN: {db.root_dn}
olcRootPW: {db.root_password}
olcDbDirectory: {folder / f"db{index}"}
olcDbMaxSize: 67108864
{access}{limits}"""


def config_ldif(
    folder: Path, schemas: Path, modules: Path | None, databases: Sequence[Database], options: Options
) -> str:
    """Return the cn=config of a server keeping its files in ``folder``."""
    module = (
        f"\ndn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\n"
        f"olcModulePath: {modules}\nolcModuleLoad: back_mdb\n"
        if modules
        else ""
    )
    certificates = (
        f"olcTLSCACertificateFile: {folder / 'ca.pem'}\nolcTLSCertificateFile: {folder / 'server.pem'}\n"
        f"olcTLSCertificateKeyFile: {folder / 'server.key'}\n"
        if options.tls
        else ""
    )
    referral = f"olcReferral: {options.referral}\n" if options.referral else ""
    includes = "".join(f"include: file://{schemas / name}.ldif\n" for name in SCHEMAS)
    dbs = "".join(_database(i, db, folder) for i, db in enumerate(databases, start=1))
    return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {folder / "slapd.pid"}
olcSizeLimit: {options.size_limit}
{referral}{certificates}{module}
dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: {options.size_limit}

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none
{dbs}"""


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


def free_ports(count: int) -> list[int]:
    """Return ``count`` loopback ports that were free a moment ago."""
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
        raise SlapdError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def prepare(folder: Path, databases: Sequence[Database], options: Options) -> bool:
    """Write the config and load the databases into ``folder``; return whether TLS is set up."""
    schemas = _first_existing(SCHEMA_DIRS, "core.ldif")
    if schemas is None:
        raise SlapdError(f"no OpenLDAP schema folder among {', '.join(map(str, SCHEMA_DIRS))}")
    options = Options(options.tls and make_certificates(folder), options.size_limit, options.referral)
    (folder / "slapd.d").mkdir()
    for index in range(1, len(databases) + 1):
        (folder / f"db{index}").mkdir()
    modules = _first_existing(MODULE_DIRS, "back_mdb.so")
    (folder / "config.ldif").write_text(
        config_ldif(folder, schemas, modules, databases, options), encoding="utf-8"
    )
    config = ["-F", str(folder / "slapd.d")]
    _run([str(SLAPADD), "-n0", *config, "-l", str(folder / "config.ldif")], "slapadd of cn=config")
    for index, db in enumerate(databases, start=1):
        for n, text in enumerate(db.seed):
            ldif = folder / f"seed-db{index}-{n}.ldif"
            ldif.write_text(text, encoding="utf-8")
            _run([str(SLAPADD), *config, "-b", db.suffix, "-q", "-l", str(ldif)], f"slapadd of {ldif.name}")
    return options.tls


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SlapdError(f"slapd exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SlapdError(
        f"slapd did not listen on port {port} within {START_TIMEOUT:.0f} s: {log.read_text()[-2000:]}"
    )


def launch(folder: Path, ldap_port: int, ldaps_port: int | None) -> subprocess.Popen[bytes]:
    """Run slapd on the given ports and wait until it listens."""
    urls = f"ldap://127.0.0.1:{ldap_port}/" + (f" ldaps://127.0.0.1:{ldaps_port}/" if ldaps_port else "")
    log = folder / "slapd.log"
    with log.open("wb") as out:
        # -d 0: stay in the foreground (a child we can stop) without debug output. A session
        # of its own: Ctrl-C in the terminal reaches only us, and we stop slapd in order.
        command = [str(SLAPD), "-d", "0", "-h", urls, "-F", str(folder / "slapd.d")]
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_listening(process, ldap_port, log)
    except SlapdError:
        stop(process)
        raise
    return process


def start(
    folder: Path, databases: Sequence[Database], options: Options = Options()
) -> tuple[subprocess.Popen[bytes], Slapd]:
    """Prepare ``folder`` and start slapd on free loopback ports (a second one for ldaps://)."""
    tls = prepare(folder, databases, options)
    problem = SlapdError("slapd was not started")
    # A free port can be taken between the probe and slapd's bind: try new ports then.
    for _ in range(3):
        ldap_port, ldaps_port = free_ports(2)
        try:
            process = launch(folder, ldap_port, ldaps_port if tls else None)
        except SlapdError as exc:
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


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop slapd: SIGTERM, then SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running(
    databases: Sequence[Database], options: Options = Options(), *, parent: Path | None = None
) -> Iterator[Slapd]:
    """Start slapd in a new folder (under ``parent``, if given); stop it and remove the folder after."""
    folder = Path(tempfile.mkdtemp(prefix="scimsync-slapd-", dir=parent))
    try:
        process, server = start(folder, databases, options)
        try:
            yield server
        finally:
            stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
