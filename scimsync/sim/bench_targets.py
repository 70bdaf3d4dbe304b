"""Issue 12's targets (item 2) checked against the figures; a miss says by how much and hints why."""

from __future__ import annotations

from collections import Counter
from typing import Any

TITLES = {"nochange": "no-change plan", "churn": "1 % churn: plan + apply", "first": "first provisioning"}
LABELS = {"jira": "Jira DC 10.3", "confluence": "Confluence DC 10.2", "cloud": "Atlassian Cloud (SCIM)"}
AT = 10_000  # the size the request and wall targets are set at
BIG = 50_000  # the size of the memory and scaling targets

Row = list[str]


def _row(goal: str, measured: str, met: bool | None, why: str = "") -> Row:
    """Return a table row; a goal not measured at its size shows the largest size that was."""
    verdict = "not measured" if met is None else ("met" if met else "**missed**")
    return [goal, measured, verdict, "" if met else why]


def _runs(data: dict[str, Any], scenario: str, size: int) -> list[dict[str, Any]]:
    return [r for r in data["runs"] if (r["scenario"], r["size"]) == (scenario, size)]


def _name(run: dict[str, Any]) -> str:
    """Name a run's target, and its source unless it is the file source."""
    source = "" if run["source"] == "file" else f" from {run['source']}"
    return LABELS[run["target"]] + source


def top_endpoints(run: dict[str, Any], *, writes: bool | None = None, count: int = 3) -> str:
    """Name the endpoints that took most requests in a run."""
    totals: Counter[str] = Counter()
    for method, path, _, n in run["requests"]:
        if writes is None or (method != "GET") == writes:
            totals[f"{method} {path}"] += n
    return ", ".join(f"{name} x{n:,}" for name, n in totals.most_common(count))


def _slow(f: dict[str, Any], concurrency: int) -> str:
    """Say what kept a run from its limit: requests, parallelism, or the client's CPU."""
    parts = []
    if f["requests_vs_fewest"] > 1.01:
        parts.append(f"{f['requests']:,} requests, {f['requests_vs_fewest']:.2f} x the fewest")
    parts.append(f"{f['parallelism']:.1f} of {concurrency} requests in flight on average")
    share = f["cpu_share_of_wall"]
    if share is not None and share > 0.6:
        parts.append(f"client CPU {share:.0%} of the wall: CPU-bound on one interpreter")
    return "; ".join(parts)


def _nochange(data: dict[str, Any], concurrency: int) -> list[Row]:
    rows = []
    for run in _runs(data, "nochange", AT):
        f, name = run["figures"], _name(run)
        ratio = f["requests_vs_fewest"]
        rows.append(
            _row(
                f"{name}: no-change plan at 10k, requests <= 1.05 x fewest",
                f"{f['requests']:,} vs {f['fewest']:,} ({ratio:.2f} x)",
                ratio <= 1.05,
                f"most requests: {top_endpoints(run)}",
            )
        )
        rows.append(
            _row(f"{name}: no-change plan at 10k, zero writes", f"{f['writes']:,} writes", f["writes"] == 0)
        )
        allowed = 1.3 * f["limit_s"] + 0.5
        rows.append(
            _row(
                f"{name}: no-change plan at 10k, wall <= 1.3 x limit + 0.5 s",
                f"{f['wall_s']:.2f} s vs {allowed:.2f} s allowed (limit {f['limit_s']:.2f} s; "
                f"{f['wall_s'] / allowed:.1f} x allowed)",
                f["wall_s"] <= allowed,
                _slow(f, concurrency),
            )
        )
    return rows


def _first(data: dict[str, Any], concurrency: int) -> list[Row]:
    rows = []
    sizes = sorted({r["size"] for r in data["runs"] if r["scenario"] == "first"})
    size = AT if AT in sizes else (sizes[-1] if sizes else None)
    if size is None:
        return [_row("First provisioning at 10k", "not run (--scenarios)", None)]
    for run in _runs(data, "first", size):
        f, name = run["figures"], _name(run)
        at = "" if size == AT else f"at {size:,}: "
        extra = f["writes"] - f["fewest_writes"]
        met = extra == 0
        rows.append(
            _row(
                f"{name}: first provisioning at 10k, writes = fewest",
                f"{at}{f['writes']:,} vs {f['fewest_writes']:,} ({extra:+,})",
                met if size == AT else None,
                f"writes: {top_endpoints(run, writes=True)}",
            )
        )
        allowed = 1.15 * f["limit_s"]
        rows.append(
            _row(
                f"{name}: first provisioning at 10k, wall <= 1.15 x limit",
                f"{at}{f['wall_s']:.1f} s vs {allowed:.1f} s allowed (limit {f['limit_s']:.1f} s; "
                f"{f['wall_vs_limit']:.2f} x the limit)",
                f["wall_s"] <= allowed if size == AT else None,
                _slow(f, concurrency),
            )
        )
    return rows


def _cpu(data: dict[str, Any]) -> list[Row]:
    rows = []
    largest = max((r["size"] for r in data["runs"]), default=0)
    for run in [r for r in data["runs"] if r["size"] == largest and r["figures"].get("cpu_vs_bare")]:
        f = run["figures"]
        name, scenario = _name(run), TITLES[run["scenario"]]
        rows.append(
            _row(
                f"{name}: {scenario} at {largest:,}, CPU / request <= 1.5 x bare",
                f"{f['cpu_ms_per_request']:.2f} ms vs bare {f['bare_mix_ms']:.2f} ms "
                f"({f['cpu_vs_bare']:.1f} x)",
                f["cpu_vs_bare"] <= 1.5,
                f"engine {f['engine_ms_per_person']:.3f} ms / person; the rest is HTTP and connector code",
            )
        )
    for run in _runs(data, "nochange", AT):
        f = run["figures"]
        rows.append(
            _row(
                f"{_name(run)}: engine (scope, mapping, diff, guards) <= 0.1 ms / person",
                f"{f['engine_ms_per_person']:.3f} ms",
                f["engine_ms_per_person"] <= 0.1,
            )
        )
    for parsed in [p for p in data["parse"] if p["size"] == AT]:
        rows.append(
            _row(
                f"10k-record {parsed['format'].upper()} source parsed in < 0.5 s",
                f"{parsed['wall']:.2f} s",
                parsed["wall"] < 0.5,
            )
        )
    return rows


def _scale(data: dict[str, Any]) -> list[Row]:
    rows = []
    big = _runs(data, "nochange", BIG)
    if not big:
        return [
            _row("Peak RSS <= 200 MB at 50k", "run with --sizes 10000,50000", None),
            _row("wall(50k) / wall(10k) <= 5.5 (no-change plan)", "run with --sizes 10000,50000", None),
        ]

    def peak(run: dict[str, Any]) -> Row:
        rss = run["figures"]["peak_rss_mb"]
        goal = f"{_name(run)}: peak RSS <= 200 MB at 50k ({TITLES[run['scenario']]})"
        return _row(goal, f"{rss:.0f} MB", rss <= 200)

    for run in big:
        f, name = run["figures"], _name(run)
        rows.append(peak(run))
        same = [
            r
            for r in _runs(data, "nochange", AT)
            if (r["target"], r["source"]) == (run["target"], run["source"])
        ]
        if same:
            ratio = f["wall_s"] / same[0]["figures"]["wall_s"]
            rows.append(
                _row(f"{name}: wall(50k) / wall(10k) <= 5.5 (no-change plan)", f"{ratio:.2f}", ratio <= 5.5)
            )
    rows += [peak(run) for run in _runs(data, "first", BIG) + _runs(data, "churn", BIG)]
    return rows


def targets(data: dict[str, Any]) -> list[Row]:
    """Return the rows of the targets table: goal, measured, verdict, why (when missed)."""
    concurrency = data["meta"]["concurrency"]
    return _nochange(data, concurrency) + _first(data, concurrency) + _cpu(data) + _scale(data)
