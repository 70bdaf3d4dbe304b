"""A source that reads any SCIM 2.0 service provider (SPEC §3 "scim", idp §6).

``User.id`` is the SCIM ``id``: the service's stable key (RFC 7643 §3.1); ``externalId``
is the id some *other* system gave the person and may be absent or change, so it only
stays in ``attributes``. A user's groups are what ``/Groups`` says (direct members,
nested groups flattened) together with what the user's own ``groups`` attribute says
(direct and indirect); either alone can be short (idp §6.3: huge ``members`` arrays get
truncated; many services leave ``User.groups`` empty).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from scimsync.config import ScimSourceConfig
from scimsync.errors import AuthError, NotFoundError, ResponseError
from scimsync.http import Auth, BasicAuth, BearerAuth, HttpClient, HttpSettings
from scimsync.http.scim import (
    ENTERPRISE_USER,
    MEDIA_TYPE,
    ServiceConfig,
    choose_email,
    count_resources,
    page_size,
    parse_error,
    read_list,
    read_service_config,
)
from scimsync.models import Group, SourceDirectory, User, key
from scimsync.targets.base import Progress, no_progress

log = logging.getLogger("scimsync.sources.scim")

# authenticationSchemes[].type values (RFC 7643 §5) that our credentials speak.
_SCHEMES = {"bearer": ("oauthbearertoken", "oauth2", "oauth"), "basic": ("httpbasic",)}


class ScimSource:
    """Read users and groups from a SCIM 2.0 service: ``/Users`` and ``/Groups`` under ``url``."""

    type = "scim"

    def __init__(
        self,
        name: str,
        config: ScimSourceConfig,
        settings: HttpSettings,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # `sleep` and `clock` are the HTTP layer's, for tests that must not really wait.
        self.name = name
        self.config = config
        self._bearer = config.token is not None
        auth: Auth = BearerAuth(config.token) if config.token else None
        if config.username and config.password:
            auth = BasicAuth(config.username, config.password)
        headers = {"Accept": MEDIA_TYPE}
        self._client = HttpClient(
            name,
            config.url,
            auth=auth,
            settings=settings,
            error_parser=parse_error,
            headers=headers,
            sleep=sleep,
            clock=clock,
        )
        self._service: ServiceConfig | None = None

    def check(self) -> str:
        """Read the service configuration and the number of users."""
        with self._hints():
            self._service = read_service_config(self._client)
            users = count_resources(self._client, "/Users")
        return f"SCIM service with {users} user{'' if users == 1 else 's'}"

    def read(self, *, progress: Progress = no_progress) -> SourceDirectory:
        """Read every user and group; any page that cannot be read whole aborts the read."""
        with self._hints():
            self._service = read_service_config(self._client)
            count = page_size(self._service, self.config.page_size)
            users = self._list("/Users", "user", count, progress)
            groups = self._list("/Groups", "group", count, progress)
        return to_directory(self.name, users, groups)

    def _list(self, path: str, noun: str, count: int, progress: Progress) -> list[dict[str, Any]]:
        def report(done: int, total: int) -> None:
            progress(f"{noun}s", done, total)

        return read_list(self._client, path, count=count, noun=noun, progress=report)

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()

    @contextmanager
    def _hints(self) -> Iterator[None]:
        """Add what to check to a 401/403 or a 404 on the lists."""
        try:
            yield
        except AuthError as exc:
            keys = "source.token" if self._bearer else "source.username and source.password"
            hint = f"check {keys}"
            if exc.status == 403:
                hint += " (it must allow reading Users and Groups)"
            announced = self._service.auth_schemes if self._service else ()
            ours = _SCHEMES["bearer" if self._bearer else "basic"]
            if announced and not set(announced) & set(ours):
                hint += f"; the service announces: {', '.join(announced)}"
            raise AuthError(exc.system, exc.obj, f"{exc.cause}; {hint}", status=exc.status) from None
        except NotFoundError as exc:
            hint = "check source.url: it must be the SCIM base URL (the one /Users is under)"
            raise NotFoundError(exc.system, exc.obj, f"{exc.cause}; {hint}", status=exc.status) from None


def to_directory(system: str, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> SourceDirectory:
    """Map the ``/Users`` and ``/Groups`` resources read to the model; ResponseError names a bad one."""
    return _Resources(system, users, groups).build()


@dataclass(frozen=True)
class _GroupRecord:
    """One ``/Groups`` resource: its direct user members and the groups nested in it."""

    id: str
    name: str
    users: tuple[str, ...]
    nested: tuple[str, ...]


class _Resources:
    """Turn the resources read into the model: users with their groups, groups with their members."""

    def __init__(self, system: str, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> None:
        self.system = system
        self.users = users
        self.user_ids = {u["id"] for u in users}
        self.group_ids = {g["id"] for g in groups}
        self.groups = [self._group(g) for g in groups]
        self._by_id = {g.id: g for g in self.groups}
        self._order = {g.id: n for n, g in enumerate(self.groups)}

    def build(self) -> SourceDirectory:
        names = {g.id: g.name for g in self.groups}
        member_of = self._memberships()
        for resource in self.users:
            member_of.setdefault(resource["id"], set()).update(self._own_groups(resource, names))
        users = tuple(self._user(r, self._names(member_of.get(r["id"], set()))) for r in self.users)
        members: dict[str, list[str]] = {g.id: [] for g in self.groups}
        for user in users:
            for gid in member_of.get(user.id, ()):
                members[gid].append(user.id)
        groups = tuple(Group(id=g.id, name=g.name, member_ids=tuple(members[g.id])) for g in self.groups)
        return SourceDirectory(users=users, groups=groups)

    def _fail(self, obj: str, cause: str) -> NoReturn:
        raise ResponseError(self.system, obj, cause)

    # --- groups ---------------------------------------------------------------------

    def _group(self, resource: dict[str, Any]) -> _GroupRecord:
        gid = resource["id"]
        where = f"group id '{gid}'"
        name = resource.get("displayName")
        if not isinstance(name, str) or not name.strip():
            self._fail(where, "no displayName")
        members = resource.get("members") or []
        if not isinstance(members, list):
            self._fail(where, "members is not a list")
        users: dict[str, None] = {}
        nested: dict[str, None] = {}
        for member in members:
            value = member.get("value") if isinstance(member, dict) else None
            if not isinstance(value, str) or not value:
                self._fail(where, "a member without a value")
            kind = self._member_kind(where, member, value)
            if kind == "group":
                nested[value] = None
            elif kind == "user":
                users[value] = None
            else:
                # Users are read before groups: a user created or deleted in between, or
                # a dangling reference the service kept; either way no user of this read.
                log.warning(
                    "%s: %s lists member '%s', not among the users read; ignored", self.system, where, value
                )
        return _GroupRecord(gid, name, tuple(users), tuple(nested))

    def _member_kind(self, where: str, member: dict[str, Any], value: str) -> str | None:
        """Return "user" or "group", or None for a member that is no user of this read."""
        kind = member.get("type")
        if kind is None:
            # The type is optional (RFC 7643 §4.2); scim2-server stores none when none is sent.
            if value in self.group_ids:
                return "group"
            return "user" if value in self.user_ids else None
        if not isinstance(kind, str) or kind.lower() not in ("user", "group"):
            self._fail(where, f"member '{value}' has the type {kind!r} (expected User or Group)")
        if kind.lower() == "group":
            if value not in self.group_ids:
                # Its members cannot be flattened: reading on would drop their memberships.
                self._fail(where, f"nested group '{value}' is not among the groups /Groups listed")
            return "group"
        return "user" if value in self.user_ids else None

    def _memberships(self) -> dict[str, set[str]]:
        """Return user id -> ids of the groups it is in, through nested groups too; cycles are safe."""
        member_of: dict[str, set[str]] = {}
        for group in self.groups:
            seen, todo = {group.id}, [group]
            while todo:
                current = todo.pop()
                for uid in current.users:
                    member_of.setdefault(uid, set()).add(group.id)
                for child in current.nested:
                    if child not in seen:
                        seen.add(child)
                        todo.append(self._by_id[child])
        return member_of

    def _own_groups(self, resource: dict[str, Any], names: Mapping[str, str]) -> set[str]:
        """Return the group ids a user's own ``groups`` attribute lists, direct and indirect (idp §6.3)."""
        listed = resource.get("groups") or []
        where = f"user id '{resource['id']}'"
        if not isinstance(listed, list):
            self._fail(where, "groups is not a list")
        ids = set()
        for entry in listed:
            gid = entry.get("value") if isinstance(entry, dict) else None
            if not isinstance(gid, str) or gid not in names:
                # Strict [U]: a group /Groups did not list may hold more of this person's access.
                self._fail(where, f"its groups name group '{gid}', which /Groups did not list")
            ids.add(gid)
        return ids

    def _names(self, group_ids: set[str]) -> tuple[str, ...]:
        """Return the names of ``group_ids`` in read order, each name once (names compare by ``key``)."""
        names: dict[str, str] = {}
        for gid in sorted(group_ids, key=self._order.__getitem__):
            name = self._by_id[gid].name
            names.setdefault(key(name), name)
        return tuple(names.values())

    # --- users ----------------------------------------------------------------------

    def _user(self, resource: dict[str, Any], groups: tuple[str, ...]) -> User:
        where = f"user id '{resource['id']}'"
        name = resource.get("name") or {}
        if not isinstance(name, dict):
            self._fail(where, "name is not an object")
        # RFC 7643 §4.1.1 gives `active` no default; absent is taken as active (a service
        # that cannot deactivate omits it), as Atlassian's SCIM does (atlassian §3.3).
        active = resource.get("active", True)
        if not isinstance(active, bool):
            self._fail(where, "active is not true or false")
        username = self._string(where, resource, "userName")
        if not username and active:
            external = resource.get("externalId")
            also = f" (externalId '{external}')" if isinstance(external, str) and external else ""
            self._fail(f"{where}{also}", "an active user without a userName")
        first, last = self._string(where, name, "givenName"), self._string(where, name, "familyName")
        display = self._string(where, resource, "displayName") or self._string(where, name, "formatted")
        return User(
            id=resource["id"],
            username=username,
            email=self._email(where, resource.get("emails")),
            first_name=first,
            last_name=last,
            display_name=display or f"{first} {last}".strip(),
            active=active,
            groups=groups,
            attributes=_attributes(resource),
        )

    def _string(self, where: str, data: Mapping[str, Any], field: str) -> str:
        value = data.get(field)
        if value is None:
            return ""
        if not isinstance(value, str):
            self._fail(where, f"{field} is not a string")
        return value

    def _email(self, where: str, emails: Any) -> str:
        """Return the primary email, else the first of type work, else the first (RFC 7643 §4.1.2)."""
        try:
            return choose_email(emails)
        except ValueError as exc:
            self._fail(where, str(exc))


def _attributes(resource: dict[str, Any]) -> dict[str, Any]:
    """Return the raw resource minus schemas and meta, with the enterprise fields also at the top."""
    attributes = {k: v for k, v in resource.items() if k not in ("schemas", "meta")}
    extension = resource.get(ENTERPRISE_USER)
    if isinstance(extension, dict):
        # So that a template can say user.attributes.department (SPEC §3); a core field wins.
        for field, value in extension.items():
            attributes.setdefault(field, value)
    return attributes
