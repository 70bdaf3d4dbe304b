"""The keycloak source's harness for the source contract suite (see source_harness.py).

Each harness runs its own ``KeycloakSim`` on loopback, so a seed is all the realm holds.
The block asks ``max=21`` per page; each page after the first starts on the last user of
the page before (the overlap that catches a list moving under the read,
scimsync/sources/keycloak_paging.py), so a page brings 20 new people: ``page_size`` is 20.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from source_harness import CYCLES, MANY, Seed, SourceHarness

from scimsync.sim.keycloak import SECRET, KeycloakSim
from scimsync.sim.server import SimServer

ASKED = 21  # the block's page_size: Keycloak's `max`
USERS = "/users"


class KeycloakHarness:
    """A Keycloak realm 'acme' with the confidential client 'scimsync' (role view-users)."""

    label = type = "keycloak"
    page_size: int | None = ASKED - 1
    http = True
    check_hint = "source.client_id and source.client_secret"
    cannot: Mapping[str, str] = {
        CYCLES: "Keycloak groups form a tree (idp §5.3): no group can contain its ancestor"
    }

    def __init__(self, sim: KeycloakSim, url: str, many: int) -> None:
        self.sim = sim
        self.url = url + sim.base_path
        self.many = many
        self._broken = ASKED - 1  # the second page of users starts on the first page's last user

    def seed(self, seed: Seed) -> dict[str, Any]:
        """Create the people, then the group tree top-down, then the direct memberships."""
        parents = _tree(seed)
        for p in seed.people:
            self.sim.add_user(
                p.username, email=p.email, first_name=p.first, last_name=p.last, enabled=p.active
            )
        paths: dict[str, str] = {}
        direct = seed.direct_members()
        todo = [name for name in direct if parents.get(name) is None]
        while todo:
            name = todo.pop(0)
            parent = parents.get(name)
            paths[name] = self.sim.add_group(name, parent=paths[parent] if parent else None)
            todo.extend(child for child, above in parents.items() if above == name)
        for name, usernames in direct.items():
            for username in usernames:
                self.sim.add_member(paths[name], username)
        return {
            "type": "keycloak",
            "url": self.url,
            "realm": "acme",
            "client_id": "scimsync",
            "client_secret": SECRET,
            "page_size": ASKED,
        }

    def wrong_credentials(self, block: dict[str, Any]) -> dict[str, Any]:
        """Return the block with a client secret Keycloak refuses."""
        return {**block, "client_secret": "not-the-client-secret"}

    def throttle_page(self, retry_after: int) -> str:
        """Answer the second page of users 429 with Retry-After once (from a proxy: §5.4)."""
        self.sim.fail_page(USERS, self._broken, 429, times=1, retry_after=retry_after)
        return self._label()

    def fail_page(self, block: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Answer the second page of users 502 on every attempt."""
        self.sim.fail_page(USERS, self._broken, 502)
        return block, self._label()

    def answers(self) -> list[int]:
        """Return what the broken page was answered, attempt by attempt."""
        return self.sim.answers(USERS, self._broken)

    def expire_token_after(self, pages: int) -> None:
        """Make the realm refuse every token issued so far once ``pages`` pages of users are served."""
        self.sim.expire_tokens_after(pages)

    def _label(self) -> str:
        return f"GET /users?first={self._broken}&max={ASKED}"


def _tree(seed: Seed) -> dict[str, str | None]:
    """Return group -> its parent; skip the case when the nesting is no tree (idp §5.3)."""
    parents: dict[str, str | None] = dict.fromkeys(seed.direct_members())
    for parent, children in seed.children().items():
        for child in children:
            if child == parent:
                pytest.skip(f"keycloak: groups form a tree (idp §5.3): '{child}' cannot be inside itself")
            if parents.get(child) is not None:
                pytest.skip(f"keycloak: groups form a tree (idp §5.3): '{child}' cannot have two parents")
            parents[child] = parent
    for name in parents:
        seen, current = {name}, parents[name]
        while current is not None:
            if current in seen:
                pytest.skip(f"keycloak: groups form a tree (idp §5.3): '{name}' would be inside itself")
            seen.add(current)
            current = parents[current]
    return parents


@contextmanager
def keycloak_harness(request: pytest.FixtureRequest, folder: Path) -> Iterator[SourceHarness]:
    """Yield a harness on a fresh Keycloak simulator."""
    sim = KeycloakSim()
    with SimServer(sim.app) as server:
        yield KeycloakHarness(sim, server.url, MANY)
