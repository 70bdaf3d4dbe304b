"""The OneLogin simulator's state: users, roles, groups, access tokens and the hourly budget.

Shapes follow idp-apis §4: numeric ids, one ``group_id`` per user (§4.4), many-to-many
roles, numeric ``status`` and ``state`` codes (§4.3), 10-hour tokens that are handed out
again until they expire (§4.1), and an account-wide budget of calls per hour (§4.6).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# §4.3: the values the SDK accepts.
STATUSES = frozenset({0, 1, 2, 3, 4, 5, 7, 8})
STATES = frozenset({0, 1, 2, 3})
TOKEN_LIFETIME = 36_000  # §4.1: 10 hours
HOURLY_LIMIT = 5_000  # §4.6, §8
WINDOW = 3_600.0

# User model fields of §4.2 that the simulator stores as given (None when unset).
PROFILE_FIELDS = (
    "title",
    "department",
    "company",
    "comment",
    "phone",
    "directory_id",
    "external_id",
    "samaccountname",
    "userprincipalname",
    "manager_user_id",
    "preferred_locale_code",
)


@dataclass
class OLUser:
    """A OneLogin user (§4.2); ``profile`` holds the other §4.2 fields that were set."""

    id: int
    username: str | None
    email: str | None
    firstname: str | None
    lastname: str | None
    status: int = 1
    state: int = 1
    group_id: int | None = None
    profile: dict[str, Any] = field(default_factory=dict)
    custom_attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class OLRole:
    """A role (§4.4): many-to-many with users."""

    id: int
    name: str
    users: set[int] = field(default_factory=set)


@dataclass
class OLGroup:
    """A group (§4.4): a user belongs to at most one, through ``user.group_id``."""

    id: int
    name: str


def user_json(user: OLUser, roles: list[OLRole]) -> dict[str, Any]:
    """Return a user as ``GET /api/2/users`` shows it (the §4.2 example's fields)."""
    stamp = "2025-02-03T10:00:00.000Z"
    body: dict[str, Any] = {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "firstname": user.firstname,
        "lastname": user.lastname,
        "status": user.status,
        "state": user.state,
        "group_id": user.group_id,
        "role_ids": sorted(r.id for r in roles if user.id in r.users),
        **{name: None for name in PROFILE_FIELDS},
        "created_at": stamp,
        "updated_at": stamp,
        "activated_at": stamp if user.status != 0 else None,
        "last_login": None,
        "locked_until": None,
        "invalid_login_attempts": 0,
        "custom_attributes": dict(user.custom_attributes),
    }
    body.update(user.profile)
    return body


@dataclass
class Grant:
    """An access token handed out by the token endpoint."""

    value: str
    expires_at: float


class TokenStore:
    """Access tokens of the one API credential: the same token until it expires (§4.1)."""

    def __init__(self, lifetime: float, clock: Callable[[], float]) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self.current: Grant | None = None
        self.issued = 0

    def grant(self) -> Grant:
        """Return the current token, or a new one when it expired."""
        if self.current is None or self.clock() >= self.current.expires_at:
            self.current = Grant(secrets.token_hex(20), self.clock() + self.lifetime)
            self.issued += 1
        return self.current

    def valid(self, value: str) -> bool:
        """Tell whether ``value`` is the current token and has not expired."""
        current = self.current
        return current is not None and current.value == value and self.clock() < current.expires_at

    def expire(self) -> None:
        """Make the current token expired now (the next token request gets a new one)."""
        if self.current is not None:
            self.current.expires_at = self.clock()


class HourlyBudget:
    """The account's calls per hour (§4.6): a fixed window from the first call."""

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.clock = clock
        self.used = 0
        self.started: float | None = None

    def take(self) -> tuple[bool, list[tuple[str, str]]]:
        """Spend one call; return whether it is allowed and the X-RateLimit-* headers (§4.6)."""
        now = self.clock()
        if self.started is None or now >= self.started + WINDOW:
            self.started, self.used = now, 0
        allowed = self.used < self.limit
        if allowed:
            self.used += 1
        # X-RateLimit-Reset is seconds until the window ends, not an epoch time (§4.6).
        reset = max(1, math.ceil(self.started + WINDOW - now))
        return allowed, self.headers(reset)

    def headers(self, reset: int) -> list[tuple[str, str]]:
        """Return the three §4.6 headers for ``reset`` seconds."""
        return [
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(self.limit - self.used)),
            ("X-RateLimit-Reset", str(reset)),
        ]


@dataclass(frozen=True)
class Cursor:
    """Where a list continues: the list, the query it was made for, the last id shown, the page."""

    list_key: str
    query: tuple[tuple[str, str], ...]
    after: int
    limit: int
    page: int

    def encode(self) -> str:
        """Return the opaque token sent in ``After-Cursor``."""
        data = [self.list_key, list(self.query), self.after, self.limit, self.page]
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor | None:
    """Return the cursor a token stands for, or None for a token this simulator never made."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key, query, after, limit, page = json.loads(raw)
        pairs = tuple((str(k), str(v)) for k, v in query)
        return Cursor(str(key), pairs, int(after), int(limit), int(page))
    except (binascii.Error, ValueError, TypeError):
        return None
