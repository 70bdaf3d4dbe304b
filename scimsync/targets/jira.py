"""Jira Server / Data Center target over REST API v2 (reference §1); reads live in ``jira_read``."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from http import HTTPStatus
from typing import Any

import requests

from scimsync.errors import AuthError, ConnectorError, NotFoundError, NotManageableError, ResponseError
from scimsync.http import HttpClient
from scimsync.models import Account, Capabilities, TargetDirectory, key
from scimsync.secrets import redact
from scimsync.targets.base import Progress, no_progress
from scimsync.targets.jira_read import API, JiraReader, server_version, to_account
from scimsync.targets.refusals import garbage, proxy_page, says_read_only_directory

DEACTIVATE_SINCE = (8, 3)  # §1.5: PUT /user {"active": false} works from 8.3.0
PAT_SINCE = (8, 14)  # §1.1: personal access tokens (Bearer) exist from Jira 8.14
BASIC_AUTH_HINT = "basic authentication is disabled on this Jira; use a personal access token (token:)"
FIELDS = {"email": "emailAddress", "display_name": "displayName", "username": "name"}
# Refusals of a write that concern this one object (§1.5 steps 3-5, §1.10), classified alike.
REFUSALS = (400, 403)


def _messages(response: requests.Response) -> list[str]:
    """Return the messages of a Jira error body; empty when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return []
    parts: list[str] = []
    if isinstance(body, dict):
        messages, errors = body.get("errorMessages"), body.get("errors")
        if isinstance(messages, list):  # §1.10: {"errorMessages": [...], "errors": {field: msg}}
            parts += [str(m) for m in messages if m]
        if isinstance(errors, dict):
            parts += [f"{field}: {msg}" for field, msg in errors.items()]
        if isinstance(body.get("message"), str):  # §1.1: the basic-auth-disabled 403 body
            parts.append(body["message"])
    return parts


def _not_jira(response: requests.Response) -> str:
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip()
    return f"the body is not a Jira error ({kind or 'no content type'})"


def _jira_envelope(response: requests.Response) -> bool:
    """Tell whether an error body is Jira's ``{"errorMessages": [...], "errors": {...}}`` (§1.10)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and (
        isinstance(body.get("errorMessages"), list) or isinstance(body.get("errors"), dict)
    )


def parse_error(response: requests.Response) -> str:
    """Return Jira's own message from an error response, on one line."""
    parts = _messages(response)
    if not parts:
        return _not_jira(response)
    text = " ".join("; ".join(parts).split())
    if response.status_code == 403 and "basic auth" in text.lower():  # §1.1
        text += f" (hint: {BASIC_AUTH_HINT})"
    return text


class JiraTarget:
    """A Jira Server / Data Center instance; accounts are joined on the stable ``key`` (§1.2)."""

    type = "jira"

    def __init__(self, name: str, client: HttpClient) -> None:
        self.name = name
        self._client = client
        self._server: tuple[str, tuple[int, ...]] | None = None
        self._reader = JiraReader(name, client)
        self._roles_lock = threading.Lock()
        self._role_groups: dict[str, tuple[str, ...]] | None = None  # role key -> default groups

    # -- reads -------------------------------------------------------------------------

    def _server_info(self) -> tuple[str, tuple[int, ...]]:
        """Return the version label and numbers, reading serverInfo once."""
        if self._server is None:
            endpoint = f"GET {API}/serverInfo"
            response = self._client.request("GET", f"{API}/serverInfo", ok=(200,))
            body = self._client.decode_json(response, obj=endpoint)
            numbers = server_version(body) if isinstance(body, dict) else None
            if numbers is None:
                raise garbage(self.name, endpoint, "no version or versionNumbers")
            label = str(body.get("version") or ".".join(map(str, numbers)))
            scheme = (response.request.headers.get("Authorization") or "").partition(" ")[0]
            if scheme.lower() == "bearer" and numbers < PAT_SINCE:
                # §1.1: an older Jira ignores the Bearer header, so every call would be anonymous.
                cause = f"Jira {label} has no personal access tokens (8.14+); use username + password"
                raise AuthError(self.name, "", cause)
            self._server = (label, numbers)
        return self._server

    def capabilities(self) -> Capabilities:
        """Return what this Jira version can do."""
        label, numbers = self._server_info()
        return Capabilities(
            create_user=True,
            update_fields=frozenset({"email", "display_name", "username"}),
            deactivate=numbers >= DEACTIVATE_SINCE,
            delete=True,
            manage_groups=True,
            create_groups=True,
            shows_email=True,
            owner_marker="group",
            reason=f"Jira {label}",
        )

    def check(self) -> str:
        """Read the version, then the signed-in user (serverInfo alone does not prove the credentials)."""
        label, _ = self._server_info()
        me = self._client.get_json(f"{API}/myself")
        if not isinstance(me, dict):
            raise garbage(self.name, f"GET {API}/myself", f"expected a JSON object, got {type(me).__name__}")
        return f"Jira {label}, signed in as {me.get('name') or me.get('displayName') or '?'}"

    def read(
        self,
        managed_groups: Iterable[str],
        *,
        progress: Progress = no_progress,
        wanted: Iterable[tuple[str, str]] | None = None,
    ) -> TargetDirectory:
        """Read the users, and the members of each managed group (see ``Target.read``)."""
        _, numbers = self._server_info()
        return self._reader.directory(managed_groups, numbers, progress, wanted)

    def get_account(self, username: str, *, account_id: str | None = None) -> Account | None:
        """Read one user with all its groups, by key when given (§1.4); None when it does not exist."""
        return self._reader.account(username, account_id)

    def group_exists(self, name: str) -> bool:
        """Tell whether group ``name`` exists."""
        return self._reader.group_exists(name)

    # -- writes ------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        obj: str,
        *,
        params: dict[str, str] | None = None,
        body: object = None,
        refusals: tuple[int, ...] = REFUSALS,
    ) -> requests.Response:
        """Send one write; return the response when it succeeded or was refused in a Jira error body."""
        response = self._client.request(
            method, API + path, params=params, json=body, ok=(200, 201, 204, *refusals), obj=obj
        )
        status = response.status_code
        page = proxy_page(self.name, obj, response) if status < 300 else None
        if page is not None:
            raise page
        if status < 300 or _jira_envelope(response):
            return response
        if status == 403:
            # §1.1: basic auth disabled answers {"message": ...}, not a per-object refusal.
            cause = redact(f"HTTP 403 Forbidden: {parse_error(response)}")
            raise AuthError(self.name, obj, cause, status=status)
        cause = f"HTTP {status}: {_not_jira(response)}"
        raise ResponseError(self.name, f"{method} {API}{path}", cause, status=status)

    def _refused(self, response: requests.Response, obj: str) -> ConnectorError:
        """Return the error for a write Jira refused (400, 403, 404 with its error body)."""
        status, message = response.status_code, parse_error(response)
        cause = redact(f"HTTP {status} {HTTPStatus(status).phrase}: {message}")
        # §1.5 step 3, §1.12: a read-only (LDAP) directory refuses with a 400 or a 403; a 404
        # (or a name echoed in the message, 'readonly.kim') says nothing about the directory.
        if status in REFUSALS and says_read_only_directory(message):
            return NotManageableError(self.name, obj, cause, status=status)
        return (NotFoundError if status == 404 else ConnectorError)(self.name, obj, cause, status=status)

    def _write_user(self, method: str, account: Account, body: dict[str, Any] | None) -> requests.Response:
        """Change or delete a user, addressed by the stable key, never the mutable username (§1.2, §1.5)."""
        obj = f"user {account.username}"
        # §6: deleting a missing user answers 404; the user is gone, as wanted.
        refusals = (*REFUSALS, 404) if method == "DELETE" else REFUSALS
        response = self._send(method, "/user", obj, params={"key": account.id}, body=body, refusals=refusals)
        if response.status_code >= 300 and not (method == "DELETE" and response.status_code == 404):
            raise self._refused(response, obj)
        return response

    def create_user(
        self, username: str, email: str, display_name: str, *, external_id: str | None = None
    ) -> Account:
        """Create an active user with no product access of its own; Jira sends no email (§1.3)."""
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
        """Create an active user that is to join ``groups``; Jira picks a random password (§1.3).

        §1.3, §1.9: granting an application role on create puts the user into the role's
        default groups. Only roles whose default groups are all among ``groups`` are granted,
        so the create joins no group the plan does not show, and each membership it gives
        saves a write. The account returned carries those groups only when Jira's answer
        counts exactly them (``_holds_exactly``); otherwise none, and apply writes the
        memberships as planned. With no such role,
        applicationKeys [] grants nothing: left out, Jira would grant its default roles and
        their default groups, memberships the plan never showed.
        """
        del external_id  # the owner marker here is a group (SPEC §5)
        # §1.3, §1.12: Jira validates usernames as all lower-case on create (and stores a
        # lower-cased copy); a mapped 'Amara.K' would be refused on every run. Lookups are
        # case-insensitive, so the plan matches the account under either case.
        username = username.lower()
        keys, joined = self._grants(groups)
        body = {
            "name": username,
            "emailAddress": email,
            "displayName": display_name,
            "notification": "false",  # §1.3: no password -> a random one; a string in the schema
            "applicationKeys": keys,
        }
        obj, endpoint = f"user {username}", f"POST {API}/user"
        response = self._send("POST", "/user", obj, body=body)
        if response.status_code >= 300:
            raise self._refused(response, obj)
        bean = self._client.decode_json(response, obj=endpoint)
        return to_account(self.name, bean, endpoint, joined if _holds_exactly(bean, joined) else frozenset())

    def _grants(self, groups: Collection[str]) -> tuple[list[str], frozenset[str]]:
        """Return the roles to grant on create, and the groups (as ``groups`` spells them) they give."""
        wanted = {key(g): g for g in groups}
        if not wanted:
            return [], frozenset()
        keys: list[str] = []
        joined: set[str] = set()
        for role, defaults in self._roles().items():
            if defaults and all(key(g) in wanted for g in defaults):
                keys.append(role)
                joined.update(wanted[key(g)] for g in defaults)
        return keys, frozenset(joined)

    def _roles(self) -> dict[str, tuple[str, ...]]:
        """Return each grantable application role's default groups (§1.9), read once; {} if unreadable."""
        with self._roles_lock:
            if self._role_groups is None:
                self._role_groups = self._read_roles()
            return self._role_groups

    def _read_roles(self) -> dict[str, tuple[str, ...]]:
        try:
            body = self._client.get_json(f"{API}/applicationrole", obj="application roles")
        except ConnectorError:
            return {}  # no roles known: every membership is its own write, as before
        roles: dict[str, tuple[str, ...]] = {}
        for role in body if isinstance(body, list) else ():
            if not isinstance(role, dict) or role.get("defined") is False:
                continue  # §1.9: a role without a licence cannot be granted
            name, defaults = role.get("key"), role.get("defaultGroups")
            if (
                isinstance(name, str)
                and name
                and isinstance(defaults, list)
                and all(isinstance(g, str) and g for g in defaults)
            ):
                roles[name] = tuple(defaults)
        return roles

    def update_user(self, account: Account, fields: dict[str, str]) -> None:
        """Change email, display name or username (a rename, §1.5) of a user."""
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"jira cannot update {', '.join(sorted(unknown))}")
        if "username" in fields:
            fields = {**fields, "username": fields["username"].lower()}  # §1.12, as on create
        if fields:
            self._write_user("PUT", account, {FIELDS[f]: value for f, value in fields.items()})

    def set_active(self, account: Account, active: bool) -> None:
        """Activate or deactivate a user (§1.5, Jira 8.3+)."""
        self._write_user("PUT", account, {"active": active})

    def delete_user(self, account: Account) -> None:
        """Delete a user (§1.6); one that is already gone is done."""
        self._write_user("DELETE", account, None)

    def create_group(self, name: str) -> None:
        """Create a group; one that exists already is success."""
        obj = f"group {name}"
        response = self._send("POST", "/group", obj, body={"name": name})
        # §1.8: an existing group answers 400 in the caller's language: the group decides.
        if response.status_code >= 300 and not self.group_exists(name):
            raise self._refused(response, obj)

    def add_member(self, account: Account, group: str) -> None:
        """Add a user to a group; already a member is success."""
        obj = f"membership {account.username} in {group}"
        params, body = {"groupname": group}, {"name": account.username}
        response = self._send("POST", "/group/user", obj, params=params, body=body, refusals=(*REFUSALS, 404))
        # §1.8: "already a member" is a 400 whose text Jira translates: the user's groups decide.
        if response.status_code >= 300 and not self._is_member(account, group):
            raise self._refused(response, obj)

    def remove_member(self, account: Account, group: str) -> None:
        """Remove a user from a group; not a member (any more) is success."""
        obj = f"membership {account.username} in {group}"
        params = {"groupname": group, "username": account.username}
        response = self._send("DELETE", "/group/user", obj, params=params, refusals=(*REFUSALS, 404))
        # §1.8: group/member and the user's groups count nested memberships, so even a
        # removal Jira accepted is done only when the user is no member any more.
        if not self._is_member(account, group):
            return  # §6: removing a non-member is refused, in the caller's language
        if response.status_code < 300:
            cause = (
                f"still a member of {group} through a nested group after the direct membership was "
                "removed; remove the nesting in Jira"
            )
            raise ConnectorError(self.name, obj, cause, status=response.status_code)
        error = self._refused(response, obj)
        if isinstance(error, NotManageableError):
            raise error
        # §1.8: group/member and the user's groups count nested memberships, and REST cannot
        # remove one of those: the person keeps the access, which is a failure, not "done".
        cause = (
            f"still a member of {group} through a nested group; remove the nesting in Jira "
            f"(Jira answered {error.cause})"
        )
        raise ConnectorError(self.name, obj, cause, status=error.status)

    def _is_member(self, account: Account, group: str) -> bool:
        """Re-read the user's groups (nested ones included, §1.2) and tell whether ``group`` is one."""
        fresh = self.get_account(account.username, account_id=account.id or None)
        return fresh is not None and fresh.in_group(group)

    def close(self) -> None:
        """Release connections."""
        self._client.close()


def _holds_exactly(bean: Any, joined: frozenset[str]) -> bool:
    """Tell whether a new user's bean says it is in exactly as many groups as ``joined``.

    §1.2: the user bean always carries ``groups.size``, items or not. A new user is in no
    group but those its create gave; a count that differs (or none) claims nothing, and the
    memberships are then written one by one as planned.
    """
    if not joined:
        return True
    groups = bean.get("groups") if isinstance(bean, dict) else None
    size = groups.get("size") if isinstance(groups, dict) else None
    return isinstance(size, int) and not isinstance(size, bool) and size == len(joined)
