"""Confluence Server / Data Center target over REST (reference §2); reads live in ``confluence_read``."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from secrets import token_urlsafe
from typing import Any
from urllib.parse import urlsplit

import requests

from scimsync.errors import AuthError, ConnectorError, NotFoundError, ResponseError
from scimsync.http import HttpClient
from scimsync.models import Account, Capabilities, TargetDirectory, key
from scimsync.secrets import redact
from scimsync.targets.base import Progress, no_progress
from scimsync.targets.confluence_errors import (
    is_envelope,
    not_confluence,
    parse_error,
    refusal,
    scrubbed,
    text_of,
)
from scimsync.targets.confluence_read import (
    API,
    EMAILS_SINCE,
    MANIFEST,
    ConfluenceReader,
    Identities,
    manifest_version,
    segment,
)
from scimsync.targets.refusals import garbage, proxy_page

KNOWN = ((7,), (11,))  # the versions scimsync knows: 7.x to 10.x
PAT_SINCE = (7, 9)  # §2.1: personal access tokens (Bearer) from Confluence 7.9
ADMIN_SINCE = (8, 2)  # §2.2: disable/enable/delete users, create groups, memberships
CREATE_SINCE = (8, 4)  # §2.2: POST /admin/user
UPDATE_SINCE = (10, 0)  # §2.2: PUT /admin/user/{u}
FIELDS = {"email": "email", "display_name": "fullName"}  # §2.5: no rename endpoint
REFUSALS = (400, 402, 403, 404, 409)  # answered with a §2.8 error body about this one object
DELETE_WAIT = 120.0  # seconds a deletion's long task may take (§2.5)
FIRST_POLL_GAP, MAX_POLL_GAP = 0.5, 10.0
# §2.4: no upper case (lower-cased before sending), no whitespace, none of \ , + < > ' "
_BAD_USERNAME = re.compile(r"[\s\\,+<>'\"]")
# [U] the group Confluence puts every new user in, as the admin UI does (the simulator does).
DEFAULT_GROUP = "confluence-users"


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up at call time, so a test can swap time.sleep for a whole run


def describe(caps: Capabilities, user: str = "") -> str:
    """Return "Confluence 9.2.1, signed in as bot (can: ...; cannot: ...)" for ``check``."""
    what = {
        "create": caps.create_user,
        "deactivate": caps.deactivate,
        "delete": caps.delete,
        "groups": caps.manage_groups,
        "update email/display name": bool(caps.update_fields),
        "see emails": caps.shows_email,
    }
    can = ", ".join(name for name, ok in what.items() if ok)
    cannot = ", ".join(name for name, ok in what.items() if not ok)
    parts = [f"can: {can}"] * bool(can) + [f"cannot: {cannot}"] * bool(cannot)
    signed_in = f", signed in as {user}" if user else ""
    return f"{caps.reason}{signed_in} ({'; '.join(parts)})"


class ConfluenceTarget:
    """A Confluence Server / Data Center instance; accounts are joined on the stable ``userKey`` (§2.3)."""

    type = "confluence"

    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        sleep: Callable[[float], None] = _sleep,
        clock: Callable[[], float] = time.monotonic,
        delete_wait: float = DELETE_WAIT,
    ) -> None:
        self.name = name
        self._client = client
        self._reader = ConfluenceReader(name, client, lambda: self._server_info()[1])
        self._server: tuple[str, tuple[int, ...]] | None = None
        self._sleep, self._clock, self._delete_wait = sleep, clock, delete_wait
        self._identities = Identities(self._reader)  # usernames confirmed in this run (§2.5)
        # userKeys created here whose confluence-users membership their creation may have given
        # and no read has decided yet (§2.4 [U])
        self._given: set[str] = set()
        self._given_lock = threading.Lock()

    # -- reads -------------------------------------------------------------------------

    def _server_info(self) -> tuple[str, tuple[int, ...]]:
        """Return the version label and numbers, reading the application-links manifest once (§2.1a)."""
        if self._server is None:
            try:
                response = self._client.request("GET", MANIFEST, ok=(200,))
            except NotFoundError:
                cause = "no application-links manifest (HTTP 404): is url the Confluence base URL?"
                raise ResponseError(self.name, f"GET {MANIFEST}", cause) from None
            except AuthError as exc:
                raise self._hinted(exc) from None
            label, numbers = manifest_version(self.name, response)
            if not KNOWN[0] <= numbers < KNOWN[1]:
                raise ConnectorError(
                    self.name, "", f"Confluence {label} is not a version scimsync knows (7.x to 10.x)"
                )
            scheme = (response.request.headers.get("Authorization") or "").partition(" ")[0]
            if scheme.lower() == "bearer" and numbers < PAT_SINCE:
                # §2.1: an older Confluence ignores the Bearer header: every call would be anonymous.
                cause = f"Confluence {label} has no personal access tokens (7.9+); use username + password"
                raise AuthError(self.name, "", cause)
            self._server = (label, numbers)
        return self._server

    def _hinted(self, error: AuthError) -> AuthError:
        """Add what to check to a 401 (§2.5: also a user without Confluence access)."""
        if error.status != 401:
            return error
        hint = (
            f"check targets.{self.name} token, or username and password, and that the user may use Confluence"
        )
        return AuthError(error.system, error.obj, f"{error.cause}; {hint}", status=401)

    def capabilities(self) -> Capabilities:
        """Return what this Confluence version can do (§2.2)."""
        label, numbers = self._server_info()
        admin = numbers >= ADMIN_SINCE
        return Capabilities(
            create_user=numbers >= CREATE_SINCE,
            update_fields=frozenset(FIELDS) if numbers >= UPDATE_SINCE else frozenset(),
            deactivate=admin,
            delete=admin,
            manage_groups=admin,
            create_groups=admin,
            shows_email=numbers >= EMAILS_SINCE,
            owner_marker="group",
            reason=f"Confluence {label}",
        )

    def check(self) -> str:
        """Read the version, then the signed-in user (the manifest alone proves no credentials)."""
        caps = self.capabilities()
        endpoint = f"GET {API}/user/current"
        try:
            me = self._client.get_json(f"{API}/user/current")
        except AuthError as exc:
            raise self._hinted(exc) from None
        if not isinstance(me, dict):
            raise garbage(self.name, endpoint, f"expected a JSON object, got {type(me).__name__}")
        if me.get("type") == "anonymous" or not me.get("username"):
            # §2.3: /user/current answers 200 for an anonymous caller too.
            cause = f"signed in as anonymous; check targets.{self.name} token, or username and password"
            raise AuthError(self.name, endpoint, cause)
        return describe(caps, str(me["username"]))

    def read(
        self,
        managed_groups: Iterable[str],
        *,
        progress: Progress = no_progress,
        wanted: Iterable[tuple[str, str]] | None = None,
    ) -> TargetDirectory:
        """Read the users, and the members of each managed group (see ``Target.read``)."""
        return self._reader.directory(managed_groups, progress, wanted)

    def get_account(self, username: str, *, account_id: str | None = None) -> Account | None:
        """Read one user with all its groups, by userKey when given (§2.3); None when it does not exist."""
        return self._reader.account(username, account_id)

    def group_exists(self, name: str) -> bool:
        """Tell whether group ``name`` exists."""
        return self._reader.group_exists(name)

    # -- writes ------------------------------------------------------------------------

    def _require(self, able: bool, what: str, obj: str) -> None:
        """Refuse a write this version has no endpoint for (§2.2); the plan never asks for one."""
        if not able:
            raise ConnectorError(
                self.name, obj, f"cannot {what} on this target ({self.capabilities().reason})"
            )

    def _send(self, method: str, path: str, obj: str, *, body: object = None) -> requests.Response:
        """Send one write; return the response when it succeeded or was refused in a §2.8 error body."""
        ok = (200, 201, 202, 204, *REFUSALS)
        response = self._client.request(method, API + path, json=body, ok=ok, obj=obj)
        status = response.status_code
        page = proxy_page(self.name, obj, response) if status < 300 else None
        if page is not None:
            raise page
        if status < 300 or is_envelope(response):
            return response
        if status == 403:
            # §2.1: basic auth disabled, or a proxy: not a refusal of this one object.
            raise AuthError(
                self.name, obj, redact(f"HTTP 403 Forbidden: {parse_error(response)}"), status=403
            )
        cause = f"HTTP {status}: {not_confluence(response)}"
        raise ResponseError(self.name, f"{method} {API}{path}", cause, status=status)

    def _refused(self, response: requests.Response, obj: str) -> ConnectorError:
        """Return the error for a write Confluence refused with a §2.8 error body."""
        return refusal(self.name, response, obj)

    def create_user(
        self, username: str, email: str, display_name: str, *, external_id: str | None = None
    ) -> Account:
        """Create an active user with a random password it never learns (SSO); no email is sent (§2.4)."""
        return self.create_user_in(username, email, display_name, external_id=external_id)

    def create_user_in(
        self,
        username: str,
        email: str,
        display_name: str,
        *,
        external_id: str | None = None,
        groups: Collection[str] = (),
    ) -> Account:
        """Create a user that is to join ``groups``; remember the one Confluence may give by itself.

        [U] Confluence puts a new user into its default user group, confluence-users, as the
        admin UI does (the simulator does so; §2.4 does not say). Nothing is claimed here:
        the account's first addition of that group reads the user's groups before writing
        (``_given``) and writes only if Confluence did not add it, so the membership costs a
        write only where it is needed and its result is what the read shows.
        """
        del external_id  # the owner marker here is a group (SPEC §5)
        account = self._create(username, email, display_name)
        if any(key(g) == key(DEFAULT_GROUP) for g in groups):
            with self._given_lock:
                self._given.add(account.id)
        return account

    def _create(self, username: str, email: str, display_name: str) -> Account:
        name = username.lower()  # §2.4: no upper-case letters
        obj = f"user {name}"
        self._require(self.capabilities().create_user, "create users", obj)
        if _BAD_USERNAME.search(name) or name == "anonymous":
            cause = (
                "Confluence does not allow this username (§2.4: no whitespace, \\ , + < > ' \" or anonymous)"
            )
            raise ConnectorError(self.name, obj, cause)
        segment(self.name, obj, name)  # refuses '.' and '..': no later write could address them
        # §2.4: a password is required when notifyViaEmail is false. People sign in through
        # SSO: the password is random, sent once, and never logged, stored or shown.
        password = token_urlsafe(32)
        body = {"userName": name, "fullName": display_name, "email": email}
        try:
            response = self._send(
                "POST", "/admin/user", obj, body={**body, "password": password, "notifyViaEmail": False}
            )
            if response.status_code >= 300:
                raise self._refused(response, obj)
            created = self._client.decode_json(response, obj=obj)
        except ConnectorError as exc:
            raise scrubbed(exc, password) from None
        user_key = created.get("userKey") if isinstance(created, dict) else None
        if not isinstance(user_key, str) or not user_key:
            raise garbage(self.name, f"POST {API}/admin/user", "no 'userKey' in the answer")
        self._identities.note(name, user_key)  # made just now: its first membership needs no lookup
        shown = email if self.capabilities().shows_email else None  # as a read would show it
        return Account(id=user_key, username=name, email=shown, display_name=display_name)

    def update_user(self, account: Account, fields: dict[str, str]) -> None:
        """Change the email and display name of a user (§2.5, Confluence 10.0+)."""
        obj = f"user {account.username}"
        able = self.capabilities().update_fields
        self._require(set(fields) <= able, f"update {', '.join(sorted(set(fields) - able))}", obj)
        if not fields:
            return
        path = f"/admin/user/{segment(self.name, obj, account.username)}"
        user_key = self._identities.confirm(account, obj)
        current = {"email": account.email or "", "display_name": account.display_name}
        if not all(current[f] or f in fields for f in FIELDS):
            # §2.5 [U]: the body holds both fields; send the other one as it is now.
            fresh = self._reader.find(account.username, user_key)
            if fresh is None:
                raise NotFoundError(self.name, obj, "the account does not exist")
            current = {"email": fresh.email or "", "display_name": fresh.display_name}
        values = {**current, **fields}
        missing = [f for f in FIELDS if not values[f]]
        if missing:
            raise ConnectorError(self.name, obj, f"cannot tell the current {missing[0]}, which §2.5 requires")
        response = self._send("PUT", path, obj, body={FIELDS[f]: values[f] for f in FIELDS})
        if response.status_code >= 300:
            raise self._refused(response, obj)

    def set_active(self, account: Account, active: bool) -> None:
        """Enable or disable a user (§2.5: idempotent, Confluence 8.2+), and read the status back."""
        obj = f"user {account.username}"
        self._require(self.capabilities().deactivate, "deactivate or reactivate users", obj)
        verb = "enable" if active else "disable"
        path = f"/admin/user/{segment(self.name, obj, account.username)}/{verb}"
        user_key = self._identities.confirm(account, obj)
        response = self._send("PUT", path, obj)
        if response.status_code >= 300:
            raise self._refused(response, obj)
        fresh = self._reader.find(account.username, user_key)
        if fresh is None:
            raise NotFoundError(self.name, obj, f"the account is gone after Confluence answered {verb}")
        if fresh.active is not active:
            # §2.5: CONFSERVER-54928's comments say disable "doesn't work in 8.5.16": a 2xx proves nothing.
            bug = "§2.5: CONFSERVER-54928, disable fails on 8.5.16"
            still = f"enabled ({bug})" if fresh.active else "disabled"
            cause = f"Confluence answered success to {verb} but the state did not change: still {still}"
            raise ConnectorError(self.name, obj, cause)

    def delete_user(self, account: Account) -> None:
        """Delete a user and wait for Confluence's long task to finish (§2.5); one already gone is done."""
        obj = f"user {account.username}"
        self._require(self.capabilities().delete, "delete users", obj)
        path = f"/admin/user/{segment(self.name, obj, account.username)}"
        try:
            self._identities.confirm(account, obj)
        except NotFoundError:
            if self._gone(account):
                return  # §6: deleted already, as wanted
            raise
        response = self._send("DELETE", path, obj)
        if response.status_code == 404 and self._gone(account):
            return  # §6: deleting a missing user answers 404; gone, as wanted
        if response.status_code >= 300:
            raise self._refused(response, obj)
        if response.status_code == 202:
            self._await(self._client.decode_json(response, obj=obj), obj)
        self._identities.note(account.username, None)  # the name is free now: anyone may take it

    def _gone(self, account: Account) -> bool:
        """Tell whether the account no longer exists (by its userKey when known)."""
        return self._reader.find(account.username, account.id or None) is None

    def _task_path(self, submission: Any) -> tuple[str, str]:
        """Return the id and the status path of a LongTaskSubmission (§2.5 [U] shape)."""
        endpoint = f"DELETE {API}/admin/user"
        task_id = submission.get("id") if isinstance(submission, dict) else None
        links = submission.get("links") if isinstance(submission, dict) else None
        link = links.get("status") if isinstance(links, dict) else None
        if not isinstance(task_id, str | int) or isinstance(task_id, bool) or task_id == "":
            raise garbage(self.name, endpoint, "a long task without an id")
        if not isinstance(link, str) or not link:
            return str(task_id), f"{API}/longtask/{segment(self.name, endpoint, str(task_id), 'task id')}"
        base = urlsplit(self._client.base_url).path
        if base and link.startswith(base + "/"):
            link = link[len(base) :]  # a path with the context path in it (/confluence/rest/...)
        return str(task_id), link

    def _await(self, submission: Any, obj: str) -> None:
        """Poll a long task with a growing gap until it finishes, for at most ``delete_wait`` s."""
        task_id, path = self._task_path(submission)
        started, gap = self._clock(), FIRST_POLL_GAP
        while True:
            status = self._client.get_json(path, obj=f"delete task {task_id}")
            finished = status.get("finished") if isinstance(status, dict) else None
            if not isinstance(finished, bool):
                raise garbage(self.name, f"delete task {task_id}", "a task status without 'finished'")
            if finished:
                if status.get("successful") is True:
                    return
                messages = status.get("messages")
                said = "; ".join(filter(None, map(text_of, messages if isinstance(messages, list) else [])))
                raise ConnectorError(
                    self.name, obj, redact(f"delete task {task_id} failed: {said or 'no message'}")
                )
            waited = self._clock() - started
            if waited >= self._delete_wait:
                cause = f"delete task {task_id} did not finish within {self._delete_wait:g} s"
                raise ConnectorError(self.name, obj, cause)
            self._sleep(min(gap, self._delete_wait - waited))
            gap = min(gap * 2, MAX_POLL_GAP)

    def create_group(self, name: str) -> None:
        """Create a group (§2.7: body ``{"name"}`` only); one that exists already is success."""
        obj = f"group {name}"
        self._require(self.capabilities().create_groups, "create groups", obj)
        segment(self.name, obj, name, "group name")  # refuses '.' and '..': no membership could name it
        response = self._send("POST", "/admin/group", obj, body={"name": name})
        # An existing group's answer is not documented [U]: the group itself decides.
        if response.status_code >= 300 and not self.group_exists(name):
            raise self._refused(response, obj)

    def add_member(self, account: Account, group: str) -> None:
        """Add a user to a group (§2.7: idempotent, 204)."""
        self._membership("PUT", account, group)

    def remove_member(self, account: Account, group: str) -> None:
        """Remove a user from a group (§2.7: idempotent, 204)."""
        self._membership("DELETE", account, group)

    def _membership(self, method: str, account: Account, group: str) -> None:
        """Change one membership, then re-read the user's groups: they decide, not the answer."""
        obj = f"membership {account.username} in {group}"
        self._require(self.capabilities().manage_groups, "change group memberships", obj)
        user, name = segment(self.name, obj, account.username), segment(self.name, obj, group, "group name")
        user_key = self._identities.confirm(account, obj)
        if method == "PUT" and self._take_given(user_key, [group]) and self._holds(account, user_key):
            return  # the creation gave it (create_user_in): no write
        response = self._send(method, f"/user/{user}/group/{name}", obj)
        # One read decides both ways: a refusal may mean "already so", and a 204 may have done
        # nothing (a write answered success without effect, §2.5; a nested group, §2.7).
        groups = self._reader.groups(user_key, account.username)
        status, wanted = response.status_code, method == "PUT"
        said = f"Confluence answered HTTP {status}"
        if groups is None:
            raise NotFoundError(self.name, obj, f"user {account.username} does not exist ({said})")
        if any(key(g) == key(group) for g in groups) == wanted:
            return
        if status < 300:
            still = "not a member" if wanted else "a member (through a nested group? §2.7)"
            cause = f"Confluence answered success (HTTP {status}) but the state did not change: still {still}"
            raise ConnectorError(self.name, obj, cause)
        if wanted and not self.group_exists(group):
            raise NotFoundError(self.name, obj, f"group {group} does not exist ({said})")
        raise self._refused(response, obj)

    def add_groups(self, account: Account, groups: Sequence[str]) -> list[ConnectorError | None]:
        """Add a user to several groups (§2.7), then read its groups back once: they decide.

        A group the account's creation may have given (``create_user_in``) is not written
        first: the read decides it too, and only when the user is not in it is it added,
        on its own, with its own read-back (``_membership``).
        """
        objs = [f"membership {account.username} in {g}" for g in groups]
        self._require(self.capabilities().manage_groups, "change group memberships", objs[0])
        user = segment(self.name, objs[0], account.username)
        user_key = self._identities.confirm(account, objs[0])
        given = self._take_given(user_key, groups)  # confluence-users, not written first
        sent: list[requests.Response | ConnectorError | None] = []  # None: not sent (given)
        for group, obj in zip(groups, objs, strict=True):
            if given and key(group) == key(DEFAULT_GROUP):
                sent.append(None)
                continue
            try:
                name = segment(self.name, obj, group, "group name")
                sent.append(self._send("PUT", f"/user/{user}/group/{name}", obj))
            except AuthError:
                raise
            except ConnectorError as exc:
                sent.append(exc)  # the read below tells whether it took all the same
        now = self._reader.groups(user_key, account.username)
        if now is None:
            raise NotFoundError(self.name, objs[0], f"user {account.username} does not exist")
        held = {key(g) for g in now}
        results: list[ConnectorError | None] = []
        for group, obj, answer in zip(groups, objs, sent, strict=True):
            if key(group) in held:
                results.append(None)
            elif answer is None:  # the creation did not give it after all: add it now
                try:
                    self._membership("PUT", account, group)
                    results.append(None)
                except AuthError:
                    raise
                except ConnectorError as exc:
                    results.append(exc)
            else:
                results.append(self._not_added(group, obj, answer))
        return results

    def _not_added(self, group: str, obj: str, answer: requests.Response | ConnectorError) -> ConnectorError:
        """Return the error of an addition the groups read back do not show."""
        if isinstance(answer, ConnectorError):
            return answer
        status = answer.status_code
        if status < 300:
            still = "the state did not change: still not a member"
            cause = f"Confluence answered success (HTTP {status}) but {still}"
            return ConnectorError(self.name, obj, cause)
        if not self.group_exists(group):
            return NotFoundError(
                self.name, obj, f"group {group} does not exist (Confluence answered HTTP {status})"
            )
        return self._refused(answer, obj)

    def _take_given(self, user_key: str, groups: Iterable[str]) -> bool:
        """Tell (once) whether ``groups`` holds confluence-users, which the user's creation may have given."""
        if not any(key(g) == key(DEFAULT_GROUP) for g in groups):
            return False
        with self._given_lock:
            given = user_key in self._given
            self._given.discard(user_key)
        return given

    def _holds(self, account: Account, user_key: str) -> bool:
        """Tell whether a read of the user's groups shows confluence-users."""
        groups = self._reader.groups(user_key, account.username)
        return groups is not None and any(key(g) == key(DEFAULT_GROUP) for g in groups)

    def close(self) -> None:
        """Release connections."""
        self._client.close()
