"""End to end: the README's HR-export recipe syncs a real-looking export with configuration alone."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scimsync.cli import cli
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hr-token-31f0"


def recipe() -> dict[str, object]:
    """Return the YAML block of README's "Recipe: an HR export", parsed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Recipe: an HR export", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    data: dict[str, object] = yaml.safe_load(block.group(1))
    return data


def test_the_hr_export_recipe_syncs_with_configuration_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HR_JIRA_TOKEN", TOKEN)
    shutil.copy(ROOT / "tests" / "fixtures" / "hr_export.csv", tmp_path / "hr_export.csv")
    sim = JiraSim(token=TOKEN, version="10.3.1")
    with SimServer(sim.app) as server:
        config = {
            "version": 1,
            **recipe(),
            "targets": {
                "jira": {
                    "type": "jira",
                    "url": server.url,
                    "token": "${HR_JIRA_TOKEN}",
                    "default_groups": ["jira-software-users"],
                    "groups": [{"from": "*", "to": "dept-{{ group.name | slug }}"}],
                }
            },
        }
        (tmp_path / "scimsync.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        run = CliRunner().invoke(cli, ["-c", str(tmp_path / "scimsync.yaml"), "apply", "-y"])
        assert run.exit_code == 0, run.output
        # Active and On Leave (any case) are provisioned; Terminated people are not created.
        created = {u for u in ("amara.kone", "bob.stone", "dana.okafor", "eli.brennan", "jose.garcia")}
        created |= {"hana.sato", "ivan.petrov"}
        for username in created:
            assert sim.user(username) is not None, username
        assert sim.user("chen.wei") is None and sim.user("fatima.haddad") is None
        amara = sim.user("amara.kone")
        assert amara is not None and amara["displayName"] == "Amara Koné"
        assert sim.members("dept-engineering") == {"amara.kone", "hana.sato"}
        assert sim.members("dept-research-development") == {"jose.garcia", "ivan.petrov"}
        again = CliRunner().invoke(
            cli, ["-c", str(tmp_path / "scimsync.yaml"), "plan", "--detailed-exitcode"]
        )
        assert again.exit_code == 0, again.output
