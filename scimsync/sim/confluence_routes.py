"""The Confluence simulator's route table: each endpoint and the version that introduced it (§2.2)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Response

from scimsync.sim import confluence_admin as admin_users
from scimsync.sim import confluence_groups as groups
from scimsync.sim import confluence_users as users
from scimsync.sim.confluence_common import Ctx
from scimsync.sim.confluence_manifest import manifest

Handler = Callable[[Ctx], Response]

SUPPORTED_MAJORS = (7, 8, 9, 10)


@dataclass(frozen=True)
class Route:
    """One endpoint, with the version that introduced it (§2.2)."""

    path: str
    method: str
    handler: Handler
    admin: bool = False
    anonymous: bool = False
    since: tuple[int, ...] = ()


API = "/rest/api"
ADMIN_USER = f"{API}/admin/user/<username>"
MEMBERSHIP = f"{API}/user/<username>/group/<group>"

ROUTES = (
    Route("/rest/applinks/1.0/manifest", "GET", manifest, anonymous=True),  # §2.1a
    Route(f"{API}/user", "GET", users.get_user),
    Route(f"{API}/user/current", "GET", users.current_user),
    Route(f"{API}/user/memberof", "GET", users.member_of),
    Route(f"{API}/user/list", "GET", users.list_users, since=(8, 4)),
    Route(f"{API}/admin/users/list/active", "GET", users.list_active_users, admin=True, since=(9, 3)),
    Route(f"{API}/admin/user", "POST", admin_users.create_user, admin=True, since=(8, 4)),
    Route(ADMIN_USER, "PUT", admin_users.update_user, admin=True, since=(10, 0)),
    Route(ADMIN_USER, "DELETE", admin_users.delete_user, admin=True, since=(8, 2)),
    Route(f"{ADMIN_USER}/disable", "PUT", admin_users.disable_user, admin=True, since=(8, 2)),
    Route(f"{ADMIN_USER}/enable", "PUT", admin_users.enable_user, admin=True, since=(8, 2)),
    Route(f"{ADMIN_USER}/password", "POST", admin_users.set_password, admin=True, since=(8, 4)),
    Route(f"{API}/group", "GET", groups.list_groups),
    Route(f"{API}/group/<group>", "GET", groups.get_group),
    Route(f"{API}/group/<group>/member", "GET", groups.group_members),
    # §2.2 marks group create/delete and membership [U] "likely 8.2": taken as 8.2.
    Route(f"{API}/admin/group", "POST", groups.create_group, admin=True, since=(8, 2)),
    Route(f"{API}/admin/group/<group>", "DELETE", groups.delete_group, admin=True, since=(8, 2)),
    Route(MEMBERSHIP, "PUT", groups.add_member, admin=True, since=(8, 2)),
    Route(MEMBERSHIP, "DELETE", groups.remove_member, admin=True, since=(8, 2)),
    Route(f"{API}/longtask/<task_id>", "GET", admin_users.get_task),  # §2.5 [U path]
)


def parse_version(version: str) -> tuple[int, int, int]:
    """Turn "9.2.1" into (9, 2, 1); ValueError for another major version than 7 to 10."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        raise ValueError(f"not a Confluence version: {version!r}")
    numbers = int(match[1]), int(match[2]), int(match[3] or 0)
    if numbers[0] not in SUPPORTED_MAJORS:
        raise ValueError(f"Confluence {version} is not simulated (majors {SUPPORTED_MAJORS[0]} to 10 are)")
    return numbers


def rule_map(routes: Iterable[Route]) -> Map:
    """Return the werkzeug map of these routes; an endpoint is "METHOD path"."""
    rules = [Rule(r.path, methods=[r.method], endpoint=f"{r.method} {r.path}") for r in routes]
    return Map(rules, merge_slashes=False, redirect_defaults=False)
