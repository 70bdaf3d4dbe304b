"""Reads of the SCIM-based targets: the whole directory, one user, one group, lookups by filter.

Every list goes through the shared pager (``http.scim.read_lists``): pages follow
``startIndex``/``count`` up to ``totalResults`` and a short page never ends a read; the
whole directory's two lists are read together, their later pages in parallel.
An account's groups are the groups it is a *direct* member of (RFC 7643 §4.1.2):
``/Groups`` members, together with the user's own ``groups`` where the service fills it.
"""

from __future__ import annotations

import http
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from scimsync.errors import AuthError, ConnectorError, ResponseError
from scimsync.http import ErrorParser, HttpClient
from scimsync.http.scim import ListSpec, eq_filter, read_error, read_lists, value_path
from scimsync.models import Account, TargetDirectory, key
from scimsync.secrets import redact
from scimsync.targets.base import Progress, no_progress
from scimsync.targets.scim_resources import direct_groups, group_name, member_ids, to_account
from scimsync.targets.scim_service import Features

log = logging.getLogger("scimsync.targets.scim")

# (list, attribute) pairs a filter may name; None allows every filter RFC 7644 defines.
Filters = frozenset[tuple[str, str]] | None


def auth_error(system: str, response: requests.Response, obj: str, parse: ErrorParser) -> AuthError:
    """Return the AuthError for a 401 or 403, with the body's own message (reference §3.8)."""
    status = response.status_code
    cause = f"HTTP {status} {http.HTTPStatus(status).phrase}: {parse(response)}"
    if status == 401:
        cause += f"; check the credentials of targets.{system}"
    return AuthError(system, obj, redact(cause), status=status)


def json_body(response: requests.Response) -> Any:
    """Return the decoded JSON body of a response, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def resource_path(path: str, rid: str) -> str:
    """Return ``/Users/{id}`` with the id escaped: ids are opaque (RFC 7643 §3.1)."""
    return f"{path}/{quote(rid, safe='')}"


@dataclass(frozen=True)
class GroupRecord:
    """One group as read: its id, name and the ids of its direct members."""

    id: str
    name: str
    members: frozenset[str]


class GroupIndex:
    """Group names (compared lower-cased, SPEC §4) and ids, shared by the writing threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, set[str]] = {}
        self._names: dict[str, str] = {}

    def remember(self, gid: str, name: str) -> None:
        """Record that group ``gid`` is named ``name``."""
        with self._lock:
            old = self._names.get(gid)
            if old is not None:
                self._ids.get(key(old), set()).discard(gid)
            self._names[gid] = name
            self._ids.setdefault(key(name), set()).add(gid)

    def ids(self, name: str) -> set[str]:
        """Return the ids of the groups named ``name``."""
        with self._lock:
            return set(self._ids.get(key(name), ()))

    def name(self, gid: str) -> str | None:
        """Return the name of group ``gid``, if known."""
        with self._lock:
            return self._names.get(gid)

    def names(self) -> dict[str, str]:
        """Return a copy of every group id -> name known now (one lock, not one per lookup)."""
        with self._lock:
            return dict(self._names)


class ScimReader:
    """Read users and groups of one SCIM service for a target."""

    def __init__(
        self,
        system: str,
        client: HttpClient,
        features: Callable[[], Features],
        *,
        filters: Filters,
        parse: ErrorParser,
    ) -> None:
        self.system, self.client, self.features = system, client, features
        self.filters, self.parse = filters, parse
        self.groups = GroupIndex()
        # Cleared when the service refuses a filter on members (it need not support one).
        self._members_filter = filters is None or ("/Groups", "members") in filters

    # -- lists -------------------------------------------------------------------------

    def _spec(
        self, path: str, noun: str, progress: Progress, query: dict[str, str] | None = None
    ) -> ListSpec:
        def report(done: int, total: int) -> None:
            progress(f"{self.system}: {noun}s", done, total)

        return ListSpec(path, self.features().page_size, noun, report, query)

    def _list(
        self, path: str, noun: str, progress: Progress, query: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        return read_lists(self.client, [self._spec(path, noun, progress, query)])[0]

    def directory(self, progress: Progress = no_progress) -> TargetDirectory:
        """Read every user and group; each account with the groups it is a direct member of."""
        specs = [self._spec("/Users", "user", progress)]
        if self.features().groups:
            specs.append(self._spec("/Groups", "group", progress))
        users, *listed = read_lists(self.client, specs)
        groups = self._records(listed[0]) if listed else []
        member_of: dict[str, set[str]] = {}
        for group in groups:
            for uid in group.members:
                member_of.setdefault(uid, set()).add(group.name)
        known = self.groups.names()
        accounts = []
        for resource in users:
            rid = resource["id"]
            obj = f"user id '{rid}'"
            names = self._own_groups(resource, obj, lookup=False, known=known)
            held = member_of.get(rid)
            accounts.append(to_account(self.system, resource, obj, names | held if held else names))
        return TargetDirectory(accounts=tuple(accounts), groups=frozenset(g.name for g in groups))

    def read_groups(self, progress: Progress = no_progress) -> list[GroupRecord]:
        """Read every group with its members; a group listed without ``members`` is read by id."""
        return self._records(self._list("/Groups", "group", progress))

    def _records(self, resources: list[dict[str, Any]]) -> list[GroupRecord]:
        """Return the groups a list gave, each with its members (read by id where the list left them out)."""
        listed: list[tuple[str, str, set[str] | None]] = []
        for resource in resources:
            gid, name = group_name(self.system, resource, "GET /Groups")
            self.groups.remember(gid, name)
            listed.append((gid, name, member_ids(self.system, resource, f"group {name}")))
        # idp §6.3: services leave members out of lists (large groups): ask for those groups.
        missing = [gid for gid, _, ids in listed if ids is None]
        fetched = dict(zip(missing, self.client.map_parallel(self.members, missing), strict=True))
        records = [
            GroupRecord(gid, name, frozenset(fetched[gid] if ids is None else ids))
            for gid, name, ids in listed
        ]
        return records

    def find(self, path: str, attribute: str, value: str) -> list[dict[str, Any]]:
        """Return the resources of ``path`` whose ``attribute`` equals ``value``, by an ``eq`` filter.

        The answer is checked again here, lower-cased for names (SPEC §4), exactly for
        externalId (case-exact, reference §3.3): a looser filter must not pick a stranger.
        """
        if self.filters is not None and (path, attribute) not in self.filters:
            raise ValueError(f"{self.system} takes no filter on {path} {attribute}")
        noun = path.strip("/").lower().rstrip("s")
        if self.features().filtering is False:
            # The service announces no filtering: read the whole list instead.
            resources = self._list(path, noun, no_progress)
        else:
            resources = self._list(path, noun, no_progress, {"filter": eq_filter(attribute, value)})
        fold: Callable[[str | None], str] = (lambda v: v or "") if attribute == "externalId" else key
        return [r for r in resources if fold(r.get(attribute)) == fold(value)]

    def find_groups(self, name: str) -> list[str]:
        """Return the ids of the groups named ``name`` (remembering them)."""
        ids = []
        for resource in self.find("/Groups", "displayName", name):
            gid, real = group_name(self.system, resource, f"group {name}")
            self.groups.remember(gid, real)
            ids.append(gid)
        return ids

    def find_user(self, username: str, *, lookup: bool) -> Account | None:
        """Return the user named ``username`` (lower-cased, SPEC §4), or None."""
        found = self.find("/Users", "userName", username)
        if len(found) > 1:
            cause = f"{len(found)} users have this userName, which must be unique (RFC 7643 §4.1.1)"
            raise ResponseError(self.system, f"user {username}", cause)
        return self.account(found[0], f"user {username}", lookup=lookup) if found else None

    # -- single resources --------------------------------------------------------------

    def get(self, path: str, obj: str) -> dict[str, Any] | None:
        """GET one resource; None when it does not exist (404)."""
        response = self.client.request("GET", path, ok=(200, 401, 403, 404), obj=obj)
        if response.status_code in (401, 403):
            raise auth_error(self.system, response, obj, self.parse)
        if response.status_code == 404:
            if response.content and read_error(json_body(response)) is None:
                # A proxy's or a wrong URL's page says nothing about the resource.
                cause = f"HTTP 404 Not Found: {self.parse(response)}"
                raise ResponseError(self.system, obj, redact(cause), status=404)
            return None
        body = self.client.decode_json(response, obj=obj)
        if not isinstance(body, dict):
            raise ResponseError(self.system, obj, "not a SCIM resource (not a JSON object)")
        return body

    def members(self, gid: str) -> set[str]:
        """Return the ids of a group's direct members, read now; a missing group is an error."""
        obj = f"group id '{gid}'"
        resource = self.get(resource_path("/Groups", gid), obj)
        if resource is None:
            raise ConnectorError(self.system, obj, "the group does not exist (any more)", status=404)
        return member_ids(self.system, resource, obj) or set()

    def account(self, resource: Any, obj: str, *, lookup: bool = True) -> Account:
        """Map a User resource read now; its groups from ``groups``, else (``lookup``) asked for."""
        rid = resource.get("id") if isinstance(resource, dict) else None
        groups = self._own_groups(resource, obj, lookup=lookup) if isinstance(rid, str) and rid else set()
        return to_account(self.system, resource, obj, groups)

    def _own_groups(
        self, resource: dict[str, Any], obj: str, *, lookup: bool, known: dict[str, str] | None = None
    ) -> set[str]:
        """Return the names of the groups a user is directly in, per its ``groups``, else asked for.

        ``known``: the group names as read (id -> name), taken instead of asking the index each time.
        """
        listed = direct_groups(self.system, resource, obj)
        if listed is None:
            return self._groups_with_member(resource["id"]) if lookup and self.features().groups else set()
        names = set()
        for gid, display in listed:
            name = (known.get(gid) if known is not None else self.groups.name(gid)) or display
            if not name:
                group = self.get(resource_path("/Groups", gid), f"group id '{gid}'")
                if group is None:
                    continue  # deleted since the user was read
                name = group_name(self.system, group, f"group id '{gid}'")[1]
                self.groups.remember(gid, name)
                if known is not None:
                    known[gid] = name
            names.add(name)
        return names

    def _groups_with_member(self, uid: str) -> set[str]:
        """Return the names of the groups ``uid`` is directly in: a members filter, else every group."""
        if self._members_filter:
            query = {"filter": value_path("members", "value", uid)}
            try:
                found = self._list("/Groups", "group", no_progress, query)
            except ConnectorError as exc:
                if exc.status != 400:
                    raise
                # RFC 7644 lets a service refuse filters on complex attributes (invalidFilter).
                log.info("%s: no filter on group members (%s); reading every group", self.system, exc.cause)
                self._members_filter = False
            else:
                held = set()
                for resource in found:
                    gid, name = group_name(self.system, resource, "GET /Groups")
                    self.groups.remember(gid, name)
                    listed = member_ids(self.system, resource, f"group {name}")
                    # A service that ignored the filter would list every group: check the members.
                    if uid in (self.members(gid) if listed is None else listed):
                        held.add(name)
                return held
        return {g.name for g in self.read_groups() if uid in g.members}
