"""The benchmark's figures, derived from the raw measurements, and ``docs/benchmarks.md``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scimsync.sim import bench_targets
from scimsync.sim.bench_targets import LABELS, targets

TITLES = {**bench_targets.TITLES, "pressure": "no-change plan, rate-limited"}

PREAMBLE = """\
# Benchmarks

Written by `make bench` (`python -m scimsync.sim.bench`) from one run of the code in this
repository. Do not edit by hand: run it again. Every figure below is in `{json}` too.
"""
METHOD = """\
## How the figures are made

- **Processes.** Each simulator runs in a process of its own (`bench_server`), served by a
  threaded server on loopback that sleeps the injected round trip ({rtt} ms) in every
  request's own thread, so requests in flight overlap. Each measured client run is a fresh
  process (`bench_client`): its CPU time and peak RSS (`getrusage`) hold no simulator.
  Simulators are seeded in memory, never over HTTP. The client runs the library as
  `scimsync plan` / `scimsync apply` do (`api.make_plan`, then `api.apply`), with
  `http.concurrency: {concurrency}`; imports happen before the clock starts.
- **Company.** N people, 500 groups (10 departments, 490 teams), each person in one
  department and two teams; every person in scope. Targets map every group to a group of
  the same name; Jira and Confluence add their default group and the owner group.
  Scenarios: *first provisioning* (empty targets: plan and apply), *no-change plan* (the
  targets hold exactly what scimsync would have made, links in the state file), *1 %
  churn* (a quarter each of joiners, leavers made inactive, movers to another department
  and team, renames with a new username and email: plan and apply).
- **Requests** are counted by the simulators (every attempt, retries included).
  **Fewest** is what the APIs allow for the same work, computed from the company and the
  page-size limits in the reference docs, apart from the product (`bench_limits`; the
  formulas are above). **Operations** compares the plan's size with the work computed
  there: a difference means the two disagree about what there is to do.
- **Limit.** A run's round-trip limit is the sum over its phases (the source read, the
  target read, the writes: each waits for the one before) of `max(L, R / C) x RTT`, with R
  the fewest requests of the phase, L its longest chain of requests that must follow one
  another, C the concurrency. *Wall / limit* is how far the run is from that floor.
  *Parallelism* is requests x RTT / wall: the requests the client kept in flight on average
  (at most C).
- **CPU.** Client CPU per request is the client process's CPU time (user + system, the
  source parse and the engine included) over the requests it sent. The bare loop is a
  `requests.Session` GET loop from C threads against the same simulator in the same run:
  a small answer (the signed-in user) and a full page (50 Jira members, 200 Confluence
  members, 100 SCIM users), each decoded as JSON. *Bare* prices the run's own mix: its
  reads as bare pages, its writes as bare small answers. *Engine* is the CPU time of
  scoping, mapping, diff and guards (thread CPU time of those functions) per person.
- **Pressure.** The rate-limited run is a no-change plan against a Jira behind a token
  bucket per user (`sim/ratelimit.py`, the five headers of atlassian §1.11, 429 when it is
  empty). Its 429s are counted by the bucket; its limit is the larger of the round-trip
  limit and the time the bucket takes to refill for the requests it does not hold.
- **Caveat.** The machine's cores are shared: the simulator's CPU (`sim_cpu_s` in the
  JSON) competes with the client's when a simulator works hard (Confluence's simulator
  sorts a group on every member page; its walls at large sizes include that).
"""


def _count(rows: Iterable[list[Any]], *, writes: bool | None = None) -> int:
    return sum(n for method, _, _, n in rows if writes is None or (method not in ("GET", "HEAD")) == writes)


def derive(
    run: dict[str, Any], bare: dict[str, Any] | None, *, concurrency: int, rtt: float
) -> dict[str, Any]:
    """Return a run's figures: requests against the fewest, wall against the limit, CPU against bare."""
    client, rows = run["client"], run["requests"]
    sent, writes = _count(rows), _count(rows, writes=True)
    from_source = _count(run["source_requests"])
    total = sent + from_source
    phases = {p["name"]: p for p in run["phases"]}
    fewest_reads = phases["read"]["requests"] + phases.get("source", {"requests": 0})["requests"]
    fewest_writes = phases["write"]["requests"]
    chain = sum(p["chain"] for p in run["phases"])
    wall = client["wall"]
    figures: dict[str, Any] = {
        "requests": total,
        "target_requests": sent,
        "source_requests": from_source,
        "reads": total - writes,
        "writes": writes,
        "errors": sum(n for _, _, status, n in rows if status >= 400),
        "fewest": fewest_reads + fewest_writes,
        "fewest_reads": fewest_reads,
        "fewest_writes": fewest_writes,
        "requests_vs_fewest": total / max(1, fewest_reads + fewest_writes),
        "limit_s": run["limit"],
        "wall_s": wall,
        "wall_vs_limit": wall / run["limit"] if run["limit"] else None,
        "limit_of_sent_s": max(chain, total / concurrency) * rtt,
        "parallelism": total * rtt / wall if wall else None,
        "cpu_s": client["cpu"],
        "cpu_share_of_wall": client["cpu"] / wall if wall else None,
        "cpu_ms_per_request": 1000 * client["cpu"] / max(1, total),
        "engine_ms_per_person": 1000 * client["engine_cpu"] / run["size"],
        "peak_rss_mb": client["peak_rss_mb"],
        "sim_cpu_s": run["sim_cpu"],
        "planned": sum(client["operations"].values()),
        "expected_operations": sum(v for k, v in run["work"].items() if k != "free_adds"),
    }
    if bare is not None:
        small = 1000 * bare["small"]["cpu"] / bare["small"]["requests"]
        page = 1000 * bare["page"]["cpu"] / bare["page"]["requests"]
        mix = ((total - writes) * page + writes * small) / max(1, total)
        figures |= {"bare_small_ms": small, "bare_page_ms": page, "bare_mix_ms": mix}
        figures["cpu_vs_bare"] = figures["cpu_ms_per_request"] / mix if mix else None
    return figures


def add_figures(data: dict[str, Any]) -> None:
    """Derive every run's figures in place (the bare loop of the same size and target)."""
    meta = data["meta"]
    for run in data["runs"]:
        bare = next(
            (b for b in data["bare"] if (b["size"], b["target"]) == (run["size"], run["target"])), None
        )
        if run["scenario"] == "pressure":
            bare = None  # its CPU is not priced: its walls are the bucket's
        run["figures"] = derive(run, bare, concurrency=meta["concurrency"], rtt=meta["latency_ms"] / 1000)


def pressure(data: dict[str, Any]) -> list[list[str]]:
    """Return the target row of the rate-limited run (issue 12 item 4): no 429 after the first."""
    rows = []
    for run in [r for r in data["runs"] if r["scenario"] == "pressure"]:
        f, bucket = run["figures"], run["rate_limit"]
        after_first = max(0, run["refused"] - 1)
        measured = (
            f"{run['refused']:,} 429s in {f['requests']:,} requests ({after_first:,} after the first); "
            f"bucket {bucket['bucket']}, refilled at {bucket['fill_per_second']:g} / s; "
            f"wall {f['wall_s']:.2f} s vs limit {f['limit_s']:.2f} s"
        )
        unpaced = run.get("unpaced")
        if unpaced:
            measured += (
                f"; an unpaced `requests` loop at concurrency {data['meta']['concurrency']}: "
                f"{unpaced['statuses'].get('429', 0):,} of {unpaced['requests']:,} refused"
            )
        verdict = "met" if after_first == 0 else "**missed**"
        why = "" if after_first == 0 else f"429s on: {bench_targets.top_endpoints(run)}"
        rows.append(
            [f"rate-limited run ({run['size']:,} people): 429s after the first = 0", measured, verdict, why]
        )
    return rows


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(head: list[str], rows: Iterable[list[str]]) -> list[str]:
    """Return a Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _results(runs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in runs:
        f = r["figures"]
        rows.append(
            [
                TITLES[r["scenario"]],
                f"{r['size']:,}",
                r["source"],
                LABELS[r["target"]],
                f"{f['wall_s']:.2f}",
                f"{f['limit_s']:.2f}",
                _fmt(f["wall_vs_limit"]),
                f"{f['reads']:,} / {f['writes']:,}",
                f"{f['fewest_reads']:,} / {f['fewest_writes']:,}",
                _fmt(f["parallelism"], 1),
                _fmt(f["cpu_ms_per_request"]),
                _fmt(f.get("bare_mix_ms")),
                _fmt(f["engine_ms_per_person"], 3),
                f"{f['peak_rss_mb']:.0f}",
                f"{f['planned']:,} / {f['expected_operations']:,}",
            ]
        )
    return rows


RESULT_HEAD = [
    "Scenario", "People", "Source", "Target", "Wall s", "Limit s", "Wall / limit",
    "Requests (reads / writes)", "Fewest (reads / writes)", "Parallelism", "Client CPU ms / request",
    "Bare ms / request", "Engine ms / person", "Peak RSS MB", "Operations planned / expected",
]  # fmt: skip


def _endpoints(runs: list[dict[str, Any]]) -> list[str]:
    largest = max(r["size"] for r in runs)
    lines = [f"## Requests per endpoint at {largest:,} people", ""]
    for r in [r for r in runs if r["size"] == largest]:
        parts = [f"{m} {p} ({s}): {n:,}" for m, p, s, n in r["requests"] + r["source_requests"]]
        lines.append(
            f"- {TITLES[r['scenario']]}, {r['source']} -> {LABELS[r['target']]}: " + "; ".join(parts)
        )
    return lines


def _formulas(runs: list[dict[str, Any]]) -> list[str]:
    found: dict[tuple[str, str], str] = {}
    for r in runs:
        for phase in r["phases"]:
            system = r["source"] if phase["name"] == "source" else r["target"]
            known = found.get((system, phase["name"]), "")
            if len(phase["formula"]) > len(known):  # the fullest wording (e.g. with /applicationrole)
                found[(system, phase["name"])] = phase["formula"]
    lines = ["## Fewest requests: the formulas", ""]
    lines += [f"- {system}, {phase}: {formula}." for (system, phase), formula in found.items()]
    lines += [
        "",
        "A read phase's chain is its longest list that must be walked page after page; a write "
        "phase's chain is one step per kind of write it holds (apply does the kinds in turn).",
    ]
    return lines


def _load(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def write_markdown(data: dict[str, Any], path: Path, *, json_path: Path) -> None:
    """Write ``docs/benchmarks.md`` from the benchmark's data."""
    meta, runs = data["meta"], data["runs"]
    lines = [PREAMBLE.format(json=json_path)]
    lines += [
        f"Run of {meta['date']} on {meta['machine']} ({meta['cpus']} CPUs), Python {meta['python']}: "
        f"{meta['latency_ms']:g} ms round trip per request, concurrency {meta['concurrency']}, "
        f"{meta['duration_s'] / 60:.1f} minutes in all. Load average (1 / 5 / 15 min) at the start "
        f"{_load(meta['load_start'])}, at the end {_load(meta['load_end'])}. Command: `{meta['command']}`.",
        "",
        "## Targets",
        "",
        *table(["Target", "Measured", "Verdict", "Why (from the figures)"], targets(data) + pressure(data)),
        "",
        "## Results",
        "",
        *table(RESULT_HEAD, _results(runs)),
        "",
    ]
    if data["parse"]:
        parse_rows = [
            [p["format"].upper(), f"{p['size']:,}", f"{p['wall']:.2f}", f"{p['cpu']:.2f}"]
            for p in data["parse"]
        ]
        lines += [
            "## File source: parse time",
            "",
            *table(["Format", "Records", "Wall s", "CPU s"], parse_rows),
            "",
        ]
    if runs:
        lines += [*_endpoints(runs), "", *_formulas(runs), ""]
    lines.append(METHOD.format(rtt=f"{meta['latency_ms']:g}", concurrency=meta["concurrency"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
