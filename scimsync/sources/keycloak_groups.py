"""Reading Keycloak's group tree and its members (idp §5.3).

The tree is read level by level: ``/groups`` gives the top level; a group whose
``subGroupCount`` is not matched by inline ``subGroups`` (Keycloak 23+) has its
``/groups/{id}/children`` read, the groups of one level in parallel. ``/children`` pages
by ``max`` defaulting to 10, so ``max`` is always sent. Members are read per group
(``/groups/{id}/members``, direct members only), every group in parallel. ``/groups`` and
the member lists have no count: ``read_list`` confirms each one's short last page.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from scimsync.errors import ResponseError
from scimsync.http import HttpClient
from scimsync.sources.keycloak_model import GroupNode, group_node, inline_subgroups
from scimsync.sources.keycloak_paging import KeycloakList, Rep, read_counted, read_list


def read_tree(client: HttpClient, size: int) -> list[GroupNode]:
    """Return every group of the realm, parents before their children."""
    top = read_list(client, KeycloakList("/groups", {"briefRepresentation": True}), size)
    nodes: list[GroupNode] = []
    seen: set[str] = set()
    level: list[tuple[Mapping[str, Any], GroupNode | None]] = [(rep, None) for rep in top]
    while level:
        later: list[tuple[Mapping[str, Any], GroupNode | None]] = []
        pending: list[tuple[GroupNode, int]] = []
        for rep, parent in level:
            node = group_node(client.system, rep, parent)
            if node.id in seen:
                raise ResponseError(client.system, f"group {node.path}", "appears twice in the group tree")
            seen.add(node.id)
            nodes.append(node)
            inline = inline_subgroups(client.system, rep, node)
            if isinstance(inline, int):
                pending.append((node, inline))
            else:
                later.extend((child, node) for child in inline)
        fetched = client.map_parallel(lambda job: _children(client, job[0], job[1], size), pending)
        for (node, _), children in zip(pending, fetched, strict=True):
            later.extend((child, node) for child in children)
        level = later
    return nodes


def _children(client: HttpClient, node: GroupNode, count: int, size: int) -> list[Rep]:
    """Read a group's subgroups; fewer or more than its subGroupCount is a ResponseError."""
    lst = KeycloakList(
        f"/groups/{quote(node.id, safe='')}/children", {"briefRepresentation": True}, _about(node)
    )
    # subGroupCount is the count: a short page needs no confirming read, the length check below
    # catches a cut page as it catches a child added or removed meanwhile.
    children = read_counted(client, lst, size, count)
    if len(children) != count:
        cause = (
            f"subGroupCount says {count} subgroups but /children listed {len(children)}: one was added "
            "or removed during the read, or the client may not view it (it needs view-users, idp §5.1)"
        )
        raise ResponseError(client.system, f"group {node.path}", cause)
    return children


def read_members(
    client: HttpClient,
    nodes: Sequence[GroupNode],
    size: int,
    *,
    full: Collection[str] = (),
    report: Callable[[int, int], None] | None = None,
) -> list[list[Rep]]:
    """Return the direct members of each group, in the order of ``nodes``.

    Members of the groups whose ids are in ``full`` come as full representations (the
    profile of a scoped read), the others brief: only their ids are used.
    """
    done = itertools.count(1)  # next() is atomic: the threads count without a lock

    def members(node: GroupNode) -> list[Rep]:
        brief = node.id not in full
        path = f"/groups/{quote(node.id, safe='')}/members"
        found = read_list(client, KeycloakList(path, {"briefRepresentation": brief}, _about(node)), size)
        if report is not None:
            report(next(done), len(nodes))
        return found

    return client.map_parallel(members, nodes)


def _about(node: GroupNode) -> str:
    return f" (group {node.path})"
