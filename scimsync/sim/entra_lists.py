"""The Graph lists the Entra ID simulator serves: users, groups, group members (idp-apis §2.2-§2.5).

Every list pages the same way: ordered by object id, ``min($top, max_page_size)`` objects
per page, and an absolute ``@odata.nextLink`` while objects remain (§2.3).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from scimsync.sim.entra_auth import GROUPS_READERS, USERS_READERS
from scimsync.sim.entra_directory import (
    GROUP_PROPERTIES,
    USER_LISTABLE,
    DirectoryObject,
    EntraDirectory,
    render,
)
from scimsync.sim.entra_query import GraphError, ListQuery, PageState, SkipTokens, json_response, next_link

# §2.7: resource units of each list before modifiers; any other GET costs 1.
COST_USERS, COST_MEMBERS, COST_TRANSITIVE, COST_OTHER = 2, 3, 5, 1


@dataclass(frozen=True)
class GraphList:
    """One list endpoint's objects and rules, resolved for one request."""

    path: str  # under /v1.0, e.g. "/groups/{id}/transitiveMembers"
    collection: str  # the key of skip tokens and page faults: "users", "groups/{id}/members"
    kind: str  # what $select is checked against: "user", "group" or "directoryObject"
    known: tuple[str, ...]  # the properties $select may name
    items: list[DirectoryObject]
    typed: bool  # member lists hold several types: each item carries @odata.type (§2.5)
    cost: int
    readers: frozenset[str]
    entity_set: str  # the @odata.context entity set


def resolve(directory: EntraDirectory, endpoint: str, group_id: str | None) -> GraphList:
    """Return the list an endpoint names; 404 in Graph's envelope for an unknown group."""
    if endpoint == "users":
        users = directory.of_kind("user")
        return GraphList(
            "/users", "users", "user", USER_LISTABLE, users, False, COST_USERS, USERS_READERS, "users"
        )
    if endpoint == "groups":
        groups = directory.of_kind("group")
        return GraphList(
            "/groups",
            "groups",
            "group",
            GROUP_PROPERTIES,
            groups,
            False,
            COST_OTHER,
            GROUPS_READERS,
            "groups",
        )
    assert group_id is not None
    try:
        directory.get(group_id, "group")
    except KeyError:
        raise GraphError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{group_id}' does not exist or one of its queried reference-property objects "
            "are not present.",
        ) from None
    transitive = endpoint == "transitiveMembers"
    items = directory.transitive_members(group_id) if transitive else directory.direct_members(group_id)
    path = f"/groups/{group_id}/{endpoint}"
    return GraphList(
        path,
        path.lstrip("/"),
        "directoryObject",
        (*USER_LISTABLE, *GROUP_PROPERTIES),
        items,
        True,
        COST_TRANSITIVE if transitive else COST_MEMBERS,
        GROUPS_READERS,
        "directoryObjects",
    )


def page_response(
    lst: GraphList,
    query: ListQuery,
    state: PageState,
    args: MultiDict[str, str],
    *,
    base: str,
    max_page_size: int,
    tokens: SkipTokens,
) -> Response:
    """Return one page of ``lst`` from ``state``, with a next link while objects remain."""
    ids = [o.id for o in lst.items]
    start = bisect.bisect_right(ids, state.after) if state.after else 0
    size = min(query.top, max_page_size)
    chunk = lst.items[start : start + size]
    context = lst.entity_set + (f"({','.join(query.select)})" if query.select else "")
    body: dict[str, object] = {"@odata.context": f"{base}/$metadata#{context}"}
    if start + size < len(lst.items):
        token = tokens.issue(PageState(lst.collection, chunk[-1].id, state.page + 1))
        body["@odata.nextLink"] = next_link(base, lst.path, args, token)
    # Without $select each object shows its own type's default properties (§2.2).
    body["value"] = [render(o, query.select, typed=lst.typed) for o in chunk]
    return json_response(body)
