"""The ldap source: users and groups of OpenLDAP or Active Directory (SPEC §3 "ldap", idp-apis §7).

One run reads, over one bound connection, every user ``user_filter`` matches under
``base_dn`` (paged: a server size limit never cuts the directory), the users
``disabled_filter`` matches (inactive, as are AD accounts with userAccountControl bit 2),
and every group ``group_filter`` matches with its ``member`` / ``uniqueMember`` values,
fetching AD's ranges (``member;range=1500-*``) past the first 1,500 members.

Nesting is resolved here, for both flavors, by walking the members of the groups read:
a member that is a group read brings in its own members, cycles included. AD's in-chain
rule (1.2.840.113556.1.4.1941) would give the same sets at one query per group, where the
walk needs none beyond the group search. It follows only groups that ``group_filter`` reads.
The primary group of an AD account (``primaryGroupID``, usually Domain Users) is not a
``member`` value and is not reported, as with ``memberOf`` (idp-apis §7).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

from scimsync.config import LdapSourceConfig
from scimsync.errors import ConnectorError
from scimsync.http import HttpSettings
from scimsync.models import SourceDirectory
from scimsync.sources import ldap_conn
from scimsync.sources.ldap_conn import Entry, LdapDirectory
from scimsync.sources.ldap_model import ACTIVE_DIRECTORY, FLAVORS, OPENLDAP, Flavor, Layout, assemble
from scimsync.sources.ldap_values import RangeError, collect_ranged, dn_key, member_dn
from scimsync.targets.base import Progress, no_progress


class LdapSource:
    """Read users and groups from an LDAP directory with a simple bind."""

    type = "ldap"

    def __init__(
        self,
        name: str,
        config: LdapSourceConfig,
        settings: HttpSettings | None = None,
        *,
        connect: Callable[[], LdapDirectory] | None = None,
    ) -> None:
        # `connect` is for tests that bring their own directory (ldap3's mock strategy).
        self.name = name
        self.config = config
        self._settings = settings or HttpSettings()
        self._connect = connect or (lambda: ldap_conn.connect(name, config, self._settings))
        self._directory: LdapDirectory | None = None

    def check(self) -> str:
        """Bind, tell the flavor and make sure base_dn exists."""
        with self._session() as directory:
            flavor = self._flavor(directory)
            directory.read(self.config.base_dn, ["1.1"], base_dn=True)
        return f"{flavor.name} at {self.config.url}, base_dn {self.config.base_dn}"

    def read(self, *, progress: Progress = no_progress) -> SourceDirectory:
        """Read every user with the groups it is in (directly or nested), and the groups."""
        with self._session() as directory:
            layout = Layout(self.name, self._flavor(directory), self.config)
            users = self._search(directory, layout.user_filter, layout.user_attributes, "users", progress)
            disabled: set[str] = set()
            if layout.disabled_filter:
                found = self._search(directory, layout.disabled_filter, ["1.1"], "disabled users", progress)
                disabled = {dn_key(e.dn) for e in found}
            groups = self._search(directory, layout.group_filter, layout.group_attributes, "groups", progress)
            members = {dn_key(g.dn): self._members(directory, layout, g) for g in groups}
        return assemble(layout, users, disabled, groups, members)

    def close(self) -> None:
        """Unbind a connection a read left open (an interrupted one)."""
        if self._directory is not None:
            self._directory.close()
            self._directory = None

    @contextlib.contextmanager
    def _session(self) -> Iterator[LdapDirectory]:
        self._directory = self._connect()
        try:
            yield self._directory
        finally:
            self.close()

    def _flavor(self, directory: LdapDirectory) -> Flavor:
        if self.config.flavor != "auto":
            return FLAVORS[self.config.flavor]
        return ACTIVE_DIRECTORY if directory.is_active_directory() else OPENLDAP

    def _search(
        self,
        directory: LdapDirectory,
        search_filter: str,
        attributes: Sequence[str],
        what: str,
        progress: Progress,
    ) -> list[Entry]:
        entries: list[Entry] = []
        for page in directory.search(self.config.base_dn, search_filter, attributes):
            entries.extend(page)
            progress(f"{self.name}: {what}", len(entries), None)
        progress(f"{self.name}: {what}", len(entries), len(entries))
        return entries

    def _members(self, directory: LdapDirectory, layout: Layout, group: Entry) -> list[str]:
        """Return the DN keys of a group's direct members, every range of them."""
        values: list[bytes] = []
        for attribute in layout.member_attributes:
            try:
                values += collect_ranged(group.raw, attribute, lambda spec: directory.read(group.dn, [spec]))
            except RangeError as exc:
                raise ConnectorError(self.name, f"group {group.dn}", str(exc)) from None
        # A DN is UTF-8; one that is not matches no entry rather than stopping the read.
        return [dn_key(member_dn(v.decode("utf-8", "replace"))) for v in values]
