"""How the SCIM-based targets send writes: refusals as one line, PATCH or read-change-PUT, memberships.

RFC 7644 §3.5.2 makes PATCH optional: a service that announces no PATCH, or answers
one with 501 or 405, gets the resource read, changed and PUT back whole instead
(reference §3.5: PUT clears what it leaves out), for the rest of the run. Those
read-change-PUTs of one resource go one at a time (a lock per resource): two at once
would each write back what they read, and the later would undo the earlier.
"""

from __future__ import annotations

import http
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import requests

from scimsync.errors import AuthError, ConnectorError, NotFoundError, ResponseError
from scimsync.http import ErrorParser, HttpClient
from scimsync.http.scim import GROUP_SCHEMA, read_error, value_path
from scimsync.models import Account
from scimsync.secrets import redact
from scimsync.targets.scim_read import ScimReader, auth_error, json_body, resource_path
from scimsync.targets.scim_resources import group_name, new_group, patch, replaced, to_account

log = logging.getLogger("scimsync.targets.scim")

# Refusals that concern the one object written (RFC 7644 §3.12), answered with an error body.
REFUSALS = (400, 404, 409)
# A PATCH the service does not implement after all (RFC 7644 §3.5.2: PATCH is optional).
NO_PATCH = (405, 501)
OK = (200, 201, 204)

# Builds the PUT body from the resource read; None when the resource is already as wanted.
Change = Callable[[dict[str, Any]], dict[str, Any] | None]
# Runs after a successful PUT, still holding the resource's lock, with the resource read before.
After = Callable[[dict[str, Any]], None]


class ScimWriter:
    """Send the writes of one SCIM target and turn refusals into errors naming the object."""

    def __init__(self, system: str, client: HttpClient, reader: ScimReader, parse: ErrorParser) -> None:
        self.system, self.client, self.reader, self.parse = system, client, reader, parse
        self._lock = threading.Lock()
        self._put: bool | None = None  # None: decided from /ServiceProviderConfig at the first write
        self._locks: dict[str, threading.Lock] = {}  # one per resource written by read-change-PUT

    def send(
        self, method: str, path: str, obj: str, body: Any = None, *, also: Iterable[int] = ()
    ) -> requests.Response:
        """Send one write; return the response when it succeeded or was refused (``REFUSALS``, ``also``)."""
        ok = (*OK, *REFUSALS, *also, 401, 403)
        response = self.client.request(method, path, json=body, ok=ok, obj=obj)
        if response.status_code in (401, 403):
            raise auth_error(self.system, response, obj, self.parse)
        return response

    def refused(self, response: requests.Response, obj: str) -> ConnectorError:
        """Return the error for a refused write: one line with the scimType and the detail."""
        status = response.status_code
        cause = redact(f"HTTP {status} {http.HTTPStatus(status).phrase}: {self.parse(response)}")
        if read_error(json_body(response)) is None:
            # Not a SCIM error body (an HTML page from a proxy): nothing says what happened.
            return ResponseError(self.system, obj, cause, status=status)
        return (NotFoundError if status == 404 else ConnectorError)(self.system, obj, cause, status=status)

    def done(self, response: requests.Response | None, obj: str) -> None:
        """Raise the refusal unless the write succeeded (None: nothing was to be done)."""
        if response is not None and response.status_code >= 300:
            raise self.refused(response, obj)

    def modify(
        self, path: str, obj: str, patch: dict[str, Any], change: Change, *, after: After | None = None
    ) -> requests.Response | None:
        """PATCH ``path``; where PATCH is unsupported, GET it, ``change`` it and PUT it back."""
        if not self._uses_put():
            response = self.send("PATCH", path, obj, patch, also=NO_PATCH)
            if response.status_code not in NO_PATCH:
                return response
            self._give_up_patch(response.status_code)
        with self._resource_lock(path):
            resource = self.reader.get(path, obj)
            if resource is None:
                raise NotFoundError(self.system, obj, "it does not exist (any more)", status=404)
            body = change(resource)
            if body is None:
                return None
            # [U] No If-Match (the HTTP layer sends no per-request headers): a change made by
            # another client between this GET and the PUT is overwritten; ``after`` repairs
            # what a read after the PUT shows.
            response = self.send("PUT", path, obj, body)
            if after is not None and response.status_code < 300:
                after(resource)
            return response

    def _resource_lock(self, path: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(path, threading.Lock())

    def _uses_put(self) -> bool:
        if self._put is None:
            patch = self.reader.features().patch
            with self._lock:
                if self._put is None:
                    self._put = patch is False
        return bool(self._put)

    def _give_up_patch(self, status: int) -> None:
        with self._lock:
            if self._put:
                return
            self._put = True
        log.warning(
            "%s: PATCH answered HTTP %d: using PUT (read, change, write back) for the rest of this run",
            self.system,
            status,
        )

    def change_user(
        self,
        account: Account,
        patch: dict[str, Any],
        changes: dict[str, Any],
        shows: Callable[[Account], bool],
    ) -> None:
        """Apply ``patch`` to a user, or (no PATCH) ``changes`` (attribute -> value) by PUT.

        SPEC §8: when the outcome is unknown (no answer, a 5xx), the user is read again
        and the change is done when ``shows`` holds for it.
        """
        obj = f"user {account.username}"
        path = resource_path("/Users", self.user_id(account))
        try:
            self.done(self.modify(path, obj, patch, lambda resource: replaced(resource, changes)), obj)
        except ConnectorError as exc:
            if isinstance(exc, AuthError) or not outcome_unknown(exc):
                raise
            resource = self.reader.get(path, obj)
            if resource is None or not shows(to_account(self.system, resource, obj)):
                raise
            log.info("%s: %s: the write's outcome was unknown; read again, it took", self.system, obj)

    def user_id(self, account: Account) -> str:
        """Return the account's SCIM id, looking it up by userName when the plan had none."""
        if account.id and not account.id.startswith("new:"):
            return account.id
        found = self.reader.find_user(account.username, lookup=False)
        if found is None:
            raise NotFoundError(self.system, f"user {account.username}", "no such user", status=404)
        return found.id

    def group_id(self, group: str, obj: str) -> str:
        """Return the id of the one group named ``group`` (read, created, or looked up now)."""
        ids = self.reader.groups.ids(group) or set(self.reader.find_groups(group))
        if not ids:
            raise NotFoundError(self.system, obj, f"group {group} does not exist", status=404)
        if len(ids) > 1:
            cause = f"{len(ids)} groups are named {group} (names compare lower-cased): which one is unclear"
            raise ConnectorError(self.system, obj, cause)
        return ids.pop()

    def membership(self, accounts: Sequence[Account], group: str, *, add: bool) -> None:
        """Add ``accounts`` to ``group`` or remove them, in one request; already so is success."""
        names = accounts[0].username if len(accounts) == 1 else f"{len(accounts)} users"
        obj = f"membership {names} in {group}"
        gid = self.group_id(group, obj)
        uids = list(dict.fromkeys(self.user_id(a) for a in accounts))

        def change(resource: dict[str, Any]) -> dict[str, Any] | None:
            members = _members(resource)
            held = {m.get("value") for m in members}
            if all((uid in held) == add for uid in uids):
                return None
            return replaced(resource, {"members": _moved(members, uids, add=add)})

        def after(before: dict[str, Any]) -> None:
            self._restore(resource_path("/Groups", gid), obj, before, uids, add=add)

        path = resource_path("/Groups", gid)
        try:
            response = self.modify(path, obj, members_patch(uids, add=add), change, after=after)
        except ConnectorError as exc:
            # SPEC §8: a request of many whose outcome is unknown (a 5xx, the connection lost
            # after sending) is read again before the engine sends its members one by one.
            if len(uids) == 1 or isinstance(exc, AuthError) or not outcome_unknown(exc):
                raise
            if self._as_wanted(gid, uids, add=add):
                return
            raise
        if response is None or _shows(response, uids, add=add):
            return
        # RFC 7644 §3.5.2: success is a 204, or a 200 with the whole resource. Anything else
        # (a proxy's 200 page), and a refusal (§6 [U]: a duplicate add or the removal of a
        # non-member may be refused): the group's members, read again, decide.
        if self._as_wanted(gid, uids, add=add):
            return
        if response.status_code < 300:
            cause = f"HTTP {response.status_code}, but the group read again does not show the change"
            raise ResponseError(self.system, obj, cause)
        raise self.refused(response, obj)

    def create_group(self, name: str, accounts: Sequence[Account]) -> tuple[str, str, bool]:
        """Create a group with ``accounts`` as its members in one POST (reference §3.7).

        Returns the group's id and name, and whether the answer shows every member (when
        not, the caller adds them as usual: adding a member again is success). A refusal
        raises (a 409: the group exists already), and so does an answer of unknown outcome.
        """
        obj = f"group {name}"
        uids = list(dict.fromkeys(self.user_id(a) for a in accounts))
        body = {**new_group(name), "members": [{"value": uid} for uid in uids]}
        response = self.send("POST", "/Groups", obj, body)
        self.done(response, obj)
        gid, real = group_name(self.system, json_body(response), obj)
        return gid, real, response.status_code == 201 and _holds(json_body(response), uids, add=True)

    def _restore(
        self, path: str, obj: str, before: dict[str, Any], uids: Sequence[str], *, add: bool
    ) -> None:
        """Read a group again after its PUT; put back what the PUT lost but was meant to keep.

        A PUT without If-Match writes the member list read before it: a member another
        writer added or kept meanwhile can be lost, and so can this write's own change.
        [U] A member read before, gone after, and not removed here is taken to be lost by
        this PUT and is added back (never a write that removes an account scimsync left alone).
        """
        now = self.reader.get(path, obj)
        if now is None:
            raise NotFoundError(self.system, obj, "the group does not exist (any more)", status=404)
        read = {m.get("value") for m in _members(before)}
        keep = (read | set(uids)) if add else (read - set(uids))
        members = _members(now)
        held = {m.get("value") for m in members}
        lost = [uid for uid in sorted(v for v in keep if isinstance(v, str)) if uid not in held]
        kept = [] if add else [uid for uid in uids if uid in held]
        if not lost and not kept:
            return
        log.warning(
            "%s: %s: the group changed while it was written; putting back %d member(s)",
            self.system,
            obj,
            len(lost) + len(kept),
        )
        fixed = [m for m in members if m.get("value") not in kept] + [{"value": uid} for uid in lost]
        self.done(self.send("PUT", path, obj, replaced(now, {"members": fixed})), obj)

    def _as_wanted(self, gid: str, uids: Sequence[str], *, add: bool) -> bool:
        """Tell whether the group, read now, has every one of ``uids`` in (or out, removing)."""
        held = self.reader.members(gid)
        return all((uid in held) == add for uid in uids)


def _members(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Return a Group resource's member entries."""
    return [m for m in resource.get("members") or [] if isinstance(m, dict)]


def _moved(members: list[dict[str, Any]], uids: Sequence[str], *, add: bool) -> list[dict[str, Any]]:
    """Return ``members`` with ``uids`` added (once each) or removed."""
    if add:
        held = {m.get("value") for m in members}
        return [*members, *({"value": u} for u in uids if u not in held)]
    return [m for m in members if m.get("value") not in uids]


def _shows(response: requests.Response, uids: Sequence[str], *, add: bool) -> bool:
    """Tell whether a membership write's answer proves it: a 204, or a 200 Group showing the change."""
    if response.status_code == 204:
        return True
    return response.status_code == 200 and _holds(json_body(response), uids, add=add)


def _holds(body: Any, uids: Sequence[str], *, add: bool) -> bool:
    """Tell whether a Group resource answered shows ``uids`` as members (or not, ``add`` False)."""
    if not isinstance(body, dict) or GROUP_SCHEMA not in (body.get("schemas") or []):
        return False
    members = body.get("members")
    if not isinstance(members, list):
        return False  # a Group answered without its members says nothing of them
    held = {m.get("value") for m in members if isinstance(m, dict)}
    return all((uid in held) == add for uid in uids)


def outcome_unknown(exc: ConnectorError) -> bool:
    """Tell whether a failed write may have been carried out: no answer, or a server error."""
    return exc.status is None or exc.status >= 500


def members_patch(user_ids: Sequence[str], *, add: bool) -> dict[str, Any]:
    """Return the PatchOp that adds or removes these members, all in one request.

    Adding: one ``add`` with every member in its value (reference §3.7, the official
    example's form). Removing: one ``remove`` by a value filter per member (RFC 7644
    §3.5.2.2), never ``remove`` of ``members`` with a value list: RFC 7644 reads a
    ``remove`` without a filter as "remove every member", whatever the value says.
    """
    if add:
        return patch([{"op": "add", "path": "members", "value": [{"value": uid} for uid in user_ids]}])
    return patch([{"op": "remove", "path": value_path("members", "value", uid)} for uid in user_ids])
