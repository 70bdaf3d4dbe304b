"""Fixtures shared by the end-to-end test modules built on ``e2e_trust_support``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_trust_support import TOKEN, TrustWorld, make_trust_world


@pytest.fixture(params=["9.12.0", "10.3.1"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TrustWorld]:
    """A Jira before /user/list (9.12: capped search) and one with it (10.3).

    Modules with a world of their own (test_e2e_jira.py) define a fixture of this name.
    """
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    yield from make_trust_world(tmp_path, TOKEN, version=request.param)


@pytest.fixture
def world10(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrustWorld]:
    """One Jira version, for the slower tests and those that do not depend on it."""
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    yield from make_trust_world(tmp_path, TOKEN, version="10.3.1")
