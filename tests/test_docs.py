"""Docs: every command has help text and appears in the README; the example config is valid."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from scimsync.cli import cli
from scimsync.config import load_config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "scimsync") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
    return found


COMMANDS = _commands(cli)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_has_help_and_is_in_the_readme(path: str, command: click.Command) -> None:
    assert command.help and command.help.strip()
    assert f"`{path}" in README, f"{path} is missing from README.md"
    result = CliRunner().invoke(cli, [*path.split()[1:], "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_example_config_is_valid_and_documents_every_policy_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_PAT", "x")
    config = load_config(ROOT / "config.example.yaml")
    assert "jira" in config.targets
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    for key in type(config.policy).model_fields:
        assert f"  {key}:" in text, f"policy.{key} missing from config.example.yaml"
    for key in type(config.http).model_fields:
        assert f"  {key}:" in text
        assert f"`http.{key}`" in README


def test_quick_start_commands_are_true() -> None:
    assert "make demo" in README and "make test" in README
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.parametrize("flavor", ["OpenLDAP", "Active Directory"])
def test_the_readme_ldap_examples_are_valid_configs(flavor: str, tmp_path: Path) -> None:
    import re

    block = re.search(rf"```yaml\n(# {flavor}\n.*?)```", README, re.S)
    assert block, f"README has no {flavor} example"
    target = "targets:\n  jira:\n    type: jira\n    url: https://jira.acme.com\n    token: t\n"
    path = tmp_path / "scimsync.yaml"
    path.write_text(f"version: 1\n{block[1]}{target}", encoding="utf-8")
    config = load_config(path, env={"LDAP_PASSWORD": "p", "AD_PASSWORD": "p"})
    assert config.source.type == "ldap"
