"""OneLogin records -> the model: status codes, users, and roles and groups as scimsync groups.

Naming (SPEC §4, idp-apis §4.4): a role and a group are both scimsync groups named
exactly as in OneLogin, so one ``from:`` glob matches either. A role and a group whose
names compare equal (``key``) are one scimsync group, its members those of both; its id
lists both (``role:9001+group:7001``), since role and group ids are separate numberings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from scimsync.errors import ResponseError
from scimsync.models import Group, SourceDirectory, User, key
from scimsync.sources.onelogin_pages import item_id

log = logging.getLogger("scimsync.sources.onelogin")

# idp §4.3 and SPEC §4. Only suspension and never having been activated end access;
# locks, expired passwords and pending resets are temporary and keep it. 7, "password
# pending", is a user an admin activated who has not chosen a password yet (Okta's
# PROVISIONED, not its never-activated STAGED): active, so access is ready on day one.
ACTIVE_STATUSES = {
    1: "active",
    3: "locked",
    4: "password expired",
    5: "awaiting password reset",
    7: "password pending",
    8: "security questions required",
}
INACTIVE_STATUSES = {0: "unactivated", 2: "suspended"}
# §4.3's suggested mapping: state 0 (unapproved) and 2 (rejected) disable; 1 (approved)
# and 3 (unlicensed) leave it to the status.
INACTIVE_STATES = {0: "unapproved", 2: "rejected"}
OTHER_STATES = {1: "approved", 3: "unlicensed"}
# Never in attributes, should a tenant's list ever carry them (a template must not see one).
CREDENTIAL_FIELDS = frozenset({"password", "password_confirmation", "password_algorithm", "salt"})


def _code(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_active(system: str, where: str, record: Mapping[str, Any]) -> bool:
    """Map ``status`` (required) and ``state`` (optional [U]) to active (§4.3, SPEC §4)."""
    status = _code(record.get("status"))
    if status not in ACTIVE_STATUSES and status not in INACTIVE_STATUSES:
        known = ", ".join(map(str, sorted({**ACTIVE_STATUSES, **INACTIVE_STATUSES})))
        cause = f"unknown status {record.get('status')!r} (idp §4.3 knows {known})"
        raise ResponseError(system, where, cause)
    state = record.get("state")
    # [U] §4.3 shows state on every user; an absent one leaves the decision to the status.
    if state is not None and _code(state) not in INACTIVE_STATES and _code(state) not in OTHER_STATES:
        raise ResponseError(system, where, f"unknown state {state!r} (idp §4.3 knows 0, 1, 2, 3)")
    return status in ACTIVE_STATUSES and _code(state) not in INACTIVE_STATES


@dataclass(frozen=True)
class Catalog:
    """The roles and groups read: id -> name, in the order the lists gave them."""

    roles: Mapping[str, str]
    groups: Mapping[str, str]
    role_members: Mapping[str, Sequence[str]] = field(default_factory=dict)


def catalog_entry(system: str, label: str, item: Mapping[str, Any], noun: str) -> tuple[str, str]:
    """Return (id, name) of a role or group; a nameless one is a ResponseError."""
    rid = item_id(item.get("id")) or ""
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ResponseError(system, label, f"{noun} id {rid} has no name")
    return rid, name


class Assembler:
    """Turn user records and the catalog into a SourceDirectory (one call of ``build``)."""

    def __init__(self, system: str, catalog: Catalog) -> None:
        self.system = system
        self.catalog = catalog
        # scimsync group key -> (name as first seen, OneLogin ids): roles first, then groups.
        self.slots: dict[str, tuple[str, list[str]]] = {}
        for rid, name in catalog.roles.items():
            self.slots.setdefault(key(name), (name, []))[1].append(f"role:{rid}")
        for gid, name in catalog.groups.items():
            self.slots.setdefault(key(name), (name, []))[1].append(f"group:{gid}")
        self.roles_of: dict[str, list[str]] = {}
        for rid, members in catalog.role_members.items():
            for uid in members:
                self.roles_of.setdefault(uid, []).append(catalog.roles[rid])

    def build(self, records: Iterable[dict[str, Any]], *, everyone: bool = True) -> SourceDirectory:
        """Map every record; every group lists the users read that are in it.

        ``everyone``: the records are the whole user list (not a scoped part of it).
        """
        users = tuple(self.user(r) for r in records)
        strays = set(self.roles_of) - {u.id for u in users}
        if everyone and strays:
            # A role member not among the users read: created or deleted between the two reads.
            log.warning("%s: %d role member(s) not among the users read; ignored", self.system, len(strays))
        members: dict[str, list[str]] = {slot: [] for slot in self.slots}
        for user in users:
            for name in user.groups:
                members[key(name)].append(user.id)
        groups = tuple(
            Group(id="+".join(ids), name=name, member_ids=tuple(members[slot]))
            for slot, (name, ids) in self.slots.items()
        )
        return SourceDirectory(users=users, groups=groups)

    def _fail(self, where: str, cause: str) -> NoReturn:
        raise ResponseError(self.system, where, cause)

    def user(self, record: dict[str, Any]) -> User:
        """Map one ``/api/2/users`` record (§4.2)."""
        uid = item_id(record.get("id")) or ""
        where = f"user id {uid}"
        username, email = self._text(where, record, "username"), self._text(where, record, "email")
        first, last = self._text(where, record, "firstname"), self._text(where, record, "lastname")
        display = f"{first} {last}".strip()  # OneLogin has no display name of its own (§4.2)
        active = is_active(self.system, where, record)
        if active and not username and not email:
            named = f" ({display})" if display else ""
            self._fail(f"{where}{named}", "an active user with neither username nor email")
        return User(
            id=uid,
            username=username,
            email=email,
            first_name=first,
            last_name=last,
            display_name=display,
            active=active,
            groups=self._groups(where, uid, record.get("group_id")),
            attributes=attributes(record),
        )

    def _groups(self, where: str, uid: str, group_id: Any) -> tuple[str, ...]:
        names = list(self.roles_of.get(uid, ()))
        if group_id is not None:
            gid = item_id(group_id)
            if gid is None or gid not in self.catalog.groups:
                # Strict [U]: a group the list did not show may carry this person's access.
                cause = f"group_id {group_id!r} is not among the groups /api/1/groups listed: run again"
                self._fail(where, cause)
            names.append(self.catalog.groups[gid])
        unique = {key(n): self.slots[key(n)][0] for n in names}
        return tuple(unique.values())

    def _text(self, where: str, record: Mapping[str, Any], name: str) -> str:
        value = record.get(name)
        if value is None:
            return ""
        if not isinstance(value, str):
            self._fail(where, f"{name} is not a string")
        return value


def attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """Return the raw record, custom attributes also at the top (a core field wins), no credential."""
    raw = {k: v for k, v in record.items() if k not in CREDENTIAL_FIELDS}
    custom = record.get("custom_attributes")
    if isinstance(custom, dict):
        for name, value in custom.items():
            raw.setdefault(name, value)
    return raw
