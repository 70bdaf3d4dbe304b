"""The identity providers ``scimsync demo --source NAME`` can start: name -> the company, served.

Each entry of ``SOURCES`` is a context manager factory: given the company and the demo's
folder, it starts what the IdP needs, fills it with the people and their groups, and
yields a ``DemoSource`` whose ``block`` is the ``source:`` section of the demo's config.
Leaving the ``with`` stops whatever was started. A simulated IdP with a
``seed_company(people)`` method joins with one entry: ``"okta": served(...)``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from werkzeug.test import Client

from scimsync.errors import ScimsyncError
from scimsync.http.scim import GROUP_SCHEMA, MEDIA_TYPE, USER_SCHEMA
from scimsync.ldap_lib import ldap3
from scimsync.sim import slapd
from scimsync.sim.atlassian_cloud import AtlassianCloudSim
from scimsync.sim.company import write_csv
from scimsync.sim.entra import CLIENT_ID as ENTRA_CLIENT
from scimsync.sim.entra import CLIENT_SECRET as ENTRA_SECRET
from scimsync.sim.entra import TENANT_ID as ENTRA_TENANT
from scimsync.sim.entra import EntraSim
from scimsync.sim.google import TOKEN_PATH as GOOGLE_TOKEN_PATH
from scimsync.sim.google import GoogleSim
from scimsync.sim.keycloak import SECRET as KEYCLOAK_SECRET
from scimsync.sim.keycloak import KeycloakSim
from scimsync.sim.okta import TOKEN as OKTA_TOKEN
from scimsync.sim.okta import OktaSim
from scimsync.sim.onelogin import OneLoginSim
from scimsync.sim.server import SimServer

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

People = list[dict[str, Any]]


@dataclass(frozen=True)
class DemoSource:
    """A running IdP: what the demo says about it and its ``source:`` block."""

    title: str  # "OpenLDAP slapd at ldap://127.0.0.1:38211"
    block: str  # the keys under `source:`, YAML, not indented (include_groups is the demo's)
    hint: str  # how to change a person there, for "What to try next"


Start = Callable[[People, Path], AbstractContextManager[DemoSource]]


class CompanySim(Protocol):
    """A simulated IdP: a WSGI app that can be filled with the made-up company."""

    @property
    def app(self) -> WSGIApplication:
        """Return the WSGI app that serves the IdP's API."""

    def seed_company(self, people: People) -> object:
        """Add the people and the groups they name (whatever it returns is not used)."""


def served(
    make: Callable[[], CompanySim],
    block: Callable[[str], str],
    name: str,
    hint: Callable[[str], str] | None = None,
) -> Start:
    """Return an entry for a simulated IdP: seed it, serve it on loopback, yield its block.

    ``block`` and ``hint`` get the server's base URL; ``name`` is the IdP's, for the demo's lines.
    """

    @contextmanager
    def start(people: People, folder: Path) -> Iterator[DemoSource]:
        sim = make()
        sim.seed_company(people)
        with SimServer(sim.app) as server:
            how = hint(server.url) if hint else f"change a person through the {name} API at {server.url}"
            yield DemoSource(f"a simulated {name} at {server.url}", block(server.url), how)

    return start


@contextmanager
def file_source(people: People, folder: Path) -> Iterator[DemoSource]:
    """Write the company as a CSV file: the default, needing nothing else."""
    path = folder / "company.csv"
    write_csv(people, path)
    hint = f"edit {path} (set a person's active to false, rename someone)"
    yield DemoSource(f"{path} (a CSV file)", "type: file\npath: company.csv\n", hint)


LDAP_BLOCK = """\
type: ldap
url: {url}
start_tls: false                     # only because the demo's slapd listens on loopback
bind_dn: {service}
password: ${{SCIMSYNC_DEMO_LDAP_PASSWORD:-sim-ldap-password}}
base_dn: {base}
flavor: openldap
disabled_filter: "(employeeType=disabled)"   # OpenLDAP has no disabled flag: this company's rule
"""
BASE_DN = "dc=acme,dc=example"
OUS = ("people", "groups", "services")
SERVICE_DN = f"cn=scimsync,ou=services,{BASE_DN}"  # the read-only account scimsync binds as
LDAP_ADMIN_PASSWORD = "sim-ldap-admin-password"
# RFC 2849 SAFE-STRING: anything else is written base64 (``attr:: ...``).
SAFE = re.compile(r"[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*")
Attributes = Mapping[str, str | Sequence[str]]


def _line(name: str, value: str) -> str:
    if value == "" or (SAFE.fullmatch(value) and not value.endswith(" ")):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def _entry(dn: str, attributes: Attributes) -> str:
    lines = [_line("dn", dn)]
    for name, values in attributes.items():
        lines += [_line(name, v) for v in ([values] if isinstance(values, str) else values)]
    return "\n".join(lines) + "\n"


def _dn(kind: str, value: str, ou: str) -> str:
    return f"{kind}={ldap3.utils.dn.escape_rdn(value)},ou={ou},{BASE_DN}"


def _uuid(name: str) -> str:
    # Stable entryUUIDs: the same company gets the same ids in every demo run.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"scimsync-demo:{name}"))


def _person(person: dict[str, Any]) -> Attributes:
    attributes: dict[str, str | list[str]] = {
        "objectClass": "inetOrgPerson",
        "entryUUID": _uuid(person["id"]),
        "uid": person["username"],
        "cn": f"{person['first_name']} {person['last_name']}",
        "givenName": person["first_name"],
        "sn": person["last_name"],
        "displayName": f"{person['first_name']} {person['last_name']}",
        "mail": person["email"],
        "employeeNumber": person["id"],
        "departmentNumber": person["department"],
    }
    if not person["active"]:
        attributes["employeeType"] = "disabled"
    return attributes


def company_ldif(people: People, service_password: str) -> str:
    """Return the company as LDIF: inetOrgPersons under ou=people, groupOfNames under ou=groups."""
    entries = [
        _entry(BASE_DN, {"objectClass": ["dcObject", "organization"], "dc": "acme", "o": "Acme"}),
        *(_entry(f"ou={ou},{BASE_DN}", {"objectClass": "organizationalUnit", "ou": ou}) for ou in OUS),
        _entry(
            SERVICE_DN,
            {
                "objectClass": ["organizationalRole", "simpleSecurityObject"],
                "cn": "scimsync",
                "userPassword": service_password,
            },
        ),
    ]
    entries += [_entry(_dn("uid", p["username"], "people"), _person(p)) for p in people]
    for group in sorted({g for p in people for g in p["groups"]}):
        members = [_dn("uid", p["username"], "people") for p in people if group in p["groups"]]
        attributes = {"objectClass": "groupOfNames", "entryUUID": _uuid(f"group:{group}"), "cn": group}
        entries.append(_entry(_dn("cn", group, "groups"), {**attributes, "member": members}))
    return "\n".join(entries)


@contextmanager
def ldap_source(people: People, folder: Path) -> Iterator[DemoSource]:
    """Run a real OpenLDAP slapd holding the company (people under ou=people, groups under ou=groups)."""
    problem = slapd.missing()
    if problem is not None:
        raise ScimsyncError(
            f"demo --source ldap runs OpenLDAP's slapd, and {problem}: install it with "
            f"`{slapd.INSTALL}` (Debian, Ubuntu), or pick another --source"
        )
    database = slapd.Database(BASE_DN, LDAP_ADMIN_PASSWORD, seed=(company_ldif(people, "sim-ldap-password"),))
    try:
        with slapd.running([database], parent=folder) as server:
            hint = (
                f"ldapmodify -x -H {server.url} -D {database.root_dn} -w {LDAP_ADMIN_PASSWORD}"
                " (set a person's employeeType to disabled, rename someone)"
            )
            block = LDAP_BLOCK.format(url=server.url, service=SERVICE_DN, base=BASE_DN)
            yield DemoSource(f"OpenLDAP slapd at {server.url}, base {BASE_DN}", block, hint)
    except slapd.SlapdError as exc:
        raise ScimsyncError(f"demo --source ldap: the demo's slapd did not start: {exc}") from None


class ScimIdp:
    """A SCIM 2.0 identity provider: the strict Atlassian Cloud SCIM simulator, filled over SCIM."""

    token = "sim-idp-token"
    directory_id = "acme-idp"
    base_path = f"/scim/directory/{directory_id}"

    def __init__(self) -> None:
        # Its own directory and key: the demo may also run an Atlassian Cloud target.
        self.sim = AtlassianCloudSim(directory_id=self.directory_id, token=self.token)

    @property
    def app(self) -> WSGIApplication:
        """Return the simulator's WSGI app."""
        return self.sim.app

    def seed_company(self, people: People) -> None:
        """POST every person to /Users and every group to /Groups, as a SCIM client would."""
        client = Client(self.sim.app)
        ids = {p["username"]: self._post(client, "/Users", _scim_user(p))["id"] for p in people}
        for group in sorted({g for p in people for g in p["groups"]}):
            members = [{"value": ids[p["username"]]} for p in people if group in p["groups"]]
            body = {"schemas": [GROUP_SCHEMA], "displayName": group, "members": members}
            self._post(client, "/Groups", body)
        self.sim.log.clear()

    def _post(self, client: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": MEDIA_TYPE}
        response = client.post(self.sim.base_path + path, data=json.dumps(body), headers=headers)
        if response.status_code != 201:
            # Our own company refused by our own simulator: a bug, not a user's mistake.
            raise RuntimeError(
                f"seeding the SCIM IdP: POST {path} answered {response.status_code}: {response.text}"
            )
        created: dict[str, Any] = json.loads(response.get_data(as_text=True))
        return created


def _scim_user(person: dict[str, Any]) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": person["username"],
        "externalId": person["id"],  # the HR system's id, as IdPs keep it
        "name": {"givenName": person["first_name"], "familyName": person["last_name"]},
        "displayName": f"{person['first_name']} {person['last_name']}",
        "emails": [{"value": person["email"], "type": "work", "primary": True}],
        "active": person["active"],
        "department": person["department"],
    }


SCIM_BLOCK = """\
type: scim
url: {url}{path}     # the SCIM base: /Users and /Groups are under it
token: ${{SCIMSYNC_DEMO_SCIM_TOKEN:-sim-idp-token}}
"""


def _scim_hint(url: str) -> str:
    users = f"{url}{ScimIdp.base_path}/Users"
    return f"curl -H 'Authorization: Bearer {ScimIdp.token}' {users}   (PATCH active to false: a leaver)"


def _okta(url: str) -> str:
    return f"type: okta\nurl: {url}\ntoken: ${{SCIMSYNC_DEMO_OKTA_TOKEN:-{OKTA_TOKEN}}}\n"


def _entra(url: str) -> str:
    secret = f"${{SCIMSYNC_DEMO_ENTRA_SECRET:-{ENTRA_SECRET}}}"
    return (
        f"type: entra\ntenant_id: {ENTRA_TENANT}\nclient_id: {ENTRA_CLIENT}\nclient_secret: {secret}\n"
        f"login_url: {url}\ngraph_url: {url}\n"
    )


def _onelogin(url: str) -> str:
    secret = "${SCIMSYNC_DEMO_ONELOGIN_SECRET:-sim-onelogin-secret}"
    return f"type: onelogin\nurl: {url}\nclient_id: sim-onelogin-client\nclient_secret: {secret}\n"


def _keycloak(url: str) -> str:
    secret = f"${{SCIMSYNC_DEMO_KEYCLOAK_SECRET:-{KEYCLOAK_SECRET}}}"
    return f"type: keycloak\nurl: {url}\nrealm: acme\nclient_id: scimsync\nclient_secret: {secret}\n"


@contextmanager
def google_source(people: People, folder: Path) -> Iterator[DemoSource]:
    """Serve the company from a simulated Google Workspace, with a throwaway service-account key."""
    sim = GoogleSim()
    subject = sim.seed_company(people)
    with SimServer(sim.app) as server:
        key = sim.write_credentials_file(
            folder / "google-service-account.json", server.url + GOOGLE_TOKEN_PATH
        )
        block = (
            f"type: google\ncredentials_file: {key.name}\nsubject: {subject}\n"
            f"url: {server.url}\ntoken_url: {server.url}{GOOGLE_TOKEN_PATH}\n"
        )
        hint = f"change a person through the Google Workspace Directory API at {server.url}"
        yield DemoSource(f"a simulated Google Workspace at {server.url}", block, hint)


SOURCES: dict[str, Start] = {
    "file": file_source,
    "ldap": ldap_source,
    "okta": served(OktaSim, _okta, "Okta org"),
    "entra": served(EntraSim, _entra, "Microsoft Entra ID tenant"),
    "google": google_source,
    "onelogin": served(OneLoginSim, _onelogin, "OneLogin account"),
    "keycloak": served(KeycloakSim, _keycloak, "Keycloak realm"),
    "scim": served(
        ScimIdp,
        lambda url: SCIM_BLOCK.format(url=url, path=ScimIdp.base_path),
        "SCIM 2.0 service",
        _scim_hint,
    ),
}
DEFAULT = "file"


def pick(name: str) -> Start:
    """Return the entry for ``name``; an unknown name is an error that lists the known ones."""
    if name not in SOURCES:
        raise ScimsyncError(f"demo: no source '{name}' (choose from {', '.join(SOURCES)})")
    return SOURCES[name]
