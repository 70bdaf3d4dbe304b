"""An in-memory Okta org (Management API v1, read side), strict to idp-apis §1, §8 and §9.

Serve ``OktaSim().app`` with ``SimServer``; the source's ``url`` is the server's URL.
Seed it without HTTP (``add_user``, ``add_group``, ``add_member``, ``set_status``,
``seed_company``), break it (``fail_page``, ``throttle_page``, ``revoke_token``,
``expire_token_after``, ``faults``) and read its ``log``.

What it does as Okta does: ``SSWS`` tokens (401 E0000011 when unknown, revoked or unused for
``token_lifetime``, §1.1); lists paged by an opaque ``after`` cursor in two ``link`` headers
(§1.3); the plain user list hides DEPROVISIONED users, ``filter`` / ``search`` show them
(§1.4); ``filter`` refuses what it does not support with 400 E0000031; ``search`` lags by
``search_lag`` seconds; ``X-Rate-Limit-*`` on every response, 429 E0000047 with a ``Date``
when a bucket is empty, and ``Limit = Remaining = 0`` past ``max_concurrent`` (§1.8, §9).
Not simulated: writes (405), ``fields`` and ``expand`` on users, OAuth service apps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from scimsync.sim.faults import Faults, RequestLog
from scimsync.sim.okta_common import JSON_TYPE, okta_error_body
from scimsync.sim.okta_http import ApiSettings, OktaApi, Token
from scimsync.sim.okta_limits import DEFAULT_LIMITS, TOKEN_SHARE, OktaRateLimiter, PageFault
from scimsync.sim.okta_state import USER_STATUSES, OktaDirectory, SimGroup, SimUser, user_json

TOKEN = "sim-okta-token"
THIRTY_DAYS = 30 * 86400.0


class OktaSim:
    """An in-memory Okta org; ``app`` is the WSGI callable (with Faults and a RequestLog)."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        max_page: int = 200,
        everyone: bool = True,
        rate_limits: Mapping[str, int] | None = DEFAULT_LIMITS,
        token_share: float = TOKEN_SHARE,
        max_concurrent: int | None = None,
        token_lifetime: float = THIRTY_DAYS,
        search_lag: float = 0.0,
        deprovisioned_members: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # `clock` is the wall clock (epoch seconds): Okta's timestamps and X-Rate-Limit-Reset use it.
        self.clock = clock
        self.directory = OktaDirectory(clock, everyone=everyone, deprovisioned_members=deprovisioned_members)
        self._lock = threading.RLock()
        limiter = OktaRateLimiter(rate_limits, token_share, clock) if rate_limits is not None else None
        settings = ApiSettings(max_page, token_lifetime, search_lag, max_concurrent)
        self.api = OktaApi(self.directory, self._lock, settings, limiter, clock)
        self.log = RequestLog()
        self.faults = Faults(self.api, log=self.log, error_body=okta_error_body, content_type=JSON_TYPE)
        self.app = self.faults
        self.token = token
        self.add_token(token)

    # -- tokens --------------------------------------------------------------

    def add_token(self, token: str, *, permissions: Iterable[str] = ("users", "groups")) -> None:
        """Create an SSWS token whose admin may read ``permissions`` ("users", "groups")."""
        with self._lock:
            self.api.tokens[token] = Token(frozenset(permissions), self.clock())

    def revoke_token(self, token: str | None = None) -> None:
        """Revoke a token (default: the one made at creation): every later use is 401 E0000011."""
        with self._lock:
            self.api.tokens[token or self.token].revoked = True

    def expire_token_after(self, pages: int, token: str | None = None) -> None:
        """Revoke ``token`` once it has been served ``pages`` pages of /api/v1/users.

        SSWS tokens are not refreshed (§1.1): a client can only stop with a clear error.
        """
        with self._lock:
            self.api.tokens[token or self.token].pages_left = pages

    # -- seeding and inspection (no HTTP) ------------------------------------

    def add_user(
        self,
        login: str,
        email: str | None = None,
        first: str | None = "",
        last: str | None = "",
        *,
        status: str = "ACTIVE",
        id: str | None = None,
        profile: Mapping[str, Any] | None = None,
        groups: Iterable[str] = (),
    ) -> str:
        """Create a user (``profile`` adds or replaces profile fields) and return its id."""
        if status not in USER_STATUSES:
            raise ValueError(f"not an Okta user status: {status!r}")
        with self._lock:
            now = self.clock()
            fields: dict[str, Any] = {
                "login": login,
                "email": email if email is not None else login,
                "firstName": first,
                "lastName": last,
                "secondEmail": None,
                "mobilePhone": None,
            }
            fields.update(profile or {})
            live = status != "STAGED"
            user = SimUser(
                id or self.directory.new_id("00u"),
                status,
                fields,
                created=now,
                last_updated=now,
                activated=now if live else None,
                status_changed=now if live else None,
                password_changed=now if status not in ("STAGED", "PROVISIONED") else None,
                changed=now,
            )
            self.directory.add_user(user)
            for name in groups:
                self.add_member(self._group_or_new(name).id, user.id)
            return user.id

    def add_group(
        self,
        name: str,
        *,
        members: Iterable[str] = (),
        type: str = "OKTA_GROUP",
        id: str | None = None,
        description: str = "",
    ) -> str:
        """Create a group (Okta groups do not nest, §1.6) with members (ids or logins); return its id."""
        with self._lock:
            now = self.clock()
            group = SimGroup(id or self.directory.new_id("00g"), name, type, now, now, now, description)
            if group.id in self.directory.groups:
                raise ValueError(f"group {group.id} already exists")
            self.directory.groups[group.id] = group
            for member in members:
                self.add_member(group.id, member)
            return group.id

    def add_member(self, group: str, user: str) -> None:
        """Put a user (id or login) in a group (id or name)."""
        with self._lock:
            found, member = self._find_group(group), self._find_user(user)
            found.members[member.id] = None
            found.last_membership_updated = self.clock()

    def remove_member(self, group: str, user: str) -> None:
        """Take a user (id or login) out of a group (id or name)."""
        with self._lock:
            found, member = self._find_group(group), self._find_user(user)
            found.members.pop(member.id, None)
            found.last_membership_updated = self.clock()

    def rename_group(self, group: str, name: str) -> None:
        """Rename a group (id or name); its ``lastUpdated`` moves, not ``lastMembershipUpdated`` (§1.5)."""
        with self._lock:
            found = self._find_group(group)
            found.name = name
            found.last_updated = self.clock()

    def delete_group(self, group: str) -> None:
        """Delete a group (id or name): it leaves the group list; its members stay (§1.5)."""
        with self._lock:
            del self.directory.groups[self._find_group(group).id]

    def set_status(self, user: str, status: str, *, transitioning: str | None = None) -> None:
        """Change a user's status (and ``transitioningToStatus``), as an admin would."""
        if status not in USER_STATUSES:
            raise ValueError(f"not an Okta user status: {status!r}")
        with self._lock:
            found = self._find_user(user)
            changes = {"status": status, "status_changed": self.clock(), "transitioning": transitioning}
            self.directory.change_user(found, "", changes)

    def update_profile(self, user: str, **fields: Any) -> None:
        """Change profile fields of a user."""
        with self._lock:
            found = self._find_user(user)
            self.directory.change_user(found, "", {"profile": {**found.profile, **fields}})

    def delete_user(self, user: str) -> None:
        """Delete a user for good: it leaves every list and group (§1.4)."""
        with self._lock:
            self.directory.remove_user(self._find_user(user).id)

    def seed_company(self, people: Iterable[Mapping[str, Any]]) -> None:
        """Create users and groups from scimsync.sim.company.make_people() records.

        The login is the email (Okta logins are email-shaped); a record's id becomes the Okta
        id; an inactive person is DEPROVISIONED (a leaver); other fields join the profile.
        """
        known = {"id", "username", "email", "first_name", "last_name", "active", "groups"}
        for person in people:
            extra = {k: v for k, v in person.items() if k not in known}
            self.add_user(
                person["email"],
                person["email"],
                person["first_name"],
                person["last_name"],
                status="ACTIVE" if person.get("active", True) else "DEPROVISIONED",
                id=person.get("id"),
                profile=extra,
                groups=person.get("groups", ()),
            )

    def user(self, id_or_login: str) -> dict[str, Any] | None:
        """Return a user as the API renders it, or None."""
        with self._lock:
            found = self.directory.find_user(id_or_login)
            return None if found is None else user_json(found, "")

    def _find_user(self, id_or_login: str) -> SimUser:
        found = self.directory.find_user(id_or_login)
        if found is None:
            raise KeyError(f"no user {id_or_login!r}")
        return found

    def _find_group(self, id_or_name: str) -> SimGroup:
        found = self.directory.find_group(id_or_name)
        if found is None:
            raise KeyError(f"no group {id_or_name!r}")
        return found

    def _group_or_new(self, name: str) -> SimGroup:
        found = self.directory.find_group(name)
        return found if found is not None else self._find_group(self.add_group(name))

    # -- faults --------------------------------------------------------------

    def on_request(self, hook: Callable[[str, Mapping[str, str]], None]) -> None:
        """Call ``hook(path, query)`` before each API request is served, outside the lock.

        The hook may change the org (to race a client's read), wait, or raise an OktaError
        (scimsync.sim.okta_common) to answer the request with that error instead.
        """
        with self._lock:
            self.api.hooks.append(hook)

    def fail_page(
        self,
        path: str,
        page: int,
        status: int = 503,
        *,
        query: Mapping[str, str] | None = None,
        count: int | None = None,
    ) -> PageFault:
        """Answer page ``page`` of a list ``status`` (``count`` times; None: every time)."""
        return self._add_fault(PageFault(path, page, status, dict(query or {}), count))

    def throttle_page(
        self,
        path: str,
        page: int,
        *,
        reset_in: int = 1,
        query: Mapping[str, str] | None = None,
        count: int = 1,
    ) -> PageFault:
        """Answer page ``page`` of a list 429 E0000047, its reset ``reset_in`` seconds after ``Date``."""
        return self._add_fault(PageFault(path, page, 429, dict(query or {}), count, reset_in))

    def _add_fault(self, fault: PageFault) -> PageFault:
        with self._lock:
            self.api.page_faults.append(fault)
        return fault
