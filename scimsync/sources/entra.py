"""The entra source: users and groups of Microsoft Entra ID through Microsoft Graph v1.0 (idp-apis §2).

Authentication is app-only OAuth client credentials (§2.1): ``ClientCredentials`` posts
``client_id``, ``client_secret`` and the scope ``{graph_url}/.default`` to
``{login_url}/{tenant_id}/oauth2/v2.0/token`` and refreshes the token a minute before it
expires and once after a 401. Not msal: msal also discovers the authority (instance and
OpenID metadata requests) before that one POST, validates the authority's host (which a
simulator or a proxy is not), and would be a new dependency for a flow of one form POST
with the same refresh rules the other OAuth sources share.

A full read lists ``/users`` (with ``$select``: ``accountEnabled`` is not returned by
default, §2.2), ``/groups``, then every group's ``transitiveMembers`` (§2.5: the members
through nested groups, already flattened; the nested groups themselves are listed too and
skipped), each at ``$top=999`` following ``@odata.nextLink`` (§2.3), groups in parallel.

Scoping (``include_groups``): every group is still listed and every group's members are
still read, because ``User.groups`` must hold every group a person is in (group rules may
name groups outside ``include_groups``, SPEC §4); a ``startswith`` filter on the group list
would save nothing. What is saved is the detail: ``/users`` is not read, and people come
only from the transitive members of the matching groups, read with the user fields
selected; every other group is read with ``$select=id``. Deleted users are not listed at
all (§2.4), which is right: they have left.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from scimsync.config import EntraSourceConfig
from scimsync.errors import AuthError, ConnectorError, NotFoundError
from scimsync.http import ClientCredentials, HttpClient, HttpSettings, TokenAuth
from scimsync.http.errors import one_line
from scimsync.models import SourceDirectory, User, glob_match
from scimsync.sources.entra_model import (
    GROUP_SELECT,
    USER_SELECT,
    GroupRef,
    assemble,
    log,
    member_kind,
    parse_group,
    parse_user,
)
from scimsync.sources.entra_pages import API, graph_error, read_list
from scimsync.targets.base import Progress, no_progress

TOKEN_ENDPOINT = "token endpoint"  # how scimsync.http.tokens names it in errors
PERMISSIONS = (
    "grant the app registration the Microsoft Graph application permissions User.Read.All and "
    "GroupMember.Read.All, with admin consent"
)
# The identity platform's error_description ends in trace lines (CRLF-separated): noise here.
_TRACE = re.compile(r"\s*Trace ID:.*?(?=;|$)")
_LISTS = re.compile(rf"GET {re.escape(API)}/(users|groups)( page \d+)?")


class EntraSource:
    """Read users and groups from Microsoft Entra ID (Microsoft Graph, app-only)."""

    type = "entra"

    def __init__(
        self,
        name: str,
        config: EntraSourceConfig,
        settings: HttpSettings,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # `sleep` and `clock` are the HTTP layer's and the token cache's, for tests.
        self.name = name
        self.config = config
        token_url = f"{config.login_url}/{quote(config.tenant_id, safe='')}/oauth2/v2.0/token"
        credentials = ClientCredentials(
            name,
            token_url,
            config.client_id,
            config.client_secret,
            scope=f"{config.graph_url}/.default",
            timeout=settings.timeout,
            verify=settings.ca_bundle or True,
            clock=clock,
        )
        self._client = HttpClient(
            name,
            config.graph_url + API,
            auth=TokenAuth(credentials),
            settings=settings,
            error_parser=graph_error,
            sleep=sleep,
            clock=clock,
        )

    def check(self) -> str:
        """Read one user and one group: the token and both permissions work."""
        with self._hints():
            for path in ("/users", "/groups"):
                params = {"$select": "id", "$top": 1}
                self._client.get_json(path, params=params, obj=f"GET {API}{path}")
        return f"Entra ID tenant {self.config.tenant_id}: users and groups readable"

    def read(self, *, progress: Progress = no_progress) -> SourceDirectory:
        """Read the users (or, with include_groups, the members of those groups) and every group."""
        include = self.config.include_groups
        with self._hints():
            users = None if include else self._users(progress)
            groups = self._groups(progress)
            detailed = {g.id for g in groups if any(glob_match(g.name, p) for p in include)}
            if include and not detailed:
                log.warning("%s: no group matches include_groups %s: no one is in scope", self.name, include)
            members, people = self._members(groups, detailed, progress)
        return assemble(self.name, people if users is None else users, groups, members, scoped=bool(include))

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()

    def _users(self, progress: Progress) -> list[User]:
        what = f"{self.name}: users"
        read = 0

        def report(where: str, page: list[dict[str, Any]]) -> None:
            nonlocal read
            read += len(page)
            progress(what, read, None)

        items = read_list(self._client, "/users", USER_SELECT, on_page=report)
        progress(what, len(items), len(items))
        return [parse_user(self.name, item) for item in items]

    def _groups(self, progress: Progress) -> list[GroupRef]:
        what = f"{self.name}: groups"
        groups: list[GroupRef] = []

        def take(where: str, page: list[dict[str, Any]]) -> None:
            groups.extend(parse_group(self.name, where, item) for item in page)
            progress(what, len(groups), None)

        read_list(self._client, "/groups", GROUP_SELECT, on_page=take)
        progress(what, len(groups), len(groups))
        return groups

    def _members(
        self, groups: list[GroupRef], detailed: set[str], progress: Progress
    ) -> tuple[dict[str, list[str]], list[User]]:
        """Return group id -> transitive user member ids, and the users read in detail."""
        what = f"{self.name}: group members"
        lock = threading.Lock()
        done = 0

        def read(group: GroupRef) -> tuple[list[str], list[dict[str, Any]]]:
            nonlocal done
            users: list[dict[str, Any]] = []

            def take(where: str, page: list[dict[str, Any]]) -> None:
                users.extend(item for item in page if member_kind(self.name, where, item) == "user")

            select = USER_SELECT if group.id in detailed else ("id",)
            path = f"/groups/{quote(group.id, safe='')}/transitiveMembers"
            try:
                read_list(self._client, path, select, about=f" (group '{group.name}')", on_page=take)
            except NotFoundError as exc:
                cause = f"{exc.cause}; the group was deleted during the read (or is not replicated yet)"
                cause += ": run again"
                raise NotFoundError(exc.system, exc.obj, cause, status=exc.status) from None
            with lock:
                done += 1
                progress(what, done, len(groups))
            return [u["id"] for u in users], users if group.id in detailed else []

        results = self._client.map_parallel(read, groups)
        people: dict[str, User] = {}
        for _, items in results:
            for item in items:
                if item["id"] not in people:
                    people[item["id"]] = parse_user(self.name, item)
        return {g.id: ids for g, (ids, _) in zip(groups, results, strict=True)}, list(people.values())

    @contextmanager
    def _hints(self) -> Iterator[None]:
        """Add what to check to a refused credential, a missing permission or a wrong URL."""
        try:
            yield
        except ConnectorError as exc:
            hint = self._hint(exc)
            if hint is None:
                raise
            cause = _TRACE.sub("", one_line(exc.cause))
            raise type(exc)(exc.system, exc.obj, f"{cause}; {hint}", status=exc.status) from None

    def _hint(self, exc: ConnectorError) -> str | None:
        if exc.obj == TOKEN_ENDPOINT:
            if isinstance(exc, AuthError) and (
                "invalid_resource" in exc.cause or "invalid_scope" in exc.cause
            ):
                return "check source.graph_url: the token's scope is {graph_url}/.default"
            if isinstance(exc, AuthError):
                return (
                    "check source.tenant_id, source.client_id and source.client_secret "
                    "(the Entra ID app registration's secret value, not its ID)"
                )
            return (
                "check source.login_url (the Entra ID sign-in root, e.g. https://login.microsoftonline.com)"
            )
        if isinstance(exc, AuthError):
            if exc.status == 403:
                return PERMISSIONS
            return (
                "Microsoft Graph refused a fresh token: check that source.login_url and "
                "source.graph_url are one cloud"
            )
        if isinstance(exc, NotFoundError) and _LISTS.fullmatch(exc.obj):
            return "check source.graph_url (the Microsoft Graph root, e.g. https://graph.microsoft.com)"
        return None
