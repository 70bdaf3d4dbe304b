"""The ldap source's connection: verified TLS, simple bind, paged searches.

A search the server cut short is an error, never a short directory; ``ldap_errors``
words every failure.
"""

from __future__ import annotations

import contextlib
import math
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from scimsync import interrupt
from scimsync.config import LdapSourceConfig
from scimsync.errors import ConnectorError
from scimsync.http import HttpSettings
from scimsync.ldap_lib import PAGED_RESULTS, LDAPException, LDAPStartTLSError, ldap3
from scimsync.sources.ldap_errors import bind_failure, failure, references_error, result_error
from scimsync.sources.ldap_values import Raw

# rootDSE supportedCapabilities of Active Directory (LDAP_CAP_ACTIVE_DIRECTORY_OID).
AD_CAPABILITY = "1.2.840.113556.1.4.800"


@dataclass(frozen=True)
class Entry:
    """One search result: the entry's DN and its attribute values as the server sent them."""

    dn: str
    raw: Raw


class _VerifiedTls(ldap3.Tls):  # type: ignore[misc]
    """ldap3's TLS with Python's own certificate and host name check (ldap3 uses a deprecated one)."""

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        context = ssl.create_default_context(cafile=self.ca_certs_file)  # CERT_REQUIRED, host checked
        connection.socket = context.wrap_socket(
            connection.socket, server_hostname=connection.server.host, do_handshake_on_connect=do_handshake
        )


def connect(system: str, config: LdapSourceConfig, settings: HttpSettings) -> LdapDirectory:
    """Open a verified connection to the directory and bind as ``bind_dn``."""
    parts = urlsplit(config.url)
    secure = parts.scheme.lower() == "ldaps"
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host:
        raise ConnectorError(system, config.url, "the url names no host (ldaps://host:port)")
    ca = str(config.ca_file) if config.ca_file else settings.ca_bundle
    connection: Any = None
    try:
        server = ldap3.Server(
            host,
            port=port or (636 if secure else 389),
            use_ssl=secure,
            tls=_VerifiedTls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca),
            get_info=ldap3.DSA,  # the rootDSE only, which tells Active Directory apart
            connect_timeout=settings.timeout,
        )
        connection = ldap3.Connection(
            server,
            user=config.bind_dn,
            password=config.password.reveal(),
            authentication=ldap3.SIMPLE,
            read_only=True,
            auto_referrals=False,  # a referral is reported, never followed with our password
            receive_timeout=math.ceil(settings.timeout),  # ldap3 packs it into SO_RCVTIMEO: an int
        )
        connection.open()
        if config.start_tls and not secure and not connection.start_tls():
            raise LDAPStartTLSError("startTLS failed - not started")
        bound = connection.bind()
    except LDAPException as exc:
        _discard(connection)
        raise failure(system, config.url, exc) from None
    if not bound:
        result = connection.result
        _discard(connection)
        raise bind_failure(system, config.bind_dn, result)
    return LdapDirectory(system, connection, page_size=config.page_size)


def _discard(connection: Any) -> None:
    # ldap3 leaves the socket of a failed open or handshake open: close it ourselves.
    if connection is None:
        return
    socket = getattr(connection, "socket", None)
    if socket is not None:
        socket.close()
    connection.closed = True


class LdapDirectory:
    """One bound connection; the ldap source reads the directory through it only."""

    def __init__(self, system: str, connection: Any, *, page_size: int) -> None:
        self.system = system
        self._connection = connection
        self.page_size = page_size

    def is_active_directory(self) -> bool:
        """Tell whether the rootDSE announces Active Directory's capability."""
        info = self._connection.server.info
        features = info.supported_features if info is not None else []
        return any(feature[0] == AD_CAPABILITY for feature in features)

    def search(self, base: str, search_filter: str, attributes: Sequence[str]) -> Iterator[list[Entry]]:
        """Yield the pages of a subtree search; page after page with the paged-results control."""
        what = f"search {search_filter} under {base}"
        cookie: bytes | None = None
        received = 0
        while True:
            interrupt.check()  # a signal while reading: no new page is asked for
            paging = {"paged_size": self.page_size, "paged_cookie": cookie} if self.page_size else {}
            result, response = self._search(what, base, search_filter, ldap3.SUBTREE, attributes, paging)
            page = self._entries(what, response)
            received += len(page)
            error = result_error(self.system, what, result, base=base, received=received, paging=bool(paging))
            if error:
                raise error
            yield page
            # RFC 2696: an empty cookie ends the search (idp-apis §7). A server that ignores
            # the (non-critical) control sends none, and any cut it made was answered with 4.
            control = (result.get("controls") or {}).get(PAGED_RESULTS, {})
            cookie = control.get("value", {}).get("cookie") if self.page_size else None
            if not cookie:
                return

    def read(self, dn: str, attributes: Sequence[str], *, base_dn: bool = False) -> Raw:
        """Return the attributes of one entry (``base_dn``: the config's base) or an empty mapping."""
        what = f"entry {dn}"
        result, response = self._search(what, dn, "(objectClass=*)", ldap3.BASE, attributes, {})
        base = dn if base_dn else None
        if error := result_error(self.system, what, result, base=base, received=0, paging=False):
            raise error
        entries = self._entries(what, response)
        return entries[0].raw if entries else {}

    def close(self) -> None:
        """Unbind and close the socket."""
        # An error here means the server already dropped the connection: nothing left to release.
        with contextlib.suppress(LDAPException):
            self._connection.unbind()
        _discard(self._connection)

    def _search(
        self, what: str, base: str, search_filter: str, scope: Any, attributes: Sequence[str], extra: Any
    ) -> tuple[Mapping[str, Any], list[Mapping[str, Any]]]:
        try:
            self._connection.search(base, search_filter, scope, attributes=list(attributes), **extra)
        except LDAPException as exc:
            raise failure(self.system, what, exc) from None
        return self._connection.result, list(self._connection.response or [])

    def _entries(self, what: str, response: list[Mapping[str, Any]]) -> list[Entry]:
        entries = []
        for item in response:
            if item.get("type") == "searchResRef":
                if error := references_error(self.system, what, item.get("uri") or []):
                    raise error
            elif item.get("type") == "searchResEntry":
                raw = {str(k): list(v) for k, v in item["raw_attributes"].items()}
                entries.append(Entry(dn=item["dn"], raw=raw))
        return entries
