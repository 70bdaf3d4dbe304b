"""A target for any SCIM 2.0 service (SPEC §3 "scim"): a strict RFC 7644 client.

Accounts are keyed on the SCIM ``id``; scimsync's owner marker is a non-empty
``externalId`` set to the source user id (SPEC §5). Writes PATCH where the service
can (RFC 7644 §3.5.2); where it cannot, they read the resource, change it and PUT it
back whole (reference §3.5: PUT clears what it leaves out). Memberships of one group
change many users per request (``BatchMembers``). Reads live in ``scim_read``,
resource shapes in ``scim_resources``, discovery in ``scim_service``.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import NoReturn

import requests

from scimsync.errors import AuthError, ConnectorError, NotFoundError
from scimsync.http import HttpClient
from scimsync.http.scim import parse_error, parse_page
from scimsync.models import Account, Capabilities, TargetDirectory, key
from scimsync.targets.base import Progress, no_progress
from scimsync.targets.scim_read import Filters, ScimReader, auth_error, resource_path
from scimsync.targets.scim_resources import (
    USER_FIELDS,
    active_patch,
    group_name,
    new_group,
    new_user,
    user_changes,
    user_patch,
)
from scimsync.targets.scim_service import Features, discover
from scimsync.targets.scim_write import ScimWriter, outcome_unknown

log = logging.getLogger("scimsync.targets.scim")


class ScimTarget:
    """A SCIM 2.0 service provider: ``/Users`` and ``/Groups`` under the SCIM base URL."""

    type = "scim"
    label = "SCIM service"
    page_cap: int | None = None  # the most resources per page, whatever the service announces
    # What the service can do when its vendor documents it; None: read the discovery endpoints.
    documented: Features | None = None
    filters: Filters = None  # the filters this service takes; None: any RFC 7644 filter
    url_hint = "it must be the SCIM base URL (the one /Users is under)"
    writer: builtins.type[ScimWriter] = ScimWriter  # `type` is the target type's name here
    # Members one membership request changes. [U] RFC 7644 sets no limit on a PatchOp and
    # services document none: 50 keeps a request small, and a refused one cheap to redo.
    member_batch = 50

    def __init__(self, name: str, client: HttpClient) -> None:
        self.name = name
        self._client = client
        self._lock = threading.Lock()
        self._features: Features | None = None
        self._reader = ScimReader(name, client, self._discover, filters=self.filters, parse=self.parse)
        self._writer = self.writer(name, client, self._reader, self.parse)

    def parse(self, response: requests.Response) -> str:
        """Return the cause an error response gives, on one line."""
        return parse_error(response)

    # -- reads -------------------------------------------------------------------------

    def _discover(self) -> Features:
        """Return what the service can do: as documented, else read once from its discovery endpoints."""
        with self._lock:
            if self._features is None:
                if self.documented is not None:
                    self._features = self.documented
                else:
                    with self._hints():
                        self._features = discover(self._client, page_cap=self.page_cap)
            return self._features

    def capabilities(self) -> Capabilities:
        """Return what this service can do, from its discovery endpoints."""
        features = self._discover()
        fields = {"email", "display_name"} | ({"username"} if features.rename else set())
        return Capabilities(
            create_user=True,
            update_fields=frozenset(fields),
            deactivate=features.active,
            delete=True,
            manage_groups=features.groups,
            create_groups=features.groups,
            shows_email=True,
            owner_marker="external_id",
            name_key=key,  # SPEC §4: SCIM services compare userName lower-cased
            reason=f"{self.label} ({features.describe()})",
        )

    def check(self) -> str:
        """Read one user (an authenticated read); return how many users the service holds."""
        label = "GET /Users startIndex=1"
        with self._hints():
            response = self._client.request(
                "GET", "/Users", params={"startIndex": 1, "count": 1}, ok=(200, 401, 403), obj=label
            )
            if response.status_code != 200:
                raise auth_error(self.name, response, label, self.parse)
            page = parse_page(self.name, label, self._client.decode_json(response, obj=label), 1)
        return f"{self.label} with {page.total} user{'' if page.total == 1 else 's'}"

    def read(
        self,
        managed_groups: Iterable[str],
        *,
        progress: Progress = no_progress,
        wanted: Iterable[tuple[str, str]] | None = None,
    ) -> TargetDirectory:
        """Read every account and group (the listing is complete, so ``wanted`` is not needed)."""
        with self._hints():
            self._discover()
            return self._reader.directory(progress)

    def get_account(self, username: str, *, account_id: str | None = None) -> Account | None:
        """Read one account now, by SCIM id when given (404: None), else by userName.

        Its groups: the user's ``groups`` attribute where the service fills it, else a
        filter ``members[value eq "<id>"]`` on /Groups, else every group read again.
        """
        with self._hints():
            if account_id and not account_id.startswith("new:"):
                obj = f"user {username}"
                resource = self._reader.get(resource_path("/Users", account_id), obj)
                return None if resource is None else self._reader.account(resource, obj)
            return self._reader.find_user(username, lookup=True)

    def group_exists(self, name: str) -> bool:
        """Tell whether group ``name`` exists, asking the service now."""
        with self._hints():
            return bool(self._reader.find_groups(name))

    @contextmanager
    def _hints(self) -> Iterator[None]:
        """Add what to check to a 401 and to a 404 on a list."""
        try:
            yield
        except AuthError as exc:
            hint = f"check the credentials of targets.{self.name}"
            if exc.status != 401 or hint in exc.cause:
                raise
            raise AuthError(exc.system, exc.obj, f"{exc.cause}; {hint}", status=401) from None
        except NotFoundError as exc:
            hint = f"check targets.{self.name}.url: {self.url_hint}"
            if not exc.obj.startswith(("GET /Users", "GET /Groups")) or hint in exc.cause:
                raise
            raise NotFoundError(exc.system, exc.obj, f"{exc.cause}; {hint}", status=404) from None

    # -- users -------------------------------------------------------------------------

    def create_user(
        self, username: str, email: str, display_name: str, *, external_id: str | None = None
    ) -> Account:
        """Create an active user whose externalId is the source user id (SPEC §5)."""
        obj = f"user {username}"
        body = new_user(username, email, display_name, external_id)
        try:
            response = self._writer.send("POST", "/Users", obj, body)
        except ConnectorError as exc:
            # SPEC §8: an outcome unknown (no answer, a 5xx): read again, never POST again.
            found = (
                None if isinstance(exc, AuthError) or not outcome_unknown(exc) else self._created(username)
            )
            if found is None or not _is_ours(found, email, external_id):
                raise
            log.info("%s: %s: the create's outcome was unknown; read again, it took", self.name, obj)
            return found
        if response.status_code == 409:
            return self._adopt(response, username, external_id)
        self._writer.done(response, obj)
        created = self._client.decode_json(response, obj=f"POST /Users ({obj})")
        return self._reader.account(created, obj, lookup=False)

    def _created(self, username: str) -> Account | None:
        """Read the user named ``username`` again after a create whose outcome is unknown."""
        with self._hints():
            return self._reader.find_user(username, lookup=True)

    def _adopt(self, response: requests.Response, username: str, external_id: str | None) -> NoReturn:
        """After a 409, fail naming the user that exists: whose it is, or why it was not read."""
        obj = f"user {username}"
        existing = self._reader.find_user(username, lookup=True)
        if existing is None:
            raise self._conflict(response, obj)
        if not external_id or existing.external_id != external_id:
            theirs = f"externalId {existing.external_id}" if existing.external_id else "no externalId"
            raise ConnectorError(self.name, obj, f"already exists ({theirs}, not ours)", status=409)
        if not existing.active:
            # SPEC §8 adopts only the one this run created, and that one is active.
            cause = f"exists, deactivated, with our externalId {external_id}: reactivate it or plan again"
            raise ConnectorError(self.name, obj, cause, status=409)
        # A plan creates a user only when its read listed no account with this userName or
        # externalId, and an unknown outcome of our own POST is read again, never sent again
        # (create_user): ours here means that listing left accounts out, or another run
        # created the user since. Either way the plan was made on a partial view: fail it.
        log.warning("%s: %s exists with our externalId, yet the read did not list it", self.name, obj)
        cause = (
            f"exists with our externalId {external_id}, but the read of /Users did not list it: "
            "the listing was incomplete (or the user was created since); plan again"
        )
        raise ConnectorError(self.name, obj, cause, status=409)

    def _conflict(self, response: requests.Response, obj: str) -> ConnectorError:
        """Return the error for a 409 on create when no user has the userName (another value clashes)."""
        error = self._writer.refused(response, obj)
        cause = f"{error.cause}; no user has this userName, so another unique value is taken"
        return builtins.type(error)(self.name, obj, cause, status=error.status)

    def update_user(self, account: Account, fields: dict[str, str]) -> None:
        """Change email, display name, userName (same id) or externalId (adoption, SPEC §5)."""
        unknown = set(fields) - set(USER_FIELDS)
        if unknown:
            raise ValueError(f"{self.type} cannot update {', '.join(sorted(unknown))}")
        if fields:
            shows = partial(_shows_fields, fields)
            self._writer.change_user(account, user_patch(fields), user_changes(fields), shows)

    def set_active(self, account: Account, active: bool) -> None:
        """Activate or deactivate a user: ``active`` replaced (reversible, reference §3.5)."""
        shows: Callable[[Account], bool] = lambda found: found.active == active  # noqa: E731
        self._writer.change_user(account, active_patch(active), {"active": active}, shows)

    def delete_user(self, account: Account) -> None:
        """Delete a user (DELETE /Users/{id}); one that is gone already is done."""
        obj = f"user {account.username}"
        path = resource_path("/Users", self._writer.user_id(account))
        response = self._writer.send("DELETE", path, obj)
        # §6: deleting a missing user answers 404; read it again: gone means done.
        if response.status_code == 404 and self._reader.get(path, obj) is None:
            return
        self._writer.done(response, obj)

    # -- groups ------------------------------------------------------------------------

    def create_group(self, name: str) -> None:
        """Create a group; one that exists already (409, reference §3.7) is done."""
        obj = f"group {name}"
        response = self._writer.send("POST", "/Groups", obj, new_group(name))
        if response.status_code == 409 and self._reader.find_groups(name):
            return
        self._writer.done(response, obj)
        gid, real = group_name(
            self.name, self._client.decode_json(response, obj=f"POST /Groups ({obj})"), obj
        )
        self._reader.groups.remember(gid, real)

    def create_group_with(self, name: str, accounts: Sequence[Account]) -> bool:
        """Create a group with its first members in one request (reference §3.7, ``GroupWithMembers``)."""
        gid, real, shown = self._writer.create_group(name, accounts)
        self._reader.groups.remember(gid, real)
        return shown

    def add_member(self, account: Account, group: str) -> None:
        """Add a user to a group; already a member is success."""
        self._writer.membership([account], group, add=True)

    def remove_member(self, account: Account, group: str) -> None:
        """Remove a user from a group; not a member is success."""
        self._writer.membership([account], group, add=False)

    def member_batch_size(self, *, add: bool) -> int:
        """Return the most members one PATCH (or PUT) of a group changes."""
        return self.member_batch

    def add_members(self, group: str, accounts: Sequence[Account]) -> None:
        """Add users to a group in one request; members already are success."""
        self._writer.membership(accounts, group, add=True)

    def remove_members(self, group: str, accounts: Sequence[Account]) -> None:
        """Remove users from a group in one request; non-members are success."""
        self._writer.membership(accounts, group, add=False)

    def close(self) -> None:
        """Release connections."""
        self._client.close()


def _is_ours(account: Account, email: str, external_id: str | None) -> bool:
    """Tell whether a user read again is the one this run created (SPEC §8: same email, our externalId)."""
    same_email = (account.email or "").lower() == email.lower()
    return bool(external_id) and account.external_id == external_id and account.active and same_email


def _shows_fields(fields: dict[str, str], account: Account) -> bool:
    """Tell whether a user read again has ``fields`` (update_user's) as wanted."""
    now = {
        "username": account.username,
        "email": (account.email or "").lower(),
        "display_name": account.display_name,
        "external_id": account.external_id or "",
    }
    return all(now[f] == (v.lower() if f == "email" else v) for f, v in fields.items())
