"""Okta JSON as the model: status -> active, profile -> user fields, groups -> names (idp-apis §1.4-§1.6).

Every object is checked as it is read: a shape the reference does not describe is a
ResponseError naming the page or the object, never a guess.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from scimsync.errors import ResponseError
from scimsync.models import Group, SourceDirectory, User, key
from scimsync.sources.okta_partition import to_ms

log = logging.getLogger("scimsync.sources.okta")

# SPEC §4 and idp-apis §1.4 (every UserStatus value). STAGED was never activated; SUSPENDED
# and DEPROVISIONED are an admin's decision: inactive. RECOVERY, LOCKED_OUT and
# PASSWORD_EXPIRED are temporary: the person still works here. PROVISIONED means an admin
# activated the user, who has not set a password yet: activated, so active (day-one access;
# the reference calls this a policy choice, "maybe PROVISIONED").
ACTIVE_BY_STATUS: Mapping[str, bool] = {
    "STAGED": False,
    "PROVISIONED": True,
    "ACTIVE": True,
    "RECOVERY": True,
    "LOCKED_OUT": True,
    "PASSWORD_EXPIRED": True,
    "SUSPENDED": False,
    "DEPROVISIONED": False,
}
# §1.4: transitioningToStatus appears while an asynchronous change runs.
_TRANSITIONS = frozenset({"ACTIVE", "DEPROVISIONED", "PROVISIONED"})
GROUP_TYPES = ("OKTA_GROUP", "APP_GROUP", "BUILT_IN")  # §1.5
# Never copied into attributes: `credentials` (provider, and a password on writes), links.
_NOT_ATTRIBUTES = frozenset({"profile", "credentials", "_links", "_embedded"})


@dataclass(frozen=True)
class OktaGroup:
    """A group read from ``/api/v1/groups``; ``users_count`` from ``expand=stats`` when asked.

    ``last_updated`` and ``last_membership_updated`` are epoch milliseconds (None: not sent).
    """

    id: str
    name: str
    type: str
    users_count: int | None = None
    last_updated: int | None = None
    last_membership_updated: int | None = None


def _fail(system: str, obj: str, cause: str) -> NoReturn:
    raise ResponseError(system, obj, cause)


def item_id(system: str, where: str, raw: Any, noun: str) -> str:
    """Return the id of a listed object; a page holding anything else names ``where``."""
    if not isinstance(raw, dict):
        _fail(system, where, f"a {noun} that is not a JSON object")
    found = raw.get("id")
    if not isinstance(found, str) or not found:
        _fail(system, where, f"a {noun} without an id")
    return found


def parse_user(system: str, where: str, raw: Any) -> User:
    """Map one Okta user object (§1.4) to a User without groups."""
    uid = item_id(system, where, raw, "user")
    profile = raw.get("profile")
    if not isinstance(profile, dict):
        _fail(system, f"user {uid}", "no profile object")
    login = _text(system, f"user {uid}", profile, "login")
    who = f"user {uid} ({login})" if login else f"user {uid}"
    status = raw.get("status")
    active = _active(system, who, status, raw.get("transitioningToStatus"))
    email = _text(system, who, profile, "email")
    if active and not login:
        _fail(system, who, f"a user whose status is {status} has no profile.login")
    if active and not email:
        _fail(system, who, f"a user whose status is {status} has no profile.email")
    first, last = _text(system, who, profile, "firstName"), _text(system, who, profile, "lastName")
    display = _text(system, who, profile, "displayName")  # optional (§1.4)
    return User(
        id=uid,
        username=login,
        email=email,
        first_name=first,
        last_name=last,
        display_name=display or f"{first} {last}".strip(),
        active=active,
        attributes=attributes(raw, profile),
    )


def _active(system: str, who: str, status: Any, transitioning: Any) -> bool:
    if not isinstance(status, str) or status not in ACTIVE_BY_STATUS:
        known = ", ".join(ACTIVE_BY_STATUS)
        _fail(system, who, f"unknown status {status!r} (Okta documents {known})")
    # Checked as text first: a list or object sent there is unhashable.
    if transitioning is not None and not (isinstance(transitioning, str) and transitioning in _TRANSITIONS):
        _fail(system, who, f"unknown transitioningToStatus {transitioning!r}")
    # [U] A deactivation under way already ends access; an activation counts once it is done.
    return ACTIVE_BY_STATUS[status] and transitioning != "DEPROVISIONED"


def _text(system: str, who: str, data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if value is None:  # null properties may be sent or left out (§1.2)
        return ""
    if not isinstance(value, str):
        _fail(system, who, f"profile.{field} is not a string")
    return value


def attributes(raw: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    """Return the profile (custom attributes included) plus the user's own fields, never credentials.

    Profile fields win over a top-level field of the same name: ``user.attributes.department``
    is what a template means (SPEC §3); ``status``, ``lastLogin`` and the like come along.
    """
    own = {k: v for k, v in raw.items() if k not in _NOT_ATTRIBUTES}
    return {**own, **profile}


def parse_group(system: str, where: str, raw: Any) -> OktaGroup:
    """Map one Okta group object (§1.5); ``profile.name`` is the name rules match (SPEC §4)."""
    gid = item_id(system, where, raw, "group")
    profile = raw.get("profile")
    name = profile.get("name") if isinstance(profile, dict) else None
    if not isinstance(name, str) or not name.strip():
        _fail(system, f"group {gid}", "no profile.name")
    kind = raw.get("type")
    if kind not in GROUP_TYPES:
        known = ", ".join(GROUP_TYPES)
        _fail(system, f"group {gid} ({name})", f"unknown type {kind!r} (Okta documents {known})")
    embedded = raw.get("_embedded")
    stats = embedded.get("stats") if isinstance(embedded, dict) else None
    count = stats.get("usersCount") if isinstance(stats, dict) else None
    users_count = count if isinstance(count, int) and not isinstance(count, bool) else None
    changed, moved = to_ms(raw.get("lastUpdated")), to_ms(raw.get("lastMembershipUpdated"))
    return OktaGroup(gid, name, str(kind), users_count, changed, moved)


def newest(first: User, second: User) -> User:
    """Return the later state of a user read twice (it changed status between two lists)."""
    # Okta's timestamps are ISO 8601 in one format (§1.2): as text they sort in time order.
    ours, theirs = str(first.attributes.get("lastUpdated", "")), str(second.attributes.get("lastUpdated", ""))
    return second if theirs >= ours else first


def assemble(
    system: str,
    users: Sequence[User],
    groups: Sequence[OktaGroup],
    members: Mapping[str, Iterable[str]],
) -> SourceDirectory:
    """Give each user the names of its groups and each group its members among ``users``.

    Okta groups hold users only, so there is nothing to flatten (§1.6). A member that is not
    among the users read (created or deleted between the two reads) is left out, with a warning.
    """
    known = {u.id for u in users}
    names: dict[str, dict[str, str]] = {u.id: {} for u in users}
    result: list[Group] = []
    for group in groups:
        ids: dict[str, None] = {}
        for uid in members.get(group.id, ()):
            if uid not in known:
                log.warning(
                    "%s: group %s lists %s, not among the users read; ignored", system, group.name, uid
                )
                continue
            ids[uid] = None
            names[uid].setdefault(key(group.name), group.name)
        result.append(Group(group.id, group.name, tuple(ids)))
    people = tuple(dataclasses.replace(u, groups=tuple(names[u.id].values())) for u in users)
    return SourceDirectory(users=people, groups=tuple(result))
