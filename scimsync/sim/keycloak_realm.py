"""The in-memory realm of the Keycloak simulator: users, the group tree, clients and tokens.

No HTTP here: ``KeycloakSim`` seeds it and ``keycloak_routes`` renders it. Shapes follow
idp-apis §5.2 (UserRepresentation, brief and full) and §5.3 (GroupRepresentation).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# What the realm-management role view-users lets a service account do (idp §5.1 ⚠):
# it holds query-users and query-groups as composites in Keycloak.
VIEW_USERS = "view-users"
QUERY_USERS = "query-users"
QUERY_GROUPS = "query-groups"
ROLES = frozenset({VIEW_USERS, QUERY_USERS, QUERY_GROUPS})


@dataclass
class KcUser:
    """A realm user; ``username`` and ``email`` lower-cased, as Keycloak stores them."""

    id: str
    username: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    enabled: bool = True
    email_verified: bool = False
    created: int = 1_738_576_800_000  # createdTimestamp, epoch ms (idp §5.2)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    required_actions: list[str] = field(default_factory=list)
    federation_link: str | None = None
    service_client: str | None = None  # the client id of a service-account user


@dataclass
class KcGroup:
    """A group of the tree: one parent at most (``None``: a top-level group)."""

    id: str
    name: str
    parent: str | None = None
    attributes: dict[str, list[str]] = field(default_factory=dict)
    members: set[str] = field(default_factory=set)  # user ids, direct members only (idp §5.3)


@dataclass
class KcClient:
    """A confidential client; ``roles`` are its service account's realm-management roles."""

    client_id: str
    secret: str
    service_accounts: bool
    roles: set[str]
    service_user: str


@dataclass
class KcToken:
    """An access token issued by the token endpoint."""

    client_id: str
    expires_at: float


class Realm:
    """One realm's users, groups, clients and issued tokens."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.users: dict[str, KcUser] = {}
        self.groups: dict[str, KcGroup] = {}
        self.clients: dict[str, KcClient] = {}
        self.tokens: dict[str, KcToken] = {}
        self._by_name: dict[str, KcUser] = {}
        self._by_email: dict[str, KcUser] = {}

    # -- users ----------------------------------------------------------------------

    def add_user(self, user: KcUser) -> KcUser:
        """Store a user; a username or email taken (case-insensitively) is a ValueError."""
        user.username = user.username.lower()
        user.email = user.email.lower() if user.email else None
        if user.username in self._by_name:
            raise ValueError(f"user {user.username!r} exists")
        if user.email and user.email in self._by_email:
            raise ValueError(f"email {user.email!r} is taken")  # duplicateEmailsAllowed: false
        self.users[user.id] = user
        self._by_name[user.username] = user
        if user.email:
            self._by_email[user.email] = user
        return user

    def find_user(self, username: str) -> KcUser:
        """Return the user with this username (any case); KeyError if none."""
        user = self._by_name.get(username.lower())
        if user is None:
            raise KeyError(f"no user {username!r}")
        return user

    def rename_user(self, user: KcUser, new: str) -> None:
        """Change a username; it moves in the list, which is ordered by username."""
        if new.lower() in self._by_name:
            raise ValueError(f"user {new!r} exists")
        del self._by_name[user.username]
        user.username = new.lower()
        self._by_name[user.username] = user

    def remove_user(self, user: KcUser) -> None:
        """Delete a user and its memberships: no tombstone (idp §5.2)."""
        del self.users[user.id]
        del self._by_name[user.username]
        if user.email:
            del self._by_email[user.email]
        for group in self.groups.values():
            group.members.discard(user.id)

    def listed_users(self) -> list[KcUser]:
        """Return the users an unfiltered ``GET /users`` lists: by username, no service accounts.

        Keycloak leaves service-account users out of the unfiltered list and the
        unfiltered count alike (UsersResource, [S-KC4] in its newer revisions).
        """
        return sorted((u for u in self.users.values() if u.service_client is None), key=lambda u: u.username)

    # -- groups ---------------------------------------------------------------------

    def add_group(self, name: str, parent: KcGroup | None) -> KcGroup:
        """Create a group; a sibling of the same name is a ValueError (Keycloak answers 409)."""
        if not name.strip():
            raise ValueError("a group needs a name")
        parent_id = parent.id if parent else None
        if any(g.name == name for g in self.siblings(parent_id)):
            raise ValueError(f"sibling group named {name!r} already exists")
        group = KcGroup(str(uuid.uuid4()), name, parent_id)
        self.groups[group.id] = group
        return group

    def siblings(self, parent: str | None) -> list[KcGroup]:
        """Return the groups under ``parent`` (None: the top level), ordered by name."""
        return sorted((g for g in self.groups.values() if g.parent == parent), key=lambda g: g.name)

    def path(self, group: KcGroup) -> str:
        """Return the group's path, ``/Finance/EMEA`` (idp §5.3)."""
        names = [group.name]
        current = group
        while current.parent is not None:
            current = self.groups[current.parent]
            names.append(current.name)
        return "/" + "/".join(reversed(names))

    def find_group(self, path: str) -> KcGroup:
        """Return the group at ``path`` ("/engineering/platform"); KeyError if none."""
        for group in self.groups.values():
            if self.path(group) == path:
                return group
        raise KeyError(f"no group {path!r}")

    def members(self, group: KcGroup) -> list[KcUser]:
        """Return the direct members ordered by username (service accounts included)."""
        return sorted((self.users[i] for i in group.members), key=lambda u: u.username)

    # -- clients and tokens ---------------------------------------------------------------

    def add_client(
        self, client_id: str, secret: str, *, service_accounts: bool, roles: Iterable[str]
    ) -> None:
        """Create a confidential client and its service-account user."""
        unknown = set(roles) - ROLES
        if unknown:
            raise ValueError(f"unknown realm-management roles: {sorted(unknown)}")
        user = KcUser(str(uuid.uuid4()), f"service-account-{client_id}", service_client=client_id)
        self.add_user(user)
        self.clients[client_id] = KcClient(client_id, secret, service_accounts, set(roles), user.id)

    def issue(self, client_id: str, now: float, lifetime: int) -> str:
        """Issue an access token for ``client_id`` valid ``lifetime`` seconds."""
        token = "eyJ" + secrets.token_urlsafe(24)
        self.tokens[token] = KcToken(client_id, now + lifetime)
        return token

    def expire_tokens(self, now: float) -> None:
        """Make every token issued so far expired (a fresh one still works)."""
        for token in self.tokens.values():
            token.expires_at = min(token.expires_at, now)


def user_rep(user: KcUser, *, brief: bool) -> dict[str, Any]:
    """Return a UserRepresentation (idp §5.2); absent values are left out, as Keycloak does."""
    rep: dict[str, Any] = {"id": user.id, "username": user.username}
    optional = {"firstName": user.first_name, "lastName": user.last_name, "email": user.email}
    rep.update({k: v for k, v in optional.items() if v is not None})
    rep.update(
        {"emailVerified": user.email_verified, "createdTimestamp": user.created, "enabled": user.enabled}
    )
    if user.federation_link:
        rep["federationLink"] = user.federation_link
    if user.service_client:
        rep["serviceAccountClientId"] = user.service_client
    if not brief:
        if user.attributes:
            rep["attributes"] = {k: list(v) for k, v in user.attributes.items()}
        rep.update(
            {
                "totp": False,
                "disableableCredentialTypes": [],
                "requiredActions": list(user.required_actions),
                "notBefore": 0,
            }
        )
    # What a view-users service account may do with the user.
    rep["access"] = {"manageGroupMembership": False, "view": True, "mapRoles": False, "manage": False}
    return rep


def group_rep(realm: Realm, group: KcGroup, *, brief: bool, tree: bool) -> dict[str, Any]:
    """Return a GroupRepresentation (idp §5.3).

    ``tree``: Keycloak before 23 nests the whole subtree in ``subGroups`` and sends no
    ``subGroupCount``; from 23 on ``subGroups`` stays empty and ``subGroupCount`` says
    how many ``/children`` lists.
    """
    rep: dict[str, Any] = {"id": group.id, "name": group.name, "path": realm.path(group)}
    children = realm.siblings(group.id)
    if tree:
        rep["subGroups"] = [group_rep(realm, c, brief=brief, tree=True) for c in children]
    else:
        if group.parent is not None:
            rep["parentId"] = group.parent  # ⚠ idp §5.3: newer versions
        rep["subGroupCount"] = len(children)
        rep["subGroups"] = []
    if not brief:
        rep.update(
            {
                "attributes": {k: list(v) for k, v in group.attributes.items()},
                "realmRoles": [],
                "clientRoles": {},
            }
        )
    return rep
