"""``make bench`` at a tiny size: it runs, writes every figure, and its arithmetic holds.

The fewest requests and the round-trip limits are recomputed here from the company and the
page sizes of the reference docs (§1.7: 2000 users a page, §1.8: 50 members a page), not
through ``bench_limits``. No timing is asserted: only that times were measured and that
the derived figures follow from them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from scimsync.sim import bench
from scimsync.sim.bench_company import churn, make_company
from scimsync.sim.bench_systems import TARGETS

SIZE = 60
RTT = 0.002
CONCURRENCY = 4
FIGURES = {
    "requests", "reads", "writes", "errors", "fewest", "fewest_reads", "fewest_writes", "requests_vs_fewest",
    "limit_s", "wall_s", "wall_vs_limit", "limit_of_sent_s", "parallelism", "cpu_s", "cpu_ms_per_request",
    "engine_ms_per_person", "peak_rss_mb", "sim_cpu_s", "planned", "expected_operations", "bare_small_ms",
    "bare_page_ms", "bare_mix_ms", "cpu_vs_bare",
}  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    bench.main(
        [
            f"--sizes={SIZE}",
            f"--latency-ms={RTT * 1000}",
            f"--concurrency={CONCURRENCY}",
            "--targets=jira",
            "--bare-count=20",
            f"--pressure-size={SIZE}",
            f"--out={out / 'bench.json'}",
            f"--doc={out / 'benchmarks.md'}",
        ]
    )
    return json.loads((out / "bench.json").read_text()), (out / "benchmarks.md").read_text()


def run(data: dict[str, Any], scenario: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [r for r in data["runs"] if r["scenario"] == scenario]
    assert len(found) == 1
    return found[0]


def members(people: Any) -> dict[str, int]:
    """Members per group of a Jira holding ``people`` as scimsync leaves it (admin included)."""
    sizes = {"jira-software-users": 1, "scimsync-managed": 0}  # the administrator
    for person in people:
        for group in ("jira-software-users", "scimsync-managed", *person.groups):
            sizes[group] = sizes.get(group, 0) + 1
    return sizes


def test_every_scenario_is_measured_with_every_figure(results: tuple[dict[str, Any], str]) -> None:
    data, _ = results
    assert {r["scenario"] for r in data["runs"]} == {"nochange", "churn", "first", "pressure"}
    for r in data["runs"]:
        # The rate-limited run's CPU is not priced against a bare loop (its walls are the bucket's).
        expected = FIGURES - (
            {"bare_small_ms", "bare_page_ms", "bare_mix_ms", "cpu_vs_bare"}
            if r["scenario"] == "pressure"
            else set()
        )
        assert set(r["figures"]) >= expected, r["scenario"]
        client = r["client"]
        assert client["wall"] > 0 and client["cpu"] > 0 and client["peak_rss_mb"] > 10
        assert not client["errors"] and not client["guards"]
        # The simulator's log and the client's own count agree (one target, a file source).
        assert r["figures"]["requests"] == client["client_requests"]["jira"]
    assert {p["format"] for p in data["parse"]} == {"csv", "json", "yaml"}
    assert all(p["users"] == SIZE for p in data["parse"])
    assert {(b["size"], b["target"]) for b in data["bare"]} == {(SIZE, "jira")}
    meta = data["meta"]
    assert (meta["latency_ms"], meta["concurrency"], meta["sizes"]) == (RTT * 1000, CONCURRENCY, [SIZE])
    assert len(meta["load_start"]) == len(meta["load_end"]) == 3


def test_no_change_plan_reads_exactly_the_fewest_and_its_limit(results: tuple[dict[str, Any], str]) -> None:
    data, _ = results
    r = run(data, "nochange")
    sizes = members(make_company(SIZE))
    user_pages = math.ceil((SIZE + 1) / 2000)
    member_pages = sum(math.ceil(n / 50) for n in sizes.values())
    fewest = 1 + user_pages + member_pages  # serverInfo, /user/list, /group/member
    chain = max(user_pages, 2)  # some group has a second page, which waits for the first's total
    limit = max(chain, fewest / CONCURRENCY) * RTT
    f = r["figures"]
    assert (f["fewest"], f["fewest_writes"], f["planned"], f["expected_operations"]) == (fewest, 0, 0, 0)
    assert f["writes"] == 0
    assert f["limit_s"] == pytest.approx(limit)
    assert f["wall_vs_limit"] == pytest.approx(r["client"]["wall"] / limit)
    assert f["parallelism"] == pytest.approx(f["requests"] * RTT / r["client"]["wall"])
    assert f["cpu_ms_per_request"] == pytest.approx(1000 * r["client"]["cpu"] / f["requests"])


def test_first_provisioning_fewest_writes_and_phased_limit(results: tuple[dict[str, Any], str]) -> None:
    data, _ = results
    r = run(data, "first")
    people = make_company(SIZE)
    groups = {g for p in people for g in p.groups}
    # A group per rule group and the owner group; a user each; the owner group and three rule
    # groups each: jira-software-users comes with the account (the default application role).
    writes = (len(groups) + 1) + SIZE + SIZE * (1 + 3)
    # serverInfo, /user/list, the admin's jira-software-users page, a 404 per missing group,
    # /applicationrole.
    reads = 1 + 1 + 1 + (len(groups) + 1) + 1
    f = r["figures"]
    assert (f["fewest_reads"], f["fewest_writes"]) == (reads, writes)
    assert f["planned"] == f["expected_operations"] == writes + SIZE  # plus the free membership
    # Three kinds of write (groups, users, memberships) one after the other, after the reads.
    limit = (max(1, reads / CONCURRENCY) + max(3, writes / CONCURRENCY)) * RTT
    assert f["limit_s"] == pytest.approx(limit)
    assert r["client"]["outcome"] == {"done": f["planned"]}


def test_churn_is_a_quarter_each_and_planned_as_expected(results: tuple[dict[str, Any], str]) -> None:
    data, _ = results
    r = run(data, "churn")
    changed = churn(make_company(SIZE))
    assert (len(changed.joiners), len(changed.leavers), len(changed.movers), len(changed.renames)) == (
        1,
        1,
        1,
        1,
    )
    work = r["work"]
    assert (work["create_user"], work["deactivate_user"], work["update_user"]) == (1, 1, 1)
    assert r["figures"]["planned"] == r["figures"]["expected_operations"]
    assert r["client"]["outcome"] == {"done": r["figures"]["planned"]}


def test_rate_limited_run_meets_at_most_one_429_and_reports_it(results: tuple[dict[str, Any], str]) -> None:
    data, text = results
    r = run(data, "pressure")
    statuses = {status for _, _, status, _ in r["requests"]}
    refused = sum(n for _, _, status, n in r["requests"] if status == 429)
    assert statuses <= {200, 429} and refused == r["refused"] <= 1
    assert r["figures"]["requests"] == r["client"]["client_requests"]["jira"]  # 429s counted by both
    assert r["figures"]["reads"] - refused == r["figures"]["fewest"]  # the no-change plan's reads
    assert sum(r["unpaced"]["statuses"].values()) == r["unpaced"]["requests"] == 400
    row = f"| rate-limited run ({SIZE} people): 429s after the first = 0 | {refused} 429s in "
    assert row in text
    assert "| met |" in text.split(row, 1)[1].splitlines()[0]


def test_markdown_has_the_targets_and_every_run(results: tuple[dict[str, Any], str]) -> None:
    data, text = results
    assert "## Targets" in text and "## Results" in text and "## Fewest requests: the formulas" in text
    assert text.count("| Jira DC 10.3 |") == len(data["runs"])
    assert "not measured" in text, "the 10k and 50k targets were not run at this size"
    assert f"load average (1 / 5 / 15 min) at the start {data['meta']['load_start'][0]:.2f}" in text.lower()


def test_options_are_checked() -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--targets=jira,bitbucket"])
    options = bench.parse_args(["--sizes=1000,50000", "--scenarios=nochange"])
    assert (options.sizes, options.scenarios, options.targets) == (
        [1000, 50000],
        ["nochange"],
        list(TARGETS),
    )
    assert Path(options.doc) == Path("docs/benchmarks.md")
