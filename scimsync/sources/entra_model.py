"""Microsoft Graph JSON -> the model, checked on the way (idp-apis §2.2, §2.5). Pure: no I/O.

``User.id`` is the object id (a GUID, stable); ``username`` the userPrincipalName (the
sign-in name, always present on a real user); ``email`` the ``mail`` property, often null
for users without a mailbox (§2.2), which is then "" (the engine syncs such a person but
creates no account for them). Guests keep their ``…#EXT#@tenant.onmicrosoft.com`` UPN.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from scimsync.errors import ResponseError
from scimsync.models import Group, SourceDirectory, User, key

log = logging.getLogger("scimsync.sources.entra")

# §2.2: accountEnabled is not in the default set and must be asked for. Every other field
# is there for templates (user.attributes.department); all can be listed (none is single-only).
USER_SELECT = (
    "id",
    "userPrincipalName",
    "mail",
    "givenName",
    "surname",
    "displayName",
    "accountEnabled",
    "userType",
    "mailNickname",
    "employeeId",
    "department",
    "jobTitle",
    "companyName",
    "officeLocation",
    "preferredLanguage",
)
GROUP_SELECT = ("id", "displayName")

USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
# §2.5: what else a member list holds. None of them is a person who signs in to Atlassian.
NOT_PEOPLE = (
    "#microsoft.graph.device",
    "#microsoft.graph.orgContact",
    "#microsoft.graph.servicePrincipal",
)


@dataclass(frozen=True)
class GroupRef:
    """A group as ``/groups`` lists it."""

    id: str
    name: str


def _fail(system: str, where: str, cause: str) -> NoReturn:
    raise ResponseError(system, where, cause)


def parse_group(system: str, where: str, item: dict[str, Any]) -> GroupRef:
    """Return the group of a ``/groups`` item (its id is checked already)."""
    name = item.get("displayName")
    if not isinstance(name, str) or not name.strip():
        # Graph requires a displayName; scoping and group rules match it (SPEC §4).
        _fail(system, where, f"group id '{item['id']}' has no displayName")
    return GroupRef(item["id"], name)


def member_kind(system: str, where: str, item: dict[str, Any]) -> str:
    """Return "user", "group" or "other" for an item of a member list (§2.5)."""
    kind = item.get("@odata.type")
    if kind == USER_TYPE:
        return "user"
    if kind == GROUP_TYPE:
        return "group"
    if kind in NOT_PEOPLE:
        return "other"
    # Strict [U]: a member of a type the reference does not list may be a person we would miss.
    _fail(
        system, where, f"member '{item['id']}' has the @odata.type {kind!r}, which is not a known member type"
    )


def parse_user(system: str, item: dict[str, Any]) -> User:
    """Return the user of a ``/users`` item or of a member list item of type user."""
    uid = item["id"]
    display = _text(system, f"user id '{uid}'", item, "displayName")
    where = f"user id '{uid}'" + (f" ({display})" if display else "")
    kind = item.get("@odata.type")
    if kind is not None and kind != USER_TYPE:
        _fail(system, where, f"a user list item has the @odata.type {kind!r}")
    enabled = item.get("accountEnabled")
    if not isinstance(enabled, bool):
        # §2.2: only returned when $select-ed; without it no one can be told active or not.
        _fail(system, where, "accountEnabled is missing or not true/false")
    upn = _text(system, where, item, "userPrincipalName")
    if not upn and enabled:
        _fail(system, where, "an enabled user without a userPrincipalName")
    first, last = _text(system, where, item, "givenName"), _text(system, where, item, "surname")
    return User(
        id=uid,
        username=upn,
        email=_text(system, where, item, "mail"),
        first_name=first,
        last_name=last,
        display_name=display or f"{first} {last}".strip(),
        active=enabled,  # §2.4: accountEnabled false is the one "disabled" signal
        attributes={k: v for k, v in item.items() if not k.startswith("@odata.")},
    )


def _text(system: str, where: str, item: Mapping[str, Any], field: str) -> str:
    value = item.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        _fail(system, where, f"{field} is not a string")
    return value


def assemble(
    system: str,
    users: Iterable[User],
    groups: Iterable[GroupRef],
    members: Mapping[str, list[str]],
    *,
    scoped: bool,
) -> SourceDirectory:
    """Return the directory: each user with every group it is in, each group with its users read.

    ``members`` maps a group id to the ids of its transitive user members (§2.5: already
    flattened through nested groups). A member not among ``users`` is out of scope when
    ``scoped``; otherwise it was created after the users were listed, and is left out.
    """
    users = list(users)
    known = {u.id for u in users}
    groups = list(groups)
    in_groups: dict[str, dict[str, str]] = {u.id: {} for u in users}  # user -> key(name) -> name
    member_ids: dict[str, list[str]] = {}
    for group in groups:
        listed = members.get(group.id, [])
        member_ids[group.id] = [m for m in listed if m in known]
        missing = len(listed) - len(member_ids[group.id])
        if missing and not scoped:
            log.warning(
                "%s: group '%s' lists %d member(s) not among the users read (created meanwhile); ignored",
                system,
                group.name,
                missing,
            )
        for uid in member_ids[group.id]:
            # Graph does not make display names unique: two groups of one name are one name here.
            in_groups[uid].setdefault(key(group.name), group.name)
    return SourceDirectory(
        users=tuple(replace(u, groups=tuple(in_groups[u.id].values())) for u in users),
        groups=tuple(Group(g.id, g.name, tuple(member_ids[g.id])) for g in groups),
    )
