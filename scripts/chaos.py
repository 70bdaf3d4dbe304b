"""Run the seeded chaos test's long mode: many rounds for each of several seeds, one seed at a time.

    .venv/bin/python scripts/chaos.py --rounds 200 --seeds 1 2 3

Each seed runs tests/test_chaos.py::test_chaos_rounds with SCIMSYNC_CHAOS_SEED/ROUNDS set and
SCIMSYNC_CHAOS_KEEP_GOING=1 (a failed round is reported and a fresh world goes on), then the
figures of every seed are printed as one table, and every failure with its seed, round and
the command that replays it. Exit status 1 when any round failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_seed(seed: int, rounds: int, known_bugs: bool, folder: Path) -> dict[str, object]:
    """Run the chaos test for one seed; return its figures."""
    report = folder / f"chaos-{seed}.json"
    env = {
        **os.environ,
        "SCIMSYNC_CHAOS_SEED": str(seed),
        "SCIMSYNC_CHAOS_ROUNDS": str(rounds),
        "SCIMSYNC_CHAOS_KEEP_GOING": "1",
        "SCIMSYNC_CHAOS_REPORT": str(report),
        "SCIMSYNC_CHAOS_KNOWN_BUGS": "1" if known_bugs else "",
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:logging",
        "tests/test_chaos.py::test_chaos_rounds",
    ]
    subprocess.run(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    if not report.exists():
        return {"seed": seed, "rounds": 0, "failures": [f"seed {seed}: the test did not start"]}
    figures: dict[str, object] = json.loads(report.read_text(encoding="utf-8"))
    return figures


def main() -> int:
    """Parse the arguments, run each seed in turn, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--known-bugs", action="store_true", help="let the churn walk into the known bugs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_seed(seed, args.rounds, args.known_bugs, Path(tmp)) for seed in args.seeds]
    keys = (
        "seed",
        "rounds",
        "runs",
        "kills",
        "kills_while_writing",
        "ended_before_kill",
        "writes",
        "seconds",
    )
    print(" ".join(f"{k:>18}" for k in keys))
    for r in results:
        print(" ".join(f"{r.get(k, '')!s:>18}" for k in keys) + f"  failures: {len(r['failures'])}")  # type: ignore[arg-type]
    for name in ("faults_installed", "faulty_answers", "churn"):
        total: dict[str, int] = {}
        for r in results:
            for kind, count in (r.get(name) or {}).items():  # type: ignore[attr-defined]
                total[kind] = total.get(kind, 0) + count
        print(f"{name}: {json.dumps(dict(sorted(total.items())))}")
    failures = [f for r in results for f in r["failures"]]  # type: ignore[attr-defined]
    for failure in failures:
        print(f"\n{failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
