"""The okta source's harness for the source contract suite (tests/test_source_contract.py).

The system is the Okta simulator (scimsync.sim.okta) on a loopback socket, its page cap set
to 20 so that the suite's people take more than three pages (the source always asks for 200;
an org may cap lower, idp-apis §1.4). A fresh org is made for every seed. Inactive people
are SUSPENDED or STAGED in turn: both are in the plain user list, so that the pages of users
are the pages of one list (DEPROVISIONED people come from a second list, tested in
tests/test_source_okta.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from source_harness import AUTH, NESTING, TOKEN_EXPIRY, Seed, SourceHarness

from scimsync.sim.okta import OktaSim
from scimsync.sim.okta_limits import PageFault
from scimsync.sim.server import SimServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

OKTA_TOKEN = "contract-okta-token"
OKTA_PAGE = 20
OKTA_MANY = 70  # more than three pages of 20
USERS = "/api/v1/users"
INACTIVE = ("SUSPENDED", "STAGED")


class OktaHarness:
    """An OktaSim per seed, behind one loopback server."""

    label = type = "okta"
    many = OKTA_MANY
    page_size: int | None = OKTA_PAGE
    http = True
    check_hint = "check source.token"
    cannot: Mapping[str, str] = {
        NESTING: "Okta groups hold users only; they do not nest (idp-apis §1.6)",
        TOKEN_EXPIRY: (
            "an SSWS API token is not refreshed (idp-apis §1.1): expire_token_after revokes it, "
            "and the read fails with a line naming the page and saying to check source.token"
        ),
    }

    def __init__(self) -> None:
        self.sim = self._new_sim()
        self.url = ""
        self._fault: PageFault | None = None

    @staticmethod
    def _new_sim() -> OktaSim:
        # No Everyone group: the neutral seed has none (the source reads it like any group).
        return OktaSim(token=OKTA_TOKEN, max_page=OKTA_PAGE, everyone=False)

    def app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve the current org."""
        return self.sim.app(environ, start_response)

    def seed(self, seed: Seed) -> dict[str, Any]:
        """Make a fresh org with the people (login = username) and their groups."""
        if seed.children():
            raise ValueError(self.cannot[NESTING])
        self.sim = self._new_sim()
        self._fault = None
        inactive = 0
        for p in seed.people:
            status = "ACTIVE"
            if not p.active:
                status, inactive = INACTIVE[inactive % len(INACTIVE)], inactive + 1
            self.sim.add_user(p.username, p.email, p.first, p.last, status=status)
        for name, members in seed.direct_members().items():
            self.sim.add_group(name, members=members)
        return {"type": "okta", "url": self.url, "token": OKTA_TOKEN}

    def wrong_credentials(self, block: dict[str, Any]) -> dict[str, Any]:
        """Return the block with a token the org does not know."""
        return {**block, "token": "not-the-okta-token"}

    def throttle_page(self, retry_after: int) -> str:
        """Answer the second page of users 429 E0000047 once, its reset ``retry_after`` s away."""
        self._fault = self.sim.throttle_page(USERS, 2, reset_in=retry_after)
        return f"GET {USERS} page 2"

    def fail_page(self, block: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Answer the second page of users 502 every time (retried http.retries times)."""
        self._fault = self.sim.fail_page(USERS, 2, 502)
        return block, f"GET {USERS} page 2"

    def answers(self) -> list[int]:
        """Return what the broken page was answered, attempt by attempt."""
        return list(self._fault.answers) if self._fault is not None else []

    def expire_token_after(self, pages: int) -> None:
        """Revoke the token after ``pages`` pages of users: the next request is 401 E0000011."""
        self.sim.expire_token_after(pages)


assert AUTH not in OktaHarness.cannot  # the SSWS token is the credential the suite refuses


@contextmanager
def okta_harness(request: pytest.FixtureRequest, folder: Path) -> Iterator[SourceHarness]:
    """Yield a harness on a fresh Okta simulator served on loopback."""
    harness = OktaHarness()
    with SimServer(harness.app) as server:
        harness.url = server.url
        yield harness
