"""The OneLogin harness of the source contract suite: the OneLogin simulator on loopback.

Every group of a Seed becomes a OneLogin *role*: a person may be in many roles but in
only one group (idp-apis §4.4). The onelogin source's own tests cover groups.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from source_harness import NESTING, Seed, SourceHarness

from scimsync.sim.onelogin import USERS, OneLoginSim
from scimsync.sim.server import SimServer

CLIENT_ID = "contract-onelogin-client"
CLIENT_SECRET = "contract-onelogin-secret"
PAGE_SIZE = 100  # the source always asks for OneLogin's largest page (idp-apis §4.2)
MANY = 310  # more than three pages of 100


class OneLoginHarness:
    """Seeds the simulator (emptied first) and breaks pages of ``/api/2/users``."""

    label = type = "onelogin"
    many = MANY
    page_size: int | None = PAGE_SIZE
    http = True
    check_hint = "check source.client_id and source.client_secret"
    cannot: Mapping[str, str] = {NESTING: "OneLogin nests neither roles nor groups (idp-apis §4.4)"}

    def __init__(self, sim: OneLoginSim, url: str) -> None:
        self.sim = sim
        self.url = url
        self._page = 0

    def seed(self, seed: Seed) -> dict[str, Any]:
        """Add each person (inactive: suspended, status 2) and each group as a role."""
        if seed.children():
            raise ValueError("OneLogin has no nested groups")
        self.sim.clear()
        for p in seed.people:
            self.sim.add_user(p.username, p.email, p.first, p.last, status=1 if p.active else 2)
        for name, members in seed.direct_members().items():
            self.sim.add_role(name, members)
        return {"type": "onelogin", "url": self.url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}

    def wrong_credentials(self, block: dict[str, Any]) -> dict[str, Any]:
        """Return the block with a client secret the token endpoint refuses."""
        return {**block, "client_secret": "not-the-onelogin-secret"}

    def throttle_page(self, retry_after: int) -> str:
        """Answer page 2 of users 429 once, with X-RateLimit-Reset (seconds, idp-apis §4.6)."""
        self._page = 2
        self.sim.fail_page(USERS, 2, 429, times=1, reset=retry_after)
        return f"GET {USERS} page 2"

    def fail_page(self, block: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Answer page 2 of users 502 every time."""
        self._page = 2
        self.sim.fail_page(USERS, 2, 502)
        return block, f"GET {USERS} page 2"

    def answers(self) -> list[int]:
        """Return what the simulator answered the broken page."""
        return self.sim.page_statuses(USERS, self._page)

    def expire_token_after(self, pages: int) -> None:
        """Make the simulator refuse the current token as expired after ``pages`` pages of users."""
        self.sim.expire_token_after(pages)


@contextmanager
def onelogin_harness(request: pytest.FixtureRequest, folder: Path) -> Iterator[SourceHarness]:
    """Yield a harness on a fresh OneLogin simulator."""
    sim = OneLoginSim(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with SimServer(sim.app) as server:
        yield OneLoginHarness(sim, server.url)
