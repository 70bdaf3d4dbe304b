"""The keycloak source: one realm's users and groups through the admin REST API (SPEC §3, idp §5).

Authentication: OAuth client credentials at ``{url}/realms/{realm}/protocol/openid-connect/token``
(idp §5.1) through ``ClientCredentials``, fetched again before the token expires and once
after a 401. ``url`` is the server's root, with ``/auth`` on installs before Keycloak 17.
The client must be confidential with Service accounts roles on; its service account needs
the realm-management role ``view-users`` and nothing more.

A read without ``include_groups``: ``/users/count``, every page of ``/users`` at once, the
count again — the users read must be exactly that count, before and after, or a
service account that may view only some users would pass for a short directory —, then the
group tree and every group's direct members (brief). With ``include_groups``: the group
tree; the members of the matching groups and of the groups below them, as full
representations — they are the users, nobody else is read in detail —; every other
group's members brief, for the other groups the people in scope are in. ``/users/count``
cannot check a scoped read; each list is still checked page by page (keycloak_paging).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import quote

import requests

from scimsync.config import KeycloakSourceConfig
from scimsync.errors import AuthError, ConnectorError, ResponseError
from scimsync.http import ClientCredentials, HttpClient, HttpSettings, TokenAuth, default_error_parser
from scimsync.models import SourceDirectory, User
from scimsync.sources.keycloak_groups import read_members, read_tree
from scimsync.sources.keycloak_model import (
    GroupNode,
    assemble,
    check_names,
    is_service_account,
    scoped_groups,
    to_user,
)
from scimsync.sources.keycloak_paging import KeycloakList, ListChangedError, Rep, read_counted
from scimsync.targets.base import Progress, no_progress

log = logging.getLogger("scimsync.sources.keycloak")

TOKEN_ENDPOINT = "token endpoint"  # how ClientCredentials names it in errors
COUNT = "GET /users/count"
USERS = KeycloakList("/users", {"briefRepresentation": False})
# {"error": "HTTP 403 Forbidden"} (idp §5.4) only repeats the status line the message has already.
_STATUS_LINE = re.compile(r"HTTP \d{3}\b.*")


def parse_error(response: requests.Response) -> str:
    """Return Keycloak's message: ``errorMessage`` (admin API), ``error_description`` or ``error`` (§5.4)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for field in ("errorMessage", "error_description", "error"):
            value = body.get(field)
            if isinstance(value, str) and value:
                return "" if _STATUS_LINE.fullmatch(value) else value
    return default_error_parser(response)


class KeycloakSource:
    """Read one Keycloak realm with a confidential client's service account."""

    type = "keycloak"

    def __init__(
        self,
        name: str,
        config: KeycloakSourceConfig,
        settings: HttpSettings,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        post: Callable[..., requests.Response] = requests.post,
    ) -> None:
        # `sleep`, `clock` and `post` are for tests that must not wait or that fake the token endpoint.
        self.name = name
        self.config = config
        realm = quote(config.realm, safe="")
        self._tokens = ClientCredentials(
            name,
            f"{config.url}/realms/{realm}/protocol/openid-connect/token",
            config.client_id,
            config.client_secret,
            timeout=settings.timeout,
            verify=settings.ca_bundle or True,
            clock=clock,
            post=post,
        )
        self._client = HttpClient(
            name,
            f"{config.url}/admin/realms/{realm}",
            auth=TokenAuth(self._tokens),
            settings=settings,
            error_parser=parse_error,
            sleep=sleep,
            clock=clock,
        )

    def check(self) -> str:
        """Count the realm's users: one cheap authenticated read."""
        with self._hints():
            count = self._count()
        return f"Keycloak realm '{self.config.realm}' with {count} user{'' if count == 1 else 's'}"

    def read(self, *, progress: Progress = no_progress) -> SourceDirectory:
        """Read the users (or, with include_groups, the members of those groups) and every group."""
        with self._hints():
            if self.config.include_groups:
                return self._read_scoped(progress)
            users = self._read_users(progress)
            nodes = self._tree(progress)
            members = self._members(nodes, (), progress)
        return assemble(self.name, users, nodes, _ids(nodes, members))

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()

    # --- reading ---------------------------------------------------------------------------

    def _count(self) -> int:
        body = self._client.get_json("/users/count", obj=COUNT)
        if isinstance(body, bool) or not isinstance(body, int) or body < 0:
            raise ResponseError(self.name, COUNT, "expected a number of users (idp §5.2)")
        return body

    def _read_users(self, progress: Progress) -> list[User]:
        """Read every user; a list that moved under the read is read once more before giving up."""
        try:
            return self._users_once(progress)
        except ListChangedError as exc:
            log.warning("%s; reading the users again", exc)
        return self._users_once(progress)

    def _users_once(self, progress: Progress) -> list[User]:
        size = self.config.page_size
        before = self._count()
        reps = read_counted(self._client, USERS, size, before, lambda n: progress("users", n, before))
        after = self._count()
        if after != before:
            cause = f"the realm went from {before} to {after} users during the read"
            raise ListChangedError(self.name, COUNT, cause)
        if len(reps) != after:
            raise ResponseError(
                self.name,
                "GET /users",
                f"read {len(reps)} users but /users/count says {after}: the service account may view only "
                "some users (give it view-users, not only query-users, idp §5.1), or this Keycloak "
                "counts service accounts (idp §5.2)",
            )
        return [to_user(self.name, rep) for rep in reps]

    def _tree(self, progress: Progress) -> list[GroupNode]:
        nodes = read_tree(self._client, self.config.page_size)
        check_names(self.name, nodes)
        progress("groups", len(nodes), len(nodes))
        return nodes

    def _members(
        self, nodes: Sequence[GroupNode], full: Collection[str], progress: Progress
    ) -> list[list[Rep]]:
        def report(done: int, total: int) -> None:
            progress("group members", done, total)

        return read_members(self._client, nodes, self.config.page_size, full=full, report=report)

    def _read_scoped(self, progress: Progress) -> SourceDirectory:
        nodes = self._tree(progress)
        scope = scoped_groups(nodes, self.config.include_groups)
        members = self._members(nodes, scope, progress)
        reps: dict[str, Rep] = {}
        for node, found in zip(nodes, members, strict=True):
            if node.id in scope:
                # The unscoped /users leaves service accounts out; so does a scoped read (§5.2).
                reps.update((m["id"], m) for m in found if m["id"] not in reps and not is_service_account(m))
        users = [to_user(self.name, rep) for rep in reps.values()]
        progress("users", len(users), len(users))
        return assemble(self.name, users, nodes, _ids(nodes, members))

    # --- messages --------------------------------------------------------------------------

    @contextmanager
    def _hints(self) -> Iterator[None]:
        """Add to an error what to check in the config or in Keycloak."""
        try:
            yield
        except AuthError as exc:
            raise AuthError(
                exc.system, exc.obj, exc.cause + self._auth_hint(exc), status=exc.status
            ) from None
        except ConnectorError as exc:
            # The token endpoint failed, or the realm's lists are not there: a wrong URL or realm.
            lists = ("GET /users", "GET /groups?")
            if exc.obj != TOKEN_ENDPOINT and not (exc.status == 404 and exc.obj.startswith(lists)):
                raise
            hint = (
                f"; check source.url (with /auth before Keycloak 17) and source.realm '{self.config.realm}'"
            )
            raise type(exc)(exc.system, exc.obj, exc.cause + hint, status=exc.status) from None

    def _auth_hint(self, exc: AuthError) -> str:
        client, realm = self.config.client_id, self.config.realm
        if exc.obj == TOKEN_ENDPOINT:
            return (
                f"; in Keycloak: source.client_id and source.client_secret of client '{client}' in realm "
                f"'{realm}', which needs Client authentication and Service accounts roles on (idp §5.1)"
            )
        if exc.status == 403:
            return f"; give the service account of client '{client}' the realm-management role view-users"
        return f"; a fresh token was refused too: is client '{client}' in realm '{realm}' (source.realm)?"


def _ids(nodes: Sequence[GroupNode], members: Sequence[Sequence[Rep]]) -> dict[str, list[str]]:
    return {node.id: [m["id"] for m in found] for node, found in zip(nodes, members, strict=True)}
