"""The benchmark runs, and its seeded company is exactly what the config wants (a steady state)."""

from __future__ import annotations

import pytest

from scimsync.sim.bench import run


@pytest.mark.parametrize("version", ["9.12.0", "10.3.1"])
def test_bench_plans_a_converged_company(version: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(60, version, 4)
    out = capsys.readouterr().out
    assert f"Jira {version}, 60 people" in out
    assert " 0 operations" in out, "the benchmark measures a steady-state run: nothing to change"
