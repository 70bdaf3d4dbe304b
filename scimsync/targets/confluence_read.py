"""Reads of a Confluence Server / Data Center directory: version, users, group members (§2, §7).

Also who a username names just before a write (``Identities``, §2.5).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import requests

from scimsync.errors import ConnectorError, NotFoundError, ResponseError
from scimsync.http import HttpClient
from scimsync.http.pagination import Crawl
from scimsync.models import Account, TargetDirectory, key
from scimsync.secrets import redact
from scimsync.targets.base import Progress
from scimsync.targets.jira_read import Fields, account_fields, fields_account, fold_members, server_version
from scimsync.targets.refusals import garbage

API = "/rest/api"
MANIFEST = "/rest/applinks/1.0/manifest"
USER_LIST_SINCE = (8, 4)  # §2.2: GET /user/list (every user, inactive ones included) from 8.4
EMAILS_SINCE = (10, 0)  # §2.2: emails are shown to REST callers from 10.0
# §2.3, §2.6: 200 is the documented default and the commonly quoted maximum; the server
# may answer with a smaller limit, which the walk then follows.
PAGE = 200
# §2.6, §7 below 8.4: the groups that grant "can use" on a default install.
ACCESS_GROUPS = ("confluence-users", "confluence-administrators")
# §2.3: expand=status gives "Active" or "Deactivated" [U exact shape]. Any other value is
# refused rather than guessed: a wrong guess deactivates or reactivates someone.
STATUSES = {"Active": True, "Deactivated": False}
_HTML = re.compile(r"^\s*(<!doctype\s+html|<html)", re.IGNORECASE)


def segment(system: str, obj: str, value: str, what: str = "username") -> str:
    """Quote one path segment: usernames and group names hold spaces, '@' or '+' (§2.4).

    '.' and '..' are refused: quote() leaves them as they are and requests removes dot
    segments (RFC 3986 §5.2.4), so /user/../group/g would reach /group/g, another resource.
    """
    if value in (".", ".."):
        raise ConnectorError(system, obj, f"a {what} of '.' or '..' cannot be addressed in a REST path")
    return quote(value, safe="")


def manifest_version(system: str, response: requests.Response) -> tuple[str, tuple[int, ...]]:
    """Return the version label and numbers of Confluence's application-links manifest (§2.1a)."""
    endpoint = f"GET {MANIFEST}"
    fields = _manifest_fields(system, response)
    type_id = fields.get("typeId")
    if type_id != "confluence":
        cause = f"the application-links manifest is not Confluence's (typeId {type_id!r}): check the url"
        raise ResponseError(system, endpoint, redact(cause))
    label = fields.get("version")
    numbers = server_version({"version": label}) if isinstance(label, str) else None
    if not isinstance(label, str) or numbers is None:
        raise garbage(system, endpoint, "the manifest has no version")
    return label, numbers


def _manifest_fields(system: str, response: requests.Response) -> Mapping[str, Any]:
    """Read the manifest as JSON (asked for), or as XML, the default of older servers (§2.1a)."""
    endpoint = f"GET {MANIFEST}"
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    text = response.text
    if "html" in kind or _HTML.match(text):
        cause = f"got an HTML page ({kind or 'no content type'}), not the manifest: a proxy or login page?"
        raise ResponseError(system, endpoint, cause)
    try:
        body = json.loads(text)
    except ValueError:
        return _xml_fields(system, text)
    if not isinstance(body, dict):
        raise garbage(system, endpoint, "the manifest is not a JSON object")
    return body


def _xml_fields(system: str, text: str) -> dict[str, str]:
    """Return the children of the XML ``<manifest>`` element, by tag name."""
    endpoint = f"GET {MANIFEST}"
    # A manifest has no DTD; refusing one keeps entity expansion (billion laughs) out of the parser.
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise garbage(system, endpoint, "an XML manifest with a DTD")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        raise garbage(system, endpoint, "the manifest is neither JSON nor XML") from None
    if root.tag.rpartition("}")[2] != "manifest":
        raise garbage(system, endpoint, f"an XML document <{root.tag}>, not <manifest>")
    return {child.tag.rpartition("}")[2]: (child.text or "").strip() for child in root}


def bean_fields(system: str, bean: Any, endpoint: str, *, emails: bool) -> Fields:
    """Check a Confluence user (§2.3, read with expand=status); return its ``Fields``.

    ``emails``: keep its email.
    """
    user_key = bean.get("userKey") if isinstance(bean, dict) else None
    name = bean.get("username") if isinstance(bean, dict) else None
    if not (isinstance(user_key, str) and user_key and isinstance(name, str) and name):
        raise garbage(system, endpoint, "a user without 'userKey' and 'username'")
    status = bean.get("status")
    if not isinstance(status, str) or status not in STATUSES:  # a list or object is unhashable
        raise garbage(system, endpoint, f"user {name} has status {status!r}")
    email, display = bean.get("email"), bean.get("displayName")
    return (
        user_key,
        name,
        # §2.2: emails are shown to REST callers from 10.0 only [U field name "email"]. One an
        # older server sends anyway is dropped: the plan says matching by email is unavailable
        # there, and an email the capability denies must never adopt an account.
        email if emails and isinstance(email, str) and email else None,
        display if isinstance(display, str) else "",
        STATUSES[status],
    )


def to_account(
    system: str, bean: Any, endpoint: str, groups: frozenset[str] = frozenset(), *, emails: bool
) -> Account:
    """Map a Confluence user (§2.3, read with expand=status) to an Account; ``emails``: keep its email."""
    return fields_account(bean_fields(system, bean, endpoint, emails=emails), groups)


def pages(
    client: HttpClient, path: str, *, params: Mapping[str, Any] | None = None, obj: str | None = None
) -> Iterator[list[Any]]:
    """Yield the pages of a Confluence ``start``/``limit`` list (envelope of §2.6).

    With ``_links``, only a missing ``next`` ends the walk, whatever the page's size (a
    filtered page may be short); without ``_links`` [U], a page shorter than the limit the
    server sent back does. A page that repeats, or a next link that goes back or skips
    past the page, is a ResponseError: the walk would never end, or miss users.
    """
    label = obj or f"GET {path}"
    query: dict[str, Any] = {**(params or {}), "start": 0, "limit": PAGE}
    previous: list[Any] | None = None
    while True:
        body = client.get_json(path, params=query, obj=obj)
        items = body.get("results") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise garbage(client.system, label, "expected an object with a 'results' list")
        if items and items == previous:
            raise garbage(client.system, label, f"the same page again at start={query['start']}")
        yield items
        step = _next(client.system, label, body, query["start"], len(items))
        if step is None:
            return
        previous = items
        query = {**query, "start": step[0], "limit": step[1]}


def _next(system: str, label: str, body: dict[str, Any], start: int, size: int) -> tuple[int, int] | None:
    """Return the (start, limit) of the next page, or None after the last one."""
    limit = body.get("limit")
    # §2.6: the server may cap the limit below what was asked: follow what it sent back.
    limit = limit if type(limit) is int and 0 < limit <= PAGE else PAGE
    links = body.get("_links")
    if not isinstance(links, dict):
        return None if size < limit else (start + size, limit)
    link = links.get("next")
    if not link:
        return None
    given = parse_qs(urlsplit(str(link)).query).get("start", [""])[0]
    if not given.isdigit():
        raise garbage(system, label, "a next link without a start")
    if int(given) <= start:
        raise garbage(system, label, f"a next link back to start={given}")
    if int(given) > start + max(size, limit):
        # The users between the end of this page and the link's start would go unread.
        cause = f"a next link to start={given} skips past the page at start={start} ({size} users)"
        raise garbage(system, label, cause)
    return int(given), limit


def unseen_usernames(seen: Iterable[str], wanted: Iterable[tuple[str, str]]) -> list[str]:
    """Return the wanted usernames no seen username is (one per comparison key)."""
    names = {key(name) for name in seen}
    missing: dict[str, str] = {}
    for username, _ in wanted:
        if username and key(username) not in names:
            missing.setdefault(key(username), username)
    return list(missing.values())


class ConfluenceReader:
    """The read side of ``ConfluenceTarget``: enumerates users and reads group members."""

    def __init__(self, system: str, client: HttpClient, version: Callable[[], tuple[int, ...]]) -> None:
        self.system = system
        self._client = client
        self._version = version  # the server's version, read once by the target

    def _account(self, bean: Any, endpoint: str) -> Account:
        return to_account(self.system, bean, endpoint, emails=self._version() >= EMAILS_SINCE)

    def directory(
        self,
        managed_groups: Iterable[str],
        progress: Progress,
        wanted: Iterable[tuple[str, str]] | None = None,
    ) -> TargetDirectory:
        """Read the users, and the members of each managed group (§7).

        No list here has a total (§2.6): each is a chain of next links. The user-list chain
        and every group's member chain run at once in one bounded pool (``Crawl``), the
        chains already started going first. ``wanted`` is only iterated below 8.4.
        """
        version = self._version()
        emails = version >= EMAILS_SINCE
        managed: dict[str, str] = {}
        for group in managed_groups:
            managed.setdefault(key(group), group)  # keep the configured spelling
        users: dict[str, Fields] = {}
        listed = version >= USER_LIST_SINCE
        walked = dict(managed)
        if not listed:
            # §7 below 8.4: no listing of every user; walk the groups that grant access.
            for group in ACCESS_GROUPS:
                walked.setdefault(key(group), group)
        found: dict[str, list[Fields] | None] = {}  # None: the group does not exist
        crawl = Crawl(self._client)
        if listed:
            self._list_users(crawl, users, progress, emails)
        for group_key, group in walked.items():
            self._members(crawl, group, emails, functools.partial(found.__setitem__, group_key))
        crawl.run()
        memberships, existing = fold_members(walked, managed, found, users)
        progress(f"{self.system}: groups", len(walked), len(walked))
        if not listed and wanted is not None:
            # Every owned account is in the owner group (managed, walked); the others the plan
            # can touch match a wanted username. Emails cannot be looked up (nor are they
            # shown before 10.0, §2.2), so the exact usernames are all there is to ask.
            self._look_up(users, unseen_usernames((f[1] for f in users.values()), wanted))
        none: frozenset[str] = frozenset()
        accounts = tuple(
            fields_account(f, frozenset(memberships[f[0]]) if f[0] in memberships else none)
            for f in users.values()
        )
        return TargetDirectory(accounts=accounts, groups=frozenset(existing))

    def _list_users(self, crawl: Crawl, users: dict[str, Fields], progress: Progress, emails: bool) -> None:
        """Queue the walk of GET /user/list (§2.6, 8.4+): every registered user, disabled ones too."""
        path = f"{API}/user/list"
        endpoint = f"GET {path}"

        def consume(page: list[Any]) -> None:
            for bean in page:
                fields = bean_fields(self.system, bean, endpoint, emails=emails)
                users.setdefault(fields[0], fields)  # offsets shift while users come and go
            progress(f"{self.system}: users", len(users), None)

        crawl.chain(pages(self._client, path, params={"expand": "status"}), consume)

    def _look_up(self, users: dict[str, Fields], usernames: list[str]) -> None:
        """Add the users named exactly ``usernames`` that exist (§2.3)."""
        for account in self._client.map_parallel(self._exact, usernames):
            if account is not None:
                users.setdefault(account.id, account_fields(account))

    def _exact(self, username: str) -> Account | None:
        """Return the user named ``username``, or None when there is none (§2.3: 404)."""
        return self.find(username, None)

    def find(self, username: str, account_id: str | None) -> Account | None:
        """Read one user without its groups, by userKey when given (§2.3: one GET); None when missing."""
        path = f"{API}/user"
        who = {"key": account_id} if account_id else {"username": username}
        try:
            bean = self._client.get_json(path, params={**who, "expand": "status"}, obj=f"user {username}")
        except NotFoundError:
            return None
        return self._account(bean, f"GET {path}")

    def members(self, group: str) -> list[Account] | None:
        """Return the members of ``group``; None when the group does not exist."""
        crawl = Crawl(self._client)
        found: list[list[Fields] | None] = []
        self._members(crawl, group, self._version() >= EMAILS_SINCE, found.append)
        crawl.run()
        return None if found[0] is None else [fields_account(f) for f in found[0]]

    def _members(
        self, crawl: Crawl, group: str, emails: bool, done: Callable[[list[Fields] | None], None]
    ) -> None:
        """Queue the walk of ``group``'s members; ``done`` gets them, None if the group does not exist."""
        path = f"{API}/group/{segment(self.system, f'group {group}', group, 'group name')}/member"
        endpoint = f"GET {path}"
        walk = pages(self._client, path, params={"expand": "status"}, obj=f"group {group}")
        members: list[Fields] = []

        def step() -> None:
            try:
                page = next(walk, None)
            except NotFoundError:
                if members:  # the group went away mid-walk: its members are unknown, not none
                    raise
                if not self.group_exists(group):
                    done(None)
                    return
                cause = f"no member list for existing group {group}"
                raise garbage(self.system, endpoint, cause) from None
            if page is None:
                # §2.7: an empty list may also be how a missing group answers [U]; the group decides.
                done(None if not members and not self.group_exists(group) else members)
                return
            members.extend(bean_fields(self.system, bean, endpoint, emails=emails) for bean in page)
            crawl.add(step, urgent=True)

        crawl.add(step)

    def account(self, username: str, account_id: str | None) -> Account | None:
        """Read one user with all its groups, by userKey when given (§2.3); None when missing."""
        found = self.find(username, account_id)
        if found is None:
            return None
        groups = self.groups(found.id, found.username)
        if groups is None:
            return None  # deleted between the two reads
        return dataclasses.replace(found, groups=groups)

    def groups(self, user_key: str, username: str) -> frozenset[str] | None:
        """Return the names of the groups of user ``user_key`` (§2.3 memberof); None when it is missing."""
        path, names = f"{API}/user/memberof", []
        try:
            for page in pages(self._client, path, params={"key": user_key}, obj=f"user {username}"):
                if not all(isinstance(g, dict) and isinstance(g.get("name"), str) for g in page):
                    raise garbage(self.system, f"GET {path}", "a group without 'name'")
                names += [g["name"] for g in page]
        except NotFoundError:
            return None
        return frozenset(names)

    def group_exists(self, name: str) -> bool:
        """Tell whether group ``name`` exists (§2.7: GET /group/{groupName}, 404 when missing)."""
        try:
            path = f"{API}/group/{segment(self.system, f'group {name}', name, 'group name')}"
            self._client.get_json(path, obj=f"group {name}")
        except NotFoundError:
            return False
        return True


class Identities:
    """The userKey each username names, as confirmed in this run just before writing (thread-safe).

    §2.5 addresses users by username only, and a name freed while a plan waits may be given to
    someone else: before the first write on an account in this run, one GET (§2.3) checks that
    its name still names the planned userKey. Planning reads never fill this: they may be old.
    """

    def __init__(self, reader: ConfluenceReader) -> None:
        self._reader = reader
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def confirm(self, account: Account, obj: str) -> str:
        """Return the userKey ``account.username`` names now; refuse one that is not ``account.id``.

        Without a planned userKey (a plan that never knew it: the engine plans every write on
        an existing account with one), the user must exist and is taken as it is.
        """
        with self._lock:
            known = self._keys.get(key(account.username))
        if known is not None and (known == account.id or not account.id):
            return known
        found = self._reader.find(account.username, None)
        system = self._reader.system
        if found is None:
            cause = f"no user is named {account.username} any more; nothing was written: plan again"
            raise NotFoundError(system, obj, cause)
        if account.id and found.id != account.id:
            cause = (
                f"the username now belongs to another account (userKey {found.id}, planned "
                f"{account.id}); nothing was written: plan again"
            )
            raise ConnectorError(system, obj, cause)
        self.note(account.username, found.id)
        return found.id

    def note(self, username: str, user_key: str | None) -> None:
        """Note that ``username`` names ``user_key`` (made or confirmed now); None forgets it."""
        with self._lock:
            if user_key is None:
                self._keys.pop(key(username), None)
            else:
                self._keys[key(username)] = user_key
