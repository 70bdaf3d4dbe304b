"""A unique secret planted in the config appears in no output, log, plan file or audit log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import World, make_world

SECRET = "s3cr3t-PLANTED-7f4e2a91c0"
WRONG_SECRET = "s3cr3t-WRONG-0d5b77e3aa"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("E2E_JIRA_TOKEN", SECRET)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    yield from make_world(tmp_path, SECRET, version="10.3.1")


def test_planted_secret_never_leaks(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    plan_file = world.folder / "plan.json"
    outputs: list[str] = []
    runs = [
        ("-vv", "validate"),
        ("-vv", "check"),
        ("-vv", "--log-format", "json", "plan", "--format", "json"),
        ("-vv", "plan", "--format", "markdown", "--out", str(plan_file)),
        ("-vv", "show", str(plan_file)),
        ("-vv", "apply", "-y"),
    ]
    for args in runs:
        result = world.run(*args)
        assert result.exit_code == 0, result.output
        outputs += [result.stdout, result.stderr]
    # Failures too: a server that echoes what it got, a 500, a wrong token.
    world.sim.faults.inject(500, count=3, body={"errorMessages": [f"bad token {SECRET}"], "errors": {}})
    outputs.append(world.run("-vv", "plan").stderr)
    monkeypatch.setenv("E2E_JIRA_TOKEN", WRONG_SECRET)
    for args in (("-vv", "plan"), ("-vv", "check")):
        result = world.run(*args)
        assert result.exit_code == 1
        outputs += [result.stdout, result.stderr]
    files = [plan_file.read_text(), (world.folder / "audit.jsonl").read_text()]
    everything = "\n".join(outputs + files)
    assert "create_user" in everything  # the scan did read real output
    assert SECRET not in everything
    assert WRONG_SECRET not in everything


def test_config_repr_masks_secrets(world: World) -> None:
    from scimsync.config import load_config

    config = load_config(world.config)
    assert SECRET not in repr(config)
    assert SECRET not in str(config.model_dump())


def test_a_secret_read_from_a_file_with_a_newline_still_works(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_JIRA_TOKEN", SECRET + "\n")
    result = world.run("check")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.stdout + result.stderr


def test_redact_masks_escaped_and_url_encoded_forms() -> None:
    from scimsync.secrets import Secret, redact

    Secret("p@ss/word\twith tab")
    text = "a 'p@ss/word\\twith tab' b p%40ss%2Fword%09with%20tab c p@ss/word\twith tab"
    assert redact(text) == "a '***' b *** c ***"
