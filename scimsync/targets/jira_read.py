"""Reads of a Jira Server / Data Center directory: users, group members, one account (reference §1, §7)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from scimsync.errors import NotFoundError
from scimsync.http import HttpClient
from scimsync.http.pagination import Crawl, OffsetList, crawl_offset_lists, cursor_pages
from scimsync.models import Account, TargetDirectory, key
from scimsync.targets.base import Progress
from scimsync.targets.refusals import garbage

API = "/rest/api/2"
USER_LIST_SINCE = (10, 3)  # §1.7: /user/list exists in 10.3 LTS and 11.0
# §1.7, §8.3: /user/search cuts results at a window of 1000 (<= 9.x) or 100 (10.x); the
# version where the window shrank is not pinned down, so a result of exactly either size
# counts as cut.
SEARCH_WINDOWS = (100, 1000)
# The default narrowing alphabet of a cut search; characters seen in the cut window are
# added to it (a '+' in an email, an 'é' or an apostrophe in a name).
SHARD_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-@"
MEMBER_PAGE = 50  # §1.8: group/member answers at most 50 per page
# Past this many accounts to look up (a first provisioning), one sharded search of the
# whole directory is cheaper than two lookups per account.
MAX_LOOKUPS = 1000


def server_version(body: dict[str, Any]) -> tuple[int, ...] | None:
    """Parse serverInfo's ``versionNumbers``, falling back to the ``version`` string."""
    numbers = body.get("versionNumbers")
    if isinstance(numbers, list) and numbers and all(type(n) is int for n in numbers):
        return tuple(numbers)
    match = re.match(r"\d+(?:\.\d+)*", str(body.get("version") or ""), re.ASCII)
    parts = match.group().split(".") if match else []
    # A part past 9 digits is no version, and int() refuses one past 4300 (a garbage answer).
    return tuple(int(p) for p in parts) if parts and all(len(p) <= 9 for p in parts) else None


# What an Account needs from a user bean: key, name, email, display name, active.
Fields = tuple[str, str, str | None, str, bool]


def bean_fields(system: str, bean: Any, endpoint: str) -> Fields:
    """Check a user bean (§1.2) and return its ``Fields``, without building an Account."""
    user_key = bean.get("key") if isinstance(bean, dict) else None
    name = bean.get("name") if isinstance(bean, dict) else None
    if not (isinstance(user_key, str) and user_key and isinstance(name, str) and name):
        raise garbage(system, endpoint, "a user without 'key' and 'name'")
    active = bean.get("active", True)
    if active is not True and active is not False:
        raise garbage(system, endpoint, f"user {name} has a non-boolean 'active'")
    email, display = bean.get("emailAddress"), bean.get("displayName")
    return (
        user_key,
        name,
        email if isinstance(email, str) else None,
        display if isinstance(display, str) else "",
        active,
    )


def fields_account(fields: Fields, groups: frozenset[str] = frozenset()) -> Account:
    """Return the Account of ``fields``."""
    user_key, name, email, display, active = fields
    return Account(
        id=user_key, username=name, email=email, display_name=display, active=active, groups=groups
    )


def account_fields(account: Account) -> Fields:
    """Return the ``Fields`` of an Account read without its groups."""
    return (account.id, account.username, account.email, account.display_name, account.active)


def fold_members(
    walked: Iterable[str],
    managed: Mapping[str, str],
    found: Mapping[str, Sequence[Fields] | None],
    users: dict[str, Fields],
) -> tuple[dict[str, set[str]], set[str]]:
    """Fold the member lists into ``users``; return each user's managed groups, and the groups that exist.

    ``walked`` and ``found`` are keyed by group key (None: the group does not exist);
    ``managed`` maps a managed group's key to its configured spelling. Members the user
    listing missed are added to ``users`` (§1.7 item 3).
    """
    memberships: dict[str, set[str]] = {}
    existing: set[str] = set()
    for group_key in walked:
        members = found[group_key]
        if members is None:
            continue
        for fields in members:
            users.setdefault(fields[0], fields)
        if group_key in managed:
            name = managed[group_key]
            existing.add(name)
            for fields in members:
                memberships.setdefault(fields[0], set()).add(name)
    return memberships, existing


def to_account(system: str, bean: Any, endpoint: str, groups: frozenset[str] = frozenset()) -> Account:
    """Map a user bean (§1.2) to an Account."""
    return fields_account(bean_fields(system, bean, endpoint), groups)


def narrower(query: str, found: Iterable[Account], extra: Iterable[str] = ()) -> list[str]:
    """Return the queries that split a cut /user/search result for ``query`` (§1.7 item 2).

    The default alphabet, plus every character that follows the query in a username,
    an email or a display-name word of the cut window: real ordering is unspecified, so
    the alphabet alone cannot promise to reach a '+' or an 'é' right after the prefix.
    """
    prefix = "" if query == "." else query  # "." matches everyone (§1.7)
    chars = set(SHARD_CHARS) | set(extra)  # extra: the characters of the wanted users
    for account in found:
        for text in (account.username, account.email or "", *account.display_name.split()):
            text = text.lower()
            if len(text) > len(prefix) and text.startswith(prefix):
                chars.add(text[len(prefix)])
    # "." alone is the match-everyone query, not a narrower one. Whitespace stays out: a
    # trimmed query [U] would only repeat its parent (display-name words hold none anyway).
    chars = {c for c in chars if not c.isspace() and (prefix or c != ".")}
    return [prefix + c for c in sorted(chars)]


def _unseen(seen: Iterable[Fields], wanted: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return the (what, value) lookups for wanted usernames and emails no seen account has."""
    accounts = list(seen)
    names = {key(a[1]) for a in accounts}
    emails = {key(a[2]) for a in accounts if a[2]}
    missing: dict[tuple[str, str], None] = {}
    for username, email in wanted:
        unseen = bool(username) and key(username) not in names
        if unseen:
            missing[("username", username)] = None
        # When the username is unseen the plan may match by email: then every holder of the
        # email counts (two make it ambiguous, SPEC §3 match), including ones in no group.
        if email and (unseen or key(email) not in emails):
            missing[("email", email)] = None
    return list(missing)


def is_cut(found: list[Account], window: int) -> bool:
    """Tell whether a /user/search result may have been cut at the window (§1.7)."""
    return len(found) >= window or len(found) in SEARCH_WINDOWS


class JiraReader:
    """The read side of ``JiraTarget``: enumerates users and reads group members."""

    def __init__(self, system: str, client: HttpClient) -> None:
        self.system = system
        self._client = client

    def directory(
        self,
        managed_groups: Iterable[str],
        version: tuple[int, ...],
        progress: Progress,
        wanted: Iterable[tuple[str, str]] | None = None,
    ) -> TargetDirectory:
        """Read the users, and the members of each managed group (§7).

        On 10.3+ the /user/list cursor chain and every group's member pages run in one
        bounded pool (``Crawl``): the chain is read page after page while the member pages
        fill the other slots. ``wanted`` is only iterated when needed (below 10.3, or to
        know whether anyone may be created), so that it may be handed over before the
        mapping that makes it has ended.
        """
        managed: dict[str, str] = {}
        for group in managed_groups:
            managed.setdefault(key(group), group)  # keep the configured spelling
        listed: dict[str, Fields] = {}  # /user/list: user key -> fields
        route: list[bool] = []  # [True] once /user/list answered, [False] when it has no route
        # §7, Jira <= 10.2: walk every product-access group, then supplement with a sharded
        # search (or look-ups) for the users in no group at all.
        roles = None if version >= USER_LIST_SINCE else self._roles()
        walked = {key(g): g for role in roles or () for g in role["groups"]}
        walked.update(managed)
        members: dict[str, list[Fields] | None] = {}  # None: the group does not exist
        crawl = Crawl(self._client)
        if version >= USER_LIST_SINCE:
            self._list_users(crawl, listed, route, progress)
        self._members(crawl, walked, members)
        crawl.run()
        listed_all = route == [True]
        if version >= USER_LIST_SINCE and not listed_all:
            # An early 10.3.x without /user/list (§1.7): walk the access groups too, as below.
            roles = self._roles()
            more = {key(g): g for role in roles for g in role["groups"] if key(g) not in walked}
            crawl = Crawl(self._client)
            self._members(crawl, more, members)
            crawl.run()
            walked.update(more)
        users = listed  # listed beans first; members the listing missed are added (§1.7 item 3)
        memberships, existing = fold_members(walked, managed, members, users)
        progress(f"{self.system}: groups", len(walked), len(walked))
        if not listed_all:
            window = 1000 if version < (10,) else 100
            wanted = None if wanted is None else list(wanted)
            missing = None if wanted is None else _unseen(users.values(), wanted)
            if missing is None or len(missing) > MAX_LOOKUPS:
                extra = frozenset("".join(f"{u}{e}".lower() for u, e in wanted or ()))
                self._search_users(users, progress, window=window, extra=extra)
            else:
                self._look_up(users, missing, window)
        none: frozenset[str] = frozenset()
        accounts = tuple(
            fields_account(f, frozenset(memberships[f[0]]) if f[0] in memberships else none)
            for f in users.values()
        )
        if roles is None:
            names = {key(f[1]) for f in users.values()}
            if wanted is None or any(key(u) not in names for u, _ in wanted):
                roles = self._roles()  # someone may be created: read what Jira gives new users
        # §1.3, §1.9: the groups Jira itself may put a new user in (default roles' default groups).
        creation = frozenset(
            g
            for role in roles or ()
            if role.get("selectedByDefault") is True
            for g in role.get("defaultGroups", [])
        )
        return TargetDirectory(accounts=accounts, groups=frozenset(existing), creation_groups=creation)

    def _list_users(
        self, crawl: Crawl, users: dict[str, Fields], route: list[bool], progress: Progress
    ) -> None:
        """Queue the /user/list cursor chain (§1.7 item 1); ``route`` says whether it exists."""
        path = f"{API}/user/list"
        endpoint = f"GET {path}"
        pages = cursor_pages(self._client, path, params={"maxResults": 2000})

        def step() -> None:
            try:
                page = next(pages, None)
            except NotFoundError:
                # §1.7: /user/list never 404s on a bad cursor, so only a first-page 404 means
                # an early 10.3.x without the route.
                if route:
                    raise
                route.append(False)
                return
            if not route:
                route.append(True)
            if page is None:
                return
            for bean in page:
                fields = bean_fields(self.system, bean, endpoint)
                users.setdefault(fields[0], fields)
            progress(f"{self.system}: users", len(users), None)
            crawl.add(step, urgent=True)

        crawl.add(step, urgent=True)

    def _look_up(self, users: dict[str, Fields], missing: list[tuple[str, str]], window: int) -> None:
        """Find the wanted users the group walk did not see, by exact username and by email.

        Below 10.3 there is no complete listing (§1.7). Every account the plan can act on
        is owned (a member of the owner group, walked), or matches a wanted user: so asking
        for those is complete for the plan, and costs nothing in a steady state, where the
        sharded search costs ~10,000 requests on 10.0-10.2 (window 100).
        """
        found = self._client.map_parallel(lambda m: self._find(m, window), missing)
        for accounts in found:
            for account in accounts:
                users.setdefault(account.id, account_fields(account))

    def _find(self, query: tuple[str, str], window: int) -> list[Account]:
        """Return the accounts named ``query[0]`` (``what`` is username or email)."""
        what, value = query
        if what == "username":
            return self._exact(value)
        found = self._search(value, window)  # §1.7: the query matches emails by prefix
        if is_cut(found, window):
            # A cut window may hide another holder of this email: never guess.
            raise garbage(self.system, f"GET {API}/user/search", f"the search for {value} was cut")
        return [a for a in found if key(a.email) == key(value)]

    def _roles(self) -> list[dict[str, Any]]:
        """Return the application roles: the groups that grant access, and new users' groups (§1.9)."""
        path = f"{API}/applicationrole"
        roles = self._client.get_json(path)
        if not isinstance(roles, list) or not all(
            isinstance(r, dict)
            and all(
                isinstance(r.get(f, []), list) and all(isinstance(g, str) for g in r.get(f, []))
                for f in ("groups", "defaultGroups")
            )
            and "groups" in r
            for r in roles
        ):
            raise garbage(self.system, f"GET {path}", "expected a list of roles with 'groups'")
        return roles

    def _search_users(
        self,
        users: dict[str, Fields],
        progress: Progress,
        *,
        window: int,
        extra: frozenset[str] = frozenset(),
    ) -> None:
        """Enumerate users with /user/search, narrowing every query whose result was cut (§1.7 item 2)."""
        level: dict[str, tuple[str, int | None]] = {".": ("", None)}  # query -> (parent, its result's hash)
        exact: list[str] = []  # cut queries, which may equal a username no narrower query reaches
        while level or exact:
            queries = list(level)
            jobs = [(q, True) for q in queries] + [(q, False) for q in exact]
            answers = self._client.map_parallel(
                lambda job: self._search(job[0], window) if job[1] else self._exact(job[0]), jobs
            )
            for found in answers:
                for account in found:
                    users.setdefault(account.id, account_fields(account))  # shards overlap: dedupe by key
            fanout = Counter(parent for parent, _ in level.values())
            echoes: Counter[str] = Counter()
            children: dict[str, tuple[str, int | None]] = {}
            cut: list[str] = []
            for query, found in zip(queries, answers[: len(queries)], strict=True):
                digest = hash(tuple(sorted(a.id for a in found)))
                parent, parent_digest = level[query]
                echoes[parent] += digest == parent_digest
                if is_cut(found, window):
                    cut.append(query)
                    shards = narrower(query, found, extra)
                    children.update((shard, (query, digest)) for shard in shards)
            if any(n == fanout[parent] for parent, n in echoes.items()):
                # Every narrower query gave the same cut window: the server ignores the
                # query, and narrowing deeper would only multiply requests.
                raise garbage(self.system, f"GET {API}/user/search", "the 'username' query is ignored")
            progress(f"{self.system}: users", len(users), None)
            exact = [q for q in cut if q != "."]
            level = children

    def _search(self, query: str, window: int) -> list[Account]:
        """Return what /user/search gives for ``query`` (a bare JSON array, §1.7), in one request.

        The window is cut before ``startAt`` applies (JRASERVER-65089, -78660), so one
        request of the window's size gets all there is: a full window is known to be
        cut, and asking past it would only return nothing.
        """
        path = f"{API}/user/search"
        params = {"username": query, "includeActive": True, "includeInactive": True}
        beans = self._client.get_json(path, params={**params, "startAt": 0, "maxResults": window})
        if not isinstance(beans, list):
            raise garbage(self.system, f"GET {path}", "expected a JSON array")
        return [to_account(self.system, bean, f"GET {path}") for bean in beans]

    def _exact(self, username: str) -> list[Account]:
        """Return the user named exactly ``username`` (§1.4), which no longer query matches by name."""
        path = f"{API}/user"
        try:
            bean = self._client.get_json(path, params={"username": username}, obj=f"user {username}")
        except NotFoundError:
            return []
        return [to_account(self.system, bean, f"GET {path}")]

    def _members(self, crawl: Crawl, groups: dict[str, str], found: dict[str, list[Fields] | None]) -> None:
        """Queue the reads of each group's members (nested ones included, §1.8) into ``found``.

        ``found[group key]`` is None for a group that does not exist.
        """
        path = f"{API}/group/member"
        endpoint = f"GET {path}"
        keys = list(groups)
        # §1.8: 50 per page with a total, so every page of every group can be asked at once.
        lists = [
            OffsetList(path, {"groupname": groups[k], "includeInactiveUsers": True}, obj=f"group {groups[k]}")
            for k in keys
        ]

        def done(i: int, beans: list[Any] | None) -> None:
            system = self.system
            found[keys[i]] = None if beans is None else [bean_fields(system, b, endpoint) for b in beans]

        crawl_offset_lists(crawl, lists, done, page_size=MEMBER_PAGE, missing_ok=True)

    def account(self, username: str, account_id: str | None) -> Account | None:
        """Read one user with all its groups, by key when given (§1.4); None when it does not exist."""
        endpoint = f"GET {API}/user"
        who = {"key": account_id} if account_id else {"username": username}
        try:
            body = self._client.get_json(
                f"{API}/user", params={**who, "expand": "groups"}, obj=f"user {username}"
            )
        except NotFoundError:
            return None
        groups = body.get("groups") if isinstance(body, dict) else None
        items = groups.get("items") if isinstance(groups, dict) else None  # §1.2: filled by expand=groups
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("name"), str) for i in items
        ):
            raise garbage(self.system, endpoint, f"user {username} has no readable 'groups.items'")
        size = groups.get("size") if isinstance(groups, dict) else None
        if type(size) is not int or size != len(items):
            # A cut expansion would make a saved plan's re-check see memberships as gone.
            raise garbage(self.system, endpoint, f"user {username} lists {len(items)} of {size} groups")
        return to_account(self.system, body, endpoint, frozenset(i["name"] for i in items))

    def group_exists(self, name: str) -> bool:
        """Tell whether group ``name`` exists."""
        try:
            self._client.get_json(
                f"{API}/group/member", params={"groupname": name, "maxResults": 1}, obj=f"group {name}"
            )
        except NotFoundError:
            return False
        return True
