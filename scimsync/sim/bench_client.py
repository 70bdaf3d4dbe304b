"""One measured client run, in a process of its own: ``python -m scimsync.sim.bench_client JOB``.

JOB is a JSON file naming what to do: ``plan`` or ``apply`` (plan, then apply it, as
``scimsync apply`` does) with a config; ``bare`` (a plain ``requests.Session`` GET loop,
the yardstick for the client's CPU per request); or ``parse`` (read a file source). The
run prints one JSON line: wall time, CPU time (``getrusage`` of this process, which holds
no simulator), peak RSS, and what the product did. Imports happen before the clock starts.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import requests

from scimsync import api, runstats
from scimsync.engine.apply import Status

F = TypeVar("F", bound=Callable[..., Any])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class EngineClock:
    """CPU time spent in the engine (scoping, mapping, diff, guards), on whichever thread ran it."""

    NAMES = ("in_scope", "_desired", "diff", "check_guards")

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def wrap(self, function: F) -> F:
        """Return ``function`` counting its thread CPU time."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                with self._lock:
                    self.seconds += spent

        return timed  # type: ignore[return-value]

    def install(self) -> None:
        """Time the engine functions the library facade calls (names looked up in ``api``)."""
        for name in self.NAMES:
            setattr(api, name, self.wrap(getattr(api, name)))


def run_sync(job: dict[str, Any]) -> dict[str, Any]:
    """Plan (and apply) with the job's config; return what was measured."""
    clock = EngineClock()
    clock.install()
    config = api.load(Path(job["config"]))
    cpu, started = _cpu(), time.perf_counter()
    plan = api.make_plan(config)
    planned = time.perf_counter()
    kinds: Counter[str] = Counter(op.kind.value for tp in plan.targets for op in tp.operations)
    errors = [f"{tp.target}: {tp.error}" for tp in plan.targets if tp.error]
    outcome: Counter[str] = Counter()
    if job["mode"] == "apply" and not plan.guards and any(tp.operations for tp in plan.targets):
        result = api.apply(config, plan, recheck=False)
        for target in result.targets:
            outcome.update(r.status.value for r in target.results)
            if target.stopped:
                errors.append(f"{target.target}: stopped: {target.stopped}")
        failures = [r for t in result.targets for r in t.results if r.status is Status.FAILED]
        errors += [f"{r.op.kind.value} {r.op.account} {r.op.group or ''}: {r.message}" for r in failures[:5]]
    ended = time.perf_counter()
    return {
        "wall": ended - started,
        "plan_wall": planned - started,
        "apply_wall": ended - planned,
        "cpu": _cpu() - cpu,
        "engine_cpu": clock.seconds,
        "peak_rss_mb": _peak_mb(),
        "operations": dict(kinds),
        "outcome": dict(outcome),
        "guards": [g.message for g in plan.guards],
        "errors": errors,
        "phases": dict(runstats.current().phases),
        "client_requests": dict(runstats.current().requests),
    }


def run_bare(job: dict[str, Any]) -> dict[str, Any]:
    """GET ``url`` ``count`` times over one pooled Session from ``concurrency`` threads; decode each."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=job["concurrency"])
    session.mount("http://", adapter)
    session.headers.update(job["headers"])

    statuses: Counter[int] = Counter()
    counting = threading.Lock()

    def one(_: int) -> int:
        response = session.get(job["url"], timeout=30)
        with counting:
            statuses[response.status_code] += 1
        if job.get("refusals_ok") and response.status_code == 429:
            return len(response.content)  # the unpaced loop of the pressure scenario
        response.raise_for_status()
        response.json()
        return len(response.content)

    one(0)  # connect first: the loop measures requests, not the connection set-up
    statuses.clear()
    cpu, started = _cpu(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=job["concurrency"]) as pool:
        sizes = list(pool.map(one, range(job["count"])))
    wall, spent = time.perf_counter() - started, _cpu() - cpu
    session.close()
    return {
        "wall": wall,
        "cpu": spent,
        "requests": len(sizes),
        "bytes": sum(sizes) / len(sizes),
        "statuses": {str(code): n for code, n in sorted(statuses.items())},
    }


def run_parse(job: dict[str, Any]) -> dict[str, Any]:
    """Read a file source the way a run does (config, then ``source.read``)."""
    from scimsync.sources import build_source

    config = api.load(Path(job["config"]))
    cpu, started = _cpu(), time.perf_counter()
    source = build_source(config)
    directory = source.read()
    source.close()
    return {"wall": time.perf_counter() - started, "cpu": _cpu() - cpu, "users": len(directory.users)}


MODES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "plan": run_sync,
    "apply": run_sync,
    "bare": run_bare,
    "parse": run_parse,
}


def main() -> None:
    """Run the job named on the command line and print its result as one JSON line."""
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(json.dumps(MODES[job["mode"]](job)))


if __name__ == "__main__":
    main()
