"""The onelogin source: users, roles and groups of a OneLogin account (SPEC §3 "onelogin", idp-apis §4).

Authentication: OAuth client credentials at ``{url}/auth/oauth2/v2/token``, the client id
and secret sent as HTTP Basic as the SDK does (§4.1); the 10-hour token is refreshed a
minute before it expires, and once more after a 401. Reads: ``/api/1/groups`` (v1, §4.4),
``/api/2/roles`` and each role's ``/users`` (in parallel), then ``/api/2/users``, 100 a
page (§4.2). A user's groups are the roles listing them plus their one ``group_id`` group.

Scoping: with ``include_groups`` that match only role names, only the members of those
roles are read in detail (``/api/2/users?user_ids=...``, 100 ids a request); every role's
member list is still read, since a scoped person's other roles feed the group rules.
A glob matching a OneLogin *group* reads every user: the v2 list has no group filter
(§4.2), and the group is only in each user's own record. The engine scopes again either way.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from scimsync.config import OneLoginSourceConfig
from scimsync.errors import AuthError, ConnectorError, NotFoundError, ResponseError
from scimsync.http import ClientCredentials, HttpClient, HttpSettings, TokenAuth
from scimsync.models import SourceDirectory, glob_match
from scimsync.sources.onelogin_model import Assembler, Catalog, catalog_entry
from scimsync.sources.onelogin_pages import (
    PAGE_SIZE,
    header_pages,
    item_id,
    parse_error,
    total_count,
    v1_pages,
)
from scimsync.targets.base import Progress, no_progress

log = logging.getLogger("scimsync.sources.onelogin")

TOKEN_PATH = "/auth/oauth2/v2/token"
USERS, ROLES, GROUPS = "/api/2/users", "/api/2/roles", "/api/1/groups"
CREDENTIALS_HINT = (
    "check source.client_id and source.client_secret: a OneLogin API credential "
    "(Administration > Developers > API Credentials) with the scope 'Read users' or more (idp §4.1)"
)
URL_HINT = "check source.url: the OneLogin account URL, such as https://acme.onelogin.com"
OWNER_HINT = "OneLogin answers 500 when the admin who created the API credential was deleted (idp §4.1)"


class OneLoginSource:
    """Read users, roles and groups from OneLogin's API v2 (and v1 groups)."""

    type = "onelogin"

    def __init__(
        self,
        name: str,
        config: OneLoginSourceConfig,
        settings: HttpSettings,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # `sleep` and `clock` are the HTTP layer's, for tests that must not really wait.
        self.name = name
        self.config = config
        self._tokens = ClientCredentials(
            name,
            config.url.rstrip("/") + TOKEN_PATH,
            config.client_id,
            config.client_secret,
            basic=True,  # §4.1: the SDK sends the client id and secret as HTTP Basic
            timeout=settings.timeout,
            verify=settings.ca_bundle or True,
            clock=clock,
        )
        self._client = HttpClient(
            name,
            config.url,
            auth=TokenAuth(self._tokens),
            settings=settings,
            error_parser=parse_error,
            sleep=sleep,
            clock=clock,
        )

    def check(self) -> str:
        """Read one user, for the account's user count."""
        with self._hints():
            label = f"GET {USERS}"
            response = self._client.request("GET", USERS, params={"limit": 1}, ok=(200,), obj=label)
            count = total_count(self.name, label, response)
        return f"OneLogin account with {count} user{'' if count == 1 else 's'}"

    def read(self, *, progress: Progress = no_progress) -> SourceDirectory:
        """Read the users (every one, or the scoped roles' members) with their roles and group."""
        with self._hints():
            groups = dict(self._catalog(v1_pages(self._client, GROUPS, noun="group"), GROUPS, "group"))
            roles = dict(self._catalog((p.items for p in self._pages(ROLES, "role")), ROLES, "role"))
            members = dict(zip(roles, self._client.map_parallel(self._role_members, roles), strict=True))
            progress(f"{self.name}: roles", len(roles), len(roles))
            catalog = Catalog(roles, groups, members)
            scoped = self._scoped_roles(roles, groups)
            if scoped is None:
                records = self._everyone(progress)
            else:
                wanted = dict.fromkeys(uid for rid in scoped for uid in members[rid])
                records = self._by_id(list(wanted), progress)
            return Assembler(self.name, catalog).build(records, everyone=scoped is None)

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()

    # --- reads ------------------------------------------------------------------------

    def _pages(self, path: str, noun: str) -> Iterator[Any]:
        return header_pages(self._client, path, noun=noun)

    def _catalog(
        self, pages: Iterator[list[dict[str, Any]]], path: str, noun: str
    ) -> Iterator[tuple[str, str]]:
        for number, items in enumerate(pages, 1):
            for item in items:
                yield catalog_entry(self.name, f"GET {path} page {number}", item, noun)

    def _role_members(self, rid: str) -> list[str]:
        path = f"{ROLES}/{rid}/users"
        pages = header_pages(self._client, path, noun="member")
        return [item_id(u["id"]) or "" for page in pages for u in page.items]

    def _everyone(self, progress: Progress) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for page in header_pages(self._client, USERS, noun="user"):
            records += page.items
            progress(f"{self.name}: users", page.read, page.total)
        return records

    def _by_id(self, ids: Sequence[str], progress: Progress) -> list[dict[str, Any]]:
        """Read the users with these ids, 100 ids a request, in parallel (§4.2 ``user_ids``)."""
        batches = [list(ids[n : n + PAGE_SIZE]) for n in range(0, len(ids), PAGE_SIZE)]
        found = self._client.map_parallel(self._batch, list(enumerate(batches, 1)))
        records = [record for batch in found for record in batch]
        progress(f"{self.name}: users", len(records), len(ids))
        return records

    def _batch(self, job: tuple[int, list[str]]) -> list[dict[str, Any]]:
        number, ids = job
        name = f"GET {USERS} (user_ids batch {number})"
        asked = set(ids)
        records = []
        query = {"user_ids": ",".join(ids)}
        for page in header_pages(self._client, USERS, noun="user", params=query, name=name):
            for record in page.items:
                if item_id(record["id"]) not in asked:
                    # The filter was ignored: reading on would take strangers for members.
                    cause = f"user id {record['id']} was not asked for: the user_ids filter was not applied"
                    raise ResponseError(self.name, f"{name} page {page.number}", cause)
            records += page.items
        answered = {item_id(record["id"]) for record in records}
        missing = [uid for uid in ids if uid not in answered]
        if missing:
            # A user_ids answer that leaves an asked id out proves nothing about that person
            # (a cut page, a lagging index): each is read alone, and only a 404 means gone.
            log.info("%s: %s left out %d asked id(s); reading them one by one", self.name, name, len(missing))
            records += [r for r in self._client.map_parallel(self._single, missing) if r is not None]
        return records

    def _single(self, uid: str) -> dict[str, Any] | None:
        """Read one user by id; None when OneLogin answers 404 (deleted since its role listed it)."""
        where = f"GET {USERS}/{uid}"
        try:
            # [U] §4.2 shows only the list; a single user is taken to be the same object, bare.
            body = self._client.get_json(f"{USERS}/{uid}", obj=where)
        except NotFoundError:
            log.info("%s: role member %s is no longer a user; skipped", self.name, uid)
            return None
        if not isinstance(body, dict) or item_id(body.get("id")) != uid:
            raise ResponseError(self.name, where, "the answer is not this user's record")
        return body

    def _scoped_roles(self, roles: dict[str, str], groups: dict[str, str]) -> list[str] | None:
        """Return the roles whose members are the scope, or None when every user must be read."""
        include = self.config.include_groups
        if not include:
            return None
        matched = [name for name in groups.values() if any(glob_match(name, p) for p in include)]
        if matched:
            log.info(
                "%s: include_groups matches the OneLogin group '%s': reading every user (idp §4.4)",
                self.name,
                matched[0],
            )
            return None
        return [rid for rid, name in roles.items() if any(glob_match(name, p) for p in include)]

    # --- messages ---------------------------------------------------------------------

    @contextmanager
    def _hints(self) -> Iterator[None]:
        """Say what to check after a refused credential, a wrong URL, a 500 or a spent budget."""
        try:
            yield
        except ConnectorError as exc:
            hint = self._hint(exc)
            if hint is None:
                raise
            if exc.obj == "token endpoint" and isinstance(exc, AuthError):
                # ClientCredentials repeats the status when the body has no OAuth error; OneLogin's
                # token errors come in the §4.6 envelope, which has none.
                head = re.sub(r"\): HTTP \d+$", ")", exc.cause.partition("; check")[0])
                raise AuthError(exc.system, exc.obj, f"{head}; {hint}", status=exc.status) from None
            raise type(exc)(exc.system, exc.obj, f"{exc.cause}; {hint}", status=exc.status) from None

    def _hint(self, exc: ConnectorError) -> str | None:
        if isinstance(exc, AuthError):
            return CREDENTIALS_HINT
        if exc.status == 500 or (exc.obj == "token endpoint" and "HTTP 500" in exc.cause):
            return OWNER_HINT
        if exc.obj == "token endpoint":
            return URL_HINT
        if isinstance(exc, NotFoundError):
            if exc.obj.startswith(f"GET {ROLES}/"):
                return "the role was deleted during the read: run again"
            return URL_HINT
        if exc.status == 429:
            return "OneLogin allows 5,000 API calls an hour per account (idp §4.6): run again later"
        return None
