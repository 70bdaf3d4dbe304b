"""The contract suite's harness for the entra source: the Entra ID simulator over loopback.

The simulator serves at most ``ENTRA_PAGE_SIZE`` objects per page (Graph may return fewer
than ``$top``), so the source, which always asks ``$top=999``, reads many pages.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from source_harness import MANY, Seed

from scimsync.sim.entra import CLIENT_ID, CLIENT_SECRET, TENANT_ID, EntraSim
from scimsync.sim.server import SimServer

ENTRA_PAGE_SIZE = 20
USERS = "users"  # the simulator's name of the /users list, for fail_page and page_answers


class EntraHarness:
    """An EntraSim behind a SimServer; login_url and graph_url both point at it."""

    label = type = "entra"
    page_size: int | None = ENTRA_PAGE_SIZE
    http = True
    check_hint = "source.client_secret"
    cannot: Mapping[str, str] = {}

    def __init__(self, sim: EntraSim, url: str, many: int) -> None:
        self.sim = sim
        self.url = url
        self.many = many
        self._broken = (USERS, 0)

    def seed(self, seed: Seed) -> dict[str, Any]:
        """Create the users, then each group with its direct users, then nest groups (cycles too)."""
        self.sim.clear()
        ids = {
            p.username: self.sim.add_user(
                p.username,
                mail=p.email,
                given_name=p.first,
                surname=p.last,
                display_name=f"{p.first} {p.last}",
                enabled=p.active,
            )
            for p in seed.people
        }
        groups = {
            name: self.sim.add_group(name, members=[ids[u] for u in members])
            for name, members in seed.direct_members().items()
        }
        for name, children in seed.children().items():
            for child in children:
                self.sim.add_member(groups[name], groups[child])
        return {
            "type": "entra",
            "tenant_id": TENANT_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "login_url": self.url,
            "graph_url": self.url,
        }

    def wrong_credentials(self, block: dict[str, Any]) -> dict[str, Any]:
        """Return the block with a client secret the token endpoint refuses (AADSTS7000215)."""
        return {**block, "client_secret": "not-the-client-secret"}

    def throttle_page(self, retry_after: int) -> str:
        """Answer page 2 of /users 429 once, with Retry-After and the x-ms-throttle headers."""
        self._broken = (USERS, 2)
        self.sim.fail_page(USERS, 2, 429, times=1, retry_after=retry_after)
        return "GET /v1.0/users page 2"

    def fail_page(self, block: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Answer page 2 of /users 502 every time."""
        self._broken = (USERS, 2)
        self.sim.fail_page(USERS, 2, 502)
        return block, "GET /v1.0/users page 2"

    def answers(self) -> list[int]:
        """Return what the simulator answered the broken page, attempt by attempt."""
        return self.sim.page_answers(*self._broken)

    def expire_token_after(self, pages: int) -> None:
        """Expire the current access token once ``pages`` pages of users were served."""
        self.sim.expire_tokens_after(pages)


@contextmanager
def entra_harness(request: pytest.FixtureRequest, folder: Path) -> Iterator[EntraHarness]:
    """Yield a harness on a fresh Entra ID simulator."""
    sim = EntraSim(max_page_size=ENTRA_PAGE_SIZE)
    with SimServer(sim.app) as server:
        yield EntraHarness(sim, server.url, MANY)
