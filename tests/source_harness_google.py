"""The google source's harness for the source contract suite: the Google Workspace simulator on loopback.

Each ``seed`` starts a fresh simulator of the customer of ``acme.test``, which serves
``GOOGLE_PAGE`` items a page whatever ``maxResults`` asks (as a server may), so that a few
dozen people take more than three pages. Inactive people are suspended users; the first
active person is the super admin the service account acts for (``subject``); the key file
is written into the test's folder from a key made for that simulator.

Google has no username apart from the address: the source reads ``primaryEmail`` as both
username and email (idp-apis §3.2), so ``username_of`` says what a Person's username reads as.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from source_harness import Person, Seed, SourceHarness

from scimsync.sim.google import GoogleSim
from scimsync.sim.server import SimServer

GOOGLE_PAGE = 20
MANY = 70  # more than three pages of 20
DOMAIN = "acme.test"
KEY_BITS = 1024  # throwaway keys, made per test: the small size keeps the suite fast


class GoogleHarness:
    """A GoogleSim per seed, served on loopback; the block reads it with a throwaway key file."""

    label = type = "google"
    page_size: int | None = GOOGLE_PAGE
    http = True
    check_hint = "check source.credentials_file"
    cannot: Mapping[str, str] = {}

    def __init__(self, folder: Path, many: int = MANY) -> None:
        self.folder = folder
        self.many = many
        self.sim: GoogleSim | None = None
        self._server: SimServer | None = None
        self._broken: tuple[str, int] = ("users", 2)

    @staticmethod
    def username_of(person: Person) -> str:
        """Return what the source reads as this person's username: the address."""
        return person.email

    def seed(self, seed: Seed) -> dict[str, Any]:
        """Start a new simulator holding ``seed`` and return the block that reads it."""
        self.stop()
        sim = GoogleSim(domains=(DOMAIN,), page_limit=GOOGLE_PAGE, key_bits=KEY_BITS)
        admin = next((p for p in seed.people if p.active), None)
        if admin is None:
            raise ValueError("the google harness needs an active person to act as the admin")
        email = {p.username: p.email for p in seed.people}
        for p in seed.people:
            sim.add_user(p.email, p.first, p.last, suspended=not p.active, admin=p is admin)
        direct = seed.direct_members()
        for name, members in direct.items():
            sim.add_group(name, members=[email[u] for u in members])
        for name, children in seed.children().items():
            for child in children:
                sim.add_member(name, child)
        self.sim = sim
        self._server = SimServer(sim.app)
        url = self._server.start()
        path = sim.write_credentials_file(self.folder / "google-sa.json", f"{url}/token")
        return {
            "type": "google",
            "credentials_file": str(path),
            "subject": admin.email,
            "url": url,
            "token_url": f"{url}/token",
        }

    def wrong_credentials(self, block: dict[str, Any]) -> dict[str, Any]:
        """Return the block with a key file signed by a key the simulator never issued."""
        info = json.loads(Path(block["credentials_file"]).read_text(encoding="utf-8"))
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        info["private_key"] = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        path = self.folder / "google-sa-wrong.json"
        path.write_text(json.dumps(info), encoding="utf-8")
        return {**block, "credentials_file": str(path)}

    def throttle_page(self, retry_after: int) -> str:
        """Answer the second page of users 429 with Retry-After once."""
        self._sim().break_page("users", 2, 429, times=1, retry_after=retry_after)
        self._broken = ("users", 2)
        return "GET /users page 2"

    def fail_page(self, block: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Answer the second page of users 502 every time (retried http.retries times)."""
        self._sim().break_page("users", 2, 502)
        self._broken = ("users", 2)
        return block, "GET /users page 2"

    def answers(self) -> list[int]:
        """Return what the simulator answered the broken page."""
        return self._sim().answers(*self._broken)

    def expire_token_after(self, pages: int) -> None:
        """Make the simulator refuse the current access token as expired after ``pages`` pages of users."""
        self._sim().expire_tokens_after(pages)

    def stop(self) -> None:
        """Stop the simulator's server, if one runs."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _sim(self) -> GoogleSim:
        if self.sim is None:
            raise RuntimeError("seed the harness first")
        return self.sim


@contextmanager
def google_harness(request: pytest.FixtureRequest, folder: Path) -> Iterator[SourceHarness]:
    """Yield a harness on a Google Workspace simulator; its server stops afterwards."""
    harness = GoogleHarness(folder, MANY)
    try:
        yield harness
    finally:
        harness.stop()
