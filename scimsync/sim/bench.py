"""``make bench``: what scimsync costs against the simulators, next to what the APIs allow.

Each simulator runs in a process of its own with an injected round-trip latency; each
measured client run is a process of its own too (``bench_client``), so CPU time and peak
memory are the client's alone. For every size, target and scenario (a first provisioning
of empty targets, a no-change plan, a plan and apply after 1 % churn) it records wall
time, client CPU, peak RSS, the requests each system received (from the simulator's
log), the fewest requests the APIs allow and the round-trip limit (``bench_limits``), and
the CPU a bare ``requests`` loop spends per request against the same simulator. The
*pressure* scenario runs a no-change plan against a Jira behind a token bucket
(``sim.ratelimit``, atlassian §1.11) and counts the 429s it served. Results go to a JSON
file and to ``docs/benchmarks.md`` (``bench_report``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scimsync import api
from scimsync.sim import bench_limits as limits
from scimsync.sim.bench_company import FORMATS, Person, churn, make_company, write_source
from scimsync.sim.bench_report import add_figures, write_markdown
from scimsync.sim.bench_server import SimProcess
from scimsync.sim.bench_systems import SOURCES, SYSTEMS, TARGETS, config_text, rule_groups
from scimsync.state import State, save_state
from scimsync.state import TargetState as Remembered

SCENARIOS = ("nochange", "churn", "first", "pressure")
TITLES = {
    "nochange": "no-change plan",
    "churn": "plan + apply after 1 % churn",
    "first": "first provisioning",
    "pressure": "no-change plan, rate-limited",
}
# The rate-limited Jira of the pressure scenario: a bucket of 40 refilled at 80 a second.
# An unpaced client at concurrency 8 and 20 ms sends up to 400 a second: most are refused.
PRESSURE_BUCKET = 40
PRESSURE_FILL = 80.0
CLIENT_TIMEOUT = 3 * 3600


def run_client(job: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Run one measured client process and return the JSON line it printed."""
    path = folder / "job.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    command = [sys.executable, "-m", "scimsync.sim.bench_client", str(path)]
    # A developer's aid: SCIMSYNC_BENCH_PROFILE=DIR samples each client run's threads with
    # py-spy (pip install py-spy) into DIR as collapsed stacks. It costs CPU: not for figures.
    profiles = os.environ.get("SCIMSYNC_BENCH_PROFILE")
    if profiles:
        Path(profiles).mkdir(parents=True, exist_ok=True)
        out = Path(profiles) / f"{job['mode']}-{len(list(Path(profiles).iterdir()))}.txt"
        spy = ["py-spy", "record", "--format", "raw", "--rate", "250", "--gil", "-o", str(out), "--"]
        command = spy + command
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench client failed ({job['mode']}):\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


class Bench:
    """One benchmark run: its options, its scratch folder and what it measured."""

    def __init__(self, options: argparse.Namespace, folder: Path) -> None:
        self.options = options
        self.folder = folder
        self.rtt = options.latency_ms / 1000
        self.runs: list[dict[str, Any]] = []
        self.bare: list[dict[str, Any]] = []
        self.parse: list[dict[str, Any]] = []

    def say(self, text: str) -> None:
        """Tell the person waiting what is going on (stderr)."""
        print(f"bench: {text}", file=sys.stderr, flush=True)

    # -- one target ------------------------------------------------------------------------

    def configure(self, source: str, target: str, sim: SimProcess, idp: SimProcess | None) -> Path:
        """Write the config of one (source, target) pair; return its path."""
        text = config_text(
            source,
            target,
            sim.url,
            concurrency=self.options.concurrency,
            source_path="people.csv",
            source_url=idp.url if idp else "",
        )
        path = self.folder / "scimsync.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    def prepare(self, scenario: str, size: int, target: str, sim: SimProcess, idp: SimProcess | None) -> None:
        """Seed the target (and IdP) and write the source file and state file for a scenario."""
        company = make_company(size)
        links = sim.seed(size, converged=scenario != "first")
        people: Sequence[Person] = churn(company).people if scenario == "churn" else company
        write_source(people, self.folder / "people.csv")
        if idp is not None:
            idp.seed(size, converged=True)
            if scenario == "churn":
                idp.call("churn")
            idp.call("clear")
        state = self.folder / "state.json"
        state.unlink(missing_ok=True)
        if links:  # what the run that provisioned them would have remembered (SPEC §5)
            url = api.load(self.folder / "scimsync.yaml").targets[target].url
            save_state(state, State({target: Remembered(links, rule_groups(company), url)}))
        sim.call("clear")

    def measure(
        self, scenario: str, size: int, source: str, target: str, sim: SimProcess, idp: SimProcess | None
    ) -> None:
        """Run one scenario on one target and record it."""
        config = self.configure(source, target, sim, idp)
        self.prepare(scenario, size, target, sim, idp)
        self.say(f"{size} people, {source} -> {target}: {TITLES[scenario]}")
        mode = "plan" if scenario in ("nochange", "pressure") else "apply"
        client = run_client({"mode": mode, "config": str(config)}, self.folder)
        log = sim.call("log")
        source_log = idp.call("log") if idp else None
        company = make_company(size)
        before = limits.seeded(target, None if scenario == "first" else company)
        after = churn(company).people if scenario == "churn" else company
        memory = [] if scenario == "first" else [g for gs in rule_groups(company).values() for g in gs]
        todo = limits.work(target, before, after, memory)
        phases = [limits.read_phase(target, before, after, todo, memory), limits.write_phase(target, todo)]
        if source == "okta":
            phases.insert(0, limits.source_phase(after))
        limit = sum(p.seconds(self.options.concurrency, self.rtt) for p in phases)
        run: dict[str, Any] = {
            "scenario": scenario,
            "size": size,
            "source": source,
            "target": target,
            "client": client,
            "requests": log["requests"],
            "sim_cpu": log["cpu"],
            "source_requests": source_log["requests"] if source_log else [],
            "work": dict(todo.ops, free_adds=todo.free_adds),
            "phases": [asdict(p) for p in phases],
            "limit": limit,
        }
        if scenario == "pressure":
            # The bucket is a floor too: what it holds goes at once, the rest at the fill rate.
            fewest = sum(p.requests for p in phases)
            run["limit"] = max(limit, (fewest - PRESSURE_BUCKET) / PRESSURE_FILL)
            run["rate_limit"] = {"bucket": PRESSURE_BUCKET, "fill_per_second": PRESSURE_FILL}
            run["refused"] = sum(n for _, _, status, n in log["requests"] if status == 429)
        self.runs.append(run)
        if scenario == "pressure":
            return  # a bare loop would be refused too: the CPU figures come from the other runs
        if not any((b["size"], b["target"]) == (size, target) for b in self.bare):
            self.measure_bare(size, target, sim)  # the simulator holds the company now

    def measure_bare(self, size: int, target: str, sim: SimProcess) -> None:
        """Run the bare ``requests`` loops (a small answer, a full page) against the same simulator."""
        bare = SYSTEMS[target].bare
        base = sim.url.removesuffix(SYSTEMS[target].base_path)
        row: dict[str, Any] = {"size": size, "target": target}
        for name, path in (("small", bare.small), ("page", bare.page)):
            job = {
                "mode": "bare",
                "url": base + path,
                "headers": bare.headers,
                "count": self.options.bare_count,
                "concurrency": self.options.concurrency,
            }
            row[name] = run_client(job, self.folder)
        self.bare.append(row)
        sim.call("clear")

    def measure_parse(self, size: int) -> None:
        """Time the file source reading the company as CSV, JSON and YAML."""
        company = make_company(size)
        for kind in FORMATS:
            path = self.folder / f"people.{kind}"
            write_source(company, path)
            config = self.folder / "parse-config.yaml"
            # The target is never contacted: only the source is read.
            config.write_text(
                config_text("file", "jira", "http://127.0.0.1:9", concurrency=1, source_path=path.name)
            )
            result = run_client({"mode": "parse", "config": str(config)}, self.folder)
            self.parse.append({"size": size, "format": kind, **result})

    def measure_pressure(self) -> None:
        """Run a no-change plan against a rate-limited Jira: the 429s it served, past the first."""
        size = self.options.pressure_size
        with SimProcess("jira", latency=self.rtt) as sim:
            sim.call("limit", capacity=PRESSURE_BUCKET, fill_per_second=PRESSURE_FILL)
            self.measure("pressure", size, "file", "jira", sim, None)
            # The yardstick: a bare loop that does not pace, against the same bucket once full again.
            time.sleep(PRESSURE_BUCKET / PRESSURE_FILL)
            sim.call("clear")
            bare = SYSTEMS["jira"].bare
            job = {
                "mode": "bare",
                "url": sim.url + bare.page,
                "headers": bare.headers,
                "count": 10 * PRESSURE_BUCKET,
                "concurrency": self.options.concurrency,
                "refusals_ok": True,
            }
            unpaced = run_client(job, self.folder)
            self.runs[-1]["unpaced"] = {"requests": unpaced["requests"], "statuses": unpaced["statuses"]}

    # -- everything ------------------------------------------------------------------------

    def run(self) -> None:
        """Measure every size, source, target and scenario asked for."""
        opts = self.options
        for size in opts.sizes:
            if opts.parse:
                self.say(f"{size} people: parsing the file source ({', '.join(FORMATS)})")
                self.measure_parse(size)
            for source in opts.sources:
                idp = SimProcess("okta", latency=self.rtt) if source == "okta" else None
                try:
                    for target in opts.targets:
                        with SimProcess(target, latency=self.rtt) as sim:
                            for scenario in [s for s in SCENARIOS if s in opts.scenarios]:
                                if scenario == "pressure":
                                    continue  # once, at its own size (measure_pressure)
                                if scenario == "first" and size > opts.first_max:
                                    continue
                                self.measure(scenario, size, source, target, sim, idp)
                finally:
                    if idp is not None:
                        idp.stop()
        if "pressure" in opts.scenarios:
            self.say(f"{opts.pressure_size} people, file -> jira behind a token bucket: {TITLES['pressure']}")
            self.measure_pressure()


def _list(kind: type, choices: Sequence[str] | None = None) -> Any:
    def parse(text: str) -> list[Any]:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        bad = [v for v in values if choices is not None and v not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]} is not one of {', '.join(choices or ())}")
        return values

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="make bench", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument(
        "--sizes", type=_list(int), default=[1000, 10_000], help="people (default 1000,10000)"
    )
    parser.add_argument("--latency-ms", type=float, default=20.0, help="round trip per request (default 20)")
    parser.add_argument("--concurrency", type=int, default=8, help="http.concurrency (default 8)")
    parser.add_argument("--scenarios", type=_list(str, SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--targets", type=_list(str, TARGETS), default=list(TARGETS))
    parser.add_argument("--sources", type=_list(str, SOURCES), default=["file"])
    parser.add_argument(
        "--first-max",
        type=int,
        default=1000,
        help="largest size to provision from empty (default 1000: at 10000 that scenario alone takes "
        "15 to 30 minutes a target today)",
    )
    parser.add_argument("--bare-count", type=int, default=400, help="requests of each bare loop")
    parser.add_argument(
        "--pressure-size",
        type=int,
        default=1000,
        help=f"people of the rate-limited run (default 1000: 548 requests through a bucket of "
        f"{PRESSURE_BUCKET} refilled at {PRESSURE_FILL:g} a second)",
    )
    parser.add_argument(
        "--no-parse", dest="parse", action="store_false", help="skip the file-source parse timing"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.json"), help="the JSON results")
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"), help="the Markdown report")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write its JSON and Markdown."""
    options = parse_args(argv)
    started, load = time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="scimsync-bench-") as tmp:
        bench = Bench(options, Path(tmp))
        bench.run()
    meta = {
        "command": " ".join(["python -m scimsync.sim.bench", *(sys.argv[1:] if argv is None else argv)]),
        "sizes": options.sizes,
        "latency_ms": options.latency_ms,
        "concurrency": options.concurrency,
        "duration_s": time.time() - started,
        "load_start": list(load),
        "load_end": list(os.getloadavg()),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
    }
    data = {"meta": meta, "runs": bench.runs, "bare": bench.bare, "parse": bench.parse}
    add_figures(data)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    write_markdown(data, options.doc, json_path=options.out)
    print(f"bench: {options.out} and {options.doc} written in {meta['duration_s']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
