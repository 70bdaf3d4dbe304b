"""Jira Server / Data Center target over REST API v2 (reference §1)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import requests

from scimsync.errors import ConnectorError, NotFoundError, NotManageableError, ResponseError
from scimsync.http import HttpClient
from scimsync.models import Account, Capabilities, TargetDirectory, key
from scimsync.pagination import OffsetList, cursor_pages, offset_pages, read_offset_lists
from scimsync.secrets import redact
from scimsync.targets.base import Progress, no_progress

API = "/rest/api/2"
USER_LIST_SINCE = (10, 3)  # §1.7: /user/list exists in 10.3 LTS and 11.0
DEACTIVATE_SINCE = (8, 3)  # §1.5: PUT /user {"active": false} works from 8.3.0
# §1.7, §8.3: /user/search cuts results at a window of 1000 (<= 9.x) or 100 (10.x); the
# version where the window shrank is not pinned down, so a result of exactly either size
# counts as cut.
SEARCH_WINDOWS = (100, 1000)
SHARD_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-@"
MEMBER_PAGE = 50  # §1.8: group/member answers at most 50 per page
BASIC_AUTH_HINT = "basic authentication is disabled on this Jira; use a personal access token (token:)"
FIELDS = {"email": "emailAddress", "display_name": "displayName", "username": "name"}
_READ_ONLY = re.compile(r"read[-\s._]?only", re.IGNORECASE)


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


def parse_error(response: requests.Response) -> str:
    """Return Jira's own message from an error response, on one line."""
    parts = _messages(response)
    if not parts:
        return _not_jira(response)
    text = " ".join("; ".join(parts).split())
    if response.status_code == 403 and "basic auth" in text.lower():  # §1.1
        text += f" (hint: {BASIC_AUTH_HINT})"
    return text


def _version(body: dict[str, Any]) -> tuple[int, ...] | None:
    """Parse serverInfo's ``versionNumbers``, falling back to the ``version`` string."""
    numbers = body.get("versionNumbers")
    if isinstance(numbers, list) and numbers and all(type(n) is int for n in numbers):
        return tuple(numbers)
    match = re.match(r"\d+(?:\.\d+)*", str(body.get("version") or ""))
    return tuple(int(p) for p in match.group().split(".")) if match else None


def _shards(query: str) -> list[str]:
    """Return the narrower queries that together cover ``query``."""
    if query == ".":  # "." matches everyone (§1.7), so it has no "." child of its own
        return [c for c in SHARD_CHARS if c != "."]
    return [query + c for c in SHARD_CHARS]


class JiraTarget:
    """A Jira Server / Data Center instance; accounts are joined on the stable ``key`` (§1.2)."""

    type = "jira"

    def __init__(self, name: str, client: HttpClient) -> None:
        self.name = name
        self._client = client
        self._server: tuple[str, tuple[int, ...]] | None = None

    # -- reads -------------------------------------------------------------------------

    def _garbage(self, endpoint: str, what: str) -> ResponseError:
        return ResponseError(self.name, endpoint, f"unexpected response: {what}")

    def _object(self, body: Any, endpoint: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise self._garbage(endpoint, f"expected a JSON object, got {type(body).__name__}")
        return body

    def _server_info(self) -> tuple[str, tuple[int, ...]]:
        """Return the version label and numbers, reading serverInfo once."""
        if self._server is None:
            body = self._object(self._client.get_json(f"{API}/serverInfo"), f"GET {API}/serverInfo")
            numbers = _version(body)
            if numbers is None:
                raise self._garbage(f"GET {API}/serverInfo", "no version or versionNumbers")
            self._server = (str(body.get("version") or ".".join(map(str, numbers))), numbers)
        return self._server

    def _account(self, bean: Any, endpoint: str, groups: frozenset[str] = frozenset()) -> Account:
        """Map a user bean (§1.2) to an Account."""
        if not isinstance(bean, dict) or not all(
            isinstance(bean.get(f), str) and bean[f] for f in ("key", "name")
        ):
            raise self._garbage(endpoint, "a user without 'key' and 'name'")
        email, display, active = bean.get("emailAddress"), bean.get("displayName"), bean.get("active", True)
        if not isinstance(active, bool):
            raise self._garbage(endpoint, f"user {bean['name']} has a non-boolean 'active'")
        return Account(
            id=bean["key"],
            username=bean["name"],
            email=email if isinstance(email, str) else None,
            display_name=display if isinstance(display, str) else "",
            active=active,
            groups=groups,
        )

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
        """Read the signed-in user (serverInfo alone does not prove the credentials) and the version."""
        me = self._object(self._client.get_json(f"{API}/myself"), f"GET {API}/myself")
        label, _ = self._server_info()
        return f"Jira {label}, signed in as {me.get('name') or me.get('displayName') or '?'}"

    def read(self, managed_groups: Iterable[str], *, progress: Progress = no_progress) -> TargetDirectory:
        """Read every user, and the members of each managed group."""
        by_key: dict[str, str] = {}
        for group in managed_groups:
            by_key.setdefault(key(group), group)  # keep the configured spelling
        groups = list(by_key.values())
        users: dict[str, Account] = {}
        _, numbers = self._server_info()
        if numbers < USER_LIST_SINCE or not self._list_users(users, progress):
            self._search_users(users, progress, window=1000 if numbers < (10,) else 100)
        memberships: dict[str, set[str]] = {}
        existing: set[str] = set()
        for group, found in zip(groups, self._members(groups), strict=True):
            if found is None:  # 404: the group does not exist
                continue
            existing.add(group)
            for account in found:
                users.setdefault(account.id, account)  # §1.7 item 3: members the user walk missed
                memberships.setdefault(account.id, set()).add(group)
        progress(f"{self.name}: groups", len(groups), len(groups))
        accounts = tuple(
            dataclasses.replace(a, groups=frozenset(memberships.get(a.id, ()))) for a in users.values()
        )
        return TargetDirectory(accounts=accounts, groups=frozenset(existing))

    def _list_users(self, users: dict[str, Account], progress: Progress) -> bool:
        """Walk the /user/list cursor (§1.7 item 1); False when this Jira has no such route."""
        path, started = f"{API}/user/list", False
        try:
            for page in cursor_pages(self._client, path, params={"maxResults": 2000}):
                started = True
                for bean in page:
                    account = self._account(bean, f"GET {path}")
                    users.setdefault(account.id, account)
                progress(f"{self.name}: users", len(users), None)
        except NotFoundError:
            # §1.7: /user/list never 404s on a bad cursor, so only a first-page 404 means
            # an early 10.3.x without the route.
            if started:
                raise
            return False
        return True

    def _search_users(self, users: dict[str, Account], progress: Progress, *, window: int) -> None:
        """Enumerate users with /user/search, sharding every query whose result was cut (§1.7 item 2)."""
        level: dict[str, tuple[str, int]] = {".": ("", 0)}  # query -> (parent, hash of its result)
        while level:
            queries = list(level)
            results = self._client.map_parallel(lambda q: self._search(q, window), queries)
            children: dict[str, tuple[str, int]] = {}
            echoes: dict[str, int] = {}
            for query, found in zip(queries, results, strict=True):
                for account in found:
                    users.setdefault(account.id, account)  # shards overlap: dedupe by key
                digest = hash(tuple(sorted(a.id for a in found)))
                parent, parent_digest = level[query]
                if digest == parent_digest:
                    echoes[parent] = echoes.get(parent, 0) + 1
                if len(found) >= window or len(found) in SEARCH_WINDOWS:
                    children.update((shard, (query, digest)) for shard in _shards(query))
            if any(n == len(_shards(parent)) for parent, n in echoes.items()):
                # Every narrower query gave the same cut window: the server ignores the
                # query, and sharding deeper would only multiply requests.
                raise self._garbage(f"GET {API}/user/search", "the 'username' query is ignored")
            progress(f"{self.name}: users", len(users), None)
            level = children

    def _search(self, query: str, window: int) -> list[Account]:
        """Return every user /user/search gives for ``query`` (a bare JSON array, §1.7)."""
        path, params = (
            f"{API}/user/search",
            {"username": query, "includeActive": True, "includeInactive": True},
        )
        pages = offset_pages(
            self._client, path, params=params, page_size=window, items_field=None, last_field=None
        )
        return [self._account(bean, f"GET {path}") for page in pages for bean in page]

    def _members(self, groups: list[str]) -> list[list[Account] | None]:
        """Return each group's members (nested ones included, §1.8); None for a group that does not exist."""
        path = f"{API}/group/member"
        # §1.8: 50 per page with a total, so every page of every group can be asked at once.
        lists = [
            OffsetList(path, {"groupname": g, "includeInactiveUsers": True}, obj=f"group {g}") for g in groups
        ]
        found = read_offset_lists(self._client, lists, page_size=MEMBER_PAGE, missing_ok=True)
        return [
            None if beans is None else [self._account(bean, f"GET {path}") for bean in beans]
            for beans in found
        ]

    def get_account(self, username: str, *, account_id: str | None = None) -> Account | None:
        """Read one user with all its groups, by key when given (§1.4); None when it does not exist."""
        endpoint = f"GET {API}/user"
        who = {"key": account_id} if account_id else {"username": username}
        try:
            body = self._client.get_json(
                f"{API}/user", params={**who, "expand": "groups"}, obj=f"user {username}"
            )
        except NotFoundError:
            return None
        items = self._object(body, endpoint).get("groups")
        items = items.get("items") if isinstance(items, dict) else None  # §1.2: filled by expand=groups
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("name"), str) for i in items
        ):
            raise self._garbage(endpoint, f"user {username} has no readable 'groups.items'")
        return self._account(body, endpoint, frozenset(i["name"] for i in items))

    def group_exists(self, name: str) -> bool:
        """Tell whether group ``name`` exists."""
        try:
            self._client.get_json(
                f"{API}/group/member", params={"groupname": name, "maxResults": 1}, obj=f"group {name}"
            )
        except NotFoundError:
            return False
        return True

    # -- writes ------------------------------------------------------------------------

    def _write(
        self,
        method: str,
        path: str,
        obj: str,
        *,
        params: dict[str, str] | None = None,
        body: object = None,
        done_if: str = "",
        refusals: tuple[int, ...] = (400,),
    ) -> requests.Response:
        """Send one write; a refusal whose message contains ``done_if`` means it was already done."""
        response = self._client.request(
            method, API + path, params=params, json=body, ok=(200, 201, 204, *refusals), obj=obj
        )
        status = response.status_code
        if status < 300:
            return response
        if not _messages(response):
            cause = f"HTTP {status}: {_not_jira(response)}"
            raise ResponseError(self.name, f"{method} {API}{path}", cause, status=status)
        message = parse_error(response)
        if done_if and done_if in message.lower():
            return response
        cause = redact(f"HTTP {status} {HTTPStatus(status).phrase}: {message}")
        if _READ_ONLY.search(message):  # §1.5 step 3, §1.12: a read-only (LDAP) directory
            raise NotManageableError(self.name, obj, cause, status=status)
        raise (NotFoundError if status == 404 else ConnectorError)(self.name, obj, cause, status=status)

    def create_user(self, username: str, email: str, display_name: str) -> Account:
        """Create an active user; Jira picks a random password and sends no email (§1.3)."""
        # §1.3: no password -> a random one; notification is a string in the schema; no
        # applicationKeys, so the instance's default product access applies.
        body = {"name": username, "emailAddress": email, "displayName": display_name, "notification": "false"}
        response = self._write("POST", "/user", f"user {username}", body=body)
        endpoint = f"POST {API}/user"
        return self._account(self._client.decode_json(response, obj=endpoint), endpoint)

    def update_user(self, account: Account, fields: dict[str, str]) -> None:
        """Change email, display name or username (a rename, §1.5) of a user."""
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"jira cannot update {', '.join(sorted(unknown))}")
        if fields:
            self._write_user("PUT", account, {FIELDS[f]: value for f, value in fields.items()})

    def set_active(self, account: Account, active: bool) -> None:
        """Activate or deactivate a user (§1.5, Jira 8.3+)."""
        self._write_user("PUT", account, {"active": active})

    def delete_user(self, account: Account) -> None:
        """Delete a user (§1.6)."""
        self._write_user("DELETE", account, None)

    def _write_user(self, method: str, account: Account, body: dict[str, Any] | None) -> None:
        # Address the user by the stable key, never the mutable username (§1.2, §1.5).
        self._write(method, "/user", f"user {account.username}", params={"key": account.id}, body=body)

    def create_group(self, name: str) -> None:
        """Create a group; one that already exists is success."""
        # §1.8, §8.1: creating an existing group answers 400 "... already exists".
        self._write("POST", "/group", f"group {name}", body={"name": name}, done_if="already exists")

    def add_member(self, account: Account, group: str) -> None:
        """Add a user to a group; already a member is success."""
        # §1.8: Jira answers 400 "Cannot add user '<u>', user is already a member of '<g>'".
        obj, body = f"membership {account.username} in {group}", {"name": account.username}
        self._write(
            "POST", "/group/user", obj, params={"groupname": group}, body=body, done_if="already a member"
        )

    def remove_member(self, account: Account, group: str) -> None:
        """Remove a user from a group; "not a member" is reported as not manageable, never as done."""
        # §6 matrix, §8.1: removing a non-member is an error ("... since user is not a member of '<g>'").
        # §1.8: group/member lists nested members too, and REST cannot tell them apart: a
        # membership that comes through a nested group cannot be removed here. Calling that
        # "done" would hide access that stays; it is skipped with the reason instead.
        obj = f"membership {account.username} in {group}"
        params = {"groupname": group, "username": account.username}
        try:
            self._write("DELETE", "/group/user", obj, params=params, refusals=(400, 404))
        except ConnectorError as exc:
            if "not a member" not in exc.cause.lower():
                raise
            cause = (
                f"Jira says {account.username} is not a direct member of {group} "
                "(removed meanwhile, or a member through a nested group: remove it there)"
            )
            raise NotManageableError(self.name, obj, cause, status=exc.status) from None

    def close(self) -> None:
        """Release connections."""
        self._client.close()
