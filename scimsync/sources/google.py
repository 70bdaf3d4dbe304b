"""The google source: users and groups of Google Workspace via the Admin SDK Directory API (idp-apis §3).

Authentication: a service-account key (``credentials_file``) with domain-wide delegation,
acting for the admin ``subject`` (``google_token``). One read lists every group (200 a
page), the direct members of every group (200 a page, groups in parallel) and, unless
scoped, every user of ``customer`` (500 a page, ``projection=full`` so that custom schema
fields reach ``user.attributes``).

Nested groups: members of type GROUP are walked here rather than asking the API for
``includeDerivedMembership=true``. Every group's member list must be read anyway (a user's
groups are all of them, SPEC §4), and the direct lists together are the whole graph:
flattening it costs no request, where derived lists would repeat each nested user in
every parent's pages, and their handling of cycles is not documented (§3.5). A nested
group that groups.list did not show (another customer's) has its members read as well.

Scoping: with ``include_groups``, the users in the matching groups (directly or nested)
are read one by one (``GET /users/{id}``, in parallel) when there are at most
``DETAIL_READS_MAX`` of them, so that out-of-scope people are never read in detail; past
that, one list page of 500 costs fewer requests than 500 single reads, and the list is
read instead. The engine applies include_groups and exclude_users again afterwards.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import requests

from scimsync.config import GoogleSourceConfig
from scimsync.errors import AuthError, NotFoundError, ResponseError
from scimsync.http import HttpSettings, TokenAuth
from scimsync.models import SourceDirectory, glob_match
from scimsync.sources.google_api import (
    API_PATH,
    GROUPS_PAGE,
    MEMBERS_PAGE,
    USERS_PAGE,
    GoogleClient,
    error_reasons,
    list_pages,
    page_items,
    parse_error,
)
from scimsync.sources.google_model import Graph as MemberGraph
from scimsync.sources.google_model import GroupInfo, Members, assemble, direct_members, group_info
from scimsync.sources.google_token import DELEGATION, SCOPES, WHERE, ServiceAccountToken
from scimsync.targets.base import Progress, no_progress

log = logging.getLogger("scimsync.sources.google")

DETAIL_READS_MAX = 100
USERS_LIST, GROUPS_LIST = "GET /users", "GET /groups"
USER_KIND = "admin#directory#user"


class GoogleSource:
    """Read users and groups from a Google Workspace customer."""

    type = "google"

    def __init__(
        self,
        name: str,
        config: GoogleSourceConfig,
        settings: HttpSettings,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # `sleep` and `clock` are the HTTP layer's, for tests that must not really wait.
        self.name = name
        self.config = config
        self._token = ServiceAccountToken(
            name, config.credentials_file, config.subject, config.token_url, settings=settings, clock=clock
        )
        self._client = GoogleClient(
            name,
            config.url + API_PATH,
            auth=TokenAuth(self._token),
            settings=settings,
            error_parser=parse_error,
            sleep=sleep,
            clock=clock,
        )

    def check(self) -> str:
        """Read one user and one group: the token, the scopes and the admin's rights in one go."""
        query = {"customer": self.config.customer, "maxResults": 1}
        with self._hints():
            body = self._client.get_json("/users", params=query, obj=USERS_LIST)
            users = page_items(self.name, USERS_LIST, body, "users")
            body = self._client.get_json("/groups", params=query, obj=GROUPS_LIST)
            page_items(self.name, GROUPS_LIST, body, "groups")
        customer = users[0].get("customerId") if users else None
        return f"Google Workspace customer {customer or self.config.customer}, read as {self.config.subject}"

    def read(self, *, progress: Progress = no_progress) -> SourceDirectory:
        """Read the groups, their members and the users; any page not read whole aborts the read."""
        with self._hints():
            groups = self._groups(progress)
            graph = self._graph(groups, progress)
            users = self._users(groups, graph, progress)
        return assemble(self.name, users, groups, graph)

    def close(self) -> None:
        """Close the HTTP sessions."""
        self._client.close()
        self._token.close()

    # --- reading ------------------------------------------------------------------------

    def _groups(self, progress: Progress) -> list[GroupInfo]:
        groups: list[GroupInfo] = []
        params = {"customer": self.config.customer, "maxResults": GROUPS_PAGE}
        for page in list_pages(self._client, "/groups", params=params, field="groups", label=GROUPS_LIST):
            groups.extend(group_info(self.name, g) for g in page)
            progress(f"{self.name}: groups", len(groups), None)
        progress(f"{self.name}: groups", len(groups), len(groups))
        return groups

    def _graph(self, groups: Sequence[GroupInfo], progress: Progress) -> MemberGraph:
        """Read the direct members of every group, then of nested groups not listed, until none is left."""
        members: dict[str, Members] = {}
        lock = threading.Lock()
        todo = [(g.id, f"GET /groups/{g.email or g.id}/members") for g in groups]

        def read(job: tuple[str, str]) -> None:
            found = self._members(*job)
            with lock:
                members[job[0]] = found
                progress(f"{self.name}: group members", len(members), None)

        while todo:
            self._client.map_parallel(read, todo)
            outside = MemberGraph(members).missing()
            todo = [(gid, f"GET /groups/{gid}/members (a nested group not listed)") for gid in outside]
        progress(f"{self.name}: group members", len(members), len(members))
        return MemberGraph(members)

    def _members(self, group_id: str, label: str) -> Members:
        path = f"/groups/{quote(group_id, safe='')}/members"
        params = {"maxResults": MEMBERS_PAGE}
        found = Members()
        pages = list_pages(self._client, path, params=params, field="members", label=label)
        for number, page in enumerate(pages, start=1):
            found = found.merge(direct_members(self.name, f"{label} page {number}", page))
        return found

    def _users(
        self, groups: Sequence[GroupInfo], graph: MemberGraph, progress: Progress
    ) -> list[dict[str, Any]]:
        include = self.config.include_groups
        if include:
            chosen = [g.id for g in groups if any(glob_match(g.name, p) for p in include)]
            ids, customers = graph.reach(chosen)
            # A CUSTOMER member puts everyone in scope: only the list names them all.
            if not customers and len(ids) <= DETAIL_READS_MAX:
                return self._users_by_id(sorted(ids), progress)
        users: list[dict[str, Any]] = []
        params = {"customer": self.config.customer, "maxResults": USERS_PAGE, "projection": "full"}
        for page in list_pages(self._client, "/users", params=params, field="users", label=USERS_LIST):
            users.extend(page)
            progress(f"{self.name}: users", len(users), None)
        progress(f"{self.name}: users", len(users), len(users))
        return users

    def _users_by_id(self, ids: Sequence[str], progress: Progress) -> list[dict[str, Any]]:
        """Read the scoped users one by one; one not found is no user of this directory."""

        def read(uid: str) -> dict[str, Any] | None:
            where = f"GET /users/{uid}"
            path = f"/users/{quote(uid, safe='')}"
            response = self._client.request(
                "GET", path, params={"projection": "full"}, ok=(200, 404), obj=where
            )
            if response.status_code == 404:
                self._not_found(uid, where, response)
                return None
            body = self._client.decode_json(response, obj=where)
            if not isinstance(body, dict) or (body.get("kind"), body.get("id")) != (USER_KIND, uid):
                raise ResponseError(self.name, where, "the answer is not this user's resource")
            return body

        found = [u for u in self._client.map_parallel(read, ids) if u is not None]
        progress(f"{self.name}: users", len(found), len(found))
        return found

    def _not_found(self, uid: str, where: str, response: requests.Response) -> None:
        """Skip a member Google itself says is no user here; any other 404 fails the read."""
        if "notFound" not in error_reasons(response):
            # A proxy's or load balancer's 404 says nothing about the person: skipping them
            # would deprovision someone still in scope. Only Google's error body (§3.7) counts.
            cause = (
                f"{parse_error(response)}; not Google's notFound error (idp-apis §3.7): a proxy in the way?"
            )
            raise NotFoundError(self.name, where, cause, status=404)
        # [U] §3.5: a member outside the customer (or deleted since) is no user here.
        log.info("%s: group member %s is no user of this customer; skipped", self.name, uid)

    # --- messages -----------------------------------------------------------------------

    @contextmanager
    def _hints(self) -> Iterator[None]:
        """Add what to check to a refused request or a missing API."""
        try:
            yield
        except AuthError as exc:
            if exc.obj == WHERE:
                raise  # the token endpoint's refusal says what to check already
            raise AuthError(
                exc.system, exc.obj, f"{exc.cause}; {self._auth_hint(exc)}", status=exc.status
            ) from None
        except NotFoundError as exc:
            if exc.obj not in (f"{USERS_LIST} page 1", f"{GROUPS_LIST} page 1", USERS_LIST, GROUPS_LIST):
                raise
            hint = "check source.url: it must be the API root, https://admin.googleapis.com"
            raise NotFoundError(exc.system, exc.obj, f"{exc.cause}; {hint}", status=exc.status) from None

    def _auth_hint(self, exc: AuthError) -> str:
        if exc.status == 401:
            return "check source.credentials_file and source.subject: the access token was refused"
        if "insufficientPermissions" in exc.cause:
            return f"authorise the service account's client ID for {', '.join(SCOPES)} in {DELEGATION}"
        return (
            "check source.subject (an admin allowed to read users and groups) "
            f"and source.customer ('{self.config.customer}')"
        )
